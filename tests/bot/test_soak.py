"""A smaller bench/soak.py: 30 jobs through the emulator to ``python -m bot``; every picture
delivered once, memory flat, the data folder pruned back."""

from __future__ import annotations

import pytest

from bench.soak import Plan, soak

pytestmark = pytest.mark.asyncio

JOBS = 30
EARLY = 10
# A 1280×960 photo (3.7 MB of pixels once decoded) painted at 64–128 px in one step: each job
# carries megabytes through the bot for little engine time, so a leak of anything that holds a
# job's photo grows the bot by 70 MB or more over the 20 jobs measured. (A leak of the results
# alone, some 40 kB a job at these sizes, is below what RSS can tell apart in 20 jobs; the 300
# jobs of bench/soak.py, at up to 256 px, are for that.)
PLAN = Plan(JOBS, (64, 128), seed=1, photo=(1280, 960))
# Bounds on growth from the 10th job to the 30th. The bot was seen to grow by 13% while it
# warms up, and by 58% when made to keep every job it delivered. The worker grew by 24–27%
# when it was never replaced (TensorFlow keeps state for every picture size): replaced past
# NST_WORKER_MAX_GROWTH (15% over its first job), it stays within this bound; the 15% target
# is bench/soak.py's, after 20 jobs and 300.
GROWTH = {"bot": 0.30, "worker": 0.15}
# glibc serves every block over 64 kB (the bot's and the worker's) from its own mapping and
# unmaps it when freed, instead of raising that threshold as it goes: the photos' transient
# buffers then leave no holes in the heap, and RSS follows what is held (without this, one run
# with no leak grew the bot by 23%).
MEASURABLE_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}


async def test_thirty_jobs_lose_nothing_keep_memory_flat_and_are_pruned_away(tmp_path) -> None:
    report = await soak(
        PLAN,
        early=EARLY,
        steps=1,
        data_dir=tmp_path / "data",
        rss_tolerance=GROWTH,
        bot_env=MEASURABLE_MALLOC,
    )
    print("\n".join(report.lines()))
    assert all(report.kinds.values()), report.kinds  # stills, clips, Stronger and Variation
    # Every job's picture, exactly once, and no other picture anywhere.
    assert report.lost == 0 and report.duplicated == 0, report.problems
    assert report.pictures == JOBS
    # Pruned with the clock past NST_KEEP_HOURS: every row and file of the delivered jobs went;
    # the journal and the worker's pid file stayed.
    assert report.removed == JOBS and report.rows_left == 0
    assert report.leftovers == []
    assert report.pruned.data_bytes < report.last.data_bytes
    early, last = report.early, report.last
    # Replaced only for its memory bound (NST_WORKER_MAX_GROWTH, 15% by default), never lost.
    assert report.worker_starts == report.replaced + 1
    assert last.bot_rss_mb <= early.bot_rss_mb * (1 + GROWTH["bot"])
    assert last.worker_rss_mb <= early.worker_rss_mb * (1 + GROWTH["worker"])
    assert report.failures() == []
