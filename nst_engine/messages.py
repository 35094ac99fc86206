"""What the job runner (`nst_engine.runner`) and a worker say to each other, wherever the worker
runs: a process of the local pool (`nst_engine.worker`) or a Ray actor (`nst_engine.ray.actor`).

Each message is a frozen dataclass with named fields, pickled on its way:

    runner → worker   JobOrder                   a job to run, under its ticket
                      Cancel                     stop that job before its next step
    worker → runner   Loaded | LoadFailed        once, after loading the model (a pool's worker;
                                                 a Ray actor answers its `ready` probe instead)
                      Progressed                 throttled; some carry a preview
                      Finished | Failed          a job's last message
                      UnknownJob                 a Ray actor never ran the job (Ray restarted it)

A ticket names one job, so a late cancel can never stop the next one. A job's result always
comes after its last progress report.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

from nst_engine.backend import AnyJob
from nst_engine.errors import NSTError
from nst_engine.options import Progress


class TimedOut(Exception):
    """A job used up its time limit; the runner turns it into `JobTimeout`."""


class RemoteTraceback(Exception):
    """Carries a worker's traceback text, as the cause of the error it sent."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f"\n\nin the worker process:\n{self.text}"


@dataclass(frozen=True)
class JobOrder:
    """A job as the runner hands it to a worker."""

    # Names the job between the runner and its worker.
    ticket: int
    # What to paint (a picture or an animation), with its options and time limit.
    job: AnyJob


@dataclass(frozen=True)
class Cancel:
    """Stop job ``ticket`` before its next step (nothing, if it has ended)."""

    ticket: int


@dataclass(frozen=True)
class Loaded:
    """The worker has loaded the model and waits for jobs."""


@dataclass(frozen=True)
class LoadFailed:
    """The worker could not load the model; it exits."""

    # Why, as an exception that pickles (see `portable`).
    error: Exception


@dataclass(frozen=True)
class Progressed:
    """A job's progress report (with no ``snapshot``; some carry a ``preview``)."""

    ticket: int
    progress: Progress


@dataclass(frozen=True)
class Finished:
    """A job's result: it ran to its end, or stopped early when cancelled."""

    ticket: int
    # A StyleResult for a `Job`, an AnimationResult for an `AnimationJob`.
    result: Any
    # Why the worker should be replaced before its next job (`nst_engine.worker.Growth`).
    outgrown: str | None = None


@dataclass(frozen=True)
class Failed:
    """A job's error."""

    ticket: int
    # The error, as an exception that pickles (see `portable`).
    error: Exception
    # The worker's traceback of an error the engine did not raise on purpose, else None.
    traceback: str | None = None
    # Why the worker should be replaced before its next job (`nst_engine.worker.Growth`).
    outgrown: str | None = None

    def exception(self) -> Exception:
        """The error to raise on the runner's side, the worker's traceback as its cause."""
        if self.traceback:
            self.error.__cause__ = RemoteTraceback(self.traceback)
        return self.error


@dataclass(frozen=True)
class UnknownJob:
    """A Ray actor was asked about a job it never ran: Ray restarted it in between."""

    ticket: int


def portable(err: BaseException) -> Exception:
    """An exception that survives pickling: engine errors as they are, anything else as text
    (TensorFlow's, say, may not unpickle in the parent); its traceback goes separately."""
    if type(err) is ValueError or (isinstance(err, NSTError) and _pickles(err)):
        return err  # type: ignore[return-value]
    if isinstance(err, ValueError):
        return ValueError(str(err))
    return RuntimeError(f"{type(err).__name__}: {err}")


def _pickles(err: BaseException) -> bool:
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001 - any failure means "send it as text"
        return False
    return True
