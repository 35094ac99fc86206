"""Stronger, Weaker and Upscale go on from the last result instead of starting again from the
photo (`nst_engine.continuation`): the parent a re-run continues, read back from the journal."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.cogs.stylize.lifecycle import RequestState
from nst_engine import continuation
from nst_engine.errors import ImageError

if TYPE_CHECKING:
    from bot.cogs.stylize.contracts import Journal
    from bot.store import JobRecord, StoredJob

log = logging.getLogger(__name__)

# The key of a continuation's parent job id in its journaled params (the journal's table
# keeps the params as JSON; a fresh run's have no such key).
PARENT_KEY = "parent"
# Set in an upscale's journaled params, so that a restart paints it as one.
UPSCALE_KEY = "upscale"


@dataclass(frozen=True)
class Continuing:
    """The finished job a re-run goes on from."""

    # The parent's job id, journaled with the re-run so that a restart finds it again.
    job_id: str
    # Its picture (uint8 H×W×3) and the parameters its PNG carries.
    picture: continuation.Parent
    # An Upscale: the picture's own longest side is its size (a photo smaller than the size
    # asked for paints smaller), so that twice that is planned as an upscale.
    upscale: bool = False

    def was(self) -> tuple[float, int]:
        """The parent's (strength, size) for `continuation.plan`."""
        strength, size = self.picture.was()
        if self.upscale:
            size = min(size, self.long_side)
        return strength, size

    @property
    def long_side(self) -> int:
        """The picture's longest side in pixels."""
        return max(self.picture.image.shape[:2])


async def parent_picture(job_id: str, stored: StoredJob | None) -> Continuing | None:
    """The still picture of journaled job ``job_id`` (as the journal ``stored`` it), to go on
    from; None when there is none: the job or its result pruned, or a result that is no PNG of
    ours (fitted to the upload limit as WebP or JPEG)."""
    if stored is None or stored.result is None:
        log.info("the picture of job %s is gone; painting afresh", job_id)
        return None
    try:
        picture = await asyncio.to_thread(continuation.Parent.read, stored.result)
    except ImageError as err:
        log.info("cannot go on from the picture of job %s (%s); painting afresh", job_id, err)
        return None
    return Continuing(job_id, picture)


async def journaled_parent(journal: Journal, record: JobRecord) -> Continuing | None:
    """The picture a journaled job (``record``) still to paint goes on from, read back from
    ``journal`` after a restart; None for a fresh run, a job painted already, or when the parent
    or its picture was pruned (painted afresh rather than lost)."""
    job_id = record.params.get(PARENT_KEY)
    if not isinstance(job_id, str) or record.state == RequestState.DONE:
        return None
    parent = await parent_picture(job_id, await journal.load(job_id))
    if parent is None or record.params.get(UPSCALE_KEY) is not True:
        return parent
    return replace(parent, upscale=True)
