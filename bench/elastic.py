"""Elastic Ray actors: a cold start, the end of idle actors, and jobs per minute.

    python -m bench.elastic [--cold 3] [--idle 2] [--jobs 8] [--steps 30]

On a loopback cluster whose nodes Ray's autoscaler adds and removes (`LoopbackHead` with
`AutoscaledNodes`: a head with no CPUs, up to two one-CPU nodes on 127.0.0.1, removed after 6 s
idle), with the same 64 px job as `bench.ray` (seeded random weights):

- *Cold start*: a job submitted with no actor and no worker node (``min_workers=0``) until its
  first progress: the autoscaler adding a node (here a process on this host: no VM, no image to
  pull), the actor's process, TensorFlow's import, the model's load and the first step.
  ``--cold`` times, each after the node of the one before has gone.
- *Ending idle actors*: from a job's result until no actor is left, with ``idle_s=--idle``; the
  time past ``--idle`` is the backend's own (its half-second look, and Ray ending the actor);
  then until the autoscaler has removed the node.
- *Jobs per minute*: ``--jobs`` jobs submitted at once, with one and two actors kept up, and
  with actors from zero to two (the cold starts included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from nst_engine.ray.loopback import ENV, AutoscaledNodes, LoopbackHead

# Before anything imports Ray: every Ray process on 127.0.0.1 only.
os.environ.update(ENV)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.ray import job, throughput  # noqa: E402
from bench.step_time import _cpu_name  # noqa: E402
from nst_engine.ray import RayBackend  # noqa: E402


def backend(address: str, low: int, high: int, idle: float) -> RayBackend:
    return RayBackend(
        "random",
        min_workers=low,
        max_workers=high,
        idle_s=idle,
        address=address,
        cpus_per_worker=1,
    )


def worker_nodes() -> int:
    """Worker nodes alive now (the head has no CPUs)."""
    import ray

    return sum(n["Alive"] and n["Resources"].get("CPU", 0) > 0 for n in ray.nodes())


async def no_worker_node() -> None:
    while worker_nodes():
        await asyncio.sleep(0.2)


async def cold_starts(
    address: str, times: int, idle: float, steps: int
) -> tuple[list[float], list[float], list[float]]:
    """Seconds from submit to first progress at an empty cluster, and from a result to no actor
    left and to no worker node left, ``times`` each."""
    first, ended, removed = [], [], []
    async with backend(address, 0, 1, idle) as elastic:
        for _ in range(times):
            submitted = time.perf_counter()
            handle = elastic.submit(job(steps))
            await anext(aiter(handle.events()))
            first.append(time.perf_counter() - submitted)
            await handle.result()
            done = time.perf_counter()
            while elastic.workers_alive or elastic.workers_starting:
                await asyncio.sleep(0.05)
            ended.append(time.perf_counter() - done)
            await no_worker_node()
            removed.append(time.perf_counter() - done)
    return first, ended, removed


async def burst(address: str, jobs: int, steps: int) -> float:
    """Jobs per minute for ``jobs`` at once with actors from zero to two."""
    async with backend(address, 0, 2, 60) as elastic:
        await no_worker_node()  # those of the runs before
        started = time.perf_counter()
        await asyncio.gather(*(elastic.submit(job(steps)).result() for _ in range(jobs)))
        return jobs / (time.perf_counter() - started) * 60


async def main(args: argparse.Namespace) -> None:
    nodes = AutoscaledNodes(max_nodes=2, cpus=1)
    with LoopbackHead(cpus=0, autoscale=nodes) as head:
        first, ended, removed = await cold_starts(head.address, args.cold, args.idle, args.steps)
        rates = {
            workers: await throughput(
                backend(head.address, workers, workers, 300), args.jobs, args.steps
            )
            for workers in (1, 2)
        }
        elastic = await burst(head.address, args.jobs, args.steps)

    print(
        f"CPU: {_cpu_name()}; a head and up to two autoscaled 1-CPU nodes on loopback; "
        "64×48 px, random weights"
    )
    print(f"Cold start, submit → first progress (a node added), s: {_figures(first)}")
    print(f"Result → no actor left (idle {args.idle:g} s), s: {_figures(ended)}")
    print(f"Result → no worker node left (the autoscaler's 6 s idle), s: {_figures(removed)}")
    print(f"\nJobs per minute, {args.jobs} jobs of {args.steps} steps submitted at once:\n")
    print("| actors | jobs per minute |")
    print("|---|---|")
    for workers, rate in rates.items():
        print(f"| {workers}, kept up | {rate:.1f} |")
    print(f"| 0 → 2 (and their nodes), started by the burst | {elastic:.1f} |")


def _figures(values: list[float]) -> str:
    listed = ", ".join(f"{v:.1f}" for v in values)
    return f"median {statistics.median(values):.1f} ({listed})"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--idle", type=float, default=2.0)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
