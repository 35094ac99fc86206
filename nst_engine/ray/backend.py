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
- `warm` is true while at least one actor is ready: on a cluster, a lost node slows the bot
  down but does not make it unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from typing import Any

from nst_engine import worker
from nst_engine.errors import NSTError
from nst_engine.processes import descendants
from nst_engine.ray.slot import ActorSlot, one_line
from nst_engine.runner import Runner

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[ray]'"
# Tries at connecting through Ray Client, and seconds between them (see `_join`).
_CLIENT_ATTEMPTS = 4
_CLIENT_RETRY_DELAY = 1.0
# Seconds to wait for the cluster's address to accept a connection.
_CONNECT_TIMEOUT = 10.0
# Seconds `close` gives the guard to end what of the Ray we started outlives its shutdown.
_GUARD_WAIT = 10.0


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
        super().__init__()
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
        self._slots: list[ActorSlot] = []
        self._first_ready: asyncio.Future[None] | None = None
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
            config, actor_resources, count = self._plan(resources)
            self._first_ready = first = asyncio.get_running_loop().create_future()
            needs = "GPU" if self.on_gpus else f"{self.cpus_per_worker} CPUs"
            for index in range(count):
                slot = ActorSlot(index, self._ray, config, actor_resources, needs, self, first)
                self._slots.append(slot)
                await slot.start()
            await first
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

    def _plan(self, resources: dict[str, float]) -> tuple[worker.WorkerConfig, dict[str, Any], int]:
        """What each actor loads, the resources each takes, and how many actors."""
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
        return config, options, count

    async def _shut_down(self) -> None:
        """Leave the cluster (stopping Ray if this process started it)."""
        if self._first_ready is not None and not self._first_ready.done():
            self._first_ready.set_exception(RuntimeError("the Ray backend was closed"))
            self._first_ready.exception()  # retrieved: nobody else may wait for it
        if self._connected:
            await asyncio.to_thread(self._ray.shutdown)
            self._connected = False
        if self._guard is not None:
            # Ends whatever of the Ray we started outlives its shutdown, then exits.
            self._guard.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self._guard.wait, _GUARD_WAIT)
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
