"""Recent jobs' inputs and results, kept on disk so that Stronger / Weaker / Share work later."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_JOB_ID = re.compile(r"^[0-9a-f]{8,32}$")


@dataclass(frozen=True)
class StoredJob:
    content: bytes
    style: bytes
    # The member's choices and who asked: see StylizeCog._meta.
    meta: dict[str, Any]
    result: bytes | None


class JobStore:
    """One folder per job under ``root``; all file work happens in a thread."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"bad job id {job_id!r}")
        return self.root / "jobs" / job_id

    async def save_inputs(self, job_id: str, content: bytes, style: bytes, meta: dict) -> None:
        await asyncio.to_thread(self._save_inputs, job_id, content, style, meta)

    def _save_inputs(self, job_id: str, content: bytes, style: bytes, meta: dict) -> None:
        folder = self._dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "content.bin").write_bytes(content)
        (folder / "style.bin").write_bytes(style)
        (folder / "meta.json").write_text(json.dumps(meta))

    async def save_result(self, job_id: str, png: bytes) -> None:
        await asyncio.to_thread((self._dir(job_id) / "result.png").write_bytes, png)

    async def load(self, job_id: str) -> StoredJob | None:
        return await asyncio.to_thread(self._load, job_id)

    def _load(self, job_id: str) -> StoredJob | None:
        try:
            folder = self._dir(job_id)
            result = folder / "result.png"
            return StoredJob(
                content=(folder / "content.bin").read_bytes(),
                style=(folder / "style.bin").read_bytes(),
                meta=json.loads((folder / "meta.json").read_text()),
                result=result.read_bytes() if result.exists() else None,
            )
        except (OSError, ValueError):
            return None

    async def remove(self, job_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self._dir(job_id), True)

    async def gallery_channel(self, guild_id: int) -> int | None:
        settings = await asyncio.to_thread(self._guild_settings)
        return settings.get(str(guild_id))

    async def set_gallery_channel(self, guild_id: int, channel_id: int | None) -> None:
        def update() -> None:
            settings = self._guild_settings()
            if channel_id is None:
                settings.pop(str(guild_id), None)
            else:
                settings[str(guild_id)] = channel_id
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / "galleries.json").write_text(json.dumps(settings))

        await asyncio.to_thread(update)

    def _guild_settings(self) -> dict[str, int]:
        try:
            return json.loads((self.root / "galleries.json").read_text())
        except (OSError, ValueError):
            return {}
