"""The job lifecycle: its transition table, and one move updating memory, journal and metrics."""

from __future__ import annotations

import numpy as np
import pytest

from bot.cogs.stylize.fair_queue import FairQueue
from bot.cogs.stylize.lifecycle import (
    ENDINGS,
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
    RequestState,
    legal_moves,
)
from bot.cogs.stylize.request import Params, Request
from bot.metrics import Metrics
from tests.bot.fakes import FakeJournal, metric

S = RequestState


def request(user_id: int = 1) -> Request:
    image = np.zeros((8, 8, 3), np.uint8)
    return Request(None, Params(), image, image, user_id, 10, 20, 30, "token", 0.0)


@pytest.fixture
def board() -> Lifecycle:
    queue: FairQueue[Request] = FairQueue(total_limit=10, owner_limit=3)
    return Lifecycle(queue, FakeJournal(), Metrics())


def test_the_table_names_every_state_and_endings_are_final() -> None:
    assert set(TRANSITIONS) == set(RequestState)
    for ending in ENDINGS:
        assert TRANSITIONS[ending] == frozenset()
    # Every state but the endings leads somewhere, and every state can be reached from queued.
    reachable, frontier = {S.QUEUED}, [S.QUEUED]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in reachable:
                reachable.add(new)
                frontier.append(new)
    assert reachable == set(RequestState)


@pytest.mark.parametrize("old,new", sorted(set((o, n) for o in S for n in S) - set(legal_moves())))
async def test_an_illegal_move_raises_and_changes_nothing(board: Lifecycle, old, new) -> None:
    job = request()
    job.state = old
    board.track(job)
    with pytest.raises(IllegalTransition, match=f"from {old} to {new}"):
        await board.move(job, new)
    assert job.state is old
    assert board.journal.rows == {}


async def test_a_job_from_queued_to_delivered_counts_once_and_frees_its_slot(board) -> None:
    job = request()
    board.queue.push(job.user_id, job)
    board.track(job)
    assert board.queue.pop()[1] is job
    job.started_at = job.queued_at + 2.0
    await board.move(job, S.RUNNING)
    assert board.running == {job} and board.queue.active(job.user_id) == 1
    assert board.journal.rows[job.id] == "running" and board.journal.attempts[job.id] == 1
    await board.move(job, S.DONE, png=b"png", seconds=4.0, steps=40)
    assert board.running == set() and board.queue.active(job.user_id) == 0
    assert board.journal.rows[job.id] == "done"
    assert job.id in board.jobs  # not delivered yet
    await board.move(job, S.DELIVERED)
    assert job.id not in board.jobs and board.journal.rows[job.id] == "delivered"
    m = board.metrics
    assert metric(m, "nst_jobs_finished_total") == 1
    assert metric(m, "nst_queue_wait_seconds_sum") == pytest.approx(2.0)
    assert metric(m, "nst_run_seconds_sum") == pytest.approx(4.0)
    assert metric(m, "nst_steps_per_second") == pytest.approx(10.0)


@pytest.mark.parametrize(
    "ending,counter",
    [
        (S.FAILED, "nst_jobs_failed_total"),
        (S.TIMED_OUT, "nst_jobs_failed_total"),
        (S.CANCELLED, "nst_jobs_cancelled_total"),
    ],
)
async def test_every_ending_of_a_running_job_frees_the_slot_journals_and_counts(
    board, ending, counter
) -> None:
    job = request()
    board.track(job)
    job.started_at = job.queued_at
    await board.move(job, S.RUNNING)
    await board.move(job, ending)
    assert board.running == set() and board.jobs == {}
    assert board.queue.active(job.user_id) == 0
    assert board.journal.rows[job.id] == ending.value
    assert metric(board.metrics, counter) == 1


async def test_a_journal_that_cannot_be_written_does_not_stop_the_move(board, caplog) -> None:
    job = request()
    board.track(job)
    job.started_at = job.queued_at
    await board.move(job, S.RUNNING)
    board.journal.fail = RuntimeError("database is locked")
    await board.move(job, S.DONE, png=b"png", seconds=1.0, steps=1)
    assert job.state is S.DONE and board.running == set()
    assert "could not journal running → done: database is locked" in caplog.text


async def test_a_shutdown_puts_a_running_job_back_in_the_journal_queue(board) -> None:
    job = request()
    board.track(job)
    job.started_at = job.queued_at
    await board.move(job, S.RUNNING)
    await board.move(job, S.QUEUED)
    assert board.journal.rows[job.id] == "queued"
    assert board.running == set() and board.jobs == {}
    assert metric(board.metrics, "nst_jobs_failed_total") == 0


def test_abandon_frees_whatever_the_job_held(board) -> None:
    job = request()
    board.queue.push(job.user_id, job)
    board.track(job)
    board.abandon(job)
    assert board.jobs == {} and len(board.queue) == 0 and board.queue.active(job.user_id) == 0
