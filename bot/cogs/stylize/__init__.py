"""The /stylize command family: the cog, its buttons, its queue and its errors."""

from bot.cogs.stylize.cog import StylizeCog

__all__ = ["StylizeCog"]
