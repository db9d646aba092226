"""When Redis or PostgreSQL cannot be reached, nobody gets in: UNAVAILABLE, never an allow."""

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from tests.auth.harness import AuthClient, allowed, status_of
from tests.backing import PrivateRedis, TcpProxy, free_port
from tresor.auth.v1 import auth_pb2 as pb


async def test_redis_stopped_during_a_session(start_auth: Callable[..., Any]) -> None:
    private = PrivateRedis()
    try:
        auth: AuthClient = await start_auth(redis_url=private.url, redis_timeout_seconds=0.5)
        who = await auth.tenant_user()
        grant = await auth.session(who)
        allowed(await auth.authorize(grant))

        private.stop()

        assert await status_of(auth.authorize(grant)) == grpc.StatusCode.UNAVAILABLE
        assert await status_of(auth.login(who)) == grpc.StatusCode.UNAVAILABLE
        logout = auth.stub.Logout(
            pb.LogoutRequest(
                link_token=grant.link_token,
                cookie_secret=grant.cookie_secret,
                client_ip="127.0.0.1",
            )
        )
        assert await status_of(logout) == grpc.StatusCode.UNAVAILABLE
    finally:
        private.stop()


async def test_unreachable_redis_url(start_auth: Callable[..., Any]) -> None:
    auth: AuthClient = await start_auth(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout_seconds=0.5
    )
    who = await auth.tenant_user()  # admin calls need only PostgreSQL...
    assert await status_of(auth.login(who)) == grpc.StatusCode.UNAVAILABLE
    code = await status_of(
        auth.stub.Authorize(
            pb.AuthorizeRequest(
                link_token="A" * 32, cookie_secret="B" * 43, client_ip="127.0.0.1", path="/s/"
            )
        )
    )
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_database_unreachable_during_a_session(
    start_auth: Callable[..., Any], make_settings: Callable[..., Any]
) -> None:
    proxy = TcpProxy(make_settings().database_url)
    await proxy.start()
    auth: AuthClient = await start_auth(
        database_url=proxy.url, database_timeout_seconds=0.5, database_heartbeat_seconds=0.2
    )
    who = await auth.tenant_user()
    grant = await auth.session(who)
    allowed(await auth.authorize(grant))

    await proxy.cut()
    await asyncio.sleep(1.0)  # a few missed heartbeats

    assert await status_of(auth.authorize(grant)) == grpc.StatusCode.UNAVAILABLE
    assert await status_of(auth.login(who)) == grpc.StatusCode.UNAVAILABLE


async def test_database_unreachable_from_the_start(start_auth: Callable[..., Any]) -> None:
    auth: AuthClient = await start_auth(
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/auth",
        database_timeout_seconds=0.5,
        database_heartbeat_seconds=0.2,
    )
    login = auth.stub.Login(
        pb.LoginRequest(tenant="acme", username="alice", password="x" * 12, client_ip="127.0.0.1")
    )
    assert await status_of(login) == grpc.StatusCode.UNAVAILABLE
    authorize = auth.stub.Authorize(
        pb.AuthorizeRequest(link_token="A" * 32, cookie_secret="B" * 43, client_ip="127.0.0.1")
    )
    assert await status_of(authorize) == grpc.StatusCode.UNAVAILABLE
