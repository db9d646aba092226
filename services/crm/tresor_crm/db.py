"""The CRM database: a connection pool and transactions bound to one tenant.

Every request works inside `tenant_transaction`, which sets `tresor.tenant_id`
for that transaction only; row-level security does the rest, so a query that
forgets its tenant filter still sees and changes only its tenant's rows.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from tresor_crm.errors import InvalidInput, Unavailable

Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]


class Database:
    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Conn]) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, size: int, timeout_seconds: float) -> "Database":
        pool: psycopg_pool.AsyncConnectionPool[Conn] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=size,
            timeout=timeout_seconds,
            kwargs={"row_factory": dict_row, "connect_timeout": max(1, int(timeout_seconds))},
            connection_class=psycopg.AsyncConnection[Row],
            open=False,
        )
        await pool.open(wait=False)
        return cls(pool)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: uuid.UUID) -> AsyncIterator[Conn]:
        """One transaction that sees only `tenant_id`'s rows."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT set_config('tresor.tenant_id', %s, true)", (str(tenant_id),)
                )
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            raise Unavailable("the CRM database is unavailable") from exc
        except (psycopg.DataError, UnicodeEncodeError) as exc:
            # A value the database cannot hold (a NUL byte, a date out of range, a lone
            # surrogate) that no earlier check caught: the request's fault, not ours, and
            # the transaction is rolled back whole.
            raise InvalidInput("a value in the request cannot be stored or searched") from exc
