"""Peak memory of ``python -m bot`` under simultaneous ``/styles add`` of one large PNG (issue
20, item 11): ``python -m tests.bot.measure_styles_burst [--root DIR]``. ``--root`` runs the bot
from another copy of the code (``git archive HEAD | tar -x -C DIR`` for the code before a
change); the emulator and this script come from the current tree.

Prints the bot's resident memory before the burst and its peak during it (VmHWM, the kernel's
high-water mark, reset just before the burst), with the answers members got.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.bot.emulator import DiscordEmulator
from tests.bot.harness import TOKEN


def large_png(side: int) -> bytes:
    """A ``side``×``side`` PNG that compresses well (broad bands of colour), as a bomb-like
    upload does: small to send, large to decode."""
    rows = (np.arange(side) // 500 % 2 * 200).astype(np.uint8)
    pixels = np.repeat(np.repeat(rows[:, None, None], side, axis=1), 3, axis=2)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", optimize=True)
    return out.getvalue()


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def measure(root: Path, count: int, side: int) -> None:
    data = large_png(side)
    async with DiscordEmulator(token=TOKEN) as emu:
        with tempfile.TemporaryDirectory() as data_dir:
            env = {
                **os.environ,
                "PYTHONPATH": str(root),
                "DISCORD_TOKEN": TOKEN,
                "DISCORD_API_BASE": emu.api_base,
                "NST_WEIGHTS": "random",
                "NST_MAX_SIZE": "64",
                "NST_HTTP_PORT": "0",
                "NST_DEV_GUILD": str(emu.guild.id),
                "NST_DATA_DIR": data_dir,
                "NST_MEMBER_RATE": "0",
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=root, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await emu.wait_until(lambda: emu.identify_count > 0, timeout=180, what="IDENTIFY")
                await emu.wait_ready(timeout=60)
                await emu.wait_for_commands("styles", guild=emu.guild, timeout=60)
                await asyncio.sleep(3)
                before = memory_kb(process.pid, "VmRSS")
                Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # reset VmHWM
                members = [emu.make_member(f"painter{n}") for n in range(count)]
                started = time.perf_counter()
                sent = []
                for n, member in enumerate(members):
                    image = emu.add_attachment(
                        f"big{n}.png", data, "image/png", width=side, height=side
                    )
                    sent.append(
                        await emu.invoke_slash(
                            "styles add", {"name": f"big {n}", "image": image}, user=member
                        )
                    )
                for inter in sent:
                    await inter.wait_for_original(lambda m: m.content, timeout=600)
                seconds = time.perf_counter() - started
                peak = memory_kb(process.pid, "VmHWM")
            finally:
                process.kill()
                await process.wait()
    saved = sum(i.original.content.startswith("Saved the style") for i in sent)
    print(f"code: {root}")
    print(f"{count} simultaneous /styles add of a {side}×{side} PNG ({len(data) / 1000:.0f} kB)")
    print(f"saved {saved} of {count} in {seconds:.1f} s")
    print(f"bot RSS before {before / 1024:.0f} MB, peak during the burst {peak / 1024:.0f} MB")
    for inter in sent:
        if not inter.original.content.startswith("Saved the style"):
            print("  answer:", inter.original.content[:200])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--side", type=int, default=6000, help="pixels per side (36 MP)")
    args = parser.parse_args()
    asyncio.run(measure(args.root.resolve(), args.count, args.side))


if __name__ == "__main__":
    main()
