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


@pytest.fixture
async def rules(world: World):
    """Server settings for one test (the module's `world`), back to none after it: no size cap,
    quality, daily limit, role, channel allow-list or saved style left behind."""
    store, guild = world.bot.store, world.emu.guild.id

    async def set_rules(**changes):
        return await store.update_guild_settings(guild, **changes)

    yield set_rules
    await store.update_guild_settings(
        guild, max_size=None, default_quality=None, daily_limit=None, role_id=None
    )
    for channel in (await store.guild_settings(guild)).channels:
        await store.remove_channel(guild, channel)
    for style in await store.styles(guild):
        await store.remove_style(guild, style.name)
