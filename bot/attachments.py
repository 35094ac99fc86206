"""Checking, fetching and decoding a member's attachments (a /stylize's inputs, a style to save),
before anything is queued or saved."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import discord
import numpy as np
import yarl

from bot.decoding import PixelBudget
from bot.errors import BadAttachment
from nst_engine.clips import Clip, decode_clip, is_animation_file
from nst_engine.errors import ImageError
from nst_engine.images import DEFAULT_MAX_PIXELS, decode_image, sniff_image_type
from nst_engine.text import format_bytes

log = logging.getLogger(__name__)

# Declared content types we accept, and the formats their bytes may sniff as.
CONTENT_TYPES = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tiff",
}
ALLOWED = "PNG, JPEG, GIF, WebP, BMP or TIFF"
# Where attachments may be fetched from, as (scheme, host, port): Discord's own CDN, and the
# configured API base's origin (a proxy, our tests' emulator), never another port of its host.
Origin = tuple[str, str, int]
DISCORD_CDN = frozenset(
    {("https", "cdn.discordapp.com", 443), ("https", "media.discordapp.net", 443)}
)
DOWNLOAD_ATTEMPTS = 3


def is_image(attachment: discord.Attachment) -> bool:
    """Whether Discord says the attachment is an image of a kind we accept."""
    return (attachment.content_type or "").split(";")[0].strip().lower() in CONTENT_TYPES


def check_metadata(which: str, attachment: discord.Attachment, *, max_bytes: int) -> None:
    """What Discord tells us about an attachment, checked before anything is downloaded."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        shown = content_type or "of unknown type"
        raise BadAttachment(which, f"it is {shown}, not an image ({ALLOWED} are allowed)")
    if attachment.size > max_bytes:
        size, limit = format_bytes(attachment.size), format_bytes(max_bytes, up=False)
        raise BadAttachment(which, f"it is {size}; the limit is {limit}")
    if attachment.width and attachment.height:
        pixels = attachment.width * attachment.height
        if pixels > DEFAULT_MAX_PIXELS:
            raise BadAttachment(
                which,
                f"it is {attachment.width}×{attachment.height}; the limit is "
                f"{DEFAULT_MAX_PIXELS // 1_000_000} megapixels",
            )


def allowed_hosts(api_base: str | None) -> frozenset[Origin]:
    """The origins attachments may come from: Discord's CDN and ``api_base``'s."""
    origins = set(DISCORD_CDN)
    if api_base and (origin := _origin(api_base)) is not None:
        origins.add(origin)
    return frozenset(origins)


def _origin(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL with no user or password in it; None otherwise."""
    try:
        parsed = yarl.URL(url)
    except (TypeError, ValueError):
        return None
    if parsed.scheme not in ("https", "http") or not parsed.host or parsed.port is None:
        return None
    if parsed.user is not None or parsed.password is not None:
        return None  # "https://cdn.discordapp.com@elsewhere/" is a URL of elsewhere
    return parsed.scheme, parsed.host.lower().rstrip("."), parsed.port


async def fetch(
    session: aiohttp.ClientSession,
    which: str,
    attachment: discord.Attachment,
    *,
    max_bytes: int,
    hosts: frozenset[Origin],
    timeout: float = 30.0,
) -> bytes:
    """The attachment's bytes from Discord's CDN, capped while streaming, retried with backoff;
    each attempt may take ``timeout`` seconds."""
    url = attachment.url
    if _origin(url) not in hosts:
        # Never fetch a URL a payload names on some other host or port.
        raise BadAttachment(which, "it is not hosted on Discord's CDN")
    delay = 0.5
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            return await _download(session, url, max_bytes=max_bytes, which=which, timeout=timeout)
        except BadAttachment:
            raise
        except (TimeoutError, aiohttp.ClientError) as err:
            log.warning(
                "download of %s attachment failed (attempt %d): %s",
                which,
                attempt,
                type(err).__name__,
            )
            if attempt == DOWNLOAD_ATTEMPTS:
                raise BadAttachment(
                    which, "Discord's CDN did not deliver it; please try again"
                ) from None
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


async def _download(
    session: aiohttp.ClientSession, url: str, *, max_bytes: int, which: str, timeout: float
) -> bytes:
    limit = aiohttp.ClientTimeout(total=timeout)
    async with session.get(url, timeout=limit, allow_redirects=False) as response:
        if response.status >= 500 or response.status == 429:
            raise aiohttp.ClientResponseError(response.request_info, (), status=response.status)
        if response.status != 200:
            raise BadAttachment(which, f"Discord's CDN answered {response.status}")
        chunks = []
        received = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            received += len(chunk)
            if received > max_bytes:
                raise BadAttachment(
                    which, f"it is over the limit of {format_bytes(max_bytes, up=False)}"
                )
            chunks.append(chunk)
    return b"".join(chunks)


def check_bytes(which: str, attachment: discord.Attachment, data: bytes) -> None:
    """The first bytes must be an image of the kind the attachment claims to be."""
    sniffed = sniff_image_type(data[:32])
    if sniffed is None:
        raise BadAttachment(which, f"its contents are not an image ({ALLOWED} are allowed)")
    declared = CONTENT_TYPES.get((attachment.content_type or "").split(";")[0].strip().lower())
    if declared != sniffed:
        raise BadAttachment(
            which, f"it says it is {declared or 'unknown'} but its contents are {sniffed}"
        )


async def decode_content(
    data: bytes, *, max_bytes: int, max_frames: int, budget: PixelBudget | None = None
) -> np.ndarray | Clip:
    """The photo, or an animated GIF or WebP's frames and timing (too many frames, or frames
    too large, refused in one line from the file's structure, before anything is decoded).
    With a ``budget``, the decode waits for its pixels (every frame's) to be free."""
    if sniff_image_type(data[:64]) in ("gif", "webp") and is_animation_file(data):
        try:
            return await _decoded(
                budget, data, max_frames, decode_clip, max_bytes=max_bytes, max_frames=max_frames
            )
        except ImageError as err:
            raise BadAttachment("content", str(err)) from None
    return await decode("content", data, max_bytes=max_bytes, budget=budget)


async def decode(
    which: str, data: bytes, *, max_bytes: int, budget: PixelBudget | None = None
) -> np.ndarray:
    """Decode in a thread (the event loop never waits on pixels); with a ``budget``, in its
    thread once the image's pixels (read from its header) are free in it."""
    try:
        return await _decoded(budget, data, 1, decode_image, max_bytes=max_bytes)
    except ImageError as err:
        raise BadAttachment(which, str(err)) from None


async def _decoded(budget: PixelBudget | None, data: bytes, frames: int, fn, **limits):
    if budget is None:
        return await asyncio.to_thread(fn, data, **limits)
    async with budget.decoding(data, frames=frames):
        return await budget.run(fn, data, **limits)
