"""Animated pictures in and out: GIF, animated WebP, and MP4/WebM through PyAV.

Like `nst_engine.images`, every input may come from a stranger: the frame count, the size of
every frame and the total number of pixels are read from the file's own structure (GIF blocks,
WebP chunks, the video stream's header) and checked before a single frame is decoded, and
every failure is an :class:`ImageError` whose message is one line fit for that stranger.

Frames crossing this module's boundary are ``uint8`` arrays of shape ``(height, width, 3)``,
RGB, values 0-255, all of one size.

GIF and WebP are written by this module's own container code around Pillow's single-frame
encoders, so that the frame count, every duration and the loop count come out exactly as they
went in (Pillow's and libwebp's animation writers merge identical neighbouring frames), and a
GIF has one palette for the whole clip (per-frame palettes make colours shimmer).
"""

from __future__ import annotations

import io
import json
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.images import (
    _CORRUPT,
    _PIL_WARNINGS_LOCK,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    RGBImage,
    _check_aspect,
    _check_rgb_array,
    _format_megapixels,
    _to_rgb,
    decode_image,
    output_size,
    resize,
    sniff_image_type,
)
from nst_engine.provenance import parse_parameters
from nst_engine.text import format_bytes

log = logging.getLogger(__name__)

# At most this many frames in a clip (NST_MAX_FRAMES in the bot, --max-frames in the CLI).
DEFAULT_MAX_FRAMES = 48
# At most this many decoded pixels in all frames together (600 MB as uint8 RGB), unless the
# frames are shrunk while decoding (``max_side``), when it applies to the shrunk frames.
DEFAULT_MAX_CLIP_PIXELS = 200_000_000
# Browsers play GIF and WebP frames shorter than this (0 and 10 ms are common) at 100 ms.
MIN_PLAYED_DURATION_MS = 20
PLAYED_DURATION_FOR_SHORT_MS = 100

ANIMATED_SUFFIXES = {".gif": "gif", ".webp": "webp", ".mp4": "mp4", ".webm": "webm"}
VIDEO_FORMATS = ("mp4", "webm")
# Codecs we decode; FFmpeg knows hundreds, and each is attack surface.
_VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
_VIDEO_DEMUXERS = {"mp4": "mp4", "webm": "matroska"}
_VIDEO_ENCODERS = {"mp4": "libx264", "webm": "libvpx-vp9"}
_XMP_NS = "https://github.com/nst-discord/ns/1.0/"


@dataclass(frozen=True)
class Clip:
    """An animated picture: its frames and how they play."""

    # uint8 H×W×3 RGB arrays, all of one size.
    frames: tuple[np.ndarray, ...] = field(repr=False)
    # Milliseconds each frame shows, as the file says (a GIF keeps 10 ms steps; 0 is common and
    # browsers play it as 100 ms, see `played_durations`).
    durations: tuple[int, ...]
    # GIF: the NETSCAPE loop count (0: forever), None when the file has none (plays once).
    # WebP: the ANIM loop count (0: forever). Video: None.
    loop: int | None = 0
    # Where it came from or is going: "gif", "webp", "mp4", "webm", or a still format.
    format: str = "gif"
    # A video's frame rate (frames per second), kept to write it back exactly; None otherwise.
    rate: Fraction | None = None

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a clip needs at least one frame")
        if len(self.durations) != len(self.frames):
            raise ValueError(f"{len(self.durations)} durations for {len(self.frames)} frames")
        shape = self.frames[0].shape
        for frame in self.frames:
            _check_rgb_array(frame)
            if frame.shape != shape:
                raise ValueError(f"frames differ in size: {frame.shape} and {shape}")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self.frames[0].shape[1], self.frames[0].shape[0]

    @property
    def played_durations(self) -> tuple[int, ...]:
        """Milliseconds each frame shows in a browser (below 20 ms counts as 100 ms)."""
        return tuple(
            PLAYED_DURATION_FOR_SHORT_MS if d < MIN_PLAYED_DURATION_MS else d
            for d in self.durations
        )

    def every(self, step: int) -> Clip:
        """Every ``step``-th frame, each shown for the frames it stands for (same length in
        all, same loop): a smaller file when a result is over an upload limit."""
        if step < 1:
            raise ValueError(f"step must be at least 1, not {step}")
        played = self.played_durations
        durations = tuple(sum(played[i : i + step]) for i in range(0, len(self.frames), step))
        return replace(self, frames=self.frames[::step], durations=durations)

    def resized(self, max_side: int) -> Clip:
        """Every frame shrunk so that its longest side is at most ``max_side`` (the engine's
        `output_size` rule: never enlarged but to a shortest side of 32)."""
        width, height = output_size(*self.size, max_side)
        return replace(self, frames=tuple(resize(f, width, height) for f in self.frames))

    def with_frames(self, frames: Sequence[np.ndarray]) -> Clip:
        """The same timing with other frames (of any one size), e.g. the stylized ones."""
        if len(frames) != len(self.frames):
            raise ValueError(f"{len(frames)} frames for a clip of {len(self.frames)}")
        return replace(self, frames=tuple(frames))


def is_animation_file(data: bytes) -> bool:
    """Whether the bytes are a GIF or WebP of more than one frame, or an MP4/WebM video.

    Reads only the container's structure; a file too damaged to tell says False (decoding it
    as a still picture then gives the one-line reason).
    """
    kind = _sniff(data)
    if kind in VIDEO_FORMATS:
        return True
    try:
        if kind == "gif":
            return len(_gif_layout(bytes(data)).frames) > 1
        if kind == "webp":
            return _webp_layout(bytes(data)).frames > 1
    except ImageError:
        return False
    return False


def decode_clip(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_clip_pixels: int = DEFAULT_MAX_CLIP_PIXELS,
    max_side: int | None = None,
) -> Clip:
    """Decode an untrusted GIF, WebP, MP4 or WebM into frames; other images give one frame.

    Args:
        data: The whole file.
        max_bytes: Refuse longer files, before looking inside.
        max_pixels: Refuse frames with more pixels than this, judged from the header.
        max_frames: Refuse clips of more frames than this, counted before decoding.
        max_clip_pixels: Refuse clips whose frames hold more pixels than this in all (after
            shrinking to ``max_side``).
        max_side: Shrink each frame as it is decoded so that its longest side is at most this
            (the engine's `output_size` rule), which bounds memory; None: keep the size.

    Returns:
        A `Clip`; its frames are ``uint8`` ``(H, W, 3)``, all the size of the first frame
        (GIF frames reaching past the logical screen are cropped to it, as browsers do).

    Raises:
        ImageError: For every problem with ``data``, in one line fit for whoever sent it.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(
            f"the file is {format_bytes(len(data), up=True)}; "
            f"the limit is {format_bytes(max_bytes, up=False)}"
        )
    kind = _sniff(data)
    limits = _Limits(max_pixels, max_frames, max_clip_pixels, max_side)
    if kind == "gif":
        layout = _gif_layout(data)
        # Pillow grows its canvas to any frame that reaches past the logical screen, so the
        # pixel check covers those frames too; what comes out is the screen, as browsers show.
        reach = (
            max([layout.size[0]] + [f.left + f.width for f in layout.frames]),
            max([layout.size[1]] + [f.top + f.height for f in layout.frames]),
        )
        limits.check(len(layout.frames), reach)
        screen = layout.size if min(layout.size) > 0 else reach
        frames = _decode_pillow(data, "GIF", len(layout.frames), screen, limits)
        durations = tuple(f.delay_cs * 10 for f in layout.frames)
        return Clip(frames, durations, layout.loop, "gif")
    if kind == "webp":
        webp = _webp_layout(data)
        if webp.frames > 1:
            limits.check(webp.frames, webp.size)
            frames = _decode_pillow(data, "WEBP", webp.frames, webp.size, limits)
            return Clip(frames, webp.durations, webp.loop, "webp")
    if kind in VIDEO_FORMATS:
        return _decode_video(data, kind, limits)
    image = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if max_side is not None:
        image = resize(image, *output_size(image.shape[1], image.shape[0], max_side))
    return Clip((image,), (0,), None, kind or "image")


def load_clip(path, **limits: object) -> Clip:
    """Read and decode an animated picture file; see :func:`decode_clip` (same keywords)."""
    from pathlib import Path

    path = Path(path)
    max_bytes = int(limits.get("max_bytes", DEFAULT_MAX_BYTES))  # type: ignore[arg-type]
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(
                f"the file is {format_bytes(size, up=True)}; "
                f"the limit is {format_bytes(max_bytes, up=False)}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"no such file: {path.name}") from None
    except IsADirectoryError:
        raise ImageError(f"not a file: {path.name}") from None
    except OSError:
        raise ImageError(f"could not read the file {path.name}") from None
    return decode_clip(data, **limits)  # type: ignore[arg-type]


def encode_clip(
    clip: Clip,
    fmt: str | None = None,
    *,
    quality: int = 90,
    parameters: Mapping[str, object] | None = None,
) -> bytes:
    """Encode a clip as an animated GIF, WebP, MP4 or WebM.

    Args:
        clip: The frames (``uint8`` ``(H, W, 3)``) and their timing.
        fmt: ``'gif'``, ``'webp'``, ``'mp4'`` or ``'webm'``; None: the clip's own format.
        quality: 1-100, for WebP and video (GIF is 256 colours whatever it is).
        parameters: How the clip was made, as JSON: a GIF comment, WebP XMP, or the video's
            ``comment`` tag (`read_clip_parameters` reads them back).

    Returns:
        The file. Frame count, durations and the loop count are the clip's (a GIF's durations
        in 10 ms steps; a video plays at its frame rate, from the durations if it has none).

    Raises:
        ValueError: Unknown format, bad quality, or a frame too big for the format.
    """
    fmt = (fmt or clip.format).lower()
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    text = None if parameters is None else json.dumps(dict(parameters), sort_keys=True)
    if fmt == "gif":
        return _encode_gif(clip, text)
    if fmt == "webp":
        if max(clip.size) > 16_383:
            raise ValueError("WEBP images may be at most 16383 pixels on a side")
        return _encode_webp(clip, quality, text)
    if fmt in VIDEO_FORMATS:
        return _encode_video(clip, fmt, quality, text)
    raise ValueError(f"unknown animation format {fmt!r}; use one of 'gif', 'webp', 'mp4', 'webm'")


def read_clip_parameters(data: bytes) -> dict[str, object] | None:
    """The parameters `encode_clip` stored in a GIF, WebP or video, or None if there are none.

    Raises:
        ImageError: The file is not one of those, or the parameters are not a JSON object.
    """
    kind = _sniff(data)
    raw: str | None = None
    if kind == "gif":
        for comment in _gif_layout(data).comments:
            text = comment.decode("utf-8", "replace")
            if text.startswith("{"):
                raw = text
    elif kind == "webp":
        xmp = _webp_layout(data).xmp
        if xmp is not None:
            raw = _xmp_parameters(xmp)
    elif kind in VIDEO_FORMATS:
        av = _import_av()
        try:
            with av.open(io.BytesIO(data), format=_VIDEO_DEMUXERS[kind]) as container:
                raw = container.metadata.get("comment") or container.metadata.get("COMMENT")
        except Exception:
            raise ImageError(_CORRUPT) from None
    else:
        raise ImageError("not a GIF, WebP, MP4 or WebM file")
    return parse_parameters(raw, problem="its parameters are not a JSON object")


def clip_format_for(path) -> str | None:
    """``'gif'``, ``'webp'``, ``'mp4'`` or ``'webm'`` from a file name's suffix, else None."""
    from pathlib import Path

    return ANIMATED_SUFFIXES.get(Path(path).suffix.lower())


# --- limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_frames: int
    max_clip_pixels: int
    max_side: int | None

    def check(self, frames: int, size: tuple[int, int]) -> None:
        """Refuse from the header: too many frames, frames too big, too many pixels in all."""
        width, height = size
        if frames < 1 or width < 1 or height < 1:
            raise ImageError(_CORRUPT)
        if frames > self.max_frames:
            raise ImageError(f"the animation has {frames} frames; the limit is {self.max_frames}")
        if width * height > self.max_pixels:
            raise ImageError(
                f"its frames are {width}×{height}; "
                f"the limit is {_format_megapixels(self.max_pixels)} megapixels"
            )
        _check_aspect(size)
        kept_w, kept_h = self.kept_size(size)
        if frames * kept_w * kept_h > self.max_clip_pixels:
            raise ImageError(
                f"the animation is {frames} frames of {kept_w}×{kept_h}; the limit is "
                f"{_format_megapixels(self.max_clip_pixels)} megapixels in all frames"
            )

    def kept_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if self.max_side is None:
            return size
        return output_size(size[0], size[1], self.max_side)


# --- GIF -----------------------------------------------------------------------------------


@dataclass
class _GifFrame:
    left: int
    top: int
    width: int
    height: int
    # Delay in hundredths of a second (0 when the frame has no graphic control extension).
    delay_cs: int
    has_local_palette: bool


@dataclass
class _GifLayout:
    # The logical screen.
    size: tuple[int, int]
    frames: list[_GifFrame]
    loop: int | None
    comments: list[bytes]
    has_global_palette: bool


def _gif_layout(data: bytes) -> _GifLayout:
    """Walk a GIF's blocks without decoding any pixels (fast: it skips the LZW data).

    A file that ends inside a block is truncated; one that ends after a whole frame without the
    trailer byte is accepted, as browsers accept it.
    """
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ImageError(_CORRUPT)
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13
    has_global = bool(flags & 0x80)
    if has_global:
        pos += 3 * 2 ** ((flags & 7) + 1)
    frames: list[_GifFrame] = []
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
            frames.append(_GifFrame(left, top, w, h, delay, local))
            delay = 0
        else:
            raise ImageError(_CORRUPT)
    if not frames:
        raise ImageError(_CORRUPT)
    return _GifLayout((width, height), frames, loop, comments, has_global)


def _encode_gif(clip: Clip, comment: str | None) -> bytes:
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


# --- WebP ----------------------------------------------------------------------------------


@dataclass
class _WebPLayout:
    size: tuple[int, int]
    frames: int
    durations: tuple[int, ...]
    loop: int
    xmp: bytes | None


def _webp_layout(data: bytes) -> _WebPLayout:
    """Walk a WebP's RIFF chunks without decoding: canvas, frames, durations, loop, XMP."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ImageError(_CORRUPT)
    end = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    pos = 12
    size: tuple[int, int] | None = None
    durations: list[int] = []
    loop = 0
    xmp = None
    still = False
    while pos + 8 <= end:
        tag = data[pos : pos + 4]
        length = struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if body + length > end:
            raise ImageError("the WebP file is truncated")
        if tag == b"VP8X" and length >= 10:
            w = int.from_bytes(data[body + 4 : body + 7], "little") + 1
            h = int.from_bytes(data[body + 7 : body + 10], "little") + 1
            size = (w, h)
        elif tag == b"ANIM" and length >= 6:
            loop = struct.unpack_from("<H", data, body + 4)[0]
        elif tag == b"ANMF" and length >= 16:
            durations.append(int.from_bytes(data[body + 12 : body + 15], "little"))
        elif tag == b"XMP ":
            xmp = data[body : body + length]
        elif tag in (b"VP8 ", b"VP8L"):
            still = True
        pos = body + length + (length & 1)
    if size is None and not still and not durations:
        raise ImageError(_CORRUPT)
    frames = len(durations) or 1
    return _WebPLayout(size or (0, 0), frames, tuple(durations) or (0,), loop, xmp)


def _encode_webp(clip: Clip, quality: int, xmp_text: str | None) -> bytes:
    width, height = clip.size
    xmp = None if xmp_text is None else _xmp_packet(xmp_text)
    flags = 0x02 | (0x04 if xmp is not None else 0)  # animation, XMP
    chunks = [
        _chunk(
            b"VP8X",
            bytes([flags, 0, 0, 0])
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little"),
        ),
        # Background white (BGRA), then the loop count (0: forever).
        _chunk(
            b"ANIM",
            b"\xff\xff\xff\xff"
            + struct.pack("<H", 1 if clip.loop is None else min(clip.loop, 65_535)),
        ),
    ]
    for frame, duration in zip(clip.frames, clip.durations):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(buffer, "WEBP", quality=quality, method=4)
        bitstream = _webp_bitstream(buffer.getvalue())
        header = (
            (0).to_bytes(6, "little")  # x/2, y/2
            + (width - 1).to_bytes(3, "little")
            + (height - 1).to_bytes(3, "little")
            + min(duration, 2**24 - 1).to_bytes(3, "little")
            + b"\x02"  # do not blend, do not dispose: each frame is whole
        )
        chunks.append(_chunk(b"ANMF", header + bitstream))
    if xmp is not None:
        chunks.append(_chunk(b"XMP ", xmp))
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _webp_bitstream(still: bytes) -> bytes:
    """The VP8/VP8L chunk (with any ALPH chunk before it) of a still WebP file."""
    pos, out = 12, b""
    while pos + 8 <= len(still):
        tag = still[pos : pos + 4]
        length = struct.unpack_from("<I", still, pos + 4)[0]
        chunk = still[pos : pos + 8 + length + (length & 1)]
        if tag in (b"ALPH", b"VP8 ", b"VP8L"):
            out += chunk
        pos += 8 + length + (length & 1)
    return out


def _chunk(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _xmp_packet(text: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:nst="{_XMP_NS}">'
        f"<nst:parameters>{escape(text)}</nst:parameters>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="r"?>'
    ).encode()


def _xmp_parameters(xmp: bytes) -> str | None:
    from xml.sax.saxutils import unescape

    text = xmp.decode("utf-8", "replace")
    start, stop = text.find("<nst:parameters>"), text.find("</nst:parameters>")
    if start < 0 or stop < start:
        return None
    return unescape(text[start + len("<nst:parameters>") : stop])


# --- decoding with Pillow (GIF, WebP) ------------------------------------------------------


def _decode_pillow(
    data: bytes, fmt: str, count: int, size: tuple[int, int], limits: _Limits
) -> tuple[np.ndarray, ...]:
    """Every frame of a GIF or WebP whose structure has passed the checks."""
    import warnings

    kept = limits.kept_size(size)
    frames = []
    with _PIL_WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data), formats=(fmt,)) as image:
                for index in range(count):
                    image.seek(index)
                    image.load()
                    rgb = _fit(_to_rgb(image), size)
                    if kept != size:
                        rgb = resize(rgb, *kept)
                    frames.append(rgb)
        except ImageError:
            raise
        except MemoryError:
            raise ImageError("there is not enough memory to decode this animation") from None
        except Exception as exc:
            log.debug("animation decode failed: %s: %s", type(exc).__name__, exc)
            raise ImageError(_CORRUPT) from None
    return tuple(frames)


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop or pad (white) a frame to ``size``: Pillow grows a GIF's canvas when a frame reaches
    past the logical screen, while browsers show the screen only."""
    width, height = size
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    out = np.full((height, width, 3), 255, np.uint8)
    h, w = min(height, frame.shape[0]), min(width, frame.shape[1])
    out[:h, :w] = frame[:h, :w]
    return out


# --- video (PyAV) --------------------------------------------------------------------------


def _import_av():
    try:
        import av
    except ImportError:
        raise ImageError("videos need PyAV (pip install av); send a GIF or WebP instead") from None
    return av


def _decode_video(data: bytes, kind: str, limits: _Limits) -> Clip:
    av = _import_av()
    frames: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(data), format=_VIDEO_DEMUXERS[kind]) as container:
            if not container.streams.video:
                raise ImageError("the file has no video in it")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec not in _VIDEO_CODECS:
                raise ImageError(f"the video codec {codec} is not supported; use H.264 or VP9")
            size = (stream.codec_context.width, stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate or Fraction(25)
            declared = stream.frames
            if not declared and container.duration:
                declared = round(container.duration / 1_000_000 * rate)
            limits.check(max(1, declared), size)
            kept = limits.kept_size(size)
            for frame in container.decode(stream):
                if len(frames) >= limits.max_frames:
                    # The header undercounted; stop before decoding more than the limit.
                    raise ImageError(
                        f"the animation has more than {limits.max_frames} frames; "
                        f"the limit is {limits.max_frames}"
                    )
                rgb = _fit(frame.to_ndarray(format="rgb24"), size)
                frames.append(rgb if kept == size else resize(rgb, *kept))
    except ImageError:
        raise
    except MemoryError:
        raise ImageError("there is not enough memory to decode this video") from None
    except Exception as exc:
        log.debug("video decode failed: %s: %s", type(exc).__name__, exc)
        raise ImageError("the video file is truncated or corrupt") from None
    if not frames:
        raise ImageError("the video file is truncated or corrupt")
    duration = max(1, round(1000 / rate))
    return Clip(tuple(frames), (duration,) * len(frames), None, kind, Fraction(rate))


def _encode_video(clip: Clip, fmt: str, quality: int, comment: str | None) -> bytes:
    av = _import_av()
    rate = clip.rate
    if rate is None:
        mean = sum(clip.played_durations) / len(clip.frames)
        rate = Fraction(1000 / mean).limit_denominator(1001)
    width, height = clip.size
    # 4:2:0 chroma needs even sides: the last row or column is repeated.
    even_w, even_h = width + width % 2, height + height % 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        if comment is not None:
            container.metadata["comment"] = comment
        stream = container.add_stream(_VIDEO_ENCODERS[fmt], rate=rate)
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        # quality 100 → crf 10 (near lossless), 1 → crf 50.
        crf = round(50 - 40 * (quality - 1) / 99)
        stream.options = {"crf": str(crf)} | ({"b:v": "0"} if fmt == "webm" else {})
        for frame in clip.frames:
            if (even_w, even_h) != (width, height):
                frame = np.pad(frame, ((0, even_h - height), (0, even_w - width), (0, 0)), "edge")
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def _sniff(data: bytes) -> str | None:
    head = bytes(data[:32])
    kind = sniff_image_type(head)
    if kind is not None:
        return kind
    if head[4:8] == b"ftyp" and head[8:12] not in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


__all__ = [
    "ANIMATED_SUFFIXES",
    "DEFAULT_MAX_FRAMES",
    "Clip",
    "RGBImage",
    "clip_format_for",
    "decode_clip",
    "encode_clip",
    "is_animation_file",
    "load_clip",
    "read_clip_parameters",
]
