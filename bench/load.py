"""Many members at once through the Discord emulator: every job ends once, fairly, responsively.

    python -m bench.load [--members 50] [--per-member 3] [--steps 3]

The bot, its engine pool (seeded random weights, tiny pictures) and the emulator run on
loopback. Prints jobs, outcomes, wall time, p50/p95 wait, event-loop lag and peak memory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class LagMonitor:
    """How late a 20 ms timer fires: the event loop's responsiveness."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.worst = 0.0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.worst = max(self.worst, loop.time() - due)

    def __enter__(self) -> LagMonitor:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class LoadReport:
    requests: int
    # Outcome per request: "result", "refused" (one clear ephemeral line) or "failed".
    outcomes: dict[str, int]
    # Requests that got more than one picture, or none and no message: must both be 0.
    duplicated: int
    lost: int
    seconds: float
    # Seconds from the command to the picture, for delivered jobs.
    waits: list[float] = field(repr=False)
    # True when every member's n-th job started before any member's (n+1)-th.
    round_robin: bool
    max_lag: float
    peak_rss_mb: float

    def lines(self) -> list[str]:
        waits = sorted(self.waits) or [0.0]
        p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
        return [
            f"requests {self.requests}: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.items()),
            f"lost {self.lost}, duplicated {self.duplicated}, round-robin {self.round_robin}",
            f"wall {self.seconds:.1f} s; "
            f"wait p50 {statistics.median(waits):.1f} s, p95 {p95:.1f} s",
            f"max event-loop lag {self.max_lag * 1000:.0f} ms; peak RSS {self.peak_rss_mb:.0f} MB",
        ]


async def run_load(world, members: int, per_member: int, timeout: float = 900) -> LoadReport:
    """Send ``per_member`` /stylize from each of ``members`` new members at once and wait."""
    emu = world.emu
    loop = asyncio.get_running_loop()
    people = [emu.make_member(f"member{i}") for i in range(members)]
    photo, painting = world.photo(), world.painting()
    started = time.perf_counter()
    sent = []
    with LagMonitor() as lag:
        for round_ in range(per_member):
            for person in people:
                inter = await emu.invoke_slash(
                    "stylize", {"content": photo, "style": painting, "quality": "fast"}, user=person
                )
                sent.append((person.id, round_, inter))
        deadline = loop.time() + timeout
        while loop.time() < deadline and not all(_ended(i) for _, _, i in sent):
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
    outcomes: dict[str, int] = {}
    waits = []
    duplicated = lost = 0
    for _person, _round, inter in sent:
        kind = _ended(inter) or "lost"
        outcomes[kind] = outcomes.get(kind, 0) + 1
        lost += kind == "lost"
        pictures = [m for m in inter.followups if m.files and m is not inter.original]
        duplicated += len(pictures) > 1
        if pictures:
            waits.append(pictures[0].history[0].at - inter.dispatched_at)
    return LoadReport(
        requests=len(sent),
        outcomes=outcomes,
        duplicated=duplicated,
        lost=lost,
        seconds=seconds,
        waits=waits,
        round_robin=_round_robin(list(world.bot.get_cog("Stylize").started)),
        max_lag=lag.worst,
        peak_rss_mb=_peak_rss_mb(world.bot.pool.worker_pids()),
    )


def _ended(inter) -> str | None:
    if any(m.files for m in inter.followups if m is not inter.original):
        return "result"
    original = inter.original
    if original is None or original.loading:
        return None
    if original.ephemeral and inter.callback and inter.callback.type == 4:
        return "refused"
    if any(m.ephemeral and not m.files for m in inter.followups):
        return "refused"
    if original.content.startswith(("❌", "✖️")):
        return "failed"
    return None


def _round_robin(started: list[tuple[int, str, float, float]]) -> bool:
    """True unless a job waited while another member had two jobs started and its own member
    none: nobody waits behind another member's batch (the bot's own queue and start times)."""
    for member, job, queued, began in started:
        served: dict[int, int] = {}
        for other, _other_job, _queued, other_began in started:
            if queued < other_began < began:
                served[other] = served.get(other, 0) + 1
        if not served.get(member) and any(n > 1 for n in served.values()):
            log.warning("job %s of member %s waited behind another member's batch", job, member)
            return False
    return True


def _peak_rss_mb(worker_pids: list[int]) -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = 0.0
    for pid in worker_pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    workers += int(line.split()[1]) / 1024
        except OSError:
            pass
    return own + workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--per-member", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    from nst_engine.model import quiet_tensorflow

    quiet_tensorflow()
    from tests.bot.harness import running_bot

    async def go() -> LoadReport:
        async with running_bot(
            Path(tempfile.mkdtemp()),
            nst_max_steps=args.steps,
            nst_workers=args.workers,
            nst_member_rate=0,
            nst_guild_rate=0,  # one test server sends everything; its default 60/min would refuse
            nst_queue_limit=args.members * args.per_member,
        ) as world:
            return await run_load(world, args.members, args.per_member)

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    report = asyncio.run(go())
    print(
        f"{args.members} members × {args.per_member} /stylize, {args.steps} steps at 64 px, "
        f"{args.workers} worker(s), user cap 2"
    )
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
