"""Picture makers and a socket reader shared by the tests (import as `tests.support`)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import numpy as np


def gradient_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 H×W×3 picture with some texture, deterministic per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(x / max(width, 1) * 3.1 + seed)
    g = 127 + 100 * np.cos(y / max(height, 1) * 2.7 + seed)
    b = 127 + 60 * np.sin((x + y) / 9.0)
    image = np.stack([r, g, b], axis=-1) + rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def stripes_image(width: int, height: int, period: int = 6) -> np.ndarray:
    """High-contrast diagonal stripes in two colours: an obvious 'style'."""
    y, x = np.mgrid[0:height, 0:width]
    on = ((x + y) // period) % 2 == 0
    image = np.where(on[..., None], [230, 40, 30], [20, 40, 200])
    return image.astype(np.uint8)


# How far `pan_frames` moves per frame, in pixels.
SHIFT = 2


def pan_frames(frames: int = 4, width: int = 48, height: int = 36) -> list[np.ndarray]:
    """A textured picture moving 2 px left per frame: frame t at x is frame t-1 at x + 2."""
    rng = np.random.default_rng(5)
    big = gradient_image(width + SHIFT * frames, height, seed=3).astype(np.float32)
    big += rng.normal(0, 25, big.shape[:2])[..., None]
    big = np.clip(big, 0, 255).astype(np.uint8)
    return [big[:, SHIFT * t : SHIFT * t + width].copy() for t in range(frames)]


def flicker(frames) -> float:
    """How much a clip of `pan_frames` changes from frame to frame beyond the pan: the mean
    difference of each frame and the one before it moved by SHIFT (bench.animation's measure)."""
    return float(
        np.mean(
            [
                np.abs(b[:, :-SHIFT].astype(np.float32) - a[:, SHIFT:]).mean()
                for a, b in zip(frames, frames[1:])
            ]
        )
    )


def listening_sockets(pids: list[int]) -> list[tuple[str, str]]:
    """(protocol, local address) of every TCP socket listening and every UDP socket bound by
    ``pids``, read from /proc."""
    inodes = set()
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd")
        for fd in fds.iterdir() if fds.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{protocol}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (protocol.startswith("udp") or state == "0A"):
                found.append((protocol, _address(local.split(":")[0])))
    return found


def _address(hex_ip: str) -> str:
    # /proc/net shows each 32-bit word of the address in host (little-endian) order.
    raw = b"".join(bytes.fromhex(hex_ip[i : i + 8])[::-1] for i in range(0, len(hex_ip), 8))
    address = ipaddress.ip_address(raw)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)
