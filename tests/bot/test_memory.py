"""A picture too large for the worker's memory: the member is told to use a smaller size."""

from __future__ import annotations

import pytest

from tests.bot.harness import finished, png_bytes, running_bot
from tests.support import gradient_image, stripes_image

pytestmark = pytest.mark.asyncio


async def test_out_of_memory_asks_for_a_smaller_size_and_the_bot_stays_up(tmp_path) -> None:
    async with running_bot(
        tmp_path, nst_max_size=1024, nst_max_steps=3, nst_worker_memory_mb=400, nst_member_rate=0
    ) as world:
        emu = world.emu
        big = emu.add_attachment("big.png", png_bytes(gradient_image(1024, 768)), "image/png")
        art = emu.add_attachment("art.png", png_bytes(stripes_image(256, 256)), "image/png")
        inter = await emu.invoke_slash("stylize", {"content": big, "style": art, "size": 1024})
        await inter.wait_for_original(lambda m: "didn't work" in m.content, timeout=120)
        # TensorFlow either reports the failed allocation or, deep in C++, aborts the worker
        # (then the job is retried once): either way the member hears to try a smaller size.
        assert "try a smaller size" in inter.original.content

        small = await emu.invoke_slash(
            "stylize", {"content": world.photo(), "style": world.painting(), "size": 64}
        )
        await finished(small, timeout=120)
        assert world.bot.pool.warm
