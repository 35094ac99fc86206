"""The bot's settings: read once from the environment into one typed, frozen, validated object."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from nst_engine.images import DEFAULT_MAX_BYTES
from nst_engine.options import MAX_SIZE, MIN_SIZE

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
BACKENDS = ("local", "ray")
# A Ray cluster's address: HOST:PORT (its GCS), ray://HOST:PORT (its Ray Client server), or auto.
_RAY_ADDRESS = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]@]+):(\d{1,5})")


# The Ray backend's elastic actors: refused with the local backend.
_ELASTIC = (
    "nst_ray_min_workers",
    "nst_ray_max_workers",
    "nst_ray_scale_up_s",
    "nst_ray_idle_s",
    "nst_ray_worker_gpus",
)


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it and says what is allowed."""


@dataclass(frozen=True)
class Settings:
    """Everything an operator sets. Each field's environment variable is its name in capitals."""

    # The bot's token from the Discord developer portal. Required; never logged.
    discord_token: str
    # A Discord-compatible REST base URL (a rate-limit proxy, or our test emulator); None: Discord.
    discord_api_base: str | None = None
    # VGG19 weights: imagenet (downloaded once and cached), random (tests only), or a file path.
    nst_weights: str = "imagenet"
    # Where the engine runs: local (worker processes on this host) or ray (actors on a Ray
    # cluster, see nst_ray_address).
    nst_backend: str = "local"
    # Engine workers. Local: processes, default 1 on CPU or one per GPU in nst_gpus. Ray: actors,
    # default one per GPU in the cluster, else one per nst_ray_cpus_per_worker CPUs.
    nst_workers: int | None = None
    # GPUs to use, comma-separated ids ("0,1"); empty: CPU workers.
    nst_gpus: tuple[str, ...] = ()
    # With nst_backend ray: the cluster: HOST:PORT of its head or auto (this host is a node), or
    # ray://HOST:PORT (Ray Client, from any host); None: a one-host Ray here, on loopback only.
    nst_ray_address: str | None = None
    # With nst_backend ray on a cluster without GPUs: CPUs each actor takes (and its threads).
    nst_ray_cpus_per_worker: int = 2
    # With nst_backend ray: the fewest actors kept (0: none while no job waits) and the most
    # (None: nst_workers, else one per GPU in the cluster, else one per nst_ray_cpus_per_worker
    # CPUs).
    nst_ray_min_workers: int = 1
    nst_ray_max_workers: int | None = None
    # Seconds a job waits, with fewer than the most actors asked for, before another is asked for.
    nst_ray_scale_up_s: float = 2.0
    # Seconds an actor may stay idle before it is ended (down to nst_ray_min_workers).
    nst_ray_idle_s: float = 300.0
    # Whether each actor takes a GPU (1) or CPUs (0); None: 1 if the cluster has a GPU when the
    # bot connects (set 1 for GPU nodes that scale from zero).
    nst_ray_worker_gpus: int | None = None
    # Cap on the output's longest side in pixels, whatever the member asks.
    nst_max_size: int = 512
    # Cap on the longest side of an Upscale (twice the picture's), which may be above
    # nst_max_size: an upscale is how a member gets a large picture.
    nst_max_upscale_size: int = 1024
    # Cap on optimisation steps of any quality preset.
    nst_max_steps: int = 1000
    # Most frames of an animated content picture (GIF, WebP, video) accepted; more is refused.
    nst_max_frames: int = 48
    # Pixels of all an animation's result frames together (frames × width × height): a clip
    # with many frames is painted smaller, so one job costs about what a 512 px picture x 12 does.
    nst_max_clip_pixels: int = 3_145_728
    # Longest video (MP4, MOV, WebM) accepted as the photo, in seconds; longer is refused.
    nst_max_video_seconds: float = 10.0
    # Largest attachment accepted, in bytes.
    nst_max_attachment_bytes: int = DEFAULT_MAX_BYTES
    # Most jobs queued or running at once, over all members.
    nst_queue_limit: int = 50
    # Most jobs one member may have queued or running at once.
    nst_user_limit: int = 2
    # A guild id to sync commands to instantly during development; None: global sync.
    nst_dev_guild: int | None = None
    # Port of the /healthz and /metrics server; 0 disables it.
    nst_http_port: int = 8080
    # A channel id used as the gallery where a server has not chosen one; None: no gallery.
    nst_gallery_channel: int | None = None
    # Memory (MB) each CPU worker may use beyond its loaded model; a picture needing more is
    # refused with "try a smaller size". 0: no cap.
    nst_worker_memory_mb: int = 0
    # A worker whose resident memory has grown by more than this percentage since its first job
    # is replaced between two jobs (TensorFlow keeps state for every picture size). 0: never.
    nst_worker_max_growth: int = 15
    # Seconds a job may run before it is stopped.
    nst_job_timeout: float = 900.0
    # Seconds one attempt at downloading an attachment may take (three attempts, with backoff).
    nst_download_timeout: float = 30.0
    # Where the job journal, inputs and results are kept.
    nst_data_dir: Path = Path("nst-data")
    # Hours finished jobs' inputs and results are kept (for Stronger / Weaker / Share).
    nst_keep_hours: float = 24.0
    # /stylize requests (and re-runs) allowed per minute per member and per server; 0: no limit.
    nst_member_rate: int = 6
    nst_guild_rate: int = 60
    # Seconds running jobs get to finish on SIGTERM before the bot exits (they are journaled).
    nst_shutdown_grace: float = 60.0
    # Number format of the engine's features: auto (bfloat16 or float16 where the hardware
    # computes them fast, else float32), or one of PRECISIONS to force it.
    nst_precision: str = "auto"

    def __repr__(self) -> str:  # keep the token out of logs and tracebacks
        shown = ", ".join(
            f"{f.name}={'***' if f.name == 'discord_token' else getattr(self, f.name)!r}"
            for f in fields(self)
        )
        return f"Settings({shown})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raises SettingsError naming the first bad one."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name.upper(), "").strip()
            return value or None

        token = get("discord_token")
        if not token:
            raise SettingsError(
                "DISCORD_TOKEN is not set: put the bot token from the Discord developer portal "
                "in the environment (see .env.example)"
            )
        values: dict[str, object] = {"discord_token": token}
        api_base = get("discord_api_base")
        if api_base is not None:
            if not api_base.startswith(("http://", "https://")):
                raise SettingsError(
                    f"DISCORD_API_BASE must be an http(s) URL such as "
                    f"https://discord.com/api/v10, not {api_base!r}"
                )
            values["discord_api_base"] = api_base.rstrip("/")
        if (weights := get("nst_weights")) is not None:
            values["nst_weights"] = weights
        if (gpus := get("nst_gpus")) is not None:
            values["nst_gpus"] = tuple(g.strip() for g in gpus.split(",") if g.strip())
        for name, low, high in (
            ("nst_workers", 1, 64),
            ("nst_max_size", MIN_SIZE, MAX_SIZE),
            ("nst_max_upscale_size", 64, MAX_SIZE),
            ("nst_max_steps", 1, 10_000),
            ("nst_max_frames", 1, 1000),
            ("nst_max_clip_pixels", 4096, 1_000_000_000),
            ("nst_max_attachment_bytes", 1024, 500 * 1024 * 1024),
            ("nst_queue_limit", 1, 100_000),
            ("nst_user_limit", 1, 1000),
            ("nst_http_port", 0, 65535),
            ("nst_member_rate", 0, 10_000),
            ("nst_guild_rate", 0, 100_000),
            ("nst_worker_memory_mb", 0, 1_000_000),
            ("nst_worker_max_growth", 0, 1000),
            ("nst_ray_cpus_per_worker", 1, 1024),
            ("nst_ray_min_workers", 0, 64),
            ("nst_ray_max_workers", 1, 64),
            ("nst_ray_worker_gpus", 0, 1),
        ):
            if (raw := get(name)) is not None:
                values[name] = _integer(name, raw, low, high)
        for name in ("nst_dev_guild", "nst_gallery_channel"):
            if (raw := get(name)) is not None:
                values[name] = _integer(name, raw, 1, 2**64 - 1, what="a Discord id (digits)")
        for name, low, high in (
            ("nst_job_timeout", 10, 86_400),
            ("nst_download_timeout", 1, 600),
            ("nst_keep_hours", 1, 24 * 365),
            ("nst_shutdown_grace", 0, 3600),
            ("nst_max_video_seconds", 1, 600),
            ("nst_ray_scale_up_s", 0, 3600),
            ("nst_ray_idle_s", 0, 86_400),
        ):
            if (raw := get(name)) is not None:
                values[name] = float(_integer(name, raw, low, high))
        if (raw := get("nst_data_dir")) is not None:
            values["nst_data_dir"] = Path(raw)
        if (raw := get("nst_precision")) is not None:
            if raw.lower() not in PRECISIONS:
                raise SettingsError(
                    f"NST_PRECISION must be {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}, "
                    f"not {raw!r}"
                )
            values["nst_precision"] = raw.lower()
        if (raw := get("nst_backend")) is not None:
            if raw.lower() not in BACKENDS:
                raise SettingsError(f"NST_BACKEND must be local or ray, not {raw!r}")
            values["nst_backend"] = raw.lower()
        if (raw := get("nst_ray_address")) is not None:
            match = _RAY_ADDRESS.fullmatch(raw)
            if raw != "auto" and (match is None or not 1 <= int(match[3]) <= 65535):
                raise SettingsError(
                    "NST_RAY_ADDRESS must be HOST:PORT (the head's port, 6379 by default), "
                    f"ray://HOST:PORT (Ray Client, port 10001 by default) or auto, not {raw!r}"
                )
            values["nst_ray_address"] = raw
        if values.get("nst_backend", "local") == "local":
            for name in _ELASTIC:
                if get(name) is not None:
                    raise SettingsError(
                        f"{name.upper()} is for NST_BACKEND=ray: a local pool keeps a fixed "
                        "number of workers (NST_WORKERS); remove it or set NST_BACKEND=ray"
                    )
        low, high = values.get("nst_ray_min_workers", 1), values.get("nst_ray_max_workers")
        if high is not None and low > high:
            raise SettingsError(
                f"NST_RAY_MIN_WORKERS ({low}) must not be above NST_RAY_MAX_WORKERS ({high})"
            )
        return cls(**values)  # type: ignore[arg-type]


def _integer(name: str, raw: str, low: int, high: int, *, what: str | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        allowed = what or f"a whole number from {low} to {high}"
        raise SettingsError(f"{name.upper()} must be {allowed}, not {raw!r}")
    return value
