"""JSON API for CSV import and export of contacts and companies.

Import: `POST .../import/{contacts|companies}` with the CSV file as the raw body
(at most 5 MB); `?dry_run=true` only checks and previews. Export:
`GET .../export/{contacts|companies}.csv` with the list's filters, streamed,
written to the audit log first (refused with 503 if it cannot be).
"""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from tresor_crm import transfer
from tresor_crm.audit_client import AuditLog, audit_log, client_ip
from tresor_crm.deps import ActorDep, ConnDep, DatabaseDep
from tresor_crm.errors import TooLarge
from tresor_crm.identity import Actor
from tresor_crm.records import ListQuery, SortField

router = APIRouter(prefix="/s/{link}/api/v1", tags=["import and export"])

AuditDep = Annotated[AuditLog, Depends(audit_log)]
EntityPath = Literal["contacts", "companies"]
ENTITIES: dict[str, transfer.Entity] = {"contacts": "contact", "companies": "company"}


class RowProblem(BaseModel):
    line: int
    message: str
    errors: dict[str, str] = {}


class PreviewRow(BaseModel):
    line: int
    values: dict[str, str]
    errors: dict[str, str]


class ImportReport(BaseModel):
    dry_run: bool
    delimiter: str
    columns: list[str]
    unknown_columns: list[str]
    rows: int
    good: int
    bad: int
    imported: int
    problems: list[RowProblem]
    preview: list[PreviewRow]


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"at most {limit // (1024 * 1024)} MB per import")
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > limit:
            raise TooLarge(f"at most {limit // (1024 * 1024)} MB per import")
    return bytes(data)


def report(plan: transfer.ImportPlan, result: transfer.ImportResult | None) -> ImportReport:
    problems = (
        [RowProblem(line=line, message=message) for line, message in result.failed]
        if result is not None
        else [RowProblem(line=r.line, message=r.message, errors=r.errors) for r in plan.bad]
    )
    return ImportReport(
        dry_run=result is None,
        delimiter=plan.delimiter,
        columns=plan.columns,
        unknown_columns=plan.unknown_columns,
        rows=len(plan.rows),
        good=len(plan.good),
        bad=len(plan.bad),
        imported=result.imported if result is not None else 0,
        problems=problems,
        preview=[
            PreviewRow(line=r.line, values=r.values, errors=r.errors)
            for r in plan.rows[: transfer.PREVIEW_ROWS]
        ],
    )


_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post("/import/{entity}", response_model=ImportReport, openapi_extra=_CSV_BODY)
async def import_csv(
    request: Request,
    actor: ActorDep,
    conn: ConnDep,
    entity: EntityPath,
    dry_run: bool = False,
) -> ImportReport:
    data = await read_limited(request, transfer.MAX_IMPORT_BYTES)
    plan = await transfer.check_rows(conn, transfer.read_rows(ENTITIES[entity], data))
    if dry_run:
        return report(plan, None)
    return report(plan, await transfer.import_rows(conn, actor, plan))


async def export_response(
    request: Request,
    actor: Actor,
    database: Any,
    audit: AuditLog,
    entity: transfer.Entity,
    query: ListQuery,
) -> StreamingResponse:
    """Shared by the API and the pages: audit first, then the rows."""
    await audit.record(
        tenant_id=actor.tenant_id,
        event="contacts.exported" if entity == "contact" else "companies.exported",
        actor_user_id=actor.user_id,
        client_ip=client_ip(request),
        # Whether it was filtered, never the search words (they may name a person).
        details={"format": "csv", "filtered": bool(query.search or query.tag or query.company_id)},
    )
    name = transfer.export_filename(entity)
    return StreamingResponse(
        transfer.export_rows(database, actor.tenant_id, entity, query),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/export/{entity}.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "the list as CSV"}},
)
async def export_csv(
    request: Request,
    actor: ActorDep,
    database: DatabaseDep,
    audit: Annotated[AuditLog, Depends(audit_log)],
    entity: EntityPath,
    q: Annotated[str, Query(max_length=200)] = "",
    tag: Annotated[str, Query(max_length=200)] = "",
    company_id: uuid.UUID | None = None,
    sort: SortField = "name",
    order: Literal["asc", "desc"] = "asc",
) -> StreamingResponse:
    query = ListQuery(
        search=q.strip(),
        tag=tag.strip(),
        company_id=company_id,
        sort=sort,
        descending=order == "desc",
    )
    return await export_response(request, actor, database, audit, ENTITIES[entity], query)
