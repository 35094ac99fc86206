"""An asyncio pool of worker processes that run `stylize`; it knows nothing of Discord.

    async with EnginePool("imagenet", workers=2, pid_dir=data_dir / "workers") as pool:
        handle = pool.submit(Job(content, (style,), StyleOptions(steps=300), timeout=600))
        async for progress in handle.events():     # throttled; some carry a preview
            ...
        result = await handle.result()             # StyleResult, or an NSTError subclass

An `AnimationJob` (a clip's frames) goes the same way and gives an `AnimationResult`.
It implements `nst_engine.backend.Backend`: the job runner (`nst_engine.runner`: queue, cancel,
time limit, close) over slots of its own. Design, chosen so that a worker that dies fails only
its own job and never outlives the pool:

- Each `WorkerSlot` owns one ``spawn`` process (`nst_engine.worker.main`, which loads VGG19
  once) and one duplex pipe to it, read on the event loop without threads. The messages are
  those of `nst_engine.messages`. A process that dies fails only the job it was running
  (`WorkerDied`), and the slot starts a fresh process in the background.
- All bookkeeping happens on the event loop's thread, and so do process starts: Linux's
  parent-death signal, which kills a worker whose parent has died, fires when the *thread*
  that started it ends.
- Cancellation and time limits: cancelling a running job sends a `Cancel` down the pipe; the
  worker reads its pipe (and the clock, for `Job.timeout`) before every step. If a single step
  overruns the limit by far, the runner has the slot kill the worker.
- With ``pid_dir``, each worker has a pid file there, so that a pool started after a crash can
  end workers an earlier one left behind (those that neither the parent-death signal nor the
  pipe's EOF stopped: another OS, or a bot version without them).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from nst_engine import messages, worker
from nst_engine.backend import (
    AnimationJob,
    Job,
    JobCancelled,
    JobFailed,
    JobState,
    JobTimeout,
    WorkerDied,
)
from nst_engine.errors import NSTError, OutOfMemory, WeightsError
from nst_engine.options import Progress
from nst_engine.processes import start_time
from nst_engine.runner import JobHandle, Runner, WorkerLost

__all__ = [
    "AnimationJob",
    "EnginePool",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobHandle",
    "JobState",
    "JobTimeout",
    "WorkerDied",
]

log = logging.getLogger(__name__)

# Seconds between attempts to replace a worker whose replacement failed to start.
_RESTART_DELAY = 5.0
# Seconds to wait for a dead worker's exit status, to tell the member how it ended. A killed
# TensorFlow worker on a busy host took over 2 s to finish exiting (seen in CI).
_EXIT_STATUS_WAIT = 10.0
# Seconds an idle worker gets to exit once its pipe is closed, before it is killed.
_STOP_WAIT = 5.0
# How often to look at a process that is expected to exit.
_POLL = 0.05

_SPAWN = multiprocessing.get_context("spawn")


class _Gone(Exception):
    """The pipe to a worker closed: its process has exited or been killed."""


@dataclass(eq=False)
class WorkerSlot:
    """One worker process of the pool, its pipe, and what it was last asked (see
    `nst_engine.runner.Slot`)."""

    index: int
    config: worker.WorkerConfig
    pool: EnginePool
    process: BaseProcess | None = None
    pid: int | None = None
    writer: asyncio.StreamWriter | None = None
    # Reads the pipe for as long as the process lives.
    listener: asyncio.Task[None] | None = None
    # Resolved with the worker's answer to what it was last asked: loading, then each job.
    answer: asyncio.Future[Any] | None = None
    ready: bool = False
    # The job it runs, and where that job's progress goes.
    order: messages.JobOrder | None = None
    publish: Callable[[Progress], None] | None = None
    # The ticket of the last job asked to stop.
    stopping: int | None = None
    # Why the worker should be replaced after the job it runs (`worker.Growth`), if it should.
    outgrown: str | None = None
    # Replaces a worker that died, broke or was killed.
    restart: asyncio.Task[None] | None = None

    def __str__(self) -> str:
        return f"worker {self.index} (pid {self.pid})"

    async def start(self) -> None:
        """Start a worker process and wait until it has loaded the model."""
        ours, theirs = socket.socketpair()
        try:
            process = _SPAWN.Process(
                target=worker.main,
                args=(theirs, os.getpid(), self.config),
                name=f"nst-worker-{self.index}",
                daemon=True,
            )
            # Here, on the event loop's thread, never in a thread pool: the worker's
            # parent-death signal would fire when that pool thread ends.
            with _stop_signals_blocked():
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker has its copy; ours must not keep its pipe open
        answer = asyncio.get_running_loop().create_future()
        self.process, self.pid, self.answer = process, process.pid, answer
        reader, self.writer = await asyncio.open_connection(sock=ours)
        self.listener = asyncio.create_task(
            self._listen(process, reader), name=f"nst-worker-{self.index}-pipe"
        )
        pid_dir = self.pool.pid_dir
        if pid_dir is not None:
            await asyncio.to_thread(_write_pid_file, pid_dir, process.pid)
        try:
            await answer
        except _Gone:
            how = await _exit_description(process)
            message = f"worker {self.index} stopped while loading the model ({how})"
            raise WorkerDied(message) from None
        except NSTError:
            raise
        except Exception as err:
            raise WeightsError(f"worker {self.index} could not load the model ({err})") from err
        finally:
            self.answer = None
        log.info("worker %d ready (pid %d%s)", self.index, process.pid, _gpu_note(self.config.gpu))
        self.pool.set_ready(self, True)

    async def run(self, order: messages.JobOrder, publish: Callable[[Progress], None]) -> Any:
        """Send a job down the pipe and wait for its answer, publishing its progress."""
        process = self.process
        self.answer = answer = asyncio.get_running_loop().create_future()
        self.order, self.publish = order, publish
        # Pickling copies the pictures once (milliseconds even for a large photo); the
        # transport then writes them as the worker reads, without blocking the loop.
        self._send(order)
        if self.stopping == order.ticket:  # cancelled before it was sent
            self._send(messages.Cancel(order.ticket))
        try:
            return await asyncio.shield(answer)
        except _Gone:
            how = await _exit_description(process)
            self._retire()
            raise WorkerLost(how) from None
        except OutOfMemory:
            # TensorFlow is not reliable after running out of memory: start afresh.
            self._retire()
            raise
        finally:
            self.answer = self.order = self.publish = None
            outgrown, self.outgrown = self.outgrown, None
            if outgrown and self.process is process and not self.pool.closed:
                # Before `run` returns, so that the pool gives it no other job meanwhile.
                log.info("replacing %s: %s", self, outgrown)
                self._retire()

    def cancel(self, ticket: int) -> None:
        self.stopping = ticket
        self._send(messages.Cancel(ticket))

    def kill(self) -> None:
        _kill(self.process)
        self._retire()

    async def stop(self) -> None:
        if self.restart is not None:
            self.restart.cancel()
            await asyncio.gather(self.restart, return_exceptions=True)
        await self._stop_worker()

    async def _listen(self, process: BaseProcess, reader: asyncio.StreamReader) -> None:
        """Handle each message from one worker process until the pipe closes."""
        try:
            while True:
                (size,) = worker.HEADER.unpack(await reader.readexactly(worker.HEADER.size))
                data = await reader.readexactly(size)
                try:
                    self._on_message(pickle.loads(data))
                except Exception:
                    # Its job cannot be trusted to end well any more: end the process, and the
                    # pipe's EOF below fails that job as a dead worker's.
                    log.exception("worker %d sent a message that cannot be read", self.index)
                    _kill(process)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if self.process is not process:
            return
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(_Gone())
        elif self.ready and not self.pool.closed:
            log.warning(
                "worker %d (pid %d) stopped while idle (%s); starting another",
                self.index,
                process.pid,
                await _exit_description(process),
            )
            self._retire()

    def _on_message(self, message: Any) -> None:
        answer, order = self.answer, self.order
        if isinstance(message, messages.Progressed):
            if order is not None and self.publish is not None and order.ticket == message.ticket:
                self.publish(message.progress)
        elif answer is None or answer.done():
            log.warning(
                "worker %d sent %s out of turn; ignored", self.index, type(message).__name__
            )
        elif isinstance(message, messages.Loaded):
            answer.set_result(None)
        elif isinstance(message, messages.LoadFailed):
            answer.set_exception(message.error)
        elif isinstance(message, messages.Finished):
            self.outgrown = message.outgrown
            answer.set_result(message.result)
        elif isinstance(message, messages.Failed):
            self.outgrown = message.outgrown
            answer.set_exception(message.exception())

    def _send(self, message: Any) -> None:
        # A worker that has died is reported by the listener, not here.
        if self.writer is not None and not self.writer.is_closing():
            self.writer.writelines(worker.frame(message))

    def _retire(self) -> None:
        """Take no more jobs, and have a fresh worker replace this one (unless closing)."""
        self.pool.set_ready(self, False)
        if not self.pool.closed and (self.restart is None or self.restart.done()):
            self.restart = asyncio.get_running_loop().create_task(self._replace())

    async def _replace(self) -> None:
        while not self.pool.closed:
            await self._stop_worker()
            try:
                await self.start()
            except Exception:
                log.exception("worker %d could not be restarted; retrying", self.index)
                await asyncio.sleep(_RESTART_DELAY)
                continue
            return

    async def _stop_worker(self) -> None:
        """Close the pipe (an idle worker exits at once on its EOF), wait for the process to
        exit, killing it if it does not, and forget it."""
        loading = not self.ready
        self.pool.set_ready(self, False)
        process, writer, listener = self.process, self.writer, self.listener
        self.process = self.pid = self.writer = self.listener = None
        if writer is not None:
            writer.close()
        if process is not None:
            if loading:
                _kill(process)  # it reads its pipe only once the model is loaded
            try:
                if await _exit_status(process, _STOP_WAIT) is None:
                    log.warning(
                        "worker %d (pid %d) did not exit; killing it", self.index, process.pid
                    )
                    _kill(process)
                    await _exit_status(process, _EXIT_STATUS_WAIT)
            except asyncio.CancelledError:
                _kill(process)  # nobody else knows of it any more
                raise
            pid_dir = self.pool.pid_dir
            if pid_dir is not None:
                await asyncio.to_thread(_remove_pid_file, pid_dir, process.pid)
            if process.exitcode is not None:
                process.close()  # its sentinel's file descriptor
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)


class EnginePool(Runner):
    """Worker processes that each hold a loaded VGG19 and run one job at a time."""

    def __init__(
        self,
        weights: str,
        workers: int | None = None,
        *,
        gpus: Sequence[str] | None = None,
        preview_interval: float = 3.0,
        progress_interval: float = 0.5,
        seed: int = 0,
        memory_limit_mb: int | None = None,
        pid_dir: str | os.PathLike[str] | None = None,
        max_growth_percent: float = 0.0,
    ) -> None:
        """``workers`` defaults to 1 on CPU and to one per GPU when ``gpus`` (e.g. ["0", "1"])
        is given; with more workers than GPUs they share the GPUs in turn. ``memory_limit_mb``
        caps what each CPU worker may map beyond its loaded model (None: no cap). ``pid_dir``
        (created if missing) holds a pid file per worker; at start, workers that an earlier
        pool on the same directory left running are ended. A worker whose resident memory has
        grown by more than ``max_growth_percent`` since its first job is replaced between two
        jobs (0: never; see `worker.Growth`)."""
        super().__init__()
        gpus = list(gpus or [])
        workers = workers if workers is not None else max(1, len(gpus))
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        if preview_interval < 0 or progress_interval < 0:
            raise ValueError("preview_interval and progress_interval must be ≥ 0 seconds")
        self.weights = weights
        self.seed = seed
        self.preview_interval = preview_interval
        self.progress_interval = progress_interval
        self.memory_limit_mb = memory_limit_mb
        self.pid_dir = None if pid_dir is None else Path(pid_dir)
        # CPU workers split the cores between them instead of each using them all.
        cpu_threads = None if gpus or workers == 1 else max(1, (os.cpu_count() or 1) // workers)
        self._slots: list[WorkerSlot] = [
            WorkerSlot(
                i,
                worker.WorkerConfig(
                    weights,
                    seed,
                    gpus[i % len(gpus)] if gpus else None,
                    cpu_threads,
                    preview_interval,
                    progress_interval,
                    memory_limit_mb,
                    max_growth_percent,
                ),
                self,
            )
            for i in range(workers)
        ]

    async def start(self) -> None:
        """End workers left over by an earlier pool on ``pid_dir``, start every worker and wait
        until each has loaded the model.

        Raises:
            WeightsError: The weights could not be loaded (the pool is then closed).
        """
        if self._started:
            return
        if self._closed:
            raise RuntimeError("this EnginePool has been closed")
        self._started = True
        started = time.perf_counter()
        # Should the interpreter exit with the pool still open, kill the workers first: the
        # multiprocessing module would otherwise wait for them forever.
        atexit.register(self._kill_workers)
        try:
            if self.pid_dir is not None:
                await asyncio.to_thread(_end_leftover_workers, self.pid_dir)
            starting = [asyncio.ensure_future(slot.start()) for slot in self._slots]
            try:
                await asyncio.gather(*starting)
            finally:
                for task in starting:
                    task.cancel()
                await asyncio.gather(*starting, return_exceptions=True)
        except BaseException:
            await self.close()
            raise
        log.info(
            "engine pool ready: %d worker(s) with %s weights in %.1fs",
            self.size,
            self.weights,
            time.perf_counter() - started,
        )

    async def _shut_down(self) -> None:
        atexit.unregister(self._kill_workers)
        log.info("engine pool closed")

    @property
    def warm(self) -> bool:
        """True once every worker has loaded the model, until the pool closes."""
        return self._started and not self._closed and all(slot.ready for slot in self._slots)

    def _kill_workers(self) -> None:
        for slot in self._slots:
            _kill(slot.process)


@contextlib.contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    """Start a worker with SIGTERM and SIGINT blocked (it inherits the mask), so that one sent
    to the process group while it starts stays pending until the worker ignores it."""
    # The resource tracker unblocks both when it starts, which would undo this.
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, worker.STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _kill(process: BaseProcess | None) -> None:
    # ValueError: the Process object has been closed, so the process was reaped already.
    with contextlib.suppress(ProcessLookupError, ValueError):
        if process is not None and process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)


async def _exit_status(process: BaseProcess, timeout: float) -> int | None:
    """The process's exit code once it has exited (negative: the signal), or None after
    ``timeout`` seconds. Its pipe closes as soon as it starts to exit, but the status comes
    only once the kernel has torn down its memory."""
    deadline = time.monotonic() + timeout
    while (code := process.exitcode) is None and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    return code


async def _exit_description(process: BaseProcess | None) -> str:
    code = None if process is None else await _exit_status(process, _EXIT_STATUS_WAIT)
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _gpu_note(gpu: str | None) -> str:
    return f", GPU {gpu}" if gpu is not None else ""


# -- pid files -----------------------------------------------------------------------------
# One file per worker, ``worker-PID.pid``, holding JSON: the worker's pid and start time, and
# its parent's. A pid alone may have been reused by an unrelated process since; a pid with its
# start time (clock ticks after boot, from /proc/PID/stat) names one process for good.


def _write_pid_file(pid_dir: Path, pid: int) -> None:
    """Record a worker this process started, so that a later pool can end it if we die."""
    record = {
        "pid": pid,
        "started": start_time(pid),
        "parent": os.getpid(),
        "parent_started": start_time(os.getpid()),
    }
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"worker-{pid}.pid").write_text(json.dumps(record) + "\n")


def _remove_pid_file(pid_dir: Path, pid: int) -> None:
    (pid_dir / f"worker-{pid}.pid").unlink(missing_ok=True)


def _end_leftover_workers(pid_dir: Path) -> None:
    """SIGKILL each worker recorded in ``pid_dir`` that is still running while the pool that
    started it is gone, wait until it has exited (so a GPU's memory is free again), and remove
    every pid file but those of a live pool."""
    for path in sorted(pid_dir.glob("worker-*.pid")):
        try:
            record = json.loads(path.read_text())
            pid, started = int(record["pid"]), record["started"]
            parent, parent_started = int(record["parent"]), record["parent_started"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("removing unreadable pid file %s (%s)", path, err)
            path.unlink(missing_ok=True)
            continue
        if started is not None and start_time(pid) == started and _is_worker(pid):
            if parent_started is not None and start_time(parent) == parent_started:
                log.warning(
                    "worker pid %d belongs to a pool that is still running (pid %d); "
                    "not touching it",
                    pid,
                    parent,
                )
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            log.warning("ended worker pid %d left over by an earlier bot", pid)
            deadline = time.monotonic() + _EXIT_STATUS_WAIT
            while start_time(pid) == started and time.monotonic() < deadline:
                time.sleep(_POLL)
        path.unlink(missing_ok=True)


def _is_worker(pid: int) -> bool:
    """Whether ``pid`` runs a process started by multiprocessing's spawn (our workers' kind)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"--multiprocessing-fork" in argv and any(b"spawn_main" in arg for arg in argv)
