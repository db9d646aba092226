"""gRPC servicer: request to domain call, result or error to response, nothing more."""

import base64
import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_auth import errors
from tresor_auth.accounts import AccountService, Actor, PolicyChange, parse_uuid
from tresor_auth.audit import PLATFORM_CHAIN, StoredAuditEvent
from tresor_auth.models import AuditQuery, NewSession, Role, Session, Tenant, User
from tresor_auth.networks import IpBinding
from tresor_auth.sessions import Allowed, DenyReason, LoginFailure, LoginRefused, SessionService
from tresor_common.grpc_server import Context, StatusTranslator

log = logging.getLogger(__name__)

_STATUS: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
}

_ROLE_TO_PB = {Role.ADMIN: pb.ROLE_ADMIN, Role.USER: pb.ROLE_USER}
_ROLE_FROM_PB = {pb.ROLE_ADMIN: Role.ADMIN, pb.ROLE_USER: Role.USER}
_BINDING_TO_PB = {
    IpBinding.STRICT: pb.IP_BINDING_STRICT,
    IpBinding.NETWORK: pb.IP_BINDING_NETWORK,
    IpBinding.LOG: pb.IP_BINDING_LOG,
}
_BINDING_FROM_PB = {value: key for key, value in _BINDING_TO_PB.items()}
_DENY_TO_PB = {
    DenyReason.UNKNOWN: pb.DENY_REASON_UNKNOWN,
    DenyReason.EXPIRED: pb.DENY_REASON_EXPIRED,
    DenyReason.IP_MISMATCH: pb.DENY_REASON_IP_MISMATCH,
    DenyReason.COOKIE_MISMATCH: pb.DENY_REASON_COOKIE_MISMATCH,
    DenyReason.NOT_ALLOWED_NETWORK: pb.DENY_REASON_NOT_ALLOWED_NETWORK,
    DenyReason.USER_DISABLED: pb.DENY_REASON_USER_DISABLED,
}
_LOGIN_FAILURE_TO_PB = {
    LoginFailure.INVALID_CREDENTIALS: pb.LOGIN_FAILURE_INVALID_CREDENTIALS,
    LoginFailure.LOCKED: pb.LOGIN_FAILURE_LOCKED,
}


translated = StatusTranslator(_STATUS, log)


def _timestamp(value: float | datetime) -> Timestamp:
    stamp = Timestamp()
    if isinstance(value, datetime):
        stamp.FromDatetime(value.astimezone(UTC))
    else:
        stamp.FromNanoseconds(int(value * 1e9))
    return stamp


def _actor(message: pb.Actor) -> Actor:
    if not message.user_id and not message.tenant_id:
        return Actor()
    if not message.user_id:
        raise errors.InvalidArgument("actor.user_id: missing")
    return Actor(
        tenant_id=parse_uuid(message.tenant_id, "actor.tenant_id"),
        user_id=parse_uuid(message.user_id, "actor.user_id"),
    )


def _roles_from_pb(values: Any) -> list[Role]:
    roles = []
    for value in values:
        if value not in _ROLE_FROM_PB:
            raise errors.InvalidArgument(f"roles: {value} is not a role")
        roles.append(_ROLE_FROM_PB[value])
    return roles


def _policy_change(settings: pb.TenantSettings) -> PolicyChange:
    binding = None
    if settings.ip_binding != pb.IP_BINDING_UNSPECIFIED:
        if settings.ip_binding not in _BINDING_FROM_PB:
            raise errors.InvalidArgument("settings.ip_binding: unknown value")
        binding = _BINDING_FROM_PB[settings.ip_binding]
    return PolicyChange(
        idle_timeout_seconds=settings.idle_timeout_seconds,
        absolute_lifetime_seconds=settings.absolute_lifetime_seconds,
        ip_binding=binding,
        max_sessions_per_user=settings.max_sessions_per_user,
        require_totp=settings.require_totp or None,
    )


def _tenant_pb(tenant: Tenant) -> pb.Tenant:
    return pb.Tenant(
        id=str(tenant.id),
        slug=tenant.slug,
        display_name=tenant.display_name,
        settings=pb.TenantSettings(
            idle_timeout_seconds=tenant.policy.idle_timeout_seconds,
            absolute_lifetime_seconds=tenant.policy.absolute_lifetime_seconds,
            ip_binding=_BINDING_TO_PB[tenant.policy.ip_binding],
            max_sessions_per_user=tenant.policy.max_sessions_per_user,
            require_totp=tenant.policy.require_totp,
        ),
        created_at=_timestamp(tenant.created_at),
    )


def _user_pb(user: User) -> pb.User:
    return pb.User(
        id=str(user.id),
        tenant_id=str(user.tenant_id),
        username=user.username,
        display_name=user.display_name,
        roles=[_ROLE_TO_PB[role] for role in user.roles],
        active=user.active,
        allowlist=[str(net) for net in user.allowlist],
        created_at=_timestamp(user.created_at),
        password_changed_at=_timestamp(user.password_changed_at),
    )


def _session_pb(session: Session) -> pb.SessionInfo:
    return pb.SessionInfo(
        session_id=session.id,
        tenant_id=str(session.tenant_id),
        user_id=str(session.user_id),
        username=session.username,
        client_ip=session.client_ip,
        user_agent=session.user_agent,
        created_at=_timestamp(session.created_at),
        last_seen_at=_timestamp(session.last_seen_at),
        absolute_expires_at=_timestamp(session.absolute_expires_at),
    )


def _event_pb(event: StoredAuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        seq=event.seq,
        tenant_id="" if event.chain_id == PLATFORM_CHAIN else str(event.chain_id),
        occurred_at=_timestamp(event.occurred_at),
        event=event.event,
        actor_user_id=str(event.actor_user_id or ""),
        subject_user_id=str(event.subject_user_id or ""),
        client_ip=event.client_ip or "",
        details_json=json.dumps(event.details, sort_keys=True),
        hash_hex=event.hash.hex(),
    )


def _page_token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _before_seq(token: str) -> int | None:
    if not token:
        return None
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "seq" and value.isdigit():
            return int(value)
    except (ValueError, UnicodeDecodeError):
        pass
    raise errors.InvalidArgument("page_token: not a token from a previous page")


def _tenant_id(value: str) -> uuid.UUID:
    return parse_uuid(value, "tenant_id")


def _user_id(value: str) -> uuid.UUID:
    return parse_uuid(value, "user_id")


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, sessions: SessionService, accounts: AccountService) -> None:
        self._sessions = sessions
        self._accounts = accounts

    # -- sessions ------------------------------------------------------------

    @translated
    async def Login(self, request: pb.LoginRequest, context: Context) -> pb.LoginResponse:
        result = await self._sessions.login(
            tenant=request.tenant,
            username=request.username,
            password=request.password,
            client_ip=request.client_ip,
            user_agent=request.user_agent,
        )
        if isinstance(result, LoginRefused):
            return pb.LoginResponse(
                failure=_LOGIN_FAILURE_TO_PB[result.failure],
                retry_after_seconds=result.retry_after_seconds,
            )
        return pb.LoginResponse(session=_grant(result))

    @translated
    async def Authorize(
        self, request: pb.AuthorizeRequest, context: Context
    ) -> pb.AuthorizeResponse:
        result = await self._sessions.authorize(
            link_token=request.link_token,
            cookie_secret=request.cookie_secret,
            client_ip=request.client_ip,
            method=request.method,
            path=request.path,
        )
        if not isinstance(result, Allowed):
            return pb.AuthorizeResponse(denied=_DENY_TO_PB[result.reason])
        session = result.session
        return pb.AuthorizeResponse(
            identity=pb.Identity(
                tenant_id=str(session.tenant_id),
                tenant_slug=session.tenant_slug,
                user_id=str(session.user_id),
                username=session.username,
                roles=[_ROLE_TO_PB[role] for role in result.roles],
                session_id=session.id,
                idle_expires_at=_timestamp(session.idle_expires_at),
                absolute_expires_at=_timestamp(session.absolute_expires_at),
            )
        )

    @translated
    async def Logout(self, request: pb.LogoutRequest, context: Context) -> pb.LogoutResponse:
        ended = await self._sessions.logout(
            link_token=request.link_token,
            cookie_secret=request.cookie_secret,
            client_ip=request.client_ip,
        )
        return pb.LogoutResponse(ended=ended)

    @translated
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: Context
    ) -> pb.ListSessionsResponse:
        tenant_id = _tenant_id(request.tenant_id)
        await self._accounts.check_actor(_actor(request.actor), tenant_id)
        user_id = _user_id(request.user_id) if request.user_id else None
        sessions = await self._sessions.list_sessions(tenant_id, user_id)
        return pb.ListSessionsResponse(sessions=[_session_pb(s) for s in sessions])

    @translated
    async def RevokeSession(
        self, request: pb.RevokeSessionRequest, context: Context
    ) -> pb.RevokeSessionResponse:
        tenant_id = _tenant_id(request.tenant_id)
        actor = _actor(request.actor)
        await self._accounts.check_actor(actor, tenant_id)
        ended = await self._sessions.revoke_session(
            tenant_id, request.session_id, actor_user_id=actor.user_id
        )
        return pb.RevokeSessionResponse(ended=ended)

    @translated
    async def RevokeUserSessions(
        self, request: pb.RevokeUserSessionsRequest, context: Context
    ) -> pb.RevokeUserSessionsResponse:
        tenant_id = _tenant_id(request.tenant_id)
        actor = _actor(request.actor)
        await self._accounts.check_actor(actor, tenant_id)
        ended = await self._sessions.revoke_user_sessions(
            tenant_id, _user_id(request.user_id), actor_user_id=actor.user_id, cause="revoked"
        )
        return pb.RevokeUserSessionsResponse(ended=ended)

    # -- tenants and users ---------------------------------------------------

    @translated
    async def CreateTenant(self, request: pb.CreateTenantRequest, context: Context) -> pb.Tenant:
        tenant = await self._accounts.create_tenant(
            _actor(request.actor),
            slug=request.slug,
            display_name=request.display_name,
            policy=_policy_change(request.settings),
        )
        return _tenant_pb(tenant)

    @translated
    async def UpdateTenant(self, request: pb.UpdateTenantRequest, context: Context) -> pb.Tenant:
        tenant = await self._accounts.update_tenant(
            _actor(request.actor),
            _tenant_id(request.tenant_id),
            display_name=request.display_name,
            policy=_policy_change(request.settings),
        )
        return _tenant_pb(tenant)

    @translated
    async def GetTenant(self, request: pb.GetTenantRequest, context: Context) -> pb.Tenant:
        actor = _actor(request.actor)
        if request.WhichOneof("key") == "slug":
            return _tenant_pb(await self._accounts.find_tenant(actor, request.slug))
        return _tenant_pb(await self._accounts.get_tenant(actor, _tenant_id(request.tenant_id)))

    @translated
    async def CreateUser(self, request: pb.CreateUserRequest, context: Context) -> pb.User:
        user = await self._accounts.create_user(
            _actor(request.actor),
            _tenant_id(request.tenant_id),
            username=request.username,
            display_name=request.display_name,
            password=request.password,
            roles=_roles_from_pb(request.roles),
            allowlist=list(request.allowlist),
        )
        return _user_pb(user)

    @translated
    async def UpdateUser(self, request: pb.UpdateUserRequest, context: Context) -> pb.User:
        user = await self._accounts.update_user(
            _actor(request.actor),
            _tenant_id(request.tenant_id),
            _user_id(request.user_id),
            display_name=request.display_name,
            roles=_roles_from_pb(request.roles),
            activate=request.activate,
        )
        return _user_pb(user)

    @translated
    async def GetUser(self, request: pb.GetUserRequest, context: Context) -> pb.User:
        user = await self._accounts.get_user(
            _actor(request.actor), _tenant_id(request.tenant_id), _user_id(request.user_id)
        )
        return _user_pb(user)

    @translated
    async def ListUsers(
        self, request: pb.ListUsersRequest, context: Context
    ) -> pb.ListUsersResponse:
        users = await self._accounts.list_users(
            _actor(request.actor), _tenant_id(request.tenant_id)
        )
        return pb.ListUsersResponse(users=[_user_pb(u) for u in users])

    @translated
    async def SetAllowlist(self, request: pb.SetAllowlistRequest, context: Context) -> pb.User:
        user = await self._accounts.set_allowlist(
            _actor(request.actor),
            _tenant_id(request.tenant_id),
            _user_id(request.user_id),
            list(request.allowlist),
        )
        return _user_pb(user)

    @translated
    async def ChangePassword(
        self, request: pb.ChangePasswordRequest, context: Context
    ) -> pb.ChangePasswordResponse:
        ended = await self._accounts.change_password(
            _actor(request.actor),
            _tenant_id(request.tenant_id),
            _user_id(request.user_id),
            request.new_password,
        )
        return pb.ChangePasswordResponse(sessions_ended=ended)

    @translated
    async def DisableUser(self, request: pb.DisableUserRequest, context: Context) -> pb.User:
        user = await self._accounts.disable_user(
            _actor(request.actor), _tenant_id(request.tenant_id), _user_id(request.user_id)
        )
        return _user_pb(user)

    # -- audit ---------------------------------------------------------------

    @translated
    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        flt = request.filter
        query = AuditQuery(
            events=tuple(flt.events),
            user_id=_user_id(flt.user_id) if flt.user_id else None,
            since=flt.since.ToDatetime(UTC) if flt.HasField("since") else None,
            until=flt.until.ToDatetime(UTC) if flt.HasField("until") else None,
            before_seq=_before_seq(request.page_token),
            limit=request.page_size or 100,
        )
        events = await self._accounts.audit_events(
            _actor(request.actor), _tenant_id(request.tenant_id), query
        )
        next_token = ""
        if len(events) == query.limit and events[-1].seq > 1:
            next_token = _page_token(events[-1].seq)
        return pb.ListAuditEventsResponse(
            events=[_event_pb(e) for e in events], next_page_token=next_token
        )

    @translated
    async def RecordAuditEvent(
        self, request: pb.RecordAuditEventRequest, context: Context
    ) -> pb.RecordAuditEventResponse:
        seq = await self._accounts.record_service_event(
            _tenant_id(request.tenant_id),
            event=request.event,
            actor_user_id=_user_id(request.actor_user_id) if request.actor_user_id else None,
            client_ip=request.client_ip or None,
            details_json=request.details_json,
        )
        return pb.RecordAuditEventResponse(seq=seq)

    @translated
    async def VerifyAuditChain(
        self, request: pb.VerifyAuditChainRequest, context: Context
    ) -> pb.VerifyAuditChainResponse:
        verdict = await self._accounts.verify_audit(
            _actor(request.actor), _tenant_id(request.tenant_id)
        )
        return pb.VerifyAuditChainResponse(
            intact=verdict.intact,
            events_checked=verdict.events_checked,
            first_bad_seq=verdict.first_bad_seq,
            problem=verdict.problem,
        )


def _grant(new: NewSession) -> pb.SessionGrant:
    session = new.session
    return pb.SessionGrant(
        session_id=session.id,
        link_token=new.link_token,
        cookie_secret=new.cookie_secret,
        idle_expires_at=_timestamp(session.idle_expires_at),
        absolute_expires_at=_timestamp(session.absolute_expires_at),
        idle_timeout_seconds=session.idle_timeout_seconds,
    )
