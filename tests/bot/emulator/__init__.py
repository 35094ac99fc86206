"""A loopback Discord for testing the bot through the real discord.py client.

Open ``DiscordEmulator`` with ``async with``, point discord.py at it with
``use_api_base(emu.api_base)`` (and ``use_gateway_of(client)`` in ``setup_hook``), start the
client, ``await emu.wait_ready()``, then drive it: ``invoke_slash``, ``press_button``,
``submit_modal``, ``post_as``; read what the bot did from the returned ``InteractionRecord``,
the channels' ``messages`` and ``emu.requests``; break things with ``fail_next``, ``hang_next`` and
``drop_gateway``.
"""

from .errors import DiscordError
from .faults import Fault
from .interactions import InteractionRecord
from .records import (
    CallbackRecord,
    EmulatorTimeout,
    MessageRecord,
    MessageVersion,
    RequestRecord,
    SentFile,
)
from .server import DEFAULT_TOKEN, DiscordEmulator
from .world import (
    BOT_PERMISSIONS,
    EVERYONE_PERMISSIONS,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILD_PRESENCES,
    MESSAGE_CONTENT,
    EmuChannel,
    EmuGuild,
    EmuMember,
    EmuRole,
    EmuUser,
)

__all__ = [
    "BOT_PERMISSIONS",
    "DEFAULT_TOKEN",
    "EVERYONE_PERMISSIONS",
    "GUILD_MEMBERS",
    "GUILD_MESSAGES",
    "GUILD_PRESENCES",
    "MESSAGE_CONTENT",
    "CallbackRecord",
    "DiscordEmulator",
    "DiscordError",
    "EmuChannel",
    "EmuGuild",
    "EmuMember",
    "EmuRole",
    "EmuUser",
    "EmulatorTimeout",
    "Fault",
    "InteractionRecord",
    "MessageRecord",
    "MessageVersion",
    "RequestRecord",
    "SentFile",
]
