"""Attachments are fetched only from Discord's CDN or the configured API base's exact origin."""

from __future__ import annotations

from contextlib import asynccontextmanager
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

from bot.attachments import allowed_hosts, fetch
from bot.errors import BadAttachment

REFUSED = "The content attachment won't do: it is not hosted on Discord's CDN."


@asynccontextmanager
async def _file_server():
    """A loopback server that answers any path with a few bytes and counts what it served."""
    served: list[str] = []

    async def serve(request: web.Request) -> web.Response:
        served.append(request.path)
        return web.Response(body=b"\x89PNG fake bytes")

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield runner.addresses[0][1], served
    finally:
        await runner.cleanup()


async def _fetch(session: aiohttp.ClientSession, url: str, hosts) -> bytes:
    attachment = SimpleNamespace(url=url)
    return await fetch(session, "content", attachment, max_bytes=1 << 20, hosts=hosts, timeout=5)


async def test_only_the_api_bases_scheme_host_and_port_are_fetched():
    async with _file_server() as (port, served), _file_server() as (other, elsewhere):
        hosts = allowed_hosts(f"http://127.0.0.1:{port}/api/v10")
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/attachments/1/2/photo.png"
            assert await _fetch(session, url, hosts) == b"\x89PNG fake bytes"
            for url in (
                f"http://127.0.0.1:{other}/attachments/1/2/photo.png",  # same host, other port
                f"http://cdn.discordapp.com@127.0.0.1:{other}/attachments/photo.png",
                f"http://cdn.discordapp.com@127.0.0.1:{port}/attachments/photo.png",
                f"https://127.0.0.1:{port}/attachments/photo.png",  # other scheme
                f"http://localhost:{port}/attachments/photo.png",  # other name
                f"ftp://127.0.0.1:{port}/attachments/photo.png",
                "http://[::1/photo.png",  # not a URL at all
            ):
                with pytest.raises(BadAttachment) as info:
                    await _fetch(session, url, hosts)
                assert str(info.value) == REFUSED, url
    assert served == ["/attachments/1/2/photo.png"] and elsewhere == []


@pytest.mark.parametrize(
    "url",
    [
        "http://cdn.discordapp.com/attachments/1/2/photo.png",  # Discord's CDN is https only
        "https://cdn.discordapp.com:8443/attachments/1/2/photo.png",
        "https://cdn.discordapp.com.evil.example/attachments/1/2/photo.png",
        "https://cdn.discordapp.com@evil.example/attachments/1/2/photo.png",
        "https://user:pass@media.discordapp.net/attachments/1/2/photo.png",
    ],
)
async def test_urls_that_only_look_like_discords_cdn_are_refused_before_any_request(url):
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BadAttachment) as info:
            await _fetch(session, url, allowed_hosts(None))
    assert str(info.value) == REFUSED


def test_discords_cdn_is_allowed_on_https_and_the_api_base_origin_with_its_port():
    assert allowed_hosts(None) == {
        ("https", "cdn.discordapp.com", 443),
        ("https", "media.discordapp.net", 443),
    }
    assert ("http", "10.0.0.5", 8080) in allowed_hosts("http://10.0.0.5:8080/api/v10")
    assert ("https", "proxy.example", 443) in allowed_hosts("https://Proxy.Example/api/v10")


@pytest.mark.asyncio(loop_scope="module")
async def test_stylize_with_an_attachment_on_another_port_is_refused_in_one_line(world):
    emu = world.emu
    async with _file_server() as (other, served):
        photo = world.photo()
        base, path = emu.base_url, photo["url"][len(emu.base_url) :]
        for url in (
            f"http://127.0.0.1:{other}{path}",  # the emulator's host, another port
            base.replace("http://", "http://cdn.discordapp.com@") + path,  # the real file
        ):
            forged = dict(photo, url=url, proxy_url=url)
            inter = await emu.invoke_slash(
                "stylize", {"content": forged, "style": world.painting()}
            )
            await inter.wait_for(lambda rec: any(REFUSED in m.content for m in rec.messages))
            assert next(m for m in inter.messages if REFUSED in m.content).ephemeral
    assert served == []
