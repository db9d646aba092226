"""Service tokens for gRPC: internal callers present `authorization: Bearer <token>`."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any

import grpc
from grpc import aio

# Health checks and reflection answer without a token, as probes expect.
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServiceTokenInterceptor(aio.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses every call that does not carry an accepted token for that method.

    `tokens` maps each token to the full method names it may call, or to None for
    every method (a plain list: every method): the internet-facing gate, say, gets
    only what it needs.
    """

    def __init__(self, tokens: Mapping[str, Collection[str] | None] | Sequence[str]) -> None:
        if not tokens or any(len(token) < 16 for token in tokens):
            raise ValueError("service tokens must be at least 16 characters")
        if not isinstance(tokens, Mapping):
            tokens = dict.fromkeys(tokens)
        self._tokens = [
            (token.encode(), frozenset(methods) if methods is not None else None)
            for token, methods in tokens.items()
        ]

    def _accepted(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> bool:
        for key, value in metadata:
            if key != "authorization":
                continue
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, presented = text.partition(" ")
            if scheme.lower() != "bearer":
                return False
            candidate = presented.strip().encode()
            # Compare against every token so timing does not tell which matched.
            allowed = False
            for token, methods in self._tokens:
                if hmac.compare_digest(candidate, token) and (methods is None or method in methods):
                    allowed = True
            return allowed
        return False

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method or ""
        if method.startswith(OPEN_SERVICES):
            return await continuation(handler_call_details)
        if self._accepted(method, handler_call_details.invocation_metadata or ()):
            return await continuation(handler_call_details)
        return _deny_handler()


def _deny_handler() -> grpc.RpcMethodHandler[Any, Any]:
    async def deny(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong service token")

    return grpc.unary_unary_rpc_method_handler(deny)


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


class BearerTokenInterceptor(aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Client side: adds the caller's service token to every unary call."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = aio.Metadata(*(tuple(client_call_details.metadata or ()) + self._metadata))
        details = aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request)
