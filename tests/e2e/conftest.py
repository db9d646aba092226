"""Fixtures for browser tests through the whole stack."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import CrmEdgeStack, running_crm_stack


@pytest.fixture
async def crm_edge(
    start_auth: Callable[..., Any], crm_database: tuple[str, str], tmp_path: Path
) -> AsyncIterator[CrmEdgeStack]:
    auth = await start_auth()
    _owner, runtime = crm_database
    async with running_crm_stack(auth, tmp_path, crm_database_url=runtime) as stack:
        yield stack
