"""Picture makers shared by the tests (import as `tests.support`)."""

from __future__ import annotations

import numpy as np


def gradient_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 H×W×3 picture with some texture, deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(x / max(width, 1) * 3.1 + seed)
    g = 127 + 100 * np.cos(y / max(height, 1) * 2.7 + seed)
    b = 127 + 60 * np.sin((x + y) / 9.0)
    image = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def stripes_image(width: int, height: int, period: int = 6) -> np.ndarray:
    """High-contrast diagonal stripes in two colours: an obvious 'style'."""
    y, x = np.mgrid[0:height, 0:width]
    on = ((x + y) // period) % 2 == 0
    image = np.where(on[..., None], [230, 40, 30], [20, 40, 200])
    return image.astype(np.uint8)
