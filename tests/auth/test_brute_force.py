"""Failed logins slow down, then lock; unknown users and wrong passwords look alike."""

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.auth.harness import AuthClient, TenantUser
from tresor.auth.v1 import auth_pb2 as pb
from tresor_auth.passwords import Passwords


async def _fail(auth: AuthClient, who: TenantUser, ip: str = "127.0.0.1") -> pb.LoginResponse:
    return await auth.login(who, client_ip=ip, password="wrong password, sorry")


async def test_account_locks_after_ten_failures(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    for _ in range(10):
        assert (await _fail(auth, who)).failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS

    locked = await auth.login(who)  # the right password, too late
    assert locked.failure == pb.LOGIN_FAILURE_LOCKED
    assert 0 < locked.retry_after_seconds <= 15 * 60
    # From another address as well: the lock is on the account.
    assert (await auth.login(who, client_ip="192.0.2.9")).failure == pb.LOGIN_FAILURE_LOCKED


async def test_lock_ends_after_the_lockout_time(start_auth: Callable[..., Any]) -> None:
    auth: AuthClient = await start_auth(
        lockout_after_failures=3, slowdown_after_failures=3, lockout_seconds=1
    )
    who = await auth.tenant_user()
    for _ in range(3):
        await _fail(auth, who)
    assert (await auth.login(who)).failure == pb.LOGIN_FAILURE_LOCKED
    await asyncio.sleep(1.2)
    assert (await auth.login(who)).WhichOneof("result") == "session"


async def test_success_resets_the_count(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    for _ in range(9):
        await _fail(auth, who)
    assert (await auth.login(who)).WhichOneof("result") == "session"
    for _ in range(9):
        await _fail(auth, who)
    assert (await auth.login(who)).WhichOneof("result") == "session"


async def test_answers_slow_down_after_five_failures(start_auth: Callable[..., Any]) -> None:
    auth: AuthClient = await start_auth(slowdown_step_seconds=0.4, slowdown_max_seconds=2)
    who = await auth.tenant_user()
    for _ in range(5):
        await _fail(auth, who)
    started = time.monotonic()
    await _fail(auth, who)
    # A lower bound on a deliberate delay, not a speed measurement.
    assert time.monotonic() - started >= 0.4


async def test_many_failures_from_one_address_block_that_address(
    start_auth: Callable[..., Any],
) -> None:
    auth: AuthClient = await start_auth(address_lockout_after_failures=4, slowdown_step_seconds=0)
    tenant = await auth.tenant()
    victims = [TenantUser(tenant, await auth.user(tenant, f"user{i}")) for i in range(4)]
    for victim in victims:
        await _fail(auth, victim, ip="203.0.113.66")
    # Every account is now refused from that address, but not from elsewhere.
    assert (await auth.login(victims[0], "203.0.113.66")).failure == pb.LOGIN_FAILURE_LOCKED
    assert (await auth.login(victims[0], "198.51.100.1")).WhichOneof("result") == "session"


async def test_unknown_user_and_wrong_password_get_the_same_answer(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    wrong_password = await _fail(auth, who)
    unknown_user = await auth.stub.Login(
        pb.LoginRequest(
            tenant=who.tenant.slug, username="nobody", password="whatever", client_ip="127.0.0.1"
        )
    )
    unknown_tenant = await auth.stub.Login(
        pb.LoginRequest(
            tenant="no-such-tenant", username="alice", password="whatever", client_ip="127.0.0.1"
        )
    )
    assert wrong_password == unknown_user == unknown_tenant
    assert wrong_password.failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS


async def test_unknown_user_names_lock_like_known_ones(auth: AuthClient) -> None:
    """Otherwise the lock would tell an attacker which names exist."""
    tenant = await auth.tenant()
    ghost = pb.LoginRequest(
        tenant=tenant.slug, username="ghost", password="whatever", client_ip="127.0.0.1"
    )
    for _ in range(10):
        await auth.stub.Login(ghost)
    assert (await auth.stub.Login(ghost)).failure == pb.LOGIN_FAILURE_LOCKED


def test_unknown_user_costs_a_real_hash() -> None:
    """The dummy hash is verified with the same parameters as a real one.

    Checked by the parameters Argon2 reads from each hash, not by a stopwatch.
    """
    passwords = Passwords(time_cost=2, memory_kib=16 * 1024, parallelism=1, min_length=12)
    real = passwords.hash("a real password 123")
    assert passwords.verify(real, "a real password 123")
    assert not passwords.verify(None, "a real password 123")
    assert not passwords.verify(real, "wrong")
    dummy = passwords._dummy_hash
    assert dummy.split("$")[:4] == real.split("$")[:4]  # algorithm, version, m/t/p


async def test_old_hash_parameters_are_upgraded_at_login(
    start_auth: Callable[..., Any],
) -> None:
    old = await start_auth(argon2_time_cost=1, argon2_memory_kib=8 * 1024)
    who = await old.tenant_user()
    new = await start_auth(argon2_time_cost=2, argon2_memory_kib=9 * 1024)
    assert (await new.login(who)).WhichOneof("result") == "session"
    import psycopg

    with psycopg.connect(str(new.settings.migration_database_url)) as conn:
        row = conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (who.user_id,)
        ).fetchone()
    assert row is not None
    assert "m=9216,t=2" in row[0]
    # And the upgraded hash still opens the door.
    assert (await new.login(who)).WhichOneof("result") == "session"
