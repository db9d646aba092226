"""The hash chain of the audit log: each event carries the SHA-256 of the one before.

A removed, inserted or altered row breaks the chain at that point, and the
chain head (last sequence number and hash, kept beside the log) reveals a
removed tail. `verify_chain` walks a chain and names the first bad event.
"""

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# The platform's own events (no tenant) form the chain with the nil UUID.
PLATFORM_CHAIN = uuid.UUID(int=0)
GENESIS_HASH = bytes(32)


@dataclass(frozen=True)
class AuditRecord:
    """What a domain action writes; the storage module adds seq and hashes."""

    event: str
    tenant_id: uuid.UUID | None = None
    actor_user_id: uuid.UUID | None = None
    subject_user_id: uuid.UUID | None = None
    client_ip: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def chain_id(self) -> uuid.UUID:
        return self.tenant_id or PLATFORM_CHAIN


@dataclass(frozen=True)
class StoredAuditEvent:
    chain_id: uuid.UUID
    seq: int
    occurred_at: datetime
    event: str
    actor_user_id: uuid.UUID | None
    subject_user_id: uuid.UUID | None
    client_ip: str | None
    details: dict[str, Any]
    prev_hash: bytes
    hash: bytes


def event_hash(
    *,
    prev_hash: bytes,
    chain_id: uuid.UUID,
    seq: int,
    occurred_at: datetime,
    event: str,
    actor_user_id: uuid.UUID | None,
    subject_user_id: uuid.UUID | None,
    client_ip: str | None,
    details: dict[str, Any],
) -> bytes:
    canonical = json.dumps(
        {
            "chain": str(chain_id),
            "seq": seq,
            "at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "event": event,
            "actor": str(actor_user_id) if actor_user_id else None,
            "subject": str(subject_user_id) if subject_user_id else None,
            "ip": client_ip,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(prev_hash + canonical.encode()).digest()


def hash_of(stored: StoredAuditEvent) -> bytes:
    return event_hash(
        prev_hash=stored.prev_hash,
        chain_id=stored.chain_id,
        seq=stored.seq,
        occurred_at=stored.occurred_at,
        event=stored.event,
        actor_user_id=stored.actor_user_id,
        subject_user_id=stored.subject_user_id,
        client_ip=stored.client_ip,
        details=stored.details,
    )


@dataclass(frozen=True)
class ChainVerdict:
    intact: bool
    events_checked: int
    first_bad_seq: int = 0
    problem: str = ""


def verify_chain(
    events: Iterable[StoredAuditEvent], *, head_seq: int | None, head_hash: bytes | None
) -> ChainVerdict:
    """Walk one chain in sequence order and report the first break."""
    expected_seq = 1
    prev = GENESIS_HASH
    checked = 0
    for stored in events:
        if stored.seq != expected_seq:
            return ChainVerdict(False, checked, expected_seq, f"event {expected_seq} is missing")
        if stored.prev_hash != prev:
            return ChainVerdict(False, checked, stored.seq, "does not follow the event before it")
        if hash_of(stored) != stored.hash:
            return ChainVerdict(False, checked, stored.seq, "content does not match its hash")
        prev = stored.hash
        expected_seq += 1
        checked += 1
    last_seq = expected_seq - 1
    if (head_seq or 0) != last_seq or (head_hash or GENESIS_HASH) != prev:
        return ChainVerdict(
            False,
            checked,
            last_seq + 1,
            f"the chain head records {head_seq or 0} events, the log holds {last_seq}",
        )
    return ChainVerdict(True, checked)
