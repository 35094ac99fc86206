"""The Ray backend's elastic actors on clusters of several Ray nodes on this host, all on
127.0.0.1, each starting with a head only (no CPU, no GPU) and GPU nodes (one CPU and one GPU,
declared: TensorFlow there finds none) that come for actors left pending:

- added by Ray's own autoscaler, its fake multi-node provider (`LoopbackHead` with
  `AutoscaledNodes`: what `ray.cluster_utils.AutoscalingCluster` runs, without that class, which
  cannot run here: see `nst_engine.ray.loopback`);
- added and removed by the test itself (`LoopbackCluster`, Ray's `ray.cluster_utils.Cluster`),
  which can check each step on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os

import pytest

from nst_engine.ray.loopback import ENV, AutoscaledNodes, LoopbackCluster, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

import ray  # noqa: E402

from nst_engine import StyleOptions  # noqa: E402
from nst_engine.backend import Job  # noqa: E402
from nst_engine.errors import WeightsError  # noqa: E402
from nst_engine.ray import RayBackend  # noqa: E402
from tests.support import gradient_image, stripes_image  # noqa: E402

STYLE = stripes_image(32, 32)


def tiny_job(steps: int = 3) -> Job:
    return Job(gradient_image(48, 32, seed=3), (STYLE,), StyleOptions(max_size=48, steps=steps))


async def until(condition, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {timeout:g} s: {what}") from None


def ran_once(caplog, handles) -> None:
    """Each job started on an actor exactly once."""
    started = collections.Counter(
        r.getMessage().split()[1] for r in caplog.records if " started on actor " in r.getMessage()
    )
    assert sorted(started) == sorted(h.job_id for h in handles)
    assert set(started.values()) == {1}, started


@contextlib.asynccontextmanager
async def most_actors(backend: RayBackend):
    """The most actors the backend had asked for at once while in the block: ``[n]``."""
    most = [0]

    async def watch() -> None:
        while True:
            most[0] = max(most[0], len(backend._slots))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        yield most
    finally:
        watcher.cancel()


def elastic(address: str) -> RayBackend:
    """No actor kept, up to two; each takes a GPU, though the cluster has none yet."""
    return RayBackend(
        "random",
        address=address,
        min_workers=0,
        max_workers=2,
        scale_up_s=0.5,
        idle_s=3,
        gpu_actors=True,
        progress_interval=0,
    )


def gpu_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")]


async def test_rays_autoscaler_adds_gpu_nodes_for_a_burst_and_removes_them_once_idle(caplog):
    caplog.set_level(logging.INFO, logger="nst_engine")
    with LoopbackHead(cpus=0, autoscale=AutoscaledNodes(max_nodes=2, gpus=1)) as head:
        async with elastic(head.address) as backend, most_actors(backend) as most:
            assert backend.warm and gpu_nodes() == []
            # Long enough that the second actor is wanted while the first is busy; it is
            # checked as it comes up (on a loaded host it may come after the last job, and
            # it then ends once idle_s has passed).
            handles = [backend.submit(tiny_job(steps=30)) for _ in range(6)]
            await until(lambda: backend.workers_alive == 2, 300, "two actors up for the burst")
            nodes = gpu_nodes()
            assert len(nodes) == 2 and {n["NodeManagerAddress"] for n in nodes} == {"127.0.0.1"}
            assert sorted(backend.worker_node_ids()) == sorted(n["NodeID"] for n in nodes)
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 300)
            assert [r.steps for r in results] == [30] * 6
            ran_once(caplog, handles)

            # Idle: the actors end, then the autoscaler removes the idle nodes.
            await until(lambda: not backend._slots, 30, "the idle actors ended")
            await until(lambda: gpu_nodes() == [], 120, "the autoscaler removed the nodes")
            assert backend.warm

            # A later job brings one back.
            assert (await asyncio.wait_for(backend.submit(tiny_job()).result(), 300)).steps == 3
            assert len(gpu_nodes()) == 1 and backend.workers_alive == 1
        assert most == [2]
    assert head.pids() == []


@pytest.fixture
def cluster():
    with LoopbackCluster(nodes=0, cpus=1, gpus=1) as cluster:
        yield cluster
    assert cluster.pids() == []


async def test_a_burst_grows_to_the_maximum_idle_actors_end_and_a_later_job_brings_one_back(
    cluster, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="nst_engine")
    async with elastic(cluster.address) as backend, most_actors(backend) as most:
        # Warm with no actor: the cluster scales.
        assert backend.warm and backend.workers_alive == backend.workers_starting == 0

        handles = [backend.submit(tiny_job()) for _ in range(6)]
        # No node has room: both actors stay pending, the demand an autoscaler acts on.
        await until(lambda: backend.workers_starting == 2, 10, "two actors asked for")
        assert backend.workers_wanted == 2 and backend.workers_alive == 0
        assert all(h.waiting is not None for h in handles)
        await asyncio.sleep(1.5)
        assert backend.workers_starting == 2 and backend.workers_alive == 0
        for _ in range(2):
            cluster.add_node()

        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 300)
        assert [r.steps for r in results] == [3] * 6
        ran_once(caplog, handles)
        assert len(set(backend.worker_node_ids())) == 2  # one actor on each node
        assert backend.start_seconds is not None and backend.start_seconds > 0

        # Idle for 3 s: both end, and give their GPUs back (the nodes can go).
        await until(lambda: backend.workers_alive == 0 and not backend._slots, 30, "actors ended")
        await until(lambda: ray.available_resources().get("GPU") == 2, 30, "GPUs given back")
        assert backend.warm
        for node in cluster.node_ids():
            cluster.kill_node(node)

        # A later job brings one back, on a node that joins for it.
        late = backend.submit(tiny_job())
        await until(lambda: backend.workers_starting == 1, 10, "an actor asked for")
        assert late.waiting is not None and late.waiting.seconds is not None
        cluster.add_node()
        assert (await asyncio.wait_for(late.result(), 300)).steps == 3
        assert backend.workers_alive == 1
    assert most == [2]


async def test_an_actor_that_cannot_load_the_model_fails_the_job_waiting_for_it(cluster, tmp_path):
    """With no actor kept, the first one is started for a job: if it cannot load the model, the
    job fails with the reason in one line instead of waiting for ever, and the actor ends."""
    cluster.add_node()
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not HDF5")
    async with RayBackend(
        str(junk), address=cluster.address, min_workers=0, max_workers=1
    ) as backend:
        handle = backend.submit(tiny_job())
        with pytest.raises(WeightsError, match="junk.weights.h5 is not a readable VGG19"):
            await asyncio.wait_for(handle.result(), 120)
        await until(lambda: not backend._slots, 10, "the broken actor ended")
