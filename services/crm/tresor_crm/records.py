"""Companies and contacts: their fields, the rules on them, and how lists are asked for.

The rules live here; SQL lives in `storage/`. Every write records its changes
in the history and checks the version the editor started from, so that a
stale edit is refused instead of overwriting someone else's.
"""

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from tresor_crm.errors import InvalidInput

_EMAIL = re.compile(r"^[^@\s<>\"']{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9 ()/.\-]{3,40}$")
_TAG = re.compile(r"^[^\x00-\x1f,]{1,50}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


def _clean(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def plain_text(value: str) -> bool:
    """No control characters and no lone surrogates: safe for text columns and LIKE."""
    return not _CONTROL.search(value)


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    street: Text = ""
    postal_code: ShortText = ""
    city: ShortText = ""
    country: ShortText = ""
    tags: list[str] = Field(default_factory=list, max_length=50)
    custom: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags: list[str] = []
        for raw in value:
            tag = raw.strip()
            if not tag:
                continue
            if not _TAG.match(tag):
                raise ValueError(f"{tag[:20]!r}: a tag is up to 50 characters, without commas")
            if tag not in tags:
                tags.append(tag)
        return tags

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _clean(value)
        return value


class CompanyFields(_Fields):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    website: Text = ""
    industry: ShortText = ""
    phone: ShortText = ""

    @field_validator("website")
    @classmethod
    def _website(cls, value: str) -> str:
        if value and not re.match(r"^(https?://)?[A-Za-z0-9.-]+\.[A-Za-z]{2,63}(/\S*)?$", value):
            raise ValueError("not a web address")
        return value

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        if value and not _PHONE.match(value):
            raise ValueError("not a phone number")
        return value


class ContactFields(_Fields):
    first_name: ShortText = ""
    last_name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
    ]
    company_id: uuid.UUID | None = None
    emails: list[str] = Field(default_factory=list, max_length=10)
    phones: list[str] = Field(default_factory=list, max_length=10)
    position: ShortText = ""
    owner_id: uuid.UUID | None = None
    consent: bool = False
    consent_at: datetime | None = None

    @field_validator("emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        emails = [email.strip() for email in value if email.strip()]
        for email in emails:
            if not _EMAIL.match(email):
                raise ValueError(f"{email[:60]!r} is not an e-mail address")
        return emails

    @field_validator("phones")
    @classmethod
    def _phones(cls, value: list[str]) -> list[str]:
        phones = [phone.strip() for phone in value if phone.strip()]
        for phone in phones:
            if not _PHONE.match(phone):
                raise ValueError(f"{phone[:40]!r} is not a phone number")
        return phones

    def with_consent_date(self, previous: "ContactFields | None") -> "ContactFields":
        """Consent given now is dated now; withdrawn consent keeps no date."""
        if not self.consent:
            return self.model_copy(update={"consent_at": None})
        if self.consent_at is None:
            earlier = previous.consent_at if previous and previous.consent else None
            return self.model_copy(update={"consent_at": earlier or datetime.now(UTC)})
        return self


SortField = Literal["name", "created_at", "updated_at"]


@dataclass(frozen=True)
class ListQuery:
    """What a list page or an API listing asks for."""

    search: str = ""
    tag: str = ""
    company_id: uuid.UUID | None = None
    sort: SortField = "name"
    descending: bool = False
    limit: int = 25
    # Keyset: the sort value and id of the last row of the previous page.
    after: tuple[str, str] | None = None
    deleted: bool = False


def encode_cursor(sort_value: Any, row_id: uuid.UUID) -> str:
    if isinstance(sort_value, datetime | date):
        sort_value = sort_value.isoformat()
    raw = json.dumps([str(sort_value), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        uuid.UUID(row_id)
        if not isinstance(value, str) or not plain_text(value):
            raise ValueError("bad sort value")
        return value, str(row_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("cursor: not a cursor from a previous page") from None


def validation_error(exc: Exception) -> InvalidInput:
    """A pydantic ValidationError as our error, with a message per field."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return InvalidInput(str(exc))
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        fields.setdefault(name, message)
    summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
    return InvalidInput(summary, fields)
