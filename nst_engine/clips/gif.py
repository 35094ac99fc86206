"""GIF: its blocks walked without decoding (frames, delays, loop, comments), and a writer around
Pillow's single-frame encoder that keeps every frame and duration and one palette for the clip."""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from nst_engine.clips.clip import Clip, Limits
from nst_engine.clips.pillow import decode_frames
from nst_engine.errors import ImageError
from nst_engine.images import CORRUPT_MESSAGE


def decode(data: bytes, limits: Limits) -> Clip:
    """Every frame of a GIF whose structure passes ``limits``."""
    layout = read_layout(data)
    # Pillow grows its canvas to any frame that reaches past the logical screen, so the
    # pixel check covers those frames too; what comes out is the screen, as browsers show.
    reach = (
        max([layout.size[0]] + [f.left + f.width for f in layout.frames]),
        max([layout.size[1]] + [f.top + f.height for f in layout.frames]),
    )
    limits.check(len(layout.frames), reach)
    screen = layout.size if min(layout.size) > 0 else reach
    frames = decode_frames(data, "GIF", len(layout.frames), screen, limits)
    durations = tuple(f.delay_cs * 10 for f in layout.frames)
    return Clip(frames, durations, layout.loop, "gif")


@dataclass
class GifFrame:
    """One image descriptor: where the frame sits on the screen, and its delay."""

    left: int
    top: int
    width: int
    height: int
    # Delay in hundredths of a second (0 when the frame has no graphic control extension).
    delay_cs: int
    has_local_palette: bool


@dataclass
class GifLayout:
    """A GIF's structure, read without decoding a pixel."""

    # The logical screen.
    size: tuple[int, int]
    frames: list[GifFrame]
    # The NETSCAPE loop count (0: forever), None when the file has none (plays once).
    loop: int | None
    # Comment extensions, in order (`encode` puts the clip's parameters in one).
    comments: list[bytes]
    has_global_palette: bool


def read_layout(data: bytes) -> GifLayout:
    """Walk a GIF's blocks without decoding any pixels (fast: it skips the LZW data).

    A file that ends inside a block is truncated; one that ends after a whole frame without the
    trailer byte is accepted, as browsers accept it.
    """
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ImageError(CORRUPT_MESSAGE)
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13
    has_global = bool(flags & 0x80)
    if has_global:
        pos += 3 * 2 ** ((flags & 7) + 1)
    frames: list[GifFrame] = []
    comments: list[bytes] = []
    loop: int | None = None
    delay = 0
    end = len(data)

    def sub_blocks(pos: int) -> tuple[int, bytes]:
        chunks = []
        while True:
            if pos >= end:
                raise ImageError("the GIF is truncated")
            n = data[pos]
            if n == 0:
                return pos + 1, b"".join(chunks)
            if pos + 1 + n > end:
                raise ImageError("the GIF is truncated")
            chunks.append(data[pos + 1 : pos + 1 + n])
            pos += 1 + n

    def skip_blocks(pos: int) -> int:
        # The LZW data: skipped without copying (a big GIF is mostly this).
        while True:
            if pos >= end:
                raise ImageError("the GIF is truncated")
            n = data[pos]
            if n == 0:
                return pos + 1
            pos += 1 + n

    while True:
        if pos >= end:
            if not frames:
                raise ImageError("the GIF is truncated")
            break  # no trailer: tolerated
        block = data[pos]
        if block == 0x3B:
            break
        if block == 0x21:
            if pos + 2 > end:
                raise ImageError("the GIF is truncated")
            label = data[pos + 1]
            pos, payload = sub_blocks(pos + 2)
            if label == 0xF9 and len(payload) >= 4:
                delay = struct.unpack_from("<H", payload, 1)[0]
            elif label == 0xFF and payload[:11] in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
                if len(payload) >= 14 and payload[11] == 1:
                    loop = struct.unpack_from("<H", payload, 12)[0]
            elif label == 0xFE:
                comments.append(payload)
        elif block == 0x2C:
            if pos + 11 > end:
                raise ImageError("the GIF is truncated")
            left, top, w, h, fflags = struct.unpack_from("<HHHHB", data, pos + 1)
            pos += 10
            local = bool(fflags & 0x80)
            if local:
                pos += 3 * 2 ** ((fflags & 7) + 1)
            pos = skip_blocks(pos + 1)  # +1: the LZW minimum code size
            frames.append(GifFrame(left, top, w, h, delay, local))
            delay = 0
        else:
            raise ImageError(CORRUPT_MESSAGE)
    if not frames:
        raise ImageError(CORRUPT_MESSAGE)
    return GifLayout((width, height), frames, loop, comments, has_global)


def encode(clip: Clip, comment: str | None) -> bytes:
    """The clip as a GIF: every frame whole, its duration in 10 ms steps, one palette."""
    width, height = clip.size
    if max(width, height) > 65_535:
        raise ValueError("GIF images may be at most 65535 pixels on a side")
    palette_image, palette = _clip_palette(clip.frames)
    out = bytearray(b"GIF89a")
    # Global colour table of 256 entries, 8 bits of colour resolution.
    out += struct.pack("<HHBBB", width, height, 0xF7, 0, 0)
    out += palette
    if clip.loop is not None:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", clip.loop) + b"\x00"
    if comment is not None:
        out += b"\x21\xfe" + _sub_blocks(comment.encode())
    for frame, duration in zip(clip.frames, clip.durations):
        delay = min(65_535, round(duration / 10))
        # Disposal 1 (leave in place), no transparency: every frame covers the whole screen.
        out += b"\x21\xf9\x04" + struct.pack("<BHB", 0x04, delay, 0) + b"\x00"
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
        out += _gif_raster(_ordered_dither(frame, palette_image))
    out += b"\x3b"
    return bytes(out)


def _clip_palette(frames: Sequence[np.ndarray]) -> tuple[Image.Image, bytes]:
    """One 256-colour palette for the whole clip, from a sample of every frame's pixels."""
    budget = 256 * 1024  # pixels sampled in all
    step = max(1, int(np.sqrt(len(frames) * frames[0].shape[0] * frames[0].shape[1] / budget)))
    sample = np.concatenate([f[::step, ::step] for f in frames], axis=0)
    quantized = Image.fromarray(np.ascontiguousarray(sample)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    colours = bytes(quantized.getpalette()[: 3 * 256])  # type: ignore[index]
    colours = colours.ljust(768, b"\x00")
    palette_image = Image.new("P", (1, 1))
    palette_image.putpalette(colours)
    return palette_image, colours


# 8×8 Bayer thresholds in [-0.5, 0.5): ordered dithering is the same at the same pixel in every
# frame, so still areas stay still (error diffusion would crawl from frame to frame).
_BAYER = (
    np.array(
        [
            [0, 32, 8, 40, 2, 34, 10, 42],
            [48, 16, 56, 24, 50, 18, 58, 26],
            [12, 44, 4, 36, 14, 46, 6, 38],
            [60, 28, 52, 20, 62, 30, 54, 22],
            [3, 35, 11, 43, 1, 33, 9, 41],
            [51, 19, 59, 27, 49, 17, 57, 25],
            [15, 47, 7, 39, 13, 45, 5, 37],
            [63, 31, 55, 23, 61, 29, 53, 21],
        ],
        dtype=np.float32,
    )
    + 0.5
) / 64 - 0.5
# Dither amplitude in 0-255 units: about the gap between neighbouring palette colours.
_DITHER_SPREAD = 12.0


def _ordered_dither(frame: np.ndarray, palette_image: Image.Image) -> Image.Image:
    h, w = frame.shape[:2]
    threshold = np.tile(_BAYER, (h // 8 + 1, w // 8 + 1))[:h, :w, None]
    shifted = np.clip(frame.astype(np.float32) + threshold * _DITHER_SPREAD, 0, 255)
    image = Image.fromarray(shifted.astype(np.uint8))
    return image.quantize(palette=palette_image, dither=Image.Dither.NONE)


def _gif_raster(indexed: Image.Image) -> bytes:
    """The LZW-coded pixels of a palette image (code size byte to block terminator), taken
    from Pillow's single-frame GIF of it: its indices are ours, since nothing is optimised."""
    buffer = io.BytesIO()
    indexed.save(buffer, "GIF", optimize=False, interlace=False)
    single = buffer.getvalue()
    layout_end = _gif_first_raster(single)
    return single[layout_end[0] : layout_end[1]]


def _gif_first_raster(data: bytes) -> tuple[int, int]:
    """Start and end offsets of the first frame's LZW data (code size byte included)."""
    flags = data[10]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[pos] == 0x21:
        pos += 2
        while data[pos]:
            pos += 1 + data[pos]
        pos += 1
    assert data[pos] == 0x2C
    fflags = data[pos + 9]
    pos += 10 + (3 * 2 ** ((fflags & 7) + 1) if fflags & 0x80 else 0)
    start = pos
    pos += 1
    while data[pos]:
        pos += 1 + data[pos]
    return start, pos + 1


def _sub_blocks(payload: bytes) -> bytes:
    out = bytearray()
    for i in range(0, len(payload), 255):
        chunk = payload[i : i + 255]
        out += bytes([len(chunk)]) + chunk
    return bytes(out + b"\x00")
