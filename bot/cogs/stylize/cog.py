"""/stylize, /queue and /gallery: the commands members use, and the jobs behind them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.stylize import attachments
from bot.cogs.stylize.errors import Gone, NotYours, ShuttingDown, UserFacingError
from bot.cogs.stylize.fair_queue import FairQueue
from bot.cogs.stylize.models import Params, Quality, Request
from bot.cogs.stylize.rate_limit import RateLimit
from bot.cogs.stylize.views import Action, job_view
from bot.logs import job_id_var
from nst_engine.errors import NSTError
from nst_engine.images import decode_image, encode_image
from nst_engine.options import QUALITY_PRESETS, StyleResult, options_for_quality
from nst_engine.pool import Job, WorkerDied

if TYPE_CHECKING:
    from bot.client import StyleBot

log = logging.getLogger(__name__)

# Discord allows about five edits of a message per few seconds; one every few seconds is polite.
PROGRESS_EDIT_SECONDS = 3.0
# An interaction token works for 15 minutes; after that we answer in the channel.
TOKEN_LIFETIME = 15 * 60 - 30
STRENGTH_STEP = 2.0
# A job that was running when the process died this many times is not tried again.
MAX_ATTEMPTS = 2


class StylizeCog(commands.Cog, name="Stylize"):
    """Repaint a photo in the style of an artwork."""

    def __init__(self, bot: StyleBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.queue: FairQueue[Request] = FairQueue(
            total_limit=self.settings.nst_queue_limit, owner_limit=self.settings.nst_user_limit
        )
        self.requests: dict[str, Request] = {}
        self.running: set[Request] = set()
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task | None = None
        self._queue_moved = asyncio.Event()
        self._positions: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._hosts = attachments.allowed_hosts(self.settings.discord_api_base)
        # Set on SIGTERM: new requests are refused while running jobs finish.
        self.draining = False
        # Set once the grace period is over: endings caused by the shutdown are not journaled.
        self.stopping = False
        self.member_rate = RateLimit(self.settings.nst_member_rate, "you", "minute")
        self.guild_rate = RateLimit(self.settings.nst_guild_rate, "this server", "minute")
        self._pruner: asyncio.Task | None = None
        bot.metrics.queued = lambda: len(self.queue)
        bot.metrics.running = lambda: len(self.running)

    async def cog_load(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch_forever(), name="nst-dispatcher")
        self._positions = asyncio.create_task(self._show_positions_forever(), name="nst-positions")
        self._pruner = asyncio.create_task(self._prune_forever(), name="nst-pruner")
        await self._recover()

    async def _prune_forever(self) -> None:
        """Remove finished jobs' rows and files once they are older than NST_KEEP_HOURS."""
        keep = self.settings.nst_keep_hours * 3600
        while True:
            try:
                removed = await self.bot.store.prune(keep)
                if removed:
                    log.info("removed %d finished job(s) older than %g h", removed, keep / 3600)
            except Exception:
                log.exception("pruning the data directory failed")
            await asyncio.sleep(min(3600.0, max(keep / 4, 1.0)))

    async def drain(self, grace: float) -> None:
        """Stop taking requests and give running jobs up to ``grace`` seconds to finish.

        Whatever is still queued or running stays in the journal and runs after a restart.
        """
        self.draining = True
        deadline = time.monotonic() + grace
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # Jobs still running are cut off by the pool's shutdown: they go back to the journal's
        # queue (without counting as a crash) instead of ending as cancelled.
        self.stopping = True
        for request in list(self.running):
            await self.bot.store.requeue(request.id)
        log.info(
            "shutting down with %d running and %d queued job(s) journaled",
            len(self.running),
            len(self.queue),
        )

    async def _recover(self) -> None:
        """Run again, or deliver, the jobs a stopped process had accepted."""
        for record in await self.bot.store.pending():
            job_id_var.set(record.id)
            stored = await self.bot.store.load(record.id)
            if stored is None:
                continue
            try:
                content = await asyncio.to_thread(decode_image, stored.content)
                style = await asyncio.to_thread(decode_image, stored.style)
                request = Request.from_record(record, content, style)
            except NSTError as err:
                log.warning("journaled job cannot be recovered: %s", err)
                await self.bot.store.set_state(record.id, "failed")
                continue
            if record.state == "done" and stored.result is not None:
                log.info("delivering a result finished before the restart")
                await self._send_result(
                    request,
                    f"{request.mention}, here is your picture.",
                    stored.result,
                    self._params_embed(request),
                    job_view(request.id, "stronger", "weaker", "delete"),
                )
                await self.bot.store.set_state(record.id, "delivered")
                continue
            if record.attempts >= MAX_ATTEMPTS:
                await self._end(
                    request,
                    "failed",
                    f"❌ {request.mention}, your picture stopped the bot {record.attempts} times; "
                    "try a smaller size or other images.",
                )
                continue
            log.info("re-queued after a restart (was %s)", record.state)
            self.queue.push(record.user_id, request, force=True)
            self.requests[request.id] = request
        job_id_var.set("-")
        self._wakeup.set()

    async def cog_unload(self) -> None:
        for task in (self._dispatcher, self._positions, self._pruner):
            if task:
                task.cancel()
        for request in list(self.running):
            if request.handle:
                request.handle.cancel()

    # ---- commands -------------------------------------------------------------------------

    @app_commands.command(name="stylize")
    @app_commands.describe(
        content="The photo to repaint",
        style="The artwork whose style to use",
        strength="0 = barely styled … 10 = style dominates (default 5)",
        quality="fast, balanced (default) or best: more steps take longer",
        size="Longest side of the result in pixels (default 512)",
        preserve_colors="Keep the photo's colours and transfer only the texture (default off)",
        seed="Any number; the same inputs and seed give the same picture (default 0)",
        private="Only you see the result (default off)",
    )
    async def stylize(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        style: discord.Attachment,
        strength: app_commands.Range[float, 0.0, 10.0] = 5.0,
        quality: Quality = "balanced",
        size: app_commands.Range[int, 64, 2048] = 512,
        preserve_colors: bool = False,
        seed: app_commands.Range[int, 0, 2**31 - 1] = 0,
        private: bool = False,
    ) -> None:
        """Repaint a photo in the style of an artwork."""
        self._admit(interaction)
        max_bytes = self.settings.nst_max_attachment_bytes
        # What Discord tells us is checked at once, so the member hears about it within seconds.
        attachments.check_metadata("content", content, max_bytes=max_bytes)
        attachments.check_metadata("style", style, max_bytes=max_bytes)
        params = Params(
            strength, quality, min(size, self.settings.nst_max_size), preserve_colors, seed, private
        )
        # Hold the member's place while we download, so a burst can't slip past the caps.
        self.queue.reserve(interaction.user.id)
        try:
            await interaction.response.defer(thinking=True, ephemeral=private)
            raw = []
            for which, attachment in (("content", content), ("style", style)):
                data = await attachments.fetch(
                    self.bot.http_session,
                    which,
                    attachment,
                    max_bytes=max_bytes,
                    hosts=self._hosts,
                    timeout=self.settings.nst_download_timeout,
                )
                attachments.check_bytes(which, attachment, data)
                raw.append(data)
            images = [
                await attachments.decode(which, data, max_bytes=max_bytes)
                for which, data in zip(("content", "style"), raw)
            ]
        except UserFacingError as err:
            self.queue.release(interaction.user.id)
            await self._refuse_after_defer(interaction, str(err))
            return
        except BaseException:
            self.queue.release(interaction.user.id)
            raise
        await self._accept(interaction, params, images[0], images[1], raw[0], raw[1])

    @app_commands.command(name="queue")
    async def queue_command(self, interaction: discord.Interaction) -> None:
        """Show where your pictures stand."""
        mine = [r for r in self.requests.values() if r.user_id == interaction.user.id]
        if not mine:
            await interaction.response.send_message(
                "You have no pictures queued or painting.", ephemeral=True
            )
            return
        lines = []
        for request in sorted(mine, key=lambda r: r.queued_at):
            if request.state == "running":
                lines.append(f"• `{request.id}` painting, {request.percent}% done")
            else:
                position = self.queue.position(request)
                lines.append(f"• `{request.id}` queued, position {position} of {len(self.queue)}")
        total = f"{len(self.queue)} waiting and {len(self.running)} painting in all."
        await interaction.response.send_message("\n".join(lines + [total]), ephemeral=True)

    gallery = app_commands.Group(
        name="gallery",
        description="Choose where members can cross-post their pictures",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @gallery.command(name="set")
    @app_commands.describe(channel="The channel that collects shared pictures")
    async def gallery_set(
        self, interaction: discord.Interaction, channel: discord.TextChannel
    ) -> None:
        """Make a channel this server's gallery."""
        await self.bot.store.set_gallery_channel(interaction.guild_id, channel.id)
        await interaction.response.send_message(
            f"Pictures can now be posted to {channel.mention}.", ephemeral=True
        )

    @gallery.command(name="clear")
    async def gallery_clear(self, interaction: discord.Interaction) -> None:
        """Stop offering a gallery in this server."""
        await self.bot.store.set_gallery_channel(interaction.guild_id, None)
        await interaction.response.send_message(
            "This server no longer has a gallery.", ephemeral=True
        )

    # ---- accepting and queueing -----------------------------------------------------------

    async def _refuse_after_defer(self, interaction: discord.Interaction, message: str) -> None:
        """Replace the public 'thinking…' with an error only the member sees."""
        self.bot.metrics.rejected += 1
        with contextlib.suppress(discord.HTTPException):
            await interaction.delete_original_response()
        await interaction.followup.send(message, ephemeral=True)

    async def _accept(
        self,
        interaction: discord.Interaction,
        params: Params,
        content,
        style,
        content_raw: bytes,
        style_raw: bytes,
    ) -> None:
        """Queue a checked request whose place was reserved."""
        request = Request.from_interaction(interaction, params, content, style)
        job_id_var.set(request.id)
        # Journaled before the member hears it is queued: a restart will still run it.
        try:
            await self.bot.store.add(request.to_record(), content_raw, style_raw)
        except BaseException:
            self.queue.release(interaction.user.id)
            raise
        position = self.queue.push(interaction.user.id, request, reserved=True)
        request.queued_at = time.monotonic()  # after the journal write: waiting starts now
        request.shown_position = position
        self.requests[request.id] = request
        log.info("queued for user %s at position %s: %s", interaction.user.id, position, params)
        await self._edit_status(
            request, self._queued_text(request, position), view=job_view(request.id, "cancel")
        )
        self._wakeup.set()

    def _admit(self, interaction: discord.Interaction) -> None:
        """Refuse new work while shutting down, or past a member's or a server's rate."""
        if self.draining:
            raise ShuttingDown()
        now = time.monotonic()
        self.member_rate.hit(interaction.user.id, now)
        if interaction.guild_id is not None:
            self.guild_rate.hit(interaction.guild_id, now)

    def _queued_text(self, request: Request, position: int | None) -> str:
        ahead = (position or 1) - 1 + len(self.running)
        if ahead == 0:
            return f"🎨 {request.mention}, your picture is next: starting now."
        return (
            f"🕒 {request.mention}, your picture is queued at position {position} "
            f"({len(self.running)} painting now)."
        )

    # ---- the dispatcher ---------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        # The bot logs in (and recovers journaled jobs) before the engine has loaded its model.
        while not self.bot.pool.warm:
            await asyncio.sleep(0.25)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while len(self.running) < self.bot.pool.size and (popped := self.queue.pop()):
                owner, request = popped
                request.state = "running"
                self.queue.started(owner)
                self.running.add(request)
                task = asyncio.create_task(self._run(request), name=f"nst-job-{request.id}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._queue_moved.set()

    async def _show_positions_forever(self) -> None:
        """Keep each waiting member's position line true without flooding Discord: one pass
        of edits whenever the queue moved, at most one pass every PROGRESS_EDIT_SECONDS, off
        the dispatcher's path (a burst of 100 waiting members made ~5,000 edits before)."""
        while True:
            await self._queue_moved.wait()
            self._queue_moved.clear()
            waiting = [r for r in self.requests.values() if r.state == "queued"]
            outcomes = await asyncio.gather(
                *(self._show_position(r) for r in waiting), return_exceptions=True
            )
            for error in outcomes:
                if isinstance(error, Exception):  # one failed edit must not end the updates
                    log.error("showing a queue position failed", exc_info=error)
            await asyncio.sleep(PROGRESS_EDIT_SECONDS)

    async def _show_position(self, request: Request) -> None:
        async with request.edit_lock:
            # Looked up under the lock: a job that started meanwhile keeps its "painting…".
            position = self.queue.position(request)
            if position is None or position == request.shown_position:
                return
            request.shown_position = position
            await self._edit_locked(
                request, self._queued_text(request, position), view=job_view(request.id, "cancel")
            )

    async def _run(self, request: Request) -> None:
        job_id_var.set(request.id)
        request.state = "running"
        await self.bot.store.set_state(request.id, "running", attempt=True)
        request.started_at = time.monotonic()
        self.bot.metrics.queue_wait.observe(request.started_at - request.queued_at)
        params = request.params
        options = options_for_quality(
            params.quality,
            strength=params.strength,
            max_size=params.size,
            preserve_colors=params.preserve_colors,
            seed=params.seed,
        )
        if options.steps > self.settings.nst_max_steps:
            options = options.replace(steps=self.settings.nst_max_steps)
        try:
            try:
                result = await self._paint(request, options)
            except WorkerDied as err:
                # A crashed worker may be bad luck (another job's memory, a host hiccup).
                log.warning("%s; retrying once on a fresh worker", err)
                try:
                    result = await self._paint(request, options)
                except WorkerDied as again:
                    raise WorkerDied(
                        f"{again}, twice; if the picture is large, try a smaller size"
                    ) from None
        except NSTError as err:
            log.warning("job failed: %s", err)
            await self._end(request, "failed", f"❌ {request.mention}, that didn't work: {err}")
        except Exception:
            error_id = uuid.uuid4().hex[:8]
            log.exception("job crashed (error id %s)", error_id)
            await self._end(
                request,
                "failed",
                f"❌ {request.mention}, something went wrong on our side (error id `{error_id}`).",
            )
        else:
            if result.cancelled:
                await self._end(
                    request,
                    "cancelled",
                    f"✖️ Cancelled after {result.steps} of {options.steps} steps.",
                )
            else:
                request.state = "done"
                self.bot.metrics.finished += 1
                self.bot.metrics.run_time.observe(result.seconds)
                if result.seconds > 0:
                    self.bot.metrics.steps_per_second = result.steps / result.seconds
                await self._deliver(request, result, options.steps)
        finally:
            self._finish(request)

    async def _paint(self, request: Request, options) -> StyleResult:
        handle = self.bot.pool.submit(
            Job(
                request.content,
                (request.style,),
                options,
                job_id=request.id,
                timeout=self.settings.nst_job_timeout,
            )
        )
        request.handle = handle
        if request.cancel_requested:
            handle.cancel()
        await self._edit_status(
            request, f"🎨 {request.mention}, painting… 0%", view=job_view(request.id, "cancel")
        )
        await self._follow_progress(request)
        return await handle.result()

    async def _end(self, request: Request, state: str, text: str) -> None:
        """A job ended without a picture: journal it and tell the member."""
        if self.stopping:
            log.info("stopped by the shutdown; it stays journaled for the next start")
            return
        request.state = state  # type: ignore[assignment]
        counter = "failed" if state == "failed" else "cancelled"
        setattr(self.bot.metrics, counter, getattr(self.bot.metrics, counter) + 1)
        await self.bot.store.set_state(request.id, state)
        if request.interaction is not None:
            await self._edit_status(request, text, view=None)
        else:
            await self._send_result(request, text, None, None, None)

    def _finish(self, request: Request) -> None:
        self.running.discard(request)
        self.requests.pop(request.id, None)
        self.queue.finished(request.user_id)
        self._wakeup.set()

    async def _follow_progress(self, request: Request) -> None:
        assert request.handle is not None
        last_edit = 0.0
        async for progress in request.handle.events():
            request.percent = int(100 * progress.step / progress.total)
            now = time.monotonic()
            if now - last_edit < PROGRESS_EDIT_SECONDS or progress.step == progress.total:
                continue
            last_edit = now
            eta = progress.eta
            eta_text = f", about {_clock(eta)} left" if eta is not None else ""
            text = (
                f"🎨 {request.mention}, painting… {request.percent}% "
                f"(step {progress.step}/{progress.total}{eta_text})"
            )
            files = []
            if progress.preview is not None:
                png = await asyncio.to_thread(encode_image, progress.preview, "png")
                files = [discord.File(io.BytesIO(png), "preview.png")]
            await self._edit_status(request, text, view=job_view(request.id, "cancel"), files=files)

    async def _deliver(self, request: Request, result, planned_steps: int) -> None:
        png = await asyncio.to_thread(encode_image, result.image, "png")
        await self.bot.store.save_result(request.id, png)
        embed = self._result_embed(request, result)
        actions: list[Action] = ["stronger", "weaker"]
        if request.params.private:
            actions.append("share")
        elif await self._gallery_for(request.guild_id):
            actions.append("gallery")
        actions.append("delete")
        text = f"{request.mention}, here is your picture."
        try:
            await self._send_result(request, text, png, embed, job_view(request.id, *actions))
        except (discord.Forbidden, discord.NotFound) as err:
            # The channel is gone, the bot may not post there, or the member's DMs are closed:
            # no retry will reach them, so the job ends here instead of at every restart.
            log.warning("the picture could not be delivered (%s %s)", err.status, err.text)
            await self.bot.store.set_state(request.id, "failed")
            return
        await self.bot.store.set_state(request.id, "delivered")
        if request.interaction is not None and self._token_alive(request):
            with contextlib.suppress(discord.HTTPException):
                await request.interaction.delete_original_response()
        log.info("delivered %d steps in %.1fs", result.steps, result.seconds)

    def _result_embed(self, request: Request, result) -> discord.Embed:
        h, w = result.image.shape[:2]
        embed = self._params_embed(request, size=f"{w}×{h}")
        embed.add_field(name="Time", value=f"{result.seconds:.1f} s, {result.steps} steps")
        return embed

    def _params_embed(self, request: Request, size: str | None = None) -> discord.Embed:
        """The member's options, and a loud label when the weights are random."""
        p = request.params
        embed = discord.Embed(title="Stylized", colour=discord.Colour.blurple())
        embed.set_image(url="attachment://stylized.png")
        embed.add_field(name="Strength", value=f"{p.strength:g}")
        embed.add_field(name="Quality", value=p.quality)
        embed.add_field(name="Size", value=size or f"up to {p.size}")
        embed.add_field(name="Colours", value="photo's" if p.preserve_colors else "artwork's")
        embed.add_field(name="Seed", value=str(p.seed))
        footer = f"job {request.id}"
        if self.settings.nst_weights == "random":
            footer += " · random VGG19 weights: NOT a real style transfer (test mode)"
        embed.set_footer(text=footer)
        return embed

    async def _send_result(self, request, text, png, embed, view) -> None:
        """Through the interaction while its token lives, else in the channel (or a DM).

        Raises discord.Forbidden / NotFound when the member can't be reached at all."""

        def extras() -> dict[str, object]:  # a fresh file each time: a send consumes it
            if png is None:
                return {}
            return {
                "file": discord.File(io.BytesIO(png), "stylized.png"),
                "embed": embed,
                "view": view,
            }

        mentions = discord.AllowedMentions(
            users=[discord.Object(request.user_id)], everyone=False, roles=False
        )
        if self._token_alive(request):
            webhook = (
                request.interaction.followup
                if request.interaction is not None
                else discord.Webhook.partial(request.application_id, request.token, client=self.bot)
            )
            try:
                await webhook.send(
                    text, ephemeral=request.params.private, allowed_mentions=mentions, **extras()
                )
                return
            except discord.NotFound:
                # The interaction's webhook is gone (the app was re-added, the token revoked).
                log.warning("the interaction's webhook is gone; answering in the channel")
        if request.params.private:
            user = self.bot.get_user(request.user_id) or await self.bot.fetch_user(request.user_id)
            await user.send(text, **extras())
            return
        channel = self.bot.get_channel(request.channel_id) or await self.bot.fetch_channel(
            request.channel_id
        )
        await channel.send(text, allowed_mentions=mentions, **extras())

    @staticmethod
    def _token_alive(request: Request) -> bool:
        return request.token is not None and time.time() - request.created < TOKEN_LIFETIME

    async def _edit_status(self, request: Request, text: str, *, view, files=()) -> None:
        """Edit the status message, after any edit of it already on its way."""
        async with request.edit_lock:
            await self._edit_locked(request, text, view=view, files=files)

    async def _edit_locked(self, request: Request, text: str, *, view, files=()) -> None:
        """`_edit_status` for a caller holding the request's edit lock; a lost edit (expired
        token, deleted message) is not fatal."""
        if request.interaction is None or not self._token_alive(request):
            return
        try:
            await request.interaction.edit_original_response(
                content=text,
                view=view,
                attachments=list(files),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as err:
            log.debug("status edit failed: %s", err)

    async def _gallery_for(self, guild_id: int | None) -> int | None:
        if guild_id is None:
            return None
        return await self.bot.store.gallery_channel(guild_id) or self.settings.nst_gallery_channel

    # ---- buttons ---------------------------------------------------------------------------

    async def on_button(
        self, interaction: discord.Interaction, action: Action, job_id: str
    ) -> None:
        job_id_var.set(job_id)
        try:
            await getattr(self, f"_press_{action}")(interaction, job_id)
        except UserFacingError as err:
            await _reply(interaction, str(err))

    async def _press_cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        request = self.requests.get(job_id)
        if request is None:
            await _reply(interaction, "That picture is no longer queued or painting.")
            return
        if interaction.user.id != request.user_id:
            raise NotYours("cancel")
        request.cancel_requested = True
        if request.state == "queued" and self.queue.remove(request):
            request.state = "cancelled"
            self.bot.metrics.cancelled += 1
            await self.bot.store.set_state(request.id, "cancelled")
            self._finish_queued(request)
            async with request.edit_lock:  # after any position edit already on its way
                await interaction.response.edit_message(
                    content="✖️ Cancelled before it started.", view=None
                )
            self._wakeup.set()
            return
        if request.handle:
            request.handle.cancel()
        await interaction.response.edit_message(content="✖️ Cancelling…", view=None)

    def _finish_queued(self, request: Request) -> None:
        self.requests.pop(request.id, None)

    async def _press_stronger(self, interaction: discord.Interaction, job_id: str) -> None:
        await self._rerun(interaction, job_id, +STRENGTH_STEP)

    async def _press_weaker(self, interaction: discord.Interaction, job_id: str) -> None:
        await self._rerun(interaction, job_id, -STRENGTH_STEP)

    async def _rerun(self, interaction: discord.Interaction, job_id: str, delta: float) -> None:
        stored = await self.bot.store.load(job_id)
        if stored is None:
            raise Gone()
        self._admit(interaction)
        old = Params(**stored.record.params)
        strength = min(10.0, max(0.0, old.strength + delta))
        params = Params(strength, old.quality, old.size, old.preserve_colors, old.seed, old.private)
        self.queue.reserve(interaction.user.id)
        try:
            await interaction.response.defer(thinking=True, ephemeral=params.private)
            max_bytes = self.settings.nst_max_attachment_bytes
            content = await attachments.decode("content", stored.content, max_bytes=max_bytes)
            style = await attachments.decode("style", stored.style, max_bytes=max_bytes)
        except BaseException:
            self.queue.release(interaction.user.id)
            raise
        await self._accept(interaction, params, content, style, stored.content, stored.style)

    async def _press_delete(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self.bot.store.load(job_id)
        owner = stored.record.user_id if stored else None
        perms = interaction.permissions
        if interaction.user.id != owner and not perms.manage_messages:
            raise NotYours("delete")
        await interaction.response.defer()
        await interaction.delete_original_response()

    async def _press_share(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self.bot.store.load(job_id)
        if stored is None or stored.result is None:
            raise Gone()
        if interaction.user.id != stored.record.user_id:
            raise NotYours("share")
        await interaction.response.defer()
        await interaction.followup.send(
            f"🖼️ Shared by {interaction.user.mention}",
            file=discord.File(io.BytesIO(stored.result), "stylized.png"),
            view=job_view(job_id, "stronger", "weaker", "delete"),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    async def _press_gallery(self, interaction: discord.Interaction, job_id: str) -> None:
        stored = await self.bot.store.load(job_id)
        if stored is None or stored.result is None:
            raise Gone()
        if interaction.user.id != stored.record.user_id:
            raise NotYours("post")
        channel_id = await self._gallery_for(interaction.guild_id)
        channel = channel_id and (
            self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id)
        )
        if not channel:
            await _reply(
                interaction,
                "This server has no gallery channel; an admin can set one with /gallery set.",
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        link = interaction.message.jump_url if interaction.message else ""
        await channel.send(
            f"🖼️ By {interaction.user.mention} — {link}",
            file=discord.File(io.BytesIO(stored.result), "stylized.png"),
            allowed_mentions=discord.AllowedMentions.none(),
        )
        await interaction.followup.send(f"Posted to {channel.mention}.", ephemeral=True)


async def _reply(interaction: discord.Interaction, message: str) -> None:
    """An ephemeral answer, whether or not the interaction was answered already."""
    if interaction.response.is_done():
        await interaction.followup.send(message, ephemeral=True)
    else:
        await interaction.response.send_message(message, ephemeral=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


__all__ = ["StylizeCog", "QUALITY_PRESETS"]
