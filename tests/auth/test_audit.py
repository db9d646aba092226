"""The audit log: every security event written, hash-chained, append-only, verifiable."""

import asyncio
import json

import grpc
import psycopg
import pytest

from tests.auth.harness import AuthClient, TenantUser, denied, status_of
from tresor.auth.v1 import auth_pb2 as pb


async def _events(auth: AuthClient, tenant_id: str, *names: str) -> list[pb.AuditEvent]:
    response = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(
            tenant_id=tenant_id, filter=pb.AuditFilter(events=list(names)), page_size=500
        )
    )
    return list(response.events)


async def _verify(auth: AuthClient, tenant_id: str) -> pb.VerifyAuditChainResponse:
    return await auth.stub.VerifyAuditChain(pb.VerifyAuditChainRequest(tenant_id=tenant_id))


def _owner(auth: AuthClient) -> psycopg.Connection:
    return psycopg.connect(str(auth.settings.migration_database_url), autocommit=True)


async def _busy_tenant(auth: AuthClient) -> TenantUser:
    """A tenant with a real mix of events in its log."""
    who = await auth.tenant_user(idle_timeout_seconds=1, absolute_lifetime_seconds=60)
    grant = await auth.session(who)
    await auth.authorize(grant)
    await auth.authorize(grant, "127.0.0.2")
    await auth.login(who, password="wrong password!")
    await auth.stub.SetAllowlist(
        pb.SetAllowlistRequest(tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["::/0"])
    )
    await auth.stub.Logout(
        pb.LogoutRequest(
            link_token=grant.link_token, cookie_secret=grant.cookie_secret, client_ip="127.0.0.1"
        )
    )
    return who


async def test_every_security_event_is_written(auth: AuthClient) -> None:
    who = await auth.tenant_user(idle_timeout_seconds=1, absolute_lifetime_seconds=60)
    grant = await auth.session(who, "192.0.2.5")
    assert denied(await auth.authorize(grant, "192.0.2.6", path=f"/s/{grant.link_token}/x"))
    await auth.login(who, password="wrong password!")
    await asyncio.sleep(1.1)
    assert denied(await auth.authorize(grant, "192.0.2.5")) == pb.DENY_REASON_EXPIRED
    second = await auth.session(who)
    await auth.stub.Logout(
        pb.LogoutRequest(
            link_token=second.link_token, cookie_secret=second.cookie_secret, client_ip="127.0.0.1"
        )
    )
    await auth.stub.DisableUser(pb.DisableUserRequest(tenant_id=who.tenant_id, user_id=who.user_id))
    for _ in range(10):
        await auth.login(who, password="wrong password!")

    names = [e.event for e in reversed(await _events(auth, who.tenant_id))]
    for expected in (
        "tenant.created",
        "user.created",
        "login.succeeded",
        "authorize.denied",
        "login.failed",
        "session.expired",
        "logout",
        "user.disabled",
        "session.revoked_all",
        "login.lockout_started",
    ):
        assert expected in names, f"{expected} missing from {names}"

    denial = (await _events(auth, who.tenant_id, "authorize.denied"))[0]
    details = json.loads(denial.details_json)
    assert details["reason"] == "ip_mismatch"
    assert details["path"] == "/s/[link]/x"  # the link token is never written
    assert denial.client_ip == "192.0.2.6"
    failed = (await _events(auth, who.tenant_id, "login.failed"))[-1]
    assert json.loads(failed.details_json)["reason"] == "wrong_password"


async def test_locked_out_attempts_and_unknown_tenants_go_to_the_platform_log(
    auth: AuthClient,
) -> None:
    await auth.stub.Login(
        pb.LoginRequest(tenant="nope", username="x", password="y", client_ip="198.51.100.4")
    )
    platform = "00000000-0000-0000-0000-000000000000"
    events = await _events(auth, platform, "login.failed")
    assert [json.loads(e.details_json)["reason"] for e in events] == ["unknown_user"]
    assert (await _verify(auth, platform)).intact


async def test_chain_verifies_on_a_real_log(auth: AuthClient) -> None:
    who = await _busy_tenant(auth)
    verdict = await _verify(auth, who.tenant_id)
    assert verdict.intact, verdict.problem
    assert verdict.events_checked == 7


async def test_altered_row_is_detected(auth: AuthClient) -> None:
    who = await _busy_tenant(auth)
    with _owner(auth) as conn:
        # The trigger refuses changes even to the owner; an attacker with superuser
        # rights would disable it first, as here.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """UPDATE audit_events SET client_ip = '10.9.9.9'
               WHERE chain_id = %s AND event = 'login.failed'""",
            (who.tenant_id,),
        )
    verdict = await _verify(auth, who.tenant_id)
    assert not verdict.intact
    assert verdict.problem == "content does not match its hash"
    assert verdict.first_bad_seq > 1


async def test_deleted_row_is_detected(auth: AuthClient) -> None:
    who = await _busy_tenant(auth)
    with _owner(auth) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_events WHERE chain_id = %s AND seq = 3", (who.tenant_id,))
    verdict = await _verify(auth, who.tenant_id)
    assert not verdict.intact
    assert verdict.first_bad_seq == 3
    assert "missing" in verdict.problem


async def test_deleted_last_row_is_detected(auth: AuthClient) -> None:
    who = await _busy_tenant(auth)
    with _owner(auth) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            """DELETE FROM audit_events WHERE chain_id = %s
               AND seq = (SELECT max(seq) FROM audit_events WHERE chain_id = %s)""",
            (who.tenant_id, who.tenant_id),
        )
    verdict = await _verify(auth, who.tenant_id)
    assert not verdict.intact
    assert "chain head" in verdict.problem


async def test_recomputed_row_breaks_the_link_to_its_successor(auth: AuthClient) -> None:
    """Rewriting a row together with its own hash still breaks the next row's link."""
    who = await _busy_tenant(auth)
    with _owner(auth) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "UPDATE audit_events SET hash = sha256(hash) WHERE chain_id = %s AND seq = 2",
            (who.tenant_id,),
        )
    verdict = await _verify(auth, who.tenant_id)
    assert not verdict.intact
    assert verdict.first_bad_seq == 2


async def test_the_service_role_cannot_change_or_remove_events(auth: AuthClient) -> None:
    who = await _busy_tenant(auth)
    with psycopg.connect(auth.settings.database_url, autocommit=True) as conn:
        for statement in (
            "UPDATE audit_events SET event = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement.encode())
    # Not even the owner, while the trigger stands.
    with _owner(auth) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("DELETE FROM audit_events")
    assert (await _verify(auth, who.tenant_id)).intact


async def test_list_pages_through_the_log_newest_first(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    for _ in range(7):
        await auth.login(who, password="wrong password!")
    seen: list[int] = []
    token = ""
    while True:
        page = await auth.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id=who.tenant_id, page_size=3, page_token=token)
        )
        seen += [e.seq for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen, reverse=True)
    assert seen == list(range(len(seen), 0, -1))  # every event once, none skipped
    assert len(seen) == 2 + 7  # tenant.created, user.created, 7 failures


async def test_filter_by_user(auth: AuthClient) -> None:
    tenant = await auth.tenant()
    alice = TenantUser(tenant, await auth.user(tenant, "alice"))
    bob = TenantUser(tenant, await auth.user(tenant, "bob"))
    await auth.session(alice)
    await auth.session(bob)
    response = await auth.stub.ListAuditEvents(
        pb.ListAuditEventsRequest(tenant_id=tenant.id, filter=pb.AuditFilter(user_id=bob.user_id))
    )
    assert {e.event for e in response.events} == {"user.created", "login.succeeded"}
    assert all(bob.user_id in (e.subject_user_id, e.actor_user_id) for e in response.events)


async def test_concurrent_writers_keep_one_unbroken_chain(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    await asyncio.gather(*(auth.login(who, password="wrong password!") for _ in range(20)))
    verdict = await _verify(auth, who.tenant_id)
    assert verdict.intact, verdict.problem
    assert verdict.events_checked >= 22


async def test_other_services_add_events_to_the_tenants_chain(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    response = await auth.stub.RecordAuditEvent(
        pb.RecordAuditEventRequest(
            tenant_id=who.tenant_id,
            event="document.downloaded",
            actor_user_id=who.user_id,
            client_ip="192.0.2.7",
            details_json='{"document_id": "d1", "filename": "Vertrag.pdf"}',
        )
    )
    assert response.seq > 0
    events = await _events(auth, who.tenant_id, "document.downloaded")
    assert [json.loads(e.details_json)["filename"] for e in events] == ["Vertrag.pdf"]
    assert events[0].actor_user_id == who.user_id
    assert (await _verify(auth, who.tenant_id)).intact


@pytest.mark.parametrize(
    ("event", "details"),
    [
        ("Document Downloaded", "{}"),
        ("x", "{}"),
        ("document.downloaded", "[1, 2]"),
        ("document.downloaded", "{not json"),
        ("document.downloaded", '{"a": "' + "x" * 20000 + '"}'),
    ],
)
async def test_bad_service_events_are_refused(auth: AuthClient, event: str, details: str) -> None:
    who = await auth.tenant_user()
    code = await status_of(
        auth.stub.RecordAuditEvent(
            pb.RecordAuditEventRequest(tenant_id=who.tenant_id, event=event, details_json=details)
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
