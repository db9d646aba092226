"""When auth is gone, nobody gets in."""

from tests.edge.harness import EdgeStack


async def test_auth_stopped_means_denied(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    assert (await browser.get(link)).status == 200
    served = len(edge.upstream.received)

    assert edge.auth.server is not None
    await edge.auth.server.stop(grace=0)

    page = await browser.get(link)
    assert page.status == 303
    assert page.location == f"{edge.https_url}/login"
    api = await browser.get(link + "api/v1/contacts")
    assert api.status == 401
    assert len(edge.upstream.received) == served
    # Logging in is refused too, with a message rather than an error page.
    again = await edge.browser().login(who)
    assert again.status == 503
    assert "nicht möglich" in again.text
