"""Ends what a Ray started on this host leaves behind when the process that started it dies.

    python -m nst_engine.ray.guard [--group PGID] [--folder DIR] PID [PID ...]
    # stdin: a pipe that only the starter holds; more PIDs may come on it, one a line

Two starters use it, through `Guard`:

- `RayBackend`, when it starts Ray itself (no ``address``): Ray's head processes are the bot's
  children and most die with it, but two of them, its dashboard and runtime-env agents (about
  100 MB each), outlive a bot killed with SIGKILL, waiting forever to report their raylet's
  death to the dead head.
- `nst_engine.ray.loopback`'s heads and clusters for the tests and benchmarks: a test process
  killed outright (SIGKILL, a CI timeout) never stops them, and they and their folder would
  stay on the machine for good.

The guard runs in a session of its own (signals meant for the starter's process group leave
it be) and notes the processes it was given and every process descended from them (and those
of ``--group`` while its leader, one of them, runs) once a second. When its pipe reads
end-of-file (the starter is gone, or has stopped its Ray and let the guard go), it waits a
moment for Ray's own clean-up, then SIGKILLs those it noted that still run (a pid is matched
with its start time, so a reused pid is never hit) and removes ``--folder``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from nst_engine.processes import descendants, kill_noted, noted, start_time, still_running

# Seconds between looks at the starter's processes, and given to Ray's own clean-up.
_LOOK = 1.0
_GRACE = 2.0


class Guard:
    """The starter's side of a guard watching ``pids`` (see the module) for as long as this
    process holds its pipe open; ``grace``: seconds it leaves Ray's own clean-up before it
    ends what is left; ``stderr``: where its one line on what it ended goes (None: this
    process's)."""

    def __init__(
        self,
        pids: Iterable[int],
        *,
        group: int | None = None,
        folder: Path | None = None,
        grace: float = _GRACE,
        stderr: int | None = None,
    ) -> None:
        command = [sys.executable, "-m", __name__, *map(str, pids), "--grace", str(grace)]
        command += [] if group is None else ["--group", str(group)]
        command += [] if folder is None else ["--folder", str(folder)]
        # The pipe's write end is this process's alone: Python makes it close-on-exec, so no
        # process started from here (Ray's included) holds the guard's input open.
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )

    def follow(self, pids: Iterable[int]) -> None:
        """More processes to watch (and what descends from them): a node added later."""
        lines = "".join(f"{pid}\n" for pid in pids).encode()
        # A guard that has died leaves the cluster as it was without one: no worse.
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.write(lines)
            self._process.stdin.flush()

    def close(self, timeout: float) -> None:
        """Let the guard go (it ends what it noted that still runs, removes its folder, and
        exits), and wait up to ``timeout`` seconds for it to finish."""
        with contextlib.suppress(BrokenPipeError):
            self._process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout)


def watch(
    roots: list[int], pipe: int, *, group: int | None = None, grace: float = _GRACE
) -> list[int]:
    """Note ``roots`` (and those read from ``pipe``, one pid a line) and their descendants
    until ``pipe`` ends; then, ``grace`` seconds on, SIGKILL those still running. Returns the
    pids it ended."""
    seen = noted(roots)
    leader = seen.get(group) if group is not None else None
    unread = b""
    while True:
        # The group counts while its leader is the one noted: once no process of it is left,
        # its number may be a new process's.
        grouped = group if leader is not None and start_time(group) == leader else None
        # From those still running only: a pid reused since is another's, and so are its
        # children.
        for pid, started in noted(descendants(still_running(seen), group=grouped)).items():
            if pid != os.getpid():
                seen.setdefault(pid, started)
        readable, _, _ = select.select([pipe], [], [], _LOOK)
        if readable:
            chunk = os.read(pipe, 4096)
            if not chunk:
                break
            *lines, unread = (unread + chunk).split(b"\n")
            seen.update(noted(int(line) for line in lines if line.strip()))
    time.sleep(grace)
    return kill_noted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pids", type=int, nargs="*")
    parser.add_argument("--group", type=int, help="a process group that is the cluster's too")
    parser.add_argument("--folder", type=Path, help="removed at the end")
    parser.add_argument("--grace", type=float, default=_GRACE, help="seconds for Ray's clean-up")
    args = parser.parse_args()
    # Its own session already; signals meant for the starter's process group never reach it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ended = watch(args.pids, sys.stdin.fileno(), group=args.group, grace=args.grace)
    if args.folder is not None:
        shutil.rmtree(args.folder, ignore_errors=True)
    if ended:
        print(
            f"nst ray guard: ended {len(ended)} Ray process(es) left behind",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
