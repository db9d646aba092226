"""Documents attached to a contact, company or deal: streamed in and out in chunks.

An upload runs in one tenant transaction: the row, its chunks (about 256 KiB each,
written as the body arrives) and, at the end, its size and SHA-256. Anything that
goes wrong — too large, the client gone, the database — rolls the transaction back,
so no partial document is ever visible or left behind. Memory holds one chunk.
"""

import hashlib
import re
import unicodedata
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from tresor_crm.db import Conn, Database, Row
from tresor_crm.errors import TooLarge
from tresor_crm.identity import Actor
from tresor_crm.storage import documents as store
from tresor_crm.storage.documents import OwnerKind

CHUNK_BYTES = 256 * 1024
MAX_FILENAME_CHARS = 200
FALLBACK_TYPE = "application/octet-stream"

_CONTENT_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)
# Types a browser might render or run in our origin: served as a plain download.
_ACTIVE = re.compile(r"html|xml|svg|javascript|ecmascript|xsl|text/css", re.IGNORECASE)

OWNER_KINDS: dict[str, OwnerKind] = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
}


def clean_filename(raw: str) -> str:
    """The last path component, without control characters or leading dots, at most 200 chars.

    Letters of every script (ü, ß, é) stay; what is left empty becomes "document".
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            name = stem[: MAX_FILENAME_CHARS - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_FILENAME_CHARS].rstrip()
    return name or "document"


def declared_type(raw: str | None) -> str:
    """The declared content type without parameters, if it looks like one."""
    value = (raw or "").split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.match(value) else FALLBACK_TYPE


def served_type(recorded: str) -> str:
    """What a download is served as: the recorded type, unless a browser could render it."""
    return FALLBACK_TYPE if _ACTIVE.search(recorded) else recorded


@dataclass(frozen=True)
class Upload:
    kind: OwnerKind
    owner_id: uuid.UUID
    filename: str
    content_type: str


async def store_upload(
    conn: Conn,
    actor: Actor,
    upload: Upload,
    body: AsyncIterable[bytes],
    *,
    max_bytes: int,
) -> Row:
    """Writes the body as chunks while it arrives; TooLarge once it passes `max_bytes`.

    `conn` must be a transaction that is rolled back when this raises.
    """
    await store.owner_exists(conn, upload.kind, upload.owner_id)
    document_id = uuid.uuid4()
    await store.insert_document(
        conn,
        document_id=document_id,
        kind=upload.kind,
        owner_id=upload.owner_id,
        filename=clean_filename(upload.filename),
        content_type=declared_type(upload.content_type),
        uploaded_by=actor.user_id,
    )
    digest = hashlib.sha256()
    size = 0
    seq = 0
    pending = bytearray()
    async for piece in body:
        if not piece:
            continue
        size += len(piece)
        if size > max_bytes:
            raise TooLarge(f"a document may have at most {max_bytes} bytes")
        digest.update(piece)
        pending += piece
        while len(pending) >= CHUNK_BYTES:
            await store.insert_chunk(
                conn, document_id=document_id, seq=seq, data=bytes(pending[:CHUNK_BYTES])
            )
            del pending[:CHUNK_BYTES]
            seq += 1
    if pending:
        await store.insert_chunk(conn, document_id=document_id, seq=seq, data=bytes(pending))
    return await store.complete_document(
        conn, document_id=document_id, size_bytes=size, sha256=digest.hexdigest()
    )


async def list_for(conn: Conn, kind: OwnerKind, owner_id: uuid.UUID) -> list[Row]:
    await store.owner_exists(conn, kind, owner_id)
    return await store.documents_of(conn, kind, owner_id)


async def get(conn: Conn, document_id: uuid.UUID) -> Row:
    return await store.document(conn, document_id)


async def delete(conn: Conn, document_id: uuid.UUID) -> None:
    await store.document(conn, document_id)
    await store.delete_document(conn, document_id)


async def stream(
    database: Database, tenant_id: uuid.UUID, document_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """The bytes of a document, in its own tenant transaction, chunk by chunk."""
    async with database.tenant_transaction(tenant_id) as conn:
        async for data in store.chunks(conn, document_id):
            yield data


def audit_details(row: Row) -> dict[str, object]:
    """No file name: names often name people, and the audit log can never be erased."""
    return {
        "document_id": str(row["id"]),
        "size_bytes": row["size_bytes"],
        "sha256": row["sha256"],
    }


def content_disposition(filename: str) -> str:
    """RFC 6266: an ASCII fallback and the exact name as filename*=UTF-8''..."""
    from urllib.parse import quote

    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\;%' else "_" for ch in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
