"""What runs inside a worker, wherever it runs: a process of `nst_engine.pool`, or a Ray actor
(`nst_engine.ray.actor`). Both load the model with `load` and run each job with `run`.

The pool starts `main` in a spawned process and gives it one end of a duplex pipe (a Unix socket
pair). The worker loads VGG19 once, then runs one job at a time. The messages are those of
`nst_engine.messages`, each pickled and preceded by its length (`HEADER`).

A worker never outlives its parent, whatever kills the parent: on Linux the kernel kills it
(``PR_SET_PDEATHSIG``), and anywhere the end of the pipe (EOF) — read while idle and between two
steps — makes it exit at once. The parent also closes the pipe to stop an idle worker. Workers
ignore SIGTERM and SIGINT: a signal to the whole process group (systemd's default, Ctrl-C) is
for the parent, which lets running jobs finish before it closes the pool.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing.connection
import os
import pickle
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NoReturn, Protocol

import numpy as np

from nst_engine.errors import NSTError
from nst_engine.messages import (
    Cancel,
    Failed,
    Finished,
    JobOrder,
    Loaded,
    LoadFailed,
    Progressed,
    TimedOut,
    portable,
)
from nst_engine.model import VGG19Features, quiet_tensorflow
from nst_engine.options import Progress, StyleOptions
from nst_engine.transfer import load_model, stylize

log = logging.getLogger(__name__)

Send = Callable[[Progress], None]

# Each message on the pipe: its length as 8 bytes (network order), then its pickle.
HEADER = struct.Struct("!Q")
# The signals a worker ignores; the pool starts workers with them blocked until then.
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
# How much lower than the parent's the workers' scheduling priority is.
_NICENESS = 10
# prctl(2) option: the signal this process gets when the thread that started it exits.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process is started with."""

    # Passed to `load_model`: "imagenet", a path to the no-top .h5, or "random".
    weights: str
    # Seed of the random weights (with weights="random").
    seed: int
    # The one GPU this worker may use (CUDA_VISIBLE_DEVICES), or None for the CPU.
    gpu: str | None
    # TensorFlow's intra-op threads on CPU, or None for TensorFlow's default (one per core).
    cpu_threads: int | None
    # Least seconds between two previews, and between two progress reports.
    preview_interval: float
    progress_interval: float
    # How much this worker may map beyond its loaded model (None: no cap).
    memory_limit_mb: int | None = None
    # Replace the worker between jobs once its resident memory has grown by more than this
    # percentage over what it held after its first job (0: never); see `Growth`.
    max_growth_percent: float = 0.0


class Outbox(Protocol):
    """Where `run` sends a job's messages, and learns whether it was cancelled: the pipe to
    the pool, or a Ray actor's mailbox."""

    def send(self, message: Any) -> None: ...

    def cancelled(self, ticket: int) -> bool: ...


def frame(message: Any) -> tuple[bytes, bytes]:
    """A message as it goes on the pipe: its header, then its pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)), data


class Pipe:
    """The worker's end of its pipe to the parent; any sign that the parent is gone ends the
    process (see `_parent_gone`)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock

    def send(self, message: Any) -> None:
        header, data = frame(message)
        try:
            self._sock.sendall(header)
            self._sock.sendall(data)
        except OSError:
            _parent_gone()

    def receive(self) -> Any:
        (size,) = HEADER.unpack(self._read(HEADER.size))
        return pickle.loads(self._read(size))

    def cancelled(self, ticket: int) -> bool:
        """Whether the parent has asked to stop job ``ticket``, reading only what has arrived."""
        while multiprocessing.connection.wait([self._sock], timeout=0):
            if self.receive() == Cancel(ticket):
                return True
        return False

    def _read(self, size: int) -> bytes:
        data = bytearray(size)
        view = memoryview(data)
        while view:
            try:
                got = self._sock.recv_into(view)
            except OSError:
                got = 0
            if got == 0:
                _parent_gone()
            view = view[got:]
        return bytes(data)


def main(sock: socket.socket, parent_pid: int, config: WorkerConfig) -> None:
    """The worker process: load the model, say whether that worked, then run jobs until the
    pipe closes."""
    _ignore_stop_signals()
    _exit_with_parent(parent_pid)
    pipe = Pipe(sock)
    # Below the parent's priority, so the server's event loop gets a core when it needs one.
    os.nice(_NICENESS)
    try:
        model = load(config)
    except Exception as err:  # noqa: BLE001 - reported to the parent, which refuses to start
        pipe.send(LoadFailed(portable(err)))
        return
    pipe.send(Loaded())
    growth = Growth(config.max_growth_percent)
    while True:
        message = pipe.receive()
        if isinstance(message, JobOrder):
            run(pipe, model, config, message, growth)
        # Anything else is a cancel that arrived after its job ended: nothing left to stop.


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    # Ignoring a signal drops it if pending, so one sent while this process started is gone too.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _exit_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process as soon as its parent dies (Linux only; elsewhere the
    pipe's EOF does it, between two steps)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("no parent-death signal: %s", os.strerror(ctypes.get_errno()))
    # The parent may have died before that took effect; then this process has a new parent.
    if os.getppid() != parent_pid:
        _parent_gone()


def _parent_gone() -> NoReturn:
    """The pipe to the parent closed: the parent is shutting the worker down, or has died.
    Either way nobody is left to take a result, so exit without TensorFlow's slow teardown."""
    os._exit(0)


def load(config: WorkerConfig) -> VGG19Features:
    """Pin the GPU, configure TensorFlow and load the model once."""
    if config.gpu is not None:
        # Must happen before TensorFlow is imported, or every GPU is already claimed.
        os.environ["CUDA_VISIBLE_DEVICES"] = config.gpu
    _configure_tensorflow(config.gpu is not None, config.cpu_threads)
    model = load_model(config.weights, seed=config.seed)
    if config.memory_limit_mb and config.gpu is None:
        # Tiny jobs first, one per optimiser and precision: TensorFlow's thread pools, SciPy's
        # L-BFGS and the first traces map memory that the cap must not count against pictures
        # (a worker capped before its first L-BFGS job hung in it instead of failing).
        tiny = np.full((64, 64, 3), 128, np.uint8)
        for optimizer in ("adam", "lbfgs"):
            for precision in ("float32", "auto"):
                options = StyleOptions(max_size=64, steps=2, precision=precision)
                options = options.replace(coarse_fraction=0.5, optimizer=optimizer)
                stylize(tiny, tiny, options, model=model)
        _cap_memory(config.memory_limit_mb)
    return model


def _cap_memory(extra_mb: int) -> None:
    """Let this process map at most ``extra_mb`` more than it does now (the model loaded), so a
    picture too large for the host fails with an out-of-memory error instead of taking the
    machine down; TensorFlow then raises ResourceExhaustedError, which jobs report."""
    import resource

    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    mapped = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra_mb * 2**20, resource.RLIM_INFINITY))


class Growth:
    """Whether a worker has outgrown itself: its resident memory after a job against what it held
    after its first one (the model, TensorFlow's runtime and one picture's buffers loaded).

    TensorFlow's CPU runtime keeps state for every picture size it has run (docs/soak.md): a
    worker that paints many different sizes grows for hundreds of jobs. Past the bound, the
    worker's slot replaces it between two jobs (a model load's wait for the next job), as
    Celery's ``worker_max_memory_per_child`` does; no job is lost.
    """

    def __init__(self, max_percent: float, resident: Callable[[], float | None] | None = None):
        self.max_percent = max_percent
        self._resident = resident or resident_mb
        self.first_mb: float | None = None

    def check(self) -> str | None:
        """After a job: why this worker should be replaced, or None."""
        if not self.max_percent:
            return None
        now = self._resident()
        if now is None:
            return None
        if self.first_mb is None:
            self.first_mb = now
            return None
        growth = (now / self.first_mb - 1) * 100
        if growth <= self.max_percent:
            return None
        return (
            f"its memory grew from {self.first_mb:.0f} MB after its first job to {now:.0f} MB"
            f" (+{growth:.0f}%, more than {self.max_percent:g}%)"
        )


def resident_mb() -> float | None:
    """This process's resident memory in MB now (None where /proc cannot say: not Linux)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(
    outbox: Outbox,
    model: VGG19Features,
    config: WorkerConfig,
    order: JobOrder,
    growth: Growth | None = None,
) -> None:
    """Run one job (a picture, or an animation's frames), reporting its progress and obeying
    cancel and time limit; its last message is its result or its error, and says whether the
    worker has outgrown itself (``growth``)."""
    job, ticket = order.job, order.ticket
    deadline = math.inf if job.timeout is None else time.monotonic() + job.timeout
    stop = timed_out = False

    def should_stop() -> bool:
        nonlocal stop, timed_out
        timed_out = timed_out or time.monotonic() >= deadline
        stop = stop or outbox.cancelled(ticket)
        return timed_out or stop

    reporter = Reporter(
        lambda progress: outbox.send(Progressed(ticket, progress)),
        preview_interval=config.preview_interval,
        progress_interval=config.progress_interval,
    )
    try:
        result = job.paint(model, reporter, should_stop)
        reporter.finish()
    except Exception as err:  # noqa: BLE001 - every outcome goes back to the runner
        # The runner logs the traceback of what the engine did not raise on purpose.
        expected = isinstance(err, NSTError | ValueError)
        trace = None if expected else traceback.format_exc()
        outbox.send(Failed(ticket, portable(err), trace, outgrown=_outgrown(growth)))
        return
    outgrown = _outgrown(growth)
    if timed_out:
        stopped = TimedOut(f"stopped after {job.steps_run(result)} steps")
        outbox.send(Failed(ticket, stopped, outgrown=outgrown))
    else:
        outbox.send(Finished(ticket, result, outgrown=outgrown))


def _outgrown(growth: Growth | None) -> str | None:
    return None if growth is None else growth.check()


class Reporter:
    """Throttles `Progress` reports: at most one per ``progress_interval`` seconds plus always
    the final step, with a preview rendered at most every ``preview_interval`` seconds."""

    def __init__(
        self,
        send: Send,
        *,
        preview_interval: float,
        progress_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._preview_interval = preview_interval
        self._progress_interval = progress_interval
        self._clock = clock
        self._last_sent = -math.inf
        self._last_preview = -math.inf
        # The newest report not yet sent (without its snapshot), sent by `finish`.
        self._pending: Progress | None = None

    def __call__(self, progress: Progress) -> None:
        now = self._clock()
        final = progress.step >= progress.total
        if not final and now - self._last_sent < self._progress_interval:
            self._pending = replace(progress, snapshot=None, preview=None)
            return
        preview = None
        if now - self._last_preview >= self._preview_interval:
            preview = progress.preview
            if preview is None and progress.snapshot is not None:
                preview = progress.snapshot()
            if preview is not None:
                self._last_preview = now
        self._last_sent = now
        self._pending = None
        self._send(replace(progress, snapshot=None, preview=preview))

    def finish(self) -> None:
        """Send the last step if it was held back (a job stopped before its planned end)."""
        if self._pending is not None:
            self._send(self._pending)
            self._pending = None


def _configure_tensorflow(on_gpu: bool, cpu_threads: int | None) -> None:
    quiet_tensorflow()
    import tensorflow as tf

    if on_gpu:
        # Without memory growth TensorFlow takes the whole GPU at the first operation.
        for device in tf.config.list_physical_devices("GPU"):
            tf.config.experimental.set_memory_growth(device, True)
    elif cpu_threads:
        # Several CPU workers would otherwise each start one thread per core and fight.
        tf.config.threading.set_intra_op_parallelism_threads(cpu_threads)
