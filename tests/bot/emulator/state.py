"""What the emulator's parts share: the application, the ids, the guilds, who acts by default,
and the notifier every wait listens to."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .guilds import Defaults, Guilds
from .records import Changes
from .world import Application, Snowflakes

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class State:
    """The emulated Discord as every part sees it."""

    app: Application
    snowflakes: Snowflakes
    guilds: Guilds
    defaults: Defaults
    # Told of every change, so that every wait re-checks its condition.
    changes: Changes
