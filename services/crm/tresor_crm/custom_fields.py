"""Per-tenant custom fields on contacts and companies: definitions and the check of values.

An admin defines a field (key, label, kind, choices); a value given on a contact or
company is checked against its definition by `check_custom` and normalised: numbers
become numbers, dates ISO dates, choices one of the defined choices. Keys without a
definition are refused. Values live in the record's `custom` JSONB, which the search
already matches.
"""

import math
import re
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tresor_crm.db import Conn, Row
from tresor_crm.errors import InvalidInput
from tresor_crm.storage import admin as store

Entity = Literal["contact", "company"]
Kind = Literal["text", "number", "date", "choice"]
MAX_TEXT = 1000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class FieldDefinition(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    entity: Entity
    key: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    label: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    kind: Kind
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100
    )

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if _CONTROL.search(value):
            raise ValueError("control characters are not allowed")
        return value

    def checked(self) -> "FieldDefinition":
        choices = list(dict.fromkeys(c.strip() for c in self.choices if c.strip()))
        if self.kind == "choice" and not choices:
            raise InvalidInput("choices: a choice field needs choices", {"choices": "needed"})
        if self.kind != "choice" and choices:
            raise InvalidInput(
                "choices: only a choice field has choices", {"choices": "only for choice"}
            )
        return self.model_copy(update={"choices": choices})


async def definitions(conn: Conn, entity: Entity | None = None) -> list[Row]:
    return await store.custom_fields(conn, entity)


async def define(conn: Conn, definition: FieldDefinition) -> Row:
    d = definition.checked()
    return await store.insert_custom_field(
        conn, entity=d.entity, key=d.key, label=d.label, kind=d.kind, choices=d.choices
    )


async def remove(conn: Conn, field_id: uuid.UUID) -> Row:
    """The definition goes; values already stored stay in the records until next edited."""
    return await store.delete_custom_field(conn, field_id)


def check_value(definition: Row, value: Any) -> Any:
    """The normalised value, or ValueError with what is wrong."""
    kind = definition["kind"]
    if isinstance(value, bool):
        raise ValueError("not a yes/no field")
    if kind == "text":
        text = str(value).strip()
        if len(text) > MAX_TEXT:
            raise ValueError(f"at most {MAX_TEXT} characters")
        if _CONTROL.search(text):
            raise ValueError("control characters are not allowed")
        return text
    if kind == "number":
        if isinstance(value, int | float):
            number: float = float(value)
        else:
            raw = str(value).strip().replace(" ", "")
            # German writing: 1.234,5 -> 1234.5
            if "," in raw:
                raw = raw.replace(".", "").replace(",", ".")
            try:
                number = float(raw)
            except ValueError:
                raise ValueError("not a number") from None
        if not math.isfinite(number):
            raise ValueError("not a number")
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "date":
        raw = str(value).strip()
        german = re.match(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$", raw)
        try:
            if german:
                day, month, year = (int(g) for g in german.groups())
                return date(year, month, day).isoformat()
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ValueError("not a date (YYYY-MM-DD or TT.MM.JJJJ)") from None
    if kind == "choice":
        text = str(value).strip()
        if text not in definition["choices"]:
            raise ValueError("not one of: " + ", ".join(definition["choices"]))
        return text
    raise ValueError(f"unknown field kind {kind}")


async def check_custom(conn: Conn, entity: Entity, custom: dict[str, Any]) -> dict[str, Any]:
    """`custom` checked against the tenant's definitions for `entity` and normalised.

    Empty values (None, "") are dropped. Raises InvalidInput naming `custom.<key>`.
    """
    if not custom:
        return {}
    defined = {row["key"]: row for row in await store.custom_fields(conn, entity)}
    cleaned: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key, value in custom.items():
        definition = defined.get(key)
        if definition is None:
            problems[f"custom.{key}"] = "no such custom field"
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            cleaned[key] = check_value(definition, value)
        except ValueError as exc:
            problems[f"custom.{key}"] = str(exc)
    if problems:
        summary = "; ".join(f"{name}: {message}" for name, message in problems.items())
        raise InvalidInput(summary, problems)
    return cleaned
