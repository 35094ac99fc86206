"""Animated pictures in and out: GIF, animated WebP, and MP4/MOV/WebM through PyAV.

Like `nst_engine.images`, every input may come from a stranger: the frame count, the size of
every frame and the total number of pixels are read from the file's own structure (GIF blocks,
WebP chunks, the video stream's header) and checked before a single frame is decoded, and
every failure is an :class:`ImageError` whose message is one line fit for that stranger.

Frames crossing this package's boundary are ``uint8`` arrays of shape ``(height, width, 3)``,
RGB, values 0-255, all of one size.

GIF and WebP are written by this package's own container code around Pillow's single-frame
encoders, so that the frame count, every duration and the loop count come out exactly as they
went in (Pillow's and libwebp's animation writers merge identical neighbouring frames), and a
GIF has one palette for the whole clip (per-frame palettes make colours shimmer).

    clip.py    the `Clip` and the limits a stranger's clip must keep
    files.py   decode, load, encode and read parameters, whatever the format
    gif.py     GIF blocks and the GIF writer
    webp.py    WebP RIFF chunks, XMP and the WebP writer
    sandbox.py member videos (MP4/MOV, WebM) probed, decoded and written as MP4 in a child
    sandbox_child.py  the child (a script run with python -I)
    video.py   WebM written through PyAV
    pillow.py  GIF and WebP frames decoded with Pillow
"""

from nst_engine.clips.clip import (
    DEFAULT_MAX_CLIP_PIXELS,
    DEFAULT_MAX_FRAMES,
    MIN_PLAYED_DURATION_MS,
    PLAYED_DURATION_FOR_SHORT_MS,
    Clip,
)
from nst_engine.clips.files import (
    ANIMATED_SUFFIXES,
    VIDEO_FORMATS,
    clip_format_for,
    decode_clip,
    encode_clip,
    is_animation_file,
    load_clip,
    read_clip_parameters,
    sniff_clip_type,
)
from nst_engine.clips.sandbox import DEFAULT_MAX_VIDEO_SECONDS

__all__ = [
    "ANIMATED_SUFFIXES",
    "DEFAULT_MAX_CLIP_PIXELS",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_VIDEO_SECONDS",
    "MIN_PLAYED_DURATION_MS",
    "PLAYED_DURATION_FOR_SHORT_MS",
    "VIDEO_FORMATS",
    "Clip",
    "clip_format_for",
    "decode_clip",
    "encode_clip",
    "is_animation_file",
    "load_clip",
    "read_clip_parameters",
    "sniff_clip_type",
]
