"""Interactions the gateway delivers twice: after a RESUME, Discord may replay events the bot
had already handled. Each interaction id is handled once."""

from __future__ import annotations

import logging
from collections import OrderedDict

import discord

log = logging.getLogger(__name__)

# Interaction ids remembered: a replay comes within seconds of the original (a RESUME is only
# possible for a short while), and an interaction's token lasts 15 minutes; this many ids
# cover far more than a busy bot gets in that time, in well under a megabyte.
REMEMBERED = 10_000


class SeenInteractions:
    """The ids of the latest ``size`` interactions, oldest forgotten first."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def first(self, interaction: discord.Interaction) -> bool:
        """True the first time an interaction id is seen; False (and a log line) after."""
        if interaction.id in self._ids:
            log.info("ignored interaction %s delivered again (a gateway replay)", interaction.id)
            return False
        self._ids[interaction.id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True
