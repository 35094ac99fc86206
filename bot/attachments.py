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
from nst_engine.clips import (
    DEFAULT_MAX_VIDEO_SECONDS,
    VIDEO_FORMATS,
    Clip,
    decode_clip,
    is_animation_file,
    sniff_clip_type,
)
from nst_engine.errors import ImageError
from nst_engine.images import DEFAULT_MAX_PIXELS, decode_image
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
# Where videos are accepted too (a /stylize's inputs, not a saved style): probed and decoded in
# a child process (nst_engine.clips.sandbox).
VIDEO_TYPES = {"video/mp4": "mp4", "video/quicktime": "mp4", "video/webm": "webm"}
ALLOWED_WITH_VIDEOS = "PNG, JPEG, GIF, WebP, BMP or TIFF pictures, or MP4, MOV or WebM videos"
# Where attachments may be fetched from, as (scheme, host, port): Discord's own CDN, and the
# configured API base's origin (a proxy, our tests' emulator), never another port of its host.
Origin = tuple[str, str, int]
DISCORD_CDN = frozenset(
    {("https", "cdn.discordapp.com", 443), ("https", "media.discordapp.net", 443)}
)
DOWNLOAD_ATTEMPTS = 3


def _accepted(videos: bool) -> tuple[dict[str, str], str, str]:
    """The content types accepted, their list for the member, and what they are called."""
    if videos:
        return CONTENT_TYPES | VIDEO_TYPES, ALLOWED_WITH_VIDEOS, "an image or a video"
    return CONTENT_TYPES, ALLOWED, "an image"


def _content_type(attachment: discord.Attachment) -> str:
    return (attachment.content_type or "").split(";")[0].strip().lower()


def is_image(attachment: discord.Attachment, *, videos: bool = False) -> bool:
    """Whether Discord says the attachment is an image (or, with ``videos``, a video) of a kind
    we accept."""
    return _content_type(attachment) in _accepted(videos)[0]


def check_metadata(
    which: str, attachment: discord.Attachment, *, max_bytes: int, videos: bool = False
) -> None:
    """What Discord tells us about an attachment, checked before anything is downloaded."""
    content_type = _content_type(attachment)
    types, allowed, what = _accepted(videos)
    if content_type not in types:
        shown = content_type or "of unknown type"
        raise BadAttachment(which, f"it is {shown}, not {what} ({allowed} are allowed)")
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


def check_bytes(
    which: str, attachment: discord.Attachment, data: bytes, *, videos: bool = False
) -> None:
    """The first bytes must be an image (or, with ``videos``, a video) of the kind the
    attachment claims to be."""
    types, allowed, what = _accepted(videos)
    sniffed = sniff_clip_type(data[:32])
    if sniffed is None or (sniffed in VIDEO_FORMATS and not videos):
        raise BadAttachment(which, f"its contents are not {what} ({allowed} are allowed)")
    declared = types.get(_content_type(attachment))
    if declared != sniffed:
        raise BadAttachment(
            which, f"it says it is {declared or 'unknown'} but its contents are {sniffed}"
        )


async def decode_content(
    data: bytes,
    *,
    max_bytes: int,
    max_frames: int,
    max_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
    max_side: int | None = None,
    budget: PixelBudget | None = None,
) -> np.ndarray | Clip:
    """The photo, or an animated GIF or WebP's or a video's frames and timing (too many frames,
    frames too large or a video too long, refused in one line from the file's structure, before
    anything is decoded; a video in a child process, its frames shrunk to ``max_side``). With a
    ``budget``, the decode waits for its pixels (every frame's) to be free."""
    kind = sniff_clip_type(data[:64])
    limits: dict[str, object] = {"max_bytes": max_bytes, "max_frames": max_frames}
    try:
        if kind in VIDEO_FORMATS:
            # Its frames come back no larger than max_side: that is what the budget holds.
            pixels = None if max_side is None else max_frames * max_side * max_side
            limits |= {"max_seconds": max_seconds, "max_side": max_side}
            return await _video(budget, pixels, data, **limits)
        if kind in ("gif", "webp") and is_animation_file(data):
            return await _decoded(budget, data, max_frames, decode_clip, **limits)
    except ImageError as err:
        raise BadAttachment("content", str(err)) from None
    return await decode("content", data, max_bytes=max_bytes, budget=budget)


async def decode(
    which: str, data: bytes, *, max_bytes: int, budget: PixelBudget | None = None
) -> np.ndarray:
    """Decode in a thread (the event loop never waits on pixels); with a ``budget``, in its
    thread once the image's pixels (read from its header) are free in it. A video gives its
    first frame (decoded in a child process)."""
    try:
        if sniff_clip_type(data[:64]) in VIDEO_FORMATS:
            first = await _video(budget, None, data, max_bytes=max_bytes, first_only=True)
            return first.frames[0]
        return await _decoded(budget, data, 1, decode_image, max_bytes=max_bytes)
    except ImageError as err:
        raise BadAttachment(which, str(err)) from None


async def _video(budget: PixelBudget | None, pixels: int | None, data: bytes, **limits) -> Clip:
    """A video is decoded in a child process (nst_engine.clips.sandbox), which a thread of the
    default pool waits on, not the budget's one thread: a hostile file's hang, up to the
    sandbox's wall-clock limit, holds up no other member's decode. The budget holds ``pixels``
    (None: all of it) while the frames come back."""
    if budget is None:
        return await asyncio.to_thread(decode_clip, data, **limits)
    async with budget.hold(budget.capacity if pixels is None else pixels):
        return await asyncio.to_thread(decode_clip, data, **limits)


async def _decoded(budget: PixelBudget | None, data: bytes, frames: int, fn, **limits):
    if budget is None:
        return await asyncio.to_thread(fn, data, **limits)
    async with budget.decoding(data, frames=frames):
        return await budget.run(fn, data, **limits)
