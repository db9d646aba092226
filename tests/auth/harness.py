"""A real auth server on a free port, its databases, and factories for test data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.backing import free_port
from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_auth.config import AuthSettings
from tresor_auth.server import AuthServer
from tresor_common.grpc_tokens import BearerTokenInterceptor

SERVICE_TOKEN = "test-service-token-0123456789"
GATE_TOKEN = "test-gate-token-0123456789ab"
PASSWORD = "correct horse battery staple"


def channel(address: str, token: str | None = SERVICE_TOKEN) -> aio.Channel:
    interceptors: list[Any] = [BearerTokenInterceptor(token)] if token else []
    return aio.insecure_channel(address, interceptors=interceptors)


def settings_for(
    *, database_url: str, migration_url: str, redis_url: str, **overrides: Any
) -> AuthSettings:
    values: dict[str, Any] = {
        "environment": "development",
        "database_url": database_url,
        "migration_database_url": migration_url,
        "redis_url": redis_url,
        "redis_key_prefix": f"test:{uuid.uuid4().hex}:",
        "service_tokens": SERVICE_TOKEN,
        "gate_tokens": GATE_TOKEN,
        "listen": "127.0.0.1:0",
        # Cheap hashes keep the suite fast; production parameters are the defaults.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8 * 1024,
        "slowdown_step_seconds": 0.05,
        "slowdown_max_seconds": 0.2,
    }
    values.update(overrides)
    return AuthSettings(**values)


@dataclass
class TenantUser:
    tenant: pb.Tenant
    user: pb.User
    password: str = PASSWORD

    @property
    def tenant_id(self) -> str:
        return self.tenant.id

    @property
    def user_id(self) -> str:
        return self.user.id


@dataclass
class AuthClient:
    """A stub plus factories; every helper goes through the real gRPC API."""

    stub: auth_pb2_grpc.AuthServiceAsyncStub
    address: str
    settings: AuthSettings
    # The in-process server behind the stub, when a test needs to stop it.
    server: AuthServer | None = None

    async def tenant(self, slug: str | None = None, **settings: Any) -> pb.Tenant:
        slug = slug or f"t-{uuid.uuid4().hex[:12]}"
        return await self.stub.CreateTenant(
            pb.CreateTenantRequest(
                slug=slug, display_name=slug.upper(), settings=pb.TenantSettings(**settings)
            )
        )

    async def user(
        self,
        tenant: pb.Tenant,
        username: str = "alice",
        *,
        roles: tuple[pb.Role.ValueType, ...] = (pb.ROLE_USER,),
        allowlist: tuple[str, ...] = (),
        password: str = PASSWORD,
    ) -> pb.User:
        return await self.stub.CreateUser(
            pb.CreateUserRequest(
                tenant_id=tenant.id,
                username=username,
                display_name=username.title(),
                password=password,
                roles=list(roles),
                allowlist=list(allowlist),
            )
        )

    async def tenant_user(self, **settings: Any) -> TenantUser:
        tenant = await self.tenant(**settings)
        return TenantUser(tenant, await self.user(tenant))

    async def login(
        self, who: TenantUser, client_ip: str = "127.0.0.1", password: str | None = None
    ) -> pb.LoginResponse:
        return await self.stub.Login(
            pb.LoginRequest(
                tenant=who.tenant.slug,
                username=who.user.username,
                password=password if password is not None else who.password,
                client_ip=client_ip,
            )
        )

    async def session(self, who: TenantUser, client_ip: str = "127.0.0.1") -> pb.SessionGrant:
        response = await self.login(who, client_ip)
        assert response.WhichOneof("result") == "session", response
        return response.session

    async def authorize(
        self,
        grant: pb.SessionGrant,
        client_ip: str = "127.0.0.1",
        *,
        link_token: str | None = None,
        cookie_secret: str | None = None,
        path: str = "/s/x/contacts",
    ) -> pb.AuthorizeResponse:
        return await self.stub.Authorize(
            pb.AuthorizeRequest(
                link_token=grant.link_token if link_token is None else link_token,
                cookie_secret=grant.cookie_secret if cookie_secret is None else cookie_secret,
                client_ip=client_ip,
                method="GET",
                path=path,
            )
        )


def denied(response: pb.AuthorizeResponse) -> int:
    """The deny reason; fails the test if the response was an allow."""
    assert response.WhichOneof("result") == "denied", f"expected a denial, got {response}"
    return response.denied


def allowed(response: pb.AuthorizeResponse) -> pb.Identity:
    assert response.WhichOneof("result") == "identity", f"expected an allow, got {response}"
    return response.identity


async def status_of(call: Awaitable[Any]) -> grpc.StatusCode:
    try:
        await call
    except aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def settings_env(settings: AuthSettings) -> dict[str, str]:
    """The same settings as TRESOR_AUTH_* variables, for a server in its own process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TRESOR_AUTH_{name.upper()}"] = str(value)
    return env


class AuthProcess:
    """`python -m tresor_auth` in a process of its own, as it runs in production."""

    def __init__(self, settings: AuthSettings) -> None:
        self.port = free_port()
        env = {**os.environ, **settings_env(settings)}
        env["TRESOR_AUTH_LISTEN"] = f"127.0.0.1:{self.port}"
        env["TRESOR_AUTH_LOG_LEVEL"] = "WARNING"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tresor_auth"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def wait_serving(self, within_seconds: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_seconds
        async with aio.insecure_channel(self.address) as chan:
            stub = health_pb2_grpc.HealthStub(chan)
            while asyncio.get_running_loop().time() < deadline:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"auth process exited: {stderr[-2000:]}")
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError("auth process did not start serving")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
