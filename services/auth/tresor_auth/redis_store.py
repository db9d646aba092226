"""Sessions, cached user state and failure counters in Redis. The only module with Redis calls.

Keys, all under one prefix:
  session:<id>          hash: the session (hashes of its secrets, never the secrets)
  link:<sha256(link)>   the id of the session that link belongs to
  user-sessions:<user>  sorted set of a user's session ids, by creation time
  tenant-sessions:<t>   sorted set of a tenant's session ids, by absolute expiry
  user-state:<user>     JSON: active, roles, allowlist (write-through from admin changes)
  failures:user:<t>:<name>, failures:ip:<address>   failed-login counters
  lock:user:<t>:<name>, lock:ip:<address>           lockouts, with their remaining time
"""

import json
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions

from tresor_auth.errors import StoreUnavailable
from tresor_auth.models import Role, Session, UserState
from tresor_auth.networks import IpBinding, parse_allowlist

P = ParamSpec("P")
T = TypeVar("T")

USER_STATE_TTL_SECONDS = 600

# One round trip for Authorize: the session behind a link, and its user's state.
_FETCH_BY_LINK = """
local sid = redis.call('GET', KEYS[1])
if not sid then return false end
local fields = redis.call('HGETALL', ARGV[1] .. 'session:' .. sid)
if #fields == 0 then return false end
local user_id
for i = 1, #fields, 2 do
  if fields[i] == 'user_id' then user_id = fields[i + 1] end
end
local state = redis.call('GET', ARGV[1] .. 'user-state:' .. user_id)
return {sid, fields, state or false}
"""


# Slide the idle timer only if the session still exists: a logout racing this call must
# not leave a half session behind.
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
"""

# One login attempt: refused while a lock stands; otherwise counted before the password is
# checked, so that concurrent guesses cannot all slip under the limit.
_BEGIN_ATTEMPT = """
local locked_ms = math.max(redis.call('PTTL', KEYS[3]), redis.call('PTTL', KEYS[4]))
if locked_ms > 0 then return {-1, -1, locked_ms} end
local user = redis.call('INCR', KEYS[1])
if user == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local address = redis.call('INCR', KEYS[2])
if address == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
if user > tonumber(ARGV[3]) then redis.call('SET', KEYS[3], 1, 'EX', ARGV[2]) end
if address > tonumber(ARGV[4]) then redis.call('SET', KEYS[4], 1, 'EX', ARGV[2]) end
if user > tonumber(ARGV[3]) or address > tonumber(ARGV[4]) then
  return {-1, -1, tonumber(ARGV[2]) * 1000}
end
return {user, address, 0}
"""

# A success forgets the user name's failures and gives the address its attempt back.
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 1
"""


def _unavailable(
    func: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Redis down or too slow becomes StoreUnavailable: callers fail closed."""

    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise StoreUnavailable("the session store is unavailable") from exc

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def _session_fields(session: Session) -> dict[str, str]:
    return {
        "link_hash": session.link_hash,
        "cookie_hash": session.cookie_hash,
        "tenant_id": str(session.tenant_id),
        "tenant_slug": session.tenant_slug,
        "user_id": str(session.user_id),
        "username": session.username,
        "client_ip": session.client_ip,
        "ip_binding": session.ip_binding.value,
        "user_agent": session.user_agent,
        "created_at": repr(session.created_at),
        "last_seen_at": repr(session.last_seen_at),
        "idle_timeout_seconds": str(session.idle_timeout_seconds),
        "absolute_expires_at": repr(session.absolute_expires_at),
        "credential_stamp": repr(session.credential_stamp),
    }


def _session(session_id: str, fields: dict[str, str]) -> Session:
    return Session(
        id=session_id,
        link_hash=fields["link_hash"],
        cookie_hash=fields["cookie_hash"],
        tenant_id=uuid.UUID(fields["tenant_id"]),
        tenant_slug=fields["tenant_slug"],
        user_id=uuid.UUID(fields["user_id"]),
        username=fields["username"],
        client_ip=fields["client_ip"],
        ip_binding=IpBinding(fields["ip_binding"]),
        user_agent=fields.get("user_agent", ""),
        created_at=float(fields["created_at"]),
        last_seen_at=float(fields["last_seen_at"]),
        idle_timeout_seconds=int(fields["idle_timeout_seconds"]),
        absolute_expires_at=float(fields["absolute_expires_at"]),
        credential_stamp=float(fields.get("credential_stamp", "0")),
    )


def _state_json(state: UserState) -> str:
    return json.dumps(
        {
            "active": state.active,
            "roles": [role.value for role in state.roles],
            "allowlist": [str(net) for net in state.allowlist],
            "credential_stamp": state.credential_stamp,
        }
    )


def _state(raw: str) -> UserState:
    data = json.loads(raw)
    return UserState(
        active=bool(data["active"]),
        roles=tuple(Role(role) for role in data["roles"]),
        allowlist=tuple(parse_allowlist(data["allowlist"])),
        credential_stamp=float(data.get("credential_stamp", 0)),
    )


class SessionStore:
    def __init__(
        self,
        client: "aioredis.Redis",
        *,
        prefix: str,
        remember_seconds: int,
        longest_session_seconds: int,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._longest_session = longest_session_seconds
        # Timed-out sessions stay this long so that their link answers "expired" (logout and
        # revocation delete at once: "unknown").
        self._remember = remember_seconds
        self._fetch = client.register_script(_FETCH_BY_LINK)
        self._touch = client.register_script(_TOUCH)
        self._begin_attempt = client.register_script(_BEGIN_ATTEMPT)
        self._succeeded = client.register_script(_SUCCEEDED)

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        prefix: str,
        remember_seconds: int,
        longest_session_seconds: int,
        timeout_seconds: float,
    ) -> "SessionStore":
        client = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        return cls(
            client,
            prefix=prefix,
            remember_seconds=remember_seconds,
            longest_session_seconds=longest_session_seconds,
        )

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _ttl_ms(self, session: Session, now: float) -> int:
        return max(1, int((session.idle_expires_at - now + self._remember) * 1000))

    # -- sessions ------------------------------------------------------------

    @_unavailable
    async def save_session(self, session: Session, now: float) -> None:
        ttl = self._ttl_ms(session, now)
        user_key = self._key("user-sessions", str(session.user_id))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key("session", session.id), mapping=cast(Any, _session_fields(session)))
            pipe.pexpire(self._key("session", session.id), ttl)
            pipe.set(self._key("link", session.link_hash), session.id, px=ttl)
            pipe.zadd(user_key, {session.id: session.created_at})
            pipe.expire(user_key, int(session.absolute_expires_at - now) + self._remember + 1)
            # Scored by expiry, so each login also sweeps out the tenant's ended sessions.
            tenant_key = self._key("tenant-sessions", str(session.tenant_id))
            pipe.zremrangebyscore(tenant_key, "-inf", now - self._remember)
            pipe.zadd(tenant_key, {session.id: session.absolute_expires_at})
            pipe.expire(tenant_key, self._longest_session + self._remember + 1)
            await pipe.execute()

    @_unavailable
    async def fetch_by_link(self, link_hash: str) -> tuple[Session, UserState | None] | None:
        result = await self._fetch(keys=[self._key("link", link_hash)], args=[self._prefix])
        if not result:
            return None
        session_id, flat, state = result
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return _session(session_id, fields), (_state(state) if state else None)

    @_unavailable
    async def touch(self, session: Session, now: float) -> None:
        """Slide the idle timer."""
        ttl = self._ttl_ms(replace(session, last_seen_at=now), now)
        await self._touch(
            keys=[self._key("session", session.id), self._key("link", session.link_hash)],
            args=[repr(now), ttl],
        )

    @_unavailable
    async def get_session(self, session_id: str) -> Session | None:
        fields = cast(dict[str, str], await self._redis.hgetall(self._key("session", session_id)))
        return _session(session_id, fields) if fields else None

    @_unavailable
    async def delete_sessions(self, sessions: list[Session]) -> int:
        if not sessions:
            return 0
        async with self._redis.pipeline(transaction=True) as pipe:
            for session in sessions:
                pipe.delete(self._key("session", session.id))
                pipe.delete(self._key("link", session.link_hash))
                pipe.zrem(self._key("user-sessions", str(session.user_id)), session.id)
                pipe.zrem(self._key("tenant-sessions", str(session.tenant_id)), session.id)
            results = await pipe.execute()
        return sum(1 for deleted in results[::4] if deleted)

    @_unavailable
    async def user_sessions(self, user_id: uuid.UUID) -> list[Session]:
        """A user's live sessions, oldest first; forgets ids whose session is gone."""
        key = self._key("user-sessions", str(user_id))
        ids = cast(list[str], await self._redis.zrange(key, 0, -1))
        return await self._load(ids, index_key=key)

    @_unavailable
    async def tenant_sessions(self, tenant_id: uuid.UUID) -> list[Session]:
        key = self._key("tenant-sessions", str(tenant_id))
        ids = cast(list[str], await self._redis.zrange(key, 0, -1))
        return await self._load(ids, index_key=key)

    async def _load(self, ids: list[str], *, index_key: str) -> list[Session]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.hgetall(self._key("session", session_id))
            rows = await pipe.execute()
        sessions = []
        gone = []
        for session_id, fields in zip(ids, rows, strict=True):
            if fields:
                sessions.append(_session(session_id, fields))
            else:
                gone.append(session_id)
        if gone:
            await self._redis.zrem(index_key, *gone)
        return sessions

    # -- user state ----------------------------------------------------------

    @_unavailable
    async def put_user_state(self, user_id: uuid.UUID, state: UserState) -> None:
        """After an admin change: the next Authorize anywhere sees it."""
        await self._redis.set(
            self._key("user-state", str(user_id)), _state_json(state), ex=USER_STATE_TTL_SECONDS
        )

    @_unavailable
    async def forget_user_state(self, user_id: uuid.UUID) -> None:
        """Before an admin change: whatever happens next, no stale state stays cached."""
        await self._redis.delete(self._key("user-state", str(user_id)))

    @_unavailable
    async def fill_user_state(self, user_id: uuid.UUID, state: UserState) -> None:
        """After a cache miss: never overwrite what an admin change wrote meanwhile."""
        await self._redis.set(
            self._key("user-state", str(user_id)),
            _state_json(state),
            ex=USER_STATE_TTL_SECONDS,
            nx=True,
        )

    # -- failed logins -------------------------------------------------------

    def _attempt_keys(self, tenant_slug: str, username: str, address: str) -> list[str]:
        return [
            self._key("failures", "user", tenant_slug, username),
            self._key("failures", "ip", address),
            self._key("lock", "user", tenant_slug, username),
            self._key("lock", "ip", address),
        ]

    @_unavailable
    async def begin_attempt(
        self,
        tenant_slug: str,
        username: str,
        address: str,
        *,
        window_seconds: int,
        user_limit: int,
        address_limit: int,
    ) -> tuple[int, int, int]:
        """(failures of the user name, of the address, counting this attempt) or, while
        locked, (-1, -1, milliseconds until the lock ends)."""
        user, ip, locked_ms = await self._begin_attempt(
            keys=self._attempt_keys(tenant_slug, username, address),
            args=[window_seconds, window_seconds, user_limit, address_limit],
        )
        return int(user), int(ip), int(locked_ms)

    @_unavailable
    async def lock(
        self, tenant_slug: str, username: str, address: str, *, user: bool, ip: bool, seconds: int
    ) -> None:
        keys = self._attempt_keys(tenant_slug, username, address)
        async with self._redis.pipeline(transaction=False) as pipe:
            if user:
                pipe.set(keys[2], 1, ex=seconds)
            if ip:
                pipe.set(keys[3], 1, ex=seconds)
            await pipe.execute()

    @_unavailable
    async def attempt_succeeded(self, tenant_slug: str, username: str, address: str) -> None:
        keys = self._attempt_keys(tenant_slug, username, address)
        await self._succeeded(keys=keys[:2])

    @_unavailable
    async def ping(self) -> None:
        await self._redis.ping()
