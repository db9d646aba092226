"""The signed identity: only the gate's key makes one, and only for a minute."""

import time
from dataclasses import replace

import pytest

from tresor_common.identity import (
    Identity,
    InvalidIdentity,
    generate_private_key_pem,
    load_private_key,
    load_public_key,
    public_key_pem,
    sign_identity,
    verify_identity,
)

GATE = load_private_key(generate_private_key_pem())
PUBLIC = [load_public_key(public_key_pem(GATE))]


def _identity(**changes: object) -> Identity:
    now = time.time()
    base = Identity(
        tenant_id="t1",
        tenant_slug="acme",
        user_id="u1",
        username="alice",
        roles=("user",),
        session_id="s1",
        link_token="L" * 32,
        csrf_token="c",
        session_expires_at=now + 600,
        issued_at=now,
        expires_at=now + 60,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_round_trip() -> None:
    identity = _identity()
    assert verify_identity(PUBLIC, sign_identity(GATE, identity)) == identity


def test_another_key_is_refused() -> None:
    stranger = load_private_key(generate_private_key_pem())
    with pytest.raises(InvalidIdentity, match="not signed by the gate"):
        verify_identity(PUBLIC, sign_identity(stranger, _identity()))


def test_tampered_payload_is_refused() -> None:
    header = sign_identity(GATE, _identity())
    body, signature = header.split(".")
    forged = sign_identity(GATE, _identity(tenant_id="t2")).split(".")[0]
    with pytest.raises(InvalidIdentity):
        verify_identity(PUBLIC, f"{forged}.{signature}")
    assert body != forged


def test_expired_is_refused() -> None:
    past = time.time() - 120
    header = sign_identity(GATE, _identity(issued_at=past, expires_at=past + 60))
    with pytest.raises(InvalidIdentity, match="expired"):
        verify_identity(PUBLIC, header)


@pytest.mark.parametrize("header", [None, "", "x", "a.b.c", "!!!.???", "e30.AAAA", "x" * 5000])
def test_garbage_is_refused(header: str | None) -> None:
    with pytest.raises(InvalidIdentity):
        verify_identity(PUBLIC, header)
