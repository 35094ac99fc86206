"""Reading message bodies (JSON or multipart) and Discord's limits on what a message may hold."""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

from . import errors
from .routing import RECORD

log = logging.getLogger(__name__)

COMPONENTS_V2 = 1 << 15
# Flags a bot may set itself when creating or editing a message.
SETTABLE_FLAGS = (1 << 2) | (1 << 6) | (1 << 12) | COMPONENTS_V2  # suppress embeds, ephemeral,
# suppress notifications, components v2

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
MAX_EMBED_TOTAL = 6000
EMBED_LIMITS = {"title": 256, "description": 4096}
MAX_FIELDS = 25


@dataclass(frozen=True)
class Upload:
    """One ``files[n]`` part of a multipart body."""

    index: int
    filename: str
    data: bytes
    content_type: str | None


async def read_body(request: web.Request) -> tuple[Any, list[Upload]]:
    """The JSON body (``payload_json`` for multipart) and the uploaded files."""
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        uploads: list[Upload] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise errors.DiscordError(400, 50035, "Invalid Form Body")
            name = part.name or ""
            if name == "payload_json":
                payload = json.loads(await part.text())
            elif name.startswith("files[") and name.endswith("]"):
                data = bytes(await part.read(decode=False))
                uploads.append(
                    Upload(
                        index=int(name[6:-1]),
                        filename=part.filename or f"file{name[6:-1]}",
                        data=data,
                        content_type=part.headers.get("Content-Type"),
                    )
                )
        return payload, uploads
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise errors.DiscordError(400, 50109, "The request body contains invalid JSON.") from None


async def recorded_body(request: web.Request) -> tuple[Any, list[Upload]]:
    """`read_body`, noted on the request's record."""
    body, uploads = await read_body(request)
    record = request[RECORD]
    record.body, record.files = body, len(uploads)
    return body, uploads


async def message_body(
    request: web.Request, upload_limit: int
) -> tuple[dict[str, Any], list[Upload]]:
    """A message's body and files, refused as Discord refuses them (see `validate`)."""
    body, uploads = await recorded_body(request)
    body = body if isinstance(body, dict) else {}
    validate(body, upload_count=len(uploads))
    check_sizes(uploads, upload_limit)
    return body, uploads


def content_type_of(filename: str, declared: str | None) -> str:
    # discord.py labels every upload application/octet-stream; Discord sniffs the real type.
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def validate(payload: dict[str, Any], *, upload_count: int) -> None:
    """Refuse what Discord refuses: over-long content and embeds, too many files or components,
    duplicate custom_ids."""
    problems: dict[str, str] = {}
    content = payload.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        problems["content"] = f"BASE_TYPE_MAX_LENGTH: Must be {MAX_CONTENT} or fewer in length."
    embeds = payload.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        problems["embeds"] = f"BASE_TYPE_MAX_LENGTH: Must be {MAX_EMBEDS} or fewer in length."
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            text = embed.get(key) or ""
            total += len(text)
            if len(text) > limit:
                problems[f"embeds.{i}.{key}"] = (
                    f"BASE_TYPE_MAX_LENGTH: Must be {limit} or fewer in length."
                )
        fields = embed.get("fields") or []
        if len(fields) > MAX_FIELDS:
            problems[f"embeds.{i}.fields"] = (
                f"BASE_TYPE_MAX_LENGTH: Must be {MAX_FIELDS} or fewer in length."
            )
        for j, fld in enumerate(fields):
            total += len(fld.get("name", "")) + len(fld.get("value", ""))
            if len(fld.get("value", "")) > 1024:
                problems[f"embeds.{i}.fields.{j}.value"] = (
                    "BASE_TYPE_MAX_LENGTH: Must be 1024 or fewer in length."
                )
        total += len((embed.get("footer") or {}).get("text", ""))
        total += len((embed.get("author") or {}).get("name", ""))
    if total > MAX_EMBED_TOTAL:
        problems["embeds"] = "MAX_EMBED_SIZE_EXCEEDED: Embed size exceeds maximum size of 6000"
    custom_ids: set[str] = set()
    for path, component in _walk(payload.get("components") or [], "components"):
        custom_id = component.get("custom_id")
        if custom_id is None:
            continue
        if len(custom_id) > 100:
            problems[f"{path}.custom_id"] = "BASE_TYPE_MAX_LENGTH: Must be 100 or fewer in length."
        if custom_id in custom_ids:
            problems[f"{path}.custom_id"] = (
                "COMPONENT_CUSTOM_ID_DUPLICATED: Component custom id cannot be duplicated"
            )
        custom_ids.add(custom_id)
    if not payload.get("flags", 0) & COMPONENTS_V2 and len(payload.get("components") or []) > 5:
        problems["components"] = "BASE_TYPE_MAX_LENGTH: Must be 5 or fewer in length."
    if upload_count > MAX_FILES:
        problems["files"] = f"BASE_TYPE_MAX_LENGTH: Must be {MAX_FILES} or fewer in length."
    if problems:
        raise errors.invalid_form(problems)


def check_sizes(uploads: list[Upload], upload_limit: int) -> None:
    if any(len(u.data) > upload_limit for u in uploads):
        raise errors.too_large()


def _walk(components: list[dict[str, Any]], path: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for i, component in enumerate(components):
        here = f"{path}.{i}"
        found.append((here, component))
        found += _walk(component.get("components") or [], f"{here}.components")
        if "accessory" in component:
            found.append((f"{here}.accessory", component["accessory"]))
    return found
