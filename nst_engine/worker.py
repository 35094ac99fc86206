"""The worker side of `nst_engine.pool`: what runs inside each worker process.

The pool's executor calls `initialize` once when the process starts (it loads VGG19), `ping` to
learn that the model is ready, and `run` for each job. Progress goes back to the parent as
``(ticket, Progress)`` tuples on a queue shared by all workers; ``(ticket, None)`` marks the end
of a job's events. The parent stops a job by writing its ticket into this worker's ``stop`` slot
(shared memory, no lock), which `run` reads before every step.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nst_engine.errors import NSTError
from nst_engine.model import VGG19Features, quiet_tensorflow
from nst_engine.options import Progress, StyleOptions, StyleResult
from nst_engine.transfer import load_model, stylize

log = logging.getLogger(__name__)

Send = Callable[[Progress], None]

# How much lower than the parent's the workers' scheduling priority is.
_NICENESS = 10


class TimedOut(Exception):
    """Raised by `run` when a job used up its time limit; the pool turns it into `JobTimeout`."""


@dataclass
class _Worker:
    """What a worker process keeps between jobs."""

    # The loaded network, or None when loading failed (then `error` says why).
    model: VGG19Features | None
    error: Exception | None
    # Manager queue proxy for (ticket, Progress | None) tuples to the parent.
    events: Any
    # Shared-memory int: the ticket of the job the parent wants stopped.
    stop: Any
    preview_interval: float
    progress_interval: float


# The one module global: an executor can only hand a function its arguments, and the model (plus
# the channels to the parent) must outlive each call, because loading VGG19 costs seconds.
_worker: _Worker | None = None


def initialize(
    weights: str,
    seed: int,
    gpu: str | None,
    cpu_threads: int | None,
    events: Any,
    stop: Any,
    preview_interval: float,
    progress_interval: float,
    memory_limit_mb: int | None = None,
) -> None:
    """Executor initializer: pin the GPU, configure TensorFlow and load the model once."""
    global _worker
    # Ctrl-C reaches the whole process group; the parent decides how its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Below the parent's priority, so the server's event loop gets a core when it needs one.
    os.nice(_NICENESS)
    if gpu is not None:
        # Must happen before TensorFlow is imported, or every GPU is already claimed.
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    model: VGG19Features | None = None
    error: Exception | None = None
    try:
        _configure_tensorflow(gpu is not None, cpu_threads)
        model = load_model(weights, seed=seed)
        if memory_limit_mb:
            # One tiny job first: TensorFlow's thread pools and first traces map memory that
            # the cap must not count against pictures.
            tiny = np.full((64, 64, 3), 128, np.uint8)
            for precision in ("float32", "auto"):
                options = StyleOptions(max_size=64, steps=2, precision=precision)
                stylize(tiny, tiny, options.replace(coarse_fraction=0.5), model=model)
            _cap_memory(memory_limit_mb)
    except Exception as err:  # noqa: BLE001 - kept for `ping`, which reports it to the parent
        # Raising here would break the executor with no message; `ping` re-raises it instead.
        error = err
    _worker = _Worker(model, error, events, stop, preview_interval, progress_interval)


def _cap_memory(extra_mb: int) -> None:
    """Let this process map at most ``extra_mb`` more than it does now (the model loaded), so a
    picture too large for the host fails with an out-of-memory error instead of taking the
    machine down; TensorFlow then raises ResourceExhaustedError, which jobs report."""
    import resource

    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmSize:"))
    mapped = int(line.split()[1]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra_mb * 2**20, resource.RLIM_INFINITY))


def ping() -> int:
    """This worker's process id once its model is loaded; re-raises the loading error if not."""
    state = _state()
    if state.error is not None:
        raise _portable(state.error)
    return os.getpid()


def run(
    ticket: int,
    content: np.ndarray,
    styles: Sequence[np.ndarray],
    options: StyleOptions,
    timeout: float | None,
) -> StyleResult:
    """Run one job with the worker's model, reporting progress and obeying stop and timeout."""
    state = _state()
    if state.model is None:
        raise _portable(state.error or RuntimeError("the model is not loaded"))
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    timed_out = False

    def should_stop() -> bool:
        nonlocal timed_out
        if time.monotonic() >= deadline:
            timed_out = True
        return timed_out or state.stop.value == ticket

    reporter = Reporter(
        lambda progress: _put(state, (ticket, progress)),
        preview_interval=state.preview_interval,
        progress_interval=state.progress_interval,
    )
    try:
        result = stylize(
            content,
            list(styles),
            options,
            model=state.model,
            on_progress=reporter,
            should_stop=should_stop,
        )
        reporter.finish()
    except (NSTError, ValueError) as err:
        raise _portable(err) from None
    except Exception as err:  # noqa: BLE001 - anything else must still cross the process boundary
        raise _portable(err) from err
    finally:
        _put(state, (ticket, None))
    if timed_out:
        raise TimedOut(f"stopped after {result.steps} steps")
    return result


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


def _state() -> _Worker:
    if _worker is None:
        raise RuntimeError("nst_engine.worker.initialize has not run in this process")
    return _worker


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


def _put(state: _Worker, item: tuple[int, Progress | None]) -> None:
    try:
        state.events.put(item)
    except Exception:  # noqa: BLE001 - progress is best effort; the result still goes back
        log.warning("could not send progress to the parent", exc_info=True)


def _portable(err: BaseException) -> Exception:
    """An exception that survives pickling: engine errors as they are, anything else as text.

    Arbitrary exceptions (TensorFlow's, say) may not unpickle in the parent, which would break
    the executor; their traceback still reaches the parent through the executor's remote
    traceback, which the pool logs.
    """
    if type(err) is ValueError or (isinstance(err, NSTError) and _pickles(err)):
        return err  # type: ignore[return-value]
    if isinstance(err, ValueError):
        return ValueError(str(err))
    return RuntimeError(f"{type(err).__name__}: {err}")


def _pickles(err: BaseException) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any failure means "send it as text"
        return False
    return True
