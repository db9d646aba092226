"""The CRM app against a real, migrated database, called with identities signed like the gate's."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tresor_common.identity import IDENTITY_HEADER, Identity, sign_identity
from tresor_crm.db import Database


@dataclass
class TenantClient:
    """One signed-in user of one tenant, speaking to the CRM's HTTP interface."""

    http: httpx.AsyncClient
    signing_key: Any
    tenant_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    username: str = "alice"
    roles: tuple[str, ...] = ("user",)
    link: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def identity_header(self, **changes: Any) -> str:
        now = time.time()
        values: dict[str, Any] = {
            "tenant_id": str(self.tenant_id),
            "tenant_slug": "t",
            "user_id": str(self.user_id),
            "username": self.username,
            "roles": self.roles,
            "session_id": "s" * 32,
            "link_token": self.link,
            "csrf_token": "csrf-" + self.link,
            "session_expires_at": now + 1800,
            "issued_at": now,
            "expires_at": now + 60,
        }
        values.update(changes)
        return sign_identity(self.signing_key, Identity(**values))

    def path(self, rest: str) -> str:
        return f"/s/{self.link}/{rest.lstrip('/')}"

    async def request(self, method: str, rest: str, **kwargs: Any) -> httpx.Response:
        headers = {IDENTITY_HEADER: self.identity_header(), **kwargs.pop("headers", {})}
        return await self.http.request(method, self.path(rest), headers=headers, **kwargs)

    async def get(self, rest: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", rest, **kwargs)

    async def post(self, rest: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", rest, **kwargs)

    async def put(self, rest: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", rest, **kwargs)

    async def delete(self, rest: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", rest, **kwargs)

    def colleague(self, username: str = "bob", roles: tuple[str, ...] = ("user",)) -> TenantClient:
        return TenantClient(
            self.http, self.signing_key, self.tenant_id, uuid.uuid4(), username, roles
        )

    async def company(self, name: str = "Müller GmbH", **fields: Any) -> dict[str, Any]:
        response = await self.post("api/v1/companies", json={"name": name, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def contact(self, last_name: str = "Schmidt", **fields: Any) -> dict[str, Any]:
        response = await self.post("api/v1/contacts", json={"last_name": last_name, **fields})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


@dataclass
class CrmHarness:
    http: httpx.AsyncClient
    signing_key: Any
    database: Database
    owner_url: str
    runtime_url: str

    def tenant(self, roles: tuple[str, ...] = ("user",)) -> TenantClient:
        return TenantClient(self.http, self.signing_key, roles=roles)
