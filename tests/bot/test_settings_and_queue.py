import pytest

from bot.cogs.stylize.errors import MemberQueueFull, QueueFull
from bot.cogs.stylize.fair_queue import FairQueue
from bot.settings import Settings, SettingsError


def test_settings_read_every_variable_and_hide_the_token():
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": "secret-token",
            "DISCORD_API_BASE": "http://127.0.0.1:9000/api/v10/",
            "NST_WORKERS": "3",
            "NST_GPUS": "0, 1",
            "NST_MAX_SIZE": "768",
            "NST_USER_LIMIT": "4",
            "NST_DEV_GUILD": "123456789012345678",
        }
    )
    assert settings.discord_api_base == "http://127.0.0.1:9000/api/v10"
    assert settings.nst_workers == 3 and settings.nst_gpus == ("0", "1")
    assert settings.nst_max_size == 768 and settings.nst_user_limit == 4
    assert settings.nst_dev_guild == 123456789012345678
    assert settings.nst_queue_limit == 50 and settings.nst_weights == "imagenet"
    assert "secret-token" not in repr(settings)


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "DISCORD_TOKEN is not set"),
        ({"DISCORD_TOKEN": "t", "NST_WORKERS": "lots"}, "NST_WORKERS must be a whole number"),
        (
            {"DISCORD_TOKEN": "t", "NST_MAX_SIZE": "10"},
            "NST_MAX_SIZE must be a whole number from 32",
        ),
        ({"DISCORD_TOKEN": "t", "DISCORD_API_BASE": "discord.com"}, "must be an http(s) URL"),
        ({"DISCORD_TOKEN": "t", "NST_DEV_GUILD": "my-server"}, "a Discord id (digits)"),
    ],
)
def test_bad_settings_name_the_variable_and_what_is_allowed(env, message):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_nst_bot_without_a_token_stops_with_one_line(monkeypatch, capsys):
    from bot.__main__ import main

    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    assert main() == 2
    err = capsys.readouterr().err
    assert err.startswith("error: DISCORD_TOKEN is not set") and err.count("\n") == 1


def test_the_queue_serves_members_round_robin():
    queue: FairQueue[str] = FairQueue(total_limit=10, owner_limit=3)
    for item in ("a1", "a2", "a3"):
        queue.push("alice", item)
    queue.push("bob", "b1")
    queue.push("carol", "c1")
    assert queue.position("b1") == 2 and queue.position("c1") == 3 and queue.position("a2") == 4
    order = [queue.pop()[1] for _ in range(5)]
    assert order == ["a1", "b1", "c1", "a2", "a3"]


def test_caps_count_queued_running_and_reserved():
    queue: FairQueue[str] = FairQueue(total_limit=3, owner_limit=2)
    queue.push("alice", "a1")
    queue.pop()
    queue.started("alice")
    queue.reserve("alice")
    with pytest.raises(MemberQueueFull, match="the limit is 2"):
        queue.reserve("alice")
    queue.push("bob", "b1")
    with pytest.raises(QueueFull, match="queue is full"):
        queue.push("carol", "c1")
    queue.finished("alice")
    queue.push("alice", "a2", reserved=True)
    assert queue.active("alice") == 1 and len(queue) == 2
    assert queue.remove("a2") and queue.position("a2") is None


async def test_a_rejected_token_stops_nst_bot_with_one_line(tmp_path):
    import asyncio
    import os
    import sys

    from tests.bot.emulator import DiscordEmulator

    async with DiscordEmulator(token="the-right-token") as emu:
        env = {
            **os.environ,
            "DISCORD_TOKEN": "a-wrong-token",
            "DISCORD_API_BASE": emu.api_base,
            "NST_WEIGHTS": "random",
            "NST_HTTP_PORT": "0",
            "NST_DATA_DIR": str(tmp_path),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    text = err.decode()
    assert "error: Discord rejected DISCORD_TOKEN" in text
    assert "Traceback" not in text and "a-wrong-token" not in text
