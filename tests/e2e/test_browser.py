"""A real Chromium through Traefik, the gate and auth to the CRM: the user's day in one test.

The browser trusts the edge's self-signed certificate by its public key only
(`--ignore-certificate-errors-spki-list`), not by switching certificate checks
off for the whole context (`ignore_https_errors`): every other origin would
still be verified, so a request that leaked elsewhere would fail loudly.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import async_playwright, expect

from tests.e2e.harness import CHROMIUM, CrmEdgeStack

LOGIN_FORM_COOKIE = "__Host-tresor_csrf"


def _screenshot_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("TRESOR_SCREENSHOTS", str(tmp_path)))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_login_create_search_edit_history_logout(
    crm_edge: CrmEdgeStack, tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package")
    who = await crm_edge.auth.tenant_user()
    origin = crm_edge.https_url
    requested: list[str] = []

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=crm_edge.chromium_args()
        )
        try:
            context = await browser.new_context(
                locale="de-DE", viewport={"width": 1280, "height": 900}
            )
            page = await context.new_page()
            page.on("request", lambda request: requested.append(request.url))

            # Log in through the gate's page and land on the dashboard.
            await page.goto(origin + "/login")
            await page.fill("#tenant", who.tenant.slug)
            await page.fill("#username", who.user.username)
            await page.fill("#password", who.password)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_contain_text("Willkommen")
            link = urlsplit(page.url).path.rstrip("/")
            assert link.startswith("/s/")

            # Pages are never stored.
            response = await page.goto(origin + link + "/contacts")
            assert response is not None
            assert response.headers["cache-control"] == "no-store"

            # Create a contact through the form.
            await page.click("text=Neuer Kontakt")
            await page.fill("#f-first_name", "Erika")
            await page.fill("#f-last_name", "Mustermann")
            await page.fill("#f-emails", "erika@beispiel.de")
            await page.fill("#f-phones", "+49 30 1234567")
            await page.fill("#f-city", "Berlin")
            await page.fill("#f-tags", "kunde, berlin")
            await page.check("#f-consent")
            await page.click("form.record-form button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Erika Mustermann")
            await expect(page.locator(".notice.success")).to_be_visible()

            # Find it with the search box.
            await page.click("nav.main-nav >> text=Kontakte")
            await page.fill("#q", "beispiel.de")
            await page.click("form.filters button[type=submit]")
            await page.click("table.records >> text=Mustermann, Erika")

            # Edit it and see the history.
            await page.click("text=Bearbeiten")
            await page.fill("#f-city", "Potsdam")
            await page.fill("#f-position", "Einkauf")
            await page.click("form.record-form button[type=submit]")
            await expect(page.locator(".notice.success")).to_contain_text("Gespeichert")
            history = page.locator("table.history")
            await expect(history).to_contain_text("Potsdam")
            await expect(history).to_contain_text("Berlin")
            await expect(history).to_contain_text(who.user.username)
            await page.screenshot(
                path=str(_screenshot_folder(tmp_path) / "contact.png"), full_page=True
            )

            # Log out: the old link leads to the login page, no cookie is left.
            contact_url = page.url
            await page.click("form.logout-form button")
            await page.wait_for_url("**/login**")
            await page.goto(contact_url)
            assert urlsplit(page.url).path == "/login"
            await expect(page.locator("#password")).to_be_visible()
            # Only the login form's own nonce, set by the login page now shown; no session.
            left = {cookie["name"] for cookie in await context.cookies()}
            assert left <= {LOGIN_FORM_COOKIE}, left
        finally:
            await browser.close()

    # Nothing the pages asked for left the edge's origin.
    assert requested
    elsewhere = [url for url in requested if not url.startswith(origin + "/")]
    assert not elsewhere, elsewhere
