"""The Ray backend on a real one-host Ray that listens on loopback only (`LoopbackHead`), with
one CPU actor, seeded random weights, tiny images and few steps.

Every test runs twice: with the backend joining the cluster as a driver (``HOST:PORT``), and
through the head's Ray Client server (``ray://HOST:PORT``). Starting the head and loading an
actor's model cost seconds, so the tests of one kind share one head and one backend on a
module-scoped event loop; the last closes them and checks that nothing of the cluster is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

import ray  # noqa: E402

from nst_engine import StyleOptions  # noqa: E402
from nst_engine.backend import Backend, Job, JobCancelled, JobTimeout, WorkerDied  # noqa: E402
from nst_engine.ray import RayBackend, RayUnavailable  # noqa: E402
from tests.support import gradient_image, listening_sockets, stripes_image  # noqa: E402

on_ray_loop = pytest.mark.asyncio(loop_scope="module")
STYLE = stripes_image(32, 32)
# Long enough to still be running when a test cancels, kills or times it out.
LONG = StyleOptions(max_size=32, steps=5000)


def tiny_job(steps: int = 4, **options: object) -> Job:
    return Job(
        gradient_image(64, 48, seed=3), (STYLE,), StyleOptions(max_size=64, steps=steps, **options)
    )


def long_job(**fields: object) -> Job:
    return Job(gradient_image(32, 32), (STYLE,), LONG, **fields)


async def first_event(handle):
    return await anext(aiter(handle.events()))


@pytest.fixture(scope="module", params=["driver", "client"])
def head(request):
    with LoopbackHead(cpus=2, client=request.param == "client") as head:
        yield head
    assert head.pids() == []


def address_of(head: LoopbackHead) -> str:
    return head.client_address if head.client else head.address


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(head):
    backend = RayBackend(
        "random",
        1,
        address=address_of(head),
        cpus_per_worker=1,
        preview_interval=0.2,
        progress_interval=0,
    )
    async with backend:
        yield backend


@on_ray_loop
async def test_the_cluster_and_its_actors_listen_on_loopback_only(head, backend):
    assert isinstance(backend, Backend)
    nodes = ray.nodes()
    assert [node["NodeManagerAddress"] for node in nodes] == ["127.0.0.1"]
    assert backend.worker_nodes() == ["127.0.0.1"] and backend.size == 1 and backend.warm
    sockets = listening_sockets(head.pids() + [os.getpid()])
    assert sockets, "found none of the cluster's sockets"
    assert {address for _, address in sockets} <= {"127.0.0.1", "::1"}, sockets


@on_ray_loop
async def test_progress_streams_with_previews_then_one_result(backend):
    handle = backend.submit(tiny_job(steps=8, preview_size=24))
    events = [progress async for progress in handle.events()]
    result = await handle.result()

    assert [p.step for p in events] == list(range(1, 9)) and result.steps == 8
    assert all(p.total == 8 and p.snapshot is None for p in events)
    previews = [p.preview for p in events if p.preview is not None]
    assert previews and all(p.dtype == np.uint8 and max(p.shape[:2]) == 24 for p in previews)
    assert result.image.shape == (48, 64, 3) and result.image.dtype == np.uint8
    assert handle.state == "done" and not result.cancelled


@on_ray_loop
async def test_cancel_stops_a_running_job_within_a_step_and_drops_a_queued_one(backend):
    running = backend.submit(long_job())
    waiting = backend.submit(tiny_job())
    assert waiting.state == "queued" and backend.queued == 1
    assert waiting.cancel() and not waiting.cancel()
    with pytest.raises(JobCancelled, match="cancelled before it started"):
        await waiting.result()

    seen = (await first_event(running)).step
    assert running.worker_pid == backend.worker_pids()[0] != os.getpid()
    asked = time.monotonic()
    assert running.cancel()
    result = await running.result()
    assert time.monotonic() - asked < 5
    assert result.cancelled and running.state == "cancelled"
    assert seen <= result.steps <= seen + 20 < LONG.steps


@on_ray_loop
async def test_a_job_past_its_time_limit_fails_with_job_timeout(backend):
    handle = backend.submit(long_job(timeout=1.0))
    started = time.monotonic()
    with pytest.raises(JobTimeout, match=r"time limit of 1 s"):
        await handle.result()
    assert 0.9 <= time.monotonic() - started < 10 and handle.state == "failed"


@on_ray_loop
async def test_a_sigkilled_actor_fails_its_job_with_worker_died_and_ray_restarts_it(backend):
    handle = backend.submit(long_job())
    await first_event(handle)
    (old,) = backend.worker_pids()
    os.kill(old, signal.SIGKILL)
    with pytest.raises(WorkerDied, match="stopped unexpectedly") as info:
        await handle.result()
    assert "\n" not in str(info.value)
    assert not backend.warm  # no actor alive: the bot's /healthz says 503

    await asyncio.wait_for(backend.wait_warm(), 120)
    (new,) = backend.worker_pids()
    assert new != old
    assert (await backend.submit(tiny_job()).result()).steps == 4


@on_ray_loop
async def test_a_probe_that_fails_oddly_marks_the_actor_lost_until_one_is_answered(
    backend, monkeypatch, caplog
):
    """A probe can fail with something that is not one of Ray's actor errors (through Ray
    Client, a dropped connection): the actor counts as lost (the bot's /healthz says 503)
    and the monitor keeps probing, so it comes back, rather than ending silently."""
    real, failures = backend._probe, [2]

    async def probe(slot):
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("the Ray Client connection dropped")
        return await real(slot)

    monkeypatch.setattr(backend, "_probe", probe)
    (slot,) = backend._slots
    slot.wake.set()  # probe now rather than within the second
    async with asyncio.timeout(10):
        while backend.warm:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(backend.wait_warm(), 30)
    assert failures == [0]
    assert (
        sum(
            "probe failed (the Ray Client connection dropped)" in r.getMessage()
            for r in caplog.records
        )
        == 2
    )
    assert (await backend.submit(tiny_job()).result()).steps == 4


def test_actors_end_with_the_bot_that_owns_them(head, tmp_path):
    """A driver killed with SIGKILL (say, by the OOM killer) leaves no actor holding a model."""
    script = textwrap.dedent(
        f"""
        import asyncio
        from nst_engine.ray import RayBackend

        async def main():
            backend = RayBackend("random", 1, address={address_of(head)!r}, cpus_per_worker=1)
            await backend.start()
            print(*backend.worker_pids(), flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script],
        # Through Ray Client, the cluster waits this long for a lost client to come back.
        env={**os.environ, **ENV, "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "3"},
        cwd=Path(__file__).parents[2],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "driver.log").open("wb"),
    )
    try:
        line = driver.stdout.readline()
        assert line.strip(), (tmp_path / "driver.log").read_text()[-2000:]
        actor = int(line)
        assert Path(f"/proc/{actor}").exists()
    finally:
        driver.kill()
        driver.wait()
    deadline = time.monotonic() + 30
    while _running(actor) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(actor), "the dead driver's actor is still running"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@on_ray_loop
async def test_an_unreachable_cluster_fails_in_one_line_naming_its_address(head):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"  # nothing listens there
    if head.client:
        address = f"ray://{address}"
    with pytest.raises(RayUnavailable) as info:
        await RayBackend("random", 1, address=address).start()
    assert str(info.value) == f"the Ray cluster at {address} cannot be reached (Connection refused)"


@on_ray_loop
async def test_closing_ends_the_actors_and_leaves_the_cluster(head, backend):
    pids = backend.worker_pids()
    await backend.close()
    assert not backend.warm and not ray.is_initialized()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert not any(_running(pid) for pid in pids)


@on_ray_loop
async def test_a_failed_connection_is_told_in_one_line_and_ray_client_tries_again(
    head, monkeypatch, caplog
):
    """Ray Client's head sometimes fails to start the server a client needs (it forks while
    gRPC is busy): the backend tries again, up to four times; a driver's failure is final. A
    failed attempt leaves this process able to connect again."""
    real_init, failures = ray.init, [0]
    line = "RuntimeError: Starting Ray client server failed. See ray_client_server_23000.err"

    def init(*args, **kwargs):
        if failures[0]:
            failures[0] -= 1
            raise ConnectionAbortedError(f"Initialization failure from server:\nTraceback:\n{line}")
        return real_init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", init)
    address = address_of(head)
    failures[0] = 4 if head.client else 1
    with pytest.raises(RayUnavailable) as info:
        await RayBackend("random", 1, address=address, cpus_per_worker=1).start()
    assert str(info.value) == f"the Ray cluster at {address} cannot be reached ({line})"
    assert failures == [0] and not ray.is_initialized()

    caplog.clear()
    failures[0] = 1 if head.client else 0
    async with RayBackend("random", 1, address=address, cpus_per_worker=1) as backend:
        assert (await backend.submit(tiny_job()).result()).steps == 4
    retries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retries) == (1 if head.client else 0), retries
