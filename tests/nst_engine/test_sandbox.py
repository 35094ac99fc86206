"""Member videos in the sandbox (nst_engine.clips.sandbox): good ones in and out, with their
sound, and a hostile corpus refused in one line each without a file outside it being opened."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from nst_engine.clips import decode_clip, encode_clip, read_clip_parameters
from nst_engine.clips.clip import Limits
from nst_engine.clips.sandbox import Jail, decode_video, probe_video
from nst_engine.errors import ImageError
from tests.nst_engine import video_corpus as corpus

LIMITS = Limits(max_pixels=40_000_000, max_frames=48, max_clip_pixels=200_000_000, max_side=512)


class Watch:
    """Whether anything opened a FIFO for reading while the body ran: a writer's non-blocking
    open succeeds only while a reader has it open (or is waiting in open), else ENXIO."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.opened = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._done.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as err:
                assert err.errno == errno.ENXIO
                time.sleep(0.001)
                continue
            self.opened = True
            os.close(fd)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        # And after the attempt: still nobody reading.
        with pytest.raises(OSError) as caught:
            os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        assert caught.value.errno == errno.ENXIO


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere.ts"
    os.mkfifo(path)
    return path


def test_the_watch_sees_a_reader(fifo):
    # The check below can fail: a reader that opens the FIFO is seen.
    with Watch(fifo) as watch:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        time.sleep(0.05)
        os.close(fd)
    assert watch.opened


def test_plain_ffmpeg_reads_the_playlists_local_file(fifo, tmp_path):
    # What the sandbox prevents: FFmpeg left to open a playlist opens its local segment. (Named
    # .mp4, FFmpeg 7 no longer probes it as HLS; named .m3u8, it does.)
    playlist = tmp_path / "clip.m3u8"
    playlist.write_bytes(corpus.hls_playlist(str(fifo)))
    script = f"import av\ntry:\n    av.open({str(playlist)!r})\nexcept Exception:\n    pass\n"
    with Watch(fifo) as watch:
        child = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 20
        while not watch.opened and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.kill()
        child.wait()
    assert watch.opened


def test_mp4_with_sound_round_trips_through_the_sandbox():
    data = corpus.good_video(frames=8, rate=4)
    probed = probe_video(data, "mp4")
    assert (probed.width, probed.height, probed.frames) == (32, 32, 8)
    assert probed.codec == "h264" and probed.audio == "aac" and probed.streams == 2
    assert 1.9 <= probed.seconds <= 2.2
    clip = decode_clip(data)
    assert len(clip.frames) == 8 and clip.size == (32, 32) and clip.rate == 4
    assert clip.audio
    result = encode_clip(clip, "mp4", parameters={"strength": 5})
    # The moov first (faststart), the same frames, rate, length and sound.
    assert result.index(b"moov") < result.index(b"mdat")
    again = probe_video(result, "mp4")
    assert (again.frames, again.rate, again.audio) == (8, 4, "aac")
    assert abs(again.seconds - probed.seconds) < 0.1
    assert read_clip_parameters(result) == {"strength": 5}
    back = decode_clip(result)
    for before, after in zip(clip.frames, back.frames):
        assert abs(before.astype(int) - after).mean() < 12


def test_webm_with_opus_becomes_an_mp4_with_aac():
    data = corpus.good_video("webm", frames=6, rate=3)
    clip = decode_clip(data)
    assert len(clip.frames) == 6 and clip.rate == 3 and clip.audio
    again = probe_video(encode_clip(clip, "mp4"), "mp4")
    assert (again.frames, again.codec, again.audio) == (6, "h264", "aac")


def test_first_frame_only_for_an_artwork():
    clip = decode_clip(corpus.good_video(frames=8), first_only=True)
    assert len(clip.frames) == 1 and clip.size == (32, 32)


def test_a_portrait_video_stored_on_its_side_comes_out_upright():
    clip = decode_clip(corpus.turned_video())
    assert clip.size == (32, 64)
    frame = clip.frames[0]
    assert frame[-4:, :4].mean() > 200 and frame[:4, :4].mean() < 50  # top-left went down


def test_frames_are_shrunk_in_the_child():
    clip = decode_clip(corpus.good_video(frames=2, size=(128, 64), audio=False), max_side=64)
    assert clip.size == (64, 32)


def test_too_many_frames_and_too_long_are_refused_from_the_probe():
    data = corpus.good_video(frames=12, rate=4)
    with pytest.raises(ImageError, match=r"^the animation has 12 frames; the limit is 10$"):
        decode_clip(data, max_frames=10)
    with pytest.raises(ImageError, match=r"^the video is 3\.0 s long; the limit is 2\.0 s$"):
        decode_clip(data, max_seconds=2)
    with pytest.raises(ImageError, match=r"32×32; the limit is 0\.002 megapixels in all frames$"):
        decode_clip(data, max_clip_pixels=2_000, max_side=None)


def test_a_hang_and_a_crash_are_one_line():
    data = corpus.good_video(frames=2, audio=False)
    with pytest.raises(ImageError, match=r"^the video took too long to read; send a shorter"):
        decode_video(data, "mp4", LIMITS, jail=Jail(wall_seconds=0.05))
    # Too little memory for the interpreter itself: the child dies, the caller hears one line.
    with pytest.raises(ImageError, match=r"^the video could not be read \(its decoder stopped\)$"):
        decode_video(data, "mp4", LIMITS, jail=Jail(memory_bytes=64 * 1024**2))


def test_a_child_that_says_too_much_is_killed():
    data = corpus.good_video(frames=2, audio=False)
    with pytest.raises(ImageError, match=r"^the video could not be read \(its decoder said too"):
        decode_video(data, "mp4", LIMITS, jail=Jail(reply_bytes=1000))
    assert len(decode_video(data, "mp4", LIMITS).frames) == 2


def _hostile(fifo: Path) -> dict[str, tuple[bytes, str]]:
    good = corpus.good_video(faststart=False)
    fast = corpus.good_video()
    return {
        "truncated (moov lost)": (good[: len(good) // 2], "truncated or corrupt"),
        "truncated (media cut)": (fast[: fast.index(b"mdat") + 200], "truncated or corrupt"),
        "100000×100000": (corpus.huge_declared_mp4(100_000), "truncated or corrupt"),
        "ten hours": (corpus.ten_hour_mp4(), r"^the video is 36000 s long; the limit is 10 s$"),
        "text named .mp4": (b"just some text, honestly\n" * 4, "looks like text"),
        "HLS playlist": (corpus.hls_playlist(str(fifo)), "looks like text"),
        "AVI referring elsewhere": (corpus.avi_referring(str(fifo)), "not recognised"),
        "10,000 streams": (
            corpus.many_streams_mkv(10_000),
            "^the video has 1000 or more streams; the limit is 8$",
        ),
        "frames larger than declared": (
            corpus.growing_frames_mkv(32, 512),
            r"^its frames decode to 512×512, not the 32×32 the file says$",
        ),
    }


@pytest.mark.parametrize(
    "name",
    [
        "truncated (moov lost)",
        "truncated (media cut)",
        "100000×100000",
        "ten hours",
        "text named .mp4",
        "HLS playlist",
        "AVI referring elsewhere",
        "10,000 streams",
        "frames larger than declared",
    ],
)
def test_hostile_video_is_one_line_and_opens_nothing_else(name, fifo):
    data, why = _hostile(fifo)[name]
    with Watch(fifo) as watch:
        with pytest.raises(ImageError, match=why) as caught:
            decode_clip(data)
        # Handed to the sandbox as the container its name claims, it is refused too.
        with pytest.raises(ImageError) as forced:
            decode_video(data, "webm" if data.startswith(b"\x1a\x45\xdf\xa3") else "mp4", LIMITS)
    for err in (caught.value, forced.value):
        assert "\n" not in str(err) and len(str(err)) < 200
    assert not watch.opened


def test_every_other_frame_of_a_video_keeps_its_length():
    # A result over the upload limit loses frames, not seconds.
    clip = decode_clip(corpus.good_video(frames=8, rate=4, audio=False))
    halved = probe_video(encode_clip(clip.every(2), "mp4"), "mp4")
    assert (halved.frames, halved.rate) == (4, 2)
    assert 1.9 <= halved.seconds <= 2.2


def _sandbox_children() -> list[int]:
    """Pids of running children of this process that run the sandbox's script."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"sandbox_child.py" in command:
            found.append(int(entry.name))
    return found


def test_the_child_inherits_no_descriptor_of_ours():
    # A socket the parent would pass on if it let anything through: marked inheritable.
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    os.set_inheritable(server.fileno(), True)
    ours = os.stat(f"/proc/self/fd/{server.fileno()}").st_ino
    seen: list[set[str]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in _sandbox_children():
                try:
                    fds = {
                        os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")
                    }
                except OSError:
                    continue
                seen.append(fds)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        decode_clip(corpus.good_video(frames=2, audio=False))
    finally:
        done.set()
        watcher.join()
        server.close()
    assert seen  # the watch saw the child
    assert all(f"socket:[{ours}]" not in fds for fds in seen)
    assert all(not any(fd.startswith("socket:") for fd in fds) for fds in seen)
