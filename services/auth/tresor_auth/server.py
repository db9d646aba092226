"""Wiring: build the auth server from settings and return it. No rules here."""

import logging
from dataclasses import dataclass
from pathlib import Path

from grpc import aio
from grpc_health.v1._async import HealthServicer

from tresor.auth.v1 import auth_pb2, auth_pb2_grpc
from tresor_auth.accounts import AccountService, PlatformLimits
from tresor_auth.config import AuthSettings
from tresor_auth.passwords import Passwords
from tresor_auth.pg_store import AuthDatabase
from tresor_auth.redis_store import SessionStore
from tresor_auth.servicer import AuthServicer
from tresor_auth.sessions import SessionService
from tresor_auth.throttle import ThrottlePolicy
from tresor_common.grpc_server import start_grpc_server
from tresor_common.migrations import apply_migrations

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
# All the internet-facing gate may call.
GATE_METHODS = frozenset(f"/{SERVICE_NAME}/{name}" for name in ("Login", "Authorize", "Logout"))


@dataclass
class AuthServer:
    server: aio.Server
    port: int
    database: AuthDatabase
    store: SessionStore
    health: HealthServicer
    stopped: bool = False

    async def stop(self, grace: float | None = 5.0) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.store.close()
        await self.database.close()


def migrate(settings: AuthSettings) -> list[str]:
    return apply_migrations(settings.migration_url, MIGRATIONS)


async def create_server(settings: AuthSettings, address: str | None = None) -> AuthServer:
    """Build and start the server; `address` with port 0 picks a free port (tests)."""
    passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        min_length=settings.password_min_length,
    )
    database = await AuthDatabase.open(
        settings.database_url,
        size=settings.database_pool_size,
        timeout_seconds=settings.database_timeout_seconds,
        heartbeat_seconds=settings.database_heartbeat_seconds,
    )
    store = SessionStore.connect(
        settings.redis_url,
        prefix=settings.redis_key_prefix,
        remember_seconds=settings.expired_memory_seconds,
        longest_session_seconds=settings.max_absolute_lifetime_seconds,
        timeout_seconds=settings.redis_timeout_seconds,
    )
    throttle = ThrottlePolicy(
        slowdown_after=settings.slowdown_after_failures,
        slowdown_step_seconds=settings.slowdown_step_seconds,
        slowdown_max_seconds=settings.slowdown_max_seconds,
        lockout_after=settings.lockout_after_failures,
        lockout_seconds=settings.lockout_seconds,
        address_lockout_after=settings.address_lockout_after_failures,
    )
    sessions = SessionService(
        database=database,
        store=store,
        passwords=passwords,
        throttle=throttle,
        slide_granularity_seconds=settings.idle_slide_granularity_seconds,
    )
    accounts = AccountService(
        database=database,
        store=store,
        passwords=passwords,
        sessions=sessions,
        limits=PlatformLimits(
            default_idle_timeout_seconds=settings.idle_timeout_seconds,
            default_absolute_lifetime_seconds=settings.absolute_lifetime_seconds,
            max_idle_timeout_seconds=settings.max_idle_timeout_seconds,
            max_absolute_lifetime_seconds=settings.max_absolute_lifetime_seconds,
            default_max_sessions_per_user=settings.max_sessions_per_user,
        ),
    )

    tokens: dict[str, frozenset[str] | None] = dict.fromkeys(settings.tokens())
    tokens.update(dict.fromkeys(settings.gate_token_list(), GATE_METHODS))
    started = await start_grpc_server(
        service_names=[SERVICE_NAME],
        add_servicers=lambda server: auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(sessions, accounts), server
        ),
        tokens=tokens,
        address=address or settings.listen,
    )
    port = started.port
    log.info("auth service listening", extra={"port": port})
    return AuthServer(started.server, port, database, store, started.health)
