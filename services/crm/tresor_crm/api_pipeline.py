"""JSON API for the pipeline's stages and its deals: `/s/<link>/api/v1/...`.

Money goes out as a decimal string ("1234.56") and comes in as a JSON number
or string; the body is parsed with decimals, so a value never passes through
a float. Stale edits get 409, bad input 422, all as application/problem+json.
"""

import json
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from tresor_crm import history, pipeline
from tresor_crm.db import Row
from tresor_crm.deps import ActorDep, AdminDep, ConnDep
from tresor_crm.errors import InvalidInput
from tresor_crm.pipeline import DealFields, DealQuery, DealSort, Outcome, StageFields
from tresor_crm.records import decode_cursor, encode_cursor, validation_error

router = APIRouter(prefix="/s/{link}/api/v1", tags=["deals"])

Limit = Annotated[int, Query(ge=1, le=200)]


class StageOut(BaseModel):
    id: uuid.UUID
    name: str
    position: int


class StageOrder(BaseModel):
    stage_ids: list[uuid.UUID] = Field(max_length=100, description="every stage, in the new order")


class DealOut(BaseModel):
    id: uuid.UUID
    title: str
    company_id: uuid.UUID | None
    company_name: str | None
    contact_ids: list[uuid.UUID]
    value: str = Field(description='euros as a decimal string, e.g. "1234.56"')
    value_cents: int
    stage_id: uuid.UUID
    stage_name: str
    expected_close: date | None
    owner_id: uuid.UUID | None
    outcome: Outcome
    outcome_reason: str
    version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool


class DealPage(BaseModel):
    items: list[DealOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class DealUpdate(DealFields):
    version: int = Field(ge=1, description="the version the edit started from")


class DealMove(BaseModel):
    stage_id: uuid.UUID
    version: int = Field(ge=1)


class StageTotalOut(BaseModel):
    stage_id: uuid.UUID
    name: str
    count: int
    value: str
    value_cents: int


class Totals(BaseModel):
    stages: list[StageTotalOut]
    count: int
    value: str
    value_cents: int


class Change(BaseModel):
    changed_at: datetime
    changed_by: uuid.UUID | None
    changed_by_name: str
    field: str
    old_value: Any
    new_value: Any


def _deal(row: Row) -> DealOut:
    return DealOut.model_validate(
        {
            **row,
            "value": str(pipeline.from_cents(row["value_cents"])),
            "deleted": row["deleted_at"] is not None,
        }
    )


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """The JSON body with every number as a Decimal, validated by `model`."""
    try:
        data = json.loads(await request.body(), parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("body: not JSON", {"body": "not JSON"}) from None
    if not isinstance(data, dict):
        raise InvalidInput("body: a JSON object is expected", {"body": "not an object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


# -- stages ---------------------------------------------------------------------------------


@router.get("/stages", response_model=list[StageOut])
async def list_stages(conn: ConnDep) -> list[StageOut]:
    return [StageOut.model_validate(row) for row in await pipeline.stages(conn)]


@router.post(
    "/stages", response_model=StageOut, status_code=201, openapi_extra=_schema(StageFields)
)
async def create_stage(actor: AdminDep, conn: ConnDep, request: Request) -> StageOut:
    fields = await _body(request, StageFields)
    return StageOut.model_validate(await pipeline.create_stage(conn, actor, fields))


@router.put("/stages/{stage_id}", response_model=StageOut, openapi_extra=_schema(StageFields))
async def rename_stage(
    actor: AdminDep, conn: ConnDep, stage_id: uuid.UUID, request: Request
) -> StageOut:
    fields = await _body(request, StageFields)
    return StageOut.model_validate(await pipeline.rename_stage(conn, actor, stage_id, fields))


@router.put("/stages", response_model=list[StageOut], openapi_extra=_schema(StageOrder))
async def reorder_stages(actor: AdminDep, conn: ConnDep, request: Request) -> list[StageOut]:
    order: StageOrder = await _body(request, StageOrder)
    rows = await pipeline.reorder_stages(conn, actor, order.stage_ids)
    return [StageOut.model_validate(row) for row in rows]


@router.delete("/stages/{stage_id}", status_code=204)
async def delete_stage(actor: AdminDep, conn: ConnDep, stage_id: uuid.UUID) -> Response:
    await pipeline.delete_stage(conn, actor, stage_id)
    return Response(status_code=204)


# -- deals ----------------------------------------------------------------------------------


@router.get("/deals", response_model=DealPage)
async def list_deals(
    conn: ConnDep,
    q: Annotated[str, Query(max_length=200)] = "",
    stage_id: uuid.UUID | None = None,
    outcome: Outcome | None = None,
    company_id: uuid.UUID | None = None,
    contact_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    sort: DealSort = "updated_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Limit = 25,
    cursor: str | None = None,
    deleted: bool = False,
) -> DealPage:
    query = DealQuery(
        search=q.strip(),
        stage_id=stage_id,
        outcome=outcome,
        company_id=company_id,
        contact_id=contact_id,
        owner_id=owner_id,
        sort=sort,
        descending=order == "desc",
        limit=limit + 1,  # one more than asked tells whether there is a next page
        after=decode_cursor(cursor) if cursor else None,
        deleted=deleted,
    )
    rows = await pipeline.list_deals(conn, query)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["sort_value"], last["id"])
    return DealPage(items=[_deal(row) for row in rows[:limit]], next_cursor=next_cursor)


@router.get("/deals/totals", response_model=Totals)
async def deal_totals(
    conn: ConnDep,
    outcome: Outcome | None = None,
    company_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
) -> Totals:
    """Number and value of the deals per stage (every stage listed, in order)."""
    totals = await pipeline.totals(
        conn, DealQuery(outcome=outcome, company_id=company_id, owner_id=owner_id)
    )
    cents = sum(t.value_cents for t in totals)
    return Totals(
        stages=[
            StageTotalOut(
                stage_id=t.stage_id,
                name=t.name,
                count=t.count,
                value=str(pipeline.from_cents(t.value_cents)),
                value_cents=t.value_cents,
            )
            for t in totals
        ],
        count=sum(t.count for t in totals),
        value=str(pipeline.from_cents(cents)),
        value_cents=cents,
    )


@router.post("/deals", response_model=DealOut, status_code=201, openapi_extra=_schema(DealFields))
async def create_deal(actor: ActorDep, conn: ConnDep, request: Request) -> DealOut:
    fields = await _body(request, DealFields)
    return _deal(await pipeline.create_deal(conn, actor, fields))


@router.get("/deals/{deal_id}", response_model=DealOut)
async def get_deal(conn: ConnDep, deal_id: uuid.UUID) -> DealOut:
    return _deal(await pipeline.deal(conn, deal_id))


@router.put("/deals/{deal_id}", response_model=DealOut, openapi_extra=_schema(DealUpdate))
async def update_deal(
    actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID, request: Request
) -> DealOut:
    update: DealUpdate = await _body(request, DealUpdate)
    fields = DealFields.model_validate(update.model_dump(exclude={"version"}))
    return _deal(await pipeline.update_deal(conn, actor, deal_id, update.version, fields))


@router.post("/deals/{deal_id}/move", response_model=DealOut, openapi_extra=_schema(DealMove))
async def move_deal(
    actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID, request: Request
) -> DealOut:
    """To another stage; refused (409) if the deal changed since `version`."""
    move: DealMove = await _body(request, DealMove)
    return _deal(await pipeline.move_deal(conn, actor, deal_id, move.version, move.stage_id))


@router.delete("/deals/{deal_id}", status_code=204)
async def delete_deal(actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID) -> Response:
    await pipeline.set_deal_deleted(conn, actor, deal_id, True)
    return Response(status_code=204)


@router.post("/deals/{deal_id}/restore", response_model=DealOut)
async def restore_deal(actor: ActorDep, conn: ConnDep, deal_id: uuid.UUID) -> DealOut:
    return _deal(await pipeline.set_deal_deleted(conn, actor, deal_id, False))


@router.get("/deals/{deal_id}/history", response_model=list[Change])
async def deal_history(conn: ConnDep, deal_id: uuid.UUID) -> list[Change]:
    await pipeline.deal(conn, deal_id, include_deleted=True)
    return [Change.model_validate(row) for row in await history.of_record(conn, "deal", deal_id)]
