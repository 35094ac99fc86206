"""The test run's own configuration (pyproject.toml: every test in a pytest-xdist worker), tried
on a small pytest run of its own: a Ray head lost under a test fails that test by name, and the
run goes on to its summary, with a new head for the Ray test after it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOST_HEAD = textwrap.dedent(
    """
    import os
    import signal
    import time

    import pytest

    from nst_engine.ray.loopback import ENV, LoopbackHead

    os.environ.update(ENV)

    import ray  # noqa: E402


    @ray.remote
    def one():
        return 1


    @pytest.fixture(scope="module")
    def head():
        with LoopbackHead(cpus=1) as head:
            yield head


    def test_a_head_lost_mid_test(head):
        ray.init(address=head.address)
        for pid in head.pids():
            os.kill(pid, signal.SIGKILL)
        time.sleep(60)  # Ray's driver ends this process 5 s after its head's GCS is gone
        pytest.fail("the driver outlived its head")


    def test_a_ray_test_after_it(head):
        ray.init(address=head.address)
        assert ray.get(one.remote()) == 1
        ray.shutdown()


    def test_a_test_after_it():
        pass
    """
)


def test_a_head_lost_under_a_test_fails_that_test_and_not_the_run(tmp_path):
    (tmp_path / "test_lost_head.py").write_text(LOST_HEAD)
    # The heads' folders (short: Ray's socket paths must fit in 107 bytes), so that whatever is
    # left of them is found and removed.
    heads = tempfile.mkdtemp(prefix="nst-")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": heads,
        "RAY_gcs_rpc_server_reconnect_timeout_s": "5",
    }
    # The project's pytest settings (its addopts), on this one file.
    settings = ["-c", str(ROOT / "pyproject.toml"), "--rootdir", ".", "-p", "no:cacheprovider"]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *settings, "-rA", "test_lost_head.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        left = _processes_under(heads)
    finally:
        for pid in _processes_under(heads):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(heads, ignore_errors=True)

    out = run.stdout
    assert "1 failed, 2 passed" in out.splitlines()[-1], out + run.stderr
    assert "FAILED test_lost_head.py::test_a_head_lost_mid_test - " in out
    assert "PASSED test_lost_head.py::test_a_ray_test_after_it" in out
    assert "PASSED test_lost_head.py::test_a_test_after_it" in out
    assert "crashed while running 'test_lost_head.py::test_a_head_lost_mid_test'" in out
    assert run.returncode == 1
    assert left == []


def _processes_under(folder: str) -> list[int]:
    """Processes whose command line names ``folder``: every Ray head started there."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and folder.encode() in command:
            found.append(int(entry.name))
    return found
