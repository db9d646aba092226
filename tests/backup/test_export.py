"""Customer export: one ZIP with all of a tenant's data and nothing of another's, flat memory."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tracemalloc
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.backup.export_harness import MB, ExportWorld, Tenant, export_world
from tests.crm.harness import CrmHarness
from tresor_backup import export
from tresor_backup.export_zip import clean_name, csv_cell, unique_name


@pytest.fixture
async def world(
    start_auth: Callable[..., Any], crm: CrmHarness, tmp_path: Path, postgres_admin_url: str
) -> AsyncIterator[ExportWorld]:
    async with export_world(start_auth, crm, tmp_path / "exports", postgres_admin_url) as built:
        yield built


async def _finished(service: export.ExportService, tenant: Tenant) -> export.ExportJob:
    job = await service.start(
        uuid.UUID(tenant.id), actor_user_id=uuid.UUID(tenant.admin.id), client_ip="192.0.2.7"
    )
    await service.wait()
    done = service.status(uuid.UUID(tenant.id), uuid.UUID(job.export_id))
    assert done.state == "done", done.error
    return done


def _csv(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    raw = archive.read(name)
    assert raw.startswith(b"\xef\xbb\xbf"), f"{name}: no BOM for Excel"
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig")), delimiter=";"))


def _json(archive: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    values: list[dict[str, Any]] = json.loads(archive.read(name))
    return values


async def test_export_holds_all_of_a_tenant_and_nothing_of_another(world: ExportWorld) -> None:
    alpha, bravo = await world.tenant("alpha"), await world.tenant("bravo")
    await world.seed(alpha, "Alpha", contacts=5, formula_name=True)
    await world.seed(bravo, "Bravo", contacts=4)
    contact, company = alpha.contacts[0], alpha.companies[0]
    await world.document(alpha, record=("contact", contact), filename="bericht.pdf", size=700_000)
    await world.document(alpha, record=("contact", contact), filename="Bericht.pdf", size=10)
    await world.document(
        alpha, record=("company", company), filename="..\\..\\etc/passwd", size=300
    )
    await world.document(alpha, record=("deal", alpha.deals[0]), filename="CON", size=0)
    await world.document(
        bravo,
        record=("contact", bravo.contacts[0]),
        filename="bravo-geheim.pdf",
        size=5000,
        marker=b"BRAVO-SECRET-BYTES",
    )

    service = world.service()
    job = await _finished(service, alpha)
    path = service.zip_path(uuid.UUID(alpha.id), uuid.UUID(job.export_id))

    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        names = set(archive.namelist())
        for expected in (
            "index.html",
            "audit_log.jsonl",
            *(
                f"{kind}.{ext}"
                for kind in (
                    "companies",
                    "contacts",
                    "deals",
                    "notes",
                    "tasks",
                    "documents",
                    "users",
                )
                for ext in ("csv", "json")
            ),
        ):
            assert expected in names

        # Counts: every record of each kind, in CSV and JSON alike.
        for name, ids in (
            ("companies", alpha.companies),
            ("contacts", alpha.contacts),
            ("deals", alpha.deals),
            ("notes", alpha.activities),
            ("tasks", alpha.tasks),
        ):
            rows, records = _csv(archive, f"{name}.csv"), _json(archive, f"{name}.json")
            assert sorted(row["id"] for row in rows) == sorted(ids), name
            assert sorted(record["id"] for record in records) == sorted(ids), name
        assert job.counts["contacts"] == len(alpha.contacts)

        # Formula injection is defused in the CSV and kept exact in the JSON.
        contacts = _csv(archive, "contacts.csv")
        assert any(
            row["last_name"] == '\'=HYPERLINK("http://evil.example","x")' for row in contacts
        )
        assert any(row["first_name"] == "'@SUM(A1)" for row in contacts)
        assert any(
            record["last_name"].startswith("=HYPERLINK")
            for record in _json(archive, "contacts.json")
        )
        notes = _csv(archive, "notes.csv")
        assert notes[0]["body"] == 'Alpha: Rückruf vereinbart; "Angebot"\nzweite Zeile'

        # Every document byte for byte, in a folder per record, names cleaned and unique.
        documents = _csv(archive, "documents.csv")
        assert len(documents) == len(alpha.documents)
        exported = {
            hashlib.sha256(archive.read(row["path"])).hexdigest(): row["path"] for row in documents
        }
        assert sorted(exported) == sorted(sha for _, sha, _ in alpha.documents.values())
        paths = {row["path"] for row in documents}
        folder = [p for p in paths if p.startswith("documents/contact/")]
        assert {p.rsplit("/", 1)[1] for p in folder} == {"bericht.pdf", "Bericht (2).pdf"}
        assert all(contact in p for p in folder)
        assert any(p.endswith("/passwd") and p.startswith("documents/company/") for p in paths)
        assert any(p.endswith("/_CON") and p.startswith("documents/deal/") for p in paths)
        assert all(".." not in p for p in names)

        # Users without secrets; the audit log of this tenant.
        users = _csv(archive, "users.csv")
        assert {row["username"] for row in users} == {"alpha-admin", "alpha-user"}
        assert {row["roles"] for row in users} == {"admin", "user"}
        events = [json.loads(line) for line in archive.read("audit_log.jsonl").splitlines()]
        assert events
        assert all(event["tenant_id"] == alpha.id for event in events)
        assert "export.requested" in {event["event"] for event in events}

        index = archive.read("index.html").decode()
        for name in ("contacts.csv", "documents.csv", "audit_log.jsonl"):
            assert f'href="{name}"' in index
        # Readable offline: nothing is loaded from elsewhere, every link stays in the ZIP.
        assert "src=" not in index
        assert 'href="http' not in index
        assert "@import" not in index

        # Nothing of the other tenant anywhere, and no password hash.
        forbidden = [
            bravo.id.encode(),
            *(value.encode() for value in bravo.contacts + bravo.companies + bravo.deals),
            *(value.encode() for value in bravo.activities + bravo.tasks),
            *(value.encode() for value in bravo.documents),
            b"Bravo",
            b"bravo",
            b"BRAVO-SECRET-BYTES",
            b"$argon2",
        ]
        for name in names:
            content = archive.read(name)
            for needle in forbidden:
                assert needle not in content, f"{needle!r} in {name}"


async def test_export_is_audited(world: ExportWorld) -> None:
    alpha, bravo = await world.tenant("alpha"), await world.tenant("bravo")
    await world.seed(alpha, "Alpha", contacts=1)
    service = world.service()
    job = await _finished(service, alpha)

    events = {event.event: event for event in await world.audit_events(alpha.id)}
    assert events["export.requested"].actor_user_id == alpha.admin.id
    assert events["export.requested"].client_ip == "192.0.2.7"
    assert json.loads(events["export.completed"].details_json)["export_id"] == job.export_id
    assert "export.downloaded" not in events

    await service.open(
        uuid.UUID(alpha.id),
        uuid.UUID(job.export_id),
        actor_user_id=uuid.UUID(alpha.admin.id),
        client_ip="192.0.2.7",
    )
    events = {event.event: event for event in await world.audit_events(alpha.id)}
    assert json.loads(events["export.downloaded"].details_json)["export_id"] == job.export_id
    assert not [e for e in await world.audit_events(bravo.id) if e.event.startswith("export.")]


async def test_only_an_admin_of_the_tenant_may_export_or_download(world: ExportWorld) -> None:
    alpha, bravo = await world.tenant("alpha"), await world.tenant("bravo")
    service = world.service()
    alpha_id = uuid.UUID(alpha.id)
    for who in (alpha.user.id, bravo.admin.id, str(uuid.uuid4())):
        with pytest.raises(export.Forbidden):
            await service.start(alpha_id, actor_user_id=uuid.UUID(who), client_ip="")
    job = await _finished(service, alpha)
    export_id = uuid.UUID(job.export_id)
    with pytest.raises(export.Forbidden):
        await service.open(
            alpha_id, export_id, actor_user_id=uuid.UUID(alpha.user.id), client_ip=""
        )
    # Another tenant does not even learn that the export exists.
    with pytest.raises(export.NotFound):
        service.status(uuid.UUID(bravo.id), export_id)
    with pytest.raises(export.NotFound):
        await service.open(
            uuid.UUID(bravo.id), export_id, actor_user_id=uuid.UUID(bravo.admin.id), client_ip=""
        )


async def test_expired_exports_are_deleted(world: ExportWorld) -> None:
    alpha = await world.tenant("alpha")
    now = [datetime(2027, 1, 1, 12, tzinfo=UTC)]
    service = world.service(keep=timedelta(hours=24), clock=lambda: now[0])
    job = await _finished(service, alpha)
    tenant_id, export_id = uuid.UUID(alpha.id), uuid.UUID(job.export_id)
    path = service.zip_path(tenant_id, export_id)
    assert job.expires_at == now[0] + timedelta(hours=24)

    now[0] += timedelta(hours=23)
    assert service.sweep() == 0
    assert path.is_file()

    now[0] += timedelta(hours=1)
    with pytest.raises(export.NotFound):  # expired is gone at once, even before the sweep
        service.status(tenant_id, export_id)
    assert service.sweep() == 1
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


async def test_memory_stays_flat_while_exporting(world: ExportWorld) -> None:
    alpha = await world.tenant("alpha")
    await world.seed(alpha, "Alpha", contacts=2000)
    for number in range(4):
        await world.document(
            alpha, record=("contact", alpha.contacts[number]), filename="scan.tif", size=5 * MB
        )
    service = world.service()

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        job = await _finished(service, alpha)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - before
    print(f"export of 2,000 contacts and 20 MiB of documents: peak +{extra / MB:.1f} MiB")
    assert job.counts["contacts"] == 2000
    assert job.progress.document_bytes == 20 * MB
    assert job.size_bytes > 20 * MB
    assert extra < 8 * MB, f"peak +{extra / MB:.1f} MiB"


def test_csv_cells_defuse_formulas() -> None:
    for dangerous in ("=1+1", "+49 711 1234", "-2", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("Müller") == "Müller"
    assert csv_cell(-2) == "-2"
    assert csv_cell(["a", "b"]) == "a, b"
    assert csv_cell(True) == "true"
    assert csv_cell(None) == ""


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("bericht.pdf", "bericht.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\Angebot.docx", "Angebot.docx"),
        ('a<b>c:"d|e?*.txt', "a_b_c__d_e__.txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("...", "document"),
        ("", "document"),
        ('=HYPERLINK("http://x")', "x_)"),
        ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ],
)
def test_file_names_are_cleaned(given: str, cleaned: str) -> None:
    assert clean_name(given) == cleaned


def test_file_names_are_unique_in_a_folder() -> None:
    taken: set[str] = set()
    names = [unique_name(name, taken) for name in ("a.pdf", "A.pdf", "a.pdf", "b", "b")]
    assert names == ["a.pdf", "A (2).pdf", "a (3).pdf", "b", "b (2)"]


async def test_a_failed_export_leaves_no_zip_and_says_why(world: ExportWorld) -> None:
    alpha = await world.tenant("alpha")
    service = world.service()
    await world.crm_grpc.stop(grace=0)
    job = await service.start(uuid.UUID(alpha.id), actor_user_id=None, client_ip="")
    await service.wait()
    failed = service.status(uuid.UUID(alpha.id), uuid.UUID(job.export_id))
    assert failed.state == "failed"
    assert failed.error == "crm: UNAVAILABLE"
    folder = service.zip_path(uuid.UUID(alpha.id), uuid.UUID(job.export_id)).parent
    assert [path.name for path in folder.iterdir()] == [f"{job.export_id}.json"]


async def test_exports_left_running_by_a_stopped_process_fail_on_start(
    world: ExportWorld,
) -> None:
    alpha = await world.tenant("alpha")
    tenant_id = uuid.UUID(alpha.id)
    stale = export.ExportJob(
        export_id=str(uuid.uuid4()),
        tenant_id=alpha.id,
        requested_at=datetime.now(UTC),
        state="running",
    )
    folder = world.directory / alpha.id
    folder.mkdir(parents=True)
    (folder / f"{stale.export_id}.json").write_text(stale.to_json(), encoding="utf-8")
    (folder / f"{stale.export_id}.zip.part").write_bytes(b"PK half")
    service = world.service()
    assert service.recover() == 1
    job = service.status(tenant_id, uuid.UUID(stale.export_id))
    assert job.state == "failed"
    assert not (folder / f"{stale.export_id}.zip.part").exists()


def test_folder_names_keep_the_whole_record_name() -> None:
    name = clean_name('=HYPERLINK("http://x/y") (1)', basename=False)
    assert name == "=HYPERLINK(_http___x_y_) (1)"
