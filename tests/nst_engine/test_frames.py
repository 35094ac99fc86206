"""Animated pictures in and out (nst_engine.clips, also imported as nst_engine.frames): round
trips and hostile files."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.frames import (
    Clip,
    decode_clip,
    encode_clip,
    is_animation_file,
    read_clip_parameters,
)
from tests.support import gradient_image


def _pan(frames: int = 4, width: int = 40, height: int = 32) -> Clip:
    big = gradient_image(width + 2 * frames, height, seed=2)
    shots = tuple(big[:, 2 * i : 2 * i + width].copy() for i in range(frames))
    return Clip(shots, tuple(30 + 10 * i for i in range(frames)), 0, "gif")


def _gif(screen: tuple[int, int], rects: list[tuple[int, int, int, int]], delay: int = 5) -> bytes:
    """A GIF by hand: a 2-colour global palette and one 1-colour frame per rectangle."""
    out = bytearray(b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0))
    out += b"\x00\x00\x00\xff\xff\xff"
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for left, top, w, h in rects:
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", delay) + b"\x00\x00"
        out += b"\x2c" + struct.pack("<HHHHB", left, top, w, h, 0)
        buffer = io.BytesIO()
        Image.new("P", (w, h), 1).save(buffer, "GIF", interlace=False, optimize=False)
        single = buffer.getvalue()
        # The raster of a one-frame Pillow GIF: after its image descriptor.
        start = single.index(b"\x2c", 13 + 3 * 2 ** ((single[10] & 7) + 1)) + 10
        out += single[start:-1]
    return bytes(out + b"\x3b")


@pytest.mark.parametrize("fmt", ["gif", "webp", "mp4", "webm"])
def test_round_trip_keeps_frames_durations_and_loop(fmt):
    clip = _pan()
    data = encode_clip(clip, fmt, parameters={"strength": 5})
    back = decode_clip(data)
    assert len(back.frames) == 4 and back.size == clip.size
    if fmt in ("gif", "webp"):
        assert back.durations == clip.durations and back.loop == 0
    assert read_clip_parameters(data) == {"strength": 5}
    assert is_animation_file(data)
    for original, decoded in zip(clip.frames, back.frames):
        assert np.abs(original.astype(int) - decoded).mean() < 12


def test_identical_frames_and_odd_loops_are_kept():
    # Pillow's and libwebp's animation writers merge identical neighbours; ours must not.
    frame = gradient_image(33, 21, seed=1)
    clip = Clip((frame, frame, frame), (0, 0, 0), None, "gif")
    # A clip that plays once: no NETSCAPE block in a GIF, a loop count of 1 in a WebP.
    for fmt, loop in (("gif", None), ("webp", 1)):
        back = decode_clip(encode_clip(clip, fmt))
        assert len(back.frames) == 3 and back.durations == (0, 0, 0) and back.loop == loop
    three = Clip((frame, frame), (100, 100), 3, "gif")
    assert decode_clip(encode_clip(three)).loop == 3


def test_gif_has_one_palette_for_the_whole_clip():
    data = encode_clip(_pan(5))
    # No frame carries a local colour table: every image descriptor's flags byte is 0.
    assert data.count(b"\x2c\x00\x00\x00\x00") == 5
    assert b"\x2c\x00\x00\x00\x00(\x00 \x00\x00" in data  # 40×32, no local table
    # An unchanged region is the same palette index in every frame (no shimmer).
    still = Clip((gradient_image(32, 32, 1),) * 2 + (gradient_image(32, 32, 4),), (50,) * 3)
    back = decode_clip(encode_clip(still))
    assert np.array_equal(back.frames[0], back.frames[1])


def test_zero_duration_gif_keeps_its_durations_and_plays_like_a_browser():
    data = _gif((8, 8), [(0, 0, 8, 8)] * 3, delay=0)
    clip = decode_clip(data)
    assert clip.durations == (0, 0, 0) and clip.played_durations == (100, 100, 100)
    assert decode_clip(encode_clip(clip)).durations == (0, 0, 0)


def test_frames_of_differing_sizes_come_out_at_the_logical_screen():
    data = _gif((16, 12), [(0, 0, 16, 12), (4, 4, 4, 4), (10, 8, 10, 10)])
    clip = decode_clip(data)
    assert len(clip.frames) == 3
    assert {f.shape for f in clip.frames} == {(12, 16, 3)}


def test_gif_bomb_huge_screen_is_refused_from_the_header():
    with pytest.raises(
        ImageError, match=r"^its frames are 60000×60000; the limit is 40 megapixels"
    ):
        decode_clip(_gif((60000, 60000), [(0, 0, 1, 1), (0, 0, 1, 1)]))


def test_gif_frame_reaching_far_past_the_screen_is_refused():
    with pytest.raises(ImageError, match=r"^its frames are 40000×40000"):
        decode_clip(_gif((4, 4), [(0, 0, 4, 4), (39999, 39999, 1, 1)]))


def test_thousands_of_frames_are_refused_before_decoding():
    data = _gif((2, 2), [(0, 0, 1, 1)] * 5000)
    with pytest.raises(ImageError, match=r"^the animation has 5000 frames; the limit is 48$"):
        decode_clip(data)
    assert len(decode_clip(data, max_frames=5000).frames) == 5000


def test_too_many_pixels_in_all_frames_are_refused():
    data = _gif((100, 100), [(0, 0, 100, 100)] * 10)
    with pytest.raises(ImageError, match=r"^the animation is 10 frames of 100×100; the limit"):
        decode_clip(data, max_clip_pixels=50_000)
    assert decode_clip(data, max_clip_pixels=50_000, max_side=64).size == (64, 64)


def test_truncated_gif_is_one_line():
    data = encode_clip(_pan())
    with pytest.raises(ImageError, match=r"^the GIF is truncated$"):
        decode_clip(data[: len(data) // 2])
    # Only the trailer missing: every frame is whole, as browsers accept.
    assert len(decode_clip(data[:-1]).frames) == 4


def test_webp_bomb_is_refused_from_its_chunks():
    canvas = (16000).to_bytes(3, "little") * 2
    chunks = b"VP8X" + struct.pack("<I", 10) + b"\x02\x00\x00\x00" + canvas
    chunks += b"ANIM" + struct.pack("<I", 6) + b"\x00" * 6
    frame = b"\x00" * 16
    chunks += (b"ANMF" + struct.pack("<I", len(frame)) + frame) * 2
    data = b"RIFF" + struct.pack("<I", len(chunks) + 4) + b"WEBP" + chunks
    with pytest.raises(ImageError, match=r"^its frames are 16001×16001; the limit is 40"):
        decode_clip(data)


def test_truncated_webp_and_video_are_one_line():
    webp = encode_clip(_pan(), "webp")
    with pytest.raises(ImageError, match="^the WebP file is truncated$"):
        decode_clip(webp[:-100])
    video = encode_clip(_pan(), "mp4")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_clip(video[: len(video) // 3])


def test_video_with_too_many_frames_is_refused():
    clip = _pan(6)
    with pytest.raises(ImageError, match=r"^the animation has 6 frames; the limit is 5$"):
        decode_clip(encode_clip(clip, "mp4"), max_frames=5)


def test_still_pictures_are_one_frame_clips():
    buffer = io.BytesIO()
    Image.fromarray(gradient_image(40, 30)).save(buffer, "PNG")
    clip = decode_clip(buffer.getvalue())
    assert len(clip.frames) == 1 and clip.format == "png"
    assert not is_animation_file(buffer.getvalue())
    with pytest.raises(ImageError, match="^not an image"):
        decode_clip(b"hello, this is text")


def test_fewer_frames_and_smaller_frames_for_an_upload_limit():
    clip = Clip(tuple(_pan(5).frames), (0, 40, 40, 40, 40), 1, "gif")
    halved = clip.every(2)
    assert len(halved.frames) == 3 and halved.durations == (140, 80, 40) and halved.loop == 1
    assert np.array_equal(halved.frames[1], clip.frames[2])
    big = _pan(3, 64, 48)
    small = big.resized(48)
    assert small.size == (48, 36) and small.durations == big.durations
    assert len(encode_clip(small)) < len(encode_clip(big))
