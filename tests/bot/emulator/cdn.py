"""The CDN: the files members attach and the bot uploads, kept by attachment id and served under
``/cdn``."""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from . import errors
from .messages import Upload, content_type_of
from .records import SentFile
from .routing import Address
from .world import Snowflakes

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class CdnFile:
    filename: str
    data: bytes
    content_type: str


class Cdn:
    """Every attachment's bytes, and how often the bot downloaded each."""

    def __init__(self, address: Address, snowflakes: Snowflakes) -> None:
        self.address = address
        self.snowflakes = snowflakes
        self.files: dict[int, CdnFile] = {}
        self.downloads: Counter[int] = Counter()  # attachment id -> CDN downloads

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/cdn/attachments/{attachment_id}/{filename}", self.serve),
            web.get("/cdn/media/attachments/{attachment_id}/{filename}", self.serve),
        ]

    def has(self, attachment_id: int) -> bool:
        return attachment_id in self.files

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        *,
        width: int | None = None,
        height: int | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Put ``data`` on the CDN and return the attachment payload a user upload would have.

        Pass the returned dict as the value of an attachment option in ``invoke_slash``.
        """
        payload = self._put(filename, data, content_type)
        if width is not None and height is not None:
            payload["width"], payload["height"] = width, height
        if description is not None:
            payload["description"] = description
        return payload

    def url(self, attachment_id: int, filename: str) -> str:
        # Discord signs attachment URLs; the query is decoration here but keeps the shape real.
        query = f"ex={0x7FFFFFFF:x}&is={0:x}&hm={secrets.token_hex(16)}&"
        return f"{self.address.base_url}/cdn/attachments/{attachment_id}/{filename}?{query}"

    def attachments(
        self,
        body: dict[str, Any],
        uploads: list[Upload],
        existing: list[dict[str, Any]],
        *,
        ephemeral: bool,
    ) -> list[dict[str, Any]]:
        """The attachments a create or edit ends with: those in ``body["attachments"]`` (kept
        by id, or new by upload index); without that key, the existing ones plus every upload."""
        by_index = {u.index: u for u in uploads}
        kept = {a["id"]: a for a in existing}
        out: list[dict[str, Any]] = []
        used: set[int] = set()
        descriptors = body.get("attachments")
        if descriptors is None:
            out.extend(existing)
            descriptors = []
        for descriptor in descriptors:
            key = str(descriptor.get("id"))
            if key in kept:
                out.append(kept[key])
            elif key.isdigit() and int(key) in by_index:
                used.add(int(key))
                out.append(self._store_upload(by_index[int(key)], descriptor, ephemeral))
            else:
                raise errors.invalid_form(
                    {"attachments": "ATTACHMENT_NOT_FOUND: Unknown attachment"}
                )
        for upload in uploads:
            if upload.index not in used:
                out.append(self._store_upload(upload, {}, ephemeral))
        return out

    def sent_file(self, attachment: Mapping[str, Any]) -> SentFile:
        """An attachment payload's file, with its bytes."""
        entry = self.files[int(attachment["id"])]
        return SentFile(
            id=int(attachment["id"]),
            filename=attachment["filename"],
            data=entry.data,
            content_type=entry.content_type,
            description=attachment.get("description"),
        )

    async def serve(self, request: web.Request) -> web.StreamResponse:
        raw_id = request.match_info["attachment_id"]
        entry = self.files.get(int(raw_id)) if raw_id.isdigit() else None
        if entry is None or entry.filename != request.match_info["filename"]:
            return web.Response(status=404, text="This content is no longer available.")
        self.downloads[int(raw_id)] += 1
        return web.Response(body=entry.data, headers={"Content-Type": entry.content_type})

    def _store_upload(
        self, upload: Upload, descriptor: Mapping[str, Any], ephemeral: bool
    ) -> dict[str, Any]:
        filename = descriptor.get("filename") or upload.filename
        payload = self._put(filename, upload.data, upload.content_type)
        if descriptor.get("description"):
            payload["description"] = descriptor["description"]
        if ephemeral:
            payload["ephemeral"] = True
        return payload

    def _put(self, filename: str, data: bytes, declared: str | None) -> dict[str, Any]:
        """Keep a file under a new attachment id; its payload, with the sniffed content type."""
        attachment_id = self.snowflakes.next()
        content_type = content_type_of(filename, declared)
        self.files[attachment_id] = CdnFile(filename, data, content_type)
        url = self.url(attachment_id, filename)
        return {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url.replace("/cdn/attachments/", "/cdn/media/attachments/"),
            "content_type": content_type,
        }
