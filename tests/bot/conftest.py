"""The project's bot, unmodified, running against our Discord emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.bot.harness import World, running_bot


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    # The tests send many requests as one member, so no per-member rate here.
    async with running_bot(
        tmp_path_factory.mktemp("nst-data"),
        nst_user_limit=2,
        nst_queue_limit=6,
        nst_member_rate=0,
    ) as world:
        yield world


@pytest.fixture(autouse=True)
def _faults_cleared(request):
    """Faults a test injects into the shared emulator end with the test, pass or fail."""
    yield
    if "world" in request.fixturenames:
        request.getfixturevalue("world").emu.clear_faults()
