"""The buttons on status and result messages. They are persistent: their custom ids carry the
action and the job id, so they keep working after the bot restarts."""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Awaitable, Callable
from typing import ClassVar, Literal

import discord

log = logging.getLogger(__name__)

Action = Literal["cancel", "stronger", "weaker", "variation", "delete", "share", "gallery"]
Press = Callable[[discord.Interaction, Action, str], Awaitable[None]]

TEMPLATE = (
    r"nst:(?P<action>cancel|stronger|weaker|variation|delete|share|gallery)"
    r":(?P<job>[0-9a-f]{8,32})"
)

_LOOKS: dict[str, tuple[str, discord.ButtonStyle, str | None]] = {
    "cancel": ("Cancel", discord.ButtonStyle.danger, "✖️"),
    "stronger": ("Stronger", discord.ButtonStyle.primary, "➕"),
    "weaker": ("Weaker", discord.ButtonStyle.secondary, "➖"),
    "variation": ("Variation", discord.ButtonStyle.secondary, "🎲"),
    "delete": ("Delete", discord.ButtonStyle.secondary, "🗑️"),
    "share": ("Share", discord.ButtonStyle.success, "📣"),
    "gallery": ("Post to gallery", discord.ButtonStyle.success, "🖼️"),
}


class JobButton(discord.ui.DynamicItem[discord.ui.Button], template=TEMPLATE):
    """One of a job's buttons. A press goes to the handler the extension bound with `bound_to`."""

    press: ClassVar[Press | None] = None

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
    def bound_to(cls, press: Press) -> type[JobButton]:
        """A JobButton class whose presses go to ``press`` (one per loaded extension)."""
        return types.new_class(
            "BoundJobButton",
            (cls,),
            {"template": TEMPLATE},
            lambda ns: ns.update(press=staticmethod(press)),
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> JobButton:
        return cls(match["action"], match["job"])  # type: ignore[arg-type]

    async def callback(self, interaction: discord.Interaction) -> None:
        if self.press is None:
            await interaction.response.send_message(
                "The bot is restarting; try again soon.", ephemeral=True
            )
            return
        await self.press(interaction, self.action, self.job_id)


class JobViews:
    """Makes the views of jobs, whose buttons hand their presses to ``press``."""

    def __init__(self, press: Press) -> None:
        # Registered by the extension's setup() so presses after a restart find it too.
        self.button_type = JobButton.bound_to(press)

    def __call__(self, job_id: str, *actions: Action) -> discord.ui.View:
        """A view with the given buttons for a job (timeout None: it outlives this process)."""
        view = discord.ui.View(timeout=None)
        for action in actions:
            view.add_item(self.button_type(action, job_id))
        return view


class StylePicker(discord.ui.View):
    """An ephemeral menu of the server's saved styles, for the Stylize context menu on a
    message with one image; only the member who asked may pick."""

    def __init__(self, cog, user_id: int, photo: discord.Attachment, names, params) -> None:
        super().__init__(timeout=300)
        self.cog = cog
        self.user_id = user_id
        self.photo = photo
        self.params = params
        self.choice.options = [discord.SelectOption(label=name, value=name) for name in names]

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.user_id:
            return True
        await interaction.response.send_message(
            "Only the member who opened this menu can pick from it.", ephemeral=True
        )
        return False

    @discord.ui.select(placeholder="Pick a saved style", min_values=1, max_values=1)
    async def choice(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        self.stop()
        await self.cog.stylize_with_saved(interaction, self.photo, select.values[0], self.params)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item) -> None:
        await interaction.client.tree.on_error(  # the same error ladder as the commands
            interaction, discord.app_commands.CommandInvokeError(None, error)
        )
