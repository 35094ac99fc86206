"""Engine workers never outlive their pool's process, ignore signals meant for it, and a pool
ends the workers an earlier one left behind.

A pool in a separate Python process (`PARENT`, in its own session) stands for the bot, so that
the tests can kill it or signal its whole process group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from nst_engine import StyleOptions
from nst_engine.pool import EnginePool, Job, WorkerDied, _write_pid_file
from nst_engine.processes import start_time
from tests.support import gradient_image, stripes_image

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parents[2]

# A pool with one worker that runs one job of argv[1] steps and prints, as JSON lines, its
# worker pids once the job runs, then the steps done; it survives SIGTERM and SIGINT, as the
# bot does while it drains.
PARENT = """
import asyncio, json, signal, sys
from nst_engine import StyleOptions
from nst_engine.pool import EnginePool, Job
from tests.support import gradient_image, stripes_image

async def main(steps, pid_dir):
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: print("signalled", flush=True))
    async with EnginePool("random", workers=1, progress_interval=0, pid_dir=pid_dir) as pool:
        options = StyleOptions(max_size=32, steps=steps)
        handle = pool.submit(Job(gradient_image(32, 32), (stripes_image(32, 32),), options))
        await anext(aiter(handle.events()))
        print(json.dumps({"workers": pool.worker_pids()}), flush=True)
        print(json.dumps({"steps": (await handle.result()).steps}), flush=True)

if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie has exited already)."""
    return start_time(pid) is not None


def children(pid: int) -> dict[int, bytes]:
    """The running processes whose parent is ``pid``, with their command lines."""
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            status = (proc / "status").read_text()
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if f"\nPPid:\t{pid}\n" in status and alive(int(proc.name)):
            found[int(proc.name)] = command
    return found


async def wait_gone(pids, timeout: float) -> list[int]:
    """Wait until none of ``pids`` runs, for ``timeout`` seconds at most; those still running."""
    deadline = time.monotonic() + timeout
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return left


def kill_all(pids) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Parent:
    """`PARENT` running; what it prints goes to a file, never to a pipe that a worker it leaves
    behind would hold open."""

    process: asyncio.subprocess.Process
    out: Path
    lines_read: int = 0

    async def line(self, timeout: float = 120) -> dict:
        """The next JSON line it prints (its notes about signals are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.out.read_text().splitlines(keepends=True)
            for text in lines[self.lines_read :]:
                if not text.endswith("\n"):
                    break
                self.lines_read += 1
                if text.startswith("{"):
                    return json.loads(text)
            assert self.process.returncode is None, "the parent process ended early"
            assert time.monotonic() < deadline, "the parent process printed nothing in time"
            await asyncio.sleep(0.1)


@asynccontextmanager
async def pool_process(tmp_path: Path, steps: int) -> AsyncIterator[Parent]:
    """`PARENT` in its own session; every process it started is killed afterwards."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    out = tmp_path / "parent.out"
    with open(out, "wb") as stdout, open(tmp_path / "parent.log", "wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            str(steps),
            str(tmp_path / "workers"),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        yield Parent(process, out)
    finally:
        if process.returncode is None:
            started = list(children(process.pid))
            process.kill()
            kill_all(started)
        await process.wait()


async def test_workers_die_with_a_parent_killed_by_sigkill(tmp_path) -> None:
    async with pool_process(tmp_path, steps=5000) as parent:
        workers = (await parent.line())["workers"]
        started = children(parent.process.pid)
        # One worker and multiprocessing's resource tracker; no Manager, no other helper.
        assert set(started) - set(workers) == {
            pid for pid, command in started.items() if b"resource_tracker" in command
        }
        assert set(workers) <= set(started) and len(started) == len(workers) + 1
        assert all(alive(pid) for pid in workers)

        parent.process.kill()  # SIGKILL, to the parent alone: its workers are not told
        await parent.process.wait()
        left = await wait_gone(started, timeout=5)
        kill_all(left)
        assert left == [], f"still running after their parent died: {left}"
    # The pid file is left for the next pool on that directory to clean up.
    assert [p.name for p in (tmp_path / "workers").iterdir()] == [f"worker-{workers[0]}.pid"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_to_the_whole_process_group_leaves_the_running_job_alone(
    tmp_path, signum
) -> None:
    async with pool_process(tmp_path, steps=200) as parent:
        workers = (await parent.line())["workers"]
        os.killpg(parent.process.pid, signum)  # as systemd's KillMode=control-group, or Ctrl-C
        assert await parent.line() == {"steps": 200}
        assert await asyncio.wait_for(parent.process.wait(), 60) == 0
    assert await wait_gone(workers, timeout=5) == []
    log = (tmp_path / "parent.log").read_text()
    assert "Traceback" not in log and "could not send" not in log, log


@pytest.fixture
def orphan(tmp_path):
    """A worker left over by a pool whose process died: a spawned multiprocessing process with
    its pid file, whose parent exited without ending it (and which asked for no parent-death
    signal, as on another OS or with an older bot)."""
    script = f"""
import multiprocessing, os, sys, time
from pathlib import Path
from nst_engine.pool import _write_pid_file
if __name__ == "__main__":
    process = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(300,))
    process.start()
    _write_pid_file(Path({str(tmp_path / "workers")!r}), process.pid)
    print(process.pid, flush=True)
    os._exit(0)
"""
    maker = tmp_path / "make_orphan.py"
    maker.write_text(script)
    # The orphan keeps the maker's stdout open: read one line, not to the end.
    with subprocess.Popen(
        [sys.executable, str(maker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    ) as maker_process:
        pid = int(maker_process.stdout.readline())
        assert maker_process.wait(60) == 0
    assert alive(pid)
    yield pid
    kill_all([pid])


async def test_a_pool_ends_workers_an_earlier_one_left_and_nothing_else(
    tmp_path, orphan, caplog
) -> None:
    pid_dir = tmp_path / "workers"
    # Pid files of: an unrelated process that has taken a recorded pid (same start time, so
    # only its command line tells), a process that has exited, and a garbled file.
    sleeper = subprocess.Popen(["sleep", "300"])
    unrelated = {"pid": sleeper.pid, "started": start_time(sleeper.pid)}
    (pid_dir / f"worker-{sleeper.pid}.pid").write_text(
        json.dumps(unrelated | {"parent": 1, "parent_started": None})
    )
    exited = subprocess.Popen(["true"])
    exited.wait()
    (pid_dir / f"worker-{exited.pid}.pid").write_text(
        json.dumps({"pid": exited.pid, "started": "1", "parent": 1, "parent_started": None})
    )
    (pid_dir / "worker-7.pid").write_text("{not json")
    # And a worker of a pool that is still running (this process): not a leftover.
    spawn = multiprocessing.get_context("spawn")
    busy = spawn.Process(target=time.sleep, args=(300,), daemon=True)
    busy.start()
    _write_pid_file(pid_dir, busy.pid)
    try:
        caplog.set_level(logging.INFO, logger="nst_engine.pool")
        async with EnginePool("random", workers=1, pid_dir=pid_dir) as pool:
            assert await wait_gone([orphan], timeout=1) == []
            ended = [r.getMessage() for r in caplog.records if "left over" in r.getMessage()]
            assert ended == [f"ended worker pid {orphan} left over by an earlier bot"]
            assert sleeper.poll() is None and busy.is_alive()
            (worker,) = pool.worker_pids()
            assert sorted(p.name for p in pid_dir.iterdir()) == sorted(
                [f"worker-{worker}.pid", f"worker-{busy.pid}.pid"]
            )
        assert [p.name for p in pid_dir.iterdir()] == [f"worker-{busy.pid}.pid"]
    finally:
        sleeper.kill()
        sleeper.wait()
        busy.kill()
        busy.join()


async def test_a_worker_whose_pipe_closes_exits_at_its_next_step() -> None:
    """The portable half of "never outlive the parent": the end of the pipe stops a job."""
    options = StyleOptions(max_size=32, steps=5000)
    async with EnginePool("random", workers=1, progress_interval=0) as pool:
        handle = pool.submit(Job(gradient_image(32, 32), (stripes_image(32, 32),), options))
        await anext(aiter(handle.events()))
        pid = handle.worker_pid
        pool._slots[0].writer.close()  # what the worker sees when its parent is gone
        with pytest.raises(WorkerDied, match=r"stopped unexpectedly \(exit code 0\)"):
            await asyncio.wait_for(handle.result(), 30)
        assert not alive(pid)
        await asyncio.wait_for(pool.wait_warm(), 60)  # replaced
        assert pool.worker_pids() != [pid]
