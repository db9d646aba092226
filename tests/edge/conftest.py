"""Fixtures for end-to-end tests through the real Traefik."""

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.auth.harness import AuthClient
from tests.edge.harness import EdgeStack, running_stack


@pytest.fixture
async def start_edge(
    start_auth: Callable[..., Any], tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    """Start auth (with these auth settings) and the edge in front of it."""
    numbers = itertools.count()
    async with AsyncExitStack() as stacks:

        async def start(auth_settings: dict[str, Any] | None = None, **edge: Any) -> EdgeStack:
            auth: AuthClient = await start_auth(**(auth_settings or {}))
            folder = tmp_path / f"edge{next(numbers)}"
            folder.mkdir()
            return await stacks.enter_async_context(running_stack(auth, folder, **edge))

        yield start


@pytest.fixture
async def edge(start_edge: Callable[..., Any]) -> EdgeStack:
    stack: EdgeStack = await start_edge()
    return stack
