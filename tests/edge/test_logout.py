"""Logout ends the session: every old link leads to the login page, the cookie is cleared."""

from tests.edge.harness import SESSION_COOKIE, EdgeStack


async def _csrf_for(edge: EdgeStack, browser_link_response: dict[str, object]) -> str:
    identity = browser_link_response["identity"]
    assert isinstance(identity, dict)
    return str(identity["csrf_token"])


async def test_logout_ends_every_link(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    assert (await browser.get(link + "contacts/1")).status == 200
    csrf = await _csrf_for(edge, edge.upstream.received[-1])
    old_cookies = dict(browser.cookies)

    response = await browser.request(
        "POST", link + "logout", data={"csrf": csrf}, headers={"origin": edge.https_url}
    )

    assert response.status == 303
    assert response.location.endswith("/login?lang=de")
    assert response.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    cleared = response.set_cookies()[SESSION_COOKIE]
    assert cleared["max-age"] == "0"
    assert SESSION_COOKIE not in browser.cookies
    served = len(edge.upstream.received)
    for path in (link, link + "contacts/1", link + "api/v1/contacts"):
        response = await browser.get(path)
        assert response.status in (303, 401)
    # Even the old cookie, put back by hand, opens nothing.
    browser.cookies = old_cookies
    assert (await browser.get(link)).status == 303
    assert len(edge.upstream.received) == served


async def test_logout_without_its_form_token_is_refused(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    response = await browser.request(
        "POST", link + "logout", data={"csrf": "forged"}, headers={"origin": edge.https_url}
    )
    assert response.status == 403
    assert (await browser.get(link)).status == 200


async def test_logout_of_a_dead_session_still_clears_the_browser(edge: EdgeStack) -> None:
    browser = edge.browser()
    browser.cookies[SESSION_COOKIE] = "x" * 43
    response = await browser.request("POST", "/s/" + "A" * 32 + "/logout", data={"csrf": "x"})
    assert response.status == 303
    assert SESSION_COOKIE not in browser.cookies


async def test_logout_from_another_site_changes_nothing(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    assert (await browser.get(link + "x")).status == 200
    csrf = await _csrf_for(edge, edge.upstream.received[-1])
    refused = await browser.request(
        "POST",
        link + "logout",
        data={"csrf": csrf},
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert refused.status == 403
    assert (await browser.get(link)).status == 200, "the session must survive"


async def test_browsers_null_origin_is_accepted_when_same_origin(edge: EdgeStack) -> None:
    """Under Referrer-Policy: no-referrer browsers post forms with Origin: null."""
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    page = await browser.get("/login")
    token = page.text.split('name="csrf" value="')[1].split('"')[0]
    form = {"csrf": token, "tenant": who.tenant.slug, "username": "alice", "password": who.password}
    forged = await browser.request(
        "POST", "/login", data=form, headers={"origin": "null", "sec-fetch-site": "cross-site"}
    )
    assert forged.status == 403
    page = await browser.get("/login")
    form["csrf"] = page.text.split('name="csrf" value="')[1].split('"')[0]
    real = await browser.request(
        "POST", "/login", data=form, headers={"origin": "null", "sec-fetch-site": "same-origin"}
    )
    assert real.status == 303
