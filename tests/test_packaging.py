"""What ships beside the code: the Docker image, docker-compose.yml, .gitignore and the README."""

from __future__ import annotations

import ast
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    """The arguments of every ``name`` instruction in the Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        line.split(None, 1)[1].strip()
        for line in joined.splitlines()
        if line.split(None, 1)[:1] == [name]
    ]


def test_the_image_keeps_its_data_in_a_volume():
    (env,) = instruction("ENV")
    data_dir = re.search(r"NST_DATA_DIR=(\S+)", env).group(1)
    assert data_dir in instruction("VOLUME")


@contextmanager
def healthz(status: int) -> Iterator[int]:
    """A loopback /healthz answering ``status``; yields its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(status if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run_health_check(port: str) -> int:
    """The HEALTHCHECK's command as Docker runs it (``sh -c``), with this Python as ``python``."""
    (check,) = instruction("HEALTHCHECK")
    command = check.split(" CMD ", 1)[1]
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "NST_HTTP_PORT": port,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    if not (bin_dir / "python").exists():
        pytest.skip("no 'python' beside this interpreter")
    return subprocess.run(["sh", "-c", command], env=env, timeout=60).returncode


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_the_health_check_asks_the_port_nst_http_port_names():
    (check,) = instruction("HEALTHCHECK")
    assert ":8080" not in check
    with healthz(200) as port:
        assert run_health_check(str(port)) == 0
    with healthz(503) as port:
        assert run_health_check(str(port)) != 0
    assert run_health_check("0") == 0  # the server is off: nothing to ask


def test_the_image_pins_the_tensorflow_the_tests_ran_on():
    (base,) = instruction("FROM")
    pinned = re.search(r"ARG TF_VERSION=(\S+)", DOCKERFILE).group(1)
    assert base == "tensorflow/tensorflow:${TF_VERSION}-gpu"
    assert any('"tensorflow==${TF_VERSION}"' in run for run in instruction("RUN"))
    tested = metadata.version("tensorflow")
    assert pinned.split(".")[:2] == tested.split(".")[:2], (
        f"the Docker image pins TensorFlow {pinned}, the tests ran on {tested}: "
        "update ARG TF_VERSION in the Dockerfile"
    )


def test_docker_compose_runs_the_bot_with_its_volume_and_env_file():
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    (bot,) = compose["services"].values()
    assert bot["build"] == "." and bot["env_file"] == ".env"
    volume, _, target = bot["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]
    assert "NST_HTTP_PORT" in bot["ports"][0]


def test_git_ignores_the_bots_data_and_the_built_manual():
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "nst-data/" in ignored and "site/" in ignored
    if shutil.which("git") and (ROOT / ".git").exists():
        run = subprocess.run(
            ["git", "check-ignore", "-q", "nst-data/jobs.sqlite3"], cwd=ROOT, timeout=60
        )
        assert run.returncode == 0


def test_the_readme_is_a_readme():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; the manual lives in docs/"


def names_in_the_manual() -> set[str]:
    """Dotted names of our modules (and of what they define) quoted in the README and docs/."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    spans = [span for page in pages for span in re.findall(r"`([^`]+)`", page.read_text())]
    names = re.findall(r"\b(?:bot|nst_engine|bench|tests)(?:\.[A-Za-z_]\w*)+", " ".join(spans))
    # File names that look dotted (`bot.log`) are not modules.
    return {name for name in names if name.rsplit(".", 1)[1] not in {"log", "md", "py", "txt"}}


def test_every_module_the_manual_names_exists():
    missing = []
    for name in sorted(names_in_the_manual()):
        parts = name.split(".")
        # The longest prefix that is a module; the rest must be defined at its top level.
        for cut in range(len(parts), 0, -1):
            try:
                spec = importlib.util.find_spec(".".join(parts[:cut]))
            except ModuleNotFoundError:  # a prefix is a module, not a package
                spec = None
            if spec is not None:
                break
        rest = parts[cut:]
        if rest:
            tree = ast.parse(Path(spec.origin).read_text())
            defined = {
                node.name
                for node in tree.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            } | {
                target.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            if len(rest) > 1 or rest[0] not in defined:
                missing.append(name)
    assert not missing, f"the manual names what does not exist: {missing}"
