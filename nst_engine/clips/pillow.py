"""Decoding the frames of a GIF or an animated WebP with Pillow, once its structure has passed
the limits."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from nst_engine.clips.clip import Limits, fit_to_screen
from nst_engine.images import PIL_WARNINGS_LOCK, decode_failures, resize, to_rgb


def decode_frames(
    data: bytes, fmt: str, count: int, size: tuple[int, int], limits: Limits
) -> tuple[np.ndarray, ...]:
    """Every frame of a GIF or WebP whose structure has passed the checks."""
    kept = limits.kept_size(size)
    frames = []
    with PIL_WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with (
            decode_failures("animation", "animation decode"),
            Image.open(io.BytesIO(data), formats=(fmt,)) as image,
        ):
            for index in range(count):
                image.seek(index)
                image.load()
                rgb = fit_to_screen(to_rgb(image), size)
                if kept != size:
                    rgb = resize(rgb, *kept)
                frames.append(rgb)
    return tuple(frames)
