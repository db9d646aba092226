"""The browser's way: a multipart form streamed into chunks, CSRF first, audited download."""

import hashlib
import os

from tests.crm.documents.conftest import AuditedCrm


async def test_form_upload_download_and_delete(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    contact = await alice.contact("Schmidt")
    data = os.urandom(700 * 1024)
    csrf = "csrf-" + alice.link
    where = f"records/contact/{contact['id']}/documents"

    refused = await alice.post(where, data={"csrf": "wrong"}, files={"file": ("a.bin", b"x")})
    assert refused.status_code == 403

    uploaded = await alice.post(
        where,
        data={"csrf": csrf, "next": alice.path(where)},
        files={"file": ("../Angebot für Müller.pdf", data, "application/pdf")},
    )
    assert uploaded.status_code == 303, uploaded.text
    assert uploaded.headers["location"] == alice.path(where)

    page = await alice.get(where)
    assert page.status_code == 200
    assert "Angebot für Müller.pdf" in page.text
    listed = (await alice.get(f"api/v1/contacts/{contact['id']}/documents")).json()
    assert listed[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed[0]["content_type"] == "application/pdf"

    download = await alice.get(f"documents/{listed[0]['id']}/download")
    assert download.status_code == 200
    assert download.content == data
    assert len(await audited.audit_events(alice.tenant_id, "document.downloaded")) == 1

    deleted = await alice.post(f"documents/{listed[0]['id']}/delete", data={"csrf": csrf})
    assert deleted.status_code == 303
    assert (await alice.get(f"api/v1/contacts/{contact['id']}/documents")).json() == []
