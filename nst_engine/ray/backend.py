"""The engine on a Ray cluster, behind the same `nst_engine.backend.Backend` as the local pool.

    async with RayBackend("imagenet", address="head-host:6379") as backend:
        handle = backend.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():     # throttled; some carry a preview
            ...
        result = await handle.result()             # StyleResult, or an NSTError subclass

Design:

- One Ray actor per worker (`nst_engine.ray.actor.EngineActor`), each loading VGG19 once on its
  node (the weights are resolved there: a path, or that node's Keras cache). Where the cluster
  has GPUs, each actor takes one (``num_gpus=1``); else ``cpus_per_worker`` CPUs.
- The actors are *not* detached: this process (Ray's driver) owns them, and Ray ends them when
  the driver disconnects or dies, however it dies, so a killed bot leaves no actor holding a GPU.
- Jobs wait in a FIFO here and go to an idle actor; the handles are the local pool's
  (`nst_engine.pool.JobHandle`). The pictures go to Ray's object store; the actor runs a job
  in a thread and the backend long-polls it for the worker's messages (a poll answers as soon
  as one is there): progress as it is made, then the result, once. Plain actor calls, so the
  same code runs through Ray Client (``ray://``), which cannot stream. Cancel is an actor call
  read before every step; the time limit is checked in the actor before every step, and an
  actor whose job overruns it by far is killed.
- Connecting: ``address`` None starts a one-host Ray here, on loopback only, with a guard
  process (`nst_engine.ray.guard`) that ends what of it outlives us; ``HOST:PORT`` or
  ``auto`` joins a cluster of which this host is a node (the bot is a Ray driver there);
  ``ray://HOST:PORT`` connects through the head's Ray Client server, from a host that is not
  a node (the client's Ray and Python versions must match the cluster's).
- Faults: Ray restarts an actor whose process or node died (``max_restarts=-1``) but never
  re-runs its task (``max_task_retries=0``): the job fails with `WorkerDied` and the caller
  decides (the bot retries it once). A monitor per actor probes it every second, so one that
  died idle is noticed too. `warm` is true while at least one actor is ready: on a cluster, a
  lost node slows the bot down but does not make it unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from nst_engine import worker
from nst_engine.backend import Job, JobCancelled, SlotStatus, WorkerDied, steps_of
from nst_engine.errors import NSTError, WeightsError
from nst_engine.pool import JobHandle, _job_error, _RemoteTraceback
from nst_engine.processes import descendants

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[ray]'"
# Seconds between probes of a ready actor, and between probes of one Ray is restarting.
_PROBE_INTERVAL = 1.0
_RESTART_POLL = 0.5
# Seconds before warning that an actor has not started (no free GPU or CPUs for it, or a slow
# first download of the weights), and again after each as long.
_PENDING_WARNING = 60.0
# Seconds before replacing an actor that cannot load the model (another node may be able to).
_BROKEN_RETRY = 30.0
# Seconds past a job's time limit before its actor is killed (a step is never this long).
_KILL_GRACE = 30.0
# Seconds `close` lets running jobs take to stop between steps before giving up on them.
_CLOSE_GRACE = 10.0
# Seconds a poll for a job's messages waits for the first before the next poll.
_POLL = 2.0
# Tries at connecting through Ray Client, and seconds between them (see `_join`).
_CLIENT_ATTEMPTS = 4
_CLIENT_RETRY_DELAY = 1.0
# Seconds to wait for the cluster's address to accept a connection.
_CONNECT_TIMEOUT = 10.0

_SHUTDOWN = "the job was cancelled because the engine is shutting down"


class RayUnavailable(NSTError):
    """Ray is not installed, or the cluster cannot be reached; one line for the operator."""


def import_ray(*, local: bool = False) -> Any:
    """The ``ray`` module (RayUnavailable if it is not installed). ``local``: this process is
    about to start a single-host Ray, which must then listen on loopback only."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        # Read by Ray at import: every Ray process of a one-host cluster binds 127.0.0.1.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"Ray is not installed; install it with {INSTALL_HINT}") from None
    return ray


@dataclass(eq=False)
class _Slot:
    """One actor and the job it is running."""

    index: int
    actor: Any = None
    pid: int | None = None
    node: str | None = None
    node_id: str | None = None
    ready: bool = False
    job: JobHandle | None = None
    # Set to probe the actor at once (its job just failed with it).
    wake: asyncio.Event | None = None

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None


class RayBackend(SlotStatus):
    """Ray actors that each hold a loaded VGG19 and run one job at a time."""

    def __init__(
        self,
        weights: str,
        workers: int | None = None,
        *,
        address: str | None = None,
        cpus_per_worker: int = 2,
        preview_interval: float = 3.0,
        progress_interval: float = 0.5,
        seed: int = 0,
        namespace: str = "nst-bot",
    ) -> None:
        """``address``: an existing cluster (``HOST:PORT`` or ``auto``) of which this host is a
        node, its Ray Client server (``ray://HOST:PORT``), or None to start a Ray on this host,
        listening on loopback only. ``workers`` defaults to one per GPU in the cluster, else
        one per ``cpus_per_worker`` CPUs."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be at least 1, not {cpus_per_worker}")
        if preview_interval < 0 or progress_interval < 0:
            raise ValueError("preview_interval and progress_interval must be ≥ 0 seconds")
        self.weights = weights
        self.workers = workers
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.preview_interval = preview_interval
        self.progress_interval = progress_interval
        self.seed = seed
        self.namespace = namespace
        # Whether the actors each take a GPU; known once connected.
        self.on_gpus = False
        self._ray: Any = None
        self._connected = False
        self._slots: list[_Slot] = []
        self._queue: deque[JobHandle] = deque()
        self._running: dict[int, JobHandle] = {}
        self._tickets = itertools.count(1)
        self._started = False
        self._closed = False
        self._warm_or_closed = asyncio.Event()
        self._first_ready: asyncio.Future[None] | None = None
        self._monitors: set[asyncio.Task[None]] = set()
        self._jobs: set[asyncio.Task[None]] = set()
        # With Ray started here: the guard that ends what of it outlives us (see `guard`).
        self._guard: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the cluster (or start Ray here), start the actors, and return once one has
        loaded the model; the others join as they load.

        Raises:
            RayUnavailable: Ray is not installed, or the cluster cannot be reached.
            WeightsError: An actor could not load the model.
        """
        if self._started:
            raise RuntimeError("RayBackend.start was called twice")
        self._started = True
        started = time.perf_counter()
        self._ray = import_ray(local=self.address is None)
        try:
            resources = await asyncio.to_thread(self._connect)
            actor_options, count = self._plan(resources)
            self._first_ready = asyncio.get_running_loop().create_future()
            for index in range(count):
                slot = _Slot(index, wake=asyncio.Event())
                self._slots.append(slot)
                self._new_actor(slot, actor_options)
                self._spawn(self._monitor(slot, actor_options), self._monitors)
            await self._first_ready
        except BaseException:
            await self.close()
            raise
        log.info(
            "Ray backend ready: %d actor(s) (%s each) with %s weights; the first in %.1fs",
            len(self._slots),
            "1 GPU" if self.on_gpus else f"{self.cpus_per_worker} CPU(s)",
            self.weights,
            time.perf_counter() - started,
        )

    def _connect(self) -> dict[str, float]:
        """Join the cluster (in a thread: it takes seconds) and read its resources."""
        ray = self._ray
        if self.address not in (None, "auto"):
            check_reachable(self.address)
        if ray.is_initialized():
            raise RuntimeError("Ray is already initialised in this process")
        # ray.init sets a SIGTERM handler from the main thread only; the bot has its own.
        ray_log = logging.getLogger("ray._private.worker")
        if not any(isinstance(f, _NoSigtermNotice) for f in ray_log.filters):
            ray_log.addFilter(_NoSigtermNotice())
        try:
            if self.address is None:
                before = set(descendants([os.getpid()]))
                ray.init(
                    _node_ip_address="127.0.0.1",
                    include_dashboard=False,
                    namespace=self.namespace,
                    logging_level=logging.WARNING,
                )
                self._guard = _start_guard(sorted(set(descendants([os.getpid()])) - before))
            else:
                self._join()
        except Exception as err:  # noqa: BLE001 - Ray raises many kinds; one line for the operator
            # A failed ray.init can leave this process half in Ray Client mode, where a later
            # ray.init fails in odd ways: leave nothing behind.
            with contextlib.suppress(Exception):
                ray.shutdown()
            if self.address is None:
                message = f"Ray could not be started on this host ({_line(err)})"
            else:
                message = f"the Ray cluster at {self.address} cannot be reached ({_line(err)})"
            raise RayUnavailable(message) from err
        self._connected = True
        return ray.cluster_resources()

    def _join(self) -> None:
        """ray.init for an existing cluster. Through Ray Client, the head starts a server
        process for each client, and that start sometimes fails at once (it forks while gRPC's
        threads are busy; seen here in a few of a dozen starts, more under load): try again,
        a few times, before telling the operator."""
        ray = self._ray
        attempts = _CLIENT_ATTEMPTS if self.address.startswith("ray://") else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(
                    address=self.address, namespace=self.namespace, logging_level=logging.WARNING
                )
                return
            except ConnectionAbortedError as err:
                if attempt == attempts:
                    raise
                with contextlib.suppress(Exception):
                    ray.shutdown()
                log.warning(
                    "Ray Client at %s: %s; trying again (%d of %d)",
                    self.address,
                    _line(err),
                    attempt + 1,
                    attempts,
                )
                time.sleep(_CLIENT_RETRY_DELAY)

    def _plan(self, resources: dict[str, float]) -> tuple[dict[str, Any], int]:
        """Each actor's resources, and how many actors."""
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        self.on_gpus = gpus > 0
        if self.on_gpus:
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
            threads = None
            default = gpus
        else:
            options = {"num_cpus": self.cpus_per_worker}
            threads = self.cpus_per_worker
            default = max(1, cpus // self.cpus_per_worker)
        config = worker.WorkerConfig(
            weights=self.weights,
            seed=self.seed,
            gpu=None,  # the actor names the GPU Ray gives it
            cpu_threads=threads,
            preview_interval=self.preview_interval,
            progress_interval=self.progress_interval,
        )
        count = self.workers or default
        log.info(
            "Ray cluster: %d CPU(s), %d GPU(s); starting %d actor(s)%s",
            cpus,
            gpus,
            count,
            ""
            if self.workers
            else " (one per GPU)"
            if self.on_gpus
            else f" (one per {self.cpus_per_worker} CPUs)",
        )
        return {**options, "config": config}, count

    async def close(self) -> None:
        """Cancel queued jobs, stop running ones between steps, end the actors and leave the
        cluster (stopping Ray if this process started it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._warm_or_closed.set()
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(RuntimeError("the Ray backend was closed"))
            self._first_ready.exception()  # retrieved: nobody else may wait for it
        for handle in list(self._queue):
            self._cancel(handle)
        for handle in list(self._running.values()):
            self._cancel(handle)
        if self._jobs:
            _, late = await asyncio.wait(set(self._jobs), timeout=_CLOSE_GRACE)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        for task in self._monitors:
            task.cancel()
        await asyncio.gather(*self._monitors, return_exceptions=True)
        for slot in self._slots:
            self._kill(slot, restart=False)
            slot.ready = False
        if self._connected:
            await asyncio.to_thread(self._ray.shutdown)
            self._connected = False
        if self._guard is not None:
            # Ends whatever of the Ray we started outlives its shutdown, then exits.
            self._guard.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self._guard.wait, _CLOSE_GRACE)
            self._guard = None
        log.info("Ray backend closed")

    # -- status ----------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True while at least one actor has the model loaded, until the backend closes."""
        return self._started and not self._closed and any(slot.ready for slot in self._slots)

    def worker_nodes(self) -> list[str]:
        """Node addresses of the actors that are up, in the order of `worker_pids`."""
        return [slot.node or "?" for slot in self._slots if slot.ready and slot.pid is not None]

    def worker_node_ids(self) -> list[str]:
        """Ray's ids of those nodes, in the same order."""
        return [slot.node_id or "?" for slot in self._slots if slot.ready and slot.pid is not None]

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, job: Job) -> JobHandle:
        """Queue a job (never blocks); it starts as soon as an actor is free."""
        if not self._started or self._closed:
            raise RuntimeError("RayBackend.submit needs a started, open backend")
        handle = JobHandle(job, self, next(self._tickets))  # type: ignore[arg-type]
        self._queue.append(handle)
        log.info("job %s queued (%d waiting)", job.job_id, len(self._queue))
        self._dispatch()
        return handle

    def _dispatch(self) -> None:
        while self._queue and not self._closed:
            slot = next((s for s in self._slots if s.idle), None)
            if slot is None:
                return
            handle = self._queue.popleft()
            slot.job = handle
            handle.state = "running"
            handle.started_at = time.time()
            handle.worker_pid = slot.pid
            self._running[handle._ticket] = handle
            log.info(
                "job %s started on actor %d (pid %s on %s)",
                handle.job_id,
                slot.index,
                slot.pid,
                slot.node,
            )
            self._spawn(self._run(slot, handle), self._jobs)

    async def _run(self, slot: _Slot, handle: JobHandle) -> None:
        ray = self._ray
        job = handle.job
        try:
            # Into the object store, off the event loop (a large photo takes a moment).
            content, styles, frames = await asyncio.to_thread(
                lambda: (
                    ray.put(job.content),
                    ray.put(tuple(job.styles)),
                    None if job.frames is None else ray.put(job.frames),
                )
            )
            await _answer(
                slot.actor.start.remote(
                    handle._ticket, content, styles, job.options, job.timeout, frames
                )
            )
            if handle._cancel_requested:
                slot.actor.cancel.remote(handle._ticket)
            limit = None if job.timeout is None else job.timeout + _KILL_GRACE
            try:
                async with asyncio.timeout(limit):
                    result = await _follow(slot.actor, handle)
            except TimeoutError:
                log.warning("job %s overran its time limit; killing its actor", job.job_id)
                self._lost(slot, "killed: its job overran the time limit")
                self._kill(slot, restart=True)
                raise worker.TimedOut("killed") from None
            cancelled = result.cancelled and handle._cancel_requested
            handle._finish("cancelled" if cancelled else "done", result=result)
            log.info(
                "job %s %s: %d steps in %.1fs",
                job.job_id,
                handle.state,
                steps_of(result),
                handle.run_seconds or 0.0,
            )
        except BaseException as err:  # noqa: BLE001 - every outcome must reach the caller
            lost = isinstance(err, ray.exceptions.RayError)
            stopped = isinstance(err, asyncio.CancelledError) or (lost and self._closed)
            if stopped:
                error: BaseException = JobCancelled(_SHUTDOWN)
            elif lost:
                log.warning("job %s: its actor %d was lost: %s", job.job_id, slot.index, err)
                self._lost(slot, _line(err))
                error = WorkerDied(
                    f"the worker running this job stopped unexpectedly ({_how_lost(ray, err)})"
                )
            else:
                error = _job_error(err, job)
            handle._finish("cancelled" if stopped else "failed", error=error)
            log.info("job %s failed: %s", job.job_id, error)
            if isinstance(err, asyncio.CancelledError):
                raise
        finally:
            # A job given up on needs no word to its actor: past its time limit the actor was
            # killed, a lost one is gone, and `close` ends every actor.
            self._running.pop(handle._ticket, None)
            slot.job = None
            self._dispatch()

    def _signal_cancel(self, slot, ticket: int) -> None:
        with contextlib.suppress(Exception):  # a lost actor: its job fails anyway
            slot.actor.cancel.remote(ticket)

    # -- actors ----------------------------------------------------------------------------

    def _new_actor(self, slot: _Slot, options: dict[str, Any]) -> None:
        from nst_engine.ray.actor import MAX_CONCURRENCY, EngineActor

        options = dict(options)
        config = options.pop("config")
        remote = self._ray.remote(EngineActor).options(
            # Restarted by Ray wherever it can run again, forever; its tasks are never re-run.
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=MAX_CONCURRENCY,
            lifetime=None,  # not detached: owned by this driver, it ends when we do
            **options,
        )
        slot.actor = remote.remote(config)

    async def _monitor(self, slot: _Slot, options: dict[str, Any]) -> None:
        """Probe one actor for as long as the backend is open: mark it ready when its model is
        loaded (again, after a restart), lost while Ray restarts it, and replace it if it is
        gone for good or cannot load the model."""
        ray = self._ray
        assert slot.wake is not None and self._first_ready is not None
        while not self._closed:
            try:
                pid, (node, node_id), broken = await self._probe(slot)
            except ray.exceptions.ActorDiedError as err:
                # Gone for good (killed, or its owner lost it): start another.
                self._lost(slot, _line(err))
                self._new_actor(slot, options)
                continue
            except ray.exceptions.RayActorError as err:
                # Restarting, or its node is gone: Ray brings it back when it can.
                self._lost(slot, _line(err))
                await asyncio.sleep(_RESTART_POLL)
                continue
            except Exception as err:  # noqa: BLE001 - the monitor must outlive any one probe
                # Anything else (through Ray Client, a dropped connection): not usable until a
                # probe is answered again.
                log.warning(
                    "actor %d: its probe failed (%s); probing again", slot.index, _line(err)
                )
                self._lost(slot, _line(err))
                await asyncio.sleep(_RESTART_POLL)
                continue
            if broken is not None:
                message = (
                    broken
                    if isinstance(broken, NSTError)
                    else WeightsError(f"worker {slot.index} could not load the model ({broken})")
                )
                if not self._first_ready.done():
                    self._first_ready.set_exception(message)
                    return
                log.error(
                    "actor %d on %s cannot load the model (%s); trying another in %g s",
                    slot.index,
                    node,
                    message,
                    _BROKEN_RETRY,
                )
                self._kill(slot, restart=False)
                await asyncio.sleep(_BROKEN_RETRY)
                self._new_actor(slot, options)
                continue
            if not slot.ready or slot.pid != pid:
                slot.pid, slot.node, slot.node_id = pid, node, node_id
                self._set_ready(slot, True)
                log.info(
                    "actor %d ready (pid %d on %s, node %s)", slot.index, pid, node, node_id[:8]
                )
                if not self._first_ready.done():
                    self._first_ready.set_result(None)
                self._dispatch()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(slot.wake.wait(), _PROBE_INTERVAL)
            slot.wake.clear()

    async def _probe(self, slot: _Slot) -> tuple[int, tuple[str, str], Exception | None]:
        """The actor's answer to `ready`, warning while one that is starting keeps us waiting."""
        answer = asyncio.ensure_future(_answer(slot.actor.ready.remote()))
        waited = 0.0
        while not slot.ready:
            done, _ = await asyncio.wait({answer}, timeout=_PENDING_WARNING)
            if done:
                break
            waited += _PENDING_WARNING
            log.warning(
                "actor %d has not started after %.0f s: it is loading the model, or the "
                "cluster has no free %s for it",
                slot.index,
                waited,
                "GPU" if self.on_gpus else f"{self.cpus_per_worker} CPUs",
            )
        return await answer

    def _lost(self, slot: _Slot, why: str) -> None:
        """The actor is not usable until Ray has restarted it."""
        if slot.ready:
            log.warning("actor %d (pid %s on %s) lost: %s", slot.index, slot.pid, slot.node, why)
            self._set_ready(slot, False)
        if slot.wake is not None:
            slot.wake.set()

    def _kill(self, slot: _Slot, *, restart: bool) -> None:
        if slot.actor is not None:
            with contextlib.suppress(Exception):
                self._ray.kill(slot.actor, no_restart=not restart)

    @staticmethod
    def _spawn(coro: Any, tasks: set[asyncio.Task[None]]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _follow(actor: Any, handle: JobHandle) -> Any:
    """Publish a job's progress as its actor reports it; its result (or its error, raised)."""
    while True:
        for kind, ticket, *rest in await _answer(actor.messages.remote(handle._ticket, _POLL)):
            if kind == "progress":
                handle._publish(rest[0])
            elif kind == "done":
                return rest[0]
            elif kind == "error":
                error, text = rest
                if text:
                    error.__cause__ = _RemoteTraceback(text)
                raise error
            else:  # "unknown": Ray restarted the actor between two polls
                raise WorkerDied(
                    f"the worker running this job stopped unexpectedly (its Ray actor was "
                    f"restarted and no longer knows job {ticket})"
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


def _start_guard(pids: list[int]) -> subprocess.Popen[bytes]:
    """`nst_engine.ray.guard` watching ``pids`` (the Ray that this process started) for as
    long as we hold its stdin open; in a session of its own, so that the signals meant for the
    bot's process group leave it be."""
    return subprocess.Popen(
        [sys.executable, "-m", "nst_engine.ray.guard", *map(str, pids)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )


def check_reachable(address: str) -> None:
    """Raise RayUnavailable (one line) at once if nothing accepts a connection at a cluster's
    ``HOST:PORT`` (or Ray Client's ``ray://HOST:PORT``), rather than after Ray's minutes of
    retries."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), _CONNECT_TIMEOUT).close()
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise RayUnavailable(f"the Ray cluster at {address} cannot be reached ({reason})") from None


class _NoSigtermNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("SIGTERM handler is not set")


def _how_lost(ray: Any, err: BaseException) -> str:
    if isinstance(err, ray.exceptions.ActorUnavailableError):
        return "its Ray actor's process or node was lost"
    if isinstance(err, ray.exceptions.RayActorError):
        return "its Ray actor died"
    return f"Ray lost it: {type(err).__name__}"


def _line(err: BaseException) -> str:
    """The first line of an error's message (Ray's run to many lines); its last instead when
    the first only introduces the rest ("Initialization failure from server:", a traceback)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    return lines[-1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
