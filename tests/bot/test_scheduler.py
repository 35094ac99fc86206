"""The scheduler without Discord: a fake engine and a recording notifier stand in for the pool
and for delivery, so every ending of a job can be forced and checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from bot.cogs.stylize.contracts import Undeliverable
from bot.cogs.stylize.engine_job import Limits
from bot.cogs.stylize.errors import TooLate
from bot.cogs.stylize.lifecycle import RequestState
from bot.cogs.stylize.request import Params, Request
from bot.cogs.stylize.scheduler import Scheduler
from bot.metrics import Metrics
from bot.store import JobRecord, StoredJob
from nst_engine.images import encode_image
from nst_engine.options import Losses, Progress, StyleResult
from nst_engine.pool import AnimationJob, JobCancelled, WorkerDied
from tests.bot.fakes import FakeJournal, metric

IMAGE = np.full((8, 8, 3), 100, np.uint8)


class FakeHandle:
    def __init__(self, job, script) -> None:
        self.job = job
        self.cancelled = asyncio.Event()
        self._script = script

    def cancel(self) -> bool:
        self.cancelled.set()
        return True

    async def events(self):
        for step in (1, 2):
            yield Progress(step, 2, Losses(1, 1, 1), 0.1 * step)

    async def worker_starts(self):
        return
        yield

    async def result(self) -> StyleResult:
        return await self._script(self)


async def paints(handle: FakeHandle) -> StyleResult:
    await asyncio.sleep(0)
    return StyleResult(IMAGE, 2, 0.5, Losses(1, 1, 1), (), weights="random")


@dataclass
class FakeEngine:
    """One worker slot; ``scripts`` say how each submitted job goes, in order."""

    scripts: list = field(default_factory=list)
    size: int = 1
    submitted: list = field(default_factory=list)
    jobs: list = field(default_factory=list)
    warm: asyncio.Event = field(default_factory=asyncio.Event)

    def submit(self, job) -> FakeHandle:
        script = self.scripts.pop(0) if self.scripts else paints
        self.submitted.append(job.job_id)
        self.jobs.append(job)
        return FakeHandle(job, script)

    async def wait_warm(self) -> None:
        await self.warm.wait()


class Member:
    """The Notifier: records what each member would see."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.fail_deliver: Exception | None = None

    async def queued(self, request, position, running) -> None:
        self.seen.append((request.id, f"queued {position}"))

    async def started(self, request) -> None:
        self.seen.append((request.id, "started"))

    async def starting_worker(self, request, seconds) -> None:
        self.seen.append((request.id, f"starting a worker {seconds}"))

    async def progress(self, request, progress) -> None:
        self.seen.append((request.id, f"{progress.step}/{progress.total}"))

    async def deliver(self, request, png, result) -> None:
        if self.fail_deliver:
            raise self.fail_deliver
        self.seen.append((request.id, "picture"))

    async def ended(self, request, text) -> None:
        self.seen.append((request.id, text))

    def of(self, request) -> list[str]:
        return [what for job_id, what in self.seen if job_id == request.id]


class Journal(FakeJournal):
    def __init__(self) -> None:
        super().__init__()
        self.stored: dict[str, StoredJob] = {}

    async def pending(self):
        return [
            s.record
            for s in self.stored.values()
            if s.record.state in ("queued", "running", "done")
        ]

    async def load(self, job_id):
        return self.stored.get(job_id)


def make(engine: FakeEngine | None = None, **limits) -> tuple[Scheduler, FakeEngine, Member]:
    engine = engine or FakeEngine()
    member = Member()

    async def decode(data: bytes) -> np.ndarray:
        return IMAGE

    scheduler = Scheduler(
        engine,
        Journal(),
        Metrics(),
        member,
        Limits(**{"max_steps": 30, "job_timeout": 60.0, **limits}),
        queue_limit=10,
        member_limit=5,
        decode=decode,
    )
    return scheduler, engine, member


def new_request(user_id: int = 1, **params) -> Request:
    return Request(None, Params(**params), IMAGE, IMAGE, user_id, 10, 20, 30, None, 0.0)


def accept(scheduler: Scheduler, request: Request) -> Request:
    scheduler.queue.reserve(request.user_id)
    scheduler.enqueue(request)
    return request


async def settle(scheduler: Scheduler, *requests: Request, timeout: float = 5.0) -> None:
    async def ended() -> None:
        while any(r.id in scheduler.jobs for r in requests) or scheduler.running:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(ended(), timeout)


@pytest.fixture
async def running():
    made = []

    def start(engine: FakeEngine | None = None, **limits):
        scheduler, engine, member = make(engine, **limits)
        engine.warm.set()
        scheduler.start()
        made.append(scheduler)
        return scheduler, engine, member

    yield start
    for scheduler in made:
        await scheduler.close()


async def test_members_are_served_in_turn_and_each_gets_one_picture(running) -> None:
    scheduler, engine, member = running()
    a1, a2, b1 = new_request(1), new_request(1), new_request(2)
    for r in (a1, a2, b1):
        accept(scheduler, r)
    await settle(scheduler, a1, a2, b1)
    assert engine.submitted == [a1.id, b1.id, a2.id]
    for r in (a1, a2, b1):
        assert member.of(r) == ["started", "1/2", "2/2", "picture"]
        assert scheduler.journal.rows[r.id] == "delivered"
    assert metric(scheduler.lifecycle.metrics, "nst_jobs_finished_total") == 3


async def test_nothing_is_dispatched_before_the_engine_is_warm() -> None:
    scheduler, engine, member = make()
    scheduler.start()
    job = accept(scheduler, new_request())
    await asyncio.sleep(0.05)
    assert engine.submitted == [] and job.state is RequestState.QUEUED
    engine.warm.set()
    await settle(scheduler, job)
    assert member.of(job)[-1] == "picture"
    await scheduler.close()


async def test_options_the_engine_refuses_fail_the_job_and_free_the_slot(running) -> None:
    # A forged interaction can carry a strength of 11: the engine's options refuse it.
    scheduler, engine, member = running()
    forged, next_one = new_request(strength=11.0), new_request(2)
    accept(scheduler, forged)
    accept(scheduler, next_one)
    await settle(scheduler, forged, next_one)
    assert member.of(forged)[-1].startswith("❌ <@1>, that didn't work: strength")
    assert scheduler.journal.rows[forged.id] == "failed"
    assert member.of(next_one)[-1] == "picture"
    assert metric(scheduler.lifecycle.metrics, "nst_jobs_running") == 0


async def test_an_unexpected_error_while_painting_is_answered_with_an_id(running, caplog) -> None:
    async def explodes(handle):
        raise KeyError("surprise")

    scheduler, engine, member = running(FakeEngine(scripts=[explodes]))
    job = accept(scheduler, new_request())
    await settle(scheduler, job)
    assert "something went wrong on our side (error id `" in member.of(job)[-1]
    assert scheduler.journal.rows[job.id] == "failed" and scheduler.running == set()
    assert "job crashed (error id" in caplog.text


async def test_a_dead_worker_is_retried_once_then_the_member_is_told(running) -> None:
    async def dies(handle):
        raise WorkerDied("the worker running this job stopped unexpectedly (killed by SIGKILL)")

    scheduler, engine, member = running(FakeEngine(scripts=[dies, paints, dies, dies]))
    lucky, unlucky = new_request(), new_request()
    accept(scheduler, lucky)
    await settle(scheduler, lucky)
    accept(scheduler, unlucky)
    await settle(scheduler, unlucky)
    assert member.of(lucky)[-1] == "picture"
    assert "killed by SIGKILL), twice; if the picture is large" in member.of(unlucky)[-1]
    assert engine.submitted == [lucky.id, lucky.id, unlucky.id, unlucky.id]


async def test_a_journal_that_cannot_be_written_still_delivers_the_picture(running) -> None:
    scheduler, engine, member = running()

    async def locks_the_journal(handle):
        scheduler.journal.fail = RuntimeError("database is locked")
        return await paints(handle)

    engine.scripts.append(locks_the_journal)
    job = accept(scheduler, new_request())
    await settle(scheduler, job)
    assert member.of(job)[-1] == "picture"
    assert scheduler.running == set() and scheduler.jobs == {}


async def test_an_unreachable_member_ends_the_job_as_undeliverable(running) -> None:
    scheduler, engine, member = running()
    member.fail_deliver = Undeliverable("403 Missing Access")
    job = accept(scheduler, new_request())
    await settle(scheduler, job)
    assert scheduler.journal.rows[job.id] == "undeliverable"


async def test_a_delivery_that_breaks_keeps_the_picture_for_the_next_start(running) -> None:
    scheduler, engine, member = running()
    member.fail_deliver = ConnectionResetError("the connection dropped")
    job = accept(scheduler, new_request())
    await settle(scheduler, job)
    assert scheduler.journal.rows[job.id] == "done"  # delivered again after a restart
    assert scheduler.running == set() and scheduler.jobs == {}


async def test_cancel_ends_a_queued_job_at_once_and_is_too_late_once_painted() -> None:
    scheduler, engine, member = make()
    job = accept(scheduler, new_request())
    assert await scheduler.cancel(job) is True
    assert job.state is RequestState.CANCELLED and scheduler.journal.rows[job.id] == "cancelled"
    assert len(scheduler.queue) == 0 and scheduler.queue.active(job.user_id) == 0
    painted = new_request()
    painted.state = RequestState.DONE
    with pytest.raises(TooLate):
        await scheduler.cancel(painted)


async def test_cancel_of_a_running_job_stops_it_and_says_after_how_many_steps(running) -> None:
    async def stops_when_asked(handle):
        await handle.cancelled.wait()
        return StyleResult(IMAGE, 1, 0.2, Losses(1, 1, 1), (), cancelled=True)

    scheduler, engine, member = running(FakeEngine(scripts=[stops_when_asked]))
    job = accept(scheduler, new_request())
    while job.handle is None:
        await asyncio.sleep(0.01)
    assert await scheduler.cancel(job) is False
    await settle(scheduler, job)
    assert member.of(job)[-1] == "✖️ Cancelled after 1 of 30 steps."
    assert scheduler.journal.rows[job.id] == "cancelled"


async def test_drain_puts_a_job_still_running_back_in_the_journal(running) -> None:
    async def until_shutdown(handle):
        await handle.cancelled.wait()
        raise JobCancelled("the job was cancelled because the engine is shutting down")

    scheduler, engine, member = running(FakeEngine(scripts=[until_shutdown]))
    job = accept(scheduler, new_request())
    while job.state is not RequestState.RUNNING:
        await asyncio.sleep(0.01)
    scheduler.stop_accepting()
    await scheduler.drain(0.1)
    assert scheduler.journal.rows[job.id] == "queued"
    await scheduler.close()  # the engine's shutdown stops the job
    await asyncio.sleep(0.05)
    assert scheduler.journal.rows[job.id] == "queued"
    assert [m for m in member.of(job) if m.startswith("❌")] == []


async def test_recovery_requeues_delivers_or_gives_up_on_journaled_jobs(running) -> None:
    scheduler, engine, member = make()
    png = encode_image(IMAGE, "png")

    def stored(job_id: str, state: str, attempts: int = 0, result=None) -> None:
        record = JobRecord(job_id, state, 1, 10, 20, 30, None, 0.0, Params().to_dict(), attempts, 0)
        scheduler.journal.stored[job_id] = StoredJob(record, png, png, result)

    stored("aaaaaaaa", "running", attempts=1)
    stored("bbbbbbbb", "done", result=png)
    stored("cccccccc", "running", attempts=2)
    await scheduler.recover()
    # Delivered and told in the background (a slow upload must not hold up the login).
    await settle(scheduler, scheduler.jobs["bbbbbbbb"])
    rows = scheduler.journal.rows
    assert rows["bbbbbbbb"] == "delivered"
    assert rows["cccccccc"] == "failed"
    told = [w for j, w in member.seen if j == "cccccccc"]
    assert told and "stopped the bot 2 times" in told[0]
    assert list(scheduler.jobs) == ["aaaaaaaa"]
    engine.warm.set()
    scheduler.start()
    await settle(scheduler, scheduler.jobs["aaaaaaaa"])
    assert rows["aaaaaaaa"] == "delivered"
    await scheduler.close()


async def test_a_two_artwork_job_is_recovered_with_both_and_blended_as_asked() -> None:
    scheduler, engine, member = make()
    png = encode_image(IMAGE, "png")
    params = Params(blend=0.25).to_dict()
    record = JobRecord("dddddddd", "queued", 1, 10, 20, 30, None, 0.0, params, 0, 0)
    scheduler.journal.stored["dddddddd"] = StoredJob(record, png, png, None, style2=png)
    await scheduler.recover()
    engine.warm.set()
    scheduler.start()
    job = scheduler.jobs["dddddddd"]
    await settle(scheduler, job)
    assert job.style2 is not None
    assert scheduler.journal.rows["dddddddd"] == "delivered"
    (submitted,) = engine.jobs
    assert len(submitted.styles) == 2 and submitted.options.style_blend == (0.75, 0.25)
    await scheduler.close()


async def test_an_animation_is_recovered_as_an_animation() -> None:
    from nst_engine.clips import Clip

    clip = Clip((IMAGE, IMAGE, IMAGE), (80, 80, 80), 0, "gif")
    engine = FakeEngine()
    member = Member()

    async def decode(data: bytes) -> np.ndarray:
        return IMAGE

    async def decode_content(data: bytes):
        return clip

    scheduler = Scheduler(
        engine,
        Journal(),
        Metrics(),
        member,
        Limits(max_steps=30, job_timeout=60.0),
        queue_limit=10,
        member_limit=5,
        decode=decode,
        decode_content=decode_content,
    )
    png = encode_image(IMAGE, "png")
    record = JobRecord("eeeeeeee", "running", 1, 10, 20, 30, None, 0.0, Params().to_dict(), 0, 0)
    scheduler.journal.stored["eeeeeeee"] = StoredJob(record, b"GIF89a", png, None)
    await scheduler.recover()
    job = scheduler.jobs["eeeeeeee"]
    assert job.clip is clip
    engine.warm.set()
    scheduler.start()
    while not engine.jobs:
        await asyncio.sleep(0.01)
    assert isinstance(engine.jobs[0], AnimationJob) and engine.jobs[0].frames == clip.frames
    await scheduler.close()
