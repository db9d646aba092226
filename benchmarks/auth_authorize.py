"""Authorize throughput and latency of the auth service, measured from another process.

`python -m benchmarks.auth_authorize [--record docs/benchmarks.md]` (`make bench`):

1. finds PostgreSQL and Redis (TRESOR_BENCH_*, else TRESOR_TEST_*, else embedded servers);
2. creates and migrates a scratch database, starts `python -m tresor_auth` as its own
   process (or several, --servers) on a free loopback port with a key prefix of its own;
3. creates a tenant and a user through the gRPC API and logs in a pool of sessions;
4. calls Authorize from this process (or from several client processes) with many
   concurrent callers: a warm-up, then a measured window bounded in time and count;
5. prints throughput and latency percentiles, and with --record rewrites its section
   of a Markdown file.

The server is stopped, the database dropped and the Redis keys removed at the end,
also when something fails.
"""

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import grpc
import psycopg
import redis
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql
from pydantic import SecretStr

from benchmarks.report import child_process, cpu_model, percentile_ms, record, stop_on_sigterm
from tests import backing
from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_auth.config import AuthSettings
from tresor_auth.server import migrate

SECTION = "## Auth: Authorize throughput and latency"
TARGET_CALLS_PER_SECOND = 3_000
TARGET_P99_MS = 10.0
TARGET_CORES = 2

# Same role and password as tests/auth/conftest.py: whichever runs first creates it.
APP_ROLE = "tresor_auth_app"
APP_PASSWORD = "tresor-test-app"  # noqa: S105 - a local test role, not a secret
RUNTIME_GROUP = "tresor_auth_runtime"

CLIENT_IP = "127.0.0.1"
USERNAME = "bench"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway benchmark user
CALL_TIMEOUT_SECONDS = 5.0
SERVER_START_SECONDS = 60.0
# A client that has not connected or reported by then is stuck, not slow.
CLIENT_SLACK_SECONDS = 60.0
# Without it, channels to one address share one subchannel, i.e. one TCP connection.
CHANNEL_OPTIONS = (("grpc.use_local_subchannel_pool", 1),)


# -- backing servers and the scratch database --------------------------------------------


@contextlib.contextmanager
def backing_urls() -> Iterator[tuple[str, str]]:
    """(PostgreSQL superuser URL, Redis URL): the bench's own, the tests', or embedded ones."""
    with contextlib.ExitStack() as stack:
        postgres = os.environ.get("TRESOR_BENCH_DATABASE_URL") or stack.enter_context(
            backing.postgres_url()
        )
        redis_url = os.environ.get("TRESOR_BENCH_REDIS_URL") or stack.enter_context(
            backing.redis_url()
        )
        yield postgres, redis_url


@contextlib.contextmanager
def scratch_database(admin_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    """(owner URL, runtime-role URL) of a migrated database that is dropped afterwards."""
    name = f"tresor_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        owner = backing.with_database(admin_url, name)
        migrate(
            AuthSettings(
                environment="development",
                database_url=owner,
                migration_database_url=owner,
                redis_url=redis_url,
                service_tokens=SecretStr(new_service_token()),
            )
        )
        ensure_runtime_role(admin_url)
        yield owner, backing.with_database(admin_url, name, user=APP_ROLE, password=APP_PASSWORD)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def ensure_runtime_role(admin_url: str) -> None:
    """The login role the service runs as; the migration created the group it joins."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
            return
        # The tests may create it at the same moment.
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
                    sql.Identifier(APP_ROLE),
                    sql.Literal(APP_PASSWORD),
                    sql.Identifier(RUNTIME_GROUP),
                )
            )


def forget_keys(redis_url: str, prefix: str) -> None:
    """Sessions would otherwise linger in Redis until their TTL."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.RedisError as exc:
        # Best effort: the keys expire anyway, and the error that matters is the run's own.
        print(f"could not remove the {prefix}* keys from Redis: {exc}", file=sys.stderr)
    finally:
        client.close()


def new_service_token() -> str:
    return f"bench-{uuid.uuid4().hex}"


# -- the auth service process ---------------------------------------------------------------


def server_env(
    *, owner: str, runtime: str, redis_url: str, prefix: str, token: str
) -> dict[str, str]:
    # Inherited TRESOR_AUTH_* settings would change what is measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_AUTH_")}
    env.update(
        TRESOR_AUTH_DATABASE_URL=runtime,
        TRESOR_AUTH_MIGRATION_DATABASE_URL=owner,
        TRESOR_AUTH_REDIS_URL=redis_url,
        TRESOR_AUTH_REDIS_KEY_PREFIX=prefix,
        TRESOR_AUTH_SERVICE_TOKENS=token,
        TRESOR_AUTH_ENVIRONMENT="development",
        TRESOR_AUTH_LOG_LEVEL="WARNING",
    )
    return env


def auth_service(
    env: dict[str, str], port: int
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`python -m tresor_auth` in its own process."""
    listen = {"TRESOR_AUTH_LISTEN": f"127.0.0.1:{port}"}
    return child_process([sys.executable, "-m", "tresor_auth"], env | listen)


async def wait_until_serving(address: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    request = health_pb2.HealthCheckRequest(service="")
    async with aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the auth service exited with status {process.returncode}")
            with contextlib.suppress(aio.AioRpcError):
                reply = await health.Check(request, timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the auth service did not answer on {address}")
            await asyncio.sleep(0.1)


def cpu_seconds_of(pid: int) -> float:
    """User plus system CPU time of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of stat(5); 3 is the first after the name.
    ticks = int(fields[14 - 3]) + int(fields[15 - 3])
    return ticks / os.sysconf("SC_CLK_TCK")


# -- sessions -------------------------------------------------------------------------------


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def open_sessions(address: str, token: str, count: int) -> list[tuple[str, str]]:
    """Log in `count` sessions of one user: (link token, cookie secret) each."""
    metadata = bearer(token)
    slug = f"bench-{uuid.uuid4().hex[:12]}"
    async with aio.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        tenant = await stub.CreateTenant(
            pb.CreateTenantRequest(
                slug=slug,
                display_name="Benchmark",
                settings=pb.TenantSettings(max_sessions_per_user=count),
            ),
            metadata=metadata,
        )
        await stub.CreateUser(
            pb.CreateUserRequest(
                tenant_id=tenant.id,
                username=USERNAME,
                display_name="Benchmark",
                password=PASSWORD,
                roles=[pb.ROLE_USER],
            ),
            metadata=metadata,
        )
        login = pb.LoginRequest(
            tenant=slug,
            username=USERNAME,
            password=PASSWORD,
            client_ip=CLIENT_IP,
            user_agent="tresor-bench",
        )
        grants = []
        for _ in range(count):
            reply = await stub.Login(login, metadata=metadata)
            if reply.WhichOneof("result") != "session":
                raise RuntimeError(f"login refused: {reply}")
            grants.append((reply.session.link_token, reply.session.cookie_secret))
    return grants


# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What one client (this process or a child) does; picklable for child processes."""

    addresses: tuple[str, ...]
    token: str
    grants: tuple[tuple[str, str], ...]
    callers: int
    first_caller: int
    channels: int
    warmup_seconds: float
    measure_seconds: float
    max_calls: int


@dataclass
class ClientResult:
    """One client's calls; latencies only of allows completed in the measured window."""

    latencies_ns: list[int] = field(default_factory=list)
    window_ns: int = 0
    denied: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


@dataclass
class Window:
    start_ns: int
    end_ns: int
    max_calls: int

    def close_early(self, now_ns: int) -> None:
        self.end_ns = min(self.end_ns, now_ns)


def authorize_requests(grants: Sequence[tuple[str, str]]) -> list[pb.AuthorizeRequest]:
    return [
        pb.AuthorizeRequest(
            link_token=link,
            cookie_secret=cookie,
            client_ip=CLIENT_IP,
            method="GET",
            path=f"/s/{link}/contacts",
        )
        for link, cookie in grants
    ]


async def caller(
    stub: "auth_pb2_grpc.AuthServiceAsyncStub",  # exists for type checkers only
    requests: list[pb.AuthorizeRequest],
    first: int,
    metadata: tuple[tuple[str, str]],
    window: Window,
    result: ClientResult,
) -> None:
    """A closed loop: one call at a time, the next as soon as the answer is in."""
    turn = first
    while True:
        started = time.monotonic_ns()
        if started >= window.end_ns:
            return
        request = requests[turn % len(requests)]
        turn += 1
        try:
            reply = await stub.Authorize(request, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS)
        except aio.AioRpcError as exc:
            result.errors[exc.code().name] += 1
            continue
        ended = time.monotonic_ns()
        if reply.WhichOneof("result") != "identity":
            result.denied[pb.DenyReason.Name(reply.denied)] += 1
        elif window.start_ns <= ended < window.end_ns:
            result.latencies_ns.append(ended - started)
            if len(result.latencies_ns) >= window.max_calls:
                window.close_early(ended)


async def drive(plan: LoadPlan, rendezvous: Callable[[], Awaitable[object]]) -> ClientResult:
    """Connect, meet the other clients at `rendezvous`, then run the callers."""
    # With several servers, the channels take turns: client-side balancing, as behind a proxy.
    channels = [
        aio.insecure_channel(plan.addresses[i % len(plan.addresses)], options=CHANNEL_OPTIONS)
        for i in range(plan.channels)
    ]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(channel.channel_ready() for channel in channels)),
            CLIENT_SLACK_SECONDS,
        )
        stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in channels]
        requests = authorize_requests(plan.grants)
        metadata = bearer(plan.token)
        await rendezvous()
        start, cpu = time.monotonic_ns(), time.process_time()
        window = Window(
            start_ns=start + int(plan.warmup_seconds * 1e9),
            end_ns=start + int((plan.warmup_seconds + plan.measure_seconds) * 1e9),
            max_calls=plan.max_calls,
        )
        result = ClientResult()
        await asyncio.gather(
            *(
                caller(
                    stubs[i % len(stubs)], requests, plan.first_caller + i, metadata, window, result
                )
                for i in range(plan.callers)
            )
        )
        result.window_ns = window.end_ns - window.start_ns
        result.cpu_seconds = time.process_time() - cpu
        result.wall_seconds = (time.monotonic_ns() - start) / 1e9
        return result
    finally:
        await asyncio.gather(*(channel.close(None) for channel in channels))


def client_process(
    plan: LoadPlan, barrier: threading.Barrier, results: "Queue[ClientResult]"
) -> None:
    """Entry point of a child client process."""

    async def rendezvous() -> None:
        await asyncio.to_thread(barrier.wait, CLIENT_SLACK_SECONDS)

    results.put(asyncio.run(drive(plan, rendezvous)))


def split_plans(plan: LoadPlan, clients: int) -> list[LoadPlan]:
    """Callers and the call cap shared out between client processes."""
    plans = []
    first = 0
    for index in range(clients):
        callers = plan.callers // clients + (1 if index < plan.callers % clients else 0)
        part = replace(
            plan, callers=callers, first_caller=first, max_calls=max(1, plan.max_calls // clients)
        )
        plans.append(part)
        first += callers
    return plans


async def server_cpu_during_window(
    plan: LoadPlan, server_pids: list[int], load: "asyncio.Future[Any]"
) -> float:
    """Cores the servers used in the measured window; call right after the rendezvous.

    The window ends early when the load does (the call cap was reached).
    """

    def used() -> float:
        return sum(cpu_seconds_of(pid) for pid in server_pids)

    await asyncio.sleep(plan.warmup_seconds)
    before, started = used(), time.monotonic()
    await asyncio.wait((load,), timeout=plan.measure_seconds)
    return (used() - before) / max(time.monotonic() - started, 1e-3)


async def run_in_this_process(
    plan: LoadPlan, server_pids: list[int]
) -> tuple[list[ClientResult], float]:
    started = asyncio.Event()

    async def rendezvous() -> None:
        started.set()

    load = asyncio.create_task(drive(plan, rendezvous))
    waiting = asyncio.create_task(started.wait())
    # If the load fails before it starts, its error is what matters, not a timeout.
    await asyncio.wait(
        (load, waiting), timeout=CLIENT_SLACK_SECONDS, return_when=asyncio.FIRST_COMPLETED
    )
    waiting.cancel()
    if not started.is_set():
        if load.done():
            await load  # raises what stopped it
        load.cancel()
        raise TimeoutError("the client did not connect to the auth service in time")
    server_cores = await server_cpu_during_window(plan, server_pids, load)
    return [await load], server_cores


async def run_in_child_processes(
    plan: LoadPlan, clients: int, server_pids: list[int]
) -> tuple[list[ClientResult], float]:
    # spawn, not fork: gRPC's threads do not survive a fork.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    queue = context.Queue()
    children = [
        context.Process(target=client_process, args=(part, barrier, queue), daemon=True)
        for part in split_plans(plan, clients)
    ]
    for child in children:
        child.start()
    timeout = plan.warmup_seconds + plan.measure_seconds + CLIENT_SLACK_SECONDS
    results: list[ClientResult] = []
    try:
        await asyncio.to_thread(barrier.wait, CLIENT_SLACK_SECONDS)
        load = asyncio.gather(*(asyncio.to_thread(queue.get, True, timeout) for _ in children))
        server_cores = await server_cpu_during_window(plan, server_pids, load)
        results = await load
    finally:
        if not results:
            # A failure: release the threads still waiting for the children, stop those.
            barrier.abort()
            for _ in children:
                queue.put(None)
        for child in children:
            child.join(CLIENT_SLACK_SECONDS if results else 0)
            if child.is_alive():
                child.kill()
                child.join()
    return results, server_cores


# -- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    calls: int
    seconds: float
    calls_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    denied: Counter[str]
    errors: Counter[str]
    server_cores: float
    client_cores: float

    @property
    def broken(self) -> bool:
        """A denial or an error means the benchmark measured the wrong thing."""
        return bool(self.denied or self.errors) or self.calls == 0

    @property
    def server_cpu_per_call_us(self) -> float:
        return self.server_cores / self.calls_per_second * 1e6 if self.calls_per_second else 0.0

    @property
    def target_met(self) -> bool:
        return (
            not self.broken
            and self.calls_per_second >= TARGET_CALLS_PER_SECOND
            and self.p99_ms < TARGET_P99_MS
        )


def figures_of(results: list[ClientResult], server_cores: float) -> Figures:
    latencies = sorted(ns for result in results for ns in result.latencies_ns)
    # The clients ran side by side over the same window: their rates add up.
    rate = sum(len(r.latencies_ns) / (r.window_ns / 1e9) for r in results if r.window_ns > 0)
    return Figures(
        calls=len(latencies),
        seconds=max((r.window_ns for r in results), default=0) / 1e9,
        calls_per_second=rate,
        p50_ms=percentile_ms(latencies, 50),
        p90_ms=percentile_ms(latencies, 90),
        p99_ms=percentile_ms(latencies, 99),
        max_ms=latencies[-1] / 1e6 if latencies else float("nan"),
        denied=sum((r.denied for r in results), Counter()),
        errors=sum((r.errors for r in results), Counter()),
        server_cores=server_cores,
        client_cores=sum(r.cpu_seconds / r.wall_seconds for r in results if r.wall_seconds),
    )


def cores() -> int:
    return len(os.sched_getaffinity(0))


def machine() -> str:
    return (
        f"{cores()} CPUs ({cpu_model()}), {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}, grpcio {grpc.__version__}"
    )


def counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "none"


def table(measured: list[tuple[int, Figures]]) -> list[str]:
    rows = [
        "| Callers | Calls/s | p50 / p90 / p99 (max) ms | Server CPU per call | "
        "CPU server / clients | Denials / errors | Target |",
        "|---:|---:|---|---:|---|---|---|",
    ]
    for callers, figures in measured:
        outcome = "not measured" if figures.broken else ("met" if figures.target_met else "not met")
        rows.append(
            f"| {callers} | {figures.calls_per_second:,.0f} | "
            f"{figures.p50_ms:.2f} / {figures.p90_ms:.2f} / {figures.p99_ms:.2f} "
            f"({figures.max_ms:.1f}) | {figures.server_cpu_per_call_us:.0f} µs | "
            f"{figures.server_cores:.2f} / {figures.client_cores:.2f} cores | "
            f"{counts(figures.denied)} / {counts(figures.errors)} | {outcome} |"
        )
    return rows


def method(plan: LoadPlan, sessions: int) -> str:
    servers = len(plan.addresses)
    started = (
        "`python -m tresor_auth` as its own process"
        if servers == 1
        else f"{servers} `python -m tresor_auth` processes, each on its own port,"
    )
    return (
        f"`make bench` (`python -m benchmarks.auth_authorize`) starts {started} "
        "on a scratch PostgreSQL database and Redis key prefix, creates a "
        f"tenant and a user through the gRPC API and logs in {sessions} sessions. The "
        "benchmark process then calls Authorize over loopback from closed-loop callers "
        "(asyncio tasks on grpc.aio channels, the service token in `authorization` metadata), "
        f"cycling through the sessions, at each concurrency level in turn: "
        f"{plan.warmup_seconds:g} s of warm-up, then a {plan.measure_seconds:g} s measured "
        "window. Latency is taken by the caller, from sending the request to reading the "
        "answer; every answer must be an allow. The "
        "callers are closed loops, so latency includes queueing in the server: the mean "
        "latency is about callers / throughput. The server, PostgreSQL, Redis and the "
        "clients share the machine."
    )


def render_section(
    measured: list[tuple[int, Figures]], plan: LoadPlan, sessions: int, setup: str
) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    target = (
        f"Target: at least {TARGET_CALLS_PER_SECOND:,} calls/s with p99 under "
        f"{TARGET_P99_MS:g} ms on a {TARGET_CORES}-core machine. With closed-loop callers "
        "the mean latency is about callers / throughput, so p99 under 10 ms at 3,000 calls/s "
        "is only possible up to about 25 callers; each level says whether both halves hold."
    )
    return "\n".join(
        [
            SECTION,
            "",
            method(plan, sessions),
            "",
            *table(measured),
            "",
            f"Setup: {setup}. Machine: {machine()}. Date: {date}.",
            "",
            target,
            "",
        ]
    )


# -- the run --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.auth_authorize", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--record", type=Path, metavar="FILE", help="rewrite our section of FILE")
    parser.add_argument(
        "--sessions",
        type=int,
        default=50,
        choices=range(1, 101),
        metavar="1..100",
        help="sessions to log in and cycle through (a tenant allows a user at most 100)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[8, 16, 32, 64],
        help="concurrent callers in all; a comma-separated list measures each in turn",
    )
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument("--channels", type=int, default=4, help="gRPC channels per client")
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="auth service processes, each on its own port (the service does not share one)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per level")
    parser.add_argument("--max-calls", type=int, default=1_000_000, help="cap on measured calls")
    args = parser.parse_args(argv)
    if not all(1 <= args.clients <= callers for callers in args.concurrency):
        parser.error("need 1 <= clients <= concurrency")
    if not 1 <= args.servers <= args.channels:
        parser.error("need 1 <= servers <= channels (each channel talks to one server)")
    return args


async def benchmark(
    args: argparse.Namespace, token: str, servers: dict[str, subprocess.Popen[bytes]]
) -> tuple[list[tuple[int, Figures]], LoadPlan]:
    """Each concurrency level in turn against the same servers; `servers` by address."""
    await asyncio.gather(*(wait_until_serving(a, process) for a, process in servers.items()))
    addresses = tuple(servers)
    # The servers share Redis: a session opened through one is known to all.
    grants = await open_sessions(addresses[0], token, args.sessions)
    pids = [process.pid for process in servers.values()]
    measured: list[tuple[int, Figures]] = []
    plan: LoadPlan | None = None
    for callers in args.concurrency:
        plan = LoadPlan(
            addresses=addresses,
            token=token,
            grants=tuple(grants),
            callers=callers,
            first_caller=0,
            channels=args.channels,
            warmup_seconds=args.warmup,
            measure_seconds=args.duration,
            max_calls=args.max_calls,
        )
        if args.clients == 1:
            results, server_cores = await run_in_this_process(plan, pids)
        else:
            results, server_cores = await run_in_child_processes(plan, args.clients, pids)
        measured.append((callers, figures_of(results, server_cores)))
    assert plan is not None
    return measured, plan


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(backing.free_port())
    return sorted(ports)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    token = new_service_token()
    prefix = f"bench:{uuid.uuid4().hex}:"
    with contextlib.ExitStack() as stack:
        admin_url, redis_url = stack.enter_context(backing_urls())
        owner, runtime = stack.enter_context(scratch_database(admin_url, redis_url))
        stack.callback(forget_keys, redis_url, prefix)
        env = server_env(
            owner=owner, runtime=runtime, redis_url=redis_url, prefix=prefix, token=token
        )
        servers = {
            f"127.0.0.1:{port}": stack.enter_context(auth_service(env, port))
            for port in free_ports(args.servers)
        }
        measured, plan = asyncio.run(benchmark(args, token, servers))

    setup = (
        f"{args.clients} client process(es) with {args.channels} channel(s) each, "
        f"{args.servers} server process(es), {args.sessions} sessions"
    )
    section = render_section(measured, plan, args.sessions, setup)
    print(section)
    if any(figures.broken for _, figures in measured):
        print("The run had denials or errors: nothing recorded.", file=sys.stderr)
        return 1
    if args.record:
        record(args.record, SECTION, section)
        print(f"recorded in {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
