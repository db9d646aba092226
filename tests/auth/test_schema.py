"""The auth schema as the runtime role sees it."""

from collections.abc import Callable

import psycopg
import pytest

from tresor_auth.config import AuthSettings
from tresor_auth.server import MIGRATIONS
from tresor_common.migrations import apply_migrations


def test_runtime_role_confirms_an_up_to_date_schema(
    make_settings: Callable[..., AuthSettings],
) -> None:
    """Replicas that skip migrating may still check; they need no CREATE rights for it."""
    settings = make_settings()
    assert apply_migrations(settings.database_url, MIGRATIONS) == []


def test_runtime_role_cannot_change_the_schema(make_settings: Callable[..., AuthSettings]) -> None:
    settings = make_settings()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE intruder (a int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DROP TABLE users")
