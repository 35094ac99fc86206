"""Ends what a one-host Ray started by a bot leaves behind when that bot dies.

    python -m nst_engine.ray.guard PID [PID ...]    # stdin: a pipe the bot holds open

When `RayBackend` starts Ray itself (no ``address``), Ray's head processes are the bot's
children and most die with it; but two of them, its dashboard and runtime-env agents (about
100 MB each), outlive a bot killed with SIGKILL: they wait forever to report their raylet's
death to the dead head. The bot starts this guard, in a session of its own, with the pids of
the processes that `ray.init` started. The guard notes them and every process descended from
them once a second; when the pipe reads end-of-file (the bot is gone, or closed the backend),
it waits a moment for Ray's own clean-up, then SIGKILLs those it noted that still run (a pid
is matched with its start time, so a reused pid is never hit).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time

from nst_engine.processes import descendants, kill_noted, noted

# Seconds between looks at the bot's processes, and given to Ray's own clean-up.
_LOOK = 1.0
_GRACE = 2.0


def watch(roots: list[int], pipe: int) -> list[int]:
    """Note ``roots`` and their descendants until ``pipe`` ends; then SIGKILL those still
    running. Returns the pids it ended."""
    seen: dict[int, str] = {}
    while True:
        for pid, started in noted(descendants(roots)).items():
            if pid != os.getpid():
                seen.setdefault(pid, started)
        readable, _, _ = select.select([pipe], [], [], _LOOK)
        if readable and not os.read(pipe, 4096):
            break
    time.sleep(_GRACE)
    return kill_noted(seen)


def main() -> None:
    # Its own session already; signals meant for the bot's process group never reach it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ended = watch([int(pid) for pid in sys.argv[1:]], sys.stdin.fileno())
    if ended:
        print(
            f"nst ray guard: ended {len(ended)} Ray process(es) the bot left behind",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
