"""A one-host Ray head that listens on 127.0.0.1 only, for the tests and the benchmark.

    with LoopbackHead(cpus=2) as head:               # before this process imports Ray
        async with RayBackend("random", address=head.address) as backend:
            ...

Ray binds the machine's outward address by default, even when told 127.0.0.1; Ray's one-host
switch (`ENV`, read by every Ray process at import) makes it bind loopback only. The head runs
as ``ray start --head --block`` in a process group of its own, with its own temporary folder,
no dashboard and no usage statistics; `stop` ends that group (the head's processes and every
worker Ray started for it), never ``ray stop``, which would end every Ray of this user here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

# Every Ray process of the cluster listens on 127.0.0.1, sends no usage statistics, and, being
# on loopback only and short-lived, asks for no token (so none is written to ~/.ray).
ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
_START_TIMEOUT = 90.0
_STOP_WAIT = 15.0


class LoopbackHead:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPUs; `address` is for ``ray.init``."""

    def __init__(self, cpus: int = 2, *, object_store_mb: int = 200) -> None:
        self.cpus = cpus
        self.object_store_mb = object_store_mb
        self.port = 0
        self.temp_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        assert self.temp_dir is not None
        return self.temp_dir / "head.log"

    def start(self) -> LoopbackHead:
        """Start the head and wait until it accepts connections. Sets `ENV` in this process
        too, so it must run before this process imports Ray."""
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None and constants.ENABLE_RAY_CLUSTER:
            raise RuntimeError(f"set {ENV} before importing Ray, or it binds outward addresses")
        os.environ.update(ENV)
        self.port = _free_port()
        # Short: Ray's socket paths under it must fit in 107 bytes.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="nst-ray-"))
        command = [
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            f"--num-cpus={self.cpus}",
            "--num-gpus=0",
            f"--object-store-memory={self.object_store_mb * 2**20}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={self.temp_dir}",
        ]
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                command,
                env={**os.environ, **ENV},
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _accepts(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"the loopback Ray head did not start:\n{tail}")
            time.sleep(0.2)
        return self

    def pids(self) -> list[int]:
        """Every running process of this cluster: the head's process group and everything
        descended from it (Ray's workers start sessions of their own)."""
        if self._process is None:
            return []
        parents: dict[int, int] = {}
        groups: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                    if fields[0] not in ("Z", "X"):
                        parents[int(entry.name)] = int(fields[1])
                        groups[int(entry.name)] = int(fields[2])
        head = self._process.pid
        found = {pid for pid, group in groups.items() if group == head}
        if head in parents:
            found.add(head)
        grew = True
        while grew:
            more = {pid for pid, parent in parents.items() if parent in found} - found
            found |= more
            grew = bool(more)
        return sorted(found)

    def stop(self) -> None:
        """End the head's processes (SIGTERM to its group, then SIGKILL to whatever of the
        cluster is left) and remove its folder."""
        cluster = {pid: _start_time(pid) for pid in self.pids()}
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_WAIT)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(_STOP_WAIT)
        for pid, started in cluster.items():  # any worker the raylet left behind
            if started is not None and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LoopbackHead:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot), or None if it is not running: a
    pid with its start time names one process, even if the pid is reused later."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]
