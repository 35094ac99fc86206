"""Counters and histograms for /metrics, in Prometheus' text format."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = _BUCKETS
    counts: list[int] = field(init=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        self.total += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b:g}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.total:.6g}"]
        out.append(f"{name}_count {self.count}")
        return out


class LoopLag:
    """How late a timer on the event loop fires: the bot's responsiveness to members.

    Anything that blocks the loop (a slow callback, a long garbage-collector pass) delays every
    interaction's 3-second acknowledgement, so operators watch this next to the job counters.
    """

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.histogram = Histogram(_LAG_BUCKETS)
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
    """What operators watch: jobs by state, waiting and running times, speed."""

    def __init__(self) -> None:
        self.finished = 0
        self.failed = 0
        self.cancelled = 0
        self.rejected = 0
        self.queue_wait = Histogram()
        self.run_time = Histogram()
        self.steps_per_second = 0.0
        self.loop_lag = LoopLag()
        # Read at scrape time, so they are never stale.
        self.queued: Callable[[], int] = lambda: 0
        self.running: Callable[[], int] = lambda: 0

    def render(self) -> str:
        lines = [
            "# TYPE nst_jobs_queued gauge",
            f"nst_jobs_queued {self.queued()}",
            "# TYPE nst_jobs_running gauge",
            f"nst_jobs_running {self.running()}",
        ]
        for name in ("finished", "failed", "cancelled", "rejected"):
            lines += [
                f"# TYPE nst_jobs_{name}_total counter",
                f"nst_jobs_{name}_total {getattr(self, name)}",
            ]
        lines += self.queue_wait.lines("nst_queue_wait_seconds")
        lines += self.run_time.lines("nst_run_seconds")
        lines += [
            "# TYPE nst_steps_per_second gauge",
            f"nst_steps_per_second {self.steps_per_second:.4g}",
        ]
        lines += self.loop_lag.histogram.lines("nst_event_loop_lag_seconds")
        lines += [
            "# TYPE nst_event_loop_lag_max_seconds gauge",
            f"nst_event_loop_lag_max_seconds {self.loop_lag.worst:.6g}",
        ]
        return "\n".join(lines) + "\n"
