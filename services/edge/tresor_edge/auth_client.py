"""The gate's one long-lived gRPC channel to auth, with a deadline on every call.

Any failure to get an answer (down, slow, refused) becomes AuthUnavailable,
which every caller treats as a denial.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc import aio

from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_common.grpc_tokens import BearerTokenInterceptor

log = logging.getLogger(__name__)


class AuthUnavailable(Exception):
    """Auth gave no usable answer in time."""


class GateAuthClient:
    def __init__(self, address: str, token: str, deadline_seconds: float) -> None:
        self._address = address
        self._token = token
        self._deadline = deadline_seconds
        self._channel: aio.Channel | None = None
        self._stub_instance: auth_pb2_grpc.AuthServiceAsyncStub | None = None

    @property
    def _stub(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        """Made on first use, so that the channel belongs to the serving event loop."""
        if self._stub_instance is None:
            interceptors: list[Any] = [BearerTokenInterceptor(self._token)]
            self._channel = aio.insecure_channel(
                self._address,
                interceptors=interceptors,
                options=[("grpc.keepalive_time_ms", 30_000)],
            )
            self._stub_instance = auth_pb2_grpc.AuthServiceStub(self._channel)
        return self._stub_instance

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)

    async def authorize(self, request: pb.AuthorizeRequest) -> pb.AuthorizeResponse:
        try:
            return await self._stub.Authorize(request, timeout=self._deadline)
        except aio.AioRpcError as exc:
            raise AuthUnavailable(_describe(exc)) from exc

    async def login(self, request: pb.LoginRequest) -> pb.LoginResponse:
        try:
            # Argon2 and a deliberate slow-down take time: a longer deadline for logins.
            return await self._stub.Login(request, timeout=self._deadline + 10)
        except aio.AioRpcError as exc:
            raise AuthUnavailable(_describe(exc)) from exc

    async def logout(self, request: pb.LogoutRequest) -> pb.LogoutResponse:
        try:
            return await self._stub.Logout(request, timeout=self._deadline)
        except aio.AioRpcError as exc:
            raise AuthUnavailable(_describe(exc)) from exc


def _describe(exc: aio.AioRpcError) -> str:
    code: grpc.StatusCode = exc.code()
    return code.name
