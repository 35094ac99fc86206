"""The job journal: every accepted job, its inputs and its result, in NST_DATA_DIR.

A SQLite database (WAL mode) holds one row per job with its state, requester, channel and
interaction token; the images sit beside it, one folder per job. A job is written here before
the member is told it is queued, so a restart can run it again and deliver it. Rows and files
older than the retention time are removed by `prune`. All file and database work runs in a thread.

The same database keeps what each server chose: its saved styles (`add_style`, `style`,
`styles`, `remove_style`), its settings and channel allow-list (`guild_settings`,
`update_guild_settings`, `add_channel`, `remove_channel`), and each member's pictures per UTC
day (`pictures_today`). Tables and nullable columns are only ever added, so an older journal
keeps working: a column it lacks is added when it is opened.

Another program may hold the database's write lock for a while (an operator's ``sqlite3``
session, a backup tool): every operation waits for it, up to ``busy_wait`` seconds, and then
raises `JournalUnavailable`. A journal that cannot be used at all (a data folder that cannot be
written, a table of another schema) raises `JournalError` from `open`, in one line for the
operator; a file that is not a database is moved aside, and a row that cannot be read is set
aside as failed, each with one warning.
"""

from __future__ import annotations

from bot.store.database import (
    JOURNAL,
    PENDING_STATES,
    Database,
    JournalError,
    JournalUnavailable,
)
from bot.store.jobs import JobRecord, JobsMixin, StoredJob
from bot.store.names import STYLE_NAME_LENGTH, BadStyleName, style_key, style_name
from bot.store.servers import (
    GUILD_SETTINGS,
    MAX_STYLES,
    GuildSettings,
    SavedStyle,
    ServersMixin,
    StyleExists,
    TooManyStyles,
)


class JobStore(JobsMixin, ServersMixin, Database):
    """The journal and the files of recent jobs under ``root``, and what each server chose."""


__all__ = [
    "GUILD_SETTINGS",
    "JOURNAL",
    "MAX_STYLES",
    "PENDING_STATES",
    "STYLE_NAME_LENGTH",
    "BadStyleName",
    "GuildSettings",
    "JobRecord",
    "JobStore",
    "JournalError",
    "JournalUnavailable",
    "SavedStyle",
    "StoredJob",
    "StyleExists",
    "TooManyStyles",
    "style_key",
    "style_name",
]
