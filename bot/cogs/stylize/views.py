"""The buttons on status and result messages. They are persistent: their custom ids carry the
action and the job id, so they keep working after the bot restarts."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

import discord

if TYPE_CHECKING:
    from bot.cogs.stylize.cog import StylizeCog

log = logging.getLogger(__name__)

Action = Literal["cancel", "stronger", "weaker", "delete", "share", "gallery"]

_LOOKS: dict[str, tuple[str, discord.ButtonStyle, str | None]] = {
    "cancel": ("Cancel", discord.ButtonStyle.danger, "✖️"),
    "stronger": ("Stronger", discord.ButtonStyle.primary, "➕"),
    "weaker": ("Weaker", discord.ButtonStyle.secondary, "➖"),
    "delete": ("Delete", discord.ButtonStyle.secondary, "🗑️"),
    "share": ("Share", discord.ButtonStyle.success, "📣"),
    "gallery": ("Post to gallery", discord.ButtonStyle.success, "🖼️"),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"nst:(?P<action>cancel|stronger|weaker|delete|share|gallery):(?P<job>[0-9a-f]{8,32})",
):
    """One of the job's buttons; pressing it hands the action to the cog."""

    def __init__(self, action: Action, job_id: str) -> None:
        label, style, emoji = _LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label, style=style, emoji=emoji, custom_id=f"nst:{action}:{job_id}"
            )
        )
        self.action: Action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> JobButton:
        return cls(match["action"], match["job"])  # type: ignore[arg-type]

    async def callback(self, interaction: discord.Interaction) -> None:
        cog: StylizeCog | None = interaction.client.get_cog("Stylize")  # type: ignore[union-attr]
        if cog is None:
            await interaction.response.send_message(
                "The bot is restarting; try again soon.", ephemeral=True
            )
            return
        await cog.on_button(interaction, self.action, self.job_id)


def job_view(job_id: str, *actions: Action) -> discord.ui.View:
    """A view with the given buttons for a job (timeout None: it outlives this process)."""
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobButton(action, job_id))
    return view
