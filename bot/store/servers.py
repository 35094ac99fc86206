"""What each server chose, in the journal's database: its gallery, settings, channel
allow-list and saved styles, and each member's pictures per UTC day."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from bot.errors import UserFacingError, shown
from bot.store.database import GUILD_SETTINGS, MAX_STYLES, utc_day
from bot.store.names import style_key, style_name

log = logging.getLogger(__name__)


class StyleExists(UserFacingError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"This server already has a style called {shown(name)}; names are unique whatever "
            "their case, so pick another or remove that one with /styles remove."
        )


class TooManyStyles(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            f"This server already has {MAX_STYLES} saved styles, the most allowed; "
            "remove one with /styles remove first."
        )


@dataclass(frozen=True)
class SavedStyle:
    """An artwork a server saved under a name."""

    guild_id: int
    # As the member typed it (NFKC, spaces collapsed); looked up by `style_key`.
    name: str
    # The member who saved it (who may remove it, besides Manage Server).
    user_id: int
    # Unix time it was saved.
    created: float
    # PNG, at most 512 px on its longest side (the cog re-encodes what members upload).
    image: bytes
    # Hex SHA-256 of ``image``.
    sha256: str


@dataclass(frozen=True)
class GuildSettings:
    """What a server chose; None means the bot-wide default (the environment's caps still
    apply above whatever a server sets)."""

    # Longest side of results in pixels.
    max_size: int | None = None
    # Quality preset when a member doesn't choose one: fast, balanced or best.
    default_quality: str | None = None
    # Pictures per member per UTC day; None: no limit.
    daily_limit: int | None = None
    # A role a member must have to use the bot; None: everyone.
    role_id: int | None = None
    # Channels the bot may be used in; empty: everywhere.
    channels: frozenset[int] = field(default_factory=frozenset)


class ServersMixin:
    """What each server chose: gallery, settings, allow-list, saved styles, daily use (mixed
    into `JobStore`)."""

    async def gallery_channel(self, guild_id: int) -> int | None:
        def query() -> int | None:
            row = (
                self._conn()
                .execute("SELECT channel_id FROM galleries WHERE guild_id=?", (guild_id,))
                .fetchone()
            )
            return row[0] if row else None

        return await self._run(query)

    async def set_gallery_channel(self, guild_id: int, channel_id: int | None) -> None:
        def update() -> None:
            with self._conn() as db:
                if channel_id is None:
                    db.execute("DELETE FROM galleries WHERE guild_id=?", (guild_id,))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO galleries VALUES (?, ?)", (guild_id, channel_id)
                    )

        await self._run(update)

    async def guild_settings(self, guild_id: int) -> GuildSettings:
        """The server's settings; every field None (and no channels) if it chose none."""

        def query() -> GuildSettings:
            db = self._conn()
            row = db.execute(
                "SELECT * FROM guild_settings WHERE guild_id=?", (guild_id,)
            ).fetchone()
            channels = frozenset(
                r[0]
                for r in db.execute(
                    "SELECT channel_id FROM guild_channels WHERE guild_id=?", (guild_id,)
                )
            )
            chosen = {name: row[name] for name in GUILD_SETTINGS} if row else {}
            return GuildSettings(**chosen, channels=channels)

        return await self._run(query)

    async def update_guild_settings(self, guild_id: int, **changes: Any) -> GuildSettings:
        """Set the named settings (a value of None clears one); the others stay as they were.
        Raises TypeError for a name not in GUILD_SETTINGS."""
        unknown = sorted(set(changes) - set(GUILD_SETTINGS))
        if unknown:
            raise TypeError(f"unknown server settings: {', '.join(unknown)}")
        if changes:
            names = list(changes)
            updates = ", ".join(f"{name}=excluded.{name}" for name in names)

            def update() -> None:
                with self._conn() as db:
                    db.execute(
                        f"INSERT INTO guild_settings (guild_id, {', '.join(names)}) "
                        f"VALUES (?{', ?' * len(names)}) "
                        f"ON CONFLICT(guild_id) DO UPDATE SET {updates}",
                        (guild_id, *changes.values()),
                    )

            await self._run(update)
        return await self.guild_settings(guild_id)

    async def add_channel(self, guild_id: int, channel_id: int) -> bool:
        """Allow the bot in a channel; False if it was allowed already."""

        def update() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO guild_channels VALUES (?, ?)", (guild_id, channel_id)
                )
                return cursor.rowcount > 0

        return await self._run(update)

    async def remove_channel(self, guild_id: int, channel_id: int) -> bool:
        """Take a channel off the allow-list; False if it was not on it."""

        def update() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "DELETE FROM guild_channels WHERE guild_id=? AND channel_id=?",
                    (guild_id, channel_id),
                )
                return cursor.rowcount > 0

        return await self._run(update)

    async def pictures_today(self, guild_id: int, user_id: int) -> int:
        """Jobs the member had accepted in this server since 00:00 UTC, whatever became of
        them (cancelled and failed ones count too)."""

        def query() -> int:
            row = (
                self._conn()
                .execute(
                    "SELECT pictures FROM daily_use WHERE guild_id=? AND user_id=? AND day=?",
                    (guild_id, user_id, utc_day(time.time())),
                )
                .fetchone()
            )
            return row[0] if row else 0

        return await self._run(query)

    # ---- saved styles -------------------------------------------------------------------

    async def add_style(self, guild_id: int, name: str, user_id: int, image: bytes) -> SavedStyle:
        """Save ``image`` (PNG, already bounded in size) under ``name``. Raises BadStyleName,
        StyleExists or TooManyStyles, each one line a member may see."""
        name = style_name(name)
        saved = SavedStyle(
            guild_id=guild_id,
            name=name,
            user_id=user_id,
            created=time.time(),
            image=image,
            sha256=hashlib.sha256(image).hexdigest(),
        )

        def insert() -> None:
            with self._conn() as db:
                count = db.execute(
                    "SELECT COUNT(*) FROM styles WHERE guild_id=?", (guild_id,)
                ).fetchone()[0]
                if db.execute(
                    "SELECT 1 FROM styles WHERE guild_id=? AND key=?", (guild_id, style_key(name))
                ).fetchone():
                    raise StyleExists(name)
                if count >= MAX_STYLES:
                    raise TooManyStyles()
                db.execute(
                    "INSERT INTO styles VALUES (?,?,?,?,?,?,?)",
                    (guild_id, style_key(name), name, user_id, saved.created, saved.sha256, image),
                )

        await self._run(insert)
        return saved

    async def style(self, guild_id: int, name: str) -> SavedStyle | None:
        """The server's style of that name, whatever its case; None if there is none."""

        def query() -> SavedStyle | None:
            row = (
                self._conn()
                .execute(
                    "SELECT * FROM styles WHERE guild_id=? AND key=?",
                    (guild_id, style_key(name)),
                )
                .fetchone()
            )
            return _saved_style(row) if row else None

        return await self._run(query)

    async def styles(self, guild_id: int) -> list[SavedStyle]:
        """All the server's styles with their images, ordered by name (case ignored)."""

        def query() -> list[SavedStyle]:
            rows = self._conn().execute(
                "SELECT * FROM styles WHERE guild_id=? ORDER BY key", (guild_id,)
            )
            return [_saved_style(row) for row in rows.fetchall()]

        return await self._run(query)

    async def style_names(self, guild_id: int) -> list[str]:
        """The server's style names, ordered as `styles` orders them, without reading the
        images (for autocomplete)."""

        def query() -> list[str]:
            rows = self._conn().execute(
                "SELECT name FROM styles WHERE guild_id=? ORDER BY key", (guild_id,)
            )
            return [row[0] for row in rows.fetchall()]

        return await self._run(query)

    async def remove_style(self, guild_id: int, name: str) -> bool:
        """Forget the server's style of that name; False if there was none."""

        def delete() -> bool:
            with self._conn() as db:
                cursor = db.execute(
                    "DELETE FROM styles WHERE guild_id=? AND key=?",
                    (guild_id, style_key(name)),
                )
                return cursor.rowcount > 0

        return await self._run(delete)


def _saved_style(row: sqlite3.Row) -> SavedStyle:
    return SavedStyle(
        guild_id=row["guild_id"],
        name=row["name"],
        user_id=row["user_id"],
        created=row["created"],
        image=bytes(row["image"]),
        sha256=row["sha256"],
    )
