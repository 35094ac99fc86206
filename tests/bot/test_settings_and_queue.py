from dataclasses import fields
from pathlib import Path

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
            "NST_DOWNLOAD_TIMEOUT": "5",
            "NST_PRECISION": "BFloat16",
        }
    )
    assert settings.discord_api_base == "http://127.0.0.1:9000/api/v10"
    assert settings.nst_workers == 3 and settings.nst_gpus == ("0", "1")
    assert settings.nst_max_size == 768 and settings.nst_user_limit == 4
    assert settings.nst_dev_guild == 123456789012345678 and settings.nst_download_timeout == 5
    assert settings.nst_queue_limit == 50 and settings.nst_weights == "imagenet"
    assert settings.nst_precision == "bfloat16"
    defaults = Settings.from_env({"DISCORD_TOKEN": "t"})
    assert defaults.nst_precision == "auto" and defaults.nst_backend == "local"
    assert defaults.nst_workers is None  # one CPU worker, or one per GPU / per Ray resources
    assert defaults.nst_ray_address is None and defaults.nst_ray_cpus_per_worker == 2
    assert "secret-token" not in repr(settings)


def test_every_setting_is_listed_for_operators_with_its_default():
    # An operator finds every variable in .env.example and the settings page of the manual.
    root = Path(__file__).resolve().parents[2]
    example = (root / ".env.example").read_text()
    manual = (root / "docs" / "settings.md").read_text()
    names = [f.name.upper() for f in fields(Settings)]
    assert [n for n in names if n not in example] == []
    assert [n for n in names if f"`{n}`" not in manual] == []


@pytest.mark.parametrize(
    "address", ["auto", "10.0.0.5:6379", "ray-head:6379", "[::1]:6379", "ray://ray-head:10001"]
)
def test_the_ray_settings_are_read(address):
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": "t",
            "NST_BACKEND": "Ray",
            "NST_RAY_ADDRESS": address,
            "NST_RAY_CPUS_PER_WORKER": "4",
            "NST_WORKERS": "8",
        }
    )
    assert settings.nst_backend == "ray" and settings.nst_ray_address == address
    assert settings.nst_ray_cpus_per_worker == 4 and settings.nst_workers == 8


def test_the_elastic_ray_settings_are_read_with_their_defaults():
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": "t",
            "NST_BACKEND": "ray",
            "NST_RAY_MIN_WORKERS": "0",
            "NST_RAY_MAX_WORKERS": "4",
            "NST_RAY_SCALE_UP_S": "5",
            "NST_RAY_IDLE_S": "0",
            "NST_RAY_WORKER_GPUS": "1",
        }
    )
    assert (settings.nst_ray_min_workers, settings.nst_ray_max_workers) == (0, 4)
    assert (settings.nst_ray_scale_up_s, settings.nst_ray_idle_s) == (5.0, 0.0)
    assert settings.nst_ray_worker_gpus == 1
    defaults = Settings.from_env({"DISCORD_TOKEN": "t", "NST_BACKEND": "ray"})
    assert (defaults.nst_ray_min_workers, defaults.nst_ray_max_workers) == (1, None)
    assert (defaults.nst_ray_scale_up_s, defaults.nst_ray_idle_s) == (2.0, 300.0)
    assert defaults.nst_ray_worker_gpus is None


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
        (
            {"DISCORD_TOKEN": "t", "NST_PRECISION": "half"},
            "NST_PRECISION must be auto, float32, bfloat16 or float16, not 'half'",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_BACKEND": "k8s"},
            "NST_BACKEND must be local or ray, not 'k8s'",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_RAY_ADDRESS": "ray-head"},
            "NST_RAY_ADDRESS must be HOST:PORT (the head's port, 6379 by default), "
            "ray://HOST:PORT (Ray Client, port 10001 by default) or auto, not 'ray-head'",
        ),
        ({"DISCORD_TOKEN": "t", "NST_RAY_ADDRESS": "ray://ray-head"}, "NST_RAY_ADDRESS must"),
        ({"DISCORD_TOKEN": "t", "NST_RAY_ADDRESS": "http://ray-head:8265"}, "NST_RAY_ADDRESS must"),
        ({"DISCORD_TOKEN": "t", "NST_RAY_ADDRESS": "ray-head:70000"}, "NST_RAY_ADDRESS must"),
        (
            {"DISCORD_TOKEN": "t", "NST_RAY_CPUS_PER_WORKER": "0"},
            "NST_RAY_CPUS_PER_WORKER must be a whole number from 1 to 1024, not '0'",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_RAY_MIN_WORKERS": "0"},
            "NST_RAY_MIN_WORKERS is for NST_BACKEND=ray: a local pool keeps a fixed number of "
            "workers (NST_WORKERS); remove it or set NST_BACKEND=ray",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_BACKEND": "local", "NST_RAY_IDLE_S": "60"},
            "NST_RAY_IDLE_S is for NST_BACKEND=ray",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_BACKEND": "ray", "NST_RAY_MIN_WORKERS": "-1"},
            "NST_RAY_MIN_WORKERS must be a whole number from 0 to 64, not '-1'",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_BACKEND": "ray", "NST_RAY_MAX_WORKERS": "0"},
            "NST_RAY_MAX_WORKERS must be a whole number from 1 to 64, not '0'",
        ),
        (
            {"DISCORD_TOKEN": "t", "NST_BACKEND": "ray", "NST_RAY_SCALE_UP_S": "soon"},
            "NST_RAY_SCALE_UP_S must be a whole number from 0 to 3600, not 'soon'",
        ),
        (
            {
                "DISCORD_TOKEN": "t",
                "NST_BACKEND": "ray",
                "NST_RAY_MIN_WORKERS": "3",
                "NST_RAY_MAX_WORKERS": "2",
            },
            "NST_RAY_MIN_WORKERS (3) must not be above NST_RAY_MAX_WORKERS (2)",
        ),
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


def test_nst_bot_on_ray_without_ray_installed_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    import sys

    from bot.__main__ import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    monkeypatch.setenv("DISCORD_TOKEN", "t")
    monkeypatch.setenv("NST_BACKEND", "ray")
    monkeypatch.setenv("NST_DATA_DIR", str(tmp_path))
    assert main() == 2
    err = capsys.readouterr().err
    assert err == (
        "error: NST_BACKEND=ray, but Ray is not installed; install it with pip install '.[ray]'\n"
    )


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


def test_a_member_or_server_past_the_rate_is_told_when_to_try_again(monkeypatch):
    import time
    from types import SimpleNamespace

    from bot.cogs.stylize.errors import TooFast
    from bot.cogs.stylize.intake import Rates

    now = [1000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])  # discord.py's cooldowns read this clock

    def request(user: int, guild: int = 7) -> SimpleNamespace:
        return SimpleNamespace(user=SimpleNamespace(id=user), guild_id=guild)

    rates = Rates(per_member=2, per_guild=3)
    alice, bob = request(1), request(2)
    for _ in range(5):
        rates.check(alice)  # a refused or abandoned request costs nothing
    rates.spend(alice)
    now[0] += 10
    rates.spend(alice)
    rates.check(bob)
    with pytest.raises(TooFast, match="you may start 2 pictures per minute; try again in 50 s"):
        rates.check(alice)
    rates.spend(bob)  # the server's third this minute
    with pytest.raises(TooFast, match="this server may start 3 pictures per minute"):
        rates.check(request(3))
    rates.check(request(3, guild=8))  # another server has its own budget
    now[0] += 50.5  # the first start has left the window
    rates.check(alice)
    Rates(per_member=0, per_guild=0).check(alice)  # 0 = unlimited


async def test_the_journal_keeps_pending_jobs_and_prunes_old_finished_ones(tmp_path):
    import sqlite3
    import time

    from bot.store import JobRecord, JobStore

    store = JobStore(tmp_path)

    def record(job_id: str) -> JobRecord:
        return JobRecord(job_id, "queued", 1, 2, 3, 4, "token", time.time(), {"seed": 1}, 0, 0.0)

    for job_id in ("aaaaaaaa0001", "aaaaaaaa0002", "aaaaaaaa0003"):
        await store.add(record(job_id), b"content", b"style")
    await store.set_state("aaaaaaaa0001", "running", attempt=True)
    await store.save_result("aaaaaaaa0002", b"png")
    await store.set_state("aaaaaaaa0003", "delivered")
    pending = await store.pending()
    assert [r.id for r in pending] == ["aaaaaaaa0001", "aaaaaaaa0002"]
    assert pending[0].attempts == 1 and pending[1].state == "done"
    await store.requeue("aaaaaaaa0001")
    assert (await store.load("aaaaaaaa0001")).record.state == "queued"

    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("UPDATE jobs SET updated = updated - 7200")
    assert await store.prune(older_than=3600) == 1  # only the delivered one goes
    assert await store.load("aaaaaaaa0003") is None
    assert not (tmp_path / "jobs" / "aaaaaaaa0003").exists()
    assert (tmp_path / "jobs" / "aaaaaaaa0002" / "result.png").read_bytes() == b"png"
    store.close()
