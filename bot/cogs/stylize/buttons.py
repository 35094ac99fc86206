"""What the buttons on status and result messages do, with one check of who may press them."""

from __future__ import annotations

import contextlib
import io
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import discord

from bot.cogs.stylize.continuing import Continuing, parent_picture
from bot.cogs.stylize.delivery import picture_name
from bot.cogs.stylize.errors import (
    AtUpscaleCap,
    GalleryGone,
    Gone,
    NoGallery,
    NotUpscalable,
    NotYours,
    StillPainting,
    TooLate,
    Unchanged,
    UserFacingError,
)
from bot.cogs.stylize.intake import Inputs
from bot.cogs.stylize.lifecycle import RequestState
from bot.cogs.stylize.request import EDITABLE, Params, Request
from bot.cogs.stylize.views import Action, EditForm, JobViews, label_of
from bot.logs import job_id_var
from nst_engine import continuation
from nst_engine.clips import Clip

if TYPE_CHECKING:
    from bot.client import StyleBot
    from bot.cogs.stylize.delivery import Delivery
    from bot.cogs.stylize.intake import Intake
    from bot.cogs.stylize.scheduler import Scheduler
    from bot.store import GuildSettings, StoredJob

log = logging.getLogger(__name__)

# What the member is told they may not do to someone else's picture.
_VERBS: dict[Action, str] = {
    "cancel": "cancel",
    "stronger": "re-run",
    "weaker": "re-run",
    "variation": "re-run",
    "upscale": "upscale",
    "edit": "edit",
    "delete": "delete",
    "share": "share",
    "gallery": "post",
}


class Buttons:
    """The handler of every job button; `press` is what `JobButton` calls."""

    def __init__(
        self,
        bot: StyleBot,
        scheduler: Scheduler,
        intake: Intake,
        delivery: Delivery,
        views: JobViews,
    ) -> None:
        self.bot = bot
        self.views = views
        self.scheduler = scheduler
        self.intake = intake
        self.delivery = delivery
        # What presses made, by job and button (a Share's post, a re-run's job).
        self.claims = Claims()
        self._handlers = {
            "cancel": self._cancel,
            "stronger": self._stronger,
            "weaker": self._weaker,
            "variation": self._variation,
            "upscale": self._upscale,
            "edit": self._edit,
            "delete": self._delete,
            "share": self._share,
            "gallery": self._gallery,
        }

    async def press(self, interaction: discord.Interaction, action: Action, job_id: str) -> None:
        job_id_var.set(job_id)
        try:
            await self._handlers[action](interaction, job_id)
        except UserFacingError as err:
            await reply(interaction, str(err))

    @staticmethod
    def _check_owner(
        interaction: discord.Interaction, action: Action, owner: int | None, *, moderators=False
    ) -> None:
        """The one rule: only the requester (and, for Delete, moderators) may press."""
        if interaction.user.id == owner:
            return
        if moderators and interaction.permissions.manage_messages:
            return
        raise NotYours(_VERBS[action])

    async def _stored(self, job_id: str, *, result: bool = False) -> StoredJob:
        stored = await self.bot.store.load(job_id)
        if stored is None or (result and stored.result is None):
            raise Gone()
        return stored

    async def _cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        request = self.scheduler.jobs.get(job_id)
        if request is None:
            await reply(interaction, "That picture is no longer queued or painting.")
            return
        self._check_owner(interaction, "cancel", request.user_id)
        try:
            ended = await self.scheduler.cancel(request)
        except TooLate:
            await reply(interaction, str(TooLate()))
            return
        if ended:
            async with request.edit_lock:  # after any position edit already on its way
                await interaction.response.edit_message(
                    content="✖️ Cancelled before it started.", view=None
                )
            return
        await interaction.response.edit_message(content="✖️ Cancelling…", view=None)

    async def _stronger(self, interaction: discord.Interaction, job_id: str) -> None:
        step = continuation.STRENGTH_STEP
        await self._rerun(interaction, job_id, "stronger", +step, continues=True)

    async def _weaker(self, interaction: discord.Interaction, job_id: str) -> None:
        step = continuation.STRENGTH_STEP
        await self._rerun(interaction, job_id, "weaker", -step, continues=True)

    async def _variation(self, interaction: discord.Interaction, job_id: str) -> None:
        await self._rerun(interaction, job_id, "variation", seed=random.randrange(2**31))

    async def _rerun(
        self,
        interaction: discord.Interaction,
        job_id: str,
        action: Action,
        delta: float = 0.0,
        seed: int | None = None,
        *,
        continues: bool = False,
    ) -> None:
        """The same photo and artworks again (from the journal), stronger, weaker or varied;
        with ``continues``, going on from the job's still picture where there is one
        (`continuing`), else painted afresh."""
        stored = await self._stored(job_id)
        self._check_owner(interaction, action, stored.record.user_id)

        async def params(_rules: GuildSettings) -> Params:
            nudged = Params.from_dict(stored.record.params).nudged(delta)
            return nudged if seed is None else nudged.varied(seed)

        def parent() -> Awaitable[Continuing | None]:
            return parent_picture(job_id, stored)

        await self._paint_again(
            interaction, job_id, stored, params, parent if continues else None, claim=action
        )

    async def _upscale(self, interaction: discord.Interaction, job_id: str) -> None:
        """The job's still picture at twice its longest side, capped by NST_MAX_UPSCALE_SIZE and
        the server's max_size as they stand now, going on from the picture enlarged."""
        stored = await self._stored(job_id, result=True)
        self._check_owner(interaction, "upscale", stored.record.user_id)
        found: list[Continuing] = []

        async def params(rules: GuildSettings) -> Params:
            picture = await parent_picture(job_id, stored)
            if picture is None:
                raise NotUpscalable()
            parent = Continuing(picture.job_id, picture.picture, upscale=True)
            cap = self.intake.size_cap(rules, upscale=True)
            size = continuation.upscaled_size(parent.long_side, cap)
            if size is None:
                raise AtUpscaleCap(cap)
            found.append(parent)
            return Params.from_dict(stored.record.params).resized(size)

        async def parent() -> Continuing:
            return found[0]

        await self._paint_again(interaction, job_id, stored, params, parent, claim="upscale")

    async def _edit(self, interaction: discord.Interaction, job_id: str) -> None:
        """The Edit form, with the picture's options filled in (`edited` takes its answers)."""
        stored = await self._stored(job_id)
        self._check_owner(interaction, "edit", stored.record.user_id)
        params = Params.from_dict(stored.record.params)
        await interaction.response.send_modal(EditForm(job_id, params, self.edited))

    async def edited(
        self, interaction: discord.Interaction, job_id: str, answers: dict[str, str]
    ) -> None:
        """The Edit form's answers: the same inputs with the new options, going on from the
        picture when only the strength changed, else painted afresh; a bad value is one line."""
        job_id_var.set(job_id)
        try:
            stored = await self._stored(job_id)
            self._check_owner(interaction, "edit", stored.record.user_id)
            was = Params.from_dict(stored.record.params)
            changed: set[str] = set()

            async def params(rules: GuildSettings) -> Params:
                new = was.edited(answers).checked(max_size=self.intake.size_cap(rules))
                changed.update(n for n in EDITABLE if getattr(new, n) != getattr(was, n))
                if not changed:
                    raise Unchanged()
                return new

            async def parent() -> Continuing | None:
                # Decided once `params` has run: only a new strength goes on from the picture.
                return await parent_picture(job_id, stored) if changed == {"strength"} else None

            await self._paint_again(interaction, job_id, stored, params, parent)
        except UserFacingError as err:
            await reply(interaction, str(err))

    async def _paint_again(
        self,
        interaction: discord.Interaction,
        job_id: str,
        stored: StoredJob,
        params: Callable[[GuildSettings], Awaitable[Params]],
        parent: Callable[[], Awaitable[Continuing | None]] | None,
        *,
        claim: Action | None = None,
    ) -> None:
        """A new job from journaled job ``job_id``'s inputs, with the ``params`` the server's
        rules allow as they stand now, going on from the picture ``parent`` finds (None: painted
        afresh). With ``claim``, two quick presses of that button make one job: a press while
        the last one's picture is on its way is answered in one line (`Claims`)."""
        if claim is None:
            await self._take_again(interaction, stored, params, parent)
            return
        key = (job_id, claim)
        if self.claims.held(key, live=self._on_its_way)[0]:
            raise StillPainting(label_of(claim))
        with self.claims.claim(key) as keep:
            request = await self._take_again(
                interaction, stored, params, parent, upscale=claim == "upscale", claimed_by=key
            )
            if request is not None:
                keep(request.id)

    def reclaim(self, recovered: Iterable[Request]) -> None:
        """After a restart, the claims of the re-runs recovered from the journal, so that a
        press of the same button is still refused while such a job is on its way."""
        for request in recovered:
            if request.claimed_by is not None:
                self.claims.restore(request.claimed_by, request.id)

    def _on_its_way(self, job_id: str) -> bool:
        """Whether a job is queued or painting. Once painted, its picture is being posted, and a
        press as it appears makes a new job instead of being told it is still painting."""
        request = self.scheduler.jobs.get(job_id)
        return request is not None and request.state in (RequestState.QUEUED, RequestState.RUNNING)

    async def _take_again(
        self,
        interaction: discord.Interaction,
        stored: StoredJob,
        params: Callable[[GuildSettings], Awaitable[Params]],
        parent: Callable[[], Awaitable[Continuing | None]] | None,
        *,
        upscale: bool = False,
        claimed_by: tuple[str, Action] | None = None,
    ) -> Request | None:
        async with self.intake.place(interaction):
            rules = await self.intake.admit(interaction)
            chosen = await params(rules)
            return await self.intake.take(
                interaction,
                chosen,
                lambda: self._inputs(stored, chosen, parent),
                upscale=upscale,
                claimed_by=claimed_by,
            )

    async def _inputs(
        self,
        stored: StoredJob,
        params: Params,
        parent: Callable[[], Awaitable[Continuing | None]] | None,
    ) -> Inputs:
        """The job's photo and artworks again, from the journal; ``parent`` finds the picture a
        re-run of a still photo goes on from (None, or an animation: painted afresh)."""
        content = await self.intake.decode_content(stored.content)
        still = parent is not None and not isinstance(content, Clip)
        style2 = stored.style2
        return Inputs.of(
            content,
            await self.intake.decode("style", stored.style),
            stored.content,
            stored.style,
            style2=None if style2 is None else await self.intake.decode("style2", style2),
            style2_raw=stored.style2,
            artworks=params.artworks,
            parent=await parent() if still else None,
        )

    async def _delete(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self.bot.store.load(job_id)
        owner = stored.record.user_id if stored else None
        self._check_owner(interaction, "delete", owner, moderators=True)
        await interaction.response.defer()
        await interaction.delete_original_response()

    async def _share(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self._stored(job_id, result=True)
        self._check_owner(interaction, "share", stored.record.user_id)
        held, link = self.claims.held((job_id, "share"))
        if held:  # once is enough; a later press points at that post
            await reply(
                interaction,
                f"You shared this picture already: {link}" if link else "It is being shared now.",
            )
            return
        with self.claims.claim((job_id, "share")) as keep:
            await interaction.response.defer()
            message = await interaction.followup.send(
                f"🖼️ Shared by {interaction.user.mention}",
                file=discord.File(io.BytesIO(stored.result), picture_name(stored.result)),
                view=self.views(job_id, "stronger", "weaker", "variation", "delete"),
                allowed_mentions=discord.AllowedMentions.none(),
                wait=True,
            )
            keep(message.jump_url)

    async def _gallery(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self._stored(job_id, result=True)
        self._check_owner(interaction, "gallery", stored.record.user_id)
        channel_id = await self.delivery.gallery_for(interaction.guild_id)
        if not channel_id:
            raise NoGallery()
        await interaction.response.defer(ephemeral=True, thinking=True)
        link = interaction.message.jump_url if interaction.message else ""
        channel = self.bot.get_partial_messageable(channel_id)
        try:
            await channel.send(
                f"🖼️ By {interaction.user.mention} — {link}",
                file=discord.File(io.BytesIO(stored.result), picture_name(stored.result)),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except (discord.NotFound, discord.Forbidden) as err:
            log.warning("the gallery channel %s refused the post: %s", channel_id, err.text)
            raise GalleryGone() from None
        await interaction.followup.send(f"Posted to <#{channel_id}>.", ephemeral=True)


class Claims:
    """What a press of a job's button made (a Share's post, a re-run's job id), by job and
    button. A press claims its button before its first await, so of two quick presses only the
    first does anything, and the second is told so (the hostile round's rule)."""

    def __init__(self) -> None:
        self._made: dict[tuple[str, Action], str | None] = {}

    def held(
        self, key: tuple[str, Action], *, live: Callable[[str], bool] = lambda _made: True
    ) -> tuple[bool, str | None]:
        """Whether ``key`` is claimed (by a press on its way, or by what it made while that is
        ``live``), and what it made (None while on its way). A claim no longer live is
        dropped."""
        if key not in self._made:
            return False, None
        made = self._made[key]
        if made is not None and not live(made):
            del self._made[key]
            return False, None
        return True, made

    def restore(self, key: tuple[str, Action], made: str) -> None:
        """Hold ``key`` for what a press made before this process started (a recovered job)."""
        self._made[key] = made

    @contextlib.contextmanager
    def claim(self, key: tuple[str, Action]) -> Iterator[Callable[[str], None]]:
        """Claim ``key`` for the block, which calls the function it is given with what it made
        to keep the claim; otherwise (a refusal, an error) it is given back."""
        self._made[key] = None
        made: list[str] = []
        try:
            yield made.append
        finally:
            if made:
                self._made[key] = made[-1]
            else:
                del self._made[key]


async def reply(interaction: discord.Interaction, message: str) -> None:
    """An ephemeral answer, whether or not the interaction was answered already."""
    if interaction.response.is_done():
        await interaction.followup.send(message, ephemeral=True)
    else:
        await interaction.response.send_message(message, ephemeral=True)
