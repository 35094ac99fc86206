"""WebM written through PyAV (FFmpeg) with VP9 at the clip's frame rate. Videos are read, and
MP4s written, in a child process: see `nst_engine.clips.sandbox`."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np

from nst_engine.clips.clip import Clip
from nst_engine.errors import ImageError

# The video containers read and written.
FORMATS = ("mp4", "webm")
_ENCODERS = {"mp4": "libx264", "webm": "libvpx-vp9"}


def _import_av():
    try:
        import av
    except ImportError:
        raise ImageError("videos need PyAV (pip install av); send a GIF or WebP instead") from None
    return av


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
