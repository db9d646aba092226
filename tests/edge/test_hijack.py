"""Stolen links and cookies, other networks, forged forwarding headers: all end at login."""

import asyncio
from collections.abc import Callable
from typing import Any

from tests.edge.harness import SESSION_COOKIE, EdgeStack, Response
from tresor.auth.v1 import auth_pb2 as pb


def _sent_to_login(edge: EdgeStack, response: Response) -> None:
    assert response.status == 303, (response.status, response.text[:300])
    assert response.location == f"{edge.https_url}/login"


async def test_link_and_cookie_used_from_another_address(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    victim = edge.browser("127.0.0.1")
    link = await victim.login_link(who)
    served = len(edge.upstream.received)

    thief = edge.browser("127.0.0.2")
    thief.cookies = dict(victim.cookies)  # everything the victim's browser holds
    _sent_to_login(edge, await thief.get(link))
    assert len(edge.upstream.received) == served
    # The victim is not disturbed.
    assert (await victim.get(link)).status == 200


async def test_link_without_the_cookie_from_the_same_address(edge: EdgeStack) -> None:
    """The dial-up case: the next owner of the address gets nothing."""
    who = await edge.auth.tenant_user()
    victim = edge.browser("127.0.0.1")
    link = await victim.login_link(who)
    served = len(edge.upstream.received)

    next_owner = edge.browser("127.0.0.1")
    _sent_to_login(edge, await next_owner.get(link))
    assert (await next_owner.get(link + "api/v1/contacts")).status == 401
    assert len(edge.upstream.received) == served


async def test_api_requests_are_refused_with_problem_json(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    link = await edge.browser().login_link(who)
    response = await edge.browser().get(link + "api/v1/contacts")
    assert response.status == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_cookie_of_one_session_with_the_link_of_another(edge: EdgeStack) -> None:
    tenant = await edge.auth.tenant()
    from tests.auth.harness import TenantUser

    alice = TenantUser(tenant, await edge.auth.user(tenant, "alice"))
    mallory = TenantUser(tenant, await edge.auth.user(tenant, "mallory"))
    alice_browser = edge.browser()
    alice_link = await alice_browser.login_link(alice)
    mallory_browser = edge.browser()
    await mallory_browser.login_link(mallory)

    # Mallory, same network, own valid cookie, Alice's link: refused.
    _sent_to_login(edge, await mallory_browser.get(alice_link))


async def test_forwarded_headers_from_the_attacker_do_not_help(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    victim = edge.browser("127.0.0.1")
    link = await victim.login_link(who)
    thief = edge.browser("127.0.0.2")
    thief.cookies = dict(victim.cookies)
    for spoof in (
        {"x-forwarded-for": "127.0.0.1"},
        {"x-real-ip": "127.0.0.1"},
        {
            "x-forwarded-for": "127.0.0.1, 127.0.0.1",
            "x-real-ip": "127.0.0.1",
            "forwarded": "for=127.0.0.1",
        },
    ):
        _sent_to_login(edge, await thief.get(link, headers=spoof))


async def test_login_from_outside_the_allowlist_is_refused(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    await edge.auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["192.0.2.0/24"]
        )
    )
    browser = edge.browser("127.0.0.2")
    response = await browser.login(
        who,
    )
    assert response.status == 401
    assert SESSION_COOKIE not in browser.cookies
    # Nor does a spoofed forwarding header put the attacker inside the range.
    spoofed = await browser.login(
        who, headers={"x-forwarded-for": "192.0.2.9", "x-real-ip": "192.0.2.9"}
    )
    assert spoofed.status == 401
    assert SESSION_COOKIE not in browser.cookies
    inside = await edge.auth.login(who, client_ip="192.0.2.9")
    assert inside.WhichOneof("result") == "session"  # the range itself does work


async def test_allowlist_change_ends_access_on_the_next_request(edge: EdgeStack) -> None:
    who = await edge.auth.tenant_user()
    browser = edge.browser("127.0.0.1")
    link = await browser.login_link(who)
    assert (await browser.get(link)).status == 200
    await edge.auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["10.0.0.0/8"]
        )
    )
    _sent_to_login(edge, await browser.get(link))


async def test_inactivity_timeout_through_the_edge(start_edge: Callable[..., Any]) -> None:
    edge: EdgeStack = await start_edge()
    who = await edge.auth.tenant_user(idle_timeout_seconds=2, absolute_lifetime_seconds=60)
    browser = edge.browser()
    link = await browser.login_link(who)
    # Each wait is longer than the one-second slide granularity, shorter than the timeout.
    await asyncio.sleep(1.3)
    assert (await browser.get(link)).status == 200  # slides the timer
    await asyncio.sleep(1.3)
    assert (await browser.get(link)).status == 200
    await asyncio.sleep(2.5)
    _sent_to_login(edge, await browser.get(link))
