"""Processes as /proc shows them: when one started, and what descends from it.

A pid alone may have been reused by an unrelated process since it was noted; a pid with its
start time (clock ticks after boot, from /proc/PID/stat) names one process for good. The pool's
pid files, the Ray guard and the loopback Ray helpers use these to end only what they started.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Mapping
from pathlib import Path


def start_time(pid: int) -> str | None:
    """When process ``pid`` started, or None if it is not running (a zombie has exited
    already) or there is no /proc."""
    fields = _stat(pid)
    return None if fields is None else fields[19]


def descendants(roots: Iterable[int], *, group: int | None = None) -> list[int]:
    """The running processes among ``roots`` and in process group ``group``, and every running
    process descended from them, sorted."""
    roots = set(roots)
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            if pid in roots or int(fields[2]) == group:
                found.add(pid)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return sorted(found)


def noted(pids: Iterable[int]) -> dict[int, str]:
    """The start time of each of ``pids`` that is running: what `kill_noted` takes."""
    return {pid: started for pid in pids if (started := start_time(pid)) is not None}


def still_running(processes: Mapping[int, str]) -> list[int]:
    """Those of ``processes`` (pids with their noted start times) that still run with the start
    time noted for them: a pid reused since is another process's. Sorted."""
    return sorted(pid for pid, started in processes.items() if start_time(pid) == started)


def kill_noted(processes: Mapping[int, str]) -> list[int]:
    """SIGKILL each process that still runs with the start time noted for it (a pid reused
    since is left alone); the pids it ended."""
    ended = []
    for pid in still_running(processes):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            ended.append(pid)
    return ended


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None if the
    process is not running."""
    with contextlib.suppress(OSError, IndexError):
        # The command name, in parentheses, may hold spaces; the fields after it are plain.
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        if fields and fields[0] not in ("Z", "X"):
            return fields
    return None
