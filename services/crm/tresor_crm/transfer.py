"""CSV import and export of contacts and companies.

Import: the file is decoded (UTF-8 with or without BOM, else Windows-1252), its
delimiter detected (`;` as German Excel writes it, `,`, or tab), each row mapped
to the record's fields by its header (English keys or German labels; `custom.<key>`
for custom fields) and checked in full. A preview shows the first rows and every
row's errors; the import then writes each good row in a savepoint of its own, so a
row is written whole or not at all, and reports each bad row with its line number.

Export: the list as it is filtered, streamed page by page, UTF-8 with BOM and `;`,
every cell that a spreadsheet would take for a formula prefixed with `'`.
"""

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ValidationError

from tresor_crm import custom_fields, record_service
from tresor_crm.db import Conn, Database, Row
from tresor_crm.errors import CrmError, InvalidInput
from tresor_crm.identity import Actor
from tresor_crm.records import CompanyFields, ContactFields, ListQuery, validation_error
from tresor_crm.storage import records as records_store
from tresor_crm.storage import transfer as store

Entity = Literal["contact", "company"]
MAX_IMPORT_BYTES = 5 * 1024 * 1024
MAX_IMPORT_ROWS = 20_000
PREVIEW_ROWS = 20
EXPORT_PAGE = 500
BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LIST_SPLIT = re.compile(r"\s*[,;|\n]\s*")
_YES = {"1", "true", "yes", "ja", "y", "j", "x", "wahr"}
_NO = {"", "0", "false", "no", "nein", "n", "falsch"}

# Header (normalised: lower case, spaces/dashes as _) -> field.
_ALIASES: dict[Entity, dict[str, str]] = {
    "contact": {
        "first_name": "first_name",
        "vorname": "first_name",
        "last_name": "last_name",
        "nachname": "last_name",
        "name": "last_name",
        "company": "company",
        "firma": "company",
        "unternehmen": "company",
        "emails": "emails",
        "email": "emails",
        "e_mail": "emails",
        "e_mails": "emails",
        "phones": "phones",
        "phone": "phones",
        "telefon": "phones",
        "position": "position",
        "street": "street",
        "strasse": "street",
        "straße": "street",
        "postal_code": "postal_code",
        "plz": "postal_code",
        "city": "city",
        "ort": "city",
        "stadt": "city",
        "country": "country",
        "land": "country",
        "tags": "tags",
        "schlagwörter": "tags",
        "consent": "consent",
        "einwilligung": "consent",
    },
    "company": {
        "name": "name",
        "firma": "name",
        "website": "website",
        "webseite": "website",
        "industry": "industry",
        "branche": "industry",
        "phone": "phone",
        "telefon": "phone",
        "street": "street",
        "strasse": "street",
        "straße": "street",
        "postal_code": "postal_code",
        "plz": "postal_code",
        "city": "city",
        "ort": "city",
        "country": "country",
        "land": "country",
        "tags": "tags",
        "schlagwörter": "tags",
    },
}
# Export columns, in order (the custom fields follow as custom.<key>).
_EXPORT: dict[Entity, tuple[str, ...]] = {
    "contact": (
        "id",
        "first_name",
        "last_name",
        "company",
        "emails",
        "phones",
        "position",
        "street",
        "postal_code",
        "city",
        "country",
        "tags",
        "consent",
        "consent_at",
        "created_at",
        "updated_at",
    ),
    "company": (
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
        "created_at",
        "updated_at",
    ),
}
_LIST_FIELDS = {"emails", "phones", "tags"}
# Exported but not imported: the database sets them.
_IGNORED = {"id", "consent_at", "created_at", "updated_at"}


# -- reading a file -------------------------------------------------------------------------


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Windows-1252, as German Excel saves."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def detect_delimiter(text: str) -> str:
    """`;`, `,` or tab: whichever splits the header line into the most columns."""
    header = next(iter(csv.reader(io.StringIO(text.split("\n", 1)[0]))), [""])
    line = text.split("\n", 1)[0]
    counts = {d: _fields_in(line, d) for d in (";", ",", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ";"))
    return best if counts[best] > 1 or not header else ";"


def _fields_in(line: str, delimiter: str) -> int:
    return len(next(csv.reader([line], delimiter=delimiter), []))


def _normal(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def unformula(cell: str) -> str:
    """Undoes the export's guard: "'=1" read back is "=1"."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


def guard(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


@dataclass
class ImportRow:
    line: int
    values: dict[str, str]
    fields: BaseModel | None = None
    errors: dict[str, str] = field(default_factory=dict)
    company_name: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def message(self) -> str:
        return "; ".join(f"{name}: {text}" for name, text in self.errors.items())


@dataclass
class ImportPlan:
    entity: Entity
    delimiter: str
    columns: list[str]
    unknown_columns: list[str]
    rows: list[ImportRow]

    @property
    def good(self) -> list[ImportRow]:
        return [r for r in self.rows if r.ok]

    @property
    def bad(self) -> list[ImportRow]:
        return [r for r in self.rows if not r.ok]


def read_rows(entity: Entity, data: bytes) -> ImportPlan:
    """The file's rows mapped to fields, not yet checked."""
    if len(data) > MAX_IMPORT_BYTES:
        raise InvalidInput(f"file: at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB per import")
    text = decode(data)
    if not text.strip():
        raise InvalidInput("file: the file is empty", {"file": "empty"})
    delimiter = detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise InvalidInput("file: no header line", {"file": "no header line"}) from None
    aliases = _ALIASES[entity]
    columns: list[str] = []
    unknown: list[str] = []
    for name in header:
        key = _normal(unformula(name).lstrip(BOM))
        if key.startswith("custom."):
            columns.append(key)
        elif key in aliases:
            columns.append(aliases[key])
        else:
            columns.append("")
            if key and key not in _IGNORED:
                unknown.append(name.strip())
    required = "last_name" if entity == "contact" else "name"
    if required not in columns:
        raise InvalidInput(
            f"file: the header needs a column {required!r}", {"file": f"no {required} column"}
        )
    rows: list[ImportRow] = []
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows.append(ImportRow(start, {}, errors={"row": f"not readable as CSV: {exc}"}))
            break
        line = start
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= MAX_IMPORT_ROWS:
            raise InvalidInput(f"file: at most {MAX_IMPORT_ROWS} rows per import")
        values: dict[str, str] = {}
        for column, cell in zip(columns, cells, strict=False):
            if column:
                values[column] = unformula(cell.strip())
        row = ImportRow(line, values)
        if len(cells) > len(header):
            row.errors["row"] = f"{len(cells)} cells, but the header has {len(header)} columns"
        rows.append(row)
    return ImportPlan(entity, delimiter, [c for c in columns if c], unknown, rows)


def _to_fields(entity: Entity, values: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    custom: dict[str, str] = {}
    for column, value in values.items():
        if column.startswith("custom."):
            custom[column.removeprefix("custom.")] = value
        elif column == "company":
            continue
        elif column in _LIST_FIELDS:
            body[column] = [part for part in _LIST_SPLIT.split(value) if part]
        elif column == "consent":
            lowered = value.strip().lower()
            if lowered not in _YES | _NO:
                raise ValueError("consent: ja/nein, yes/no, 1/0")
            body[column] = lowered in _YES
        else:
            body[column] = value
    if custom:
        body["custom"] = custom
    return body


async def check_rows(conn: Conn, plan: ImportPlan) -> ImportPlan:
    """Every row checked in full (fields, custom fields, company by name); nothing written."""
    model: type[BaseModel] = ContactFields if plan.entity == "contact" else CompanyFields
    names = sorted({r.values["company"] for r in plan.rows if r.values.get("company")})
    companies = await store.company_ids_by_name(conn, names) if plan.entity == "contact" else {}
    for row in plan.rows:
        if not row.ok:
            continue
        try:
            body = _to_fields(plan.entity, row.values)
        except ValueError as exc:
            row.errors["consent"] = str(exc).removeprefix("consent: ")
            continue
        company = row.values.get("company", "").strip()
        if company:
            company_id = companies.get(company.lower())
            if company_id is None:
                row.errors["company"] = f"no company named {company[:60]!r}"
                continue
            body["company_id"] = company_id
        try:
            fields = model.model_validate(body)
        except ValidationError as exc:
            row.errors.update(validation_error(exc).fields)
            continue
        try:
            custom = await custom_fields.check_custom(conn, plan.entity, dict(fields.custom))  # type: ignore[attr-defined]
        except InvalidInput as exc:
            row.errors.update(exc.fields)
            continue
        row.fields = fields.model_copy(update={"custom": custom})
    return plan


@dataclass(frozen=True)
class ImportResult:
    imported: int
    failed: list[tuple[int, str]]
    created_ids: list[uuid.UUID]


async def import_rows(conn: Conn, actor: Actor, plan: ImportPlan) -> ImportResult:
    """Writes every good row in a savepoint of its own; bad rows are reported, not written."""
    failed = [(row.line, row.message) for row in plan.bad]
    created: list[uuid.UUID] = []
    for row in plan.good:
        assert row.fields is not None
        try:
            async with conn.transaction():
                if plan.entity == "contact":
                    assert isinstance(row.fields, ContactFields)
                    written = await record_service.create_contact(conn, actor, row.fields)
                else:
                    assert isinstance(row.fields, CompanyFields)
                    written = await record_service.create_company(conn, actor, row.fields)
        except (CrmError, psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            failed.append((row.line, str(exc) if isinstance(exc, CrmError) else "not storable"))
            continue
        created.append(written["id"])
    failed.sort()
    return ImportResult(len(created), failed, created)


# -- writing a file -------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, list | tuple):
        return guard(", ".join(str(v) for v in value))
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return guard(str(value))


def _line(cells: Iterable[str], delimiter: str) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


async def export_rows(
    database: Database,
    tenant_id: uuid.UUID,
    entity: Entity,
    query: ListQuery,
    delimiter: str = ";",
) -> AsyncIterator[bytes]:
    """The filtered list as CSV, page by page in one tenant transaction; memory stays flat."""
    async with database.tenant_transaction(tenant_id) as conn:
        keys = [row["key"] for row in await custom_fields.definitions(conn, entity)]
        columns = [*_EXPORT[entity], *(f"custom.{k}" for k in keys)]
        yield (BOM + _line(columns, delimiter)).encode("utf-8")
        after: tuple[str, str] | None = None
        while True:
            page = ListQuery(
                search=query.search,
                tag=query.tag,
                company_id=query.company_id,
                sort=query.sort,
                descending=query.descending,
                limit=EXPORT_PAGE,
                after=after,
            )
            if entity == "contact":
                rows = await records_store.list_contacts(conn, page)
            else:
                rows = await records_store.list_companies(conn, page)
            if not rows:
                return
            chunk = io.StringIO()
            for row in rows:
                chunk.write(_line(_export_cells(row, _EXPORT[entity], keys), delimiter))
            yield chunk.getvalue().encode("utf-8")
            if len(rows) < EXPORT_PAGE:
                return
            last = rows[-1]
            sort_value = last["sort_value"]
            after = (
                sort_value.isoformat() if hasattr(sort_value, "isoformat") else str(sort_value),
                str(last["id"]),
            )


def _export_cells(row: Row, columns: tuple[str, ...], keys: list[str]) -> list[str]:
    cells = []
    for column in columns:
        value = row.get("company_name") if column == "company" else row.get(column)
        cells.append(_cell(value))
    custom = row.get("custom") or {}
    cells.extend(_cell(custom.get(key)) for key in keys)
    return cells


def export_filename(entity: Entity) -> str:
    return "kontakte.csv" if entity == "contact" else "firmen.csv"


def summary(plan: ImportPlan) -> dict[str, Any]:
    return {"rows": len(plan.rows), "good": len(plan.good), "bad": len(plan.bad)}
