"""The gate's rules: what ForwardAuth answers, how login and logout go.

Anything that is not a clear allow from auth is a denial: unknown link,
missing cookie, auth down or slow. The client address is the one Traefik
appended to X-Forwarded-For, never anything the client sent.
"""

import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tresor.auth.v1 import auth_pb2 as pb
from tresor_common.identity import IDENTITY_LIFETIME_SECONDS, Identity, sign_identity
from tresor_edge.auth_client import AuthUnavailable, GateAuthClient
from tresor_edge.csrf import CsrfTokens

log = logging.getLogger(__name__)

SESSION_COOKIE = "__Host-tresor_sid"
_LINK_PATH = re.compile(r"^/s/([A-Za-z0-9_-]{16,128})(/.*)?$")
_ROLE_NAMES = {pb.ROLE_ADMIN: "admin", pb.ROLE_USER: "user"}
_DENY_NAMES = {
    value: name.removeprefix("DENY_REASON_").lower() for name, value in pb.DenyReason.items()
}
MAX_FIELD = 1024


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    # Set on allow: the signed identity header for the upstream.
    identity_header: str = ""
    # Why, for the log (never shown to the client).
    reason: str = ""
    api: bool = False


@dataclass(frozen=True)
class LoginSucceeded:
    link_token: str
    cookie_secret: str


class LogoutResult(StrEnum):
    ENDED = "ended"
    NO_SESSION = "no_session"
    BAD_FORM = "bad_form"
    UNAVAILABLE = "unavailable"


class LoginFailed(StrEnum):
    INVALID = "invalid"
    LOCKED = "locked"
    UNAVAILABLE = "unavailable"


def link_token_of(path: str) -> str | None:
    match = _LINK_PATH.match(path.split("?", 1)[0])
    return match.group(1) if match else None


def is_api(path: str) -> bool:
    match = _LINK_PATH.match(path.split("?", 1)[0])
    return bool(match and (match.group(2) or "").startswith("/api/"))


class TrustedProxies:
    def __init__(self, networks: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(net, strict=False) for net in networks]

    def trusted(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    @staticmethod
    def client_address(forwarded_for: str | None) -> str | None:
        """The rightmost X-Forwarded-For entry: the one Traefik appended itself."""
        if not forwarded_for:
            return None
        candidate = forwarded_for.split(",")[-1].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return None


class Gate:
    def __init__(
        self, *, auth: GateAuthClient, signing_key: Ed25519PrivateKey, csrf: CsrfTokens
    ) -> None:
        self._auth = auth
        self._key = signing_key
        self.csrf = csrf

    async def close(self) -> None:
        await self._auth.close()

    async def forward_auth(
        self, *, uri: str, method: str, cookie_secret: str | None, client_ip: str | None
    ) -> Decision:
        api = is_api(uri)
        link_token = link_token_of(uri)
        if link_token is None:
            return Decision(Verdict.DENY, reason="no_link_token", api=api)
        if not cookie_secret:
            return Decision(Verdict.DENY, reason="no_cookie", api=api)
        if client_ip is None:
            return Decision(Verdict.DENY, reason="no_client_address", api=api)
        try:
            answer = await self._auth.authorize(
                pb.AuthorizeRequest(
                    link_token=link_token,
                    cookie_secret=cookie_secret[:MAX_FIELD],
                    client_ip=client_ip,
                    method=method[:16],
                    path=uri[:MAX_FIELD],
                )
            )
        except AuthUnavailable as exc:
            return Decision(Verdict.DENY, reason=f"auth_unavailable:{exc}", api=api)
        if answer.WhichOneof("result") != "identity":
            return Decision(Verdict.DENY, reason=_DENY_NAMES.get(answer.denied, "denied"), api=api)
        return Decision(
            Verdict.ALLOW,
            identity_header=self._sign(answer.identity, link_token),
            api=api,
        )

    def _sign(self, granted: pb.Identity, link_token: str) -> str:
        now = time.time()
        session_expires = granted.idle_expires_at.ToNanoseconds() / 1e9
        return sign_identity(
            self._key,
            Identity(
                tenant_id=granted.tenant_id,
                tenant_slug=granted.tenant_slug,
                user_id=granted.user_id,
                username=granted.username,
                roles=tuple(_ROLE_NAMES[r] for r in granted.roles if r in _ROLE_NAMES),
                session_id=granted.session_id,
                link_token=link_token,
                csrf_token=self.csrf.session_token(granted.session_id),
                session_expires_at=session_expires,
                issued_at=now,
                expires_at=min(now + IDENTITY_LIFETIME_SECONDS, session_expires),
            ),
        )

    async def login(
        self, *, tenant: str, username: str, password: str, client_ip: str, user_agent: str
    ) -> LoginSucceeded | tuple[LoginFailed, int]:
        try:
            answer = await self._auth.login(
                pb.LoginRequest(
                    tenant=tenant[:MAX_FIELD],
                    username=username[:MAX_FIELD],
                    password=password[:MAX_FIELD],
                    client_ip=client_ip,
                    user_agent=user_agent[:256],
                )
            )
        except AuthUnavailable:
            return LoginFailed.UNAVAILABLE, 0
        if answer.WhichOneof("result") == "session":
            return LoginSucceeded(answer.session.link_token, answer.session.cookie_secret)
        if answer.failure == pb.LOGIN_FAILURE_LOCKED:
            return LoginFailed.LOCKED, answer.retry_after_seconds
        return LoginFailed.INVALID, 0

    async def logout(
        self, *, path: str, cookie_secret: str | None, client_ip: str | None, csrf_token: str | None
    ) -> LogoutResult:
        """Ends the session when link, cookie, address and form token all belong to it."""
        link_token = link_token_of(path)
        if not (link_token and cookie_secret and client_ip):
            return LogoutResult.NO_SESSION
        try:
            answer = await self._auth.authorize(
                pb.AuthorizeRequest(
                    link_token=link_token,
                    cookie_secret=cookie_secret[:MAX_FIELD],
                    client_ip=client_ip,
                    method="POST",
                    path=path[:MAX_FIELD],
                )
            )
            if answer.WhichOneof("result") != "identity":
                return LogoutResult.NO_SESSION
            if not self.csrf.session_ok(answer.identity.session_id, csrf_token):
                return LogoutResult.BAD_FORM
            await self._auth.logout(
                pb.LogoutRequest(
                    link_token=link_token, cookie_secret=cookie_secret, client_ip=client_ip
                )
            )
        except AuthUnavailable:
            return LogoutResult.UNAVAILABLE
        return LogoutResult.ENDED
