"""Stylizing clips (nst_engine.animation): flow, warping, occlusion, the temporal term, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from nst_engine.animation import (
    AnimationResult,
    consistency_mask,
    optical_flow,
    planned_steps,
    stylize_frames,
    warp,
)
from nst_engine.frames import Clip, decode_clip, encode_clip
from nst_engine.options import StyleOptions
from nst_engine.transfer import TemporalTerm, stylize
from tests.support import SHIFT, flicker, gradient_image, pan_frames, stripes_image


def _tiny(**changes) -> StyleOptions:
    values = {"steps": 12, "max_size": 48, "learning_rate": 0.05, "start_noise": 0.08}
    return StyleOptions(**{**values, **changes})


def test_flow_warp_and_mask_follow_apan_frames():
    previous, later = pan_frames(2)
    backward = optical_flow(later, previous)
    assert abs(float(np.median(backward[..., 0])) - SHIFT) < 0.25
    assert abs(float(np.median(backward[..., 1]))) < 0.25
    warped = warp(previous.astype(np.float32), backward)
    inner = np.s_[4:-4, 4:-6]
    assert np.abs(warped[inner] - later[inner]).mean() < 6
    mask = consistency_mask(backward, optical_flow(previous, later))
    assert mask.dtype == np.float32 and mask.shape == later.shape[:2]
    # The rightmost columns came from outside the previous frame: not trusted.
    assert mask[:, -1].mean() == 0
    assert mask[inner].mean() > 0.9


def test_temporal_term_holds_the_picture_to_its_target(random_model, style_image):
    content = gradient_image(40, 32, seed=1)
    target = np.full((32, 40, 3), 0.5, np.float32)
    mask = np.ones((32, 40), np.float32)
    free = stylize(content, style_image, _tiny(start_noise=0.0), model=random_model)
    held = stylize(
        content,
        style_image,
        _tiny(start_noise=0.0),
        model=random_model,
        init_image=target,
        temporal=TemporalTerm(target, mask, 1e7),
    )
    assert held.losses.temporal > 0 and free.losses.temporal == 0
    assert held.losses.total == pytest.approx(
        held.losses.content + held.losses.style + held.losses.tv + held.losses.temporal
    )
    off_free = np.abs(free.image.astype(np.float32) - 127.5).mean()
    off_held = np.abs(held.image.astype(np.float32) - 127.5).mean()
    assert off_held < off_free / 3


def test_init_image_replaces_the_start(random_model, style_image):
    content = gradient_image(40, 32, seed=1)
    start = np.zeros((32, 40, 3), np.uint8)
    result = stylize(
        content,
        style_image,
        _tiny(steps=1, learning_rate=0.001),
        model=random_model,
        init_image=start,
    )
    assert result.image.mean() < 3


def test_clip_runs_first_frame_in_full_and_later_frames_short(random_model, style_image):
    clip = pan_frames(3)
    seen = []
    result = stylize_frames(
        clip,
        style_image,
        _tiny(),
        model=random_model,
        later_steps=4,
        on_progress=lambda p: seen.append((p.frame, p.frames, p.step, p.total, p.eta)),
    )
    assert isinstance(result, AnimationResult)
    assert len(result.frames) == 3 and result.steps == (12, 4, 4)
    assert all(f.dtype == np.uint8 and f.shape == (36, 48, 3) for f in result.frames)
    assert not result.cancelled and result.weights == "random"
    assert not result.is_real_style_transfer
    assert result.losses[0].temporal == 0 and result.losses[2].temporal > 0
    assert 0.5 < result.trusted[1] < 1
    assert [s[:2] for s in seen[:1]] == [(1, 3)] and seen[-1][:4] == (3, 3, 20, 20)
    assert {s[3] for s in seen} == {planned_steps(3, _tiny(), 4)}
    assert [s[2] for s in seen] == list(range(1, 21))
    assert all(eta is not None and eta >= 0 for *_, eta in seen)


def test_cancelling_ends_the_clip_with_the_frames_so_far(random_model, style_image):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 14

    result = stylize_frames(
        pan_frames(4), style_image, _tiny(), model=random_model, later_steps=4, should_stop=stop
    )
    assert result.cancelled and len(result.frames) == 2 and result.steps == (12, 2)


def test_temporal_consistency_flickers_less_than_frame_by_frame(random_model):
    clip = pan_frames(4)
    style = stripes_image(48, 48)
    options = _tiny(steps=20)
    alone = stylize_frames(
        clip, style, options, model=random_model, temporal_weight=0, warm_start=False
    )
    ours = stylize_frames(clip, style, options, model=random_model, later_steps=6)
    assert alone.steps == (20, 20, 20, 20) and ours.steps == (20, 6, 6, 6)
    assert flicker(ours.frames) < 0.5 * flicker(alone.frames)


def test_a_video_result_flickers_at_most_half_as_much_as_frame_by_frame(random_model):
    # A member's MP4 (issue 25): decoded in the sandbox, painted, written back as MP4 and
    # decoded again; frame-by-frame's frames go through the same MP4 round trip.
    source = Clip(tuple(pan_frames(4)), (250,) * 4, None, "mp4", Fraction(4))
    clip = decode_clip(encode_clip(source, "mp4", quality=100))
    style = stripes_image(48, 48)
    options = _tiny(steps=20)
    frames = list(clip.frames)
    alone = stylize_frames(
        frames, style, options, model=random_model, temporal_weight=0, warm_start=False
    )
    ours = stylize_frames(frames, style, options, model=random_model, later_steps=6)

    def as_sent(painted) -> tuple[np.ndarray, ...]:
        sent = decode_clip(encode_clip(clip.with_frames(painted), "mp4"))
        assert len(sent.frames) == 4 and sent.rate == 4
        return sent.frames

    assert flicker(as_sent(ours.frames)) < 0.5 * flicker(as_sent(alone.frames))


def test_bad_arguments_are_refused(random_model, style_image):
    with pytest.raises(ValueError, match="at least one frame"):
        stylize_frames([], style_image, model=random_model)
    with pytest.raises(ValueError, match="temporal_weight"):
        stylize_frames(pan_frames(2), style_image, model=random_model, temporal_weight=-1)
    frames = [gradient_image(40, 32), gradient_image(32, 40)]
    with pytest.raises(ValueError, match="size of the first"):
        stylize_frames(frames, style_image, model=random_model)


def _nst(*args, cwd):
    exe = shutil.which("nst") or os.path.join(os.path.dirname(sys.executable), "nst")
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, env=dict(os.environ), timeout=300
    )


def test_cli_stylizes_a_gif_into_a_gif(tmp_path):
    clip = Clip(tuple(pan_frames(3, 40, 32)), (70, 0, 120), 2, "gif")
    source = tmp_path / "clip.gif"
    source.write_bytes(encode_clip(clip))
    style = tmp_path / "painting.png"
    Image.fromarray(stripes_image(40, 40)).save(style)
    out = tmp_path / "out.gif"
    run = _nst(
        "stylize",
        str(source),
        str(style),
        "-o",
        str(out),
        "--weights",
        "random",
        "--steps",
        "6",
        "--size",
        "40",
        "--temporal-weight",
        "1000",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    back = decode_clip(out.read_bytes())
    assert len(back.frames) == 3 and back.durations == (70, 0, 120) and back.loop == 2
    assert back.size == (40, 32)
    assert "frame 3/3" in run.stderr and "ETA" in run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out} (3 frames of 40×32, ") and "not a real" in last
    info = _nst("info", str(out), cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    made = json.loads(info.stdout)
    assert made["frames"] == 3 and made["temporal_weight"] == 1000


def test_cli_refuses_too_many_frames_in_one_line(tmp_path):
    clip = Clip(tuple(pan_frames(5, 40, 32)), (50,) * 5, 0, "gif")
    source = tmp_path / "clip.gif"
    source.write_bytes(encode_clip(clip))
    style = tmp_path / "painting.png"
    Image.fromarray(stripes_image(40, 40)).save(style)
    run = _nst(
        "stylize",
        str(source),
        str(style),
        "-o",
        str(tmp_path / "o.gif"),
        "--max-frames",
        "4",
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == "error: clip.gif: the animation has 5 frames; the limit is 4"
