# ruff: noqa: N802 - gRPC method names come from the proto.
"""gRPC servicer: request to domain call, result or error to response, nothing more.

Every call opens a transaction bound to the tenant the request names, so
row-level security confines it to that tenant's rows: an id of another tenant's
record is simply not found.
"""

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp
from grpc import aio

from tresor.crm.v1 import crm_pb2 as pb
from tresor.crm.v1 import crm_pb2_grpc
from tresor_common.grpc_server import Context, StatusTranslator
from tresor_crm import errors, record_service
from tresor_crm.db import Database, Row
from tresor_crm.records import ListQuery, decode_cursor, encode_cursor
from tresor_crm.storage import records as store
from tresor_crm.storage import tenant_records

log = logging.getLogger(__name__)


MAX_PAGE_SIZE = 200
MAX_QUERY_LENGTH = 200

_STATUS: dict[type[Exception], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.TooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


translated = StatusTranslator(_STATUS, log)


def _uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise errors.InvalidInput(f"{field}: missing", {field: "missing"})
    try:
        return uuid.UUID(value)
    except ValueError:
        raise errors.InvalidInput(f"{field}: not a UUID", {field: "not a UUID"}) from None


def _optional_uuid(value: str, field: str) -> uuid.UUID | None:
    return _uuid(value, field) if value else None


def _text(value: str, field: str) -> str:
    text = value.strip()
    if len(text) > MAX_QUERY_LENGTH:
        raise errors.InvalidInput(
            f"{field}: at most {MAX_QUERY_LENGTH} characters", {field: "too long"}
        )
    if any(ord(ch) < 32 for ch in text):
        raise errors.InvalidInput(f"{field}: control characters", {field: "control characters"})
    return text


def _list_query(
    *, query: str, tag: str, page_size: int, page_token: str, company_id: uuid.UUID | None = None
) -> tuple[ListQuery, int]:
    if page_size < 0:
        raise errors.InvalidInput("page_size: must not be negative", {"page_size": "negative"})
    limit = min(page_size or 25, MAX_PAGE_SIZE)
    return (
        ListQuery(
            search=_text(query, "query"),
            tag=_text(tag, "tag"),
            company_id=company_id,
            # One more than asked tells whether there is a next page.
            limit=limit + 1,
            after=decode_cursor(page_token) if page_token else None,
        ),
        limit,
    )


def _next_token(rows: list[Row], limit: int) -> str:
    if len(rows) <= limit:
        return ""
    last = rows[limit - 1]
    return encode_cursor(last["sort_value"], last["id"])


# -- rows to messages -----------------------------------------------------------------------


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value.astimezone(UTC))
    return stamp


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else ""


def _struct(values: dict[str, Any]) -> Struct:
    message = Struct()
    message.update(values)
    return message


def _address(row: Row) -> pb.Address:
    return pb.Address(
        street=row["street"],
        postal_code=row["postal_code"],
        city=row["city"],
        country=row["country"],
    )


def company_pb(row: Row, tenant_id: uuid.UUID) -> pb.Company:
    return pb.Company(
        id=str(row["id"]),
        tenant_id=str(tenant_id),
        name=row["name"],
        website=row["website"],
        industry=row["industry"],
        phone=row["phone"],
        address=_address(row),
        tags=row["tags"],
        custom=_struct(row["custom"]),
        version=row["version"],
        created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]),
        deleted=row["deleted_at"] is not None,
    )


def contact_pb(row: Row, tenant_id: uuid.UUID) -> pb.Contact:
    return pb.Contact(
        id=str(row["id"]),
        tenant_id=str(tenant_id),
        first_name=row["first_name"],
        last_name=row["last_name"],
        company_id=_id(row["company_id"]),
        company_name=row["company_name"] or "",
        emails=row["emails"],
        phones=row["phones"],
        position=row["position"],
        address=_address(row),
        tags=row["tags"],
        owner_id=_id(row["owner_id"]),
        consent=row["consent"],
        consent_at=_timestamp(row["consent_at"]),
        custom=_struct(row["custom"]),
        version=row["version"],
        created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]),
        deleted=row["deleted_at"] is not None,
    )


def deal_pb(row: Row, tenant_id: uuid.UUID) -> pb.Deal:
    return pb.Deal(
        id=str(row["id"]),
        tenant_id=str(tenant_id),
        title=row["title"],
        company_id=_id(row["company_id"]),
        contact_ids=[str(value) for value in row["contact_ids"]],
        value_cents=row["value_cents"],
        stage_id=_id(row["stage_id"]),
        stage_name=row["stage_name"] or "",
        expected_close=_day(row["expected_close"]),
        owner_id=_id(row["owner_id"]),
        outcome=row["outcome"],
        outcome_reason=row["outcome_reason"],
        version=row["version"],
        created_at=_timestamp(row["created_at"]),
        updated_at=_timestamp(row["updated_at"]),
        deleted=row["deleted_at"] is not None,
    )


def activity_pb(row: Row, tenant_id: uuid.UUID) -> pb.Activity:
    return pb.Activity(
        id=str(row["id"]),
        tenant_id=str(tenant_id),
        kind=row["kind"],
        occurred_at=_timestamp(row["occurred_at"]),
        body=row["body"],
        author_id=_id(row["author_id"]),
        author_name=row["author_name"],
        contact_id=_id(row["contact_id"]),
        company_id=_id(row["company_id"]),
        deal_id=_id(row["deal_id"]),
        created_at=_timestamp(row["created_at"]),
    )


def task_pb(row: Row, tenant_id: uuid.UUID) -> pb.Task:
    return pb.Task(
        id=str(row["id"]),
        tenant_id=str(tenant_id),
        title=row["title"],
        due_date=_day(row["due_date"]),
        assignee_id=_id(row["assignee_id"]),
        done=row["done"],
        done_at=_timestamp(row["done_at"]),
        contact_id=_id(row["contact_id"]),
        company_id=_id(row["company_id"]),
        deal_id=_id(row["deal_id"]),
        version=row["version"],
        created_at=_timestamp(row["created_at"]),
    )


def tenant_record(kind: tenant_records.Kind, row: Row, tenant_id: uuid.UUID) -> pb.TenantRecord:
    if kind == "company":
        return pb.TenantRecord(company=company_pb(row, tenant_id))
    if kind == "contact":
        return pb.TenantRecord(contact=contact_pb(row, tenant_id))
    if kind == "deal":
        return pb.TenantRecord(deal=deal_pb(row, tenant_id))
    if kind == "activity":
        return pb.TenantRecord(activity=activity_pb(row, tenant_id))
    return pb.TenantRecord(task=task_pb(row, tenant_id))


# -- the service ----------------------------------------------------------------------------


class CrmServicer(crm_pb2_grpc.CrmServiceServicer):
    def __init__(self, database: Database, *, stream_batch_size: int = 500) -> None:
        self._database = database
        self._batch = stream_batch_size

    @translated
    async def GetContact(self, request: pb.GetContactRequest, context: Context) -> pb.Contact:
        tenant_id = _uuid(request.tenant_id, "tenant_id")
        contact_id = _uuid(request.contact_id, "contact_id")
        async with self._database.tenant_transaction(tenant_id) as conn:
            row = await store.contact(conn, contact_id)
        return contact_pb(row, tenant_id)

    @translated
    async def ListContacts(
        self, request: pb.ListContactsRequest, context: Context
    ) -> pb.ListContactsResponse:
        tenant_id = _uuid(request.tenant_id, "tenant_id")
        query, limit = _list_query(
            query=request.query,
            tag=request.tag,
            page_size=request.page_size,
            page_token=request.page_token,
            company_id=_optional_uuid(request.company_id, "company_id"),
        )
        async with self._database.tenant_transaction(tenant_id) as conn:
            rows = await record_service.list_contacts(conn, query)
        return pb.ListContactsResponse(
            contacts=[contact_pb(row, tenant_id) for row in rows[:limit]],
            next_page_token=_next_token(rows, limit),
        )

    @translated
    async def GetCompany(self, request: pb.GetCompanyRequest, context: Context) -> pb.Company:
        tenant_id = _uuid(request.tenant_id, "tenant_id")
        company_id = _uuid(request.company_id, "company_id")
        async with self._database.tenant_transaction(tenant_id) as conn:
            row = await store.company(conn, company_id)
        return company_pb(row, tenant_id)

    @translated
    async def ListCompanies(
        self, request: pb.ListCompaniesRequest, context: Context
    ) -> pb.ListCompaniesResponse:
        tenant_id = _uuid(request.tenant_id, "tenant_id")
        query, limit = _list_query(
            query=request.query,
            tag=request.tag,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        async with self._database.tenant_transaction(tenant_id) as conn:
            rows = await record_service.list_companies(conn, query)
        return pb.ListCompaniesResponse(
            companies=[company_pb(row, tenant_id) for row in rows[:limit]],
            next_page_token=_next_token(rows, limit),
        )

    async def StreamTenantRecords(
        self, request: pb.StreamTenantRecordsRequest, context: Context
    ) -> AsyncIterator[pb.TenantRecord]:
        """One transaction, one server-side cursor per kind; gRPC flow control paces it."""
        try:
            tenant_id = _uuid(request.tenant_id, "tenant_id")
            async with self._database.tenant_transaction(tenant_id) as conn:
                for kind in tenant_records.KINDS:
                    async for row in tenant_records.rows_of(conn, kind, batch_size=self._batch):
                        yield tenant_record(kind, row, tenant_id)
        except aio.AbortError:
            raise
        except Exception as exc:
            await translated.abort(context, exc, "StreamTenantRecords")
