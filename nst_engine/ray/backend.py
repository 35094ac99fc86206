"""The engine on a Ray cluster, behind the same `nst_engine.backend.Backend` as the local pool.

    async with RayBackend("imagenet", address="head-host:6379") as backend:
        handle = backend.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():     # throttled; some carry a preview
            ...
        result = await handle.result()             # StyleResult, or an NSTError subclass

Design:

- The job runner (`nst_engine.runner`: queue, cancel, time limit, close) over one
  `nst_engine.ray.slot.ActorSlot` per worker: a Ray actor that loads VGG19 once on its node
  (the weights are resolved there: a path, or that node's Keras cache), kept by a monitor.
  Where the cluster has GPUs, each actor takes one (``num_gpus=1``); else ``cpus_per_worker``
  CPUs. How jobs reach the actors and how lost actors come back: see `nst_engine.ray.slot`.
- Connecting: ``address`` None starts a one-host Ray here, on loopback only, with a guard
  process (`nst_engine.ray.guard`) that ends what of it outlives us; ``HOST:PORT`` or
  ``auto`` joins a cluster of which this host is a node (the bot is a Ray driver there);
  ``ray://HOST:PORT`` connects through the head's Ray Client server, from a host that is not
  a node (the client's Ray and Python versions must match the cluster's).
- Elastic: between ``min_workers`` and ``max_workers`` actors. Another actor is asked for when
  a job has waited ``scale_up_s`` with fewer than the maximum asked for (at once when none is
  asked for: nothing else could take the job), and an actor idle for ``idle_s`` is ended, down to
  the minimum. An actor that no node has room for stays pending: on an autoscaling cluster that
  is the demand that brings a node (``num_gpus=1``: a GPU node). Each start is timed, and a job
  waiting for one hears about how long it takes (`nst_engine.backend.WorkerStarting`).
- `warm` is true while at least one actor is ready, or always once connected when the minimum
  is 0 (the cluster scales): on a cluster, a lost node slows the bot down but does not make it
  unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from typing import Any

from nst_engine import worker
from nst_engine.backend import WorkerStarting
from nst_engine.errors import NSTError
from nst_engine.processes import descendants
from nst_engine.ray.guard import Guard
from nst_engine.ray.slot import ActorSlot, one_line
from nst_engine.runner import JobHandle, Runner

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[ray]'"
# Tries at connecting through Ray Client, and seconds between them (see `_join`).
_CLIENT_ATTEMPTS = 4
_CLIENT_RETRY_DELAY = 1.0
# Seconds to wait for the cluster's address to accept a connection.
_CONNECT_TIMEOUT = 10.0
# Seconds `close` gives the guard to end what of the Ray we started outlives its shutdown.
_GUARD_WAIT = 10.0
# Seconds between looks at the queue and the idle actors.
_SCALE_TICK = 0.5
# Weight of the newest start in the running figure of how long an actor takes to start.
_START_WEIGHT = 0.5


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


class RayBackend(Runner):
    """Ray actors that each hold a loaded VGG19 and run one job at a time."""

    def __init__(
        self,
        weights: str,
        workers: int | None = None,
        *,
        min_workers: int = 1,
        max_workers: int | None = None,
        scale_up_s: float = 2.0,
        idle_s: float = 300.0,
        gpu_actors: bool | None = None,
        address: str | None = None,
        cpus_per_worker: int = 2,
        preview_interval: float = 3.0,
        progress_interval: float = 0.5,
        seed: int = 0,
        namespace: str = "nst-bot",
        max_growth_percent: float = 0.0,
    ) -> None:
        """``address``: an existing cluster (``HOST:PORT`` or ``auto``) of which this host is a
        node, its Ray Client server (``ray://HOST:PORT``), or None to start a Ray on this host,
        listening on loopback only. ``max_workers`` (or ``workers``, the same) defaults to one
        per GPU in the cluster, else one per ``cpus_per_worker`` CPUs, and is never below
        ``min_workers``; see the module's docstring for ``scale_up_s`` and ``idle_s``.
        ``gpu_actors``: whether each actor takes a GPU; None: if the cluster has a GPU when we
        connect (a cluster that scales its GPU nodes from zero has none then: say True).
        ``max_growth_percent``: as `EnginePool`'s, for each actor (replaced by Ray's restart)."""
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        if min_workers < 0:
            raise ValueError(f"min_workers must be at least 0, not {min_workers}")
        if max_workers is not None and min_workers > max_workers:
            raise ValueError(f"min_workers ({min_workers}) is above max_workers ({max_workers})")
        if scale_up_s < 0 or idle_s < 0:
            raise ValueError("scale_up_s and idle_s must be ≥ 0 seconds")
        if cpus_per_worker < 1:
            raise ValueError(f"cpus_per_worker must be at least 1, not {cpus_per_worker}")
        if preview_interval < 0 or progress_interval < 0:
            raise ValueError("preview_interval and progress_interval must be ≥ 0 seconds")
        super().__init__()
        self.weights = weights
        self.max_growth_percent = max_growth_percent
        self.workers = max_workers or workers
        self.min_workers = min_workers
        # Known once connected (`_plan`).
        self.max_workers = 0
        self.scale_up_s = scale_up_s
        self.idle_s = idle_s
        self.gpu_actors = gpu_actors
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
        self._slots: list[ActorSlot] = []
        self._first_ready: asyncio.Future[None] | None = None
        # What each new actor loads, the resources it takes, and what it needs said in words.
        self._actor_config: worker.WorkerConfig | None = None
        self._actor_resources: dict[str, Any] = {}
        self._needs = ""
        self._indices = itertools.count()
        # The running figure of seconds from asking for an actor to its model loaded.
        self.start_seconds: float | None = None
        # When each actor was asked for (until it is ready), and since when each is idle.
        self._asked: dict[ActorSlot, float] = {}
        self._idle_since: dict[ActorSlot, float] = {}
        self._scaler: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        # With Ray started here: the guard that ends what of it outlives us (see `guard`).
        self._guard: Guard | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the cluster (or start Ray here), start the minimum of actors, and return
        once one has loaded the model (at once with a minimum of 0); the others join as they
        load.

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
            self._actor_config, self._actor_resources = self._plan(resources)
            self._needs = "GPU" if self.on_gpus else f"{self.cpus_per_worker} CPUs"
            self._first_ready = first = asyncio.get_running_loop().create_future()
            for _ in range(self.min_workers):
                self._add_actor()
            if self.min_workers:
                await first
            else:
                first.set_result(None)
                self._warm_or_closed.set()
        except BaseException:
            await self.close()
            raise
        self._scaler = asyncio.create_task(self._scale_forever(), name="nst-ray-scaler")
        log.info(
            "Ray backend ready: %d actor(s) of %d to %d (%s each) with %s weights, in %.1fs",
            len(self._slots),
            self.min_workers,
            self.max_workers,
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
                self._guard = Guard(sorted(set(descendants([os.getpid()])) - before))
            else:
                self._join()
        except Exception as err:  # noqa: BLE001 - Ray raises many kinds; one line for the operator
            # A failed ray.init can leave this process half in Ray Client mode, where a later
            # ray.init fails in odd ways: leave nothing behind.
            with contextlib.suppress(Exception):
                ray.shutdown()
            if self.address is None:
                message = f"Ray could not be started on this host ({one_line(err)})"
            else:
                message = f"the Ray cluster at {self.address} cannot be reached ({one_line(err)})"
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
                    one_line(err),
                    attempt + 1,
                    attempts,
                )
                time.sleep(_CLIENT_RETRY_DELAY)

    def _plan(self, resources: dict[str, float]) -> tuple[worker.WorkerConfig, dict[str, Any]]:
        """What each actor loads and the resources each takes; sets the most actors."""
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 0))
        self.on_gpus = gpus > 0 if self.gpu_actors is None else self.gpu_actors
        if self.on_gpus:
            options: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
            threads = None
            default = max(1, gpus)
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
            max_growth_percent=self.max_growth_percent,
        )
        self.max_workers = max(self.workers or default, self.min_workers)
        why = (
            ""
            if self.workers
            else " (one per GPU)"
            if self.on_gpus
            else f" (one per {self.cpus_per_worker} CPUs)"
        )
        if self.min_workers == self.max_workers:
            plan = f"starting {self.max_workers} actor(s){why}"
        else:
            plan = (
                f"starting {self.min_workers} actor(s), up to {self.max_workers}{why} as jobs "
                f"wait {self.scale_up_s:g} s; ending those idle {self.idle_s:g} s"
            )
        log.info("Ray cluster: %d CPU(s), %d GPU(s); %s", cpus, gpus, plan)
        return config, options

    async def _shut_down(self) -> None:
        """Leave the cluster (stopping Ray if this process started it)."""
        if self._scaler is not None:
            self._scaler.cancel()
            await asyncio.gather(self._scaler, return_exceptions=True)
        await asyncio.gather(*self._retiring, return_exceptions=True)
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(RuntimeError("the Ray backend was closed"))
            self._first_ready.exception()  # retrieved: nobody else may wait for it
        if self._connected:
            await asyncio.to_thread(self._ray.shutdown)
            self._connected = False
        if self._guard is not None:
            # Ends whatever of the Ray we started outlives its shutdown, then exits.
            await asyncio.to_thread(self._guard.close, _GUARD_WAIT)
            self._guard = None
        log.info("Ray backend closed")

    # -- scaling ---------------------------------------------------------------------------

    def submit(self, job: Any) -> JobHandle:
        handle = super().submit(job)
        self._scale()  # a job at an empty cluster starts an actor at once
        return handle

    def set_ready(self, slot: Any, ready: bool) -> None:
        if ready:
            asked = self._asked.pop(slot, None)
            if asked is not None:
                took = time.monotonic() - asked
                self.start_seconds = (
                    took
                    if self.start_seconds is None
                    else _START_WEIGHT * took + (1 - _START_WEIGHT) * self.start_seconds
                )
                log.info("%s started in %.1fs", slot, took)
            self._idle_since[slot] = time.monotonic()
        super().set_ready(slot, ready)

    async def _run(self, slot: Any, handle: JobHandle) -> None:
        try:
            await super()._run(slot, handle)
        finally:
            # Idle from now, unless the runner gave it the next job (then never retired).
            self._idle_since[slot] = time.monotonic()

    def _add_actor(self) -> None:
        assert self._actor_config is not None and self._first_ready is not None
        slot = ActorSlot(
            next(self._indices),
            self._ray,
            self._actor_config,
            self._actor_resources,
            self._needs,
            self,
            self._first_ready,
        )
        self._slots.append(slot)
        self._asked[slot] = time.monotonic()
        slot.begin()

    async def _scale_forever(self) -> None:
        while not self._closed:
            self._scale()
            await asyncio.sleep(_SCALE_TICK)

    def _scale(self) -> None:
        """Ask for an actor for each job that has waited long enough beyond those being started,
        up to the maximum; end actors idle too long, down to the minimum; tell waiting jobs."""
        if self._closed or not self._connected or self._actor_config is None:
            return
        now = time.time()
        starting = self.workers_starting
        if self._slots:
            due = sum(now - h.submitted_at >= self.scale_up_s for h in self._queue)
        else:
            due = len(self._queue)  # nothing could ever take them
        while due > starting and len(self._slots) < self.max_workers:
            log.info("%d job(s) waiting; asking for another actor", due)
            self._add_actor()
            starting += 1
        if self._queue and self._asked:
            note = WorkerStarting(self._start_eta())
            for handle in self._queue:
                if handle.waiting is None:
                    handle.worker_starting(note)
        if not self._queue:
            self._retire_idle()

    def _start_eta(self) -> float | None:
        """About how many seconds until the soonest actor being started is ready."""
        if self.start_seconds is None or not self._asked:
            return None
        waited = time.monotonic() - min(self._asked.values())
        return max(1.0, self.start_seconds - waited)

    def actor_broken(self, slot: ActorSlot, error: BaseException) -> bool:
        """For a slot whose actor cannot load the model, after start-up: fail the jobs waiting
        while no actor is up (they would wait for ever), and end the actor above the minimum
        (True; the next job asks for another). At the minimum the slot tries again itself."""
        if not self.workers_alive:
            self.fail_queued(error)
        if len(self._slots) <= self.min_workers:
            return False
        self._end(slot)
        return True

    def _retire_idle(self) -> None:
        now = time.monotonic()
        idle = sorted(
            (since, slot.index, slot)
            for slot, since in self._idle_since.items()
            if slot.ready and slot not in self._busy and now - since >= self.idle_s
        )
        alive = self.workers_alive
        for _, _, slot in idle:
            if alive <= self.min_workers:
                return
            alive -= 1
            log.info("ending %s: idle for %.0f s", slot, now - self._idle_since[slot])
            self._end(slot)

    def _end(self, slot: ActorSlot) -> None:
        # Out of the runner's sight at once: no job can go to it from now on.
        self._slots.remove(slot)
        self._idle_since.pop(slot, None)
        self._asked.pop(slot, None)
        self.set_ready(slot, False)
        self._spawn(slot.stop(), self._retiring)

    # -- status ----------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """True while at least one actor has the model loaded, or once connected with a minimum
        of 0 (the cluster scales), until the backend closes."""
        if not self._started or self._closed:
            return False
        if self.min_workers == 0:
            return self._connected and self._first_ready is not None
        return any(slot.ready for slot in self._slots)

    @property
    def size(self) -> int:
        """The most actors (jobs that can run at once when all are up)."""
        return self.max_workers

    @property
    def workers_wanted(self) -> int:
        """Actors the jobs held now ask for: one per job running or queued, within the bounds."""
        return max(self.min_workers, min(self.max_workers, self.running + self.queued))

    def worker_nodes(self) -> list[str]:
        """Node addresses of the actors that are up, in the order of `worker_pids`."""
        return [slot.node or "?" for slot in self._slots if slot.ready and slot.pid is not None]

    def worker_node_ids(self) -> list[str]:
        """Ray's ids of those nodes, in the same order."""
        return [slot.node_id or "?" for slot in self._slots if slot.ready and slot.pid is not None]


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
