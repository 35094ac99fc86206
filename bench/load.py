"""Many members at once through the Discord emulator: every job ends once, fairly, responsively.

    python -m bench.load [--members 50] [--per-member 3] [--steps 3] [--workers 1]

The bot runs as operators run it, ``python -m bot`` in its own process with its engine pool
(seeded random weights, tiny pictures); this process is Discord: the emulator on loopback and
the members. Prints jobs, outcomes, wall time, p50/p95 wait, the bot's event-loop lag (from its
own /metrics) and the peak memory of the bot's process tree.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path

from tests.bot.burst import LoadReport, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--per-member", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    from bot.settings import Settings
    from tests.bot.emulator import DiscordEmulator
    from tests.bot.harness import TOKEN, free_port, ready_bot

    async def go() -> LoadReport:
        port = free_port()
        async with (
            DiscordEmulator(token=TOKEN) as emu,
            ready_bot(
                emu,
                Path(tempfile.mkdtemp()) / "data",
                "bot.log",
                NST_MAX_STEPS=str(args.steps),
                NST_WORKERS=str(args.workers),
                NST_MEMBER_RATE="0",
                # One test server sends everything; its default 60 a minute would refuse.
                NST_GUILD_RATE="0",
                NST_QUEUE_LIMIT=str(args.members * args.per_member),
                NST_HTTP_PORT=str(port),
                NST_WORKER_MAX_GROWTH=str(Settings.nst_worker_max_growth),
            ) as bot,
        ):
            return await run_load(
                emu, bot.pid, f"http://127.0.0.1:{port}", args.members, args.per_member
            )

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    report = asyncio.run(go())
    print(
        f"{args.members} members × {args.per_member} /stylize, {args.steps} steps at 64 px, "
        f"{args.workers} worker(s), user cap 2; the bot in its own process"
    )
    print("\n".join(report.lines()))


if __name__ == "__main__":
    main()
