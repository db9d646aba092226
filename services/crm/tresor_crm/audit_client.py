"""The tenant's audit log, kept by the auth service: RecordAuditEvent over gRPC.

Audited actions fail closed: when auth cannot be reached in time, or refuses the
event, the action is refused with 503 (`Unavailable`) before anything is sent.
One long-lived channel per process, created lazily inside the running event loop
(a grpc.aio channel belongs to the loop it was made in); a deadline on every call.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import grpc
from fastapi import Request
from grpc import aio

from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_common.grpc_tokens import BearerTokenInterceptor
from tresor_crm.config import CrmSettings
from tresor_crm.errors import Unavailable

log = logging.getLogger("tresor_crm.audit")


class AuditLog:
    def __init__(self, address: str, token: str | None, timeout_seconds: float) -> None:
        self._address = address
        self._token = token
        self._timeout = timeout_seconds
        self._channel: aio.Channel | None = None
        self._stub: auth_pb2_grpc.AuthServiceAsyncStub | None = None

    @classmethod
    def from_settings(cls, settings: CrmSettings) -> AuditLog:
        token = settings.auth_service_token
        return cls(
            settings.auth_address,
            token.get_secret_value() if token is not None else None,
            settings.auth_timeout_seconds,
        )

    def _ensure_stub(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        if self._stub is None:
            assert self._token is not None
            interceptors: list[Any] = [BearerTokenInterceptor(self._token)]
            self._channel = aio.insecure_channel(
                self._address,
                interceptors=interceptors,
                options=[("grpc.keepalive_time_ms", 30_000)],
            )
            self._stub = auth_pb2_grpc.AuthServiceStub(self._channel)
        assert self._stub is not None
        return self._stub

    async def record(
        self,
        *,
        tenant_id: uuid.UUID,
        event: str,
        actor_user_id: uuid.UUID | None,
        client_ip: str | None,
        details: Mapping[str, Any],
    ) -> int:
        """Appends one event to the tenant's chain; raises Unavailable if it was not written."""
        if self._token is None:
            raise Unavailable("the audit log is not configured; this action is refused")
        request = pb.RecordAuditEventRequest(
            tenant_id=str(tenant_id),
            event=event,
            actor_user_id=str(actor_user_id) if actor_user_id else "",
            client_ip=client_ip or "",
            details_json=json.dumps(dict(details), default=str),
        )
        try:
            response = await self._ensure_stub().RecordAuditEvent(request, timeout=self._timeout)
        except aio.AioRpcError as exc:
            log.warning("audit event not written", extra={"event": event, "code": exc.code().name})
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable("the audit log is unavailable; try again shortly") from None
            raise Unavailable("the audit log refused the event; this action is refused") from None
        return int(response.seq)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)
        self._channel = None
        self._stub = None


def audit_log(request: Request) -> AuditLog:
    """The app's audit client, made on first use (FastAPI dependency)."""
    state = request.app.state
    existing: AuditLog | None = getattr(state, "audit_log", None)
    if existing is None:
        existing = AuditLog.from_settings(state.settings)
        state.audit_log = existing
    return existing


def client_ip(request: Request) -> str | None:
    """The address Traefik saw: the rightmost X-Forwarded-For entry it appended, else the peer."""
    forwarded = request.headers.get("x-forwarded-for", "")
    candidate = forwarded.rsplit(",", 1)[-1].strip() if forwarded else ""
    if not candidate and request.client is not None:
        candidate = request.client.host
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
