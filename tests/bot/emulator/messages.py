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


# A modal (callback type 9): Discord's limits on its title, rows and text inputs.
MODAL_TITLE = 45
MODAL_ROWS = 5
INPUT_LABEL = 45
INPUT_VALUE = 4000


def validate_modal(data: dict[str, Any]) -> None:
    """Refuse a modal Discord refuses: a custom_id and a title of 1 to 45 characters, 1 to 5
    action rows of one text input each, every input with a custom_id, a label of at most 45
    characters, a style of 1 or 2, and lengths and a value within 0 to 4000."""
    problems: dict[str, str] = {}
    custom_id, title = data.get("custom_id"), data.get("title")
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        problems["custom_id"] = "BASE_TYPE_BAD_LENGTH: Must be between 1 and 100 in length."
    if not isinstance(title, str) or not 1 <= len(title) <= MODAL_TITLE:
        problems["title"] = f"BASE_TYPE_BAD_LENGTH: Must be between 1 and {MODAL_TITLE} in length."
    rows = data.get("components")
    if not isinstance(rows, list) or not 1 <= len(rows) <= MODAL_ROWS:
        problems["components"] = (
            f"BASE_TYPE_BAD_LENGTH: Must be between 1 and {MODAL_ROWS} in length."
        )
        rows = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        inputs = row.get("components") if isinstance(row, dict) else None
        if row.get("type") != 1 or not isinstance(inputs, list) or len(inputs) != 1:
            problems[f"components.{i}"] = "UI_TYPE_INVALID: an action row of one text input"
            continue
        field, where = inputs[0], f"components.{i}.components.0"
        if field.get("type") != 4:
            problems[f"{where}.type"] = "UI_TYPE_INVALID: Value must be one of (4,)."
            continue
        name = field.get("custom_id")
        if not isinstance(name, str) or not name or name in seen:
            problems[f"{where}.custom_id"] = "COMPONENT_CUSTOM_ID_DUPLICATED: missing or repeated"
        seen.add(name)
        label = field.get("label")
        if not isinstance(label, str) or not 1 <= len(label) <= INPUT_LABEL:
            problems[f"{where}.label"] = (
                f"BASE_TYPE_BAD_LENGTH: Must be between 1 and {INPUT_LABEL} in length."
            )
        if field.get("style") not in (1, 2):
            problems[f"{where}.style"] = "BASE_TYPE_CHOICES: Value must be one of (1, 2)."
        value = field.get("value") or ""
        if len(value) > min(INPUT_VALUE, field.get("max_length") or INPUT_VALUE):
            problems[f"{where}.value"] = "BASE_TYPE_MAX_LENGTH: longer than the input's max_length"
    if problems:
        raise errors.invalid_form(problems)
