"""gRPC plumbing every service shares: the server with health, reflection and service
tokens, and one translation of domain errors into status codes."""

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from tresor_common.grpc_tokens import ServiceTokenInterceptor

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Context = aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Req, Context], Awaitable[Resp]]
MAX_DETAILS = 1000


@dataclass
class StartedServer:
    server: aio.Server
    port: int
    health: HealthServicer


async def start_grpc_server(
    *,
    service_names: Sequence[str],
    add_servicers: Callable[[aio.Server], None],
    tokens: Mapping[str, Collection[str] | None] | Sequence[str],
    address: str,
) -> StartedServer:
    """Build, bind and start a server; health answers SERVING once it listens.

    `address` with port 0 picks a free port (tests).
    """
    server = aio.server(
        interceptors=[ServiceTokenInterceptor(tokens)],
        options=[("grpc.so_reuseport", 0)],
    )
    add_servicers(server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return StartedServer(server, port, health_servicer)


class StatusTranslator:
    """Our own error types become their status code (the message is safe to show);
    anything else is logged and answered INTERNAL without details.

    Use it as the decorator of unary handlers, and call `abort` from streaming ones.
    """

    def __init__(
        self, statuses: Mapping[type[Exception], grpc.StatusCode], log: logging.Logger
    ) -> None:
        self._statuses = statuses
        self._log = log

    def status_of(self, exc: Exception) -> grpc.StatusCode | None:
        for kind in type(exc).__mro__:
            if kind in self._statuses:
                return self._statuses[kind]
        return None

    async def abort(self, context: Context, exc: Exception, rpc: str) -> NoReturn:
        status = self.status_of(exc)
        if status is not None:
            if status is grpc.StatusCode.UNAVAILABLE:
                self._log.warning("backing service unavailable", extra={"rpc": rpc})
            # Status details travel in a trailer: a message echoing huge input must not
            # turn a clear refusal into RESOURCE_EXHAUSTED.
            await context.abort(status, str(exc)[:MAX_DETAILS])
        self._log.exception("unexpected error", extra={"rpc": rpc})
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def __call__(self, handler: Handler[Req, Resp]) -> Handler[Req, Resp]:
        async def wrapper(self_: Any, request: Req, context: Context) -> Resp:
            try:
                return await handler(self_, request, context)
            except aio.AbortError:
                raise
            except Exception as exc:
                await self.abort(context, exc, handler.__name__)

        wrapper.__name__ = handler.__name__
        return wrapper
