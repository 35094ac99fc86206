"""The /stylize feature, loaded as an extension (``bot.cogs.stylize``).

Rooms: `commands` (the app commands, thin), `intake` (admission, checks, journaling),
`request` (a member's request and their choices), `scheduler` (fair queue, dispatch, recovery,
drain; no Discord types) with `contracts` (what it holds delivery and the journal to),
`engine_job` (a request as the engine's job), `continuing` (the picture a Stronger, Weaker,
Upscale or Edit goes on from) and `results` (a result as a file that fits),
`lifecycle` (the request states and the one transition function), `delivery` (status edits,
embeds, the picture and its fallbacks), `buttons` and `views` (the persistent buttons, the
Edit form, and what they do). Attachments are checked and fetched by `bot.attachments`, shared
with /styles.
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
