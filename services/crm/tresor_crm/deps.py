"""FastAPI dependencies: the verified actor and a transaction bound to its tenant."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request

from tresor_common.identity import IDENTITY_HEADER
from tresor_crm.config import CrmSettings
from tresor_crm.db import Conn, Database
from tresor_crm.errors import Forbidden
from tresor_crm.identity import Actor, IdentityVerifier


async def _verifier(request: Request) -> IdentityVerifier:
    verifier: IdentityVerifier = request.app.state.verifier
    return verifier


async def _database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def _settings(request: Request) -> CrmSettings:
    settings: CrmSettings = request.app.state.settings
    return settings


async def current_actor(
    request: Request,
    link: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,128}$")],
    verifier: Annotated[IdentityVerifier, Depends(_verifier)],
) -> Actor:
    actor = verifier.actor(request.headers.get(IDENTITY_HEADER), link)
    request.state.actor = actor
    return actor


async def admin_actor(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
    if not actor.is_admin:
        raise Forbidden("only a tenant admin may do this")
    return actor


async def tenant_connection(
    request: Request,
    actor: Annotated[Actor, Depends(current_actor)],
    database: Annotated[Database, Depends(_database)],
) -> AsyncIterator[Conn]:
    async with database.tenant_transaction(actor.tenant_id) as conn:
        # Rendering uses the same connection: a second one per page would let a burst of
        # page views hold the whole pool while each waits for another connection.
        request.state.conn = conn
        try:
            yield conn
        finally:
            request.state.conn = None


ActorDep = Annotated[Actor, Depends(current_actor)]
AdminDep = Annotated[Actor, Depends(admin_actor)]
# Committed before the response is sent: a client never sees success for a lost write.
ConnDep = Annotated[Conn, Depends(tenant_connection, scope="function")]
SettingsDep = Annotated[CrmSettings, Depends(_settings)]
DatabaseDep = Annotated[Database, Depends(_database)]
