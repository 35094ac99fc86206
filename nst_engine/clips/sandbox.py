"""Member videos (MP4, MOV, WebM) probed, decoded and encoded in a short-lived child process.

FFmpeg parses hundreds of formats and has had its share of memory bugs and of files that make
it read other files (an HLS playlist whose segment is ``file:///etc/passwd``, an AVI or MOV
whose index points elsewhere). So no video from a stranger is parsed in the caller's process:
each step runs `sandbox_child` as a fresh interpreter (``python -I``, exec'd, with no
descriptor of ours but its three pipes: ``close_fds``), which

- limits its own address space, CPU seconds and core size, and may write no file, before it
  reads a byte of the video; then, once PyAV is loaded, may open no new file at all;
- reads the video from its stdin, never from a path, and names the demuxer itself (the
  container sniffed from the first bytes: MP4/MOV or Matroska/WebM), so that FFmpeg never
  probes a format (no HLS, concat or AVI demuxer), with FFmpeg's format, protocol and codec
  whitelists set and every further file FFmpeg asks for refused;
- decodes H.264, HEVC, VP8, VP9 and AV1 only.

The probe comes first, in a child of its own, and the video is refused past its limits (frames,
seconds, pixels) before a frame is decoded; the decode then checks every frame against the
probed size. The child is killed past a wall-clock limit. Every refusal, crash or hang is one
`ImageError` line fit for the member. These calls block: the bot runs them in a thread.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from nst_engine.clips.clip import Clip, Limits
from nst_engine.errors import ImageError

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("sandbox_child.py")
# Longest video accepted, in seconds (NST_MAX_VIDEO_SECONDS in the bot).
DEFAULT_MAX_VIDEO_SECONDS = 10.0
# The containers accepted, as `nst_engine.clips` names them (MOV sniffs as mp4).
CONTAINERS = ("mp4", "webm")
_CORRUPT = "the video file is truncated or corrupt"
_TOO_LONG = "the video took too long to read; send a shorter or simpler one"
# Most bytes a probe's reply may have (a JSON line); a decode's or an encode's is sized to it.
_SMALL_REPLY = 1024 * 1024


@dataclass(frozen=True)
class Jail:
    """The limits of one child."""

    # Address space in bytes (the interpreter, NumPy and FFmpeg take about 400 MB of it).
    memory_bytes: int = 2 * 1024**3
    # CPU seconds (the kernel sends SIGXCPU, then SIGKILL); 48 frames of 1080p H.264 took
    # 1.3 s to probe and decode (shrunk to 512 px) on the 2-core Xeon of docs/animation.md.
    cpu_seconds: int = 30
    # Seconds of wall-clock time before the child is killed (a hang that uses no CPU).
    wall_seconds: float = 30.0
    # Most bytes of the child's reply, past which it is killed; None: what the request asks
    # for (a decode: its frames at the kept size, the audio and a line), so that a child gone
    # wrong can't fill the caller's memory.
    reply_bytes: int | None = None


DEFAULT_JAIL = Jail()


@dataclass(frozen=True)
class VideoProbe:
    """What a video's container says, read before a frame is decoded."""

    # Size of the frames as stored (a display rotation is applied when decoding).
    width: int
    height: int
    # Frames in the video stream (the header's count, or the duration × the frame rate).
    frames: int
    # Length of the longest stream, in seconds.
    seconds: float
    # Frames per second.
    rate: Fraction
    # FFmpeg's names of the video codec and the first audio track's (None: silent).
    codec: str
    audio: str | None
    # Streams in the container.
    streams: int
    # The container's ``comment`` tag (where `encode_mp4` puts a result's parameters), or None.
    comment: str | None = None


def probe_video(data: bytes, kind: str, *, jail: Jail = DEFAULT_JAIL) -> VideoProbe:
    """What the container of an MP4/MOV or WebM (``kind``: 'mp4' or 'webm') says, in a child."""
    reply, _ = _run({"op": "probe", "container": kind, "size": len(data)}, data, jail)
    return VideoProbe(
        reply["width"],
        reply["height"],
        reply["frames"],
        reply["seconds"],
        Fraction(*reply["rate"]),
        reply["codec"],
        reply["audio"],
        reply["streams"],
        reply["comment"] if isinstance(reply["comment"], str) else None,
    )


def decode_video(
    data: bytes,
    kind: str,
    limits: Limits,
    *,
    max_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
    first_only: bool = False,
    jail: Jail = DEFAULT_JAIL,
) -> Clip:
    """Every frame of a video (or the first, with ``first_only``), refused past ``limits`` and
    ``max_seconds`` from the probe, before a frame is decoded.

    Returns:
        A `Clip` of ``uint8`` ``(H, W, 3)`` RGB frames shrunk to ``limits.max_side``, at the
        video's frame rate, with its first audio track (an audio-only Matroska file) as
        `Clip.audio`.

    Raises:
        ImageError: For every problem with ``data``, in one line fit for whoever sent it.
    """
    if kind not in CONTAINERS:
        raise ImageError("only MP4, MOV and WebM videos are accepted")
    probed = probe_video(data, kind, jail=jail)
    if probed.seconds > max_seconds:
        raise ImageError(
            f"the video is {_seconds(probed.seconds)} long; the limit is {_seconds(max_seconds)}"
        )
    size = (probed.width, probed.height)
    limits.check(1 if first_only else max(1, probed.frames), size)
    kept_w, kept_h = limits.kept_size(size)
    request = {
        "op": "decode",
        "container": kind,
        "size": len(data),
        "probed": [probed.width, probed.height, probed.frames],
        "kept": [kept_w, kept_h],
        "max_frames": limits.max_frames,
        "first_only": first_only,
    }
    # The frames as asked for, the audio track (never longer than the file) and the JSON line.
    most = limits.max_frames * kept_w * kept_h * 3 + len(data) + _SMALL_REPLY
    reply, payload = _run(request, data, jail, most=most)
    count = reply["frames"]
    if reply["turned"]:  # stored on its side, shown upright
        kept_w, kept_h = kept_h, kept_w
    frame_bytes = kept_w * kept_h * 3
    if not 1 <= count <= limits.max_frames or len(payload) != count * frame_bytes + reply["audio"]:
        raise ImageError(_CORRUPT)
    pixels = np.frombuffer(payload, np.uint8, count * frame_bytes).reshape(count, kept_h, kept_w, 3)
    frames = tuple(np.array(frame) for frame in pixels)
    rate = Fraction(*reply["rate"])
    duration = max(1, round(1000 / rate))
    audio = payload[count * frame_bytes :] or None
    # The result of a video is an MP4, whatever it came in (see `encode_mp4`).
    return Clip(frames, (duration,) * count, None, "mp4", rate, audio=audio)


def encode_mp4(
    clip: Clip, *, quality: int = 90, comment: str | None = None, jail: Jail = DEFAULT_JAIL
) -> bytes:
    """The clip as an MP4 (H.264, yuv420p, moov first) at its frame rate (else one from its
    durations), with its audio track (copied if AAC, else re-encoded to AAC), in a child."""
    rate = clip.rate
    if rate is None:
        mean = sum(clip.played_durations) / len(clip.frames)
        rate = Fraction(1000 / mean).limit_denominator(1001)
    width, height = clip.size
    audio = clip.audio or b""
    request = {
        "op": "encode",
        "width": width,
        "height": height,
        "frames": len(clip.frames),
        "rate": [rate.numerator, rate.denominator],
        # quality 100 → crf 10 (near lossless), 1 → crf 50.
        "crf": round(50 - 40 * (quality - 1) / 99),
        "comment": comment,
        "audio": len(audio),
    }
    payload = audio + b"".join(np.ascontiguousarray(f).tobytes() for f in clip.frames)
    # H.264 at any quality is far smaller than the raw frames.
    reply, data = _run(request, payload, jail, most=len(payload) + _SMALL_REPLY)
    if len(data) != reply["size"]:
        raise ImageError("the video could not be encoded")
    return data


def _run(
    request: dict, payload: bytes, jail: Jail, *, most: int = _SMALL_REPLY
) -> tuple[dict, bytes]:
    """One child: the request and its bytes in, the reply and its bytes out (at most ``most``
    bytes of them, or the jail's ``reply_bytes``: a child that says more is killed)."""
    most = jail.reply_bytes or most
    env = {
        "NST_SANDBOX_AS": str(jail.memory_bytes),
        "NST_SANDBOX_CPU": str(jail.cpu_seconds),
        "PATH": os.defpath,
        # One thread each: threads reserve address space, and the child does one thing.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    child = subprocess.Popen(
        [sys.executable, "-I", str(CHILD)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd="/",
        close_fds=True,
        start_new_session=True,
    )
    with child:
        out, err = bytearray(), bytearray()
        too_much = threading.Event()

        def feed() -> None:
            with contextlib.suppress(OSError):  # a child that stopped reading
                child.stdin.write(json.dumps(request).encode() + b"\n" + payload)
            with contextlib.suppress(OSError):
                child.stdin.close()

        def drain(stream, kept: bytearray, cap: int, kill: bool) -> None:
            while chunk := stream.read(64 * 1024):
                kept += chunk[: max(0, cap + 1 - len(kept))]
                if kill and len(kept) > cap:
                    too_much.set()
                    child.kill()
                    return

        threads = [
            threading.Thread(target=feed, daemon=True),
            threading.Thread(target=drain, args=(child.stdout, out, most, True), daemon=True),
            threading.Thread(target=drain, args=(child.stderr, err, 4096, False), daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            child.wait(jail.wall_seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            log.warning("the video child ran past %s s and was killed", jail.wall_seconds)
            raise ImageError(_TOO_LONG) from None
        finally:
            for thread in threads:
                thread.join()
    if too_much.is_set():
        log.warning("the video child said more than %d bytes and was killed", most)
        raise ImageError("the video could not be read (its decoder said too much)")
    head, _, tail = bytes(out).partition(b"\n")
    try:
        reply = json.loads(head)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        log.warning(
            "the video child stopped (exit %s): %s",
            child.returncode,
            err[-500:].decode("utf-8", "replace"),
        )
        if -child.returncode in (signal.SIGXCPU, signal.SIGKILL):
            raise ImageError(_TOO_LONG)
        raise ImageError("the video could not be read (its decoder stopped)")
    if "error" in reply:
        raise ImageError(str(reply["error"]))
    return reply, tail


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
