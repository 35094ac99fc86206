"""The Ray actor of `nst_engine.ray.backend`: one engine worker, with VGG19 loaded once.

It runs jobs with the local pool's own worker code (`nst_engine.worker`: model loading, the job
loop with its cancel and time-limit checks, the progress `Reporter`), fed through a mailbox in
place of the pool's pipe. The backend starts a job with `start` and collects the worker's
messages with `messages`, a long poll that answers as soon as one is there:

    ("progress", ticket, Progress)               throttled; some carry a preview
    ("done", ticket, StyleResult)                the job's last message, or
    ("error", ticket, error, traceback text)
    ("unknown", ticket)                          this actor never ran the job (Ray restarted it)

Plain calls, not a streaming generator: they work the same through Ray Client (``ray://``),
which cannot stream. The actor is threaded (`MAX_CONCURRENCY`): `messages`, `cancel` and the
backend's `ready` probe are answered while the job runs in a thread of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from nst_engine import worker
from nst_engine.options import StyleOptions

log = logging.getLogger(__name__)

# A `messages` poll, a `cancel` and a `ready` probe at the same time (the job itself runs in
# a thread of its own), with one to spare.
MAX_CONCURRENCY = 4


class Mailbox:
    """What `nst_engine.worker`'s job loop takes for its pipe: messages go to a queue that the
    generator task drains, and a cancel is a ticket in the actor's set of stopped jobs."""

    def __init__(self, stopped: set[int]) -> None:
        self.messages: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._stopped = stopped

    def send(self, message: tuple[Any, ...]) -> None:
        self.messages.put(message)

    def cancelled(self, ticket: int) -> bool:
        return ticket in self._stopped


class EngineActor:
    """One engine worker on a Ray node. Loading happens in ``__init__``, which Ray runs again
    after a restart; a model that cannot load is reported by `ready`, not raised, so that the
    backend can tell the operator why instead of Ray restarting the actor forever."""

    def __init__(self, config: worker.WorkerConfig) -> None:
        import ray

        # Ray has set CUDA_VISIBLE_DEVICES to this actor's GPU; naming it again makes the
        # worker turn on memory growth there rather than configure the CPU.
        gpus = ray.get_gpu_ids()
        self._config = replace(config, gpu=",".join(map(str, gpus)) if gpus else None)
        self._stopped: set[int] = set()
        self._mailboxes: dict[int, Mailbox] = {}
        self._model: Any = None
        self._broken: Exception | None = None
        self._node = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
        try:
            self._model = worker._load(self._config)
        except Exception as err:  # noqa: BLE001 - reported by `ready`
            log.exception("the model could not be loaded")
            self._broken = worker._portable(err)

    def ready(self) -> tuple[int, tuple[str, str], Exception | None]:
        """This actor's process id, its node's address and id, and why it cannot work (or
        None)."""
        return os.getpid(), self._node, self._broken

    def cancel(self, ticket: int) -> None:
        """Stop job ``ticket`` before its next step."""
        self._stopped.add(ticket)

    def start(
        self,
        ticket: int,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        options: StyleOptions,
        timeout: float | None,
        frames: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Start job ``ticket`` in a thread; its messages wait for `messages`."""
        mailbox = Mailbox(self._stopped)
        self._mailboxes[ticket] = mailbox
        threading.Thread(
            target=self._work,
            args=(mailbox, ticket, content, styles, options, timeout, frames),
            name=f"nst-job-{ticket}",
            daemon=True,
        ).start()

    def _work(self, mailbox: Mailbox, ticket: int, *job: Any) -> None:
        try:
            worker._run(mailbox, self._model, self._config, ticket, *job)
        finally:
            self._stopped.discard(ticket)

    def messages(self, ticket: int, wait: float) -> list[tuple[Any, ...]]:
        """Job ``ticket``'s messages since the last call: waits up to ``wait`` seconds for the
        first, then takes whatever else is there. Empty if none came in time; its last is the
        job's result or error, after which the job is forgotten."""
        mailbox = self._mailboxes.get(ticket)
        if mailbox is None:
            return [("unknown", ticket)]
        try:
            found = [mailbox.messages.get(timeout=wait)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while found[-1][0] == "progress":
                found.append(mailbox.messages.get_nowait())
        if found[-1][0] != "progress":
            del self._mailboxes[ticket]
        return found
