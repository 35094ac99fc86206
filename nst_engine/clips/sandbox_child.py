"""The short-lived child that parses a member's video with FFmpeg (see `nst_engine.clips.sandbox`,
which starts it and is its only caller).

It is run as a script with ``python -I`` (no nst_engine import, so no TensorFlow and nothing
from the parent's environment), limits itself before it reads a byte of the file, and then
reads one request from stdin: a JSON line, then the bytes it announces. It answers on stdout:
a JSON line (``{"error": ...}`` for a refusal, one line fit for the member), then the bytes the
answer announces. The file never touches the disk: FFmpeg reads it from memory, with the
container's demuxer named (no probing, so no HLS, concat or AVI demuxer is ever chosen) and
every further file FFmpeg asks for refused by `_no_other_file`.
"""

import io
import json
import os
import resource
import struct
import sys
from fractions import Fraction

# FFmpeg's demuxer per container we accept, and the names it reports for them.
DEMUXERS = {"mp4": "mp4", "webm": "matroska"}
FORMAT_NAMES = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "mp4", "matroska,webm", "matroska"})
# Codecs we decode; FFmpeg knows hundreds, and each is attack surface.
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1"})
# Audio is only copied (or re-encoded to AAC), never shown; these may be decoded for that.
AUDIO_CODECS = frozenset({"aac", "mp3", "opus", "vorbis", "flac", "ac3", "alac"})
# Demuxer options: no external data references, no other demuxer, no protocol but FFmpeg's
# in-memory one (the file is read through Python), and decoders from the lists above only.
CONTAINER_OPTIONS = {
    "format_whitelist": "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm",
    "protocol_whitelist": "file",
    "protocol_blacklist": "hls,http,https,tcp,udp,rtp,crypto,concat,subfile,data,pipe,fd",
    "enable_drefs": "0",
    "use_absolute_path": "0",
    "codec_whitelist": ",".join(sorted(VIDEO_CODECS | AUDIO_CODECS)),
}
# More streams than a phone's video has (video, audio, a timecode or two) is refused.
MAX_STREAMS = 8
# FFmpeg's demuxers stop adding streams at its `max_streams` (1000 by default): a file that
# declares more shows this many.
FFMPEG_MAX_STREAMS = 1000
CORRUPT = "the video file is truncated or corrupt"
# libx264 when PyAV's FFmpeg has it; FFmpeg's own encoders are the fallback.
H264_ENCODERS = ("libx264", "libopenh264", "h264")


class Refused(Exception):
    """One line for the member."""


def limit(address_space: int, cpu_seconds: int) -> None:
    """Hard limits before anything from the file is read: memory, CPU, no files written."""
    for which, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))


def close_files() -> None:
    """No new file may be opened from here on: the limit is the descriptors held now (stdin,
    stdout, stderr), so even a path FFmpeg was talked into would fail with EMFILE."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))


def load_everything(av) -> None:
    """Import every module PyAV may import lazily (and NumPy), while files may still be opened."""
    import importlib
    import pkgutil

    import numpy  # noqa: F401

    for module in pkgutil.walk_packages(av.__path__, "av."):
        if module.name not in ("av.__main__", "av.datasets"):
            importlib.import_module(module.name)


def _no_other_file(url, flags, options):
    raise Refused("the video refers to another file; send a self-contained MP4, MOV or WebM")


def read_exactly(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise Refused(CORRUPT)
    return data


def open_video(av, data: bytes, container: str):
    """The container opened from memory with the checks above; its video stream."""
    if container not in DEMUXERS:
        raise Refused("only MP4, MOV and WebM videos are accepted")
    try:
        opened = av.open(
            io.BytesIO(data),
            format=DEMUXERS[container],
            container_options=dict(CONTAINER_OPTIONS),
            io_open=_no_other_file,
        )
    except Refused:
        raise
    except Exception:
        raise Refused(CORRUPT) from None
    if opened.format.name not in FORMAT_NAMES:
        raise Refused("only MP4, MOV and WebM videos are accepted")
    if (count := len(opened.streams)) > MAX_STREAMS:
        many = f"{count} or more" if count >= FFMPEG_MAX_STREAMS else str(count)
        raise Refused(f"the video has {many} streams; the limit is {MAX_STREAMS}")
    if not opened.streams.video:
        raise Refused("the file has no video in it")
    stream = opened.streams.video[0]
    codec = stream.codec_context.name
    if stream.codec_context.width < 1 or stream.codec_context.height < 1:
        raise Refused(CORRUPT)  # e.g. parameter sets the decoder refused as too large
    if codec not in VIDEO_CODECS:
        raise Refused(f"the video codec {codec} is not accepted; use H.264, HEVC, VP8, VP9 or AV1")
    return opened, stream


def probe(av, data: bytes, container: str) -> dict:
    """What the container says, before a frame is decoded."""
    opened, stream = open_video(av, data, container)
    with opened:
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        seconds = 0.0
        if opened.duration:
            seconds = opened.duration / 1_000_000
        if stream.duration and stream.time_base:
            seconds = max(seconds, float(stream.duration * stream.time_base))
        frames = stream.frames or round(seconds * rate)
        # The frames at their rate: an edit list may cut the declared length short of it.
        seconds = max(seconds, float(frames / rate))
        audio = opened.streams.audio[0].codec_context.name if opened.streams.audio else None
        return {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "seconds": seconds,
            "rate": [rate.numerator, rate.denominator],
            "codec": stream.codec_context.name,
            "audio": audio,
            "streams": len(opened.streams),
            "comment": opened.metadata.get("comment") or opened.metadata.get("COMMENT"),
        }


def decode(av, data: bytes, request: dict, out) -> dict:
    """Every frame (or the first), each checked against the probed size, scaled to
    ``request["kept"]`` and turned upright (``turned``: a quarter turn, so its sides swap); the
    audio track copied into an audio-only Matroska file."""
    import numpy as np

    probed = probe(av, data, request["container"])
    expected = (probed["width"], probed["height"])
    if [probed["width"], probed["height"], probed["frames"]] != request["probed"]:
        raise Refused(CORRUPT)  # the same bytes must probe the same
    max_frames = request["max_frames"]
    kept_w, kept_h = request["kept"]
    opened, stream = open_video(av, data, request["container"])
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1
    frames = turns = 0
    with opened:
        try:
            for frame in opened.decode(stream):
                if (frame.width, frame.height) != expected:
                    raise Refused(
                        f"its frames decode to {frame.width}×{frame.height}, not the "
                        f"{expected[0]}×{expected[1]} the file says"
                    )
                if frames >= max_frames:
                    raise Refused(
                        f"the video has more than {max_frames} frames; the limit is {max_frames}"
                    )
                if frames == 0:
                    # The display matrix of the first frame, in quarter turns counter-clockwise
                    # (a phone's portrait video is stored landscape).
                    turns = round((frame.rotation or 0) / 90) % 4
                rgb = frame.reformat(kept_w, kept_h, format="rgb24").to_ndarray()
                rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
                if rgb.shape != ((kept_w, kept_h) if turns % 2 else (kept_h, kept_w)) + (3,):
                    raise Refused(CORRUPT)
                out.append(rgb.tobytes())
                frames += 1
                if request.get("first_only"):
                    break
        except Refused:
            raise
        except Exception:
            # A decoder error part-way is a damaged file, whatever came before it.
            raise Refused(CORRUPT) from None
    if not frames or (not request.get("first_only") and frames < stream.frames):
        raise Refused(CORRUPT)  # fewer frames than the header counts: truncated
    audio = b""
    if not request.get("first_only") and probed["audio"]:
        audio = copy_audio(av, data, request["container"])
    return {
        "frames": frames,
        "rate": probed["rate"],
        "turned": turns % 2 == 1,
        "audio": len(audio),
        "tail": audio,
    }


def copy_audio(av, data: bytes, container: str) -> bytes:
    """The first audio track, packets copied into an audio-only Matroska file (any codec fits
    in it); empty when it can't be read (the picture matters, the sound is a bonus)."""
    opened, _stream = open_video(av, data, container)
    buffer = io.BytesIO()
    try:
        with opened, av.open(buffer, "w", format="matroska") as sink:
            source = opened.streams.audio[0]
            copied = sink.add_stream_from_template(source)
            for packet in opened.demux(source):
                if packet.dts is None:
                    continue
                packet.stream = copied
                sink.mux(packet)
    except Exception:
        return b""
    return buffer.getvalue()


def encode(av, request: dict, stdin) -> bytes:
    """The frames as an MP4: H.264 in yuv420p at the clip's frame rate, the moov first
    (faststart), with the audio track given, copied if it is AAC, else re-encoded to AAC."""
    import numpy as np

    width, height, count = request["width"], request["height"], request["frames"]
    rate = Fraction(*request["rate"])
    even_w, even_h = width + width % 2, height + height % 2
    frame_bytes = width * height * 3
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as sink:
        if request.get("comment"):
            sink.metadata["comment"] = request["comment"]
        name = next(n for n in H264_ENCODERS if n in av.codecs_available)
        video = sink.add_stream(name, rate=rate)
        video.width, video.height, video.pix_fmt = even_w, even_h, "yuv420p"
        if name == "libx264":
            video.options = {"crf": str(request.get("crf", 23))}
        audio_data = read_exactly(stdin, request["audio"]) if request["audio"] else b""
        frames = [read_exactly(stdin, frame_bytes) for _ in range(count)]
        audio_in = audio_out = None
        if audio_data:
            try:
                audio_in = av.open(io.BytesIO(audio_data), format="matroska")
                source = audio_in.streams.audio[0]
                if source.codec_context.name == "aac":
                    audio_out = sink.add_stream_from_template(source)
                else:
                    audio_out = sink.add_stream("aac", rate=source.codec_context.sample_rate)
            except Exception:
                audio_in = audio_out = None
        for raw in frames:
            rgb = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
            if (even_w, even_h) != (width, height):
                rgb = np.pad(rgb, ((0, even_h - height), (0, even_w - width), (0, 0)), "edge")
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            sink.mux(video.encode(picture))
        sink.mux(video.encode())
        if audio_in is not None:
            with audio_in:
                source = audio_in.streams.audio[0]
                copy = source.codec_context.name == "aac"
                for packet in audio_in.demux(source):
                    if copy:
                        if packet.dts is None:
                            continue
                        packet.stream = audio_out
                        sink.mux(packet)
                    else:
                        for decoded in packet.decode():
                            decoded.pts = None
                            sink.mux(audio_out.encode(decoded))
                if not copy:
                    sink.mux(audio_out.encode())
    return moov_first(buffer.getvalue())


# Boxes that hold other boxes on the way from moov to the chunk offset tables.
_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})


def boxes(data: bytes, start: int, end: int):
    """(type, start, header length, end) of each box between ``start`` and ``end``."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", data[at + 8 : at + 16])[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError("bad box")
        yield kind, at, header, at + size
        at += size


def moov_first(data: bytes) -> bytes:
    """The MP4 with its moov box moved before the media data, as ``movflags=faststart`` does
    (FFmpeg can't do it on an in-memory output): a player starts before the whole file is in.
    Every chunk offset grows by the moov's length."""
    top = list(boxes(data, 0, len(data)))
    kinds = [kind for kind, *_ in top]
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
        return data
    _, moov_start, _, moov_end = top[kinds.index(b"moov")]
    moov = bytearray(data[moov_start:moov_end])
    shift = len(moov)

    def patch(start: int, end: int) -> None:
        for kind, at, header, stop in boxes(moov, start, end):
            if kind in _CONTAINERS:
                patch(at + header, stop)
            elif kind in (b"stco", b"co64"):
                width, code = (4, ">I") if kind == b"stco" else (8, ">Q")
                (count,) = struct.unpack(">I", moov[at + 12 : at + 16])
                for i in range(count):
                    where = at + 16 + i * width
                    (offset,) = struct.unpack(code, moov[where : where + width])
                    struct.pack_into(code, moov, where, offset + shift)

    patch(8, len(moov))
    _, mdat_start, _, _ = top[kinds.index(b"mdat")]
    return data[:mdat_start] + bytes(moov) + data[mdat_start:moov_start] + data[moov_end:]


def answer(reply: dict, tail: bytes = b"") -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(reply).encode() + b"\n")
    out.write(tail)
    out.flush()


def main() -> None:
    limit(int(os.environ["NST_SANDBOX_AS"]), int(os.environ["NST_SANDBOX_CPU"]))
    import av  # after the limits: a hostile file can't raise them back

    load_everything(av)
    av.logging.set_level(av.logging.PANIC)
    stdin = sys.stdin.buffer
    request = json.loads(stdin.readline())
    close_files()
    try:
        if request["op"] == "encode":
            data = encode(av, request, stdin)
            answer({"size": len(data)}, data)
            return
        data = read_exactly(stdin, request["size"])
        if request["op"] == "probe":
            answer(probe(av, data, request["container"]))
            return
        pictures: list[bytes] = []
        reply = decode(av, data, request, pictures)
        tail = reply.pop("tail")
        answer(reply, b"".join(pictures) + tail)
    except Refused as refusal:
        answer({"error": str(refusal)})
    except MemoryError:
        answer({"error": "the video needs more memory to decode than it may use"})


if __name__ == "__main__":
    main()
