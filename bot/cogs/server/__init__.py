"""What a server chooses for itself, loaded as an extension (``bot.cogs.server``): saved styles
(`/styles`, in `styles`) and server settings with a channel allow-list (`/settings`, in
`settings`). Both keep their data in the bot's journal (`bot.store`); `access` holds the checks
of who may do what, `errors` the lines members see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.server.settings import SettingsCog
from bot.cogs.server.styles import StylesCog

if TYPE_CHECKING:
    from bot.client import StyleBot


async def setup(bot: StyleBot) -> None:
    await bot.add_cog(StylesCog(bot))
    await bot.add_cog(SettingsCog(bot))
