"""CSV import (preview, broken rows, BOM, `;`, Windows-1252) and export (streamed, guarded)."""

import csv
import io
import uuid

import psycopg

from tests.crm.documents.conftest import AuditedCrm
from tests.crm.harness import TenantClient
from tresor_crm.transfer import decode, detect_delimiter, guard, unformula


async def import_csv(client: TenantClient, entity: str, data: bytes, dry_run: bool = False) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        f"api/v1/import/{entity}?dry_run={'true' if dry_run else 'false'}",
        content=data,
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    result: dict = response.json()  # type: ignore[type-arg]
    return result


BROKEN = (
    "\ufeffVorname;Nachname;E-Mail;Firma;Telefon;Einwilligung\r\n"
    "Erika;Mustermann;erika@example.de;Müller GmbH;+49 89 1234;ja\r\n"
    "Max;;max@example.de;;;nein\r\n"  # line 3: no last name
    "Jörg;Weiß;kein-mail;;;\r\n"  # line 4: bad e-mail
    "Anna;Schulz;anna@example.de;Unbekannt AG;;\r\n"  # line 5: unknown company
    '"Hans\r\nPeter";Groß;;;;vielleicht\r\n'  # lines 6-7: bad consent
    "Eva;Braun;eva@example.de;müller gmbh;;1\r\n"  # line 8: good, company any case
).encode()


async def test_import_reports_bad_rows_and_writes_only_good_ones(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    company = await alice.company("Müller GmbH")

    preview = await import_csv(alice, "contacts", BROKEN, dry_run=True)
    assert preview["delimiter"] == ";"
    assert (preview["rows"], preview["good"], preview["bad"]) == (6, 2, 4)
    assert preview["imported"] == 0
    assert [p["line"] for p in preview["problems"]] == [3, 4, 5, 6]
    assert "last_name" in preview["problems"][0]["errors"]
    assert "emails" in preview["problems"][1]["errors"]
    assert "company" in preview["problems"][2]["errors"]
    assert "consent" in preview["problems"][3]["errors"]
    assert preview["preview"][0]["values"]["last_name"] == "Mustermann"
    assert (await alice.get("api/v1/contacts")).json()["items"] == []  # a preview writes nothing

    result = await import_csv(alice, "contacts", BROKEN)
    assert result["imported"] == 2
    assert [p["line"] for p in result["problems"]] == [3, 4, 5, 6]
    contacts = (await alice.get("api/v1/contacts")).json()["items"]
    assert sorted(c["last_name"] for c in contacts) == ["Braun", "Mustermann"]
    erika = next(c for c in contacts if c["last_name"] == "Mustermann")
    assert erika["company_id"] == company["id"]
    assert erika["emails"] == ["erika@example.de"]
    assert erika["consent"] is True
    assert erika["consent_at"] is not None
    history = (await alice.get(f"api/v1/contacts/{erika['id']}/history")).json()
    assert history  # imported rows are recorded like any other creation


async def test_windows_1252_comma_and_companies(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    data = 'name,city,website,tags\nBäckerei Groß,Köln,baeckerei.example,"a, b"\n,Bonn,,\n'
    result = await import_csv(alice, "companies", data.encode("cp1252"))
    assert result["delimiter"] == ","
    assert result["imported"] == 1
    assert [p["line"] for p in result["problems"]] == [3]
    company = (await alice.get("api/v1/companies")).json()["items"][0]
    assert company["name"] == "Bäckerei Groß"
    assert company["city"] == "Köln"
    assert company["tags"] == ["a", "b"]


async def test_a_row_failing_in_the_database_is_rolled_back_alone(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    # A trigger refuses one name: the row's savepoint is rolled back, the others stay.
    async with await psycopg.AsyncConnection.connect(audited.crm.owner_url) as conn:
        await conn.execute(
            """CREATE FUNCTION refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 IF NEW.last_name = 'Verboten' THEN RAISE check_violation; END IF;
                 RETURN NEW;
               END $$"""
        )
        await conn.execute(
            "CREATE TRIGGER refuse_name BEFORE INSERT ON contacts FOR EACH ROW "
            "EXECUTE FUNCTION refuse_name()"
        )
        await conn.commit()
    data = b"last_name\nErlaubt\nVerboten\nAuchErlaubt\n"
    result = await import_csv(alice, "contacts", data)
    assert result["imported"] == 2
    assert [p["line"] for p in result["problems"]] == [3]
    names = sorted(c["last_name"] for c in (await alice.get("api/v1/contacts")).json()["items"])
    assert names == ["AuchErlaubt", "Erlaubt"]
    async with await psycopg.AsyncConnection.connect(audited.crm.owner_url) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM record_history WHERE new_value = '\"Verboten\"'::jsonb"
        )
        row = await cur.fetchone()
        assert row is not None
        assert row[0] == 0


async def test_bad_files_are_refused(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    no_name = await alice.post("api/v1/import/contacts", content=b"vorname;ort\nA;B\n")
    assert no_name.status_code == 422
    empty = await alice.post("api/v1/import/contacts", content=b"")
    assert empty.status_code == 422
    huge = await alice.post("api/v1/import/contacts", content=b"x" * (5 * 1024 * 1024 + 1))
    assert huge.status_code == 413


async def test_export_round_trips_and_guards_formulas(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    company = await alice.company('=HYPERLINK("http://evil")')
    await alice.contact(
        "Schmidt",
        first_name="@Erika",
        company_id=company["id"],
        emails=["erika@example.de", "e2@example.de"],
        phones=["+49 89 1234"],
        tags=["kunde", "-vip"],
    )
    await alice.contact("Özdemir", first_name="Ayşe")
    for i in range(1200):  # more than two export pages
        await _quick_contact(audited, alice, f"Nummer{i:04d}")

    response = await alice.get("api/v1/export/contacts.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert len(rows) == 1202
    schmidt = next(r for r in rows if r["last_name"] == "Schmidt")
    assert schmidt["first_name"] == "'@Erika"
    assert schmidt["company"] == '\'=HYPERLINK("http://evil")'
    assert schmidt["phones"] == "'+49 89 1234"
    assert schmidt["emails"] == "erika@example.de, e2@example.de"
    assert any(r["first_name"] == "Ayşe" for r in rows)

    filtered = await alice.get("api/v1/export/contacts.csv?q=zdemir")
    filtered_rows = list(
        csv.DictReader(io.StringIO(filtered.content.decode("utf-8-sig")), delimiter=";")
    )
    assert [r["last_name"] for r in filtered_rows] == ["Özdemir"]

    events = await audited.audit_events(alice.tenant_id, "contacts.exported")
    assert len(events) == 2
    assert "zdemir" not in events[0].details_json

    # The export imports again into another tenant, the same values coming back.
    bob = await audited.tenant()
    await bob.company('=HYPERLINK("http://evil")')
    again = await import_csv(bob, "contacts", filtered.content)
    assert again["imported"] == 1
    assert again["problems"] == []
    schmidt_only = await alice.get("api/v1/export/contacts.csv?q=schmidt")
    first = await import_csv(bob, "contacts", schmidt_only.content)
    assert first["imported"] == 1
    assert first["problems"] == []
    schmidt_again = next(c for c in (await bob.get("api/v1/contacts?q=schmidt")).json()["items"])
    assert schmidt_again["first_name"] == "@Erika"
    assert schmidt_again["phones"] == ["+49 89 1234"]
    assert schmidt_again["tags"] == ["kunde", "-vip"]


async def _quick_contact(audited: AuditedCrm, client: TenantClient, last_name: str) -> None:
    async with audited.crm.database.tenant_transaction(client.tenant_id) as conn:
        await conn.execute(
            "INSERT INTO contacts (id, last_name) VALUES (%s, %s)", (uuid.uuid4(), last_name)
        )


async def test_export_refused_when_the_audit_log_is_down(audited: AuditedCrm) -> None:
    alice = await audited.tenant()
    await alice.contact("Geheim")
    assert audited.auth.server is not None
    await audited.auth.server.stop(grace=0)
    response = await alice.get("api/v1/export/contacts.csv")
    assert response.status_code == 503
    assert b"Geheim" not in response.content


def test_helpers() -> None:
    assert decode("\ufeffa;b".encode()) == "a;b"
    assert decode("Müller".encode("cp1252")) == "Müller"
    assert detect_delimiter("a;b;c\n1;2;3") == ";"
    assert detect_delimiter("a,b,c\n") == ","
    assert detect_delimiter('"x;y",b,c\n') == ","
    assert detect_delimiter("a\tb\n") == "\t"
    for cell in ("=1+1", "+49", "-5", "@SUM(A1)", "\tx"):
        assert guard(cell).startswith("'")
        assert unformula(guard(cell)) == cell
    assert guard("Müller") == "Müller"
