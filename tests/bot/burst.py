"""A burst of members through the Discord emulator against a running ``python -m bot``: what
`bench/load.py` measures and `tests/bot/test_load.py` checks on a smaller scale (both import it)."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from nst_engine.processes import descendants
from tests.bot.harness import add_painting, add_photo

log = logging.getLogger(__name__)


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
    # True unless a job waited while another member had two jobs started and its member none.
    round_robin: bool
    # The bot's worst event-loop lag over its whole life, and its lag ticks over 100 ms during
    # the burst, both from its /metrics.
    max_lag: float
    slow_ticks: int
    # Peak resident memory of the bot's process tree (bot, engine workers, their manager).
    peak_rss_mb: float
    # Requests the bot made to Discord's REST API during the burst (Discord rate-limits them).
    rest_requests: int

    def lines(self) -> list[str]:
        waits = sorted(self.waits) or [0.0]
        p95 = waits[min(len(waits) - 1, int(0.95 * len(waits)))]
        return [
            f"requests {self.requests}: " + ", ".join(f"{k} {v}" for k, v in self.outcomes.items()),
            f"lost {self.lost}, duplicated {self.duplicated}, round-robin {self.round_robin}",
            f"wall {self.seconds:.1f} s; "
            f"wait p50 {statistics.median(waits):.1f} s, p95 {p95:.1f} s",
            f"bot's max event-loop lag {self.max_lag * 1000:.0f} ms "
            f"({self.slow_ticks} ticks over 100 ms during the burst); "
            f"peak RSS {self.peak_rss_mb:.0f} MB; {self.rest_requests} REST requests",
        ]


async def run_load(
    emu, bot_pid: int, http: str, members: int, per_member: int, timeout: float = 900
) -> LoadReport:
    """Send ``per_member`` /stylize from each of ``members`` new members at once and wait.

    ``bot_pid`` is the ``python -m bot`` process; ``http`` its NST_HTTP_PORT base URL.
    """

    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        await _until_healthy(session, http)
        people = [emu.make_member(f"member{i}") for i in range(members)]
        photo, painting = add_photo(emu), add_painting(emu)
        before = _lag_figures(await _scrape(session, http))
        requests_before = len(emu.requests)
        started = time.perf_counter()
        sent = []
        # Each member sends their whole batch at once, one member after another: served in
        # arrival order, the last member would wait behind everyone's batch.
        for person in people:
            for _ in range(per_member):
                inter = await emu.invoke_slash(
                    "stylize", {"content": photo, "style": painting, "quality": "fast"}, user=person
                )
                sent.append(inter)
        deadline = loop.time() + timeout
        while loop.time() < deadline and not all(_ended(i) for i in sent):
            await asyncio.sleep(0.2)
        seconds = time.perf_counter() - started
        after = _lag_figures(await _scrape(session, http))
    outcomes: dict[str, int] = {}
    waits = []
    duplicated = lost = 0
    for inter in sent:
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
        round_robin=_round_robin(sent),
        max_lag=after[0],
        slow_ticks=int(after[1] - before[1]),
        peak_rss_mb=peak_rss_mb(bot_pid),
        rest_requests=sum(not r.path.startswith("/cdn") for r in emu.requests[requests_before:]),
    )


async def _until_healthy(session: aiohttp.ClientSession, http: str, timeout: float = 120) -> None:
    """Wait for /healthz: gateway connected and the engine's model loaded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.get(f"{http}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the bot did not become healthy")
        await asyncio.sleep(0.25)


async def _scrape(session: aiohttp.ClientSession, http: str) -> str:
    async with session.get(f"{http}/metrics") as response:
        return await response.text()


def _lag_figures(metrics: str) -> tuple[float, float]:
    """(worst lag in seconds, lag ticks over 100 ms) from the bot's /metrics text."""
    values = {}
    for line in metrics.splitlines():
        if not line.startswith("#") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    within = values['nst_event_loop_lag_seconds_bucket{le="0.1"}']
    return (
        values["nst_event_loop_lag_max_seconds"],
        values["nst_event_loop_lag_seconds_count"] - within,
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


SKEW = 0.5


def _seen(inter, *marks: str) -> float | None:
    """When the member's status message first showed one of ``marks`` (emulator time)."""
    original = inter.original
    if original is None:
        return None
    return next((v.at for v in original.history if any(m in v.content for m in marks)), None)


def _round_robin(sent: list) -> bool:
    """True unless a job waited while another member had two jobs started and its own member
    none: nobody waits behind another member's batch, as the members saw it (from the status
    message saying the job is queued to the one saying it is painting). Under a burst, status
    edits reach members up to a few tenths of a second late, so a job seen to start within
    ``SKEW`` of another being queued is not counted as having gone ahead of it; a queue that
    served members in arrival order still fails this check by far."""
    started = []
    for inter in sent:
        began = _seen(inter, "painting…")
        queued = _seen(inter, "queued at position", "starting now", "painting…")
        if began is not None and queued is not None:
            started.append((inter.user.id, queued, began))
    for member, queued, began in started:
        served: dict[int, int] = {}
        for other, _queued, other_began in started:
            if queued + SKEW < other_began < began:
                served[other] = served.get(other, 0) + 1
        ahead = [other for other, n in served.items() if n > 1]
        if not served.get(member) and ahead:
            log.warning(
                "a job of member %s, queued at %.3f and started at %.3f, waited behind "
                "member %s's jobs: %s",
                member,
                queued,
                began,
                ahead[0],
                [(round(q, 3), round(b, 3)) for o, q, b in started if o == ahead[0]],
            )
            return False
    return True


def peak_rss_mb(pid: int) -> float:
    """Sum of the peak resident memory (VmHWM) of ``pid`` and all its descendants."""
    total = 0.0
    for each in descendants([pid]):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total
