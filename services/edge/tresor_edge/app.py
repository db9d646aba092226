"""The gate's HTTP side (Starlette): request to gate call, decision to response."""

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tresor_common.identity import IDENTITY_HEADER
from tresor_edge.csrf import LOGIN_COOKIE
from tresor_edge.gate import (
    SESSION_COOKIE,
    Gate,
    LoginFailed,
    LoginSucceeded,
    LogoutResult,
    TrustedProxies,
    Verdict,
)
from tresor_edge.pages import TEXTS, Pages, language

log = logging.getLogger("tresor_edge.gate")

LOGIN_PATH = "/login"
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
MAX_FORM_BYTES = 16 * 1024


def _problem(status: int, title: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status},
        status_code=status,
        media_type="application/problem+json",
    )


def _to_login(lang: str | None = None) -> RedirectResponse:
    target = LOGIN_PATH + (f"?lang={lang}" if lang else "")
    return RedirectResponse(target, status_code=303)


def _clear_session(response: Response) -> Response:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    return response


def create_app(gate: Gate, proxies: TrustedProxies, *, public_url: str | None) -> Starlette:
    pages = Pages()

    def login_url(request: Request) -> str:
        """Absolute: Traefik resolves a relative Location against the gate's own address."""
        if public_url:
            return public_url + LOGIN_PATH
        host = request.headers.get("x-forwarded-host", "")
        return f"https://{host}{LOGIN_PATH}" if _HOST.match(host) else LOGIN_PATH

    def client_ip(request: Request) -> str | None:
        """Only Traefik may call the gate; the address is the one it appended."""
        peer = request.client.host if request.client else None
        if not proxies.trusted(peer):
            return None
        return proxies.client_address(request.headers.get("x-forwarded-for"))

    def lang_of(request: Request) -> str:
        return language(request.query_params.get("lang"), request.headers.get("accept-language"))

    async def authorize(request: Request) -> Response:
        peer = request.client.host if request.client else None
        if not proxies.trusted(peer):
            log.warning("gate called by an untrusted peer", extra={"peer": peer})
            return PlainTextResponse("forbidden", status_code=403)
        uri = request.headers.get("x-forwarded-uri", "")
        decision = await gate.forward_auth(
            uri=uri,
            method=request.headers.get("x-forwarded-method", ""),
            cookie_secret=request.cookies.get(SESSION_COOKIE),
            client_ip=client_ip(request),
        )
        if decision.verdict is Verdict.ALLOW:
            return Response(status_code=200, headers={IDENTITY_HEADER: decision.identity_header})
        log.info("request denied", extra={"reason": decision.reason, "path": uri})
        if decision.api:
            return _problem(401, "Unauthorized: sign in again")
        return RedirectResponse(login_url(request), status_code=303)

    async def login_page(request: Request) -> Response:
        return _render_login(request, lang_of(request), message="", status=200)

    def _render_login(
        request: Request,
        lang: str,
        *,
        message: str,
        status: int,
        tenant: str = "",
        username: str = "",
    ) -> Response:
        nonce = gate.csrf.new_login_nonce()
        html = pages.render(
            "login.html",
            lang,
            message=message,
            csrf=gate.csrf.login_token(nonce),
            tenant=tenant,
            username=username,
        )
        response = HTMLResponse(html, status_code=status)
        response.set_cookie(
            LOGIN_COOKIE, nonce, path="/", secure=True, httponly=True, samesite="strict"
        )
        return response

    async def login_submit(request: Request) -> Response:
        lang = lang_of(request)
        texts = TEXTS[lang]
        address = client_ip(request)
        if address is None:
            return PlainTextResponse("forbidden", status_code=403)
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return PlainTextResponse("request too large", status_code=413)
        if not _same_origin(request):
            return _render_login(request, lang, message=texts["expired_form"], status=403)
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        tenant, username = fields.get("tenant", "").strip(), fields.get("username", "").strip()
        if not gate.csrf.login_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf")):
            return _render_login(
                request,
                lang,
                message=texts["expired_form"],
                status=403,
                tenant=tenant,
                username=username,
            )
        outcome = await gate.login(
            tenant=tenant,
            username=username,
            password=fields.get("password", ""),
            client_ip=address,
            user_agent=request.headers.get("user-agent", ""),
        )
        if isinstance(outcome, LoginSucceeded):
            response = RedirectResponse(f"/s/{outcome.link_token}/", status_code=303)
            # A session cookie: gone when the browser closes, nothing kept on disk.
            response.set_cookie(
                SESSION_COOKIE,
                outcome.cookie_secret,
                path="/",
                secure=True,
                httponly=True,
                samesite="strict",
            )
            response.delete_cookie(
                LOGIN_COOKIE, path="/", secure=True, httponly=True, samesite="strict"
            )
            return response
        failure, retry_after = outcome
        if failure is LoginFailed.LOCKED:
            message = texts["locked"].format(minutes=max(1, (retry_after + 59) // 60))
            status = 429
        elif failure is LoginFailed.UNAVAILABLE:
            message, status = texts["unavailable"], 503
        else:
            message, status = texts["invalid"], 401
        return _render_login(
            request, lang, message=message, status=status, tenant=tenant, username=username
        )

    async def logout(request: Request) -> Response:
        lang = lang_of(request)
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return PlainTextResponse("request too large", status_code=413)
        form = await request.form(max_files=0, max_fields=10, max_part_size=MAX_FORM_BYTES)
        token = form.get("csrf")
        # From another site: refused before anything happens to the session.
        result = LogoutResult.BAD_FORM
        if _same_origin(request):
            result = await gate.logout(
                path=request.url.path,
                cookie_secret=request.cookies.get(SESSION_COOKIE),
                client_ip=client_ip(request),
                csrf_token=token if isinstance(token, str) else None,
            )
        if result is LogoutResult.BAD_FORM:
            texts = TEXTS[lang]
            html = pages.render(
                "message.html",
                lang,
                heading=texts["logout_refused"],
                message=texts["logout_refused_text"],
            )
            return HTMLResponse(html, status_code=403)
        log.info("logout", extra={"result": result.value})
        response = _clear_session(_to_login(lang))
        response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
        return response

    async def root(request: Request) -> Response:
        return _to_login()

    async def not_found(request: Request) -> Response:
        lang = lang_of(request)
        texts = TEXTS[lang]
        html = pages.render(
            "message.html", lang, heading=texts["not_found"], message=texts["not_found_text"]
        )
        return HTMLResponse(html, status_code=404)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gate.close()

    routes = [
        Route(
            "/_gate/authorize",
            authorize,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        Route("/_gate/healthz", healthz),
        Route(LOGIN_PATH, login_page, methods=["GET"]),
        Route(LOGIN_PATH, login_submit, methods=["POST"]),
        Route("/s/{link}/logout", logout, methods=["POST"]),
        Route("/", root),
        Mount("/_gate/static", StaticFiles(directory=Path(__file__).parent / "static")),
        Route("/{rest:path}", not_found),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _same_origin(request: Request) -> bool:
    """A browser's Origin / Sec-Fetch-Site must not name another site.

    Under `Referrer-Policy: no-referrer` browsers send `Origin: null` with form posts;
    that is accepted only when the browser also says the request is same-origin.
    """
    site = request.headers.get("sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return site == "same-origin"
    host = request.headers.get("x-forwarded-host") or request.headers.get("host", "")
    return origin == f"https://{host}"
