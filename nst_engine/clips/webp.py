"""Animated WebP: its RIFF chunks walked without decoding (canvas, frames, durations, loop, XMP),
and a writer around Pillow's single-frame encoder that keeps every frame and duration."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from xml.sax.saxutils import escape, unescape

import numpy as np
from PIL import Image

from nst_engine.clips.clip import Clip, Limits
from nst_engine.clips.pillow import decode_frames
from nst_engine.errors import ImageError
from nst_engine.images import CORRUPT_MESSAGE

# The XML namespace of the clip's parameters in its XMP packet.
_XMP_NS = "https://github.com/nst-discord/ns/1.0/"


def decode(data: bytes, limits: Limits) -> Clip | None:
    """Every frame of an animated WebP whose structure passes ``limits``; None for a still one."""
    layout = read_layout(data)
    if layout.frames <= 1:
        return None
    limits.check(layout.frames, layout.size)
    frames = decode_frames(data, "WEBP", layout.frames, layout.size, limits)
    return Clip(frames, layout.durations, layout.loop, "webp")


@dataclass
class WebPLayout:
    """A WebP's structure, read without decoding a pixel."""

    # The canvas (0×0 for a still WebP without a VP8X chunk).
    size: tuple[int, int]
    frames: int
    # Milliseconds per frame ((0,) for a still WebP).
    durations: tuple[int, ...]
    # The ANIM loop count (0: forever).
    loop: int
    # The XMP packet, if any (`encode` puts the clip's parameters in it).
    xmp: bytes | None


def read_layout(data: bytes) -> WebPLayout:
    """Walk a WebP's RIFF chunks without decoding: canvas, frames, durations, loop, XMP."""
    if len(data) < 20 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ImageError(CORRUPT_MESSAGE)
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
        raise ImageError(CORRUPT_MESSAGE)
    frames = len(durations) or 1
    return WebPLayout(size or (0, 0), frames, tuple(durations) or (0,), loop, xmp)


def encode(clip: Clip, quality: int, xmp_text: str | None) -> bytes:
    """The clip as an animated WebP: every frame whole, with its duration, and the loop count."""
    if max(clip.size) > 16_383:
        raise ValueError("WEBP images may be at most 16383 pixels on a side")
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


def xmp_parameters(xmp: bytes) -> str | None:
    """The parameters text `encode` put in an XMP packet, or None."""
    text = xmp.decode("utf-8", "replace")
    start, stop = text.find("<nst:parameters>"), text.find("</nst:parameters>")
    if start < 0 or stop < start:
        return None
    return unescape(text[start + len("<nst:parameters>") : stop])
