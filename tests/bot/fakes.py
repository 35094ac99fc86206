"""Small fakes for the bot's unit tests (the scheduler and the lifecycle without Discord)."""

from __future__ import annotations

from bot.metrics import Metrics


class FakeJournal:
    """Records every write; `fail` makes the next writes raise, as a locked SQLite would."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.deliveries: dict[str, int] = {}
        self.fail: Exception | None = None

    async def set_state(self, job_id: str, state: str, *, attempt: bool = False) -> None:
        if self.fail:
            raise self.fail
        self.rows[job_id] = state
        self.attempts[job_id] = self.attempts.get(job_id, 0) + int(attempt)

    async def save_result(self, job_id: str, png: bytes) -> None:
        await self.set_state(job_id, "done")

    async def requeue(self, job_id: str) -> None:
        await self.set_state(job_id, "queued")

    async def delivery_tried(self, job_id: str) -> int:
        if self.fail:
            raise self.fail
        self.deliveries[job_id] = self.deliveries.get(job_id, 0) + 1
        return self.deliveries[job_id]


def metric(m: Metrics, name: str) -> float:
    return m.registry.get_sample_value(name) or 0.0
