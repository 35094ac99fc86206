"""MP4 and WebM through PyAV (FFmpeg): a short list of codecs decoded, the frame count and size
checked from the stream's header first; written with H.264 or VP9 at the clip's frame rate."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np

from nst_engine.clips.clip import Clip, Limits, fit_to_screen
from nst_engine.errors import ImageError
from nst_engine.images import CORRUPT_MESSAGE, decode_failures, resize

# The video containers read and written.
FORMATS = ("mp4", "webm")
# Codecs we decode; FFmpeg knows hundreds, and each is attack surface.
_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
_DEMUXERS = {"mp4": "mp4", "webm": "matroska"}
_ENCODERS = {"mp4": "libx264", "webm": "libvpx-vp9"}
_CORRUPT = "the video file is truncated or corrupt"


def _import_av():
    try:
        import av
    except ImportError:
        raise ImageError("videos need PyAV (pip install av); send a GIF or WebP instead") from None
    return av


def decode(data: bytes, kind: str, limits: Limits) -> Clip:
    """Every frame of an MP4 or WebM (``kind``) whose stream header passes ``limits``."""
    av = _import_av()
    frames: list[np.ndarray] = []
    with (
        decode_failures("video", "video decode", corrupt=_CORRUPT),
        av.open(io.BytesIO(data), format=_DEMUXERS[kind]) as container,
    ):
        if not container.streams.video:
            raise ImageError("the file has no video in it")
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        if codec not in _CODECS:
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
            rgb = fit_to_screen(frame.to_ndarray(format="rgb24"), size)
            frames.append(rgb if kept == size else resize(rgb, *kept))
    if not frames:
        raise ImageError(_CORRUPT)
    duration = max(1, round(1000 / rate))
    return Clip(tuple(frames), (duration,) * len(frames), None, kind, Fraction(rate))


def encode(clip: Clip, fmt: str, quality: int, comment: str | None) -> bytes:
    """The clip as an MP4 (H.264) or WebM (VP9) in yuv420p, at its frame rate (else one from
    its durations)."""
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
        stream = container.add_stream(_ENCODERS[fmt], rate=rate)
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


def read_comment(data: bytes, kind: str) -> str | None:
    """The container's ``comment`` tag (where `encode` puts the clip's parameters), or None."""
    av = _import_av()
    try:
        with av.open(io.BytesIO(data), format=_DEMUXERS[kind]) as container:
            return container.metadata.get("comment") or container.metadata.get("COMMENT")
    except Exception:
        raise ImageError(CORRUPT_MESSAGE) from None
