"""The buttons on status and result messages. They are persistent: their custom ids carry the
action and the job id, so they keep working after the bot restarts."""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Awaitable, Callable
from typing import ClassVar, Literal

import discord

from bot.cogs.stylize.errors import BadPick
from bot.cogs.stylize.request import EDITABLE, Params

log = logging.getLogger(__name__)

Action = Literal[
    "cancel", "stronger", "weaker", "variation", "upscale", "edit", "delete", "share", "gallery"
]
Press = Callable[[discord.Interaction, Action, str], Awaitable[None]]
# What submitting the Edit form calls: the interaction, the job id and the answers by field.
Submit = Callable[[discord.Interaction, str, dict[str, str]], Awaitable[None]]

TEMPLATE = (
    r"nst:(?P<action>cancel|stronger|weaker|variation|upscale|edit|delete|share|gallery)"
    r":(?P<job>[0-9a-f]{8,32})"
)

_LOOKS: dict[str, tuple[str, discord.ButtonStyle, str | None]] = {
    "cancel": ("Cancel", discord.ButtonStyle.danger, "✖️"),
    "stronger": ("Stronger", discord.ButtonStyle.primary, "➕"),
    "weaker": ("Weaker", discord.ButtonStyle.secondary, "➖"),
    "variation": ("Variation", discord.ButtonStyle.secondary, "🎲"),
    "upscale": ("Upscale", discord.ButtonStyle.secondary, "⬆️"),
    "edit": ("Edit", discord.ButtonStyle.secondary, "✏️"),
    "delete": ("Delete", discord.ButtonStyle.secondary, "🗑️"),
    "share": ("Share", discord.ButtonStyle.success, "📣"),
    "gallery": ("Post to gallery", discord.ButtonStyle.success, "🖼️"),
}


def label_of(action: Action) -> str:
    """The label of a job's button ("Stronger")."""
    return _LOOKS[action][0]


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

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # The first hook discord.py gives a dynamic item: a press the gateway replays after a
        # RESUME is dropped here, before anything is done for it.
        return first_delivery(interaction)

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


# The Edit form's fields: their labels (at most 45 characters) and longest answers.
_FIELDS: dict[str, tuple[str, int]] = {
    "strength": ("Strength (0 to 10)", 24),
    "quality": ("Quality (fast, balanced or best)", 8),
    "size": ("Size: longest side in pixels (64 to 2048)", 4),
    "preserve_colors": ("Keep the photo's colours (yes or no)", 5),
    "seed": ("Seed (0 to 2147483647)", 10),
}
# An Edit form left open is forgotten after the interaction token's 15 minutes.
FORM_TIMEOUT = 15 * 60


class EditForm(discord.ui.Modal, title="Edit this picture"):
    """The Edit button's form: the picture's options filled in, handed to ``submit`` as typed
    (`Params.edited` reads them, `Params.checked` refuses what won't do)."""

    def __init__(self, job_id: str, params: Params, submit: Submit) -> None:
        super().__init__(timeout=FORM_TIMEOUT)
        self.job_id = job_id
        self._submit = submit
        self.answers: dict[str, discord.ui.TextInput] = {}
        for name in EDITABLE:
            label, longest = _FIELDS[name]
            shown = _shown(getattr(params, name))
            field = discord.ui.TextInput(
                label=label, custom_id=name, default=shown, max_length=longest
            )
            self.answers[name] = field
            self.add_item(field)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # As on the job buttons: a submission the gateway replays after a RESUME is dropped.
        return first_delivery(interaction)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        answers = {name: field.value for name, field in self.answers.items()}
        await self._submit(interaction, self.job_id, answers)

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        # The commands' error ladder, as for the style picker.
        await interaction.client.tree.on_error(interaction, error)  # type: ignore[arg-type]


def _shown(value: object) -> str:
    """An option as the form shows it, read back as the same value: 5 (not 5.0), yes or no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def first_delivery(interaction: discord.Interaction) -> bool:
    """False for an interaction the gateway delivered again (see `bot.replays`)."""
    seen = getattr(interaction.client, "first_delivery", None)
    return seen is None or seen(interaction)


# Discord's select menus hold at most 25 options: more saved styles are shown in pages of it.
PAGE = 25
QUESTION = "Which saved style should the photo get?"
# Set in an interaction's extras once the picker's checks have run on it.
_CHECKED = "nst:picker-checked"


class StylePicker(discord.ui.View):
    """An ephemeral menu of the server's saved styles, for the Stylize context menu on a
    message with one image, in pages of `PAGE` with Previous and Next; only the member who
    asked may pick. A refused pick is answered in one line and the menu stays usable."""

    def __init__(self, cog, user_id: int, photo: discord.Attachment, names, params) -> None:
        super().__init__(timeout=300)
        self.cog = cog
        self.user_id = user_id
        self.photo = photo
        self.params = params
        self.names = list(names)
        self._offered = frozenset(self.names)
        self.page = 0
        if len(self.names) <= PAGE:  # one page: no buttons to page with
            self.remove_item(self.previous)
            self.remove_item(self.next)
        self._show()

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.names) // PAGE))

    @property
    def text(self) -> str:
        """The menu's message: the question, and which styles this page shows."""
        if self.pages == 1:
            return QUESTION
        first = self.page * PAGE + 1
        last = min(len(self.names), first + PAGE - 1)
        return f"{QUESTION} (styles {first}–{last} of {len(self.names)})"

    def _show(self) -> None:
        shown = self.names[self.page * PAGE : (self.page + 1) * PAGE]
        self.choice.options = [discord.SelectOption(label=name, value=name) for name in shown]
        self.choice.placeholder = (
            "Pick a saved style"
            if self.pages == 1
            else f"Pick a saved style (page {self.page + 1} of {self.pages})"
        )
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # The first hook a view gives, for the menu and both page buttons: a replayed
        # interaction is dropped before anything is done for it.
        interaction.extras[_CHECKED] = True
        if not first_delivery(interaction):
            return False
        if interaction.user.id == self.user_id:
            return True
        await interaction.response.send_message(
            "Only the member who opened this menu can pick from it.", ephemeral=True
        )
        return False

    @discord.ui.select(placeholder="Pick a saved style", min_values=1, max_values=1, row=0)
    async def choice(self, interaction: discord.Interaction, _select: discord.ui.Select) -> None:
        # Not stopped: after a refusal (or a picture) the member may pick again.
        name = self._picked(interaction)
        await self.cog.stylize_with_saved(interaction, self.photo, name, self.params)

    def _picked(self, interaction: discord.Interaction) -> str:
        """The saved style a pick names, read from the raw payload: exactly one value, text, and
        one of the styles this menu offers (a forged pick is refused with BadPick)."""
        values = (interaction.data or {}).get("values")
        if not isinstance(values, list) or len(values) != 1:
            raise BadPick()
        (name,) = values
        if not isinstance(name, str) or name not in self._offered:
            raise BadPick()
        return name

    @discord.ui.button(label="Previous", emoji="◀️", style=discord.ButtonStyle.secondary, row=1)
    async def previous(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(label="Next", emoji="▶️", style=discord.ButtonStyle.secondary, row=1)
    async def next(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        await self._turn(interaction, +1)

    async def _turn(self, interaction: discord.Interaction, by: int) -> None:
        self.page = min(self.pages - 1, max(0, self.page + by))
        self._show()
        await interaction.response.edit_message(content=self.text, view=self)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item) -> None:
        if _CHECKED not in interaction.extras:
            # discord.py could not read the payload's values (null, a number, a forged
            # "resolved"), before any check ran: a forged pick, answered once like any other.
            if not first_delivery(interaction):
                return
            log.warning("refused a malformed pick: %s: %s", type(error).__name__, error)
            error = BadPick()
        # The same error ladder as the commands: a member's mistake in one line, anything else
        # logged with an id to quote. It takes the error itself (there is no command to wrap
        # it in an app_commands.CommandInvokeError).
        await interaction.client.tree.on_error(interaction, error)  # type: ignore[arg-type]
