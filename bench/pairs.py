"""The photo/artwork pairs that the presets are tuned and judged on.

Photos and most artworks are scikit-image's bundled samples (public-domain or CC0 images that
ship inside its wheel, so nothing is downloaded); one artwork is painted here, by code: seeded
brush strokes along a swirl, in a painting's palette, because scikit-image has no painting.
"""

from __future__ import annotations

import math

import numpy as np

# name: (kind, photo, artwork); photo and artwork are skimage.data names or "strokes".
PAIRS: dict[str, tuple[str, str, str]] = {
    "astronaut-ihc": ("portrait", "astronaut", "immunohistochemistry"),
    "chelsea-hubble": ("portrait (animal)", "chelsea", "hubble_deep_field"),
    "rocket-strokes": ("landscape", "rocket", "strokes"),
    "coffee-gravel": ("still life, texture artwork", "coffee", "gravel"),
    "motorcycle-retina": ("street scene", "stereo_motorcycle", "retina"),
}


def load(name: str) -> np.ndarray:
    """A sample as uint8 H×W×3 RGB: a skimage.data image, or the painted ``strokes``."""
    if name == "strokes":
        return brush_strokes()
    from skimage import data

    image = getattr(data, name)()
    # stereo_motorcycle is a (left, right, disparity) triple: its left view.
    image = np.asarray(image[0] if isinstance(image, tuple) else image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def pair(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(photo, artwork) of a pair in PAIRS."""
    _, photo, artwork = PAIRS[name]
    return load(photo), load(artwork)


def brush_strokes(size: int = 512, seed: int = 7) -> np.ndarray:
    """A painting-like artwork: thick strokes of a night-sky palette along a swirling field."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    palette = [
        (19, 38, 92),
        (37, 79, 160),
        (92, 140, 200),
        (230, 200, 80),
        (245, 230, 160),
        (20, 60, 60),
        (160, 180, 120),
    ]
    canvas = Image.new("RGB", (size, size), palette[0])
    draw = ImageDraw.Draw(canvas)
    centres = rng.uniform(0, size, (4, 2))
    for _ in range(2600):
        x, y = rng.uniform(0, size, 2)
        dx, dy = x - centres[:, 0], y - centres[:, 1]
        near = int(np.argmin(dx * dx + dy * dy))
        angle = math.atan2(dy[near], dx[near]) + math.pi / 2 + rng.normal(0, 0.25)
        length = rng.uniform(8, 28)
        colour = palette[int(rng.integers(len(palette)))]
        jitter = tuple(int(np.clip(c + rng.normal(0, 12), 0, 255)) for c in colour)
        end = (x + length * math.cos(angle), y + length * math.sin(angle))
        draw.line([(x, y), end], fill=jitter, width=int(rng.integers(3, 8)))
    return np.asarray(canvas.filter(ImageFilter.SMOOTH))
