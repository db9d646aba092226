"""Documents: 50 MB streamed in and out with flat memory, limits, names, audit, isolation."""

import asyncio
import hashlib
import os
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from tests.crm.documents.conftest import AuditedCrm
from tests.crm.harness import TenantClient
from tresor_common.identity import IDENTITY_HEADER
from tresor_crm.documents import clean_filename, declared_type, served_type

MB = 1024 * 1024
LIMIT = 50 * MB


async def random_body(size: int, digest: Any, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`size` random bytes in pieces, hashed on the way; never all in memory."""
    sent = 0
    while sent < size:
        data = os.urandom(min(piece, size - sent))
        digest.update(data)
        sent += len(data)
        yield data


async def upload(
    client: TenantClient,
    owner: str,
    content: Any,
    filename: str = "bericht.pdf",
    content_type: str = "application/pdf",
) -> Any:
    return await client.post(
        f"api/v1/{owner}/documents",
        content=content,
        headers={"X-Filename": quote(filename), "Content-Type": content_type},
    )


async def asgi_download(app: Any, client: TenantClient, document_id: str) -> tuple[int, Any, str]:
    """Calls the ASGI app directly and hashes the body as it streams, keeping none of it."""
    path = client.path(f"api/v1/documents/{document_id}")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"crm"),
            (IDENTITY_HEADER.lower().encode(), client.identity_header().encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("crm", 80),
    }
    done = asyncio.Event()
    sent_request = False

    async def receive() -> dict[str, Any]:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    digest = hashlib.sha256()
    result: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
            result["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            digest.update(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    return result["status"], result["headers"], digest.hexdigest()


async def rows_left(audited: AuditedCrm) -> tuple[int, int]:
    # The owner's connection is not bound to a tenant: it sees every row.
    async with await psycopg.AsyncConnection.connect(audited.crm.owner_url) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM document_chunks)"
        )
        row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


@pytest.mark.timeout(300)
async def test_50_mb_round_trip_is_identical_with_flat_memory(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    contact = await alice.contact("Schmidt")
    sent = hashlib.sha256()

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        response = await upload(alice, f"contacts/{contact['id']}", random_body(LIMIT, sent))
        _, peak = tracemalloc.get_traced_memory()
        upload_extra = peak - before

        assert response.status_code == 201, response.text
        meta = response.json()
        assert meta["size_bytes"] == LIMIT
        assert meta["sha256"] == sent.hexdigest()
        assert meta["content_type"] == "application/pdf"

        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        status, headers, received = await asgi_download(audited.app, alice, meta["id"])
        _, peak = tracemalloc.get_traced_memory()
        download_extra = peak - before
    finally:
        tracemalloc.stop()

    print(
        f"\n50 MB document: upload peak +{upload_extra / MB:.1f} MiB, "
        f"download peak +{download_extra / MB:.1f} MiB (tracemalloc)"
    )
    assert status == 200
    assert received == sent.hexdigest()
    assert headers["content-length"] == str(LIMIT)
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("attachment;")
    assert headers["content-type"] == "application/pdf"
    assert upload_extra < 20 * MB, upload_extra
    assert download_extra < 20 * MB, download_extra

    events = await audited.audit_events(alice.tenant_id, "document.downloaded")
    assert len(events) == 1
    assert meta["id"] in events[0].details_json
    assert events[0].actor_user_id == str(alice.user_id)
    assert str(LIMIT) in events[0].details_json


@pytest.mark.timeout(300)
async def test_one_byte_too_many_is_refused_and_leaves_nothing(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    company = await alice.company("Groß AG")
    # Streamed without a length: the server counts and stops at the limit.
    response = await upload(
        alice, f"companies/{company['id']}", random_body(LIMIT + 1, hashlib.sha256())
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    # Announced with a length: refused before a byte is read.
    declared = await alice.post(
        f"api/v1/companies/{company['id']}/documents",
        content=b"x" * 10,
        headers={"X-Filename": "a.bin", "Content-Length": str(LIMIT + 1)},
    )
    assert declared.status_code == 413
    assert await rows_left(audited) == (0, 0)
    listed = await alice.get(f"api/v1/companies/{company['id']}/documents")
    assert listed.json() == []


def test_file_names_are_cleaned() -> None:
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("..\\..\\windows\\system.ini") == "system.ini"
    assert clean_filename("bad\r\nname\x00.txt") == "badname.txt"
    assert clean_filename("...hidden") == "hidden"
    assert clean_filename("Übersicht für Müller & Söhne.pdf") == "Übersicht für Müller & Söhne.pdf"
    assert clean_filename("evil\u202egnp.exe") == "evilgnp.exe"
    assert clean_filename("/") == "document"
    long = clean_filename("a" * 1000 + ".pdf")
    assert len(long) == 200
    assert long.endswith(".pdf")
    assert declared_type("text/html; charset=utf-8") == "text/html"
    assert declared_type("nonsense") == "application/octet-stream"
    assert served_type("image/svg+xml") == "application/octet-stream"
    assert served_type("application/pdf") == "application/pdf"


async def test_names_and_types_through_the_api(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    contact = await alice.contact("Weiß")
    where = f"contacts/{contact['id']}"
    cases = {
        "../../etc/passwd": "passwd",
        "rech\r\nnung\x00.pdf": "rechnung.pdf",
        "x" * 300 + ".docx": "x" * 195 + ".docx",
        "Angebot für Müller.pdf": "Angebot für Müller.pdf",
    }
    for raw, expected in cases.items():
        response = await upload(alice, where, b"%PDF-1.7 test", filename=raw)
        assert response.status_code == 201, response.text
        assert response.json()["filename"] == expected

    page = await upload(alice, where, b"<script>alert(1)</script>", "x.html", "text/html")
    assert page.json()["content_type"] == "text/html"  # recorded as declared
    download = await alice.get(f"api/v1/documents/{page.json()['id']}")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"  # served inert
    assert download.headers["x-content-type-options"] == "nosniff"

    listed = (await alice.get(f"api/v1/{where}/documents")).json()
    umlaut = next(d for d in listed if d["filename"] == "Angebot für Müller.pdf")
    response = await alice.get(f"api/v1/documents/{umlaut['id']}")
    assert response.content == b"%PDF-1.7 test"
    assert (
        "filename*=UTF-8''Angebot%20f%C3%BCr%20M%C3%BCller.pdf"
        in (response.headers["content-disposition"])
    )
    assert len(await audited.audit_events(alice.tenant_id, "document.downloaded")) == 2


async def test_download_refused_when_the_audit_log_is_down(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    deal_less = await alice.company("Audit GmbH")
    doc = (await upload(alice, f"companies/{deal_less['id']}", b"secret")).json()
    assert (await alice.get(f"api/v1/documents/{doc['id']}")).status_code == 200

    assert audited.auth.server is not None
    await audited.auth.server.stop(grace=0)
    refused = await alice.get(f"api/v1/documents/{doc['id']}")
    assert refused.status_code == 503
    assert b"secret" not in refused.content
    assert refused.headers["content-type"] == "application/problem+json"


async def test_other_tenants_see_nothing(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    mallory = await audited.tenant()
    contact = await alice.contact("Schmidt")
    doc = (await upload(alice, f"contacts/{contact['id']}", b"nur fuer alice")).json()
    await mallory.contact("Schmidt")

    assert (await mallory.get(f"api/v1/contacts/{contact['id']}/documents")).status_code == 404
    assert (await mallory.get(f"api/v1/documents/{doc['id']}")).status_code == 404
    assert (await mallory.get(f"api/v1/documents/{doc['id']}/meta")).status_code == 404
    assert (await mallory.delete(f"api/v1/documents/{doc['id']}")).status_code == 404
    sneaked = await upload(mallory, f"contacts/{contact['id']}", b"x")
    assert sneaked.status_code == 404
    assert (await mallory.get(f"api/v1/documents/{uuid.uuid4()}")).status_code == 404
    assert await audited.audit_events(mallory.tenant_id, "document.downloaded") == []

    # Still there for alice; then deleted with its chunks.
    assert (await alice.get(f"api/v1/documents/{doc['id']}")).content == b"nur fuer alice"
    assert (await alice.delete(f"api/v1/documents/{doc['id']}")).status_code == 204
    assert (await alice.get(f"api/v1/documents/{doc['id']}")).status_code == 404
    assert await rows_left(audited) == (0, 0)


async def test_deal_documents_and_missing_owner(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    missing = await upload(alice, f"contacts/{uuid.uuid4()}", b"x")
    assert missing.status_code == 404
    no_name = await alice.post(
        f"api/v1/contacts/{uuid.uuid4()}/documents", content=b"x", headers={}
    )
    assert no_name.status_code == 422
    empty = await upload(alice, f"companies/{(await alice.company())['id']}", b"", "leer.txt")
    assert empty.status_code == 201
    assert empty.json()["size_bytes"] == 0
    assert empty.json()["sha256"] == hashlib.sha256(b"").hexdigest()
    assert (await alice.get(f"api/v1/documents/{empty.json()['id']}")).content == b""
