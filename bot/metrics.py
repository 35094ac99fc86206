"""Counters and histograms for /metrics, in Prometheus' text format."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


@dataclass
class Histogram:
    buckets: tuple[float, ...] = _BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * len(_BUCKETS))
    total: float = 0.0
    count: int = 0

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
        return "\n".join(lines) + "\n"
