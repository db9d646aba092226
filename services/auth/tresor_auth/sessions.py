"""Login, Authorize, Logout: the rules that bind a session to its browser and network.

A session is three secrets and an address: the link token (in every URL), the
cookie secret (in a `__Host-` cookie) and the client address seen at login.
Redis keeps only SHA-256 hashes of the secrets. Anything unknown, expired or
mismatched is denied; a store that cannot be reached raises StoreUnavailable,
which the servicer turns into UNAVAILABLE: never an allow.
"""

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from tresor_auth.audit import AuditRecord
from tresor_auth.errors import InvalidArgument
from tresor_auth.models import NewSession, Role, Session, User, UserState
from tresor_auth.networks import (
    IpBinding,
    address_key,
    in_allowlist,
    parse_client_ip,
    same_binding,
)
from tresor_auth.passwords import Passwords
from tresor_auth.pg_store import AuthDatabase
from tresor_auth.redis_store import SessionStore
from tresor_auth.throttle import ThrottlePolicy

log = logging.getLogger(__name__)

# 192 bits each; the design asks for at least 128.
LINK_TOKEN_BYTES = 24
COOKIE_SECRET_BYTES = 32
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_LINK_IN_PATH = re.compile(r"/s/[^/]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_LENGTH = 128
MAX_PATH_IN_AUDIT = 512


class DenyReason(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    IP_MISMATCH = "ip_mismatch"
    COOKIE_MISMATCH = "cookie_mismatch"
    NOT_ALLOWED_NETWORK = "not_allowed_network"
    USER_DISABLED = "user_disabled"


class LoginFailure(StrEnum):
    INVALID_CREDENTIALS = "invalid_credentials"
    LOCKED = "locked"


@dataclass(frozen=True)
class LoginRefused:
    failure: LoginFailure
    retry_after_seconds: int = 0


@dataclass(frozen=True)
class Allowed:
    session: Session
    roles: tuple[Role, ...]


@dataclass(frozen=True)
class Denied:
    reason: DenyReason


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def printable(text: str) -> str:
    """Control characters (NUL included) replaced: safe for logs, text columns and jsonb."""
    return _CONTROL.sub("\ufffd", text)


def path_for_audit(path: str) -> str:
    """The path without its link token, cut to a sane length."""
    return printable(_LINK_IN_PATH.sub("/s/[link]", path)[:MAX_PATH_IN_AUDIT])


class SessionService:
    def __init__(
        self,
        *,
        database: AuthDatabase,
        store: SessionStore,
        passwords: Passwords,
        throttle: ThrottlePolicy,
        slide_granularity_seconds: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slide_granularity = slide_granularity_seconds
        self._db = database
        self._store = store
        self._passwords = passwords
        self._throttle = throttle
        self._clock = clock
        self._sleep = sleep

    # -- Login ---------------------------------------------------------------

    async def login(
        self, *, tenant: str, username: str, password: str, client_ip: str, user_agent: str
    ) -> NewSession | LoginRefused:
        address = parse_client_ip(client_ip)
        ip = str(address)
        # Names with control characters match no account; they are still counted and hashed.
        tenant_slug = printable(tenant.strip().lower()[:MAX_NAME_LENGTH])
        name = printable(username.strip().lower()[:MAX_NAME_LENGTH])
        counted_by = address_key(address)
        policy = self._throttle
        user_failures, ip_failures, locked_ms = await self._store.begin_attempt(
            tenant_slug,
            name,
            counted_by,
            window_seconds=policy.lockout_seconds,
            user_limit=policy.lockout_after,
            address_limit=policy.address_lockout_after,
        )
        if locked_ms:
            await self._audit_locked_out(tenant_slug, name, ip)
            return LoginRefused(LoginFailure.LOCKED, max(1, -(-locked_ms // 1000)))
        # This attempt is counted already: the delay depends on the failures before it.
        delay = policy.delay(user_failures - 1, ip_failures - 1)
        if delay:
            await self._sleep(delay)

        found = None
        if tenant_slug == tenant.strip().lower() and name == username.strip().lower():
            found = await self._db.find_login(tenant_slug, name) if tenant_slug and name else None
        stored_hash = found[2] if found else None
        # Verify even when the user is unknown: same answer, same time.
        password_ok = await self._passwords.verify_async(stored_hash, password)
        reason = None
        if found is None:
            reason = "unknown_user"
        elif not password_ok:
            reason = "wrong_password"
        elif not found[1].active:
            reason = "user_disabled"
        elif not in_allowlist(address, found[1].allowlist):
            reason = "not_allowed_network"
        if found is None or reason is not None:
            return await self._refuse(
                tenant_slug,
                name,
                ip,
                counted_by,
                found,
                reason or "unknown_user",
                user_failures,
                ip_failures,
            )

        tenant_row, user, _ = found
        assert stored_hash is not None
        if self._passwords.needs_rehash(stored_hash):
            fresh = await self._passwords.hash_async(password)
            await self._db.rehash_password(user.id, stored_hash, fresh)
        await self._store.attempt_succeeded(tenant_slug, name, counted_by)
        # Only fills a gap: never overwrites what an admin change wrote meanwhile.
        await self._store.fill_user_state(user.id, UserState.of(user))

        now = self._clock()
        tenant_policy = tenant_row.policy
        link_token = secrets.token_urlsafe(LINK_TOKEN_BYTES)
        cookie_secret = secrets.token_urlsafe(COOKIE_SECRET_BYTES)
        session = Session(
            id=uuid.uuid4().hex,
            link_hash=secret_hash(link_token),
            cookie_hash=secret_hash(cookie_secret),
            tenant_id=tenant_row.id,
            tenant_slug=tenant_row.slug,
            user_id=user.id,
            username=user.username,
            client_ip=ip,
            ip_binding=tenant_policy.ip_binding,
            user_agent=printable(user_agent[:256]),
            created_at=now,
            last_seen_at=now,
            idle_timeout_seconds=tenant_policy.idle_timeout_seconds,
            absolute_expires_at=now + tenant_policy.absolute_lifetime_seconds,
            credential_stamp=user.password_changed_at.timestamp(),
        )
        await self._store.save_session(session, now)
        await self._db.append_audit(
            AuditRecord(
                "login.succeeded",
                tenant_id=tenant_row.id,
                actor_user_id=user.id,
                subject_user_id=user.id,
                client_ip=ip,
                details={"session_id": session.id, "user_agent": session.user_agent},
            )
        )
        await self._enforce_session_limit(user, tenant_policy.max_sessions_per_user, ip)
        return NewSession(session=session, link_token=link_token, cookie_secret=cookie_secret)

    async def _audit_locked_out(self, tenant_slug: str, name: str, ip: str) -> None:
        """Into the tenant's own log when the tenant exists, so its admins see it."""
        known = await self._db.find_tenant(tenant_slug) if tenant_slug else None
        await self._db.append_audit(
            AuditRecord(
                "login.locked_out",
                tenant_id=known.id if known else None,
                client_ip=ip,
                details={"tenant": tenant_slug, "username": name},
            )
        )

    async def _refuse(
        self,
        tenant_slug: str,
        name: str,
        ip: str,
        counted_by: str,
        found: tuple[object, User, str] | None,
        reason: str,
        user_failures: int,
        ip_failures: int,
    ) -> LoginRefused:
        user = found[1] if found else None
        await self._db.append_audit(
            AuditRecord(
                "login.failed",
                tenant_id=user.tenant_id if user else None,
                subject_user_id=user.id if user else None,
                client_ip=ip,
                details={"tenant": tenant_slug, "username": name, "reason": reason},
            )
        )
        user_locked = self._throttle.user_locked(user_failures)
        ip_locked = self._throttle.address_locked(ip_failures)
        if user_locked or ip_locked:
            await self._store.lock(
                tenant_slug,
                name,
                counted_by,
                user=user_locked,
                ip=ip_locked,
                seconds=self._throttle.lockout_seconds,
            )
            await self._db.append_audit(
                AuditRecord(
                    "login.lockout_started",
                    tenant_id=user.tenant_id if user else None,
                    subject_user_id=user.id if user else None,
                    client_ip=ip,
                    details={
                        "tenant": tenant_slug,
                        "username": name,
                        "user_failures": user_failures,
                        "address_failures": ip_failures,
                    },
                )
            )
        return LoginRefused(LoginFailure.INVALID_CREDENTIALS)

    async def _enforce_session_limit(self, user: User, limit: int, ip: str) -> None:
        """Oldest sessions end first when a user holds more than the tenant allows."""
        sessions = await self._store.user_sessions(user.id)
        excess = sessions[: max(0, len(sessions) - limit)]
        if excess:
            await self._store.delete_sessions(excess)
            await self._db.append_audit(
                AuditRecord(
                    "session.evicted",
                    tenant_id=user.tenant_id,
                    subject_user_id=user.id,
                    client_ip=ip,
                    details={"session_ids": [s.id for s in excess], "limit": limit},
                )
            )

    # -- Authorize -----------------------------------------------------------

    async def authorize(
        self, *, link_token: str, cookie_secret: str, client_ip: str, method: str, path: str
    ) -> Allowed | Denied:
        address = parse_client_ip(client_ip)
        ip = str(address)
        if not _TOKEN_SHAPE.match(link_token):
            return Denied(DenyReason.UNKNOWN)
        # User state is served from Redis, but a silent database still means no entry:
        # nothing could be audited, and admin changes could not be trusted to be current.
        self._db.ensure_reachable()
        found = await self._store.fetch_by_link(secret_hash(link_token))
        if found is None:
            return Denied(DenyReason.UNKNOWN)
        session, state = found
        now = self._clock()

        def context() -> dict[str, str]:
            return {
                "method": printable(method[:16]),
                "path": path_for_audit(path),
                "session_id": session.id,
            }

        cookie_ok = hmac.compare_digest(secret_hash(cookie_secret), session.cookie_hash)
        if not cookie_ok:
            return await self._deny(session, DenyReason.COOKIE_MISMATCH, ip, context())
        if session.expired(now):
            await self._store.delete_sessions([session])
            await self._db.append_audit(
                AuditRecord(
                    "session.expired",
                    tenant_id=session.tenant_id,
                    subject_user_id=session.user_id,
                    client_ip=ip,
                    details={
                        "session_id": session.id,
                        "cause": "absolute" if now >= session.absolute_expires_at else "idle",
                    },
                )
            )
            return Denied(DenyReason.EXPIRED)
        bound = parse_client_ip(session.client_ip)
        if not same_binding(bound, address, session.ip_binding):
            if session.ip_binding is not IpBinding.LOG:
                return await self._deny(session, DenyReason.IP_MISMATCH, ip, context())
            await self._db.append_audit(
                AuditRecord(
                    "authorize.ip_mismatch_logged",
                    tenant_id=session.tenant_id,
                    subject_user_id=session.user_id,
                    client_ip=ip,
                    details={**context(), "bound_ip": session.client_ip},
                )
            )

        if state is None:
            state = await self._load_user_state(session.user_id)
        if state is None or not state.active:
            return await self._deny(session, DenyReason.USER_DISABLED, ip, context())
        if session.credential_stamp < state.credential_stamp:
            # The password changed after this login: the session is void.
            await self._store.delete_sessions([session])
            return await self._deny(session, DenyReason.UNKNOWN, ip, context())
        if not in_allowlist(address, state.allowlist):
            return await self._deny(session, DenyReason.NOT_ALLOWED_NETWORK, ip, context())

        # Slide the idle timer, at most once per granule: a busy session costs one Redis
        # write a second, not one per request (and can only expire that much early).
        if now - session.last_seen_at >= self._slide_granularity:
            await self._store.touch(session, now)
            session = replace(session, last_seen_at=now)
        return Allowed(session=session, roles=state.roles)

    async def _load_user_state(self, user_id: uuid.UUID) -> UserState | None:
        user = await self._db.get_user_by_id(user_id)
        if user is None:
            return None
        state = UserState.of(user)
        await self._store.fill_user_state(user_id, state)
        return state

    async def _deny(
        self, session: Session, reason: DenyReason, ip: str, context: dict[str, str]
    ) -> Denied:
        await self._db.append_audit(
            AuditRecord(
                "authorize.denied",
                tenant_id=session.tenant_id,
                subject_user_id=session.user_id,
                client_ip=ip,
                details={**context, "reason": reason.value},
            )
        )
        return Denied(reason)

    # -- Logout and revocation -----------------------------------------------

    async def logout(self, *, link_token: str, cookie_secret: str, client_ip: str) -> bool:
        """Ends the session when both secrets match; a bare link cannot log anyone out."""
        ip = str(parse_client_ip(client_ip))
        if not _TOKEN_SHAPE.match(link_token):
            return False
        found = await self._store.fetch_by_link(secret_hash(link_token))
        if found is None:
            return False
        session, _ = found
        if not hmac.compare_digest(secret_hash(cookie_secret), session.cookie_hash):
            return False
        await self._store.delete_sessions([session])
        await self._db.append_audit(
            AuditRecord(
                "logout",
                tenant_id=session.tenant_id,
                actor_user_id=session.user_id,
                subject_user_id=session.user_id,
                client_ip=ip,
                details={"session_id": session.id},
            )
        )
        return True

    async def list_sessions(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID | None = None
    ) -> list[Session]:
        if user_id is not None:
            sessions = await self._store.user_sessions(user_id)
            return [s for s in sessions if s.tenant_id == tenant_id]
        return await self._store.tenant_sessions(tenant_id)

    async def revoke_session(
        self, tenant_id: uuid.UUID, session_id: str, *, actor_user_id: uuid.UUID | None
    ) -> bool:
        if not re.fullmatch(r"[0-9a-f]{32}", session_id):
            raise InvalidArgument("session_id: not a session id")
        session = await self._store.get_session(session_id)
        if session is None or session.tenant_id != tenant_id:
            return False
        await self._store.delete_sessions([session])
        await self._db.append_audit(
            AuditRecord(
                "session.revoked",
                tenant_id=tenant_id,
                actor_user_id=actor_user_id,
                subject_user_id=session.user_id,
                details={"session_id": session_id},
            )
        )
        return True

    async def revoke_user_sessions(
        self,
        tenant_id: uuid.UUID,
        user_id: uuid.UUID,
        *,
        actor_user_id: uuid.UUID | None,
        cause: str,
    ) -> int:
        sessions = [s for s in await self._store.user_sessions(user_id) if s.tenant_id == tenant_id]
        ended = await self._store.delete_sessions(sessions)
        await self._db.append_audit(
            AuditRecord(
                "session.revoked_all",
                tenant_id=tenant_id,
                actor_user_id=actor_user_id,
                subject_user_id=user_id,
                details={"ended": ended, "cause": cause},
            )
        )
        return ended
