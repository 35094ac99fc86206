"""What every backend does alike, run against each: the local pool (two worker processes) and
the Ray backend (one CPU actor on a one-host Ray that listens on loopback only, `LoopbackHead`),
joined as a driver (``HOST:PORT``) and through Ray Client (``ray://HOST:PORT``). Seeded random
weights, tiny images and few steps.

Starting a backend costs seconds (TensorFlow's import, and for Ray the head), so the tests of
one kind share one backend on a module-scoped event loop; the last closes it. What differs
between the backends is tested in `test_pool.py` and `test_ray.py`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest
import pytest_asyncio

from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process, this driver included, on 127.0.0.1 only.
os.environ.update(ENV)

from nst_engine import ImageError, StyleOptions, StyleResult  # noqa: E402
from nst_engine.animation import AnimationResult, planned_steps  # noqa: E402
from nst_engine.backend import (  # noqa: E402
    AnimationJob,
    Backend,
    Handle,
    Job,
    JobCancelled,
    JobFailed,
    JobTimeout,
    WorkerDied,
)
from nst_engine.pool import EnginePool  # noqa: E402
from nst_engine.processes import noted, start_time  # noqa: E402
from nst_engine.ray import RayBackend  # noqa: E402
from nst_engine.runner import job_error  # noqa: E402
from tests.support import gradient_image, stripes_image  # noqa: E402

on_backend_loop = pytest.mark.asyncio(loop_scope="module")
STYLE = stripes_image(32, 32)
# Long enough to still be running when a test cancels, kills or times it out.
LONG = StyleOptions(max_size=32, steps=5000)
# Each kind of backend: how it says that the worker running a job died under it, and the
# seconds it may take to bring up another.
KINDS = {
    "pool": (r"stopped unexpectedly \(killed by SIGKILL\)", 60),
    "ray-driver": ("stopped unexpectedly", 120),
    "ray-client": ("stopped unexpectedly", 120),
}


def tiny_job(steps: int = 4, **options: object) -> Job:
    return Job(
        gradient_image(64, 48, seed=3), (STYLE,), StyleOptions(max_size=64, steps=steps, **options)
    )


def long_job(**fields: object) -> Job:
    return Job(gradient_image(32, 32), (STYLE,), LONG, **fields)


async def first_event(handle):
    return await anext(aiter(handle.events()))


@pytest.fixture(scope="module", params=list(KINDS))
def kind(request) -> str:
    return request.param


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(kind):
    intervals = {"preview_interval": 0.2, "progress_interval": 0}
    if kind == "pool":
        async with EnginePool("random", workers=2, **intervals) as pool:
            yield pool
        return
    with LoopbackHead(cpus=2, client=kind == "ray-client") as head:
        address = head.client_address if head.client else head.address
        async with RayBackend(
            "random", 1, address=address, cpus_per_worker=1, **intervals
        ) as ray_backend:
            yield ray_backend
    assert head.pids() == []


@on_backend_loop
async def test_progress_arrives_in_order_with_previews_then_one_result(backend):
    handle = backend.submit(tiny_job(steps=8, preview_size=24))
    events = [progress async for progress in handle.events()]
    result = await handle.result()

    steps = [p.step for p in events]
    assert steps == sorted(set(steps)) and steps[-1] == 8 == result.steps
    assert steps == list(range(1, 9))
    assert all(p.total == 8 and p.snapshot is None for p in events)
    previews = [p.preview for p in events if p.preview is not None]
    assert previews and all(p.dtype == np.uint8 and max(p.shape[:2]) == 24 for p in previews)
    assert result.image.shape == (48, 64, 3) and result.image.dtype == np.uint8
    assert handle.state == "done" and not result.cancelled
    assert handle.progress == events[-1]
    assert isinstance(backend, Backend) and isinstance(handle, Handle)
    # A late listener gets the newest report, then the end.
    assert [p async for p in handle.events()] == [events[-1]]


@on_backend_loop
async def test_an_animation_job_gives_an_animation_and_a_picture_job_a_picture(backend):
    frames = tuple(np.roll(gradient_image(48, 36, seed=3), 2 * t, axis=1) for t in range(3))
    options = StyleOptions(max_size=48, steps=4)
    clip = backend.submit(AnimationJob(frames, (STYLE,), options))
    picture = backend.submit(tiny_job())
    events = [progress async for progress in clip.events()]
    animation, still = await clip.result(), await picture.result()

    assert isinstance(animation, AnimationResult) and clip.state == "done"
    assert len(animation.frames) == 3 and {f.shape for f in animation.frames} == {(36, 48, 3)}
    assert animation.steps[0] == 4 and sum(animation.steps) == planned_steps(3, options)
    assert [p.frame for p in events] == sorted(p.frame for p in events)
    assert events[-1].frame == events[-1].frames == 3
    assert events[-1].step == events[-1].total == sum(animation.steps)
    assert isinstance(still, StyleResult) and still.steps == 4
    assert still.image.shape == (48, 64, 3) and picture.state == "done"


@on_backend_loop
async def test_cancel_stops_a_running_job_within_a_step_and_drops_a_queued_one(backend):
    running = [backend.submit(long_job()) for _ in range(backend.size)]
    waiting = backend.submit(tiny_job())
    assert waiting.state == "queued" and backend.queued == 1
    assert waiting.cancel() and not waiting.cancel()
    with pytest.raises(JobCancelled, match="cancelled before it started"):
        await waiting.result()
    assert waiting.state == "cancelled" and backend.queued == 0

    first, others = running[0], running[1:]
    seen = (await first_event(first)).step
    assert first.worker_pid == backend.worker_pids()[0] != os.getpid()
    asked = time.monotonic()
    assert first.cancel() and not first.cancel()
    result = await first.result()
    assert time.monotonic() - asked < 5
    assert result.cancelled and first.state == "cancelled"
    assert seen <= result.steps <= seen + 20 < LONG.steps
    assert result.image.shape == (32, 32, 3)
    assert not first.cancel()  # finished: cancelling again does nothing

    for other in others:
        await first_event(other)
        other.cancel()
        assert (await other.result()).cancelled
        assert not other.cancel()


@on_backend_loop
async def test_a_job_past_its_time_limit_fails_with_job_timeout(backend):
    handle = backend.submit(long_job(timeout=1.0))
    started = time.monotonic()
    with pytest.raises(JobTimeout, match=r"time limit of 1 s"):
        await handle.result()
    assert 0.9 <= time.monotonic() - started < 10  # clocks of two processes may differ a hair
    assert handle.state == "failed"
    assert (await backend.submit(tiny_job()).result()).steps == 4


@on_backend_loop
async def test_a_killed_worker_fails_only_its_job_which_runs_again_on_another(backend, kind):
    doomed = backend.submit(long_job())
    await first_event(doomed)
    bystanders = [backend.submit(tiny_job(steps=40)) for _ in range(backend.size - 1)]
    for bystander in bystanders:
        await first_event(bystander)
    old_pids = set(backend.worker_pids())
    os.kill(doomed.worker_pid, signal.SIGKILL)
    died, restart_seconds = KINDS[kind]

    with pytest.raises(WorkerDied, match=died) as info:
        await doomed.result()
    assert "\n" not in str(info.value) and doomed.state == "failed"
    assert not backend.warm  # a worker short: the bot's /healthz says 503 while it comes back
    assert [(await b.result()).steps for b in bystanders] == [40] * len(bystanders)
    # The caller's one retry (the bot's) runs as soon as a worker is free.
    assert (await backend.submit(tiny_job()).result()).steps == 4

    await asyncio.wait_for(backend.wait_warm(), restart_seconds)
    assert backend.warm and len(set(backend.worker_pids()) - old_pids) == 1
    every = [backend.submit(tiny_job()) for _ in range(backend.size)]
    assert backend.free_workers == 0
    results = await asyncio.gather(*(h.result() for h in every))
    assert [r.steps for r in results] == [4] * backend.size


@on_backend_loop
async def test_close_stops_work_and_ends_every_worker(backend):
    workers = noted(backend.worker_pids())
    assert len(workers) == backend.size

    def still_running() -> list[int]:
        return [pid for pid, started in workers.items() if start_time(pid) == started]

    running = [backend.submit(long_job()) for _ in range(backend.size)]
    queued = backend.submit(tiny_job())
    await first_event(running[0])

    await backend.close()
    assert (await running[0].result()).cancelled
    with pytest.raises(JobCancelled):
        await queued.result()
    assert not backend.warm and backend.running == backend.queued == 0
    with pytest.raises(RuntimeError, match="closed"):
        await backend.wait_warm()
    with pytest.raises(RuntimeError):
        backend.submit(tiny_job())
    deadline = time.monotonic() + 30
    while still_running() and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert still_running() == []
    await backend.close()  # idempotent


def test_an_engine_error_keeps_its_type_and_message():
    job = tiny_job()
    error = ImageError("the file is empty")
    assert job_error(error, job) is error
    unexpected = job_error(RuntimeError("ResourceExhaustedError: OOM when allocating"), job)
    assert type(unexpected) is JobFailed and job.job_id in str(unexpected)
