"""The import/export pages: upload, preview with line numbers, confirm, result; CSV download."""

import csv
import hashlib
import io
import re
from collections.abc import AsyncIterator

import httpx

from tests.crm.documents.conftest import AuditedCrm
from tests.crm.harness import TenantClient
from tests.crm.ui.pages import assert_links_stay_under_prefix, parse

BROKEN = (
    "\ufeffVorname;Nachname;E-Mail;Firma;Einwilligung\r\n"
    "Erika;Mustermann;erika@example.de;Müller GmbH;ja\r\n"
    "Max;;max@example.de;;nein\r\n"  # line 3: no last name
    "Jörg;Weiß;kein-mail;;\r\n"  # line 4: bad e-mail
    "Anna;Schulz;anna@example.de;Unbekannt AG;\r\n"  # line 5: unknown company
    "Eva;Braun;eva@example.de;;1\r\n"  # line 6: good
).encode()


def _csrf(who: TenantClient) -> str:
    return "csrf-" + who.link


async def _upload(
    who: TenantClient, step: str, data: bytes, entity: str = "contact", **fields: str
) -> httpx.Response:
    # Fields in the form's order: the token and the choices before the file.
    return await who.post(
        f"transfer/{step}",
        data={"csrf": _csrf(who), "entity": entity, **fields},
        files={"file": ("kontakte.csv", data, "text/csv")},
    )


def _lines_of(table_html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="line-(\d+)">', table_html)]


async def test_the_page_renders_under_the_prefix(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    response = await alice.get("transfer?q=erika")
    assert response.status_code == 200
    page = assert_links_stay_under_prefix(response, alice)
    urls = [url for _, _, url in page.urls]
    assert alice.path("transfer/preview") in urls
    assert alice.path("transfer/export/contacts.csv") in urls
    assert alice.path("transfer/export/companies.csv") in urls  # the second button's formaction
    assert page.inputs["csrf"] == _csrf(alice)
    assert page.inputs["q"] == "erika"
    assert 'aria-current="page"' in response.text
    assert "Import/Export" in response.text


async def test_import_with_broken_rows_through_preview_and_confirm(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    await alice.company("Müller GmbH")

    preview = await _upload(alice, "preview", BROKEN)
    assert preview.status_code == 200, preview.text
    page = assert_links_stay_under_prefix(preview, alice)
    assert alice.path("transfer/import") in [url for _, _, url in page.urls]
    assert page.inputs["sha256"] == hashlib.sha256(BROKEN).hexdigest()
    text = preview.text
    assert re.search(r'id="count-good">2<', text)
    assert re.search(r'id="count-bad">3<', text)
    problems = text.split('id="problems-head"')[1].split('id="rows-head"')[0]
    assert _lines_of(problems) == [3, 4, 5]
    line3 = problems.split('id="line-3"')[1].split("</tr>")[0]
    assert "Nachname" in line3  # the field, in the page's language
    line5 = problems.split('id="line-5"')[1].split("</tr>")[0]
    assert "Firma" in line5
    assert "Unbekannt AG" in line5
    assert "Mustermann" in text
    assert "erika@example.de" in text
    assert (await alice.get("api/v1/contacts")).json()["items"] == []  # a preview writes nothing

    other = await _upload(
        alice, "import", BROKEN + b"Neu;Person;;;\r\n", sha256=page.inputs["sha256"]
    )
    assert other.status_code == 409  # not the previewed file: its own preview, nothing imported
    assert "Person" in other.text
    assert (await alice.get("api/v1/contacts")).json()["items"] == []

    done = await _upload(alice, "import", BROKEN, sha256=page.inputs["sha256"])
    assert done.status_code == 200, done.text
    assert_links_stay_under_prefix(done, alice)
    assert "2 Einträge importiert" in done.text
    assert _lines_of(done.text) == [3, 4, 5]
    contacts = (await alice.get("api/v1/contacts")).json()["items"]
    assert sorted(c["last_name"] for c in contacts) == ["Braun", "Mustermann"]


async def test_file_problems_are_shown_on_the_page(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    no_header = await _upload(alice, "preview", b"foo;bar\r\n1;2\r\n")
    assert no_header.status_code == 422
    assert parse(no_header.text).errors["file"]  # next to the file field
    assert_links_stay_under_prefix(no_header, alice)

    empty = await alice.post(
        "transfer/preview",
        data={"csrf": _csrf(alice), "entity": "contact"},
        files={"file": ("", b"", "application/octet-stream")},
    )
    assert empty.status_code == 422
    assert "Bitte wählen Sie eine Datei" in empty.text

    too_large = await _upload(alice, "preview", b"Nachname\r\n" + b"x" * (5 * 1024 * 1024 + 1))
    assert too_large.status_code == 413
    assert "5 MB" in too_large.text


async def test_companies_import_in_english(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    assert (
        await alice.post("language", data={"csrf": _csrf(alice), "lang": "en"})
    ).status_code == 303
    data = b"name,city\nAcme,Berlin\n,Bonn\n"
    preview = await _upload(alice, "preview", data, entity="company")
    assert "Import preview" in preview.text
    sha = parse(preview.text).inputs["sha256"]
    done = await _upload(alice, "import", data, entity="company", sha256=sha)
    assert "1 entries imported" in done.text
    assert _lines_of(done.text) == [3]
    assert [c["name"] for c in (await alice.get("api/v1/companies")).json()["items"]] == ["Acme"]


async def test_csrf_is_checked_before_the_file(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    for step in ("preview", "import"):
        refused = await alice.post(
            f"transfer/{step}",
            data={"csrf": "forged", "entity": "contact"},
            files={"file": ("k.csv", BROKEN, "text/csv")},
        )
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
    no_token = await alice.post("transfer/import", files={"file": ("k.csv", BROKEN, "text/csv")})
    assert no_token.status_code == 403
    assert (await alice.get("api/v1/contacts")).json()["items"] == []


async def test_export_downloads_parse_and_respect_the_search(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    company = await alice.company("Müller GmbH", city="München")
    await alice.contact("Schmidt", first_name="Erika", company_id=company["id"])
    await alice.contact("Weber", first_name="=HYPERLINK()")

    everything = await alice.get("transfer/export/contacts.csv")
    assert everything.status_code == 200
    assert everything.headers["content-type"].startswith("text/csv")
    assert everything.headers["content-disposition"] == 'attachment; filename="kontakte.csv"'
    rows = list(csv.DictReader(io.StringIO(everything.content.decode("utf-8-sig")), delimiter=";"))
    assert sorted(r["last_name"] for r in rows) == ["Schmidt", "Weber"]
    assert next(r for r in rows if r["last_name"] == "Weber")["first_name"] == "'=HYPERLINK()"

    searched = await alice.get("transfer/export/contacts.csv", params={"q": "erika"})
    rows = list(csv.DictReader(io.StringIO(searched.content.decode("utf-8-sig")), delimiter=";"))
    assert [(r["last_name"], r["company"]) for r in rows] == [("Schmidt", "Müller GmbH")]

    companies = await alice.get("transfer/export/companies.csv")
    rows = list(csv.DictReader(io.StringIO(companies.content.decode("utf-8-sig")), delimiter=";"))
    assert [(r["name"], r["city"]) for r in rows] == [("Müller GmbH", "München")]
    assert len(await audited.audit_events(alice.tenant_id, "contacts.exported")) == 2
    assert len(await audited.audit_events(alice.tenant_id, "companies.exported")) == 1


async def test_a_streamed_upload_without_length_stops_at_the_limit(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    boundary = "tresor-boundary"
    sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
            f"{_csrf(alice)}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="k.csv"\r\n'
            "Content-Type: text/csv\r\n\r\nNachname\r\n"
        )
        yield head.encode()
        for _ in range(12):  # 12 MB offered, no Content-Length announced
            sent.append(1)
            yield b"x" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await alice.post(
        "transfer/preview",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert len(sent) <= 7  # refused once past 5 MB, not after reading everything
