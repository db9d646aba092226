"""Login through the real Traefik and gate; what the upstream receives."""

import re

from tests.auth.harness import TenantUser
from tests.edge.harness import SESSION_COOKIE, EdgeStack, link_token_of
from tresor.auth.v1 import auth_pb2 as pb
from tresor_common.identity import IDENTITY_HEADER


async def test_login_then_a_page_is_served_with_a_signed_identity(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()

    response = await browser.login(who)
    assert response.status == 303
    cookie = response.set_cookies()[SESSION_COOKIE]
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["samesite"].lower() == "strict"
    assert cookie["path"] == "/"
    assert not cookie["max-age"], "a session cookie, never stored on disk"

    page = await browser.get(response.location + "contacts")
    assert page.status == 200, page.text
    seen = edge.upstream.received[-1]
    assert seen["identity"]["tenant_id"] == who.tenant_id
    assert seen["identity"]["user_id"] == who.user_id
    assert seen["identity"]["roles"] == ["user"]
    assert seen["identity"]["link_token"] == link_token_of(response.location)
    assert seen["path"].endswith("/contacts")


async def test_security_headers_on_every_response(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    for response in (await browser.get("/login"), await browser.get(link), await browser.get("/x")):
        headers = response.headers
        assert headers["strict-transport-security"].startswith("max-age=63072000")
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"


async def test_login_page_loads_nothing_from_elsewhere(edge: EdgeStack) -> None:
    page = await edge.browser().get("/login")
    assert "http://" not in page.text
    assert "https://" not in page.text
    assert 'href="/_gate/static/gate.css"' in page.text
    css = await edge.browser().get("/_gate/static/gate.css")
    assert css.status == 200
    assert "url(" not in css.text


async def test_client_sent_identity_is_stripped(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    forged = "eyJmb3JnZWQiOnRydWV9.AAAA"

    # With a valid session the upstream sees the gate's identity, not the client's.
    page = await browser.get(link, headers={IDENTITY_HEADER: forged})
    assert page.status == 200
    assert edge.upstream.received[-1]["identity_header"] != forged
    assert "identity" in edge.upstream.received[-1]

    # Without a session the forged header gets nobody anywhere.
    count = len(edge.upstream.received)
    stranger = edge.browser()
    response = await stranger.get(link, headers={IDENTITY_HEADER: forged})
    assert response.status == 303
    assert response.location == f"{edge.https_url}/login"
    assert len(edge.upstream.received) == count


async def test_aliased_identity_header_is_refused(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    count = len(edge.upstream.received)
    response = await browser.get(link, headers={"X_Tresor_Identity": "forged"})
    assert response.status == 400
    assert len(edge.upstream.received) == count


async def test_wrong_password_and_unknown_user_look_alike(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    ghost_user = pb.User()
    ghost_user.CopyFrom(who.user)
    ghost_user.username = "ghost"
    wrong = await edge.browser().login(who, password="not the password")
    unknown = await edge.browser().login(TenantUser(who.tenant, ghost_user))
    assert wrong.status == unknown.status == 401
    assert "fehlgeschlagen" in wrong.text

    def without_form_values(text: str) -> str:
        # The CSRF value is fresh per page; the typed user name is shown back.
        return re.sub(r'value="[^"]*"', 'value=""', text)

    assert without_form_values(wrong.text) == without_form_values(unknown.text)
    assert SESSION_COOKIE not in wrong.set_cookies()


async def test_login_form_needs_its_csrf_token(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    await browser.get("/login")
    response = await browser.request(
        "POST",
        "/login",
        data={
            "csrf": "forged",
            "tenant": who.tenant.slug,
            "username": "alice",
            "password": who.password,
        },
    )
    assert response.status == 403
    assert SESSION_COOKIE not in response.set_cookies()


async def test_login_from_another_site_is_refused(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    page = await browser.get("/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    response = await browser.request(
        "POST",
        "/login",
        data={
            "csrf": token,
            "tenant": who.tenant.slug,
            "username": "alice",
            "password": who.password,
        },
        headers={"origin": "https://evil.example"},
    )
    assert response.status == 403


async def test_english_on_request(edge: EdgeStack) -> None:
    page = await edge.browser().get("/login?lang=en")
    assert "Sign in to Tresor" in page.text
    german = await edge.browser().get("/login")
    assert "Bei Tresor anmelden" in german.text


async def test_root_and_unknown_paths(edge: EdgeStack) -> None:
    root = await edge.browser().get("/")
    assert root.status == 303
    assert root.location == "/login"
    missing = await edge.browser().get("/wp-admin")
    assert missing.status == 404
