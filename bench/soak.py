"""A long run through the Discord emulator: memory stays flat, no job is lost, the data folder
is pruned back.

    python -m bench.soak [--jobs 300] [--early 20] [--sizes 64-256] [--steps 3] [--seed 0]

The bot runs as operators run it, ``python -m bot`` in its own process with one engine worker
(seeded random weights, the fast preset capped at ``--steps``); this process is Discord: the
emulator on loopback and a few members. They send ``--jobs`` jobs, a seeded mix of /stylize on
a still photo and on a 4-frame GIF, with three artworks and sizes drawn from ``--sizes``, and
Stronger and Variation pressed on earlier results; two are in flight at a time, so the worker
never waits. After the ``--early``-th job and after the last, with nothing in flight, it notes
the resident memory (RSS) of the bot and of the worker, the journal's size and NST_DATA_DIR's
size and file count. Then it runs the bot's pruner (`JobStore.prune` with the bot's
NST_KEEP_HOURS) with the clock moved past NST_KEEP_HOURS, and notes them again.

Targets, checked at the end (the exit status is 1 if one fails): each RSS after the last job
within ``--rss-tolerance`` (15%) of its value after the early one; every job's picture delivered
exactly once; after pruning, NST_DATA_DIR holds only what live jobs need (the journal, the
worker's pid file and the folders of jobs not yet delivered, here none) and the journal no job
row; the worker never restarted except when replaced for its memory bound
(NST_WORKER_MAX_GROWTH, its default unless ``--max-growth``), which the report counts. The
worker's RSS is measured once it is up and warm (a replaced one has loaded its model).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import random
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from PIL import Image

import bot.store.jobs
from bot.settings import Settings
from bot.store import JOURNAL, PENDING_STATES, JobStore
from nst_engine.frames import Clip, encode_clip
from tests.bot.emulator import DiscordEmulator, EmulatorTimeout
from tests.bot.harness import TOKEN, free_port, ready_bot
from tests.support import gradient_image, stripes_image

log = logging.getLogger(__name__)

# What each job is, and how often (of the jobs after the first result, which a press needs).
KINDS = ("still", "clip", "stronger", "variation")
MIX = (0.5, 0.2, 0.15, 0.15)
# The photo and the clip's frames are this large, so that every size asked for is painted at
# that size (the bot never enlarges a photo).
PHOTO = (256, 192)
CLIP_FRAMES = 4
MEMBERS = 3
# Jobs in flight at once: one painting, one waiting, so that the worker never waits on us.
WINDOW = 2
# The targets: each RSS after the last job within this fraction of its value after the early one.
RSS_TOLERANCE = {"bot": 0.15, "worker": 0.15}
# The journal's files: SQLite's database, its write-ahead log and the log's index.
JOURNAL_FILES = (JOURNAL, f"{JOURNAL}-wal", f"{JOURNAL}-shm")


@dataclass(frozen=True)
class Snapshot:
    """The bot's footprint at one moment, with no job in flight."""

    # Jobs delivered so far.
    jobs: int
    # Resident memory (VmRSS) of ``python -m bot`` and of its engine worker, in MB.
    bot_rss_mb: float
    worker_rss_mb: float
    # The worker's pid: another one means it was restarted (its memory started again).
    worker_pid: int
    # The journal's SQLite file and its write-ahead log, in bytes.
    journal_bytes: int
    wal_bytes: int
    # Everything under NST_DATA_DIR: bytes and regular files.
    data_bytes: int
    data_files: int


@dataclass
class SoakReport:
    # Jobs sent, by kind (KINDS).
    kinds: dict[str, int]
    # Jobs that ended without their picture, and jobs that got more than one: both must be 0.
    lost: int
    duplicated: int
    # Result pictures the bot posted anywhere (every message with a stylized.* file).
    pictures: int
    seconds: float
    early: Snapshot
    last: Snapshot
    pruned: Snapshot
    # Job rows the pruner removed, and rows left after it (jobs not yet delivered only).
    removed: int
    rows_left: int
    # Files under NST_DATA_DIR after pruning that no live job needs: must be none.
    leftovers: list[str]
    # The fraction each process's RSS may grow by from ``early`` to ``last``, by "bot" and
    # "worker".
    rss_tolerance: Mapping[str, float]
    # Times the worker was replaced for its memory bound (NST_WORKER_MAX_GROWTH), and times it
    # started in all (the first included), from the bot's log.
    replaced: int = 0
    worker_starts: int = 1
    # Why jobs were lost, one line each (the first few).
    problems: list[str] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(self.kinds.values())

    def failures(self) -> list[str]:
        """One line per target missed; empty when the soak passed."""
        failed = []
        for name, tolerance in self.rss_tolerance.items():
            early = getattr(self.early, f"{name}_rss_mb")
            last = getattr(self.last, f"{name}_rss_mb")
            if last > early * (1 + tolerance):
                failed.append(
                    f"the {name}'s RSS grew from {early:.0f} MB after job {self.early.jobs} to "
                    f"{last:.0f} MB after job {self.last.jobs} (more than {tolerance:.0%})"
                )
        if self.lost or self.duplicated or self.pictures != self.jobs:
            failed.append(
                f"{self.lost} job(s) lost, {self.duplicated} delivered more than once, "
                f"{self.pictures} pictures posted for {self.jobs} jobs"
            )
        if self.leftovers or self.rows_left:
            failed.append(
                f"after pruning, {self.rows_left} job row(s) and {len(self.leftovers)} file(s) "
                f"no live job needs: {', '.join(self.leftovers[:5])}"
            )
        if self.worker_starts - 1 != self.replaced:
            failed.append(
                f"the engine worker started {self.worker_starts} times but was replaced for its "
                f"memory bound {self.replaced} times: it died or was restarted"
            )
        return failed

    def table(self) -> list[str]:
        rows = [
            ("", f"after job {self.early.jobs}", f"after job {self.last.jobs}", "after pruning"),
        ]
        snaps = (self.early, self.last, self.pruned)
        for label, value in (
            ("bot RSS (MB)", lambda s: f"{s.bot_rss_mb:.0f}"),
            ("worker RSS (MB)", lambda s: f"{s.worker_rss_mb:.0f}"),
            ("journal (kB)", lambda s: f"{s.journal_bytes / 1024:.0f}"),
            ("journal's WAL (kB)", lambda s: f"{s.wal_bytes / 1024:.0f}"),
            ("NST_DATA_DIR (kB)", lambda s: f"{s.data_bytes / 1024:.0f}"),
            ("NST_DATA_DIR files", lambda s: str(s.data_files)),
        ):
            rows.append((label, *(value(s) for s in snaps)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return lines

    def lines(self) -> list[str]:
        kinds = ", ".join(f"{k} {v}" for k, v in self.kinds.items())
        failures = self.failures()
        return [
            f"{self.jobs} jobs ({kinds}) in {self.seconds / 60:.1f} min",
            f"lost {self.lost}, delivered twice {self.duplicated}, pictures posted "
            f"{self.pictures}; pruning removed {self.removed} job(s), {self.rows_left} left",
            f"worker replaced {self.replaced} time(s) for its memory bound (NST_WORKER_MAX_GROWTH)",
            *self.table(),
            *self.problems,
            *(["targets met"] if not failures else [f"FAILED: {f}" for f in failures]),
        ]


@dataclass(frozen=True)
class Plan:
    """What the members send: the same for the same seed."""

    jobs: int
    # Longest side of each result, drawn from LOW-HIGH pixels.
    sizes: tuple[int, int]
    seed: int = 0
    # The still photo members send (the clip is always PHOTO): larger costs the engine nothing
    # (it paints at the size asked), but each job then carries that much through the bot.
    photo: tuple[int, int] = PHOTO


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "PNG")
    return out.getvalue()


def clip_bytes(width: int, height: int, frames: int) -> bytes:
    """A textured picture sliding 4 px a frame, 80 ms a frame, as a looping GIF."""
    wide = gradient_image(width + 4 * frames, height, seed=5)
    shots = tuple(np.ascontiguousarray(wide[:, 4 * i : 4 * i + width]) for i in range(frames))
    return encode_clip(Clip(shots, (80,) * frames, 0, "gif"), "gif")


def pictures(inter) -> list:
    """The messages that carry the job's result picture."""
    return [m for m in inter.followups if m is not inter.original and _has_result(m)]


def _has_result(message) -> bool:
    return any(f.filename.startswith("stylized.") for f in message.files)


def ended(inter) -> bool:
    """The job has its picture, or the member was told it won't get one."""
    if pictures(inter):
        return True
    if inter.callback is not None and inter.callback.type == 4:
        return True  # answered at once, without a job: refused
    return any(
        m.content.startswith(("❌", "✖️")) or (m.ephemeral and not m.files)
        for m in inter.messages
        if not m.loading
    )


async def run_soak(
    emu,
    bot_pid: int,
    data_dir: Path,
    plan: Plan,
    *,
    early: int,
    keep_hours: float,
    rss_tolerance: Mapping[str, float] = RSS_TOLERANCE,
    job_timeout: float = 900,
    health_port: int | None = None,
    bot_log: Path | None = None,
) -> SoakReport:
    """Send ``plan``'s jobs to the bot ``bot_pid`` (``python -m bot`` on ``data_dir``, with
    NST_KEEP_HOURS ``keep_hours``, its /healthz on ``health_port`` and its log in ``bot_log``)
    through ``emu``, ``WINDOW`` at a time, and measure."""
    rng = random.Random(plan.seed)
    photo = emu.add_attachment(
        "photo.png",
        png_bytes(gradient_image(*plan.photo, seed=2)),
        "image/png",
        width=plan.photo[0],
        height=plan.photo[1],
    )
    clip = emu.add_attachment(
        "clip.gif", clip_bytes(*PHOTO, CLIP_FRAMES), "image/gif", width=PHOTO[0], height=PHOTO[1]
    )
    artworks = [
        emu.add_attachment(name, png_bytes(image), "image/png", width=96, height=96)
        for name, image in (
            ("stripes.png", stripes_image(96, 96)),
            ("wide-stripes.png", stripes_image(96, 96, period=17)),
            ("colours.png", gradient_image(96, 96, seed=7)),
        )
    ]
    members = [emu.make_member(f"soak{i}") for i in range(MEMBERS)]
    sent: list[tuple[str, Any]] = []
    results: list[tuple[Any, Any]] = []  # (member, result message), for the buttons
    in_flight: list[Any] = []
    kinds = dict.fromkeys(KINDS, 0)
    deadline: dict[int, float] = {}
    # The (result message, button) of each press in flight: a second press of the same button
    # while its job is on its way is refused by the bot (one job per double press), so a member
    # here presses another result's, or sends a still.
    pressed: dict[int, tuple[int, str]] = {}
    loop = asyncio.get_running_loop()
    started = time.perf_counter()

    async def settle(at_most: int) -> None:
        """Wait until at most ``at_most`` jobs are in flight."""
        while len(in_flight) > at_most:
            first = min(deadline[id(i)] for i in in_flight)
            # A job still without its picture at its deadline counts as lost.
            with contextlib.suppress(EmulatorTimeout):
                await emu.wait_until(
                    lambda: any(ended(i) for i in in_flight),
                    timeout=max(first - loop.time(), 0.1),
                    what="a job to end",
                )
            now = loop.time()
            for inter in [i for i in in_flight if ended(i) or deadline[id(i)] <= now]:
                in_flight.remove(inter)
                pressed.pop(id(inter), None)
                if shown := pictures(inter):
                    results.append((inter.user, shown[0]))

    async def send(n: int) -> None:
        kind = _kind(rng) if results else "still"
        free = [(m, r) for m, r in results if (r.id, kind) not in pressed.values()]
        if kind in ("stronger", "variation") and not free:
            kind = "still"
        kinds[kind] += 1
        if kind in ("stronger", "variation"):
            member, message = rng.choice(free)
            custom_id = next(
                b["custom_id"] for b in message.buttons() if b["label"] == kind.title()
            )
            inter = await emu.press_button(message, custom_id, user=member)
            pressed[id(inter)] = (message.id, kind)
        else:
            options = {
                "content": clip if kind == "clip" else photo,
                "style": rng.choice(artworks),
                "size": rng.randint(*plan.sizes),
                "strength": rng.choice((3.0, 5.0, 7.0)),
                "seed": rng.randrange(1000),
                "quality": "fast",
            }
            inter = await emu.invoke_slash("stylize", options, user=members[n % MEMBERS])
        sent.append((kind, inter))
        in_flight.append(inter)
        deadline[id(inter)] = loop.time() + job_timeout

    async def batch(first: int, last: int) -> Snapshot:
        for n in range(first, last):
            await settle(WINDOW - 1)
            await send(n)
        await settle(0)
        await asyncio.sleep(1.0)  # the worker and the bot have let go of the last job
        await _until_worker(data_dir, health_port)  # a replaced worker has loaded its model
        return snapshot(bot_pid, data_dir, sum(len(pictures(i)) > 0 for _, i in sent))

    early = min(early, plan.jobs)
    first = await batch(0, early)
    last = await batch(early, plan.jobs)
    seconds = time.perf_counter() - started
    removed = await prune_later(data_dir, keep_hours)
    await asyncio.sleep(1.0)
    pruned = snapshot(bot_pid, data_dir, last.jobs)
    rows_left, leftovers = await asyncio.to_thread(_not_needed, data_dir)
    lost = [(k, i) for k, i in sent if not pictures(i)]
    log_text = bot_log.read_text(errors="replace") if bot_log is not None else ""
    return SoakReport(
        kinds=kinds,
        lost=len(lost),
        duplicated=sum(len(pictures(i)) > 1 for _, i in sent),
        pictures=sum(_has_result(m) for m in emu.messages.values()),
        seconds=seconds,
        early=first,
        last=last,
        pruned=pruned,
        removed=removed,
        rows_left=rows_left,
        leftovers=leftovers,
        rss_tolerance=rss_tolerance,
        replaced=log_text.count("replacing worker 0"),
        worker_starts=max(1, log_text.count("worker 0 ready")),
        problems=[f"lost: a {k}: {i.summary()}" for k, i in lost[:3]],
    )


def _kind(rng: random.Random) -> str:
    return rng.choices(KINDS, weights=MIX)[0]


class _LaterClock:
    """The `time` module as `bot.store.jobs` sees it, its wall clock ``offset`` seconds on."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


async def prune_later(data_dir: Path, keep_hours: float) -> int:
    """What the bot's hourly pruner does (`JobStore.prune` with NST_KEEP_HOURS), run on
    ``data_dir`` beside the running bot as if an hour past NST_KEEP_HOURS had gone by: only
    the store's clock is moved, nothing in the bot. The job rows it removed."""
    store = JobStore(data_dir)
    try:
        with mock.patch.object(bot.store.jobs, "time", _LaterClock((keep_hours + 1) * 3600)):
            return await store.prune(keep_hours * 3600)
    finally:
        store.close()


def _not_needed(data_dir: Path) -> tuple[int, list[str]]:
    """(job rows left, files no live job needs) in ``data_dir``: live jobs need the journal,
    the worker's pid file and the folders of jobs not yet delivered."""
    db = sqlite3.connect(data_dir / JOURNAL)
    try:
        marks = ",".join("?" * len(PENDING_STATES))
        rows = db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        live = {
            row[0]
            for row in db.execute(f"SELECT id FROM jobs WHERE state IN ({marks})", PENDING_STATES)
        }
    finally:
        db.close()
    extra = []
    for path in _files(data_dir):
        relative = path.relative_to(data_dir)
        parts = relative.parts
        if (
            str(relative) in JOURNAL_FILES
            or (parts[0] == "workers" and path.suffix == ".pid")
            or (parts[0] == "jobs" and len(parts) > 2 and parts[1] in live)
        ):
            continue
        extra.append(str(relative))
    return rows - len(live), sorted(extra)


def _files(root: Path) -> Iterator[Path]:
    return (p for p in root.rglob("*") if p.is_file())


def snapshot(bot_pid: int, data_dir: Path, jobs: int) -> Snapshot:
    worker = worker_pid(data_dir)
    files = list(_files(data_dir))
    return Snapshot(
        jobs=jobs,
        bot_rss_mb=rss_mb(bot_pid),
        worker_rss_mb=rss_mb(worker),
        worker_pid=worker,
        journal_bytes=_size(data_dir / JOURNAL),
        wal_bytes=_size(data_dir / f"{JOURNAL}-wal"),
        data_bytes=sum(_size(p) for p in files),
        data_files=len(files),
    )


def worker_pid(data_dir: Path) -> int:
    """The engine worker's pid, from the pid file the pool keeps in NST_DATA_DIR/workers."""
    records = [json.loads(p.read_text()) for p in (data_dir / "workers").glob("worker-*.pid")]
    if len(records) != 1:
        raise RuntimeError(f"expected one engine worker, found {len(records)} pid files")
    return int(records[0]["pid"])


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of process ``pid``, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def cpu_line() -> str:
    """The CPU as lscpu names it, its cores, and whether it computes bfloat16 natively."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    fields = {
        key.strip(): value for key, _, value in (ln.partition(":") for ln in out.splitlines())
    }
    model = fields.get("Model name", "unknown CPU").strip()
    cpus = fields.get("CPU(s)", "?").strip()
    flags = fields.get("Flags", "").split()
    has = {
        name: flag in flags for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX"))
    }
    features = ", ".join(f"{name} {'yes' if yes else 'no'}" for name, yes in has.items())
    return f"{model}, {cpus} CPUs ({features})"


def bot_environment(*, steps: int, max_size: int, port: int, keep_hours: float) -> dict[str, str]:
    """What the soak's ``python -m bot`` runs with: one worker, no rates, room for the window."""
    return {
        "NST_WORKERS": "1",
        "NST_MAX_STEPS": str(steps),
        "NST_MAX_SIZE": str(max_size),
        "NST_MEMBER_RATE": "0",
        "NST_GUILD_RATE": "0",
        "NST_USER_LIMIT": str(WINDOW),
        "NST_QUEUE_LIMIT": str(4 * WINDOW),
        "NST_KEEP_HOURS": f"{keep_hours:g}",
        "NST_HTTP_PORT": str(port),
        # The bot's default (the test harness turns it off).
        "NST_WORKER_MAX_GROWTH": str(Settings.nst_worker_max_growth),
    }


async def soak(
    plan: Plan,
    *,
    early: int,
    steps: int,
    data_dir: Path,
    keep_hours: float = 24,
    rss_tolerance: Mapping[str, float] = RSS_TOLERANCE,
    bot_env: Mapping[str, str] | None = None,
) -> SoakReport:
    """The emulator, ``python -m bot`` on ``data_dir`` (with ``bot_env`` added to its
    environment) and the soak; what `main` runs."""
    port = free_port()
    env = bot_environment(
        steps=steps, max_size=plan.sizes[1], port=port, keep_hours=keep_hours
    ) | dict(bot_env or {})
    async with (
        DiscordEmulator(token=TOKEN) as emu,
        ready_bot(emu, data_dir, "bot.log", **env) as bot_process,
    ):
        await _until_worker(data_dir, port)
        return await run_soak(
            emu,
            bot_process.pid,
            data_dir,
            plan,
            early=early,
            keep_hours=keep_hours,
            rss_tolerance=rss_tolerance,
            health_port=port,
            bot_log=data_dir.parent / "bot.log",
        )


async def _until_worker(data_dir: Path, health_port: int | None, timeout: float = 180) -> None:
    """Wait for one engine worker's pid file (the pool writes it as the worker starts) and,
    with ``health_port``, for the bot's /healthz to say the engine is warm."""
    import aiohttp

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if len(list((data_dir / "workers").glob("worker-*.pid"))) == 1:
                if health_port is None:
                    return
                with contextlib.suppress(aiohttp.ClientError):
                    url = f"http://127.0.0.1:{health_port}/healthz"
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
            if time.monotonic() > deadline:
                raise TimeoutError("the engine worker did not start")
            await asyncio.sleep(0.25)


def _sizes(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    sizes = (int(low), int(high or low))
    if not 64 <= sizes[0] <= sizes[1] <= PHOTO[0]:
        raise argparse.ArgumentTypeError(f"sizes must be within 64-{PHOTO[0]}, low first")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--early", type=int, default=20, help="the job RSS is first noted after")
    parser.add_argument("--sizes", type=_sizes, default=(64, 256), help="LOW-HIGH pixels")
    parser.add_argument("--steps", type=int, default=3, help="NST_MAX_STEPS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rss-tolerance", type=float, default=0.15)
    parser.add_argument("--data-dir", type=Path, help="default: a new temporary folder")
    parser.add_argument(
        "--max-growth", type=int, help="NST_WORKER_MAX_GROWTH (default: the bot's, 15)"
    )
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="nst-soak-")) / "data"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.jobs, args.sizes, args.seed)
    report = asyncio.run(
        soak(
            plan,
            early=args.early,
            steps=args.steps,
            data_dir=data_dir,
            rss_tolerance=dict.fromkeys(RSS_TOLERANCE, args.rss_tolerance),
            bot_env=(
                {} if args.max_growth is None else {"NST_WORKER_MAX_GROWTH": str(args.max_growth)}
            ),
        )
    )
    print(f"machine: {cpu_line()}")
    print(
        f"soak: {args.jobs} jobs, sizes {args.sizes[0]}-{args.sizes[1]} px, {args.steps} steps "
        f"(fast), one worker, seed {args.seed}, random weights; NST_DATA_DIR {data_dir}"
    )
    print("\n".join(report.lines()))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
