"""Tenants, users and sessions as the domain sees them."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tresor_auth.networks import IpBinding, IpNetwork


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True)
class TenantPolicy:
    idle_timeout_seconds: int
    absolute_lifetime_seconds: int
    ip_binding: IpBinding
    max_sessions_per_user: int
    require_totp: bool = False


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    display_name: str
    policy: TenantPolicy
    created_at: datetime


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    tenant_id: uuid.UUID
    username: str
    display_name: str
    roles: tuple[Role, ...]
    active: bool
    allowlist: tuple[IpNetwork, ...]
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class UserState:
    """What Authorize needs of a user on every request (cached in Redis)."""

    active: bool
    roles: tuple[Role, ...]
    allowlist: tuple[IpNetwork, ...]
    # When the password last changed: sessions from before are void, whatever raced.
    credential_stamp: float

    @classmethod
    def of(cls, user: User) -> "UserState":
        return cls(
            active=user.active,
            roles=user.roles,
            allowlist=user.allowlist,
            credential_stamp=user.password_changed_at.timestamp(),
        )


@dataclass(frozen=True)
class Session:
    """A session as stored: hashes of its secrets, never the secrets."""

    id: str
    link_hash: str
    cookie_hash: str
    tenant_id: uuid.UUID
    tenant_slug: str
    user_id: uuid.UUID
    username: str
    client_ip: str
    ip_binding: IpBinding
    user_agent: str
    created_at: float
    last_seen_at: float
    idle_timeout_seconds: int
    absolute_expires_at: float
    # The user's credential stamp at login (see UserState).
    credential_stamp: float

    @property
    def idle_expires_at(self) -> float:
        return min(self.last_seen_at + self.idle_timeout_seconds, self.absolute_expires_at)

    def expired(self, now: float) -> bool:
        return now >= self.idle_expires_at


@dataclass(frozen=True)
class NewSession:
    """What Login hands out once: the secrets themselves."""

    session: Session
    link_token: str
    cookie_secret: str


@dataclass(frozen=True)
class AuditQuery:
    events: tuple[str, ...] = ()
    user_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_seq: int | None = None
    limit: int = 100
