"""Customer export ("hardcopy"): everything one tenant owns as one ZIP, streamed.

The ZIP is written to a file under the export folder entry by entry, straight from
the sources (the CRM's record stream, the documents' chunks, auth's users and
audit log), so memory stays flat however large the tenant is. Exports run in the
background; a finished one is kept for a while and then deleted. Requests and
downloads are written to the tenant's audit log, and an export is only ever
found again under the tenant it belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import jinja2

from tresor_backup import export_zip
from tresor_backup.export_zip import SpooledTable

log = logging.getLogger(__name__)

State = Literal["queued", "running", "done", "failed"]
TEMPLATES = Path(__file__).parent / "templates"
INDEX_DOCUMENT_LIMIT = 1000
READ_BUFFER = 64 * 1024

# One CSV/JSON pair per kind of CRM record, in the CRM stream's order.
TABLES: dict[str, tuple[str, list[str]]] = {
    "company": (
        "companies",
        [
            "id",
            "name",
            "website",
            "industry",
            "phone",
            "street",
            "postal_code",
            "city",
            "country",
            "tags",
            "custom",
            "version",
            "created_at",
            "updated_at",
            "deleted",
        ],
    ),
    "contact": (
        "contacts",
        [
            "id",
            "first_name",
            "last_name",
            "company_id",
            "company_name",
            "emails",
            "phones",
            "position",
            "street",
            "postal_code",
            "city",
            "country",
            "tags",
            "owner_id",
            "consent",
            "consent_at",
            "custom",
            "version",
            "created_at",
            "updated_at",
            "deleted",
        ],
    ),
    "deal": (
        "deals",
        [
            "id",
            "title",
            "company_id",
            "contact_ids",
            "value_cents",
            "stage_id",
            "stage_name",
            "expected_close",
            "owner_id",
            "outcome",
            "outcome_reason",
            "version",
            "created_at",
            "updated_at",
            "deleted",
        ],
    ),
    "activity": (
        "notes",
        [
            "id",
            "kind",
            "occurred_at",
            "body",
            "author_id",
            "author_name",
            "contact_id",
            "company_id",
            "deal_id",
            "created_at",
        ],
    ),
    "task": (
        "tasks",
        [
            "id",
            "title",
            "due_date",
            "assignee_id",
            "done",
            "done_at",
            "contact_id",
            "company_id",
            "deal_id",
            "version",
            "created_at",
        ],
    ),
}
DOCUMENT_COLUMNS = [
    "path",
    "record_type",
    "record_id",
    "record_name",
    "filename",
    "content_type",
    "size_bytes",
    "sha256",
    "uploaded_at",
    "uploaded_by",
]
USER_COLUMNS = [
    "id",
    "username",
    "display_name",
    "roles",
    "active",
    "allowlist",
    "created_at",
    "password_changed_at",
]


# -- errors ---------------------------------------------------------------------------------


class ExportError(Exception):
    """Base of the export's own errors; the servicer maps each to one status code."""


class InvalidArgument(ExportError):
    pass


class NotFound(ExportError):
    pass


class Forbidden(ExportError):
    pass


class Unavailable(ExportError):
    pass


# -- what the export reads ------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentChunk:
    """One chunk of one document, with the document's facts (repeated on every chunk)."""

    document_id: str
    record_type: str  # "contact", "company" or "deal"
    record_id: str
    record_name: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_at: str
    uploaded_by: str
    seq: int
    data: bytes


class ExportSources(Protocol):
    """Where an export's data comes from; every method reads only `tenant_id`'s data."""

    def records(self, tenant_id: uuid.UUID) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(kind, record as a JSON-ready dict) for every CRM record, kinds in TABLES order."""
        ...

    async def document_totals(self, tenant_id: uuid.UUID) -> tuple[int, int]:
        """(number of documents, their bytes)."""
        ...

    def documents(self, tenant_id: uuid.UUID) -> AsyncIterator[DocumentChunk]:
        """Chunks in order: by record, then document (oldest first), then seq."""
        ...

    async def users(self, tenant_id: uuid.UUID) -> list[dict[str, Any]]: ...

    def audit_events(self, tenant_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
        """The tenant's audit log page by page, newest first."""
        ...


class AuditTrail(Protocol):
    async def require_admin(self, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Raises Forbidden unless the user is an active admin of the tenant."""
        ...

    async def record(
        self,
        tenant_id: uuid.UUID,
        event: str,
        *,
        actor_user_id: uuid.UUID | None,
        client_ip: str,
        details: Mapping[str, Any],
    ) -> None:
        """Raises Unavailable when the event cannot be written."""
        ...


# -- progress and status --------------------------------------------------------------------


@dataclass
class Progress:
    phase: str = "queued"
    records: int = 0
    documents: int = 0
    documents_total: int = 0
    document_bytes: int = 0
    document_bytes_total: int = 0
    users: int = 0
    audit_events: int = 0


@dataclass
class ExportJob:
    export_id: str
    tenant_id: str
    requested_at: datetime
    requested_by: str = ""
    state: State = "queued"
    progress: Progress = field(default_factory=Progress)
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    size_bytes: int = 0
    sha256: str = ""
    error: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        values = asdict(self)
        for key in ("requested_at", "finished_at", "expires_at"):
            value = getattr(self, key)
            values[key] = value.isoformat() if value else None
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ExportJob:
        values = json.loads(text)
        for key in ("requested_at", "finished_at", "expires_at"):
            values[key] = datetime.fromisoformat(values[key]) if values[key] else None
        values["progress"] = Progress(**values["progress"])
        return cls(**values)


def parse_uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"{name}: not a UUID") from None


# -- writing one ZIP ------------------------------------------------------------------------


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    flat = {key: value for key, value in record.items() if key != "address"}
    flat.update(record.get("address") or {})
    return flat


async def write_export(
    tenant_id: uuid.UUID,
    target: Path,
    sources: ExportSources,
    progress: Progress,
    *,
    title: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, int]:
    """Write the whole export of `tenant_id` to `target`; returns the counts per file.

    Memory holds one record, one document chunk and a few file buffers at a time.
    """
    counts: dict[str, int] = {}
    files: list[tuple[str, str, int]] = []  # (path in the ZIP, what it is, entries)
    index_documents: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(dir=target.parent, prefix=".spool-") as spool_dir,
        zipfile.ZipFile(target, "w", allowZip64=True) as archive,
    ):
        spool = Path(spool_dir)
        tables = {
            kind: SpooledTable(name, columns, spool) for kind, (name, columns) in TABLES.items()
        }
        documents_table = SpooledTable("documents", DOCUMENT_COLUMNS, spool)
        users_table = SpooledTable("users", USER_COLUMNS, spool)
        try:
            progress.phase = "records"
            async for kind, record in sources.records(tenant_id):
                table = tables.get(kind)
                if table is None:
                    raise ExportError(f"unknown record kind {kind!r}")
                table.add(_flatten(record), record)
                progress.records += 1

            progress.phase = "documents"
            totals = await sources.document_totals(tenant_id)
            progress.documents_total, progress.document_bytes_total = totals
            await _write_documents(
                tenant_id, archive, sources, documents_table, progress, index_documents
            )

            progress.phase = "users"
            for user in await sources.users(tenant_id):
                users_table.add(user, user)
                progress.users += 1

            for kind, table in [*tables.items(), ("document", documents_table)]:
                label = TABLES[kind][0] if kind in TABLES else "documents"
                for name in table.copy_into(archive):
                    files.append((name, label, table.count))
                counts[label] = table.count
            for name in users_table.copy_into(archive):
                files.append((name, "users", users_table.count))
            counts["users"] = users_table.count
        finally:
            for table in [*tables.values(), documents_table, users_table]:
                table.close()

        progress.phase = "audit_log"
        with archive.open(export_zip.text_entry("audit_log.jsonl"), "w") as target_file:
            async for page in sources.audit_events(tenant_id):
                progress.audit_events += export_zip.write_jsonl(target_file, page)
        counts["audit_events"] = progress.audit_events
        files.append(("audit_log.jsonl", "audit_log", progress.audit_events))

        progress.phase = "index"
        html = render_index(
            title=title,
            tenant_id=str(tenant_id),
            created_at=clock(),
            counts=counts,
            files=files,
            documents=index_documents,
            documents_total=counts["documents"],
        )
        archive.writestr(export_zip.text_entry("index.html"), html.encode())
    return counts


async def _write_documents(
    tenant_id: uuid.UUID,
    archive: zipfile.ZipFile,
    sources: ExportSources,
    manifest: SpooledTable,
    progress: Progress,
    index_documents: list[dict[str, Any]],
) -> None:
    """Each document into `documents/<kind>/<record>/<file name>`, checked against its hash."""
    current: DocumentChunk | None = None
    folder = ""
    taken: set[str] = set()
    entry: Any = None
    digest = hashlib.sha256()
    written = 0

    def finish() -> None:
        nonlocal entry
        assert current is not None
        entry.close()
        entry = None
        actual = digest.hexdigest()
        if written != current.size_bytes or (current.sha256 and actual != current.sha256):
            raise ExportError(f"document {current.document_id}: stored bytes do not match")

    async for chunk in sources.documents(tenant_id):
        if current is None or chunk.document_id != current.document_id:
            if current is not None:
                finish()
            current = chunk
            record_folder = f"documents/{chunk.record_type}/" + export_zip.clean_name(
                f"{chunk.record_name[:60]} ({chunk.record_id})",
                fallback=chunk.record_id,
                basename=False,
            )
            if record_folder != folder:
                folder, taken = record_folder, set()
            name = export_zip.unique_name(export_zip.clean_name(chunk.filename), taken)
            path = f"{folder}/{name}"
            entry = archive.open(export_zip.stored_entry(path, chunk.size_bytes), "w")
            digest, written = hashlib.sha256(), 0
            row = {
                "path": path,
                "record_type": chunk.record_type,
                "record_id": chunk.record_id,
                "record_name": chunk.record_name,
                "filename": chunk.filename,
                "content_type": chunk.content_type,
                "size_bytes": chunk.size_bytes,
                "sha256": chunk.sha256,
                "uploaded_at": chunk.uploaded_at,
                "uploaded_by": chunk.uploaded_by,
            }
            manifest.add(row, row)
            if len(index_documents) < INDEX_DOCUMENT_LIMIT:
                index_documents.append(row)
            progress.documents += 1
        entry.write(chunk.data)
        digest.update(chunk.data)
        written += len(chunk.data)
        progress.document_bytes += len(chunk.data)
    if current is not None:
        finish()


def render_index(**values: Any) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("export_index.html").render(
        index_document_limit=INDEX_DOCUMENT_LIMIT, **values
    )


# -- the background service -----------------------------------------------------------------


class ExportService:
    """Queues exports, runs them as asyncio tasks, answers status, hands out and expires them.

    Files live under `directory/<tenant id>/`: `<export id>.json` (the status, written
    atomically at each change of state) and `<export id>.zip` (only once complete;
    `.zip.part` while being written).
    """

    def __init__(
        self,
        *,
        directory: Path,
        sources: ExportSources,
        audit: AuditTrail,
        keep: timedelta = timedelta(hours=24),
        max_running: int = 2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._directory = directory
        self._sources = sources
        self._audit = audit
        self._keep = keep
        self._clock = clock
        self._slots = asyncio.Semaphore(max_running)
        self._jobs: dict[str, ExportJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        directory.mkdir(parents=True, exist_ok=True)

    # paths -------------------------------------------------------------------------------

    def _folder(self, tenant_id: uuid.UUID) -> Path:
        return self._directory / str(tenant_id)

    def _status_path(self, tenant_id: uuid.UUID, export_id: uuid.UUID) -> Path:
        return self._folder(tenant_id) / f"{export_id}.json"

    def zip_path(self, tenant_id: uuid.UUID, export_id: uuid.UUID) -> Path:
        return self._folder(tenant_id) / f"{export_id}.zip"

    def _save(self, job: ExportJob) -> None:
        path = self._status_path(uuid.UUID(job.tenant_id), uuid.UUID(job.export_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(job.to_json(), encoding="utf-8")
        os.replace(temporary, path)

    # requests ----------------------------------------------------------------------------

    async def start(
        self, tenant_id: uuid.UUID, *, actor_user_id: uuid.UUID | None, client_ip: str
    ) -> ExportJob:
        """Checks the requester, audits the request, then queues the export."""
        if actor_user_id is not None:
            await self._audit.require_admin(tenant_id, actor_user_id)
        export_id = uuid.uuid4()
        await self._audit.record(
            tenant_id,
            "export.requested",
            actor_user_id=actor_user_id,
            client_ip=client_ip,
            details={"export_id": str(export_id)},
        )
        job = ExportJob(
            export_id=str(export_id),
            tenant_id=str(tenant_id),
            requested_at=self._clock(),
            requested_by=str(actor_user_id) if actor_user_id else "",
        )
        self._jobs[job.export_id] = job
        self._save(job)
        task = asyncio.create_task(self._run(job), name=f"export-{export_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def status(self, tenant_id: uuid.UUID, export_id: uuid.UUID) -> ExportJob:
        job = self._jobs.get(str(export_id))
        if job is None:
            try:
                text = self._status_path(tenant_id, export_id).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise NotFound("no such export") from None
            job = ExportJob.from_json(text)
        if job.tenant_id != str(tenant_id) or self._expired(job):
            raise NotFound("no such export")
        return job

    async def open(
        self,
        tenant_id: uuid.UUID,
        export_id: uuid.UUID,
        *,
        actor_user_id: uuid.UUID | None,
        client_ip: str,
    ) -> tuple[ExportJob, Path]:
        """The finished ZIP of this tenant's export, after auditing the download."""
        job = self.status(tenant_id, export_id)
        path = self.zip_path(tenant_id, export_id)
        if job.state != "done" or not path.is_file():
            raise NotFound("no finished export of that id")
        if actor_user_id is not None:
            await self._audit.require_admin(tenant_id, actor_user_id)
        await self._audit.record(
            tenant_id,
            "export.downloaded",
            actor_user_id=actor_user_id,
            client_ip=client_ip,
            details={"export_id": job.export_id, "size_bytes": job.size_bytes},
        )
        return job, path

    # the work ----------------------------------------------------------------------------

    async def _run(self, job: ExportJob) -> None:
        tenant_id, export_id = uuid.UUID(job.tenant_id), uuid.UUID(job.export_id)
        final = self.zip_path(tenant_id, export_id)
        partial = final.with_suffix(".zip.part")
        async with self._slots:
            job.state = "running"
            self._save(job)
            try:
                job.counts = await write_export(
                    tenant_id,
                    partial,
                    self._sources,
                    job.progress,
                    title=f"Tresor export {job.export_id}",
                    clock=self._clock,
                )
                job.size_bytes, job.sha256 = await asyncio.to_thread(_size_and_sha256, partial)
                os.replace(partial, final)
                job.state, job.progress.phase = "done", "done"
                job.finished_at = self._clock()
                job.expires_at = job.finished_at + self._keep
                self._save(job)
                log.info(
                    "export done",
                    extra={"export_id": job.export_id, "size_bytes": job.size_bytes},
                )
                await self._audit.record(
                    tenant_id,
                    "export.completed",
                    actor_user_id=None,
                    client_ip="",
                    details={
                        "export_id": job.export_id,
                        "size_bytes": job.size_bytes,
                        "sha256": job.sha256,
                        "counts": job.counts,
                    },
                )
            except asyncio.CancelledError:
                self._fail(job, partial, "cancelled: the service stopped")
                raise
            except Exception as exc:
                log.exception("export failed", extra={"export_id": job.export_id})
                reason = str(exc) if isinstance(exc, ExportError) else type(exc).__name__
                self._fail(job, partial, reason)
            finally:
                self._jobs.pop(job.export_id, None)

    def _fail(self, job: ExportJob, partial: Path, reason: str) -> None:
        """Failed: no ZIP is left behind, whether it was still being written or not."""
        partial.unlink(missing_ok=True)
        partial.with_suffix("").unlink(missing_ok=True)
        job.state, job.error = "failed", reason
        job.finished_at = self._clock()
        job.expires_at = job.finished_at + self._keep
        self._save(job)

    async def wait(self) -> None:
        """Until every export that is running now has finished (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.wait()

    # expiry ------------------------------------------------------------------------------

    def _expired(self, job: ExportJob) -> bool:
        return job.expires_at is not None and job.expires_at <= self._clock()

    def recover(self) -> int:
        """At start-up: exports that a stopped process left queued or running have failed."""
        failed = 0
        for status_path in self._directory.glob("*/*.json"):
            job = ExportJob.from_json(status_path.read_text(encoding="utf-8"))
            if job.state in ("queued", "running") and job.export_id not in self._jobs:
                partial = status_path.with_suffix(".zip.part")
                self._fail(job, partial, "interrupted: the service stopped")
                failed += 1
        return failed

    def sweep(self) -> int:
        """Deletes expired exports (ZIP and status) and stray spool folders; returns how many."""
        removed = 0
        for status_path in self._directory.glob("*/*.json"):
            try:
                job = ExportJob.from_json(status_path.read_text(encoding="utf-8"))
            except (OSError, ValueError, TypeError, KeyError):
                log.warning("unreadable export status", extra={"path": str(status_path)})
                continue
            if job.export_id in self._jobs or not self._expired(job):
                continue
            status_path.with_suffix(".zip").unlink(missing_ok=True)
            status_path.with_suffix(".zip.part").unlink(missing_ok=True)
            status_path.unlink(missing_ok=True)
            removed += 1
            log.info("export expired and deleted", extra={"export_id": job.export_id})
        if not self._jobs:
            for spool in self._directory.glob("*/.spool-*"):
                shutil.rmtree(spool, ignore_errors=True)
        return removed

    async def sweep_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.to_thread(self.sweep)
            await asyncio.sleep(interval_seconds)


def _size_and_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(READ_BUFFER):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


async def read_chunks(path: Path, chunk_bytes: int = READ_BUFFER) -> AsyncIterator[bytes]:
    """The file in pieces, read off the event loop."""
    file = await asyncio.to_thread(path.open, "rb")
    with contextlib.closing(file):
        while block := await asyncio.to_thread(file.read, chunk_bytes):
            yield block
