"""What operators watch on /metrics: jobs by state, waiting and running times, speed, the event
loop's lag and the process itself, in Prometheus' text format (``prometheus_client``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

# The content type of what `Metrics.render` returns (Prometheus' text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class WorkerCounts(Protocol):
    """What `Metrics.track_workers` reads (an engine backend)."""

    workers_alive: int
    workers_starting: int
    workers_wanted: int


class LoopLag:
    """How late a timer on the event loop fires: the bot's responsiveness to members.

    Anything that blocks the loop (a slow callback, a long garbage-collector pass) delays every
    interaction's 3-second acknowledgement, so operators watch this next to the job counters.
    """

    def __init__(self, histogram: Histogram, interval: float = 0.05) -> None:
        self.interval = interval
        self.histogram = histogram
        # The longest lag seen since start-up, in seconds.
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._tick(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - due)
            self.histogram.observe(lag)
            self.worst = max(self.worst, lag)


class Metrics:
    """One bot's metrics, on a registry of its own (tests run several bots in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"nst_jobs_{name}", doc, registry=r)  # exposed as ..._total

        self.finished = counter("finished", "Jobs whose picture was made.")
        self.failed = counter("failed", "Jobs that ended in an error.")
        self.cancelled = counter("cancelled", "Jobs cancelled by their requester.")
        self.rejected = counter("rejected", "Requests refused before being queued.")
        self.queue_wait = Histogram(
            "nst_queue_wait_seconds",
            "Seconds jobs waited for a worker.",
            buckets=_BUCKETS,
            registry=r,
        )
        self.run_time = Histogram(
            "nst_run_seconds", "Seconds jobs took on a worker.", buckets=_BUCKETS, registry=r
        )
        self.steps_per_second = Gauge(
            "nst_steps_per_second", "Optimisation steps per second of the latest job.", registry=r
        )
        self._queued = Gauge("nst_jobs_queued", "Jobs waiting for a worker.", registry=r)
        self._running = Gauge("nst_jobs_running", "Jobs on a worker now.", registry=r)
        self.track(queued=lambda: 0, running=lambda: 0)
        self._workers = {
            what: Gauge(f"nst_workers_{what}", doc, registry=r)
            for what, doc in (
                ("alive", "Engine workers with the model loaded."),
                ("starting", "Engine workers asked for that cannot take a job yet."),
                ("wanted", "Engine workers the jobs held now ask for, within the bounds."),
            )
        }
        self.loop_lag = LoopLag(
            Histogram(
                "nst_event_loop_lag_seconds",
                "How late a 50 ms timer on the bot's event loop fired.",
                buckets=_LAG_BUCKETS,
                registry=r,
            )
        )
        Gauge(
            "nst_event_loop_lag_max_seconds",
            "The longest event-loop lag since start-up.",
            registry=r,
        ).set_function(lambda: self.loop_lag.worst)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    def track(self, *, queued: Callable[[], float], running: Callable[[], float]) -> None:
        """Read the numbers of queued and running jobs from these at scrape time (never stale)."""
        self._queued.set_function(queued)
        self._running.set_function(running)

    def track_workers(self, engine: WorkerCounts) -> None:
        """Read the engine's workers alive, starting and wanted at scrape time."""
        self._workers["alive"].set_function(lambda: engine.workers_alive)
        self._workers["starting"].set_function(lambda: engine.workers_starting)
        self._workers["wanted"].set_function(lambda: engine.workers_wanted)

    def render(self) -> bytes:
        """Everything, in Prometheus' text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
