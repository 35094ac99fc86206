"""Build the small image files the image tests use, and (when run) rewrite tests/nst_engine/corpus/.

The tests build their inputs in memory with these same functions; the committed corpus exists
so that the fuzz test has realistic seeds to mutate and so that inputs which once crashed the
decoder stay in the suite. Naming in corpus/: ``ok_*`` must decode, ``bad_*`` must be refused
with an ImageError, ``crash_*`` (mutations hypothesis found) may do either but nothing else.

Run from the repository root::

    python tests/nst_engine/make_corpus.py

It rewrites the ``ok_*`` and ``bad_*`` files and leaves ``crash_*`` files alone.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

CORPUS_DIR = Path(__file__).with_name("corpus")

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random RGB pixels: incompressible, so truncating the file cuts into pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gradient(width: int = 24, height: int = 16) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[np.newaxis, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, np.newaxis]
    rgb = np.stack(np.broadcast_arrays(x, y, 255 - x), axis=2).astype(np.uint8)
    return Image.fromarray(rgb)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking 1-bit greyscale PNG that claims ``width`` × ``height`` but holds a few
    hundred bytes: a decompression bomb that must be refused from its header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + bytes((width + 7) // 8)
    idat = zlib.compress(row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def tiff_declaring(width: int, height: int) -> bytes:
    """An uncompressed 8-bit grey TIFF that claims ``width`` × ``height`` but holds 16 bytes."""
    # (tag, type, value); type 3 = SHORT, 4 = LONG. Tags must be in ascending order.
    entries = [
        (256, 4, width),  # ImageWidth
        (257, 4, height),  # ImageLength
        (258, 3, 8),  # BitsPerSample
        (259, 3, 1),  # Compression: none
        (262, 3, 1),  # PhotometricInterpretation: black is zero
        (273, 4, 8),  # StripOffsets: pixel data straight after the header
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, width * height),  # StripByteCounts
    ]
    ifd_offset = 8 + 16
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + bytes(16) + ifd


def gif_frame_extent(width: int, height: int) -> bytes:
    """A 10×10 GIF whose first frame claims to be ``width`` × ``height``; Pillow grows the
    image to fit the frame, so this is a bomb that only shows once the frame is read."""
    data = encode(Image.new("P", (10, 10), 0), "GIF")
    descriptor = data.index(b"\x2c\x00\x00\x00\x00\x0a\x00\x0a\x00")
    size = struct.pack("<HH", width, height)
    return data[: descriptor + 5] + size + data[descriptor + 9 :]


def jpeg_with_orientation(orientation: int, width: int = 24, height: int = 16) -> bytes:
    """Stored image blue, with a red block in the stored top-left corner."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height // 2))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return encode(image, "JPEG", quality=95, exif=exif)


def rgba_half_transparent() -> bytes:
    """Left half fully transparent black (white once composited), right half opaque green."""
    image = Image.new("RGBA", (16, 8), (0, 0, 0, 0))
    image.paste((*GREEN, 255), (8, 0, 16, 8))
    return encode(image, "PNG")


def gif_palette_transparent() -> bytes:
    """Palette image: index 0 (green) is transparent on the left half, index 1 is red."""
    image = Image.new("P", (16, 8), 0)
    image.putpalette([*GREEN, *RED] + [0] * (254 * 3))
    image.paste(1, (8, 0, 16, 8))
    return encode(image, "GIF", transparency=0)


def gif_animated() -> bytes:
    frames = [Image.new("RGB", (12, 12), colour) for colour in (RED, BLUE, GREEN)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def webp_animated() -> bytes:
    frames = [Image.new("RGB", (12, 12), colour) for colour in (RED, BLUE)]
    return encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)


def png_16bit_grey() -> bytes:
    values = np.array([[0, 257, 32896, 65535]] * 4, dtype=np.uint16)
    return encode(Image.fromarray(values), "PNG")


def png_1bit() -> bytes:
    image = Image.new("1", (16, 16), 0)
    image.paste(1, (0, 0, 8, 16))
    return encode(image, "PNG")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


MINIMAL_SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>\n'
)

# Smallest structure readers accept: header, one empty page, xref and trailer.
MINIMAL_PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)

PLAIN_TEXT = b"Hello! This is not a picture, it is a note about a picture.\n"


def corpus_files() -> dict[str, Callable[[], bytes]]:
    """File name → builder, for every generated corpus file."""
    return {
        "ok_gradient.png": lambda: encode(gradient(), "PNG"),
        "ok_rgba_transparent.png": rgba_half_transparent,
        "ok_la.png": lambda: encode(Image.new("LA", (8, 8), (90, 128)), "PNG"),
        "ok_palette_transparent.gif": gif_palette_transparent,
        "ok_animated.gif": gif_animated,
        "ok_animated.webp": webp_animated,
        "ok_exif_rotate6.jpg": lambda: jpeg_with_orientation(6),
        "ok_cmyk.jpg": lambda: encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
        "ok_grey16.png": png_16bit_grey,
        "ok_1bit.png": png_1bit,
        "ok_grey.png": lambda: encode(Image.new("L", (8, 8), 77), "PNG"),
        "ok_1x1.png": lambda: encode(Image.new("RGB", (1, 1), RED), "PNG"),
        "ok_gradient.tiff": lambda: encode(gradient(), "TIFF"),
        "ok_float.tiff": lambda: encode(
            Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)), "TIFF"
        ),
        "ok_lab.tiff": lambda: encode(Image.new("LAB", (8, 8), (128, 200, 128)), "TIFF"),
        "ok_gradient.bmp": lambda: encode(gradient(), "BMP"),
        "ok_gradient.webp": lambda: encode(gradient(), "WEBP", lossless=True),
        "bad_empty.bin": lambda: b"",
        "bad_text.txt": lambda: PLAIN_TEXT,
        "bad_text_named.png": lambda: PLAIN_TEXT,
        "bad_drawing.svg": lambda: MINIMAL_SVG,
        "bad_document.pdf": lambda: MINIMAL_PDF,
        "bad_bomb_30000x30000.png": lambda: png_declaring(30_000, 30_000),
        "bad_bomb_30000x30000.tiff": lambda: tiff_declaring(30_000, 30_000),
        "bad_bomb_gif_frame.gif": lambda: gif_frame_extent(60_000, 60_000),
        "bad_truncated.png": lambda: truncated(encode(noise(32, 32), "PNG")),
        "bad_truncated.jpg": lambda: truncated(encode(noise(32, 32), "JPEG", quality=90)),
        "bad_aspect_2000x2.png": lambda: encode(Image.new("RGB", (2000, 2), BLUE), "PNG"),
    }


def main() -> None:
    CORPUS_DIR.mkdir(exist_ok=True)
    for old in [*CORPUS_DIR.glob("ok_*"), *CORPUS_DIR.glob("bad_*")]:
        old.unlink()
    total = 0
    for name, build in corpus_files().items():
        data = build()
        (CORPUS_DIR / name).write_bytes(data)
        total += len(data)
    print(f"wrote {len(corpus_files())} files, {total} bytes, to {CORPUS_DIR}")


if __name__ == "__main__":
    main()
