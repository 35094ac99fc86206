"""The bot on a Ray cluster of several nodes, and a whole node lost mid-job.

The cluster is Ray's own several-nodes-on-one-host (`LoopbackCluster`: a head with no CPUs and
two worker nodes of one CPU and one GPU each, everything on 127.0.0.1), the bot the real one
against the Discord emulator with NST_BACKEND=ray and the cluster's address. The GPUs are only
declared to Ray (this machine has none): they make the bot plan as on a GPU cluster, one actor
per GPU, each taking one, so one lands on each node; TensorFlow there finds no GPU and paints
on the CPU. Losing a node kills its raylet, object store and actor at once, as a crashed host
would.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from nst_engine.ray.loopback import ENV, LoopbackCluster

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

from nst_engine.ray.backend import RayBackend  # noqa: E402
from tests.bot.harness import World, finished, result_png, running_bot  # noqa: E402
from tests.support import listening_sockets  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def cluster():
    with LoopbackCluster(nodes=2, cpus=1, gpus=1) as cluster:
        yield cluster
    assert cluster.pids() == []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(cluster, tmp_path_factory) -> AsyncIterator[World]:
    async with running_bot(
        tmp_path_factory.mktemp("nst-data"),
        nst_backend="ray",
        nst_ray_address=cluster.address,
        nst_workers=None,  # one actor per GPU of the cluster: one on each node
        nst_ray_min_workers=2,  # both from the start, not as jobs wait
        nst_user_limit=2,
        nst_member_rate=0,
    ) as world:
        assert isinstance(world.bot.pool, RayBackend)
        await until(lambda: len(world.bot.pool.worker_pids()) == 2, 180)
        yield world


async def until(condition, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.1)


async def healthz(world: World) -> int:
    async with aiohttp.ClientSession() as session, session.get(f"{world.http}/healthz") as answer:
        return answer.status


async def test_one_actor_per_gpu_and_every_socket_on_loopback(cluster, world: World) -> None:
    backend = world.bot.pool
    assert backend.on_gpus and backend.size == 2
    assert any("2 GPU(s); starting 2 actor(s) (one per GPU)" in ln for ln in world.logs.lines)
    assert sorted(backend.worker_node_ids()) == sorted(cluster.node_ids())
    assert backend.worker_nodes() == ["127.0.0.1", "127.0.0.1"]
    sockets = listening_sockets(cluster.pids() + [os.getpid()])
    assert sockets and {address for _, address in sockets} <= {"127.0.0.1", "::1"}, sockets


async def test_a_node_lost_mid_job_retries_on_another_and_delivers_one_picture(
    cluster, world: World
) -> None:
    backend = world.bot.pool
    inter = await world.stylize(quality="best")
    await inter.wait_for_original(lambda m: "painting" in m.content, timeout=60)
    await until(lambda: backend.running == 1, 30)
    (request,) = world.bot.get_cog("Stylize").scheduler.running
    handle = request.handle
    node = backend.worker_node_ids()[backend.worker_pids().index(handle.worker_pid)]
    survivor = next(n for n in cluster.node_ids() if n != node)

    cluster.kill_node(node)
    result = await finished(inter, timeout=180)

    assert result_png(result).size == (64, 48)
    await asyncio.sleep(2)
    assert len([m for m in inter.followups if m.files]) == 1
    assert any("retrying once" in line for line in world.logs.lines)
    assert backend.worker_node_ids() == [survivor]
    assert await healthz(world) == 200  # one node still works: slower, not unhealthy

    # A host joins in its place: Ray starts the lost actor there, and both work again.
    joined = cluster.add_node()
    await until(lambda: len(backend.worker_pids()) == 2, 180)
    assert sorted(backend.worker_node_ids()) == sorted([survivor, joined])
    results = await asyncio.gather(
        *[finished(await world.stylize(quality="fast"), timeout=120) for _ in range(2)]
    )
    assert [result_png(r).size for r in results] == [(64, 48), (64, 48)]
