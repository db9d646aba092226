"""The web UI's shared machinery: templates, language, CSRF, the layout, error pages.

What another area needs to render its pages in the common layout:

- ``await render(request, actor, "area/page.html", status=200, **context)`` renders
  a template that ``{% extends "base.html" %}`` and fills ``{% block title %}``
  and ``{% block content %}``. Every template gets ``prefix`` ("/s/<link>": start
  every href and form action with it), ``csrf`` (put
  ``<input type="hidden" name="csrf" value="{{ csrf }}">`` in every POST form),
  ``lang`` ("de" or "en"), ``t`` (the words of that language: ``{{ t.contacts }}``),
  ``actor`` and ``nav`` (the key of the highlighted navigation entry: pass
  ``nav="deals"`` etc.). Filters: ``|dt`` (date and time in Europe/Berlin, in the
  user's language), ``|d`` (date only), ``|money`` (cents as EUR).
- ``CheckedFormDep``: a FastAPI dependency giving the POSTed form after its
  ``csrf`` field was checked against the session's token (403 page if not).
  For streamed uploads call ``check_csrf(actor, token)`` yourself.
- ``redirect(actor, "contacts/…")``: a 303 to a page under the prefix.
- ``i18n.add_texts("de", {...})`` / ``("en", {...})`` adds an area's own words.
- Raise ``NotFound``/``InvalidInput``/``Conflict``/``Forbidden`` from ``errors``:
  outside ``/api/`` they become friendly HTML pages (``install_error_pages``),
  never a stack trace; under ``/api/`` they stay application/problem+json.

No page loads anything from another origin, has inline scripts or inline
styles: the edge's CSP is ``default-src 'self'``.
"""

import contextlib
import hmac
import logging
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from tresor_crm import i18n
from tresor_crm.db import Database
from tresor_crm.deps import ActorDep
from tresor_crm.errors import CrmError, Forbidden, NotFound
from tresor_crm.identity import Actor
from tresor_crm.storage import preferences

log = logging.getLogger("tresor_crm.web")

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {"crm.css": "text/css", "crm.js": "text/javascript"}
BERLIN = ZoneInfo("Europe/Berlin")
HTML_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_API_PATH = re.compile(r"^/s/[^/]+/api(/|$)")


class CsrfRefused(Forbidden):
    """A form without the session's token: maybe forged, maybe just an old page."""


# -- templates ------------------------------------------------------------------------------


def _dt(value: datetime | str | None, lang: str = "de") -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    local = value.astimezone(BERLIN) if value.tzinfo else value
    return local.strftime("%d.%m.%Y %H:%M" if lang == "de" else "%Y-%m-%d %H:%M")


def _d(value: date | datetime | None, lang: str = "de") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime) and value.tzinfo:
        value = value.astimezone(BERLIN)
    return value.strftime("%d.%m.%Y" if lang == "de" else "%Y-%m-%d")


def _money(cents: int | None, lang: str = "de") -> str:
    euros = (cents or 0) / 100
    text = f"{euros:,.2f}"
    if lang == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return f"{text} €"


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = _dt
    env.filters["d"] = _d
    env.filters["money"] = _money
    return env


templates = build_environment()


# -- language -------------------------------------------------------------------------------


async def page_language(request: Request, actor: Actor | None) -> i18n.Language:
    """The user's chosen language (kept server-side), German until they choose."""
    cached = getattr(request.state, "lang", None)
    if cached:
        return i18n.language(cached)
    lang = i18n.DEFAULT_LANGUAGE
    if actor is not None:
        request_conn = getattr(request.state, "conn", None)
        with contextlib.suppress(CrmError, psycopg.Error):
            if request_conn is not None:
                lang = i18n.language(await preferences.language(request_conn, actor.user_id))
            else:
                # Error pages have no request transaction of their own.
                database: Database = request.app.state.database
                async with database.tenant_transaction(actor.tenant_id) as conn:
                    lang = i18n.language(await preferences.language(conn, actor.user_id))
    request.state.lang = lang
    return lang


# -- rendering ------------------------------------------------------------------------------


async def render(
    request: Request,
    actor: Actor | None,
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = await page_language(request, actor)
    body = templates.get_template(template).render(
        prefix=actor.prefix if actor else "",
        csrf=actor.csrf_token if actor else "",
        actor=actor,
        lang=lang,
        t=i18n.texts(lang),
        languages=i18n.LANGUAGE_NAMES,
        here=request.url.path,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=HTML_HEADERS)


def redirect(actor: Actor, rest: str = "") -> RedirectResponse:
    """303 See Other to a page under the session's prefix."""
    return RedirectResponse(
        f"{actor.prefix}/{rest.lstrip('/')}", status_code=303, headers=HTML_HEADERS
    )


def safe_next(actor: Actor, target: str | None, default: str = "") -> str:
    """A return address only if it is one of our own pages; else `default` under the prefix."""
    if (
        target
        and target.startswith(actor.prefix + "/")
        and "//" not in target
        and "\\" not in target
        and not any(ord(ch) < 32 for ch in target)
    ):
        return target
    return f"{actor.prefix}/{default}"


# -- CSRF -----------------------------------------------------------------------------------


def check_csrf(actor: Actor, token: object) -> None:
    """The posted `csrf` field must be the session's token (compared in constant time)."""
    if not isinstance(token, str) or not token or not actor.csrf_token:
        raise CsrfRefused("the form has no valid csrf token")
    if not hmac.compare_digest(token.encode(), actor.csrf_token.encode()):
        raise CsrfRefused("the form has no valid csrf token")


async def checked_form(request: Request, actor: ActorDep) -> FormData:
    form = await request.form(max_files=0, max_fields=200)
    check_csrf(actor, form.get("csrf"))
    return form


CheckedFormDep = Annotated[FormData, Depends(checked_form)]


# -- static files ---------------------------------------------------------------------------


def static_response(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None or not (STATIC_DIR / name).is_file():
        raise NotFound("no such file")
    return FileResponse(
        STATIC_DIR / name,
        media_type=media_type,
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# -- error pages ----------------------------------------------------------------------------


def wants_html(request: Request) -> bool:
    """Pages for people everywhere but the JSON API and the OpenAPI document."""
    path = request.url.path
    return not (_API_PATH.match(path) or path == "/openapi.json" or path.startswith("/_crm/"))


def _status_of(exc: Exception) -> int:
    if isinstance(exc, CrmError):
        return exc.status
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code
    if isinstance(exc, RequestValidationError):
        return 422
    return 500


async def error_page(request: Request, exc: Exception) -> HTMLResponse:
    status = _status_of(exc)
    actor: Actor | None = getattr(request.state, "actor", None)
    if status == 401:
        actor = None  # nothing of an unverified identity is used
    known = status if status in (401, 403, 404, 409, 413, 422, 503) else 500
    if status == 405:
        known = 404
    if status >= 500 and not hasattr(request.state, "lang"):
        request.state.lang = i18n.DEFAULT_LANGUAGE  # the database may be what failed
    return await render(
        request,
        actor,
        "errors/error.html",
        status=status,
        code=known,
        csrf_failed=isinstance(exc, CsrfRefused),
    )


def install_error_pages(app: FastAPI) -> None:
    """Wrap the app's error handlers: HTML pages for people, the API keeps its own answers.

    Call after the JSON handlers are registered.
    """
    for key in (CrmError, RequestValidationError, StarletteHTTPException, Exception):
        original: Any = app.exception_handlers.get(key)

        async def wrapped(request: Request, exc: Exception, original: Any = original) -> Response:
            if wants_html(request):
                if _status_of(exc) >= 500 and not isinstance(exc, CrmError):
                    log.error("unexpected error on a page", exc_info=exc)
                return await error_page(request, exc)
            if original is None:
                return await _default_http(request, exc)
            result: Response = await original(request, exc)
            return result

        app.add_exception_handler(key, wrapped)


async def _default_http(request: Request, exc: Exception) -> Response:
    from fastapi.exception_handlers import http_exception_handler

    assert isinstance(exc, StarletteHTTPException)
    return await http_exception_handler(request, exc)
