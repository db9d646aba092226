"""Deals in a tenant's own pipeline: stages, deals, money, and the rules on them.

The rules live here; SQL lives in `storage/pipeline.py`. Money is counted in
cents (integers) from the first character typed to the last one shown: a
float never touches a value. Every write to a deal checks the version the
editor started from and records its changes in the history.
"""

import re
import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tresor_crm import history
from tresor_crm.db import Conn, Row
from tresor_crm.errors import Forbidden, InvalidInput
from tresor_crm.identity import Actor
from tresor_crm.storage import pipeline as store

# A tenant that never named its stages starts with these.
DEFAULT_STAGES = ("Neu", "Qualifiziert", "Angebot", "Verhandlung")
MAX_STAGES = 30
# 999.999.999.999,99 €: far above any deal, far below what a bigint of cents holds.
MAX_VALUE = Decimal("999999999999.99")

Outcome = Literal["open", "won", "lost"]
OUTCOMES: tuple[Outcome, ...] = ("open", "won", "lost")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MONEY_TEXT = re.compile(r"^[0-9][0-9.,]*$")


# -- money ----------------------------------------------------------------------------------


def parse_money(text: str) -> Decimal:
    """An amount in euros as typed: "1.234,56", "1,234.56", "1234.56", "1234,5", "1.234 €".

    A separator followed by exactly three digits groups thousands (three decimal
    places are never money); followed by one or two digits it is the decimal
    separator. Anything else is refused rather than guessed.
    """
    cleaned = re.sub(r"[\s\u00a0\u202f']", "", text).removesuffix("€").removesuffix("EUR")
    cleaned = cleaned.removeprefix("€").strip()
    if not cleaned:
        return Decimal(0)
    if not _MONEY_TEXT.match(cleaned) or not cleaned[-1].isdigit():
        raise ValueError("not an amount; write it like 1.234,56")
    last = max(cleaned.rfind("."), cleaned.rfind(","))
    whole, fraction, decimal_mark = cleaned, "", ""
    if last >= 0 and len(cleaned) - last - 1 in (1, 2):
        whole, fraction, decimal_mark = cleaned[:last], cleaned[last + 1 :], cleaned[last]
    separators = set(re.sub(r"[0-9]", "", whole))
    if len(separators) > 1 or decimal_mark in separators:
        raise ValueError("not an amount; write it like 1.234,56")
    if separators:
        groups = whole.split(separators.pop())
        if not (1 <= len(groups[0]) <= 3) or any(len(group) != 3 for group in groups[1:]):
            raise ValueError("thousands are grouped by three digits, like 1.234.567,00")
        whole = "".join(groups)
    return Decimal(f"{whole}.{fraction or '0'}")


def check_amount(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("not an amount")
    if value < 0:
        raise ValueError("a value cannot be negative")
    if value > MAX_VALUE:
        raise ValueError("too large")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("at most two decimal places (cents)")
    return value.quantize(Decimal("0.01"))


def to_cents(value: Decimal) -> int:
    return int(check_amount(value) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def format_money(cents: int, language: str = "de") -> str:
    """1234567 -> "12.345,67 €" (German) or "€12,345.67" (English)."""
    whole, rest = divmod(cents, 100)
    grouped = f"{whole:,}"
    if language == "en":
        return f"€{grouped}.{rest:02d}"
    return f"{grouped.replace(',', '.')},{rest:02d} €"


def format_money_input(cents: int) -> str:
    """The value as a German form field shows it: "12345,67"."""
    whole, rest = divmod(cents, 100)
    return f"{whole},{rest:02d}"


# -- fields ---------------------------------------------------------------------------------


def _clean(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


class StageFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _clean(value)


class DealFields(BaseModel):
    """What an editor sets on a deal. `value` is in euros, exact to the cent."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    company_id: uuid.UUID | None = None
    contact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    value: Decimal = Field(default=Decimal("0.00"), description="euros, e.g. 1234.56")
    stage_id: uuid.UUID | None = Field(
        default=None, description="the pipeline's first stage if none is given"
    )
    expected_close: date | None = None
    owner_id: uuid.UUID | None = None
    outcome: Outcome = "open"
    outcome_reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""

    @field_validator("title", "outcome_reason")
    @classmethod
    def _text(cls, value: str) -> str:
        return _clean(value)

    @field_validator("value", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("not an amount")
        if isinstance(value, str):
            return parse_money(value)
        if isinstance(value, float):
            # Only reached by callers that parsed JSON themselves; the API does not.
            return Decimal(repr(value))
        return value

    @field_validator("value")
    @classmethod
    def _amount(cls, value: Decimal) -> Decimal:
        return check_amount(value)

    @field_validator("contact_ids")
    @classmethod
    def _unique(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        return list(dict.fromkeys(value))

    @property
    def value_cents(self) -> int:
        return to_cents(self.value)

    def settled(self) -> "DealFields":
        """An open deal has no reason to have been won or lost."""
        if self.outcome == "open" and self.outcome_reason:
            return self.model_copy(update={"outcome_reason": ""})
        return self


DealSort = Literal["title", "created_at", "updated_at", "expected_close"]


@dataclass(frozen=True)
class DealQuery:
    search: str = ""
    stage_id: uuid.UUID | None = None
    outcome: Outcome | None = None
    company_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    sort: DealSort = "updated_at"
    descending: bool = True
    limit: int = 25
    after: tuple[str, str] | None = None
    deleted: bool = False


@dataclass(frozen=True)
class StageTotal:
    stage_id: uuid.UUID
    name: str
    count: int
    value_cents: int


# -- stages ---------------------------------------------------------------------------------


async def stages(conn: Conn) -> list[Row]:
    """The tenant's stages in order; a tenant without any gets the defaults, now."""
    rows = await store.stages(conn)
    if rows:
        return rows
    await store.lock_stages(conn)
    rows = await store.stages(conn)  # someone may have created them while we waited
    if not rows:
        for position, name in enumerate(DEFAULT_STAGES):
            await store.insert_stage(conn, name, position)
        rows = await store.stages(conn)
    return rows


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only a tenant admin may change the pipeline's stages")


async def create_stage(conn: Conn, actor: Actor, fields: StageFields) -> Row:
    _admin(actor)
    current = await stages(conn)
    await store.lock_stages(conn)
    if len(current) >= MAX_STAGES:
        raise InvalidInput(f"a pipeline has at most {MAX_STAGES} stages")
    if any(row["name"].casefold() == fields.name.casefold() for row in current):
        raise InvalidInput("name: exists already", {"name": "a stage of that name exists"})
    position = max(row["position"] for row in current) + 1
    return await store.insert_stage(conn, fields.name, position)


async def rename_stage(conn: Conn, actor: Actor, stage_id: uuid.UUID, fields: StageFields) -> Row:
    _admin(actor)
    current = await stages(conn)
    if any(
        row["name"].casefold() == fields.name.casefold() and row["id"] != stage_id
        for row in current
    ):
        raise InvalidInput("name: exists already", {"name": "a stage of that name exists"})
    return await store.rename_stage(conn, stage_id, fields.name)


async def reorder_stages(conn: Conn, actor: Actor, stage_ids: list[uuid.UUID]) -> list[Row]:
    """`stage_ids` is the new order of all of the tenant's stages."""
    _admin(actor)
    await store.lock_stages(conn)
    current = await stages(conn)
    if len(stage_ids) != len(set(stage_ids)) or set(stage_ids) != {r["id"] for r in current}:
        raise InvalidInput(
            "stage_ids: name every stage exactly once",
            {"stage_ids": "name every stage exactly once"},
        )
    await store.set_positions(conn, stage_ids)
    return await store.stages(conn)


async def move_stage(conn: Conn, actor: Actor, stage_id: uuid.UUID, step: int) -> list[Row]:
    """One place earlier (-1) or later (+1): the button pages use."""
    current = [row["id"] for row in await stages(conn)]
    if stage_id not in current:
        _admin(actor)
        raise store.stage_not_found()
    index = current.index(stage_id)
    target = max(0, min(len(current) - 1, index + step))
    current.insert(target, current.pop(index))
    return await reorder_stages(conn, actor, current)


async def delete_stage(conn: Conn, actor: Actor, stage_id: uuid.UUID) -> None:
    """Only an empty stage goes; deals in the trash move to the first remaining stage."""
    _admin(actor)
    await store.lock_stages(conn)
    current = await stages(conn)
    if stage_id not in {row["id"] for row in current}:
        raise store.stage_not_found()
    if len(current) == 1:
        raise InvalidInput("a pipeline keeps at least one stage")
    if await store.live_deals_in_stage(conn, stage_id):
        from tresor_crm.errors import Conflict

        raise Conflict("this stage still has deals; move them to another stage first")
    remaining = [row["id"] for row in current if row["id"] != stage_id]
    await store.move_trashed_deals(conn, stage_id, remaining[0])
    await store.delete_stage(conn, stage_id)
    await store.set_positions(conn, remaining)


# -- deals ----------------------------------------------------------------------------------

_HISTORY_FIELDS = (
    "title",
    "company_id",
    "contact_ids",
    "value",
    "stage_id",
    "expected_close",
    "owner_id",
    "outcome",
    "outcome_reason",
)


def _history_values(row: Row) -> dict[str, Any]:
    values = {name: row.get(name) for name in _HISTORY_FIELDS}
    values["value"] = str(from_cents(row["value_cents"]))
    values["contact_ids"] = sorted(str(c) for c in row["contact_ids"])
    return values


async def _record(conn: Conn, actor: Actor, deal_id: uuid.UUID, changed: dict[str, Any]) -> None:
    await history.record(
        conn,
        record_type="deal",
        record_id=deal_id,
        actor_id=actor.user_id,
        actor_name=actor.username,
        changed=changed,
    )


async def _checked(conn: Conn, actor: Actor, fields: DealFields) -> DealFields:
    """References point at live rows of this tenant; an unset stage is the first one."""
    fields = fields.settled()
    problems: dict[str, str] = {}
    stage_rows = await stages(conn)
    if fields.stage_id is None:
        fields = fields.model_copy(update={"stage_id": stage_rows[0]["id"]})
    elif fields.stage_id not in {row["id"] for row in stage_rows}:
        problems["stage_id"] = "no such stage"
    if fields.company_id is not None and not await store.company_exists(conn, fields.company_id):
        problems["company_id"] = "no such company"
    if fields.contact_ids:
        missing = set(fields.contact_ids) - await store.existing_contacts(conn, fields.contact_ids)
        if missing:
            problems["contact_ids"] = "no such contact: " + ", ".join(sorted(map(str, missing)))
    if problems:
        summary = "; ".join(f"{name}: {message}" for name, message in problems.items())
        raise InvalidInput(summary, problems)
    if fields.owner_id is None:
        fields = fields.model_copy(update={"owner_id": actor.user_id})
    return fields


async def deal(conn: Conn, deal_id: uuid.UUID, *, include_deleted: bool = False) -> Row:
    return await store.deal(conn, deal_id, include_deleted=include_deleted)


async def create_deal(conn: Conn, actor: Actor, fields: DealFields) -> Row:
    fields = await _checked(conn, actor, fields)
    row = await store.insert_deal(conn, fields, actor.user_id)
    await _record(conn, actor, row["id"], history.changes({}, _history_values(row)))
    return row


async def update_deal(
    conn: Conn, actor: Actor, deal_id: uuid.UUID, version: int, fields: DealFields
) -> Row:
    before = await store.deal(conn, deal_id)
    fields = await _checked(conn, actor, fields)
    row = await store.update_deal(conn, deal_id, version, fields, actor.user_id)
    await _record(
        conn, actor, deal_id, history.changes(_history_values(before), _history_values(row))
    )
    return row


async def move_deal(
    conn: Conn, actor: Actor, deal_id: uuid.UUID, version: int, stage_id: uuid.UUID
) -> Row:
    """Another stage, nothing else: the board's drag and its stage menu."""
    before = await store.deal(conn, deal_id)
    if stage_id not in {row["id"] for row in await stages(conn)}:
        raise InvalidInput("stage_id: no such stage", {"stage_id": "no such stage"})
    row = await store.move_deal(conn, deal_id, version, stage_id, actor.user_id)
    await _record(conn, actor, deal_id, {"stage_id": (str(before["stage_id"]), str(stage_id))})
    return row


async def set_deal_deleted(conn: Conn, actor: Actor, deal_id: uuid.UUID, deleted: bool) -> Row:
    await store.deal(conn, deal_id, include_deleted=True)
    row = await store.set_deal_deleted(conn, deal_id, deleted)
    await _record(conn, actor, deal_id, {"deleted": (not deleted, deleted)})
    return row


async def list_deals(conn: Conn, query: DealQuery) -> list[Row]:
    return await store.list_deals(conn, query)


async def totals(conn: Conn, query: DealQuery) -> list[StageTotal]:
    """Count and value of the deals that `query` selects, per stage, every stage listed."""
    sums = await store.stage_sums(conn, query)
    return [
        StageTotal(
            stage_id=row["id"],
            name=row["name"],
            count=sums.get(row["id"], (0, 0))[0],
            value_cents=sums.get(row["id"], (0, 0))[1],
        )
        for row in await stages(conn)
    ]


async def board(conn: Conn, query: DealQuery) -> list[tuple[Row, list[Row]]]:
    """Each stage with its deals (up to `query.limit` each), in the pipeline's order."""
    deals = await store.board_deals(conn, query)
    columns: dict[uuid.UUID, list[Row]] = {row["id"]: [] for row in await stages(conn)}
    for row in deals:
        columns.setdefault(row["stage_id"], []).append(row)
    by_id = {row["id"]: row for row in await store.stages(conn)}
    return [(by_id[stage_id], rows) for stage_id, rows in columns.items() if stage_id in by_id]


def parse_deal_form(form: dict[str, Any]) -> DealFields:
    """A deal from a web form's fields; raises InvalidInput naming each bad field."""
    from pydantic import ValidationError

    from tresor_crm.records import validation_error

    values: dict[str, Any] = {
        "title": form.get("title", ""),
        "company_id": form.get("company_id") or None,
        "contact_ids": [c for c in form.get("contact_ids", []) if c],
        "value": form.get("value", "") or "0",
        "stage_id": form.get("stage_id") or None,
        "expected_close": form.get("expected_close") or None,
        "owner_id": form.get("owner_id") or None,
        "outcome": form.get("outcome") or "open",
        "outcome_reason": form.get("outcome_reason", ""),
    }
    try:
        return DealFields.model_validate(values)
    except ValidationError as exc:
        error = validation_error(exc)
        # "contact_ids.0" -> "contact_ids": the form shows one message per field.
        error.fields = {name.split(".")[0]: message for name, message in error.fields.items()}
        raise error from None
