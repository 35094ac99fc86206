"""The Discord emulator, driven by a small discord.py bot defined here (not the project's bot)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import struct
import zlib
from collections.abc import AsyncIterator, Iterator

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.api_base import use_api_base, use_gateway_of
from tests.bot.emulator import DiscordEmulator, EmulatorTimeout

log = logging.getLogger(__name__)

TOKEN = "MTE0NTE0MTkxOTgxMDg5MzQ0MA.emulated.test-token"


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid, solid-colour RGB PNG, built by hand so the test needs no imaging library."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def blended(content: bytes, style: bytes, strength: int) -> bytes:
    # Depends on every byte of both inputs, so a matching result proves both were read whole.
    return make_png(2, 2, (zlib.crc32(content) % 256, zlib.crc32(style) % 256, strength))


class Panel(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Again", custom_id="panel:again", style=discord.ButtonStyle.primary)
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(
            content=f"pressed by {interaction.user.name}", view=None
        )


class Form(discord.ui.Modal):
    name = discord.ui.TextInput(label="Name", custom_id="name", default="Ada", max_length=10)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"hello {self.name.value}")


class TinyBot(commands.Bot):
    """A minimal bot with three guild commands, synced at start-up."""

    def __init__(self, guild_id: int) -> None:
        # A short guild_ready_timeout: discord.py otherwise waits 2 s after the last
        # GUILD_CREATE before it calls on_ready.
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
        )
        self.guild_object = discord.Object(id=guild_id)
        self.gate = asyncio.Event()  # /gated waits on it, so a test can act in between
        self.heard: list[discord.Message] = []

    async def on_message(self, message: discord.Message) -> None:
        self.heard.append(message)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s here before every IDENTIFY but the first.
        pass

    async def setup_hook(self) -> None:
        await use_gateway_of(self)
        guild = self.guild_object

        @self.tree.command(name="blend", description="Blend a photo with an artwork.", guild=guild)
        @app_commands.describe(content="The photo", style="The artwork", strength="1 to 10")
        async def blend(
            interaction: discord.Interaction,
            content: discord.Attachment,
            style: discord.Attachment,
            strength: app_commands.Range[int, 1, 10] = 5,
        ) -> None:
            await interaction.response.defer(thinking=True)
            photo, artwork = await content.read(), await style.read()
            await interaction.edit_original_response(
                content=f"read {len(photo)} + {len(artwork)} bytes, strength {strength}"
            )
            result = blended(photo, artwork, strength)
            output = discord.File(io.BytesIO(result), "out.png")
            await interaction.followup.send("done", file=output)

        @self.tree.command(name="panel", description="Show a panel with a button.", guild=guild)
        async def panel(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("press it", view=Panel())

        @self.tree.command(name="form", description="Open a form.", guild=guild)
        async def form(interaction: discord.Interaction, title: str = "A form") -> None:
            try:
                await interaction.response.send_modal(Form(title=title))
            except discord.HTTPException as err:
                await interaction.response.send_message(f"refused {err.code}")

        @self.tree.command(name="post", description="Post text to this channel.", guild=guild)
        async def post(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.defer(ephemeral=True)
            assert isinstance(interaction.channel, discord.TextChannel)
            await interaction.channel.send(text)
            await interaction.followup.send("posted", ephemeral=True)

        @self.tree.command(name="gated", description="Answer when the test says.", guild=guild)
        async def gated(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await self.gate.wait()
            try:
                await interaction.followup.send("in time")
            except discord.HTTPException:
                assert isinstance(interaction.channel, discord.TextChannel)
                await interaction.channel.send("the token expired, so here it is")

        await self.tree.sync(guild=guild)


@pytest.fixture
def discord_globals() -> Iterator[None]:
    """Put back the process-wide API base and gateway that use_api_base/use_gateway_of set."""
    base, gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


@pytest.fixture
async def emu(discord_globals: None) -> AsyncIterator[DiscordEmulator]:
    async with DiscordEmulator(token=TOKEN, heartbeat_interval=0.5) as emulator:
        use_api_base(emulator.api_base)
        yield emulator


@contextlib.asynccontextmanager
async def running(client: discord.Client, token: str = TOKEN) -> AsyncIterator[asyncio.Task]:
    """Run ``client.start`` in the background; close the client and reap the task after."""
    task = asyncio.create_task(client.start(token))
    try:
        yield task
    finally:
        await client.close()
        await asyncio.wait_for(task, timeout=5)


@pytest.fixture
async def bot(emu: DiscordEmulator) -> AsyncIterator[TinyBot]:
    client = TinyBot(emu.guild.id)
    async with running(client) as task:
        ready = asyncio.ensure_future(client.wait_until_ready())
        done, _ = await asyncio.wait({ready, task}, timeout=5, return_when="FIRST_COMPLETED")
        if ready not in done:
            ready.cancel()
            raise AssertionError(f"the client did not get ready: {task}\n{emu.summary()}")
        yield client


async def test_client_logs_in_and_reaches_ready(emu: DiscordEmulator, bot: TinyBot) -> None:
    assert bot.user is not None and bot.user.id == emu.bot.id
    assert bot.application_id == emu.application_id
    guild = bot.get_guild(emu.guild.id)
    assert guild is not None and guild.name == emu.guild.name
    assert {c.name for c in guild.text_channels} == {"general", "style-lab"}
    assert guild.me.guild_permissions.attach_files
    assert (emu.identify_count, emu.resume_count) == (1, 0)
    assert emu.gateway_paths == ["/gateway"]
    assert emu.unexpected == []


async def test_commands_sync_to_the_guild(emu: DiscordEmulator, bot: TinyBot) -> None:
    await emu.wait_for_commands("blend", "panel", "post")
    options = emu.command("blend")["options"]
    assert [(o["name"], o["type"], o.get("required", False)) for o in options] == [
        ("content", 11, True),
        ("style", 11, True),
        ("strength", 4, False),
    ]
    assert emu.global_commands == []
    fetched = await bot.tree.fetch_commands(guild=bot.guild_object)
    assert {c.name: str(c.id) for c in fetched} == {
        c["name"]: c["id"] for c in emu.commands_for(emu.guild)
    }


async def test_slash_command_with_two_attachments(emu: DiscordEmulator, bot: TinyBot) -> None:
    photo = emu.add_attachment("photo.png", make_png(3, 2, (10, 20, 30)))
    artwork = emu.add_attachment("art.jpg", b"\xff\xd8not-really-a-jpeg" * 50, "image/jpeg")

    inter = await emu.invoke_slash("blend", {"content": photo, "style": artwork, "strength": 7})
    await inter.wait_for_followups(1)

    assert inter.callback is not None and inter.callback.type == 5
    assert inter.callback.after < 1.0
    original = inter.original
    assert original is not None and not inter.ephemeral
    assert [v.loading for v in original.history] == [True, False]
    assert original.content == f"read {photo['size']} + {artwork['size']} bytes, strength 7"
    assert emu.downloads[int(photo["id"])] == emu.downloads[int(artwork["id"])] == 1

    followup = inter.followups[0]
    assert followup is not original and followup.content == "done"
    sent = followup.file("out.png")
    expected = blended(make_png(3, 2, (10, 20, 30)), b"\xff\xd8not-really-a-jpeg" * 50, strength=7)
    assert sent.data == expected and sent.content_type == "image/png"
    assert [m.id for m in emu.channel.messages] == [original.id, followup.id]
    assert inter.errors == []


async def test_button_press_edits_the_message(emu: DiscordEmulator, bot: TinyBot) -> None:
    inter = await emu.invoke_slash("panel")
    message = await inter.wait_for_original()
    assert message.content == "press it"
    assert [b["custom_id"] for b in message.buttons()] == ["panel:again"]

    bob = emu.users["bob"]
    press = await emu.press_button(message, "panel:again", user=bob)
    callback = await press.wait_for_callback()

    assert callback.type == 7
    assert press.original is message
    assert message.content == "pressed by bob" and message.components == []
    assert [v.content for v in message.history] == ["press it", "pressed by bob"]
    with pytest.raises(LookupError):
        await emu.press_button(message, "panel:again")


async def test_a_modal_opens_filled_in_and_its_submission_reaches_the_bot(
    emu: DiscordEmulator, bot: TinyBot
) -> None:
    inter = await emu.invoke_slash("form")
    assert (await inter.wait_for_callback()).type == 9
    assert inter.modal["title"] == "A form" and inter.fields() == {"name": "Ada"}
    submitted = await emu.submit_modal(inter, {"name": "Grace"})
    assert submitted.type == 5
    assert (await submitted.wait_for_original()).content == "hello Grace"
    # What Discord's client would not send, and a modal Discord would not show.
    with pytest.raises(ValueError, match="takes 1 to 10 characters"):
        await emu.submit_modal(inter, {"name": "x" * 11})
    with pytest.raises(LookupError):
        await emu.submit_modal(inter, {"age": "3"})
    too_long = await emu.invoke_slash("form", {"title": "t" * 46})
    assert (await too_long.wait_for_original()).content == "refused 50035"


async def test_wrong_token_is_a_login_failure(emu: DiscordEmulator, discord_globals: None) -> None:
    client = TinyBot(emu.guild.id)
    async with client:
        with pytest.raises(discord.LoginFailure):
            await client.start("not-" + TOKEN)
    assert [r.status for r in emu.requests_to("GET /users/@me")] == [401]
    assert emu.identify_count == 0


async def test_dropped_gateway_is_resumed(emu: DiscordEmulator, bot: TinyBot) -> None:
    emu.drop_gateway()
    # Dispatched while the connection is down: it must come with the RESUME replay.
    missed = await emu.invoke_slash("panel")
    await emu.wait_until(
        lambda: emu.resume_count == 1 and len(emu.gateway_paths) == 1, what="a RESUME"
    )
    assert emu.identify_count == 1
    assert emu.gateway_paths == ["/gateway/resume"]
    assert (await missed.wait_for_original()).content == "press it"

    after = await emu.invoke_slash("post", {"text": "still here"})
    await after.wait_for_followups(1)
    assert [m.content for m in emu.channel.posted] == ["still here"]


async def test_injected_429s_are_retried(emu: DiscordEmulator, bot: TinyBot) -> None:
    channel_fault = emu.fail_next("POST /channels/*/messages", status=429, retry_after=0.1)
    webhook_fault = emu.fail_next("POST /webhooks/*", status=429, retry_after=0.1)

    inter = await emu.invoke_slash("post", {"text": "hello"})
    (reply,) = await inter.wait_for_followups(1)

    assert channel_fault.hits == webhook_fault.hits == 1
    assert [r.status for r in emu.requests_to("POST /channels/*/messages")] == [429, 200]
    assert [m.content for m in emu.channel.posted] == ["hello"]
    # After a deferral the first follow-up becomes the (ephemeral) original response.
    assert reply is inter.original and reply.content == "posted" and inter.ephemeral
    assert [r.status for r in inter.requests] == [200, 429, 200]


async def test_slash_options_are_checked_like_discord(emu: DiscordEmulator, bot: TinyBot) -> None:
    photo = emu.add_attachment("photo.png", make_png(1, 1, (0, 0, 0)))
    with pytest.raises(ValueError, match="outside"):
        await emu.invoke_slash("blend", {"content": photo, "style": photo, "strength": 11})
    with pytest.raises(ValueError, match="needs option 'style'"):
        await emu.invoke_slash("blend", {"content": photo})
    with pytest.raises(LookupError):
        await emu.invoke_slash("nope")
    assert emu.interactions.records == []


async def test_raw_http_faults_and_unknown_routes(discord_globals: None) -> None:
    async with DiscordEmulator(token=TOKEN, strict=False) as emu, aiohttp.ClientSession() as http:
        attachment = emu.add_attachment("a.txt", b"hello")
        url = attachment["url"]
        async with http.get(url) as response:
            assert response.status == 200 and await response.read() == b"hello"

        emu.fail_next("GET /cdn/*", status=500)
        async with http.get(url) as response:
            assert response.status == 500

        stalled = emu.hang_next("/cdn/attachments/*")
        download = asyncio.ensure_future(http.get(url))
        await emu.wait_until(lambda: stalled.hits == 1)
        assert not download.done()
        stalled.release()
        async with await download as response:
            assert await response.read() == b"hello"

        auth = {"Authorization": f"Bot {TOKEN}"}
        async with http.get(emu.api_base + "/guilds/1/bans", headers=auth) as response:
            assert response.status == 404
            assert await response.json() == {"message": "404: Not Found", "code": 0}
        async with http.get(emu.api_base + "/users/@me", headers=auth) as response:
            assert response.headers["X-RateLimit-Limit"] == "50"
            assert response.headers["Via"]
        assert [r.path for r in emu.unexpected] == ["/guilds/1/bans"]
        with pytest.raises(AssertionError, match="unknown route"):
            emu.assert_no_unexpected()
        with pytest.raises(EmulatorTimeout):
            await emu.wait_ready(timeout=0.05)


async def test_expired_token_is_refused(emu: DiscordEmulator, bot: TinyBot) -> None:
    inter = await emu.invoke_slash("gated")
    await inter.wait_for_callback()
    inter.expire()
    bot.gate.set()

    posted = await emu.wait_for_message(channel=emu.channel)

    assert posted.content == "the token expired, so here it is"
    assert [(r.status, r.error_code) for r in inter.errors] == [(401, 50027)]
    assert inter.original is not None and inter.original.loading


async def test_gateway_reconnects_and_reidentifies(emu: DiscordEmulator, bot: TinyBot) -> None:
    await emu.send_reconnect()
    await emu.wait_until(lambda: emu.resume_count == 1, what="a RESUME after op 7")
    await emu.close_gateway(4000, "resumable")
    await emu.wait_until(lambda: emu.resume_count == 2, what="a RESUME after close 4000")
    await emu.invalidate_session(resumable=False)
    await emu.wait_until(lambda: emu.identify_count == 2, what="a new IDENTIFY")
    await emu.wait_ready()

    inter = await emu.invoke_slash("panel")
    assert (await inter.wait_for_original()).content == "press it"


async def test_member_messages_reach_the_bot(emu: DiscordEmulator, bot: TinyBot) -> None:
    # Without the message-content intent the bot sees content only when it is mentioned.
    await emu.post_as(emu.users["bob"], "hello everyone")
    await emu.post_as(emu.users["bob"], f"{emu.bot.mention} hello bot")
    await emu.wait_until(lambda: len(bot.heard) == 2, what="two MESSAGE_CREATEs")

    assert [m.content for m in bot.heard] == ["", f"<@{emu.bot.id}> hello bot"]
    assert bot.heard[1].author.id == emu.users["bob"].id
