"""Animated picture files in and out, whatever their format: what the rest of the engine, the CLI
and the bot call (`nst_engine.clips` re-exports it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import nst_engine.clips.gif as gif
import nst_engine.clips.sandbox as sandbox
import nst_engine.clips.video as video
import nst_engine.clips.webp as webp
from nst_engine.clips.clip import DEFAULT_MAX_CLIP_PIXELS, DEFAULT_MAX_FRAMES, Clip, Limits
from nst_engine.errors import ImageError
from nst_engine.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    check_file_size,
    decode_image,
    output_size,
    resize,
    sniff_image_type,
)
from nst_engine.provenance import parse_parameters

ANIMATED_SUFFIXES = {
    ".gif": "gif",
    ".webp": "webp",
    ".mp4": "mp4",
    ".mov": "mp4",
    ".m4v": "mp4",
    ".webm": "webm",
}
VIDEO_FORMATS = video.FORMATS


def is_animation_file(data: bytes) -> bool:
    """Whether the bytes are a GIF or WebP of more than one frame, or an MP4/WebM video.

    Reads only the container's structure; a file too damaged to tell says False (decoding it
    as a still picture then gives the one-line reason).
    """
    kind = sniff_clip_type(data)
    if kind in VIDEO_FORMATS:
        return True
    try:
        if kind == "gif":
            return len(gif.read_layout(bytes(data)).frames) > 1
        if kind == "webp":
            return webp.read_layout(bytes(data)).frames > 1
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
    max_seconds: float = sandbox.DEFAULT_MAX_VIDEO_SECONDS,
    first_only: bool = False,
) -> Clip:
    """Decode an untrusted GIF, WebP, MP4/MOV or WebM into frames; other images give one frame.

    Args:
        data: The whole file.
        max_bytes: Refuse longer files, before looking inside.
        max_pixels: Refuse frames with more pixels than this, judged from the header.
        max_frames: Refuse clips of more frames than this, counted before decoding.
        max_clip_pixels: Refuse clips whose frames hold more pixels than this in all (after
            shrinking to ``max_side``).
        max_side: Shrink each frame as it is decoded so that its longest side is at most this
            (the engine's `output_size` rule), which bounds memory; None: keep the size.
        max_seconds: Refuse videos longer than this, judged from the container.
        first_only: Decode a video's first frame only (an artwork given as a video).

    Returns:
        A `Clip`; its frames are ``uint8`` ``(H, W, 3)``, all the size of the first frame
        (GIF frames reaching past the logical screen are cropped to it, as browsers do). A
        video is probed and decoded in a child process (`nst_engine.clips.sandbox`) and keeps
        its audio track.

    Raises:
        ImageError: For every problem with ``data``, in one line fit for whoever sent it.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ImageError("the file is empty")
    check_file_size(len(data), max_bytes)
    kind = sniff_clip_type(data)
    limits = Limits(max_pixels, max_frames, max_clip_pixels, max_side)
    if kind == "gif":
        return gif.decode(data, limits)
    if kind == "webp":
        clip = webp.decode(data, limits)
        if clip is not None:
            return clip
    if kind in VIDEO_FORMATS:
        return sandbox.decode_video(
            data, kind, limits, max_seconds=max_seconds, first_only=first_only
        )
    image = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if max_side is not None:
        image = resize(image, *output_size(image.shape[1], image.shape[0], max_side))
    return Clip((image,), (0,), None, kind or "image")


def load_clip(path, **limits: object) -> Clip:
    """Read and decode an animated picture file; see :func:`decode_clip` (same keywords)."""
    path = Path(path)
    max_bytes = int(limits.get("max_bytes", DEFAULT_MAX_BYTES))  # type: ignore[arg-type]
    try:
        check_file_size(path.stat().st_size, max_bytes)
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
        return gif.encode(clip, text)
    if fmt == "webp":
        return webp.encode(clip, quality, text)
    if fmt == "mp4":
        return sandbox.encode_mp4(clip, quality=quality, comment=text)
    if fmt in VIDEO_FORMATS:
        return video.encode(clip, fmt, quality, text)
    raise ValueError(f"unknown animation format {fmt!r}; use one of 'gif', 'webp', 'mp4', 'webm'")


def read_clip_parameters(data: bytes) -> dict[str, object] | None:
    """The parameters `encode_clip` stored in a GIF, WebP or video, or None if there are none.

    Raises:
        ImageError: The file is not one of those, or the parameters are not a JSON object.
    """
    kind = sniff_clip_type(data)
    raw: str | None = None
    if kind == "gif":
        for comment in gif.read_layout(data).comments:
            text = comment.decode("utf-8", "replace")
            if text.startswith("{"):
                raw = text
    elif kind == "webp":
        xmp = webp.read_layout(data).xmp
        if xmp is not None:
            raw = webp.xmp_parameters(xmp)
    elif kind in VIDEO_FORMATS:
        raw = sandbox.probe_video(data, kind).comment
    else:
        raise ImageError("not a GIF, WebP, MP4 or WebM file")
    return parse_parameters(raw, problem="its parameters are not a JSON object")


def clip_format_for(path) -> str | None:
    """``'gif'``, ``'webp'``, ``'mp4'`` or ``'webm'`` from a file name's suffix, else None."""
    return ANIMATED_SUFFIXES.get(Path(path).suffix.lower())


def sniff_clip_type(data: bytes) -> str | None:
    """The format from the first bytes: a still format's name (`sniff_image_type`), 'mp4',
    'webm', or None."""
    head = bytes(data[:32])
    kind = sniff_image_type(head)
    if kind is not None:
        return kind
    if head[4:8] == b"ftyp" and head[8:12] not in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None
