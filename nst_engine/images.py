"""Reading untrusted image files into arrays, and writing results back out.

Every input here may come from a stranger on the internet, so decoding is defensive: the byte
count and the pixel count are checked before any pixel is decoded, only a short list of common
raster formats is accepted, and every failure becomes an :class:`ImageError` whose message can
be shown to that stranger.

Arrays crossing this module's boundary are always ``uint8``, shape ``(height, width, 3)``, RGB,
values 0-255.
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, PngImagePlugin, UnidentifiedImageError, features

from nst_engine.errors import ImageError
from nst_engine.provenance import parse_parameters
from nst_engine.text import format_bytes

log = logging.getLogger(__name__)

# The PNG text chunk that holds how a picture was made (JSON).
PARAMETERS_KEY = "parameters"
DEFAULT_MAX_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
MIN_SIDE = 32
MAX_ASPECT = 20

RGBImage = npt.NDArray[np.uint8]

# Only the formats people actually send. Pillow can open many more (EPS runs Ghostscript, and the
# exotic plugins see far less scrutiny), so everything else is refused as "not an image".
# JPEG includes MPO, which some cameras and phones write for an ordinary-looking .jpg: Pillow's
# JPEG opener returns an MPO image for those (naming "MPO" here would raise KeyError).
_OPEN_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF") + (
    ("AVIF",) if features.check("avif") else ()
)

_ENCODE_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP"}
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
# Hard limits of the encoders; Pillow's own errors for these are cryptic.
_ENCODE_MAX_SIDE = {"PNG": 2**31 - 1, "JPEG": 65_500, "WEBP": 16_383}

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_WHITE = (255, 255, 255)

# What a file that fails to decode gets told (an animated picture's too, see nst_engine.clips).
CORRUPT_MESSAGE = "the image file is truncated or corrupt"

# warnings.catch_warnings() saves and restores the process-wide filter list (and showwarning),
# so two threads inside it at once can leave our filter installed for good. Decoding is a small
# part of a job, so serialising decodes is cheap insurance. Warnings other threads raise while
# a decode holds the lock end up in our debug log instead of stderr. Clips decode under it too.
PIL_WARNINGS_LOCK = threading.Lock()


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> RGBImage:
    """Decode an untrusted image file into an RGB array.

    Takes the first frame of animations, applies the EXIF orientation, composites any
    transparency onto white and converts every colour mode (palette, grey, 1-bit, 16-bit,
    float, CMYK, YCbCr, LAB, ...) to 8-bit RGB.

    Args:
        data: The whole file. Accepted formats: PNG, JPEG (and MPO), GIF, WebP, BMP, TIFF,
            and AVIF when Pillow was built with it.
        max_bytes: Refuse files longer than this, before looking inside.
        max_pixels: Refuse images with more pixels than this, judged from the header.

    Returns:
        ``uint8`` array of shape ``(height, width, 3)``, RGB, values 0-255; height and width
        are as displayed (after orientation), at most ``MAX_ASPECT`` times each other.

    Raises:
        ImageError: For every problem with ``data``; the message is one line fit for the
            person who sent the file. No other exception escapes for bytes input.

    Safe to call from several threads; the decodes themselves run one at a time.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    size = memoryview(data).nbytes
    if size == 0:
        raise ImageError("the file is empty")
    check_file_size(size, max_bytes)

    with PIL_WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; a warning would let the
        # bomb through. We do not rely on MAX_IMAGE_PIXELS at all (someone may have set it to
        # None); our own check in _decode is the real one, this just keeps Pillow's from being
        # a silent no-op. Other warnings ("Corrupt EXIF data" and the like) are routine for
        # hostile uploads, so they go to the debug log rather than stderr.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _decode(data, max_pixels)
        finally:
            for warning in caught:
                log.debug("Pillow warned: %s", warning.message)


def load_image(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> RGBImage:
    """Read and decode an image file; see :func:`decode_image` for what is accepted.

    The size on disk is checked before anything is read.

    Returns:
        ``uint8`` array of shape ``(height, width, 3)``, RGB, values 0-255.

    Raises:
        ImageError: The file is missing, unreadable, too big, or not a usable image.
    """
    path = Path(path)
    # The name only: a full path would tell a member of the public about our disk layout.
    name = path.name
    try:
        check_file_size(path.stat().st_size, max_bytes)
        with path.open("rb") as f:
            # Read one byte past the limit so a file that grew since stat() is still refused.
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError(f"no such file: {name}") from None
    except IsADirectoryError:
        raise ImageError(f"not a file: {name}") from None
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
        raise ImageError(f"could not read the file {name}") from None
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)


def sniff_image_type(head: bytes) -> str | None:
    """Name the image format from the first bytes of a file, without Pillow.

    Args:
        head: The start of the file; only the first 32 bytes are looked at, and 12 are
            enough for every format here.

    Returns:
        ``'png'``, ``'jpeg'``, ``'gif'``, ``'webp'``, ``'bmp'`` or ``'tiff'``, or ``None``
        when the bytes match none of them.
    """
    head = bytes(head[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    # Classic TIFF (42) and BigTIFF (43), in both byte orders.
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if head.startswith(b"BM"):
        # "BM" alone is too weak (plenty of text starts that way); when the DIB header size is
        # in view it must be one of the sizes Windows has defined.
        if len(head) < 18:
            return "bmp"
        if int.from_bytes(head[14:18], "little") in (12, 16, 40, 52, 56, 64, 108, 124):
            return "bmp"
    return None


def output_size(
    width: int, height: int, max_side: int, min_side: int = MIN_SIDE
) -> tuple[int, int]:
    """The ``(width, height)`` to work at for an input of the given size.

    The rule: shrink (never enlarge) so that the longest side is at most ``max_side``, keeping
    the aspect ratio and rounding to whole pixels; then, if the shortest side is below
    ``min_side``, enlarge so that it is exactly ``min_side``. The shortest-side rule wins, so
    the longest side may then exceed ``max_side``; for images :func:`decode_image` accepts that
    is bounded by ``MAX_ASPECT * min_side`` (640 pixels with the defaults).

    Examples: 1×1 → 32×32; 4000×3000 with max 512 → 512×384; 20×400 with max 512 → 32×640.

    Raises:
        ValueError: A size is below 1, or ``min_side`` exceeds ``max_side``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if min_side < 1 or max_side < min_side:
        raise ValueError(f"need 1 <= min_side <= max_side, got {min_side} and {max_side}")

    longest, shortest = max(width, height), min(width, height)
    scale = min(max_side, longest) / longest
    if shortest * scale < min_side:
        scale = min_side / shortest
    new_w = max(1, round(width * scale))
    new_h = max(1, round(height * scale))
    # Float rounding must not leave the shortest side a pixel short of the promise.
    if new_w <= new_h:
        new_w = max(new_w, min_side)
    else:
        new_h = max(new_h, min_side)
    return new_w, new_h


def resize(image: RGBImage, width: int, height: int) -> RGBImage:
    """Resample an RGB image to ``width`` × ``height`` with Lanczos filtering.

    Args:
        image: ``uint8`` array of shape ``(H, W, 3)``, values 0-255.

    Returns:
        A new ``uint8`` array of shape ``(height, width, 3)``, values 0-255.

    Raises:
        ValueError: ``image`` is not ``uint8`` ``(H, W, 3)``, or a target side is below 1.
    """
    check_rgb_array(image)
    if width < 1 or height < 1:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    if image.shape[1] == width and image.shape[0] == height:
        return image.copy()
    pil = Image.fromarray(np.ascontiguousarray(image))
    return np.array(pil.resize((width, height), Image.Resampling.LANCZOS))


def encode_image(
    image: RGBImage,
    fmt: str = "png",
    *,
    quality: int = 92,
    parameters: Mapping[str, object] | None = None,
) -> bytes:
    """Encode an RGB image as PNG, JPEG or WebP.

    Args:
        image: ``uint8`` array of shape ``(H, W, 3)``, values 0-255.
        fmt: ``'png'``, ``'jpeg'`` (or ``'jpg'``) or ``'webp'``, any case.
        quality: 1-100, for JPEG and WebP; PNG is lossless and ignores it.
        parameters: how the picture was made; a PNG carries them as JSON in a ``parameters``
            text chunk (`read_parameters` reads them back). Other formats ignore them.

    Returns:
        The encoded file.

    Raises:
        ValueError: Unknown format, bad ``quality``, wrong array, or a side too long for the
            format (JPEG 65,500, WebP 16,383).
    """
    pil_format = _ENCODE_FORMATS.get(fmt.lower())
    if pil_format is None:
        raise ValueError(f"unknown output format {fmt!r}; use one of 'png', 'jpeg', 'webp'")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    check_rgb_array(image)
    if max(image.shape[:2]) > _ENCODE_MAX_SIDE[pil_format]:
        raise ValueError(
            f"{pil_format} images may be at most {_ENCODE_MAX_SIDE[pil_format]} pixels on a side"
        )

    pil = Image.fromarray(np.ascontiguousarray(image))
    buffer = io.BytesIO()
    if pil_format == "PNG":
        info = None
        if parameters is not None:
            info = PngImagePlugin.PngInfo()
            info.add_text(PARAMETERS_KEY, json.dumps(dict(parameters), sort_keys=True))
        pil.save(buffer, "PNG", optimize=False, compress_level=6, pnginfo=info)
    elif pil_format == "JPEG":
        pil.save(buffer, "JPEG", quality=quality, optimize=True)
    else:
        pil.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def read_parameters(data: bytes) -> dict[str, object] | None:
    """The parameters a PNG written by `encode_image` carries, or None if it has none.

    Raises:
        ImageError: The bytes are not a PNG, or its ``parameters`` chunk is not a JSON object.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ImageError("not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as png:
            raw = png.text.get(PARAMETERS_KEY)  # type: ignore[attr-defined]
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"the PNG could not be read ({err})") from None
    return parse_parameters(raw, problem="its parameters chunk is not a JSON object")


def save_image(
    image: RGBImage,
    path: str | os.PathLike[str],
    fmt: str | None = None,
    *,
    quality: int = 92,
    parameters: Mapping[str, object] | None = None,
) -> int:
    """Encode an RGB image and write it to ``path``.

    Args:
        image: ``uint8`` array of shape ``(H, W, 3)``, values 0-255.
        path: Where to write; an existing file is replaced.
        fmt: As for :func:`encode_image`; ``None`` means infer it from the suffix
            (``.png``, ``.jpg``, ``.jpeg``, ``.webp``, any case).
        quality: As for :func:`encode_image`.
        parameters: As for :func:`encode_image` (kept in a PNG only).

    Returns:
        The number of bytes written.

    Raises:
        ValueError: The format is unknown or cannot be inferred, or the array is wrong.
    """
    path = Path(path)
    if fmt is None:
        fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            allowed = ", ".join(sorted(_SUFFIX_FORMATS))
            raise ValueError(
                f"cannot tell the image format from the suffix {path.suffix!r}; "
                f"use one of {allowed}"
            )
    data = encode_image(image, fmt, quality=quality, parameters=parameters)
    path.write_bytes(data)
    log.debug("wrote %d bytes to %s", len(data), path)
    return len(data)


# --- checks and conversions shared with nst_engine.clips (animated pictures) ---------------


def check_file_size(size: int, max_bytes: int) -> None:
    """Refuse (ImageError) a file of ``size`` bytes over ``max_bytes``, before reading it."""
    if size > max_bytes:
        raise ImageError(
            f"the file is {format_bytes(size, up=True)}; "
            f"the limit is {format_bytes(max_bytes, up=False)}"
        )


@contextmanager
def decode_failures(what: str, doing: str, corrupt: str = CORRUPT_MESSAGE) -> Iterator[None]:
    """Make any failure inside one readable ImageError: an ImageError as it is, running out of
    memory as that (``what``: "image", "video", ...), anything else as ``corrupt`` (truncated
    and corrupt files surface as OSError, SyntaxError, ValueError, EOFError, struct.error,
    zlib.error ... depending on the plugin), logged at debug level as ``doing`` failed."""
    try:
        yield
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"there is not enough memory to decode this {what}") from None
    except Exception as exc:
        log.debug("%s failed: %s: %s", doing, type(exc).__name__, exc)
        raise ImageError(corrupt) from None


def check_rgb_array(image: object) -> None:
    """Raise ValueError unless ``image`` is a ``uint8`` ``(H, W, 3)`` array with pixels."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) array, got {image.dtype} {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image has no pixels: {image.shape}")


def check_aspect(size: tuple[int, int]) -> None:
    """Refuse (ImageError) a ``(width, height)`` whose longest side is over `MAX_ASPECT`
    times the shortest."""
    width, height = size
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageError(
            f"image is {width}×{height}; "
            f"the longest side may be at most {MAX_ASPECT} times the shortest"
        )


def format_megapixels(pixels: int) -> str:
    """'40', '1.5', '0.004': the image's own size is shown exactly, so rounding is harmless."""
    megapixels = pixels / 1_000_000
    return f"{megapixels:.0f}" if megapixels >= 100 else f"{megapixels:.3g}"


def to_rgb(image: Image.Image) -> RGBImage:
    """Convert a loaded image of any mode to a ``uint8`` ``(H, W, 3)`` array."""
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(image), mode)
        return np.repeat(grey[:, :, np.newaxis], 3, axis=2)

    if mode in _ALPHA_MODES or "transparency" in image.info:
        # convert() understands palette alpha and tRNS colour keys, and premultiplied RGBa.
        rgba = image if mode == "RGBA" else _convert(image, "RGBA")
        # Pasting with the alpha as the mask does the "over white" blend in C, without the
        # float arrays a NumPy blend of a 40-megapixel image would need.
        canvas = Image.new("RGB", rgba.size, _WHITE)
        canvas.paste(rgba, (0, 0), rgba)
        return np.array(canvas)

    if mode != "RGB":
        # Covers P, L, 1, CMYK (Pillow has already undone Adobe's inverted CMYK JPEGs),
        # YCbCr, LAB, HSV and RGBX.
        image = _convert(image, "RGB")
    return np.array(image)


# --- helpers -------------------------------------------------------------------------------


def _decode(data: bytes | bytearray | memoryview, max_pixels: int) -> RGBImage:
    """decode_image after the byte checks: every Pillow call, each failure an ImageError."""
    with _open(data, max_pixels) as image:
        fmt, mode, raw_size = image.format, image.mode, image.size
        with decode_failures("image", "decode"):
            try:
                _check_pixels(raw_size, max_pixels)
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                # TIFF checks its tile size again at load time.
                raise ImageError(_too_many_pixels_message(None, max_pixels)) from None

        try:
            ImageOps.exif_transpose(image, in_place=True)
        except Exception as exc:
            # A mangled EXIF block should not cost the member an otherwise good photo.
            log.debug("ignoring unreadable EXIF orientation: %s: %s", type(exc).__name__, exc)

        check_aspect(image.size)
        with decode_failures("image", "colour conversion"):
            rgb = to_rgb(image)

    log.debug("decoded %s %s %dx%d -> %s", fmt, mode, raw_size[0], raw_size[1], rgb.shape)
    return rgb


def _open(data: bytes | bytearray | memoryview, max_pixels: int) -> ImageFile.ImageFile:
    """Identify the file and read its header, decoding no pixels."""
    try:
        return Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refused from the header before we could look; find the size ourselves so
        # the message can say what was wrong.
        raise ImageError(_too_many_pixels_message(_header_size(data), max_pixels)) from None
    except MemoryError:
        raise ImageError("there is not enough memory to decode this image") from None
    except Exception as exc:
        if not isinstance(exc, UnidentifiedImageError):
            log.debug("open failed: %s: %s", type(exc).__name__, exc)
        if sniff_image_type(bytes(data[:32])) is not None:
            raise ImageError(CORRUPT_MESSAGE) from None
        raise ImageError(f"not an image Pillow can read: {_describe_non_image(data)}") from None


def _header_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """The size declared by the header, bypassing Pillow's own pixel limit; None if unknown.

    This goes through Pillow's plugin registry, which is not a documented API, so any
    failure just means we cannot say the size.
    """
    prefix = bytes(data[:16])
    for fmt in _OPEN_FORMATS:
        try:
            factory, accept = Image.OPEN[fmt]
            verdict = True if accept is None else accept(prefix)
            # A str verdict is Pillow's "this format, but unreadable" message.
            if not verdict or isinstance(verdict, str):
                continue
            with factory(io.BytesIO(data), "") as image:
                return image.size
        except Exception:
            continue
    return None


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(CORRUPT_MESSAGE)
    if width * height > max_pixels:
        raise ImageError(_too_many_pixels_message(size, max_pixels))


def _too_many_pixels_message(size: tuple[int, int] | None, max_pixels: int) -> str:
    limit = f"the limit is {format_megapixels(max_pixels)} megapixels"
    if size is None:
        return f"the image has too many pixels; {limit}"
    return f"image is {size[0]}×{size[1]}; {limit}"


def _convert(image: Image.Image, mode: str) -> Image.Image:
    try:
        return image.convert(mode)
    except ValueError:
        # Only reachable with modes no decoder produces (such as La), but say so plainly.
        raise ImageError(f"the image uses a colour format we cannot read ({image.mode})") from None


def _scale_to_uint8(values: np.ndarray, mode: str) -> npt.NDArray[np.uint8]:
    """Map one-channel 16-bit, 32-bit integer or float pixels onto 0-255.

    The scale comes from the mode, not the picture, so a dark image stays dark: 16-bit is
    divided by 257 (65535 → 255). Mode I is what Pillow uses for 16-bit sources too, so
    values within 0-65535 are treated the same way; F is treated as 0.0-1.0. Values outside
    those nominal ranges can only be mapped by the picture's own range, min → 0, max → 255.
    """
    if mode.startswith("I;16"):
        wide = values.astype(np.uint32)
        return ((wide + 128) // 257).astype(np.uint8)

    data = values.astype(np.float64)
    if mode == "F":
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = 0.0, 1.0
    else:
        low, high = 0.0, 65535.0
    if data.size and (data.min() < low or data.max() > high):
        low, high = float(data.min()), float(data.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (data - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _describe_non_image(data: bytes | bytearray | memoryview) -> str:
    """A short, safe guess at what a non-image file is; never quotes the file itself."""
    head = bytes(data[:1024])
    if head.startswith(b"%PDF") or b"%PDF-" in head:
        return "it looks like a PDF document"
    if head.startswith(b"%!PS"):
        return "it looks like a PostScript document"
    if head.startswith(b"\x1f\x8b"):
        return "it looks like a compressed (gzip) file"
    if head.startswith(b"PK\x03\x04"):
        return "it looks like a ZIP archive or an office document"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC photos are not supported; please send a JPEG or PNG"
        return "it looks like a video or another unsupported media file"

    text = _as_text(head)
    if text is not None:
        lowered = text.lower()
        if "<svg" in lowered:
            return "it looks like an SVG drawing"
        if "<html" in lowered or "<!doctype html" in lowered:
            return "it looks like a web page"
        return "it looks like text"
    return "the format is not recognised"


def _as_text(head: bytes) -> str | None:
    """The head as text if it plausibly is text (UTF-8 or UTF-16 with a BOM), else None."""
    encoding = "utf-16" if head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    # An incremental decoder tolerates a character cut in half at the end of the slice.
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        text = decoder.decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if text and all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text):
        return text
    return None
