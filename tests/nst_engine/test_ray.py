"""The Ray backend on a real one-host Ray that listens on loopback only (`LoopbackHead`), with
one CPU actor, seeded random weights, tiny images and few steps. What every backend does alike
(progress, cancel, time limit, a worker that dies, close) is tested in `test_backends.py`; here,
what is Ray's own.

Every test runs twice: with the backend joining the cluster as a driver (``HOST:PORT``), and
through the head's Ray Client server (``ray://HOST:PORT``). Starting the head and loading an
actor's model cost seconds, so the tests of one kind share one head and one backend on a
module-scoped event loop; the last closes them and checks that nothing of the cluster is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import pytest_asyncio

from nst_engine.processes import descendants, kill_noted, noted, start_time, still_running
from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

import ray  # noqa: E402

from nst_engine import StyleOptions  # noqa: E402
from nst_engine.backend import Backend, Job  # noqa: E402
from nst_engine.ray import RayBackend, RayUnavailable  # noqa: E402
from tests.support import gradient_image, listening_sockets, stripes_image  # noqa: E402

on_ray_loop = pytest.mark.asyncio(loop_scope="module")
STYLE = stripes_image(32, 32)


def tiny_job(steps: int = 4, **options: object) -> Job:
    return Job(
        gradient_image(64, 48, seed=3), (STYLE,), StyleOptions(max_size=64, steps=steps, **options)
    )


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
async def test_a_probe_that_fails_oddly_marks_the_actor_lost_until_one_is_answered(
    backend, monkeypatch, caplog
):
    """A probe can fail with something that is not one of Ray's actor errors (through Ray
    Client, a dropped connection): the actor counts as lost (the bot's /healthz says 503)
    and the monitor keeps probing, so it comes back, rather than ending silently."""
    (slot,) = backend._slots
    real, failures = slot.probe, [2]

    async def probe():
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("the Ray Client connection dropped")
        return await real()

    monkeypatch.setattr(slot, "probe", probe)
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
    while start_time(actor) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert start_time(actor) is None, "the dead driver's actor is still running"


@pytest.mark.parametrize(
    "start", ["LoopbackHead(cpus=1)", "LoopbackCluster(nodes=1)"], ids=["head", "cluster"]
)
def test_a_loopback_ray_whose_starter_is_killed_ends_and_leaves_no_folder(start, tmp_path):
    """A test process killed outright (SIGKILL, a CI timeout) never calls ``stop``: the
    cluster's guard ends what it started and removes its folder all the same."""
    script = textwrap.dedent(
        f"""
        import json
        import time

        from nst_engine.ray.loopback import LoopbackCluster, LoopbackHead

        cluster = {start}.start()
        # Once every process has started (a head killed before then hears no SIGTERM, blocked
        # in Ray's native code on the GCS that the SIGTERM ended, until the SIGKILL 15 s on)
        # and the guard, looking each second, has seen it.
        pids, since, deadline = set(), time.monotonic(), time.monotonic() + 30
        while time.monotonic() - since < 2 and time.monotonic() < deadline:
            if (now := set(cluster.pids())) != pids:
                pids, since = now, time.monotonic()
            time.sleep(0.1)
        print(json.dumps({{"temp_dir": str(cluster.temp_dir), "pids": sorted(pids)}}), flush=True)
        time.sleep(600)
        """
    )
    with (tmp_path / "starter.log").open("wb") as log:
        starter = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=Path(__file__).parents[2],
            stdout=subprocess.PIPE,
            stderr=log,
        )
    cluster: dict[int, str] = {}
    group = temp_dir = None
    try:
        line = starter.stdout.readline()
        assert line.strip(), (tmp_path / "starter.log").read_text()[-2000:]
        started = json.loads(line)
        cluster, temp_dir = noted(started["pids"]), Path(started["temp_dir"])
        assert cluster and temp_dir.is_dir()
        # A head's process group (its leader's pid; the leader started first) holds what it
        # starts later and what outlives its parent. A cluster's nodes are in the starter's.
        first = min(cluster, key=lambda pid: int(cluster[pid]))
        group = first if os.getpgid(first) == first else None
        starter.kill()
        starter.wait()
        deadline = time.monotonic() + 30
        while (left := _still_running(cluster, group)) or temp_dir.exists():
            assert time.monotonic() < deadline, f"left behind: {left}, {temp_dir.exists()=}"
            time.sleep(0.2)
    finally:
        starter.kill()
        starter.wait()
        starter.stdout.close()
        kill_noted(cluster | noted(descendants(cluster, group=group)))
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _still_running(cluster: dict[int, str], group: int | None) -> list[int]:
    """Which of ``cluster`` still run (a pid reused since does not count), having first added
    every process descended from them or in ``group``."""
    cluster.update(noted(descendants(cluster, group=group)))
    return still_running(cluster)


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
async def test_closing_leaves_the_cluster(backend):
    """(That closing ends the actors is tested for every backend, in `test_backends.py`.)"""
    await backend.close()
    assert not backend.warm and not ray.is_initialized()


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


@on_ray_loop
async def test_an_actor_that_outgrew_its_memory_bound_is_replaced_and_no_job_is_lost(head, caplog):
    """As the pool's worker (`test_pool.py`): past its bound (here any growth), Ray restarts the
    actor between two jobs, and the jobs queued meanwhile come back whole."""
    caplog.set_level("INFO", logger="nst_engine.ray")
    backend = RayBackend(
        "random", 1, address=address_of(head), cpus_per_worker=1, max_growth_percent=1e-9
    )
    async with backend:
        first = backend.worker_pids()
        handles = [backend.submit(tiny_job(steps=3 + i)) for i in range(4)]
        results = await asyncio.gather(*(h.result() for h in handles))
        await asyncio.wait_for(backend.wait_warm(), 120)
        assert backend.worker_pids() != first
    assert [r.steps for r in results] == [3, 4, 5, 6]
    replaced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("replacing")]
    assert replaced and "its memory grew from" in replaced[0], replaced
