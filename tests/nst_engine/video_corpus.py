"""Videos made by the tests: small good ones (PyAV), and a hostile corpus (PyAV, then bytes
patched by hand). Shared by tests/nst_engine/test_sandbox.py and tests/bot."""

from __future__ import annotations

import io
import struct
from fractions import Fraction

import av
import numpy as np

from nst_engine.clips.sandbox_child import moov_first
from tests.support import gradient_image


def good_video(
    fmt: str = "mp4",
    *,
    frames: int = 8,
    size: tuple[int, int] = (32, 32),
    rate: int = 4,
    audio: bool = True,
    faststart: bool = True,
) -> bytes:
    """A panning gradient of ``frames`` frames at ``rate`` fps (H.264 in MP4, VP9 in WebM),
    with a 440 Hz tone as long as the picture (AAC in MP4, Opus in WebM)."""
    width, height = size
    big = gradient_image(width + 2 * frames, height, seed=5)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as out:
        video = out.add_stream("libx264" if fmt == "mp4" else "libvpx-vp9", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        sound = out.add_stream("aac" if fmt == "mp4" else "libopus", rate=48000) if audio else None
        for i in range(frames):
            shot = np.ascontiguousarray(big[:, 2 * i : 2 * i + width])
            out.mux(video.encode(av.VideoFrame.from_ndarray(shot, format="rgb24")))
        out.mux(video.encode())
        if sound is not None:
            samples = 48000 * frames // rate
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)
            chunk = av.AudioFrame.from_ndarray(
                tone.astype(np.float32)[None], format="fltp", layout="mono"
            )
            chunk.sample_rate = 48000
            chunk.time_base = Fraction(1, 48000)
            chunk.pts = 0
            for packet in sound.encode(chunk):
                out.mux(packet)
            out.mux(sound.encode())
    data = buffer.getvalue()
    return moov_first(data) if faststart and fmt == "mp4" else data


def turned_video() -> bytes:
    """A phone's portrait video: 64×32 frames stored with a white top-left corner, and a
    display matrix that turns them a quarter counter-clockwise (shown 32×64)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=2)
        video.width, video.height, video.pix_fmt = 64, 32, "yuv420p"
        video.set_display_rotation(90)
        for _ in range(2):
            frame = np.zeros((32, 64, 3), np.uint8)
            frame[:16, :16] = 255
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode())
    return buffer.getvalue()


# ---- MP4 boxes ------------------------------------------------------------------------------

# Bytes of fields before the child boxes, for boxes that hold boxes.
_SKIP = {b"moov": 0, b"trak": 0, b"mdia": 0, b"minf": 0, b"stbl": 0, b"dinf": 0}
_SKIP |= {b"stsd": 8, b"avc1": 78}


def _boxes(data: bytes):
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        yield kind, data[at + 8 : at + size]
        at += size


def rewrite_box(data: bytes, path: tuple[bytes, ...], change) -> bytes:
    """The MP4 with the payload of the box at ``path`` (types from the top) replaced by
    ``change(payload)``; the sizes of its parents follow. Media offsets are kept, so the moov
    must come after the mdat (PyAV's default, no faststart)."""

    def walk(data: bytes, path: tuple[bytes, ...]) -> bytes:
        out = bytearray()
        found = False
        for kind, payload in _boxes(data):
            if kind == path[0] and not found:
                found = True
                if len(path) == 1:
                    payload = change(payload)
                else:
                    skip = _SKIP[kind]
                    payload = payload[:skip] + walk(payload[skip:], path[1:])
            out += struct.pack(">I4s", len(payload) + 8, kind) + payload
        if not found:
            raise KeyError(path[0])
        return bytes(out)

    return walk(data, path)


def _bits_sps(width_mbs: int, height_mbs: int) -> bytes:
    """An H.264 baseline SPS NAL unit declaring width_mbs × height_mbs macroblocks."""
    bits = ""

    def ue(value: int) -> str:
        code = bin(value + 1)[2:]
        return "0" * (len(code) - 1) + code

    bits += format(66, "08b") + "00000000" + format(51, "08b")
    bits += ue(0) + ue(0) + ue(2) + ue(1) + "0"
    bits += ue(width_mbs - 1) + ue(height_mbs - 1) + "1" + "1" + "0" + "0" + "1"
    bits += "0" * (-len(bits) % 8)
    raw = int(bits, 2).to_bytes(len(bits) // 8, "big")
    escaped = bytearray()
    zeros = 0
    for byte in raw:
        if zeros >= 2 and byte <= 3:
            escaped.append(3)
            zeros = 0
        escaped.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return b"\x67" + bytes(escaped)


def huge_declared_mp4(side: int = 100_000) -> bytes:
    """A good 32×32 MP4 whose moov declares side × side frames: in the track header, the
    sample entry (16 bits: 65535 at most) and the H.264 parameter set in its avcC."""
    data = good_video(audio=False, faststart=False)
    mbs = (side + 15) // 16

    def tkhd(payload: bytes) -> bytes:
        fixed = min(side, 0xFFFF) << 16
        return payload[:76] + struct.pack(">II", fixed, fixed) + payload[84:]

    def avcc(payload: bytes) -> bytes:
        sps_length = struct.unpack(">H", payload[6:8])[0]
        sps = _bits_sps(mbs, mbs)
        return payload[:6] + struct.pack(">H", len(sps)) + sps + payload[8 + sps_length :]

    def avc1(payload: bytes) -> bytes:
        return payload[:24] + struct.pack(">HH", min(side, 0xFFFF), 0xFFFF) + payload[28:]

    data = rewrite_box(data, (b"moov", b"trak", b"tkhd"), tkhd)
    stsd = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd")
    data = rewrite_box(data, (*stsd, b"avc1", b"avcC"), avcc)
    return rewrite_box(data, (*stsd, b"avc1"), avc1)


def ten_hour_mp4() -> bytes:
    """A good two-second MP4 whose movie and media headers and sample durations say it lasts
    ten hours."""
    data = good_video(audio=False, faststart=False)

    def lasting(at: int):
        def change(payload: bytes) -> bytes:
            timescale = struct.unpack(">I", payload[at - 4 : at])[0]
            return payload[:at] + struct.pack(">I", timescale * 36_000) + payload[at + 4 :]

        return change

    def stts(payload: bytes) -> bytes:
        (count,) = struct.unpack(">I", payload[4:8])
        entries = [struct.unpack(">II", payload[8 + 8 * i : 16 + 8 * i]) for i in range(count)]
        longer = b"".join(struct.pack(">II", n, delta * 18_000) for n, delta in entries)
        return payload[:8] + longer

    data = rewrite_box(data, (b"moov", b"mvhd"), lasting(16))
    data = rewrite_box(data, (b"moov", b"trak", b"mdia", b"mdhd"), lasting(16))
    stbl = (b"moov", b"trak", b"mdia", b"minf", b"stbl")
    return rewrite_box(data, (*stbl, b"stts"), stts)


def hls_playlist(target: str) -> bytes:
    """An HLS playlist (the known FFmpeg local-file read) whose one segment is ``target``."""
    return (
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-TARGETDURATION:10\n"
        f"#EXTINF:10.0,\nfile://{target}\n#EXT-X-ENDLIST\n"
    ).encode()


def avi_referring(target: str) -> bytes:
    """An AVI whose OpenDML super index names another file (``target``) for its chunks."""
    path = target.encode() + b"\x00"
    indx = b"indx" + struct.pack("<IHBBI4sIII", 24 + len(path), 4, 0, 0, 1, b"00dc", 0, 0, 0)
    strl = b"LIST" + struct.pack("<I", 4 + len(indx)) + b"strl" + indx
    hdrl = b"LIST" + struct.pack("<I", 4 + len(strl) + len(path)) + b"hdrl" + strl + path
    return b"RIFF" + struct.pack("<I", 4 + len(hdrl)) + b"AVI " + hdrl


def many_streams_mkv(streams: int) -> bytes:
    """A Matroska of ``streams`` video tracks, the first with frames in it. PyAV's muxer crashes
    (SIGSEGV) past a few thousand tracks, so it writes two and the second's TrackEntry is
    copied, numbered anew, up to ``streams``."""
    source = good_video("matroska", audio=False)
    with av.open(io.BytesIO(source), format="matroska") as inp:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="matroska") as out:
            template = inp.streams.video[0]
            tracks = [out.add_stream_from_template(template) for _ in range(2)]
            for packet in inp.demux(template):
                if packet.dts is None:
                    continue
                packet.stream = tracks[0]
                out.mux(packet)
    data = buffer.getvalue()
    start = data.index(_MKV_SEGMENT)
    size, body = _ebml_size(data, start + len(_MKV_SEGMENT))
    segment = data[body : body + size]
    tracks_at, tracks_size, tracks_body = next(
        (at, size, body) for at, eid, size, body in _ebml_children(segment) if eid == _MKV_TRACKS
    )
    first, template = (
        segment[body : body + size]
        for _, eid, size, body in _ebml_children(segment, tracks_body, tracks_body + tracks_size)
        if eid == _MKV_TRACK_ENTRY
    )
    entries = [_ebml(_MKV_TRACK_ENTRY, first)]
    for number in range(2, streams + 1):
        fields = b"".join(
            _ebml(eid, number.to_bytes(2, "big") if eid in _MKV_TRACK_IDS else template[b : b + n])
            for _, eid, n, b in _ebml_children(template)
        )
        entries.append(_ebml(_MKV_TRACK_ENTRY, fields))
    segment = (
        segment[:tracks_at]
        + _ebml(_MKV_TRACKS, b"".join(entries))
        + segment[tracks_body + tracks_size :]
    )
    # The SeekHead's offsets past the tracks are now wrong; FFmpeg reads on without them.
    return data[:start] + _ebml(_MKV_SEGMENT, segment)


# Matroska (EBML) element ids: Segment, Tracks, TrackEntry, and TrackNumber and TrackUID.
_MKV_SEGMENT = bytes.fromhex("18538067")
_MKV_TRACKS = bytes.fromhex("1654AE6B")
_MKV_TRACK_ENTRY = bytes.fromhex("AE")
_MKV_TRACK_IDS = (bytes.fromhex("D7"), bytes.fromhex("73C5"))


def _ebml_vint_length(first: int) -> int:
    if not first:
        raise ValueError("not an EBML variable-length number")
    return 9 - first.bit_length()


def _ebml_size(data: bytes, at: int) -> tuple[int, int]:
    """An element's data size written at ``at``, and where its data starts."""
    n = _ebml_vint_length(data[at])
    return int.from_bytes(data[at : at + n], "big") & ((1 << (7 * n)) - 1), at + n


def _ebml_children(data: bytes, start: int = 0, end: int | None = None):
    """(where, id, size, where its data starts) of each element in ``data[start:end]``."""
    at, end = start, len(data) if end is None else end
    while at < end:
        id_end = at + _ebml_vint_length(data[at])
        size, body = _ebml_size(data, id_end)
        yield at, data[at:id_end], size, body
        at = body + size


def _ebml(eid: bytes, payload: bytes) -> bytes:
    """An element, its size in eight bytes."""
    return eid + (1 << 56 | len(payload)).to_bytes(8, "big") + payload


def growing_frames_mkv(small: int = 32, large: int = 512) -> bytes:
    """A Matroska whose header (and first frames) say small × small, whose later frames carry
    parameter sets of their own and decode to large × large."""
    raw = b""
    for side in (small, large):
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="h264") as out:
            video = out.add_stream("libx264", rate=4)
            video.width = video.height = side
            video.pix_fmt = "yuv420p"
            for _ in range(2):
                frame = np.zeros((side, side, 3), np.uint8)
                out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            out.mux(video.encode())
        raw += buffer.getvalue()
    with av.open(io.BytesIO(raw), format="h264") as inp:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="matroska") as out:
            track = out.add_stream_from_template(inp.streams.video[0])
            packets = [p for p in inp.demux(inp.streams.video[0]) if p.size]
            for i, packet in enumerate(packets):
                packet.stream = track
                packet.time_base = Fraction(1, 1000)
                packet.pts = packet.dts = 250 * i
                packet.duration = 250
                out.mux(packet)
        return buffer.getvalue()
