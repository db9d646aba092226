"""The identity the edge gate vouches for, signed with Ed25519.

The gate signs (private key); upstream services verify (public key only), so
an upstream that leaks its key material cannot forge identities. The header
is `<base64url(JSON payload)>.<base64url(signature)>`; it lives for a minute,
and only Traefik can set it: the gate's answer replaces any client-sent copy.
"""

import base64
import binascii
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

IDENTITY_HEADER = "X-Tresor-Identity"
IDENTITY_LIFETIME_SECONDS = 60
_VERSION = 1
_MAX_HEADER_LENGTH = 4096


class InvalidIdentity(Exception):
    """Missing, malformed, forged or expired: the request gets no access."""


@dataclass(frozen=True)
class Identity:
    tenant_id: str
    tenant_slug: str
    user_id: str
    username: str
    roles: tuple[str, ...]
    session_id: str
    link_token: str
    # Form token for state-changing requests, derived by the gate per session.
    csrf_token: str
    session_expires_at: float
    issued_at: float
    expires_at: float

    def has_role(self, role: str) -> bool:
        return role in self.roles


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(pem: str | bytes) -> Ed25519PrivateKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the identity signing key must be an Ed25519 private key (PEM)")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the identity verification key must be an Ed25519 public key (PEM)")
    return key


def generate_private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_pem(private: Ed25519PrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign_identity(key: Ed25519PrivateKey, identity: Identity) -> str:
    payload = {"v": _VERSION, **asdict(identity)}
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64(key.sign(body.encode()))}"


def verify_identity(
    keys: Sequence[Ed25519PublicKey], header: str | None, *, now: float | None = None
) -> Identity:
    """The identity, if one of `keys` signed it and it has not expired."""
    if not header:
        raise InvalidIdentity("no identity")
    if len(header) > _MAX_HEADER_LENGTH or header.count(".") != 1:
        raise InvalidIdentity("malformed identity")
    body, _, signature_text = header.partition(".")
    try:
        signature = _unb64(signature_text)
    except (binascii.Error, ValueError) as exc:
        raise InvalidIdentity("malformed identity") from exc
    # The signature first: nothing a client made up is even parsed.
    if not any(_signed_by(key, signature, body) for key in keys):
        raise InvalidIdentity("identity not signed by the gate")
    try:
        payload: dict[str, Any] = json.loads(_unb64(body))
    except (binascii.Error, ValueError, RecursionError) as exc:
        raise InvalidIdentity("malformed identity") from exc
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise InvalidIdentity("unknown identity version")
    try:
        identity = Identity(
            tenant_id=str(payload["tenant_id"]),
            tenant_slug=str(payload["tenant_slug"]),
            user_id=str(payload["user_id"]),
            username=str(payload["username"]),
            roles=tuple(str(role) for role in payload["roles"]),
            session_id=str(payload["session_id"]),
            link_token=str(payload["link_token"]),
            csrf_token=str(payload["csrf_token"]),
            session_expires_at=float(payload["session_expires_at"]),
            issued_at=float(payload["issued_at"]),
            expires_at=float(payload["expires_at"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidIdentity("incomplete identity") from exc
    current = time.time() if now is None else now
    if current >= identity.expires_at or identity.issued_at > current + 5:
        raise InvalidIdentity("identity expired")
    return identity


def _signed_by(key: Ed25519PublicKey, signature: bytes, body: str) -> bool:
    try:
        key.verify(signature, body.encode())
    except (InvalidSignature, UnicodeEncodeError):
        return False
    return True
