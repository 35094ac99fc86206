"""Shared fixtures: tiny images and a seeded random-weight VGG19, built once per test session."""

from __future__ import annotations

import logging
import os

# Imported before TensorFlow starts its threads: importing it late (pytest's hypothesis plugin
# does so at the end of a run with no hypothesis test) hit "AST constructor recursion depth
# mismatch" in CPython 3.11's parser after the bot tests had run.
import hypothesis  # noqa: F401
import numpy as np
import pytest

from tests.support import gradient_image, stripes_image

# Keep TensorFlow's start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _entry_points_logging():
    """Entry points under test (nst-bot, nst) set up logging as in their own process: a handler
    on the stderr of the moment, which pytest closes after the test. Take such handlers away,
    or later tests' log lines end in "Logging error: I/O operation on closed file"."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def random_model():
    from nst_engine import load_model

    return load_model("random", seed=0)


@pytest.fixture
def content_image() -> np.ndarray:
    return gradient_image(48, 32, seed=1)


@pytest.fixture
def style_image() -> np.ndarray:
    return stripes_image(40, 40)
