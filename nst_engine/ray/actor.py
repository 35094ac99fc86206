"""The Ray actor of `nst_engine.ray.backend`: one engine worker, with VGG19 loaded once.

It runs jobs with the local pool's own worker code (`nst_engine.worker`: `load` for the model,
`run` for each job with its cancel and time-limit checks and its throttled progress), fed
through a mailbox in place of the pool's pipe. The backend starts a job with `start` and
collects its messages (`nst_engine.messages`: `Progressed`, then `Finished` or `Failed`, or
`UnknownJob` when Ray restarted the actor in between) with `messages`, a long poll that answers
as soon as one is there.

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
from dataclasses import replace
from typing import Any

from nst_engine import worker
from nst_engine.messages import JobOrder, Progressed, UnknownJob, portable

log = logging.getLogger(__name__)

# A `messages` poll, a `cancel` and a `ready` probe at the same time (the job itself runs in
# a thread of its own), with one to spare.
MAX_CONCURRENCY = 4


class Mailbox:
    """The `nst_engine.worker.Outbox` of one job: its messages go to a queue that `messages`
    drains, and a cancel is its ticket in the actor's set of stopped jobs."""

    def __init__(self, stopped: set[int]) -> None:
        self.messages: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._stopped = stopped

    def send(self, message: Any) -> None:
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
        self._growth = worker.Growth(config.max_growth_percent)
        self._broken: Exception | None = None
        self._node = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
        try:
            self._model = worker.load(self._config)
        except Exception as err:  # noqa: BLE001 - reported by `ready`
            log.exception("the model could not be loaded")
            self._broken = portable(err)

    def ready(self) -> tuple[int, tuple[str, str], Exception | None]:
        """This actor's process id, its node's address and id, and why it cannot work (or
        None)."""
        return os.getpid(), self._node, self._broken

    def cancel(self, ticket: int) -> None:
        """Stop job ``ticket`` before its next step."""
        self._stopped.add(ticket)

    def start(self, order: JobOrder) -> None:
        """Start a job in a thread; its messages wait for `messages`."""
        mailbox = Mailbox(self._stopped)
        self._mailboxes[order.ticket] = mailbox
        threading.Thread(
            target=self._work,
            args=(mailbox, order),
            name=f"nst-job-{order.ticket}",
            daemon=True,
        ).start()

    def _work(self, mailbox: Mailbox, order: JobOrder) -> None:
        try:
            worker.run(mailbox, self._model, self._config, order, self._growth)
        finally:
            self._stopped.discard(order.ticket)

    def messages(self, ticket: int, wait: float) -> list[Any]:
        """Job ``ticket``'s messages since the last call: waits up to ``wait`` seconds for the
        first, then takes whatever else is there. Empty if none came in time; its last is the
        job's result or error, after which the job is forgotten."""
        mailbox = self._mailboxes.get(ticket)
        if mailbox is None:
            return [UnknownJob(ticket)]
        try:
            found = [mailbox.messages.get(timeout=wait)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while isinstance(found[-1], Progressed):
                found.append(mailbox.messages.get_nowait())
        if not isinstance(found[-1], Progressed):
            del self._mailboxes[ticket]
        return found
