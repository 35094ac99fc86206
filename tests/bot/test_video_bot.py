"""A member's video (MP4, MOV, WebM) as the photo gives a painted MP4 with its sound (issue 25),
through the emulator; the hostile corpus is one line each and no job; a video as the artwork
gives its first frame; Cancel and Stronger work on a video as on a GIF."""

from __future__ import annotations

import sqlite3
from fractions import Fraction

import numpy as np
import pytest

from nst_engine.clips import decode_clip, read_clip_parameters
from nst_engine.clips.sandbox import probe_video
from nst_engine.continuation import STRENGTH_STEP
from nst_engine.frames import Clip, encode_clip
from tests.bot.harness import World, finished, png_bytes, result_png
from tests.nst_engine import video_corpus as corpus
from tests.support import flicker, pan_frames

pytestmark = pytest.mark.asyncio(loop_scope="module")

TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}


def add_video(world: World, data: bytes, suffix: str = "mp4") -> dict:
    return world.emu.add_attachment(f"clip.{suffix}", data, TYPES[suffix], width=32, height=32)


def sent_video(message) -> bytes:
    return next(f for f in message.files if f.filename.startswith("stylized.")).data


def lines(inter) -> list[str]:
    return [m.content for m in inter.messages if m.ephemeral]


def journaled(world: World) -> int:
    with sqlite3.connect(world.settings.nst_data_dir / "jobs.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]


async def test_a_two_second_mp4_with_sound_gives_an_mp4_of_the_same(world: World) -> None:
    video = corpus.good_video(frames=4, rate=2)  # 2 s: 4 frames at 2 fps, and a tone
    source = probe_video(video, "mp4")
    inter = await world.stylize(content=add_video(world, video), quality="fast")
    result = await finished(inter, timeout=240)
    assert result.files[0].filename == "stylized.mp4"
    data = sent_video(result)
    made = probe_video(data, "mp4")
    assert made.codec == "h264" and made.audio == "aac"
    assert made.frames == 4 and made.rate == 2
    assert abs(made.seconds - source.seconds) < 0.1
    assert data.index(b"moov") < data.index(b"mdat")  # faststart: plays while it loads
    assert read_clip_parameters(data)["frames"] == 4
    assert decode_clip(data).size == (32, 32)
    assert "your video, painted frame by frame: 4 frames at 2 fps, 2.0 s, as an MP4 with its " in (
        result.content
    )


async def test_a_video_flickers_at_most_half_as_much_as_its_frames_painted_one_by_one(
    world: World,
) -> None:
    # A panning clip as a member's MP4, and each of its frames (as the bot decodes them) sent
    # as a photo of its own: the same artwork, quality and seed, painted by the same bot.
    pan = Clip(tuple(pan_frames(4)), (250,) * 4, None, "mp4", Fraction(4))
    video = encode_clip(pan, "mp4", quality=100)
    style = world.painting()
    clip = await finished(
        await world.stylize(content=add_video(world, video), style=style, quality="fast"), 240
    )
    ours = decode_clip(sent_video(clip)).frames
    alone = []
    for frame in decode_clip(video).frames:
        h, w = frame.shape[:2]
        photo = world.emu.add_attachment(
            "frame.png", png_bytes(frame), "image/png", width=w, height=h
        )
        still = await finished(await world.stylize(content=photo, style=style, quality="fast"))
        alone.append(np.asarray(result_png(still).convert("RGB")))
    # Frame-by-frame's pictures go through the same MP4 round trip as the video's.
    alone = decode_clip(encode_clip(pan.with_frames(tuple(alone)), "mp4")).frames
    assert len(ours) == len(alone) == 4 and ours[0].shape == alone[0].shape
    assert flicker(ours) <= 0.5 * flicker(alone)


async def test_a_webm_is_painted_too_and_comes_back_as_mp4(world: World) -> None:
    video = corpus.good_video("webm", frames=2, rate=2, audio=False)
    inter = await world.stylize(content=add_video(world, video, "webm"), quality="fast")
    result = await finished(inter, timeout=240)
    made = probe_video(sent_video(result), "mp4")
    assert (made.frames, made.audio) == (2, None)
    assert "silent, as it came" in result.content


async def test_a_video_as_the_artwork_gives_its_first_frame(world: World) -> None:
    video = corpus.good_video(frames=3, rate=2, audio=False)
    inter = await world.stylize(
        style=world.emu.add_attachment("art.mov", video, "video/quicktime", width=32, height=32),
        quality="fast",
    )
    result = await finished(inter)
    assert result.files[0].filename == "stylized.png"


@pytest.mark.parametrize(
    ("name", "data", "line"),
    [
        ("truncated", corpus.good_video(faststart=False)[:3000], "truncated or corrupt"),
        ("100000×100000", corpus.huge_declared_mp4(), "truncated or corrupt"),
        ("ten hours", corpus.ten_hour_mp4(), "the video is 36000 s long; the limit is 10 s"),
        ("text", b"hello, this is not a video\n" * 4, "its contents are not an image or a video"),
        ("HLS", corpus.hls_playlist("/etc/passwd"), "its contents are not an image or a video"),
        ("AVI", corpus.avi_referring("/etc/passwd"), "its contents are not an image or a video"),
        ("10,000 streams", corpus.many_streams_mkv(10_000), "the video has 1000 or more streams"),
        ("growing", corpus.growing_frames_mkv(), "its frames decode to 512×512, not the 32×32"),
    ],
)
async def test_a_hostile_video_is_one_line_and_no_job(world: World, name, data, line) -> None:
    before = journaled(world)
    suffix = "webm" if data.startswith(b"\x1a\x45\xdf\xa3") else "mp4"
    inter = await world.stylize(content=add_video(world, data, suffix))
    await inter.wait_for(lambda rec: lines(rec), timeout=30)
    (said,) = lines(inter)
    assert said.startswith("The content attachment won't do: ") and line in said
    assert "\n" not in said
    assert journaled(world) == before


async def test_stronger_on_a_video_gives_another_video(world: World) -> None:
    emu = world.emu
    video = corpus.good_video(frames=2, rate=2)
    first = await finished(await world.stylize(content=add_video(world, video)), timeout=240)
    stronger = next(b for b in first.buttons() if b["label"] == "Stronger")
    press = await emu.press_button(first, stronger["custom_id"], user=emu.member)
    again = await finished(press, timeout=240)
    data = sent_video(again)
    made = probe_video(data, "mp4")
    assert (made.frames, made.audio) == (2, "aac")
    assert read_clip_parameters(data)["strength"] == 5.0 + STRENGTH_STEP


async def test_cancel_stops_a_video_between_frames(world: World) -> None:
    emu = world.emu
    video = corpus.good_video(frames=12, rate=6)
    inter = await world.stylize(content=add_video(world, video), quality="best")
    await inter.wait_for_original(lambda m: "painting frame" in m.content, timeout=120)
    cancel = next(b for b in inter.original.buttons() if b["label"] == "Cancel")
    await emu.press_button(inter.original, cancel["custom_id"], user=inter.user)
    await inter.wait_for_original(lambda m: "Cancelled at frame" in m.content, timeout=120)
    assert not any(m.files for m in inter.followups if m is not inter.original)


async def test_a_hanging_video_holds_up_no_picture_decode(monkeypatch) -> None:
    # The child is waited on outside the budget's one decode thread, holding only the pixels
    # its frames come back as: a photo decodes while a video's child hangs.
    import asyncio
    import time

    import numpy as np

    from bot import attachments
    from bot.decoding import PixelBudget
    from nst_engine.clips import Clip
    from tests.bot.harness import png_bytes
    from tests.support import gradient_image

    def hanging(data, **limits):
        time.sleep(1.5)
        return Clip((np.zeros((32, 32, 3), np.uint8),), (100,), None, "mp4")

    monkeypatch.setattr(attachments, "decode_clip", hanging)
    budget = PixelBudget(40_000_000)
    try:
        video = asyncio.create_task(
            attachments.decode_content(
                corpus.good_video(frames=2),
                max_bytes=10**7,
                max_frames=48,
                max_side=64,
                budget=budget,
            )
        )
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await attachments.decode(
            "content", png_bytes(gradient_image(40, 30)), max_bytes=10**7, budget=budget
        )
        assert time.monotonic() - started < 1.0
        assert not video.done()
        assert len((await video).frames) == 1
    finally:
        budget.close()
