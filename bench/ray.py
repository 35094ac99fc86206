"""The Ray backend against the local pool: per-job overhead, time to first progress, throughput.

    python -m bench.ray [--jobs 10] [--steps 10] [--throughput-jobs 8]

All run the same 64 px job (seeded random weights) with the bot's progress cadence. Ray runs
on a one-host head that listens on loopback only (`nst_engine.ray.loopback`), with no
dashboard and no usage statistics; it is stopped at the end. Latency is measured with the
backend joining the cluster as a driver (``HOST:PORT``) and through Ray Client (``ray://``).

- *Overhead*: the time from `submit` to the result, less the engine's own time in the worker
  (`StyleResult.seconds`), median over ``--jobs`` jobs run one after another after a warm-up.
- *First progress*: `submit` to the first progress event, median (the engine's set-up and first
  step included, the same on both).
- *Throughput*: ``--throughput-jobs`` jobs submitted at once, with one worker (all cores) and
  with two (the cores split between them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from dataclasses import dataclass

from nst_engine.ray.loopback import ENV, LoopbackHead

# Before anything imports Ray: every Ray process on 127.0.0.1 only.
os.environ.update(ENV)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.step_time import _cpu_name  # noqa: E402
from nst_engine.backend import Backend, Job  # noqa: E402
from nst_engine.options import StyleOptions  # noqa: E402
from nst_engine.pool import EnginePool  # noqa: E402
from nst_engine.ray import RayBackend  # noqa: E402
from tests.support import gradient_image, stripes_image  # noqa: E402


@dataclass
class Latency:
    start: float
    overhead: list[float]
    first_progress: list[float]
    wall: list[float]


def job(steps: int) -> Job:
    return Job(
        gradient_image(64, 48, seed=3),
        (stripes_image(48, 48),),
        StyleOptions(max_size=64, steps=steps, preview_size=32),
    )


async def latency(backend: Backend, jobs: int, steps: int) -> Latency:
    started = time.perf_counter()
    async with backend:
        ready = time.perf_counter() - started
        await backend.submit(job(steps)).result()  # warm-up: TensorFlow traces the step
        overhead, first, wall = [], [], []
        for _ in range(jobs):
            submitted = time.perf_counter()
            handle = backend.submit(job(steps))
            await anext(aiter(handle.events()))
            first.append(time.perf_counter() - submitted)
            result = await handle.result()
            took = time.perf_counter() - submitted
            wall.append(took)
            overhead.append(took - result.seconds)
    return Latency(ready, overhead, first, wall)


async def throughput(backend: Backend, jobs: int, steps: int) -> float:
    """Jobs per minute with every job submitted at once."""
    async with backend:
        while len(backend.worker_pids()) < backend.size:  # Ray: the others join as they load
            await asyncio.sleep(0.2)
        await asyncio.gather(*(backend.submit(job(steps)).result() for _ in range(backend.size)))
        started = time.perf_counter()
        await asyncio.gather(*(backend.submit(job(steps)).result() for _ in range(jobs)))
        return jobs / (time.perf_counter() - started) * 60


async def main(args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    with LoopbackHead(cpus=cores, client=True) as head:

        def ray(workers: int, address: str = head.address) -> RayBackend:
            return RayBackend(
                "random",
                workers,
                min_workers=workers,
                address=address,
                cpus_per_worker=max(1, cores // workers),
            )

        local = await latency(EnginePool("random", workers=1), args.jobs, args.steps)
        remote = await latency(ray(1), args.jobs, args.steps)
        client = await latency(ray(1, head.client_address), args.jobs, args.steps)
        rates = {}
        for workers in (1, 2):
            rates["local", workers] = await throughput(
                EnginePool("random", workers=workers), args.throughput_jobs, args.throughput_steps
            )
            rates["ray", workers] = await throughput(
                ray(workers), args.throughput_jobs, args.throughput_steps
            )

    print(f"CPU: {_cpu_name()}; 64×48 px, seeded random weights, one worker (all cores)")
    print(f"Latency: median of {args.jobs} jobs of {args.steps} steps, one at a time\n")
    print("| | local pool | Ray (driver) | Ray Client | driver − local | client − local |")
    print("|---|---|---|---|---|---|")
    for name, pick in (
        ("per-job overhead, ms", lambda r: r.overhead),
        ("submit → first progress, ms", lambda r: r.first_progress),
        ("submit → result, ms", lambda r: r.wall),
    ):
        a, b, c = (statistics.median(pick(r)) * 1000 for r in (local, remote, client))
        print(f"| {name} | {a:.0f} | {b:.0f} | {c:.0f} | {b - a:+.0f} | {c - a:+.0f} |")
    print(
        f"| start until warm, s | {local.start:.1f} | {remote.start:.1f} | {client.start:.1f} | | |"
    )
    print(
        f"\nThroughput: {args.throughput_jobs} jobs of {args.throughput_steps} steps submitted "
        "at once, jobs per minute\n"
    )
    print("| workers | local pool | Ray |")
    print("|---|---|---|")
    for workers in (1, 2):
        print(f"| {workers} | {rates['local', workers]:.1f} | {rates['ray', workers]:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--throughput-jobs", type=int, default=8)
    parser.add_argument("--throughput-steps", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
