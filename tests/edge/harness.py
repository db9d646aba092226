"""The whole edge for end-to-end tests: real Traefik (TLS), the gate, a real auth server,
and a placeholder upstream that records what reaches it.

Clients speak HTTPS to Traefik over real sockets, from 127.0.0.1 or, to play
someone on another network, from 127.0.0.2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.auth.harness import AuthClient, TenantUser
from tests.backing import free_port
from tresor_common.identity import (
    IDENTITY_HEADER,
    InvalidIdentity,
    generate_private_key_pem,
    load_private_key,
    load_public_key,
    public_key_pem,
    verify_identity,
)
from tresor_edge.config import TraefikSettings
from tresor_edge.traefik_config import write_config

SESSION_COOKIE = "__Host-tresor_sid"
CSRF_COOKIE = "__Host-tresor_csrf"
_CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Upstream:
    """Stands in for the CRM: answers every /s/ request with what it was given."""

    public_key_pem: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        keys = [load_public_key(self.public_key_pem)]

        async def echo(request: Request) -> JSONResponse:
            header = request.headers.get(IDENTITY_HEADER)
            seen: dict[str, Any] = {"path": request.url.path, "identity_header": header}
            try:
                identity = verify_identity(keys, header)
                seen["identity"] = {
                    "tenant_id": identity.tenant_id,
                    "user_id": identity.user_id,
                    "username": identity.username,
                    "roles": list(identity.roles),
                    "session_id": identity.session_id,
                    "link_token": identity.link_token,
                    "csrf_token": identity.csrf_token,
                }
            except InvalidIdentity as exc:
                seen["identity_error"] = str(exc)
            seen["headers"] = dict(request.headers)
            self.received.append(seen)
            status = 200 if "identity" in seen else 401
            return JSONResponse(seen, status_code=status)

        return Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])


class UvicornTask:
    """A Starlette app served on a real socket inside the test's event loop."""

    def __init__(self, app: Starlette, port: int) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@dataclass
class Response:
    status: int
    headers: httpx.Headers
    text: str

    @property
    def location(self) -> str:
        return str(self.headers.get("location", ""))

    def set_cookies(self) -> SimpleCookie:
        jar: SimpleCookie = SimpleCookie()
        for raw in self.headers.get_list("set-cookie"):
            jar.load(raw)
        return jar


@dataclass
class Browser:
    """An HTTPS client with its own cookies, bound to one source address."""

    stack: EdgeStack
    source_ip: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    def _client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(
            local_address=self.source_ip, verify=self.stack.tls_context()
        )
        return httpx.AsyncClient(
            transport=transport,
            base_url=self.stack.https_url,
            follow_redirects=False,
            timeout=15,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        send_cookies: bool = True,
    ) -> Response:
        sent = dict(headers or {})
        if send_cookies and self.cookies:
            sent["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        async with self._client() as client:
            raw = await client.request(method, path, data=data, headers=sent)
        response = Response(raw.status_code, raw.headers, raw.text)
        for name, morsel in response.set_cookies().items():
            if morsel["max-age"] == "0" or morsel.value == "":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = morsel.value
        return response

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def login(
        self,
        who: TenantUser,
        *,
        password: str | None = None,
        origin: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Response:
        page = await self.get("/login")
        match = _CSRF_FIELD.search(page.text)
        assert match, "the login page has no CSRF field"
        headers = {**({"origin": self.stack.https_url} if origin else {}), **(headers or {})}
        return await self.request(
            "POST",
            "/login",
            data={
                "csrf": match.group(1),
                "tenant": who.tenant.slug,
                "username": who.user.username,
                "password": who.password if password is None else password,
            },
            headers=headers,
        )

    async def login_link(self, who: TenantUser) -> str:
        """Log in and return the /s/<link-token>/ address the browser is sent to."""
        response = await self.login(who)
        assert response.status == 303, (response.status, response.text[:500])
        assert response.location.startswith("/s/"), response.location
        return response.location


def link_token_of(location: str) -> str:
    return location.split("/")[2]


class EdgeStack:
    def __init__(
        self,
        auth: AuthClient,
        folder: Path,
        *,
        http: Literal["redirect", "off"] = "redirect",
        **traefik: Any,
    ) -> None:
        self.auth = auth
        self.folder = folder
        signing_pem = generate_private_key_pem()
        self.upstream = Upstream(public_key_pem(load_private_key(signing_pem)))
        self.gate_port, self.upstream_port = free_port(), free_port()
        self.https_port, self.http_port = free_port(), free_port()
        self.access_log = folder / "access.log"
        self.traefik_settings = TraefikSettings(
            https_address=f":{self.https_port}",
            http=http,
            http_address=f":{self.http_port}",
            data_dir=folder / "edge",
            gate_url=f"http://127.0.0.1:{self.gate_port}",
            upstream_url=f"http://127.0.0.1:{self.upstream_port}",
            access_log_file=self.access_log,
            **traefik,
        )
        key_file = folder / "identity-signing-key.pem"
        key_file.write_text(signing_pem)
        self.gate_env = {
            "TRESOR_EDGE_ENVIRONMENT": "development",
            "TRESOR_EDGE_GATE_LISTEN": f"127.0.0.1:{self.gate_port}",
            "TRESOR_EDGE_AUTH_ADDRESS": auth.address,
            "TRESOR_EDGE_AUTH_SERVICE_TOKEN": auth.settings.gate_token_list()[0],
            "TRESOR_EDGE_IDENTITY_SIGNING_KEY_FILE": str(key_file),
            "TRESOR_EDGE_CSRF_SECRET": "csrf-secret-for-tests-0123456789",
            "TRESOR_EDGE_AUTH_DEADLINE_SECONDS": "1.0",
            "TRESOR_EDGE_PUBLIC_URL": f"https://127.0.0.1:{self.https_port}",
            "TRESOR_EDGE_LOG_LEVEL": "DEBUG",
        }
        self.gate_log = folder / "gate.log"
        self._gate: subprocess.Popen[bytes] | None = None
        self._upstream = UvicornTask(self.upstream.app(), self.upstream_port)
        self._traefik: subprocess.Popen[bytes] | None = None
        self.traefik_log = folder / "traefik.log"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def tls_context(self) -> ssl.SSLContext:
        cert = self.traefik_settings.tls_cert_file or (
            self.traefik_settings.data_dir / "tls" / "localhost.crt"
        )
        return ssl.create_default_context(cafile=str(cert))

    def browser(self, source_ip: str = "127.0.0.1") -> Browser:
        return Browser(self, source_ip)

    async def start(self) -> None:
        await self._upstream.start()
        self._gate = self._spawn("gate", self.gate_log, self.gate_env)
        self._traefik = self._spawn_traefik()
        await self._wait_ready()

    def _spawn(self, command: str, log_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """`python -m tresor_edge <command>`, as production runs it."""
        with log_file.open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "tresor_edge", command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def _spawn_traefik(self) -> subprocess.Popen[bytes]:
        static_file = write_config(self.traefik_settings)
        with self.traefik_log.open("wb") as log:
            return subprocess.Popen(
                [str(Path(sys.executable).parent / "traefik"), f"--configFile={static_file}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ},
            )

    async def _wait_ready(self) -> None:
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline:
            assert self._traefik is not None
            assert self._gate is not None
            if self._traefik.poll() is not None:
                raise RuntimeError("traefik exited:\n" + self.traefik_log.read_text()[-3000:])
            if self._gate.poll() is not None:
                raise RuntimeError("gate exited:\n" + self.gate_log.read_text()[-3000:])
            with contextlib.suppress(httpx.HTTPError, OSError):
                page = await self.browser().get("/login")
                if page.status == 200:
                    return
            await asyncio.sleep(0.1)
        raise TimeoutError("traefik did not serve the login page:\n" + self.traefik_log.read_text())

    async def stop(self) -> None:
        for process in (self._traefik, self._gate):
            if process and process.poll() is None:
                process.terminate()
                try:
                    await asyncio.to_thread(process.wait, 10)
                except subprocess.TimeoutExpired:
                    process.kill()
        await self._upstream.stop()


@contextlib.asynccontextmanager
async def running_stack(auth: AuthClient, folder: Path, **options: Any) -> AsyncIterator[EdgeStack]:
    stack = EdgeStack(auth, folder, **options)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
