"""Wiring: the CRM's FastAPI app from settings. No rules here."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from tresor_crm import (
    api_activities,
    api_admin,
    api_documents,
    api_pipeline,
    api_records,
    api_transfer,
    views_activities,
    views_admin,
    views_documents,
    views_export,
    views_pipeline,
    views_records,
    views_transfer,
    web,
)
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database
from tresor_crm.errors import CrmError, InvalidInput
from tresor_crm.identity import IdentityVerifier

log = logging.getLogger("tresor_crm")

# Every module whose `router` serves under /s/<link>/: the JSON API, then the pages.
ROUTED_MODULES = (
    api_records,
    api_pipeline,
    api_activities,
    api_documents,
    api_transfer,
    api_admin,
    views_records,
    views_pipeline,
    views_activities,
    views_documents,
    views_transfer,
    views_admin,
    views_export,
)

API_TITLE = "Tresor CRM API"
API_VERSION = "1.0.0"


def problem(status: int, title: str, detail: str, **extra: object) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra},
        status_code=status,
        media_type="application/problem+json",
    )


def create_app(settings: CrmSettings, database: Database | None = None) -> FastAPI:
    """`database` is opened at start-up unless a test hands one in."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if database is None:
            app.state.database = await Database.open(
                settings.database_url,
                size=settings.database_pool_size,
                timeout_seconds=settings.database_timeout_seconds,
            )
        else:
            app.state.database = database
        try:
            yield
        finally:
            for client_name in ("audit_log", "backup_client"):
                client = getattr(app.state, client_name, None)
                if client is not None:
                    await client.close()
            if database is None:
                await app.state.database.close()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Companies, contacts, deals, notes, tasks and documents of one tenant. "
        "Every path starts with the session's link (`/s/<link>/`); the edge adds the signed "
        "identity. Errors are application/problem+json.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.settings = settings
    if database is not None:
        app.state.database = database
    app.state.verifier = IdentityVerifier(settings.identity_public_keys)

    @app.exception_handler(CrmError)
    async def crm_error(request: Request, exc: CrmError) -> Response:
        extra = {"errors": exc.fields} if isinstance(exc, InvalidInput) and exc.fields else {}
        if exc.status >= 500:
            log.warning("request failed", extra={"error": type(exc).__name__})
        return problem(exc.status, exc.title, str(exc), **extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        fields: dict[str, str] = {}
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"][1:]) or "request"
            fields.setdefault(name, str(error["msg"]))
        detail = "; ".join(f"{name}: {message}" for name, message in fields.items())
        return problem(422, "Invalid input", detail, errors=fields)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error")
        return problem(500, "Internal error", "something went wrong; it has been logged")

    @app.get("/_crm/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in ROUTED_MODULES:
        app.include_router(module.router)
    # Pages for people get HTML error pages; /api/ keeps problem+json.
    web.install_error_pages(app)
    return app
