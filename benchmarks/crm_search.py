"""CRM search latency on a tenant with 1,000,000 contacts, through the real app over HTTP.

`python -m benchmarks.crm_search [--record docs/benchmarks.md]` (`make bench`):

1. finds PostgreSQL (TRESOR_BENCH_DATABASE_URL, else TRESOR_TEST_DATABASE_URL, else an
   embedded server, which needs pg_trgm);
2. creates and migrates a scratch database, and bulk-loads it with COPY: one tenant with
   1,000,000 contacts and 20,000 companies (German-looking names, e-mails, phones, tags),
   and a second tenant with a few thousand rows; the indexes are built after the load;
3. starts `python -m tresor_crm` as its own process, as the runtime role that row-level
   security binds, on a free loopback port;
4. searches for several terms as the API's `q=` does (`GET /s/<link>/api/v1/contacts?q=`,
   and the search box's `GET /s/<link>/api/v1/search?q=`), one request at a time with an
   identity signed like the gate's, and prints p50/p99 per term;
5. with --explain, prints EXPLAIN ANALYZE of the contact search for each term;
6. with --record, rewrites its own section of a Markdown file.

The server is stopped and the database dropped at the end, also when something fails.
"""

import argparse
import asyncio
import contextlib
import os
import platform
import random
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from benchmarks.report import child_process, cpu_model, percentile_ms, record, stop_on_sigterm
from tests import backing
from tresor_common.identity import (
    IDENTITY_HEADER,
    Identity,
    generate_private_key_pem,
    load_private_key,
    public_key_pem,
    sign_identity,
)
from tresor_common.migrations import apply_migrations
from tresor_crm.server import MIGRATIONS

SECTION = "## CRM: search on 1,000,000 contacts"
TARGET_P99_MS = 100.0

# Same role and password as tests/crm/fixtures.py: whichever runs first creates it.
APP_ROLE = "tresor_crm_app"
APP_PASSWORD = "tresor-test-crm"  # noqa: S105 - a local test role, not a secret
RUNTIME_GROUP = "tresor_crm_runtime"

SERVER_START_SECONDS = 60.0
REQUEST_TIMEOUT_SECONDS = 60.0

FIRST_NAMES = [
    "Anna",
    "Lena",
    "Laura",
    "Julia",
    "Sarah",
    "Lisa",
    "Katharina",
    "Hannah",
    "Lea",
    "Marie",
    "Sophie",
    "Johanna",
    "Emma",
    "Mia",
    "Claudia",
    "Sabine",
    "Petra",
    "Andrea",
    "Monika",
    "Ursula",
    "Birgit",
    "Karin",
    "Heike",
    "Susanne",
    "Nicole",
    "Stefanie",
    "Lukas",
    "Leon",
    "Jonas",
    "Felix",
    "Maximilian",
    "Paul",
    "Tim",
    "Jan",
    "Niklas",
    "Finn",
    "Elias",
    "Ben",
    "Noah",
    "David",
    "Thomas",
    "Michael",
    "Andreas",
    "Stefan",
    "Frank",
    "Jürgen",
    "Klaus",
    "Wolfgang",
    "Markus",
    "Christian",
    "Matthias",
    "Uwe",
    "Dieter",
    "Bernd",
    "Ralf",
    "Jörg",
    "Sven",
    "Tobias",
    "Florian",
    "Sebastian",
    "Philipp",
    "Moritz",
    "Jakob",
]
LAST_NAMES = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Schmitz",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Schulze",
    "Maier",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Lang",
    "Scholz",
    "Möller",
    "Weiß",
    "Jung",
    "Hahn",
    "Schubert",
    "Vogel",
    "Friedrich",
    "Keller",
    "Günther",
    "Frank",
    "Berger",
    "Winkler",
    "Roth",
    "Beck",
    "Lorenz",
    "Baumann",
    "Franke",
    "Albrecht",
    "Schuster",
    "Simon",
    "Ludwig",
    "Böhm",
    "Winter",
    "Kraus",
    "Martin",
    "Schumacher",
    "Krämer",
    "Vogt",
    "Stein",
    "Jäger",
    "Otto",
    "Sommer",
    "Groß",
    "Seidel",
    "Heinrich",
    "Brandt",
    "Haas",
    "Schreiber",
    "Graf",
    "Schulte",
    "Dietrich",
    "Ziegler",
    "Kuhn",
    "Kühn",
    "Pohl",
    "Engel",
    "Horn",
    "Busch",
    "Bergmann",
    "Thomas",
    "Voigt",
    "Sauer",
    "Arnold",
    "Wolff",
    "Pfeiffer",
]
# Names that are rare on purpose: a handful of contacts each.
RARE_LAST_NAMES = ("Zwirbelmeier", "Quastenberg", "Hülsenbeck")
CITIES = [
    "Berlin",
    "Hamburg",
    "München",
    "Köln",
    "Frankfurt",
    "Stuttgart",
    "Düsseldorf",
    "Leipzig",
    "Dortmund",
    "Essen",
    "Bremen",
    "Dresden",
    "Hannover",
    "Nürnberg",
    "Duisburg",
    "Bochum",
    "Wuppertal",
    "Bielefeld",
    "Bonn",
    "Münster",
    "Mannheim",
    "Karlsruhe",
    "Augsburg",
    "Wiesbaden",
    "Freiburg",
    "Kiel",
    "Rostock",
    "Potsdam",
    "Regensburg",
    "Würzburg",
]
AREA_CODES = {
    "Berlin": "30",
    "Hamburg": "40",
    "München": "89",
    "Köln": "221",
    "Frankfurt": "69",
    "Stuttgart": "711",
    "Düsseldorf": "211",
    "Leipzig": "341",
}
POSITIONS = (
    "Geschäftsführer",
    "Geschäftsführerin",
    "Einkauf",
    "Vertrieb",
    "Buchhaltung",
    "Projektleitung",
    "IT-Leitung",
    "Assistenz",
    "Marketing",
    "Personal",
    "Technik",
    "",
)
INDUSTRIES = (
    "Maschinenbau",
    "Logistik",
    "Software",
    "Bau",
    "Handel",
    "Beratung",
    "Elektrotechnik",
    "Medizintechnik",
    "Lebensmittel",
    "Automobil",
)
COMPANY_SUFFIXES = ("GmbH", "AG", "KG", "GmbH & Co. KG", "e.K.", "SE")
TAGS = ("kunde", "lead", "partner", "lieferant", "newsletter", "messe-2026", "vip")
TAG_WEIGHTS = (30, 25, 10, 8, 20, 6, 1)
MAIL_DOMAINS = ("gmail.com", "web.de", "gmx.de", "t-online.de", "outlook.de")

# (label, q): the search terms, from the most to the least common.
TERMS: tuple[tuple[str, str], ...] = (
    ("common last name", "müller"),
    ("rare last name", "zwirbelmeier"),
    ("e-mail fragment", "k.schulz"),
    ("e-mail domain", "@bergmann-logistik"),
    ("phone fragment", "711 123"),
    ("company name", "bergmann logistik"),
    ("tag", "messe-2026"),
    ("no match", "xylophonbauer"),
)

_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", " ": "-", "&": "", ".": ""})


def ascii_of(text: str) -> str:
    return text.lower().translate(_ASCII).replace("--", "-").strip("-")


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Company:
    id: uuid.UUID
    name: str
    domain: str
    industry: str
    city: str


def make_companies(rng: random.Random, count: int) -> list[Company]:
    companies = []
    for _ in range(count):
        founder = rng.choice(LAST_NAMES)
        industry = rng.choice(INDUSTRIES)
        name = f"{founder} {industry} {rng.choice(COMPANY_SUFFIXES)}"
        domain = f"{ascii_of(founder)}-{ascii_of(industry)}.de"
        companies.append(Company(uuid.uuid4(), name, domain, industry, rng.choice(CITIES)))
    return companies


def phone_of(rng: random.Random, city: str) -> str:
    area = AREA_CODES.get(city) or str(rng.randint(200, 9999))
    return f"+49 {area} {rng.randint(100000, 9999999)}"


def tags_of(rng: random.Random) -> list[str]:
    count = rng.choices((0, 1, 2, 3), weights=(30, 40, 20, 10))[0]
    return sorted(set(rng.choices(TAGS, weights=TAG_WEIGHTS, k=count)))


def load_tenant(
    conn: psycopg.Connection[tuple[object, ...]],
    tenant_id: uuid.UUID,
    *,
    contacts: int,
    companies: int,
    seed: int,
) -> None:
    """COPY a tenant's companies and contacts in; tenant_id is given, not taken from RLS."""
    rng = random.Random(seed)  # noqa: S311 - made-up data, not secrets
    made = make_companies(rng, companies)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY companies (id, tenant_id, name, website, industry, city, phone, tags) FROM STDIN"
        ) as copy:
            copy.set_types(["uuid", "uuid", "text", "text", "text", "text", "text", "text[]"])
            for company in made:
                copy.write_row(
                    (
                        company.id,
                        tenant_id,
                        company.name,
                        f"https://www.{company.domain}",
                        company.industry,
                        company.city,
                        phone_of(rng, company.city),
                        tags_of(rng),
                    )
                )
        with cur.copy(
            "COPY contacts (id, tenant_id, first_name, last_name, company_id, emails, phones, "
            "position, postal_code, city, country, tags, consent) FROM STDIN"
        ) as copy:
            copy.set_types(
                [
                    "uuid",
                    "uuid",
                    "text",
                    "text",
                    "uuid",
                    "text[]",
                    "text[]",
                    "text",
                    "text",
                    "text",
                    "text",
                    "text[]",
                    "bool",
                ]
            )
            for n in range(contacts):
                first = rng.choice(FIRST_NAMES)
                last = RARE_LAST_NAMES[n % 3] if n % 200_000 < 3 else rng.choice(LAST_NAMES)
                employer = rng.choice(made) if rng.random() < 0.7 else None
                local = f"{ascii_of(first)[0]}.{ascii_of(last)}"
                emails = [f"{local}@{employer.domain}"] if employer else []
                if rng.random() < 0.4:
                    emails.append(
                        f"{ascii_of(first)}.{ascii_of(last)}{n % 97}@{rng.choice(MAIL_DOMAINS)}"
                    )
                city = employer.city if employer else rng.choice(CITIES)
                phones = [phone_of(rng, city)]
                if rng.random() < 0.3:
                    phones.append(f"+49 1{rng.randint(50, 79)} {rng.randint(1000000, 99999999)}")
                copy.write_row(
                    (
                        uuid.uuid4(),
                        tenant_id,
                        first,
                        last,
                        employer.id if employer else None,
                        emails,
                        phones,
                        rng.choice(POSITIONS),
                        f"{rng.randint(1000, 99999):05d}",
                        city,
                        "Deutschland",
                        tags_of(rng),
                        rng.random() < 0.5,
                    )
                )


def load_data(owner_url: str, tenants: Sequence[tuple[uuid.UUID, int, int]]) -> float:
    """Drop the search indexes, COPY every tenant in, build the indexes again; seconds taken."""
    started = time.monotonic()
    with psycopg.connect(owner_url) as conn:
        # Building an index once is far faster than updating it a million times.
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i "
            "JOIN pg_class c ON c.relname = i.indexname "
            "LEFT JOIN pg_constraint k ON k.conindid = c.oid "
            "WHERE i.schemaname = 'public' "
            "AND i.tablename IN ('companies', 'contacts', 'search_entries') "
            "AND k.oid IS NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(str(name))))
        for seed, (tenant_id, contacts, companies) in enumerate(tenants):
            load_tenant(conn, tenant_id, contacts=contacts, companies=companies, seed=seed)
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(str(definition).encode())
        conn.commit()
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE companies")
        conn.execute("VACUUM ANALYZE contacts")
        # Filled by triggers during the load: without statistics the planner would scan it.
        conn.execute("VACUUM ANALYZE search_entries")
    return time.monotonic() - started


# -- backing server, scratch database, the CRM process -----------------------------------


@contextlib.contextmanager
def postgres_admin_url() -> Iterator[str]:
    if url := os.environ.get("TRESOR_BENCH_DATABASE_URL"):
        yield url
        return
    with backing.postgres_url() as url:
        yield url


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """(owner URL, runtime-role URL) of a migrated database that is dropped afterwards."""
    name = f"tresor_bench_crm_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        owner = backing.with_database(admin_url, name)
        apply_migrations(owner, MIGRATIONS)
        ensure_runtime_role(admin_url)
        yield owner, backing.with_database(admin_url, name, user=APP_ROLE, password=APP_PASSWORD)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def ensure_runtime_role(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone():
            return
        with contextlib.suppress(psycopg.errors.DuplicateObject):
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD {} IN ROLE {}"
                ).format(
                    sql.Identifier(APP_ROLE),
                    sql.Literal(APP_PASSWORD),
                    sql.Identifier(RUNTIME_GROUP),
                )
            )


@contextlib.contextmanager
def crm_service(runtime_url: str, public_key: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m tresor_crm` in its own process, stopped (SIGTERM, then SIGKILL) on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_CRM_")}
    env.update(
        TRESOR_CRM_ENVIRONMENT="development",
        TRESOR_CRM_DATABASE_URL=runtime_url,
        TRESOR_CRM_MIGRATE_ON_START="false",
        TRESOR_CRM_IDENTITY_PUBLIC_KEYS=public_key,
        TRESOR_CRM_LISTEN=f"127.0.0.1:{port}",
        TRESOR_CRM_LOG_LEVEL="WARNING",
    )
    with child_process([sys.executable, "-m", "tresor_crm"], env) as process:
        yield process


async def wait_until_serving(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    async with httpx.AsyncClient(base_url=base_url) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the CRM exited with status {process.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/_crm/healthz", timeout=1.0)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the CRM did not answer on {base_url}")
            await asyncio.sleep(0.1)


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Signer:
    key: object
    tenant_id: uuid.UUID
    link: str

    def header(self) -> str:
        now = time.time()
        identity = Identity(
            tenant_id=str(self.tenant_id),
            tenant_slug="bench",
            user_id=str(uuid.UUID(int=1)),
            username="bench",
            roles=("user",),
            session_id="s" * 32,
            link_token=self.link,
            csrf_token="csrf-bench",  # noqa: S106 - not a secret
            session_expires_at=now + 1800,
            issued_at=now,
            expires_at=now + 60,
        )
        return sign_identity(self.key, identity)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Timing:
    label: str
    term: str
    endpoint: str
    hits: int
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


async def time_term(
    client: httpx.AsyncClient,
    signer: Signer,
    label: str,
    term: str,
    endpoint: str,
    *,
    samples: int,
    warmup: int,
    budget_seconds: float,
) -> Timing:
    path = f"/s/{signer.link}/api/v1/{endpoint}"
    params = {"q": term}
    latencies: list[int] = []
    hits = 0
    deadline = time.monotonic() + budget_seconds
    for n in range(warmup + samples):
        headers = {IDENTITY_HEADER: signer.header()}
        started = time.monotonic_ns()
        response = await client.get(path, params=params, headers=headers)
        elapsed = time.monotonic_ns() - started
        if response.status_code != 200:
            raise RuntimeError(f"{endpoint}?q={term}: {response.status_code} {response.text[:200]}")
        body = response.json()
        hits = (
            len(body["items"])
            if "items" in body
            else len(body["contacts"]) + len(body["companies"])
        )
        if n >= warmup:
            latencies.append(elapsed)
            if time.monotonic() > deadline and len(latencies) >= 10:
                break
    latencies.sort()
    return Timing(
        label=label,
        term=term,
        endpoint=endpoint,
        hits=hits,
        samples=len(latencies),
        p50_ms=percentile_ms(latencies, 50),
        p99_ms=percentile_ms(latencies, 99),
        max_ms=latencies[-1] / 1e6,
    )


async def measure(
    base_url: str, signer: Signer, *, samples: int, warmup: int, budget_seconds: float
) -> list[Timing]:
    timings = []
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        for endpoint in ("contacts", "search"):
            for label, term in TERMS:
                timing = await time_term(
                    client,
                    signer,
                    label,
                    term,
                    endpoint,
                    samples=samples,
                    warmup=warmup,
                    budget_seconds=budget_seconds,
                )
                print(
                    f"  {endpoint:8} {label:18} q={term!r:22} {timing.hits:3} hits  "
                    f"p50 {timing.p50_ms:8.1f} ms  p99 {timing.p99_ms:8.1f} ms  "
                    f"({timing.samples} requests)",
                    flush=True,
                )
                timings.append(timing)
    return timings


class _Explaining:
    """Stands in for a tenant connection: runs every statement under EXPLAIN ANALYZE."""

    def __init__(self, conn: psycopg.AsyncConnection[dict[str, object]]) -> None:
        self._conn = conn

    async def execute(
        self, query: sql.Composed, params: Mapping[str, Any] | None = None
    ) -> psycopg.AsyncCursor[dict[str, object]]:
        explained = sql.Composed([sql.SQL("EXPLAIN (ANALYZE, BUFFERS) "), query])
        return await self._conn.execute(explained, params)


async def explain(runtime_url: str, tenant_id: uuid.UUID) -> None:
    """EXPLAIN ANALYZE of exactly what the API's contact search runs, on a tenant connection."""
    from psycopg.rows import dict_row

    from tresor_crm.records import ListQuery
    from tresor_crm.storage import records as store

    async with await psycopg.AsyncConnection.connect(runtime_url, row_factory=dict_row) as conn:
        await conn.execute("SELECT set_config('tresor.tenant_id', %s, false)", (str(tenant_id),))
        for label, term in TERMS:
            plan = await store.list_contacts(
                _Explaining(conn),  # type: ignore[arg-type]
                ListQuery(search=term, limit=26),
            )
            print(f"\n-- {label}: q={term!r}")
            for row in plan:
                print(row["QUERY PLAN"])


# -- report ---------------------------------------------------------------------------------


def postgres_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


def render_section(
    timings: list[Timing], *, contacts: int, other_contacts: int, load_seconds: float, pg: str
) -> str:
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{len(os.sched_getaffinity(0))} CPUs ({cpu_model()}), {platform.system()} "
        f"{platform.release()}, CPython {platform.python_version()}, {pg}"
    )
    rows = [
        "| Endpoint | Term | q | Hits | p50 ms | p99 ms | max ms | Requests | p99 < 100 ms |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in timings:
        rows.append(
            f"| `{t.endpoint}` | {t.label} | `{t.term}` | {t.hits} | {t.p50_ms:.1f} | "
            f"{t.p99_ms:.1f} | {t.max_ms:.1f} | {t.samples} | "
            f"{'yes' if t.p99_ms < TARGET_P99_MS else 'no'} |"
        )
    return "\n".join(
        [
            SECTION,
            "",
            "`make bench` (`python -m benchmarks.crm_search`) bulk-loads a scratch database "
            f"with COPY: one tenant with {contacts:,} contacts and {contacts // 50:,} companies "
            "(German-looking names, e-mails, phones, tags), a second tenant with "
            f"{other_contacts:,} contacts; loading and building the indexes took "
            f"{load_seconds:.0f} s. It then starts `python -m tresor_crm` as its own process, "
            "connected as the runtime role that row-level security binds, and asks the JSON "
            "API, one request at a time over loopback HTTP with an identity signed like the "
            "gate's: `contacts?q=` (the list's search, first page of 25) and `search?q=` (the "
            "search box: 20 contacts and 20 companies). Latency is taken by the client, from "
            "sending the request to reading the whole answer. The CRM, PostgreSQL and the "
            "client share the machine; the edge is not in the path.",
            "",
            *rows,
            "",
            f"Machine: {machine}. Date: {date}.",
            "",
            f"Target: p99 under {TARGET_P99_MS:g} ms for every term.",
            "",
        ]
    )


# -- the run --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.crm_search", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--record", type=Path, metavar="FILE", help="rewrite our section of FILE")
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts of the tenant")
    parser.add_argument(
        "--other-contacts", type=int, default=5_000, help="contacts of the second tenant"
    )
    parser.add_argument("--samples", type=int, default=100, help="measured requests per term")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured requests per term")
    parser.add_argument(
        "--budget", type=float, default=20.0, help="seconds per term before fewer samples suffice"
    )
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE per term")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    key = load_private_key(generate_private_key_pem())
    tenant, other = uuid.uuid4(), uuid.uuid4()
    with contextlib.ExitStack() as stack:
        admin_url = stack.enter_context(postgres_admin_url())
        owner, runtime = stack.enter_context(scratch_database(admin_url))
        print(f"loading {args.contacts:,} + {args.other_contacts:,} contacts ...", flush=True)
        load_seconds = load_data(
            owner,
            [
                (tenant, args.contacts, max(1, args.contacts // 50)),
                (other, args.other_contacts, max(1, args.other_contacts // 50)),
            ],
        )
        print(f"loaded and indexed in {load_seconds:.0f} s", flush=True)
        if args.explain:
            asyncio.run(explain(runtime, tenant))
        port = backing.free_port()
        process = stack.enter_context(crm_service(runtime, public_key_pem(key), port))
        base_url = f"http://127.0.0.1:{port}"
        asyncio.run(wait_until_serving(base_url, process))
        signer = Signer(key, tenant, secrets.token_urlsafe(24))
        timings = asyncio.run(
            measure(
                base_url,
                signer,
                samples=args.samples,
                warmup=args.warmup,
                budget_seconds=args.budget,
            )
        )
        pg = postgres_version(owner)
    section = render_section(
        timings,
        contacts=args.contacts,
        other_contacts=args.other_contacts,
        load_seconds=load_seconds,
        pg=pg,
    )
    print(section)
    if args.record:
        record(args.record, SECTION, section)
        print(f"recorded in {args.record}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
