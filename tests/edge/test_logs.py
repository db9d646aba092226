"""Link tokens and cookie secrets never reach a log: Traefik's access log or the gate's."""

import asyncio
import json

from tests.edge.harness import EdgeStack, link_token_of


async def test_no_secret_in_the_access_log_or_the_gate_log(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser()
    link = await browser.login_link(who)
    token = link_token_of(link)
    cookie = browser.cookies["__Host-tresor_sid"]
    await browser.get(link + "contacts?q=x")
    await edge.browser("127.0.0.2").get(link + "contacts")  # a denial, logged by the gate
    await edge.browser().get(link + "api/v1/contacts")

    # Traefik writes its access log asynchronously.
    for _ in range(50):
        if edge.access_log.exists() and edge.access_log.read_text().count("\n") >= 4:
            break
        await asyncio.sleep(0.1)
    access_log = edge.access_log.read_text()
    entries = [json.loads(line) for line in access_log.splitlines()]
    assert len(entries) >= 4
    assert all("RequestPath" not in entry for entry in entries)
    assert {entry.get("DownstreamStatus") for entry in entries} >= {200, 303, 401}
    assert token not in access_log
    assert cookie not in access_log
    assert token not in edge.traefik_log.read_text()

    gate_log = edge.gate_log.read_text()
    denials = [json.loads(line) for line in gate_log.splitlines() if "request denied" in line]
    assert denials, gate_log[-2000:]
    assert denials[0]["reason"] == "no_cookie"
    assert denials[0]["path"].startswith("/s/[redacted]/")
    assert token not in gate_log
    assert cookie not in gate_log
