"""Login and Authorize: every allow and every denial reason, over a real socket."""

import asyncio
from typing import cast

import grpc
import psycopg
import pytest
import redis

from tests.auth.harness import AuthClient, allowed, denied, status_of
from tresor.auth.v1 import auth_pb2 as pb


async def test_login_then_authorize_returns_the_identity(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)

    identity = allowed(await auth.authorize(grant))

    assert identity.tenant_id == who.tenant_id
    assert identity.user_id == who.user_id
    assert identity.username == "alice"
    assert list(identity.roles) == [pb.ROLE_USER]
    assert identity.session_id == grant.session_id
    assert len(grant.link_token) >= 22  # >= 128 bits
    assert len(grant.cookie_secret) >= 22
    assert grant.link_token != grant.cookie_secret


async def test_unknown_link_token_is_denied(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    response = await auth.authorize(grant, link_token="A" * 32)
    assert denied(response) == pb.DENY_REASON_UNKNOWN


async def test_stolen_link_with_wrong_cookie_is_denied_from_the_same_address(
    auth: AuthClient,
) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    response = await auth.authorize(grant, cookie_secret="B" * 43)
    assert denied(response) == pb.DENY_REASON_COOKIE_MISMATCH


async def test_link_without_cookie_is_denied(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    assert denied(await auth.authorize(grant, cookie_secret="")) == pb.DENY_REASON_COOKIE_MISMATCH


async def test_cookie_of_another_session_is_denied(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    first = await auth.session(who)
    second = await auth.session(who)
    response = await auth.authorize(first, cookie_secret=second.cookie_secret)
    assert denied(response) == pb.DENY_REASON_COOKIE_MISMATCH


async def test_session_used_from_a_second_address_is_denied(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who, client_ip="127.0.0.1")
    assert denied(await auth.authorize(grant, "127.0.0.2")) == pb.DENY_REASON_IP_MISMATCH
    # ...and the rightful owner still gets in.
    allowed(await auth.authorize(grant, "127.0.0.1"))


async def test_ipv4_mapped_ipv6_address_is_the_same_address(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who, client_ip="192.0.2.10")
    allowed(await auth.authorize(grant, "::ffff:192.0.2.10"))


async def test_network_binding_accepts_the_same_subnet_only(auth: AuthClient) -> None:
    who = await auth.tenant_user(ip_binding=pb.IP_BINDING_NETWORK)
    grant = await auth.session(who, client_ip="198.51.100.7")
    allowed(await auth.authorize(grant, "198.51.100.200"))
    assert denied(await auth.authorize(grant, "198.51.101.7")) == pb.DENY_REASON_IP_MISMATCH


async def test_log_binding_allows_but_writes_the_mismatch(auth: AuthClient) -> None:
    who = await auth.tenant_user(ip_binding=pb.IP_BINDING_LOG)
    grant = await auth.session(who, client_ip="198.51.100.7")
    allowed(await auth.authorize(grant, "203.0.113.9"))
    events = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(
            tenant_id=who.tenant_id,
            filter=pb.AuditFilter(events=["authorize.ip_mismatch_logged"]),
        )
    )
    assert [e.client_ip for e in events.events] == ["203.0.113.9"]


async def test_address_outside_the_allowlist_is_denied(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who, client_ip="10.1.2.3")
    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["192.0.2.0/24"]
        )
    )
    response = await auth.authorize(grant, "10.1.2.3")
    assert denied(response) == pb.DENY_REASON_NOT_ALLOWED_NETWORK


async def test_allowlist_change_during_a_live_session_takes_effect_at_once(
    auth: AuthClient,
) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who, client_ip="2001:db8:1::5")
    allowed(await auth.authorize(grant, "2001:db8:1::5"))

    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["2001:db8:2::/48"]
        )
    )
    assert (
        denied(await auth.authorize(grant, "2001:db8:1::5")) == pb.DENY_REASON_NOT_ALLOWED_NETWORK
    )

    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id,
            user_id=who.user_id,
            allowlist=["2001:db8:1::/48", "10.0.0.0/8"],
        )
    )
    allowed(await auth.authorize(grant, "2001:db8:1::5"))


async def test_login_from_outside_the_allowlist_is_refused_like_a_wrong_password(
    auth: AuthClient,
) -> None:
    who = await auth.tenant_user()
    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["192.0.2.0/24"]
        )
    )
    outside = await auth.login(who, client_ip="198.51.100.1")
    assert outside.failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS
    inside = await auth.login(who, client_ip="192.0.2.44")
    assert inside.WhichOneof("result") == "session"


async def test_disabled_user_is_denied_and_loses_every_session(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    await auth.stub.DisableUser(pb.DisableUserRequest(tenant_id=who.tenant_id, user_id=who.user_id))
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN
    assert (await auth.login(who)).failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS


async def test_user_disabled_behind_the_services_back_is_denied_as_disabled(
    auth: AuthClient, redis_url: str
) -> None:
    """The user's current state is checked on every request, not only at login."""
    who = await auth.tenant_user()
    grant = await auth.session(who)
    with psycopg.connect(str(auth.settings.migration_database_url), autocommit=True) as conn:
        conn.execute("UPDATE users SET active = false WHERE id = %s", (who.user_id,))
    # Drop the cached state, as after a Redis restart or a cache expiry.
    client = redis.Redis.from_url(redis_url)
    client.delete(f"{auth.settings.redis_key_prefix}user-state:{who.user_id}")
    client.close()
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_USER_DISABLED


async def test_idle_timeout_denies_and_each_allow_slides_it(auth: AuthClient) -> None:
    who = await auth.tenant_user(idle_timeout_seconds=2, absolute_lifetime_seconds=60)
    grant = await auth.session(who)
    # Keep it alive past the idle timeout by using it every 1.1 s (the timer slides at most
    # once a second).
    for _ in range(4):
        await asyncio.sleep(1.1)
        allowed(await auth.authorize(grant))
    await asyncio.sleep(2.3)
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_EXPIRED
    # Once expired it stays dead.
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN


async def test_absolute_lifetime_ends_even_an_active_session(auth: AuthClient) -> None:
    who = await auth.tenant_user(idle_timeout_seconds=2, absolute_lifetime_seconds=3)
    grant = await auth.session(who)
    for _ in range(2):
        await asyncio.sleep(1.1)
        allowed(await auth.authorize(grant))
    # Used 1.1 s ago, so not idle; but 3.2 s old, past its absolute lifetime.
    await asyncio.sleep(1.0)
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_EXPIRED


async def test_identity_reports_expiry_times(auth: AuthClient) -> None:
    who = await auth.tenant_user(idle_timeout_seconds=600, absolute_lifetime_seconds=3600)
    grant = await auth.session(who)
    identity = allowed(await auth.authorize(grant))
    idle = identity.idle_expires_at.ToSeconds()
    absolute = identity.absolute_expires_at.ToSeconds()
    assert 0 < absolute - idle <= 3000 + 5
    assert grant.idle_timeout_seconds == 600


async def test_session_limit_ends_the_oldest_session(auth: AuthClient) -> None:
    who = await auth.tenant_user(max_sessions_per_user=2)
    first = await auth.session(who)
    second = await auth.session(who)
    third = await auth.session(who)
    assert denied(await auth.authorize(first)) == pb.DENY_REASON_UNKNOWN
    allowed(await auth.authorize(second))
    allowed(await auth.authorize(third))


@pytest.mark.parametrize("bad_ip", ["", "not-an-ip", "300.1.1.1", "127.0.0.1/32"])
async def test_malformed_client_ip_is_invalid_argument(auth: AuthClient, bad_ip: str) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    code = await status_of(
        auth.stub.Authorize(
            pb.AuthorizeRequest(
                link_token=grant.link_token, cookie_secret=grant.cookie_secret, client_ip=bad_ip
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_redis_never_holds_a_usable_secret(auth: AuthClient, redis_url: str) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    allowed(await auth.authorize(grant))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = list(client.scan_iter(f"{auth.settings.redis_key_prefix}*"))
        assert any("session:" in key for key in keys)
        everything = list(keys)
        for key in keys:
            kind = cast(str, client.type(key))
            if kind == "hash":
                fields = cast(dict[str, str], client.hgetall(key))
                everything += [f"{k}={v}" for k, v in fields.items()]
            elif kind == "string":
                everything.append(cast(str, client.get(key)) or "")
            elif kind == "zset":
                everything += cast(list[str], client.zrange(key, 0, -1))
            else:
                raise AssertionError(f"unexpected key type {kind} for {key}")
        ttls = [client.ttl(key) for key in keys]
    finally:
        client.close()
    text = "\n".join(everything)
    assert grant.link_token not in text
    assert grant.cookie_secret not in text
    assert all(ttl > 0 for ttl in ttls), "every key expires by itself"
