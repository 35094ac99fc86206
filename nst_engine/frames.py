"""Animated pictures in and out: the package `nst_engine.clips`, under the name the bot, the CLI
and older callers import it by (every public name of the package, and `RGBImage`)."""

from nst_engine import clips
from nst_engine.clips import *  # noqa: F403
from nst_engine.images import RGBImage

__all__ = [*clips.__all__, "RGBImage"]
