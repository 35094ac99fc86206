"""One Ray actor of `nst_engine.ray.backend.RayBackend`, as a slot of the job runner
(`nst_engine.runner.Slot`): the actor, the monitor that keeps it, and the job it runs.

- The actor (`nst_engine.ray.actor.EngineActor`) loads VGG19 once on its node. It is *not*
  detached: this process (Ray's driver) owns it, and Ray ends it when the driver disconnects or
  dies, however it dies, so a killed bot leaves no actor holding a GPU.
- A job goes to Ray's object store as one `nst_engine.messages.JobOrder`; the actor runs it in
  a thread and the slot long-polls it for the job's messages (a poll answers as soon as one is
  there): progress as it is made, then the result, once. Plain actor calls, so the same code
  runs through Ray Client (``ray://``), which cannot stream. Cancel is an actor call, read by
  the job before every step.
- Faults: Ray restarts an actor whose process or node died (``max_restarts=-1``) but never
  re-runs its task (``max_task_retries=0``): the job fails with `WorkerDied` and the caller
  decides (the bot retries it once). The monitor probes the actor every second, so one that
  died idle is noticed too, and replaces one that is gone for good or cannot load the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nst_engine.errors import NSTError, WeightsError
from nst_engine.messages import Failed, Finished, JobOrder, Progressed
from nst_engine.options import Progress
from nst_engine.runner import WorkerLost
from nst_engine.worker import WorkerConfig

if TYPE_CHECKING:
    from nst_engine.ray.backend import RayBackend

log = logging.getLogger(__name__)

# Seconds between probes of a ready actor, and between probes of one Ray is restarting.
_PROBE_INTERVAL = 1.0
_RESTART_POLL = 0.5
# Seconds before warning that an actor has not started (no free GPU or CPUs for it, or a slow
# first download of the weights), and again after each as long.
_PENDING_WARNING = 60.0
# Seconds before replacing an actor that cannot load the model (another node may be able to).
_BROKEN_RETRY = 30.0
# Seconds a poll for a job's messages waits for the first before the next poll.
_POLL = 2.0


@dataclass(eq=False)
class ActorSlot:
    """One Ray actor that holds a loaded VGG19 and runs one job at a time."""

    index: int
    # The ``ray`` module.
    ray: Any
    # What the actor loads, and the Ray resources it takes (``num_gpus``, ``num_cpus``).
    config: WorkerConfig
    resources: dict[str, Any]
    # What the cluster must have free for the actor ("GPU", "2 CPUs"), for the operator.
    needs: str
    # The backend: told when the actor is ready or not, or cannot load the model, and whether
    # it is closing.
    runner: RayBackend
    # Resolved when the backend's first actor is ready; failed by an actor that cannot load
    # the model before that.
    first_ready: asyncio.Future[None]
    actor: Any = None
    pid: int | None = None
    node: str | None = None
    node_id: str | None = None
    ready: bool = False
    # Set to probe the actor at once (its job just failed with it).
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    monitor: asyncio.Task[None] | None = None
    # The ticket of the last job asked to stop.
    stopping: int | None = None
    # The process of an actor killed for Ray to restart (a job overran, or it outgrew its
    # memory bound): until the kill reaches it, it may still answer a probe, and must not be
    # taken as ready again.
    killed_pid: int | None = None

    def __str__(self) -> str:
        return f"actor {self.index} (pid {self.pid} on {self.node})"

    async def start(self) -> None:
        self.begin()

    def begin(self) -> None:
        """Ask Ray for the actor; the monitor marks it ready once it has loaded the model."""
        self._new_actor()
        self.monitor = asyncio.create_task(self._monitor(), name=f"nst-actor-{self.index}")

    async def run(self, order: JobOrder, publish: Callable[[Progress], None]) -> Any:
        """Hand a job to the actor and follow its messages until its result or error."""
        ray, actor = self.ray, self.actor
        try:
            # Into the object store, off the event loop (a large photo takes a moment).
            ref = await asyncio.to_thread(ray.put, order)
            await _answer(actor.start.remote(ref))
            if self.stopping == order.ticket:  # cancelled before the actor had it
                actor.cancel.remote(order.ticket)
            answer = await _follow(actor, order, publish)
        except ray.exceptions.RayError as err:
            if not self.runner.closed:  # else ended by `close`: nothing to tell
                log.warning("job %s: its actor %d was lost: %s", order.job.job_id, self.index, err)
                self._lost(one_line(err))
            raise WorkerLost(_how_lost(ray, err)) from None
        if answer.outgrown and not self.runner.closed:
            # Before `run` returns, so that the backend gives it no other job meanwhile.
            log.info("replacing %s: %s", self, answer.outgrown)
            self._lost("replaced: " + answer.outgrown)
            self._kill(restart=True)
        if isinstance(answer, Failed):
            raise answer.exception()
        return answer.result

    def cancel(self, ticket: int) -> None:
        self.stopping = ticket
        with contextlib.suppress(Exception):  # a lost actor: its job fails anyway
            self.actor.cancel.remote(ticket)

    def kill(self) -> None:
        self._lost("killed: its job did not stop in time")
        self._kill(restart=not self.runner.closed)

    async def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.cancel()
            await asyncio.gather(self.monitor, return_exceptions=True)
        self._kill(restart=False)
        self.runner.set_ready(self, False)

    async def probe(self) -> tuple[int, tuple[str, str], Exception | None]:
        """The actor's answer to `ready`, warning while one that is starting keeps us waiting."""
        answer = asyncio.ensure_future(_answer(self.actor.ready.remote()))
        waited = 0.0
        while not self.ready:
            done, _ = await asyncio.wait({answer}, timeout=_PENDING_WARNING)
            if done:
                break
            waited += _PENDING_WARNING
            log.warning(
                "actor %d has not started after %.0f s: it is loading the model, or the "
                "cluster has no free %s for it",
                self.index,
                waited,
                self.needs,
            )
        return await answer

    def _new_actor(self) -> None:
        from nst_engine.ray.actor import MAX_CONCURRENCY, EngineActor

        remote = self.ray.remote(EngineActor).options(
            # Restarted by Ray wherever it can run again, forever; its tasks are never re-run.
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=MAX_CONCURRENCY,
            lifetime=None,  # not detached: owned by this driver, it ends when we do
            **self.resources,
        )
        self.actor = remote.remote(self.config)

    async def _monitor(self) -> None:
        """Probe the actor for as long as the backend is open: mark it ready when its model is
        loaded (again, after a restart), lost while Ray restarts it, and replace it if it is
        gone for good or cannot load the model."""
        ray = self.ray
        while not self.runner.closed:
            try:
                pid, (node, node_id), broken = await self.probe()
            except ray.exceptions.ActorDiedError as err:
                # Gone for good (killed, or its owner lost it): start another.
                self._lost(one_line(err))
                self._new_actor()
                continue
            except ray.exceptions.RayActorError as err:
                # Restarting, or its node is gone: Ray brings it back when it can.
                self._lost(one_line(err))
                await asyncio.sleep(_RESTART_POLL)
                continue
            except Exception as err:  # noqa: BLE001 - the monitor must outlive any one probe
                # Anything else (through Ray Client, a dropped connection): not usable until a
                # probe is answered again.
                log.warning(
                    "actor %d: its probe failed (%s); probing again", self.index, one_line(err)
                )
                self._lost(one_line(err))
                await asyncio.sleep(_RESTART_POLL)
                continue
            if broken is not None:
                message = (
                    broken
                    if isinstance(broken, NSTError)
                    else WeightsError(f"worker {self.index} could not load the model ({broken})")
                )
                if not self.first_ready.done():
                    self.first_ready.set_exception(message)
                    return
                if self.runner.actor_broken(self, message):
                    return
                log.error(
                    "actor %d on %s cannot load the model (%s); trying another in %g s",
                    self.index,
                    node,
                    message,
                    _BROKEN_RETRY,
                )
                self._kill(restart=False)
                await asyncio.sleep(_BROKEN_RETRY)
                self._new_actor()
                continue
            if pid == self.killed_pid:
                # The killed process answered before Ray's kill reached it.
                await asyncio.sleep(_RESTART_POLL)
                continue
            if not self.ready or self.pid != pid:
                self.killed_pid = None
                self.pid, self.node, self.node_id = pid, node, node_id
                log.info(
                    "actor %d ready (pid %d on %s, node %s)", self.index, pid, node, node_id[:8]
                )
                if not self.first_ready.done():
                    self.first_ready.set_result(None)
                self.runner.set_ready(self, True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), _PROBE_INTERVAL)
            self.wake.clear()

    def _lost(self, why: str) -> None:
        """The actor is not usable until Ray has restarted it."""
        if self.ready:
            log.warning("actor %d (pid %s on %s) lost: %s", self.index, self.pid, self.node, why)
            self.runner.set_ready(self, False)
        self.wake.set()

    def _kill(self, *, restart: bool) -> None:
        if restart:
            self.killed_pid = self.pid
        if self.actor is not None:
            with contextlib.suppress(Exception):
                self.ray.kill(self.actor, no_restart=not restart)


async def _follow(
    actor: Any, order: JobOrder, publish: Callable[[Progress], None]
) -> Finished | Failed:
    """Publish a job's progress as its actor reports it; its last message, the result or error."""
    while True:
        for message in await _answer(actor.messages.remote(order.ticket, _POLL)):
            if isinstance(message, Progressed):
                publish(message.progress)
            elif isinstance(message, Finished | Failed):
                return message
            else:  # UnknownJob: Ray restarted the actor between two polls
                raise WorkerLost(
                    f"its Ray actor was restarted and no longer knows job {order.ticket}"
                )


async def _answer(ref: Any) -> Any:
    """The value of a Ray call, awaited without blocking the event loop (also through Ray
    Client, whose references are not awaitable). A caller that stops waiting leaves the call's
    future alone: Ray Client fails in its own thread when it answers a cancelled one."""
    future = asyncio.wrap_future(ref.future())
    future.add_done_callback(_retrieve)
    return await asyncio.shield(future)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Take a finished call's error, so that one nobody waits for any more is not logged."""
    if not future.cancelled():
        future.exception()


def _how_lost(ray: Any, err: BaseException) -> str:
    if isinstance(err, ray.exceptions.ActorUnavailableError):
        return "its Ray actor's process or node was lost"
    if isinstance(err, ray.exceptions.RayActorError):
        return "its Ray actor died"
    return f"Ray lost it: {type(err).__name__}"


def one_line(err: BaseException) -> str:
    """The first line of an error's message (Ray's run to many lines); its last instead when
    the first only introduces the rest ("Initialization failure from server:", a traceback)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[-1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
