"""The Edit button (`bot.cogs.stylize.buttons`), through the emulator: a form with the picture's
options filled in; its answers paint the same inputs again, going on from the picture when only
the strength changed, else afresh; a bad answer is one line and no job."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from nst_engine.continuation import STRONGER, parameters_hash
from nst_engine.options import QUALITY_PRESETS
from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import RESULT_BUTTONS, TOKEN, World, button, finished, ready_bot, running_bot
from tests.bot.test_continuing import job_of, made, stylize
from tests.bot.test_hostile_admin import failures, journaled, one_line
from tests.bot.test_hostile_stylize import size_of
from tests.bot.test_recovery import journal_states
from tests.bot.test_upscale import labels

pytestmark = pytest.mark.asyncio(loop_scope="module")

# The harness's 80×60 photo, painted at 64 px (64×48) and edited up to 80 (its own size).
SIZE = 80


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    async with running_bot(
        tmp_path_factory.mktemp("nst-data"), nst_max_size=SIZE, nst_user_limit=2, nst_member_rate=0
    ) as world:
        yield world


async def open_form(world: World, result, user=None):
    """Edit pressed on ``result`` (by its requester unless ``user``): the interaction, once the
    bot has answered it."""
    press = await world.emu.press_button(result, button(result, "Edit")["custom_id"], user=user)
    await press.wait_for(lambda rec: rec.responded, timeout=15)
    return press


async def test_edit_opens_a_form_with_the_pictures_options_filled_in(world: World) -> None:
    result = await finished(
        await world.stylize(strength=6.5, quality="fast", size=64, preserve_colors=True, seed=7)
    )
    assert [b["label"] for b in result.buttons()] == RESULT_BUTTONS
    form = await open_form(world, result)
    assert form.modal is not None and form.modal["title"] == "Edit this picture"
    assert form.fields() == {
        "strength": "6.5",
        "quality": "fast",
        "size": "64",
        "preserve_colors": "yes",
        "seed": "7",
    }


async def test_a_new_strength_goes_on_from_the_picture(world: World) -> None:
    emu, logged = world.emu, len(failures(world))
    first = await finished(await world.stylize(strength=6, size=64))
    jobs = journaled(world)
    submitted = await emu.submit_modal(await open_form(world, first), {"strength": "9"})
    again = await finished(submitted)
    assert journaled(world) - jobs == 1
    parameters = made(again)
    assert parameters["strength"] == 9.0 and size_of(again) == (64, 48)
    assert parameters["parent"] == {
        "job": job_of(first),
        "parameters": parameters_hash(made(first)),
    }
    # Three strength steps: a Stronger's steps three times, under the operator's cap.
    schedule = STRONGER["balanced"]
    assert parameters["steps"] == min(3 * schedule.steps, world.settings.nst_max_steps)
    assert failures(world)[logged:] == []


async def test_a_new_size_is_a_fresh_run_at_that_size(world: World) -> None:
    emu = world.emu
    first = await finished(await world.stylize(size=64, seed=3))
    submitted = await emu.submit_modal(
        await open_form(world, first), {"size": str(SIZE), "preserve_colors": "yes"}
    )
    again = await finished(submitted)
    assert size_of(again) == (80, 60)
    parameters = made(again)
    assert "parent" not in parameters and parameters["preserve_colors"] is True
    assert parameters["seed"] == 3
    assert parameters["steps"] == min(
        QUALITY_PRESETS["balanced"].steps, world.settings.nst_max_steps
    )


BAD = "The {} option can't be {}; it must be {}."


@pytest.mark.parametrize(
    "field,typed,line",
    [
        ("strength", "lots", BAD.format("strength", "'lots'", "a number from 0 to 10")),
        ("strength", "11", BAD.format("strength", "11.0", "a number from 0 to 10")),
        ("quality", "ultra", BAD.format("quality", "'ultra'", "fast, balanced or best")),
        ("size", "10", BAD.format("size", "10", "64 to 2048 pixels")),
        ("preserve_colors", "maybe", BAD.format("preserve colours", "'maybe'", "yes or no")),
        ("seed", "-1", BAD.format("seed", "-1", "0 to 2147483647")),
        (
            "strength",
            "6",
            "Nothing was changed, so that would be the same picture; change a value to paint "
            "another.",
        ),
    ],
)
async def test_a_bad_answer_is_one_line_only_the_member_sees_and_no_job(
    world: World, field, typed, line
) -> None:
    emu, logged = world.emu, len(failures(world))
    first = await finished(await world.stylize(strength=6, size=64, quality="fast"))
    jobs = journaled(world)
    submitted = await emu.submit_modal(await open_form(world, first), {field: typed})
    assert await one_line(submitted) == line
    assert submitted.messages[0].ephemeral
    assert journaled(world) == jobs
    assert failures(world)[logged:] == []


async def test_only_the_requester_may_edit(world: World) -> None:
    first = await finished(await world.stylize(size=64, quality="fast"))
    stranger = world.emu.make_member("editor")
    refused = await open_form(world, first, user=stranger)
    assert refused.modal is None
    assert await one_line(refused) == "Only the member who asked for this picture can edit it."
    assert refused.messages[0].ephemeral
    # A form sent back under another member's name (forged: Discord shows it to the presser
    # only) is refused the same way, and paints nothing.
    jobs = journaled(world)

    def as_stranger(payload: dict) -> None:
        payload["member"] = stranger.payload(with_permissions=True)

    forged = await world.emu.submit_modal(
        await open_form(world, first), {"strength": "9"}, craft=as_stranger
    )
    assert await one_line(forged) == "Only the member who asked for this picture can edit it."
    assert journaled(world) == jobs


async def test_a_result_delivered_after_a_restart_has_the_same_buttons_and_edit_works(
    tmp_path,
) -> None:
    """Two pictures painted but not yet posted when the bot is killed: a first picture (64×48)
    and its Upscale (128×96, the cap). After the restart each is posted with the buttons a fresh
    result has, Upscale only below the cap; Edit opens its form from the journal and paints."""
    data = tmp_path / "data"
    env = {"NST_MAX_STEPS": "20", "NST_MAX_UPSCALE_SIZE": "128", "NST_MEMBER_RATE": "0"}
    async with DiscordEmulator(token=TOKEN) as emu:
        member = emu.member
        async with ready_bot(emu, data, "first.log", **env) as first:
            small = await finished(await stylize(emu, member), 120)
            # Neither picture gets posted: both uploads are held until the emulator closes.
            held = emu.hang_next("POST /webhooks/*", times=2)
            fresh = await stylize(emu, member, strength=7)
            upscale = await emu.press_button(small, button(small, "Upscale")["custom_id"])
            # Both uploads held, not only both journaled: a picture journaled as done but not
            # yet on its way would take the second hold after the restart.
            await emu.wait_until(lambda: held.hits == 2, timeout=120, what="both uploads held")
            assert journal_states(data).count("done") == 2
            os.killpg(first.pid, signal.SIGKILL)
            await first.wait()
        assert not any(m.files for press in (fresh, upscale) for m in press.followups)

        async with ready_bot(emu, data, "second.log", **env):
            painted, bigger = await finished(fresh, 120), await finished(upscale, 120)
            assert labels(painted) == RESULT_BUTTONS
            assert size_of(bigger) == (128, 96)
            assert labels(bigger) == ["Stronger", "Weaker", "Variation", "Edit", "Delete"]

            press = await emu.press_button(painted, button(painted, "Edit")["custom_id"])
            await press.wait_for(lambda rec: rec.responded, timeout=30)
            assert press.fields()["strength"] == "7"
            again = await finished(await emu.submit_modal(press, {"strength": "3"}), 120)
            assert made(again)["strength"] == 3.0
            assert made(again)["parent"]["job"] == job_of(painted)
