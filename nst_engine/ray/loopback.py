"""A one-host Ray head that listens on 127.0.0.1 only, for the tests and the benchmark; and a
cluster of several Ray nodes on this host, for the tests of a node that is lost.

    with LoopbackHead(cpus=2) as head:               # before this process imports Ray
        async with RayBackend("random", address=head.address) as backend:
            ...
    with LoopbackCluster(nodes=2) as cluster:        # a head with no CPUs, two 1-CPU nodes
        ...
        cluster.kill_node(node_id)                   # every process of that node, SIGKILLed
    # a head with no CPU whose worker nodes (one CPU, one GPU each, up to two) Ray's autoscaler
    # adds for actors that wait for room, and removes once idle
    with LoopbackHead(cpus=0, autoscale=AutoscaledNodes(max_nodes=2, gpus=1)) as head:
        ...

The autoscaled nodes come from Ray's own fake multi-node provider, the one behind
`ray.cluster_utils.AutoscalingCluster`, started here without that class: it reads a file the
Ray wheel does not ship and runs ``ray stop --force`` before and after, which would end every
Ray of this user on the host. The nodes are processes of the head's autoscaler, so they end
with the head's process group.

Ray binds the machine's outward address by default, even when told 127.0.0.1; Ray's one-host
switch (`ENV`, read by every Ray process at import) makes it bind loopback only. The head runs
as ``ray start --head --block`` in a process group of its own, with its own temporary folder,
no dashboard and no usage statistics; `stop` ends that group (the head's processes and every
worker Ray started for it), never ``ray stop``, which would end every Ray of this user here.

A process that dies without calling `stop` (SIGKILLed, a CI timeout) would leave its cluster
running and its folder behind for good: each head or cluster has a guard (`nst_engine.ray.guard`,
a small process in a session of its own) that follows the cluster's processes and, once its
starter is gone, ends what of them still runs and removes the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from nst_engine.processes import descendants, kill_noted, noted
from nst_engine.ray.guard import Guard

# Every Ray process of the cluster listens on 127.0.0.1, sends no usage statistics, and, being
# on loopback only and short-lived, asks for no token (so none is written to ~/.ray).
ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
_START_TIMEOUT = 90.0
_STOP_WAIT = 15.0


@dataclass(frozen=True)
class AutoscaledNodes:
    """A worker node type that Ray's autoscaler adds to a `LoopbackHead` on demand (an actor or
    task that no node has room for) and removes once idle."""

    # The most such nodes at once.
    max_nodes: int
    # What each declares to Ray (the GPUs only declared: TensorFlow there finds none).
    cpus: int = 1
    gpus: int = 0
    # Minutes a node without work stays before the autoscaler removes it.
    idle_minutes: float = 0.1

    def config(self, gcs_address: str) -> dict[str, Any]:
        """The cluster configuration ``ray start --autoscaling-config`` reads (that of Ray's
        fake multi-node example, with this node type)."""
        return {
            "cluster_name": "nst-loopback",
            "max_workers": self.max_nodes,
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
                "gcs_address": gcs_address,
            },
            "available_node_types": {
                "ray.head.default": {"resources": {}, "node_config": {}, "max_workers": 0},
                "worker": {
                    "resources": {"CPU": self.cpus, "GPU": self.gpus},
                    "node_config": {},
                    "min_workers": 0,
                    "max_workers": self.max_nodes,
                },
            },
            "head_node_type": "ray.head.default",
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": self.idle_minutes,
            "docker": {},
            "auth": {"ssh_user": "nobody"},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "rsync_exclude": [],
            "rsync_filter": [],
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }


class LoopbackHead:
    """``ray start --head`` on 127.0.0.1 with ``cpus`` CPUs; `address` is for ``ray.init``.
    ``autoscale``: worker nodes that Ray's autoscaler adds and removes (see the module)."""

    def __init__(
        self,
        cpus: int = 2,
        *,
        object_store_mb: int = 200,
        client: bool = False,
        autoscale: AutoscaledNodes | None = None,
    ) -> None:
        self.cpus = cpus
        self.object_store_mb = object_store_mb
        self.client = client
        self.autoscale = autoscale
        self.port = 0
        self.client_port = 0
        self.temp_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._guard: Guard | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        """The head's Ray Client server (``ray://``), when started with ``client=True``."""
        if not self.client:
            raise RuntimeError("this head was started without a Ray Client server")
        return f"ray://127.0.0.1:{self.client_port}"

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
        self.client_port = _free_port() if self.client else 0
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
        if self.client:
            command.append(f"--ray-client-server-port={self.client_port}")
        # Told to end (SIGTERM), a head first drains its node for up to 30 s, asking a GCS that
        # the same SIGTERM has ended: it would end only at the SIGKILL 15 s later.
        env = {**os.environ, **ENV, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
        if self.autoscale is not None:
            config = self.temp_dir / "autoscaling.json"
            config.write_text(json.dumps(self.autoscale.config(self.address)))
            command.append(f"--autoscaling-config={config}")
            # The fake provider refuses to run without the first; the second: look every second.
            env.update(RAY_FAKE_CLUSTER="1", AUTOSCALER_UPDATE_INTERVAL_S="1")
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                command,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        group = self._process.pid
        try:
            self._guard = _guard([group], group=group, folder=self.temp_dir)
        except BaseException:
            self.stop()
            raise
        deadline = time.monotonic() + _START_TIMEOUT
        while not (_accepts(self.port) and (not self.client or _accepts(self.client_port))):
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
        return descendants([self._process.pid], group=self._process.pid)

    def stop(self) -> None:
        """End the head's processes (SIGTERM to its group, then SIGKILL to whatever of the
        cluster is left), remove its folder, and let its guard go."""
        cluster = noted(self.pids())
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
        kill_noted(cluster)  # any worker the raylet left behind
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        # Last, so that a process killed in the middle of this still has its cluster ended.
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.close(_STOP_WAIT)

    def __enter__(self) -> LoopbackHead:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LoopbackCluster:
    """A Ray cluster of a head (no CPUs: it runs no actor) and ``nodes`` worker nodes of
    ``cpus`` CPUs and ``gpus`` GPUs each (declared to Ray: a node here has no real GPU, so the
    actors Ray gives one still compute on the CPU), all on 127.0.0.1 on this host, built with
    Ray's own `ray.cluster_utils.Cluster` (how Ray tests several nodes on one machine: ``ray
    start --address`` refuses to add a node under the loopback switch). The nodes are processes of
    this one, in its process group; they die with it, but not their agents, which the guard
    ends. A lost node is noticed by the head within about two seconds."""

    def __init__(
        self, nodes: int = 2, cpus: int = 1, *, gpus: int = 0, object_store_mb: int = 100
    ) -> None:
        self.nodes = nodes
        self.cpus = cpus
        self.gpus = gpus
        self.object_store_mb = object_store_mb
        self._cluster: Any = None
        self._workers: dict[str, Any] = {}
        self.temp_dir: Path | None = None
        self._guard: Guard | None = None

    @property
    def address(self) -> str:
        return self._cluster.address

    def start(self) -> LoopbackCluster:
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None and constants.ENABLE_RAY_CLUSTER:
            raise RuntimeError(f"set {ENV} before importing Ray, or it binds outward addresses")
        os.environ.update(ENV)
        from ray.cluster_utils import Cluster

        self.temp_dir = Path(tempfile.mkdtemp(prefix="nst-ray-"))
        # Ray's test cluster writes its address in Ray's default folder ($RAY_TMPDIR/ray),
        # whatever the nodes' folder: both ours.
        os.environ["RAY_TMPDIR"] = str(self.temp_dir)
        (self.temp_dir / "ray").mkdir()
        self._guard = _guard([], folder=self.temp_dir)
        try:
            self._cluster = Cluster(
                initialize_head=True,
                connect=False,
                head_node_args={
                    "node_ip_address": "127.0.0.1",
                    "object_store_memory": self.object_store_mb * 2**20,
                    "temp_dir": str(self.temp_dir / "ray"),
                    "num_cpus": 0,
                    "include_dashboard": False,
                    # A node missing three health checks half a second apart is dead.
                    "_system_config": {
                        "health_check_initial_delay_ms": 0,
                        "health_check_period_ms": 500,
                        "health_check_timeout_ms": 500,
                        "health_check_failure_threshold": 3,
                    },
                },
            )
            self._guard.follow(_node_pids(self._cluster.head_node))
            for _ in range(self.nodes):
                self.add_node()
        except BaseException:
            self.stop()
            raise
        return self

    def add_node(self) -> str:
        """Another worker node of ``cpus`` CPUs and ``gpus`` GPUs (a host joining the cluster);
        its id."""
        node = self._cluster.add_node(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            node_ip_address="127.0.0.1",
            object_store_memory=self.object_store_mb * 2**20,
            temp_dir=str(self.temp_dir / "ray"),
        )
        self._workers[node.node_id] = node
        assert self._guard is not None
        self._guard.follow(_node_pids(node))
        return node.node_id

    def node_ids(self) -> list[str]:
        """The worker nodes still running."""
        return list(self._workers)

    def kill_node(self, node_id: str) -> None:
        """Lose a worker node as a crashed host is lost: its raylet, object store and workers
        are killed at once, with no chance to tell the head."""
        processes = noted(descendants(_node_pids(self._workers[node_id])))
        self._cluster.remove_node(self._workers.pop(node_id), allow_graceful=False)
        kill_noted(processes)

    def pids(self) -> list[int]:
        """Every running process of the cluster (its nodes' and their workers')."""
        if self._cluster is None:
            return []
        return descendants(
            pid for node in self._cluster.list_all_nodes() for pid in _node_pids(node)
        )

    def stop(self) -> None:
        """End every node (and what is left of their workers) and remove its folder."""
        if self._cluster is not None:
            cluster = noted(self.pids())
            with contextlib.suppress(Exception):
                self._cluster.shutdown()
            self._cluster = None
            self._workers.clear()
            kill_noted(cluster)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            if os.environ.get("RAY_TMPDIR") == str(self.temp_dir):
                del os.environ["RAY_TMPDIR"]
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.close(_STOP_WAIT)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _guard(pids: list[int], **where: Any) -> Guard:
    """A guard for a loopback cluster: no grace (nothing of the cluster is worth waiting for;
    `stop` has ended it all when it lets the guard go, and waits for it, so that no guard
    outlives a stopped cluster), and its output not this process's, whose reader would wait
    for its end."""
    return Guard(pids, grace=0.0, stderr=subprocess.DEVNULL, **where)


def _node_pids(node: Any) -> list[int]:
    """The processes a Ray node started itself (its raylet, object store, agents…)."""
    return [info.process.pid for infos in node.all_processes.values() for info in infos]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0
