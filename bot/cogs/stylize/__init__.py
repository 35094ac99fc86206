"""The /stylize feature, loaded as an extension (``bot.cogs.stylize``).

Rooms: `commands` (the app commands, thin), `intake` (admission, checks, journaling),
`scheduler` (fair queue, dispatch, recovery, drain; no Discord types), `lifecycle` (the job
states and the one transition function), `delivery` (status edits, embeds, the picture and its
fallbacks), `buttons` and `views` (the persistent buttons and what they do).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.stylize.commands import StylizeCog

if TYPE_CHECKING:
    from bot.client import StyleBot


async def setup(bot: StyleBot) -> None:
    cog = StylizeCog(bot)
    await bot.add_cog(cog)
    bot.add_dynamic_items(cog.views.button_type)


async def teardown(bot: StyleBot) -> None:
    cog = bot.get_cog("Stylize")
    if isinstance(cog, StylizeCog):
        bot.remove_dynamic_items(cog.views.button_type)
