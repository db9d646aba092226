"""Session-wide backing servers; each test builds its own databases and key prefixes."""

from collections.abc import Iterator

import pytest

from tests import backing

# Shared by the auth tests and the end-to-end tests through the edge.
pytest_plugins = ["tests.auth.fixtures", "tests.crm.fixtures"]


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with backing.postgres_url() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with backing.redis_url() as url:
        yield url
