"""Logging set-up: every line carries the id of the job it is about (or '-')."""

from __future__ import annotations

import contextvars
import logging

job_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("job_id", default="-")

FORMAT = "%(asctime)s %(levelname)-7s [job %(job_id)s] %(name)s: %(message)s"


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = job_id_var.get()
        return True


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_JobIdFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    set_library_levels(level)


class _NoVoiceWarnings(logging.Filter):
    """discord.py warns at every start that voice needs PyNaCl and davey; this bot has no voice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "voice will NOT be supported" not in record.getMessage()


_NO_VOICE_WARNINGS = _NoVoiceWarnings()


def set_library_levels(level: int) -> None:
    """discord.py's gateway chatter (whole payloads, attachment URLs) only when debugging it."""
    logging.getLogger("discord").setLevel(max(level, logging.INFO))
    logging.getLogger("discord.gateway").setLevel(max(level, logging.WARNING))
    logging.getLogger("discord.client").addFilter(_NO_VOICE_WARNINGS)  # a set: added once
