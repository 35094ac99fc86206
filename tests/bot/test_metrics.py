"""/metrics as Prometheus scrapes it: the bot's series and the process's, one registry per bot."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp

from bot.metrics import Metrics
from bot.web import HealthServer
from tests.bot.harness import free_port


def _values(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_metrics_are_served_in_prometheus_format_one_registry_per_bot():
    metrics, other = Metrics(), Metrics()
    metrics.finished.inc()
    metrics.rejected.inc(2)
    metrics.run_time.observe(12.0)
    metrics.steps_per_second.set(3.5)
    metrics.track(queued=lambda: 4, running=lambda: 1)
    engine = SimpleNamespace(workers_alive=1, workers_starting=1, workers_wanted=2)
    metrics.track_workers(engine)
    other.finished.inc(5)  # a second bot in the same process counts apart
    bot = SimpleNamespace(metrics=metrics, connected=True, pool=SimpleNamespace(warm=True))
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    async with (
        HealthServer(bot, port, host="127.0.0.1"),
        aiohttp.ClientSession() as session,
        session.get(url) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        values = _values(await response.text())
    assert values["nst_jobs_finished_total"] == 1 and values["nst_jobs_rejected_total"] == 2
    assert values["nst_jobs_failed_total"] == 0 and values["nst_jobs_cancelled_total"] == 0
    assert values["nst_jobs_queued"] == 4 and values["nst_jobs_running"] == 1
    assert values["nst_workers_alive"] == 1 and values["nst_workers_starting"] == 1
    assert values["nst_workers_wanted"] == 2
    assert values['nst_run_seconds_bucket{le="15.0"}'] == 1 and values["nst_run_seconds_count"] == 1
    assert values["nst_queue_wait_seconds_count"] == 0 and values["nst_steps_per_second"] == 3.5
    assert values["nst_event_loop_lag_seconds_count"] == 0
    assert values["nst_event_loop_lag_max_seconds"] == 0
    assert values["process_resident_memory_bytes"] > 0 and values["process_cpu_seconds_total"] >= 0
    assert any(name.startswith("python_info") for name in values)
    assert _values(other.render().decode())["nst_jobs_finished_total"] == 5


async def test_the_loop_lag_monitor_records_a_blocked_loop():
    import asyncio
    import time

    metrics = Metrics()
    metrics.loop_lag.start()
    await asyncio.sleep(0.12)
    time.sleep(0.3)  # something blocks the loop
    await asyncio.sleep(0.12)
    await metrics.loop_lag.stop()
    values = _values(metrics.render().decode())
    over = values["nst_event_loop_lag_seconds_count"]
    over -= values['nst_event_loop_lag_seconds_bucket{le="0.25"}']
    assert over == 1 and 0.25 <= metrics.loop_lag.worst == values["nst_event_loop_lag_max_seconds"]
