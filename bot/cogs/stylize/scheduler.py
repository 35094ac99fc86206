"""The scheduler: the fair queue, the dispatcher, restart recovery and the drain on shutdown.

It knows no Discord types: it hands jobs to the engine backend, moves them through their
`Lifecycle`, and tells a `Notifier` (the Discord side, `delivery.py`) what members should see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import numpy as np

from bot.cogs.stylize.continuing import journaled_parent
from bot.cogs.stylize.contracts import Journal, Notifier, Outcome, Undeliverable
from bot.cogs.stylize.engine_job import Limits, Plan, engine_job, picture_parameters, plan
from bot.cogs.stylize.errors import ShuttingDown, TooLate
from bot.cogs.stylize.fair_queue import FairQueue
from bot.cogs.stylize.lifecycle import Lifecycle, RequestState
from bot.cogs.stylize.request import Request
from bot.cogs.stylize.results import cancelled_text, encode_result, figures
from bot.errors import UserFacingError
from bot.logs import job_id_var
from nst_engine.backend import Backend, Handle, JobTimeout, WorkerDied
from nst_engine.clips import Clip
from nst_engine.errors import NSTError
from nst_engine.options import StyleResult

log = logging.getLogger(__name__)

# A job that was running when the process died this many times is not tried again.
MAX_ATTEMPTS = 2
# A painted job whose delivery failed for a passing reason (Discord's 5xx, a rate limit, a
# dropped connection) is tried again at the next start, up to this many tries in all.
MAX_DELIVERIES = 3


class Scheduler:
    """Runs accepted jobs on the engine, fairly, and sees every one of them to an ending."""

    def __init__(
        self,
        backend: Backend,
        journal: Journal,
        metrics: Any,
        notifier: Notifier,
        limits: Limits,
        *,
        queue_limit: int,
        member_limit: int,
        decode: Callable[[bytes], Awaitable[np.ndarray]],
        decode_content: Callable[[bytes], Awaitable[np.ndarray | Clip]] | None = None,
    ) -> None:
        self.backend = backend
        self.journal = journal
        self.notifier = notifier
        self.limits = limits
        self.queue: FairQueue[Request] = FairQueue(
            total_limit=queue_limit, owner_limit=member_limit
        )
        self.lifecycle: Lifecycle[Request] = Lifecycle(self.queue, journal, metrics)
        self._decode = decode
        self._decode_content = decode_content or decode
        # Set on SIGTERM: new requests are refused while running jobs finish.
        self.draining = False
        # Set whenever the queue order changed, for the position refresher.
        self.moved = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._dispatcher: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    # ---- what the commands and buttons use -------------------------------------------------

    @property
    def running(self) -> set[Request]:
        return self.lifecycle.running

    @property
    def jobs(self) -> dict[str, Request]:
        return self.lifecycle.jobs

    def admit(self) -> None:
        """Raises ShuttingDown while draining."""
        if self.draining:
            raise ShuttingDown()

    def enqueue(self, request: Request) -> int:
        """Queue a journaled request whose place was reserved; its position (1 = next)."""
        position = self.queue.push(request.user_id, request, reserved=True)
        request.queued_at = time.monotonic()  # after the journal write: waiting starts now
        request.shown_position = position
        self.lifecycle.track(request)
        return position

    def waiting(self) -> list[tuple[Request, int]]:
        """Queued requests and their positions, next first."""
        out = []
        for request in list(self.jobs.values()):
            if request.state is RequestState.QUEUED:
                position = self.queue.position(request)
                if position is not None:
                    out.append((request, position))
        return sorted(out, key=lambda pair: pair[1])

    async def cancel(self, request: Request) -> bool:
        """Cancel a job: True if it was still queued (it has ended), False if it was running
        (it ends between two steps). Raises TooLate once it has painted."""
        if request.state is RequestState.DONE:
            raise TooLate()
        request.cancel_requested = True
        if request.state is RequestState.QUEUED and self.queue.remove(request):
            await self.lifecycle.move(request, RequestState.CANCELLED)
            self.moved.set()
            return True
        if request.handle is not None:
            request.handle.cancel()
        return False

    # ---- lifecycle of the scheduler itself -------------------------------------------------

    def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="nst-dispatcher")

    async def close(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        for request in list(self.running):
            if request.handle is not None:
                request.handle.cancel()

    def stop_accepting(self) -> None:
        self.draining = True

    async def drain(self, grace: float) -> None:
        """Stop taking requests and give running jobs up to ``grace`` seconds to finish.

        Whatever is still queued or running stays in the journal and runs after a restart.
        """
        self.draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        self.lifecycle.stopping = True
        for request in list(self.running):
            await self.lifecycle.move(request, RequestState.QUEUED)
        log.info(
            "shutting down with %d running and %d queued job(s) journaled",
            len(self.running),
            len(self.queue),
        )

    async def recover(self) -> None:
        """Run again, or deliver, the jobs a stopped process had accepted."""
        for record in await self.journal.pending():
            job_id_var.set(record.id)
            try:
                await self._recover_one(record)
            except Exception:  # noqa: BLE001 - one bad job must not stop the others
                log.exception("a journaled job could not be recovered")
        job_id_var.set("-")
        self.lifecycle.changed.set()
        # The position refresher's next pass tells each re-queued member that their picture
        # will be painted again (over the old "painting… N%"), without holding up the start.
        self.moved.set()

    async def _recover_one(self, record) -> None:
        stored = await self.journal.load(record.id)
        if stored is None:
            return
        try:
            content = await self._decode_content(stored.content)
            style = await self._decode(stored.style)
            style2 = None if stored.style2 is None else await self._decode(stored.style2)
        except (NSTError, UserFacingError) as err:
            log.warning("journaled job cannot be recovered: %s", err)
            await self.journal.set_state(record.id, RequestState.FAILED.value)
            return
        clip = content if isinstance(content, Clip) else None
        if clip is not None:
            content = clip.frames[0]
        parent = await journaled_parent(self.journal, record)
        request = Request.from_record(record, content, style, style2, clip, parent)
        self.lifecycle.track(request)
        if request.state is RequestState.DONE:
            if stored.result is None:
                self.lifecycle.abandon(request)
                await self.journal.set_state(record.id, RequestState.FAILED.value)
                return
            log.info("delivering a result finished before the restart")
            # In the background: the bot logs in after this, and a slow Discord upload must
            # not keep it off the gateway.
            self._in_background(self._deliver(request, stored.result, None), request)
            return
        if record.attempts >= MAX_ATTEMPTS:
            await self.lifecycle.move(request, RequestState.FAILED)
            self._in_background(
                self._tell(
                    request,
                    f"❌ {request.mention}, your picture stopped the bot {record.attempts} times; "
                    "try a smaller size or other images.",
                ),
                request,
            )
            return
        log.info("re-queued after a restart (was %s)", record.state)
        self.queue.push(record.user_id, request, force=True)

    def _in_background(self, work: Coroutine[Any, Any, None], request: Request) -> None:
        task = asyncio.create_task(work, name=f"nst-job-{request.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- the dispatcher ----------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        # The bot logs in (and recovers journaled jobs) before the engine has loaded its model.
        await self.backend.wait_warm()
        changed = self.lifecycle.changed
        while True:
            await changed.wait()
            changed.clear()
            while len(self.running) < self.backend.size and (popped := self.queue.pop()):
                _owner, request = popped
                request.started_at = time.monotonic()
                await self.lifecycle.move(request, RequestState.RUNNING)
                self._idle.clear()
                self._in_background(self._run(request), request)
            self.moved.set()

    async def _run(self, request: Request) -> None:
        """One job from a worker slot to its ending; whatever happens, it ends and frees the
        slot exactly once."""
        job_id_var.set(request.id)
        try:
            outcome = await self._outcome(request)
            if self.lifecycle.stopping and request.state is not RequestState.RUNNING:
                log.info("stopped by the shutdown; it stays journaled for the next start")
            elif outcome.result is not None:
                data, request.note = await asyncio.to_thread(
                    encode_result, request, outcome.result, outcome.parameters
                )
                made = figures(outcome.result)
                await self.lifecycle.move(
                    request, RequestState.DONE, png=data, seconds=made.seconds, steps=made.steps
                )
                await self._deliver(request, data, outcome.result)
            else:
                await self.lifecycle.move(request, outcome.state)
                await self._tell(request, outcome.text)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a bug must never leak the slot
            log.exception("ending the job failed")
        finally:
            if request.id in self.jobs:
                # Still tracked after an unexpected error: free its slot; the journal keeps
                # the job for the next start.
                self.lifecycle.abandon(request)
            if not self.running:
                self._idle.set()

    async def _outcome(self, request: Request) -> Outcome:
        """Paint the request; every exception becomes an ending with a line for the member."""
        try:
            planned = plan(request, self.limits)
            result = await self._paint_retrying(request, planned)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is an ending with a line
            return failed(request, err)
        if result.cancelled:
            return Outcome(RequestState.CANCELLED, cancelled_text(result, planned.options))
        weights = result.weights
        return Outcome(
            RequestState.DONE,
            result=result,
            parameters=picture_parameters(request, planned.options, weights),
        )

    async def _paint_retrying(self, request: Request, planned: Plan) -> StyleResult:
        try:
            return await self._paint(request, planned)
        except WorkerDied as err:
            # A crashed worker may be bad luck (another job's memory, a host hiccup).
            log.warning("%s; retrying once on a fresh worker", err)
            try:
                return await self._paint(request, planned)
            except WorkerDied as again:
                raise WorkerDied(
                    f"{again}, twice; if the picture is large, try a smaller size"
                ) from None

    async def _paint(self, request: Request, planned: Plan) -> StyleResult:
        handle = self.backend.submit(engine_job(request, planned, self.limits))
        request.handle = handle
        if request.cancel_requested:
            handle.cancel()
        await self.notifier.started(request)
        waits = asyncio.create_task(self._tell_worker_starts(request, handle))
        try:
            async for progress in handle.events():
                request.percent = int(100 * progress.step / progress.total)
                await self.notifier.progress(request, progress)
            return await handle.result()
        finally:
            waits.cancel()

    async def _tell_worker_starts(self, request: Request, handle: Handle) -> None:
        """While the job waits for a worker being started for it, say so (not a silent queue)."""
        try:
            async for note in handle.worker_starts():
                await self.notifier.starting_worker(request, note.seconds)
        except Exception as err:  # noqa: BLE001 - a lost status edit must not end the job
            log.warning("could not say that a worker is starting: %s", err)

    async def _deliver(self, request: Request, png: bytes, result: StyleResult | None) -> None:
        tries = await self._delivery_tried(request)
        if tries > MAX_DELIVERIES:
            log.warning("the picture was not delivered in %d tries; giving up", MAX_DELIVERIES)
            await self._undeliverable(
                request, f"it could not be delivered in {MAX_DELIVERIES} tries; run /stylize again"
            )
            return
        try:
            await self.notifier.deliver(request, png, result)
        except Undeliverable as err:
            log.warning("the picture could not be delivered (%s)", err)
            await self._undeliverable(request, err.why)
            return
        except Exception:  # noqa: BLE001 - journaled as done: the next start delivers it
            log.exception("delivering the picture failed; it is kept for the next start")
            self.lifecycle.abandon(request)
            return
        await self.lifecycle.move(request, RequestState.DELIVERED)
        if result is not None:
            made = figures(result)
            log.info("delivered %d steps in %.1fs", made.steps, made.seconds)

    async def _delivery_tried(self, request: Request) -> int:
        """This try's number (1 for the first); a journal that can't count lets it try."""
        try:
            return await self.journal.delivery_tried(request.id)
        except Exception as err:  # noqa: BLE001 - delivering matters more than the count
            log.error("could not journal a delivery try: %s", err)
            return 1

    async def _undeliverable(self, request: Request, why: str) -> None:
        await self.lifecycle.move(request, RequestState.UNDELIVERABLE)
        await self._tell(request, f"❌ {request.mention}, your picture was painted but {why}.")

    async def _tell(self, request: Request, text: str) -> None:
        try:
            await self.notifier.ended(request, text)
        except Exception as err:  # noqa: BLE001 - the job has ended either way
            log.warning("could not tell the member how their job ended: %s", err)


def failed(request: Request, err: Exception) -> Outcome:
    """The ending of a run that raised ``err`` (called while handling it): the engine's and
    the options' errors are shown; anything else is logged with an id the member can quote."""
    if isinstance(err, JobTimeout):
        log.warning("job timed out: %s", err)
        return Outcome(RequestState.TIMED_OUT, f"⏱️ {request.mention}, that took too long: {err}")
    if isinstance(err, NSTError | ValueError):
        log.warning("job failed: %s", err)
        return Outcome(RequestState.FAILED, f"❌ {request.mention}, that didn't work: {err}")
    error_id = uuid.uuid4().hex[:8]
    log.exception("job crashed (error id %s)", error_id)
    return Outcome(
        RequestState.FAILED,
        f"❌ {request.mention}, something went wrong on our side (error id `{error_id}`).",
    )
