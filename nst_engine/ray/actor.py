"""The Ray actor of `nst_engine.ray.backend`: one engine worker, with VGG19 loaded once.

It runs jobs with the local pool's own worker code (`nst_engine.worker`: model loading, the job
loop with its cancel and time-limit checks, the progress `Reporter`), fed through a mailbox in
place of the pool's pipe. A job is a streaming generator task: it yields the worker's messages,

    ("progress", ticket, Progress)               throttled; some carry a preview
    ("done", ticket, StyleResult)                the job's last message, or
    ("error", ticket, error, traceback text)

so that progress reaches the bot as it is made and the result comes last, once. The actor is
threaded (`MAX_CONCURRENCY`): `cancel` and `ready` are answered while a job runs.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from nst_engine import worker
from nst_engine.options import StyleOptions

log = logging.getLogger(__name__)

# A running job, a `cancel` for it and a `ready` probe from the backend, at the same time.
MAX_CONCURRENCY = 3


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
        self._model: Any = None
        self._broken: Exception | None = None
        self._node = ray.util.get_node_ip_address()
        try:
            self._model = worker._load(self._config)
        except Exception as err:  # noqa: BLE001 - reported by `ready`
            log.exception("the model could not be loaded")
            self._broken = worker._portable(err)

    def ready(self) -> tuple[int, str, Exception | None]:
        """This actor's process id, its node's address, and why it cannot work (or None)."""
        return os.getpid(), self._node, self._broken

    def cancel(self, ticket: int) -> None:
        """Stop job ``ticket`` before its next step."""
        self._stopped.add(ticket)

    def run(
        self,
        ticket: int,
        content: np.ndarray,
        styles: Sequence[np.ndarray],
        options: StyleOptions,
        timeout: float | None,
        frames: Sequence[np.ndarray] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Run one job, yielding the worker's messages; the last is its result or error."""
        mailbox = Mailbox(self._stopped)
        thread = threading.Thread(
            target=worker._run,
            args=(
                mailbox,
                self._model,
                self._config,
                ticket,
                content,
                styles,
                options,
                timeout,
                frames,
            ),
            name=f"nst-job-{ticket}",
            daemon=True,
        )
        thread.start()
        try:
            while True:
                message = mailbox.messages.get()
                yield message
                if message[0] != "progress":
                    return
        finally:
            # Closed early too (the backend gave up on the job): stop it before the next step.
            self._stopped.add(ticket)
            thread.join()
            self._stopped.discard(ticket)
