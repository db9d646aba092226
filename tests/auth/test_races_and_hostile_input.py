"""What the review found: races between logins and admin changes, concurrent guessing,
hostile characters, and audit details that jsonb would change."""

import asyncio
import json
from typing import Any, cast

import grpc
import redis

from tests.auth.harness import AuthClient, allowed, denied, status_of
from tresor.auth.v1 import auth_pb2 as pb


async def test_concurrent_guesses_cannot_exceed_the_limit(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    answers = await asyncio.gather(
        *(auth.login(who, password="wrong password, sorry") for _ in range(30))
    )
    failures = [a for a in answers if a.failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS]
    locked = [a for a in answers if a.failure == pb.LOGIN_FAILURE_LOCKED]
    assert len(failures) == 10, "exactly the allowed number of passwords were checked"
    assert len(locked) == 20
    events = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(
            tenant_id=who.tenant_id, filter=pb.AuditFilter(events=["login.failed"]), page_size=100
        )
    )
    assert len(events.events) == 10
    assert (await auth.login(who)).failure == pb.LOGIN_FAILURE_LOCKED


async def test_a_session_written_after_a_password_change_is_void(
    auth: AuthClient, redis_url: str
) -> None:
    """A login that checked the old password may finish after the change revoked
    everything; its session must still be refused."""
    who = await auth.tenant_user()
    grant = await auth.session(who)
    prefix = auth.settings.redis_key_prefix
    client = redis.Redis.from_url(redis_url)
    try:
        session_key = f"{prefix}session:{grant.session_id}"
        link_key = next(iter(client.scan_iter(f"{prefix}link:*")))
        saved = client.hgetall(session_key), client.get(link_key)

        await auth.stub.ChangePassword(
            pb.ChangePasswordRequest(
                tenant_id=who.tenant_id, user_id=who.user_id, new_password="a brand new secret!"
            )
        )
        # The racing login writes its session now, after the revocation.
        client.hset(session_key, mapping=cast(Any, saved[0]))
        client.set(link_key, saved[1] or b"")
    finally:
        client.close()
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN


async def test_a_late_login_cannot_overwrite_an_admin_change(auth: AuthClient) -> None:
    """Logins only fill a missing cache entry; an admin change always writes it."""
    who = await auth.tenant_user()
    grant = await auth.session(who, client_ip="10.0.0.5")
    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["192.0.2.0/24"]
        )
    )
    # Another login, after the change, from inside the new range: it must not restore
    # the old, open allowlist in the cache.
    await auth.session(who, client_ip="192.0.2.1")
    assert denied(await auth.authorize(grant, "10.0.0.5")) == pb.DENY_REASON_NOT_ALLOWED_NETWORK


async def test_control_characters_in_names_are_refused_cleanly(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    for tenant, username in (
        (who.tenant.slug, "alice\x00"),
        (who.tenant.slug + "\x00", "alice"),
        (who.tenant.slug, "ali\nce"),
    ):
        response = await auth.stub.Login(
            pb.LoginRequest(
                tenant=tenant, username=username, password=who.password, client_ip="127.0.0.1"
            )
        )
        assert response.failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS
    grant = await auth.session(who)
    denial = await auth.stub.Authorize(
        pb.AuthorizeRequest(
            link_token=grant.link_token,
            cookie_secret="wrong" * 9,
            client_ip="127.0.0.1",
            method="G\x00ET",
            path="/s/x/\x00\r\n",
        )
    )
    assert denied(denial) == pb.DENY_REASON_COOKIE_MISMATCH
    login_with_odd_agent = await auth.stub.Login(
        pb.LoginRequest(
            tenant=who.tenant.slug,
            username="alice",
            password=who.password,
            client_ip="127.0.0.1",
            user_agent="Mozilla\x00/5.0",
        )
    )
    allowed(await auth.authorize(login_with_odd_agent.session))


async def test_scoped_ipv6_is_not_a_client_address(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    code = await status_of(
        auth.stub.Login(
            pb.LoginRequest(
                tenant=who.tenant.slug,
                username="alice",
                password=who.password,
                client_ip="fe80::1%eth0",
            )
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_ipv6_failures_count_per_64(start_auth: object) -> None:
    auth: AuthClient = await start_auth(address_lockout_after_failures=3)  # type: ignore[operator]
    tenant = await auth.tenant()
    from tests.auth.harness import TenantUser

    users = [TenantUser(tenant, await auth.user(tenant, f"u{i}")) for i in range(3)]
    for i, user in enumerate(users):
        await auth.login(user, client_ip=f"2001:db8:1:2::{i + 1}", password="wrong wrong wrong")
    # A fresh address in the same /64 is locked too.
    answer = await auth.login(users[0], client_ip="2001:db8:1:2::99")
    assert answer.failure == pb.LOGIN_FAILURE_LOCKED


async def test_audit_details_that_jsonb_normalises_keep_the_chain_intact(
    auth: AuthClient,
) -> None:
    who = await auth.tenant_user()
    for details in ('{"amount": -0.0}', '{"big": 1e300, "n": 1.50}', '{"ü": "\\u00e4"}'):
        await auth.stub.RecordAuditEvent(
            pb.RecordAuditEventRequest(
                tenant_id=who.tenant_id, event="test.recorded", details_json=details
            )
        )
    verdict = await auth.stub.VerifyAuditChain(pb.VerifyAuditChainRequest(tenant_id=who.tenant_id))
    assert verdict.intact, verdict.problem
    for bad in ('{"x": "\\u0000"}', '{"x": 1e400}', '{"x": NaN}', "[" * 5000 + "]" * 5000):
        code = await status_of(
            auth.stub.RecordAuditEvent(
                pb.RecordAuditEventRequest(
                    tenant_id=who.tenant_id, event="test.recorded", details_json=bad
                )
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT, bad[:40]
    stored = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(
            tenant_id=who.tenant_id, filter=pb.AuditFilter(events=["test.recorded"])
        )
    )
    assert len(stored.events) == 3
    assert json.loads(stored.events[-1].details_json) == {"amount": 0.0}


async def test_locked_out_attempts_reach_the_tenants_own_log(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    for _ in range(11):
        await auth.login(who, password="wrong password, sorry")
    events = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(
            tenant_id=who.tenant_id, filter=pb.AuditFilter(events=["login.locked_out"])
        )
    )
    assert len(events.events) == 1
