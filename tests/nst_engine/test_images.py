"""Tests for nst_engine.images: unusual-but-valid files decode, hostile ones are refused politely.

Inputs are built in memory with Pillow (see make_corpus.py, shared with the corpus script).
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nst_engine.errors import ImageError
from nst_engine.images import (
    DEFAULT_MAX_BYTES,
    MAX_ASPECT,
    MIN_SIDE,
    decode_image,
    encode_image,
    load_image,
    output_size,
    resize,
    save_image,
    sniff_image_type,
)


def _load_builders():
    # Loaded by path so the tests need neither a conftest nor tests/ being a package.
    path = Path(__file__).with_name("make_corpus.py")
    spec = importlib.util.spec_from_file_location("nst_image_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mc = _load_builders()
encode, RED, GREEN, BLUE = mc.encode, mc.RED, mc.GREEN, mc.BLUE
CORPUS = sorted(p for p in mc.CORPUS_DIR.iterdir() if p.is_file())


def assert_rgb(image: np.ndarray, height: int, width: int) -> None:
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.shape == (height, width, 3)


def close_to(pixel: np.ndarray, colour: tuple[int, int, int], tolerance: int = 8) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(colour)) <= tolerance))


def refused(data: bytes, fragment: str, **limits: int) -> str:
    with pytest.raises(ImageError) as info:
        decode_image(data, **limits)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message
    return message


# --- unusual but valid ---------------------------------------------------------------------


def test_plain_rgb_png_keeps_its_pixels() -> None:
    source = mc.gradient(24, 16)
    image = decode_image(encode(source, "PNG"))
    assert_rgb(image, 16, 24)
    np.testing.assert_array_equal(image, np.asarray(source))


def test_exif_orientation_6_is_applied() -> None:
    # Stored 24 wide × 16 high with red in the stored top-left; orientation 6 means "rotate
    # 90° clockwise to display", which carries that corner to the displayed top-right.
    image = decode_image(mc.jpeg_with_orientation(6))
    assert_rgb(image, 24, 16)
    assert close_to(image[2, -3], RED, 24)
    assert close_to(image[2, 2], BLUE, 24)
    assert close_to(image[-3, -3], BLUE, 24)
    assert close_to(image[-3, 2], BLUE, 24)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "WEBP"])
def test_exif_orientation_in_other_formats(fmt: str) -> None:
    # TIFF is the odd one: Pillow already reports the displayed size in its header.
    stored = Image.new("RGB", (24, 16), BLUE)
    stored.paste(RED, (0, 0, 12, 8))
    exif = Image.Exif()
    exif[mc.ORIENTATION] = 6
    image = decode_image(
        encode(stored, fmt, exif=exif, **({"lossless": True} if fmt == "WEBP" else {}))
    )
    assert_rgb(image, 24, 16)
    assert close_to(image[2, -3], RED, 4)
    assert close_to(image[2, 2], BLUE, 4)


def test_exif_orientation_3_is_applied() -> None:
    image = decode_image(mc.jpeg_with_orientation(3))
    assert_rgb(image, 16, 24)
    assert close_to(image[-3, -3], RED, 24)
    assert close_to(image[2, 2], BLUE, 24)


def test_transparent_rgba_becomes_white() -> None:
    image = decode_image(mc.rgba_half_transparent())
    assert_rgb(image, 8, 16)
    assert (image[:, :8] == 255).all()
    assert (image[:, 8:] == GREEN).all()


def test_half_transparent_black_becomes_mid_grey() -> None:
    data = encode(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG")
    image = decode_image(data)
    # 255 × (1 − 128/255) = 127.
    assert np.all(np.abs(image.astype(int) - 127) <= 1)


def test_grey_with_alpha_is_composited() -> None:
    image = decode_image(encode(Image.new("LA", (8, 8), (90, 128)), "PNG"))
    assert_rgb(image, 8, 8)
    # 90 × 128/255 + 255 × 127/255 = 172.2
    assert np.all(np.abs(image.astype(int) - 172) <= 1)


def test_palette_gif_with_transparency() -> None:
    image = decode_image(mc.gif_palette_transparent())
    assert_rgb(image, 8, 16)
    assert (image[:, :8] == 255).all()
    assert (image[:, 8:] == RED).all()


def test_palette_png_with_transparency() -> None:
    palette_image = Image.new("P", (8, 8), 0)
    palette_image.putpalette([*GREEN, *BLUE] + [0] * 762)
    palette_image.paste(1, (4, 0, 8, 8))
    image = decode_image(encode(palette_image, "PNG", transparency=0))
    assert (image[:, :4] == 255).all()
    assert (image[:, 4:] == BLUE).all()


def test_rgb_png_with_colour_key_transparency() -> None:
    source = Image.new("RGB", (8, 8), GREEN)
    source.paste(RED, (0, 0, 4, 8))
    image = decode_image(encode(source, "PNG", transparency=GREEN))
    assert (image[:, :4] == RED).all()
    assert (image[:, 4:] == 255).all()


def test_animated_gif_gives_first_frame() -> None:
    image = decode_image(mc.gif_animated())
    assert_rgb(image, 12, 12)
    assert (image == RED).all()


def test_animated_webp_gives_first_frame() -> None:
    image = decode_image(mc.webp_animated())
    assert_rgb(image, 12, 12)
    assert close_to(image[6, 6], RED, 2)


def test_cmyk_jpeg() -> None:
    image = decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"))
    assert_rgb(image, 16, 16)
    assert close_to(image[8, 8], RED)


def test_cmyk_tiff() -> None:
    image = decode_image(encode(Image.new("CMYK", (8, 8), (255, 0, 255, 0)), "TIFF"))
    assert (image == GREEN).all()


def test_16_bit_grey_png_is_scaled_by_257() -> None:
    image = decode_image(mc.png_16bit_grey())
    assert_rgb(image, 4, 4)
    np.testing.assert_array_equal(image[0, :, 0], [0, 1, 128, 255])
    assert (image[..., 0] == image[..., 2]).all()


def test_16_bit_big_endian_tiff() -> None:
    values = np.full((4, 4), 51400, dtype=np.uint16)  # 51400 / 257 = 200
    source = Image.frombytes("I;16B", (4, 4), values.astype(">u2").tobytes())
    assert source.mode == "I;16B"
    # Pillow writes I;16B as a big-endian 16-bit TIFF; whichever I;16 mode it reads back as,
    # the value must survive.
    image = decode_image(encode(source, "TIFF"))
    assert (image == 200).all()


def test_32_bit_integer_tiff_in_16_bit_range() -> None:
    source = Image.fromarray(np.full((4, 4), 65535, dtype=np.int32))
    assert source.mode == "I"
    assert (decode_image(encode(source, "TIFF")) == 255).all()


def test_float_tiff_in_unit_range() -> None:
    values = np.array([[0.0, 0.5, 1.0, 0.25]] * 4, dtype=np.float32)
    image = decode_image(encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(image[0, :, 1], [0, 128, 255, 64])


def test_float_tiff_out_of_range_uses_its_own_range() -> None:
    values = np.array([[-10.0, 0.0, 10.0, np.nan]] * 4, dtype=np.float32)
    image = decode_image(encode(Image.fromarray(values), "TIFF"))
    np.testing.assert_array_equal(image[0, :, 0], [0, 128, 255, 128])


def test_one_bit_png() -> None:
    image = decode_image(mc.png_1bit())
    assert_rgb(image, 16, 16)
    assert (image[:, :8] == 255).all()
    assert (image[:, 8:] == 0).all()


def test_grey_png() -> None:
    image = decode_image(encode(Image.new("L", (8, 6), 77), "PNG"))
    assert_rgb(image, 6, 8)
    assert (image == 77).all()


def test_one_pixel_png() -> None:
    image = decode_image(encode(Image.new("RGB", (1, 1), RED), "PNG"))
    assert_rgb(image, 1, 1)
    assert (image == RED).all()


@pytest.mark.parametrize(
    ("fmt", "params", "tolerance"),
    [
        ("TIFF", {}, 0),
        ("BMP", {}, 0),
        ("WEBP", {"lossless": True}, 0),
        ("WEBP", {"quality": 90}, 40),
        ("JPEG", {"quality": 95}, 40),
        ("GIF", {}, 40),
    ],
)
def test_common_formats(fmt: str, params: dict[str, object], tolerance: int) -> None:
    source = mc.gradient(24, 16)
    image = decode_image(encode(source, fmt, **params))
    assert_rgb(image, 16, 24)
    difference = np.abs(image.astype(int) - np.asarray(source).astype(int))
    assert difference.max() <= tolerance


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("YCbCr", (76, 85, 255), RED),
        ("LAB", (128, 128, 128), (119, 119, 119)),
    ],
)
def test_other_colour_spaces_in_tiff(
    mode: str, value: tuple[int, ...], expected: tuple[int, int, int]
) -> None:
    image = decode_image(encode(Image.new(mode, (8, 8), value), "TIFF"))
    assert close_to(image[4, 4], expected, 2)


def test_decoded_array_is_writable() -> None:
    image = decode_image(encode(mc.gradient(), "PNG"))
    image[0, 0] = 1  # the engine normalises in place; a read-only view would break it


def test_unreadable_exif_does_not_lose_the_photo() -> None:
    jpeg = encode(Image.new("RGB", (16, 16), RED), "JPEG", exif=b"Exif\x00\x00MM\x00*garbage")
    assert close_to(decode_image(jpeg)[8, 8], RED)


# --- hostile or unusable ------------------------------------------------------------------


def test_empty() -> None:
    refused(b"", "the file is empty")


def test_plain_text() -> None:
    refused(mc.PLAIN_TEXT, "not an image Pillow can read: it looks like text")


def test_text_with_a_png_name(tmp_path: Path) -> None:
    path = tmp_path / "holiday.png"
    path.write_bytes(mc.PLAIN_TEXT)
    with pytest.raises(ImageError, match="not an image Pillow can read: it looks like text"):
        load_image(path)


def test_svg() -> None:
    message = refused(mc.MINIMAL_SVG, "not an image Pillow can read: it looks like an SVG")
    assert "<" not in message  # never echo the file back


def test_svg_without_xml_declaration() -> None:
    refused(b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG")


def test_pdf() -> None:
    refused(mc.MINIMAL_PDF, "not an image Pillow can read: it looks like a PDF")


def test_html() -> None:
    refused(b"<!DOCTYPE html><html><body>hi</body></html>", "it looks like a web page")


def test_heic_gets_a_helpful_hint() -> None:
    refused(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), "HEIC")


def test_unknown_binary() -> None:
    refused(bytes(range(256)) * 4, "not an image Pillow can read: the format is not recognised")


def test_formats_outside_the_allow_list_are_refused() -> None:
    # Pillow reads these, but nobody sends them and the plugins see less scrutiny.
    for fmt in ("PPM", "TGA", "ICO", "PCX"):
        data = encode(Image.new("RGB", (16, 16), RED), fmt)
        refused(data, "not an image Pillow can read")


@pytest.mark.parametrize(
    "data",
    [
        encode(mc.noise(32, 32), "PNG"),
        encode(mc.noise(32, 32), "JPEG", quality=90),
        encode(mc.noise(32, 32), "GIF"),
        encode(mc.noise(32, 32), "BMP"),
        encode(mc.noise(32, 32), "TIFF"),
        encode(mc.noise(32, 32), "WEBP"),
    ],
    ids=["png", "jpeg", "gif", "bmp", "tiff", "webp"],
)
@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated(data: bytes, keep: float) -> None:
    refused(mc.truncated(data, keep), "the image file is truncated or corrupt")


def test_truncated_inside_the_header() -> None:
    refused(encode(mc.gradient(), "PNG")[:20], "the image file is truncated or corrupt")


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (7_000, 7_000),  # over our limit, under Pillow's warning threshold
        (10_000, 10_000),  # over Pillow's DecompressionBombWarning threshold
        (30_000, 30_000),  # over Pillow's DecompressionBombError threshold
    ],
)
def test_decompression_bomb_is_refused_from_the_header(width: int, height: int) -> None:
    data = mc.png_declaring(width, height)
    assert len(data) < 2000
    started = time.perf_counter()
    refused(data, f"image is {width}×{height}; the limit is 40 megapixels")
    assert time.perf_counter() - started < 0.5


def test_tiff_bomb_is_refused_from_the_header() -> None:
    refused(mc.tiff_declaring(30_000, 30_000), "image is 30000×30000; the limit is 40 megapixels")
    refused(mc.tiff_declaring(7_000, 7_000), "image is 7000×7000; the limit is 40 megapixels")


def test_gif_whose_first_frame_outgrows_the_screen() -> None:
    refused(mc.gif_frame_extent(7_000, 7_000), "image is 7000×7000; the limit is 40 megapixels")
    # Past Pillow's hard limit the size cannot be read back, but the refusal still comes.
    refused(mc.gif_frame_extent(60_000, 60_000), "the limit is 40 megapixels")


def test_tiny_declared_tiff_decodes() -> None:
    assert_rgb(decode_image(mc.tiff_declaring(4, 4)), 4, 4)


def test_pixel_limit_holds_without_pillows_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    refused(mc.png_declaring(30_000, 30_000), "image is 30000×30000; the limit is 40 megapixels")


def test_custom_pixel_limit() -> None:
    data = encode(Image.new("RGB", (64, 64)), "PNG")
    refused(data, "image is 64×64; the limit is 0.004 megapixels", max_pixels=4000)
    big = mc.png_declaring(2000, 1000)
    refused(big, "image is 2000×1000; the limit is 1.5 megapixels", max_pixels=1_500_000)
    assert_rgb(decode_image(data, max_pixels=4096), 64, 64)


def test_warning_filters_are_left_as_they_were() -> None:
    before = list(warnings.filters)
    for data in (mc.png_declaring(10_000, 10_000), encode(mc.gradient(), "PNG")):
        with contextlib.suppress(ImageError):
            decode_image(data)
    assert list(warnings.filters) == before


def test_concurrent_decodes_leave_warning_filters_alone() -> None:
    before = list(warnings.filters)
    inputs = [encode(mc.gradient(), "PNG"), mc.png_declaring(10_000, 10_000), mc.PLAIN_TEXT] * 8

    def attempt(data: bytes) -> str:
        try:
            return str(decode_image(data).shape)
        except ImageError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, inputs))
    assert results[:3] == [
        "(16, 24, 3)",
        "image is 10000×10000; the limit is 40 megapixels",
        "not an image Pillow can read: it looks like text",
    ]
    assert results == results[:3] * 8
    assert list(warnings.filters) == before


def test_over_the_byte_cap() -> None:
    data = b"\x89PNG\r\n\x1a\n" + bytes(int(31.2 * 1024 * 1024) - 8)
    refused(data, "the file is 31.2 MB; the limit is 25 MB")


def test_just_over_the_byte_cap_does_not_read_as_equal() -> None:
    refused(bytes(DEFAULT_MAX_BYTES + 1), "the file is 25.1 MB; the limit is 25 MB")


def test_small_byte_cap() -> None:
    refused(encode(mc.noise(32, 32), "PNG"), "the limit is 1000 bytes", max_bytes=1000)


@pytest.mark.parametrize(
    ("width", "height"), [(2000, 2), (2, 2000), (41, 2), (MAX_ASPECT * 3 + 1, 3)]
)
def test_extreme_aspect_ratio(width: int, height: int) -> None:
    data = encode(Image.new("RGB", (width, height), BLUE), "PNG")
    refused(
        data,
        f"image is {width}×{height}; the longest side may be at most {MAX_ASPECT} times the "
        "shortest",
    )


def test_aspect_ratio_at_the_limit_is_accepted() -> None:
    # "At most 20 times" includes exactly 20 times.
    assert_rgb(decode_image(encode(Image.new("RGB", (40, 2)), "PNG")), 2, 40)


def test_aspect_ratio_is_reported_after_orientation() -> None:
    data = mc.jpeg_with_orientation(6, width=48, height=2)
    refused(data, "image is 2×48;")


# --- load_image -----------------------------------------------------------------------------


def test_load_image(tmp_path: Path) -> None:
    path = tmp_path / "gradient.png"
    path.write_bytes(encode(mc.gradient(), "PNG"))
    assert_rgb(load_image(path), 16, 24)
    assert_rgb(load_image(str(path)), 16, 24)


def test_load_missing_file_names_only_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "nope.png")
    assert str(info.value) == "no such file: nope.png"


def test_load_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_load_refuses_big_file_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as f:
        f.truncate(30 * 1024 * 1024)  # sparse: costs no disk

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    with pytest.raises(ImageError, match="the file is 30 MB; the limit is 25 MB"):
        load_image(path)


# --- sniff_image_type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp")]
    + [("TIFF", "tiff")],
)
def test_sniff_known_formats(fmt: str, expected: str) -> None:
    data = encode(mc.gradient(), fmt)
    assert sniff_image_type(data[:32]) == expected
    assert sniff_image_type(data) == expected  # longer input is fine; only 32 bytes count


def test_sniff_big_endian_tiff() -> None:
    assert sniff_image_type(b"MM\x00*\x00\x00\x00\x08") == "tiff"


@pytest.mark.parametrize(
    "head",
    [
        b"",
        mc.PLAIN_TEXT,
        mc.MINIMAL_SVG,
        mc.MINIMAL_PDF,
        b"BMW makes cars, and this sentence is not a bitmap.",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",
        b"\x89PN",
    ],
)
def test_sniff_non_images(head: bytes) -> None:
    assert sniff_image_type(head) is None


# --- output_size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((1, 1), 512, (32, 32)),
        ((4000, 3000), 512, (512, 384)),
        ((3000, 4000), 512, (384, 512)),
        ((100, 50), 512, (100, 50)),  # never enlarged just to reach max_side
        ((512, 512), 512, (512, 512)),
        ((1000, 999), 512, (512, 511)),
        ((20, 400), 512, (32, 640)),  # the shortest-side rule wins over max_side
        ((4000, 200), 512, (640, 32)),
        ((10, 5), 64, (64, 32)),
        ((33, 33), 32, (32, 32)),
    ],
)
def test_output_size(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert output_size(*size, max_side) == expected


def test_output_size_custom_min_side() -> None:
    assert output_size(1, 2, 100, min_side=10) == (10, 20)


@pytest.mark.parametrize("args", [(0, 10, 512), (10, -1, 512), (10, 10, 16), (10, 10, 512, 0)])
def test_output_size_rejects_nonsense(args: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        output_size(*args)


@settings(max_examples=100, deadline=None, database=None)
@given(
    st.integers(1, 20_000),
    st.floats(1, MAX_ASPECT),
    st.booleans(),
    st.integers(MIN_SIDE, 4096),
)
def test_output_size_properties(short: int, aspect: float, tall: bool, max_side: int) -> None:
    long = max(short, round(short * aspect))
    width, height = (short, long) if tall else (long, short)
    new_w, new_h = output_size(width, height, max_side)
    assert min(new_w, new_h) >= MIN_SIDE
    assert max(new_w, new_h) <= max(max_side, MAX_ASPECT * MIN_SIDE + 1)
    if short * min(max_side, long) / long >= MIN_SIDE:
        assert max(new_w, new_h) == min(max_side, long)  # shrunk to fit, never enlarged
    else:
        assert min(new_w, new_h) == MIN_SIDE  # enlarged just enough
    # Aspect kept up to rounding of the shorter side.
    assert abs(new_w / new_h - width / height) <= (width / height) / min(new_w, new_h) + 1e-9


# --- resize, encode, save ---------------------------------------------------------------------


def test_resize() -> None:
    source = np.asarray(mc.gradient(24, 16))
    out = resize(source, 48, 8)
    assert_rgb(out, 8, 48)
    solid = np.full((10, 10, 3), 200, dtype=np.uint8)
    assert (resize(solid, 3, 7) == 200).all()


def test_resize_to_same_size_copies() -> None:
    source = np.asarray(mc.gradient(24, 16))
    out = resize(source, 24, 16)
    np.testing.assert_array_equal(out, source)
    assert out is not source


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), dtype=np.float32),
        np.zeros((4, 4), dtype=np.uint8),
        np.zeros((4, 4, 4), dtype=np.uint8),
        np.zeros((0, 4, 3), dtype=np.uint8),
    ],
)
def test_resize_and_encode_reject_wrong_arrays(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        resize(bad, 8, 8)
    with pytest.raises(ValueError):
        encode_image(bad)


@pytest.mark.parametrize(("fmt", "tolerance"), [("png", 0), ("jpeg", 40), ("webp", 40)])
def test_encode_round_trip(fmt: str, tolerance: int) -> None:
    source = np.asarray(mc.gradient(48, 32))
    data = encode_image(source, fmt)
    assert sniff_image_type(data) == fmt
    back = decode_image(data)
    assert back.shape == source.shape
    assert np.abs(back.astype(int) - source.astype(int)).max() <= tolerance


def test_encode_non_contiguous_array() -> None:
    source = np.asarray(mc.gradient(48, 32))[:, ::2]
    np.testing.assert_array_equal(decode_image(encode_image(source)), source)


def test_encode_quality_matters() -> None:
    source = np.asarray(mc.noise(64, 64))
    assert len(encode_image(source, "JPEG", quality=30)) < len(encode_image(source, "jpg"))


@pytest.mark.parametrize("kwargs", [{"fmt": "gif"}, {"fmt": "bmp"}, {"quality": 0}])
def test_encode_rejects_bad_options(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        encode_image(np.zeros((4, 4, 3), dtype=np.uint8), **kwargs)


def test_encode_rejects_sides_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="16383"):
        encode_image(np.zeros((1, 16_384, 3), dtype=np.uint8), "webp")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("out.png", "png"), ("OUT.PNG", "png"), ("a.jpg", "jpeg"), ("a.jpeg", "jpeg")]
    + [("a.webp", "webp")],
)
def test_save_image_by_suffix(tmp_path: Path, name: str, expected: str) -> None:
    path = tmp_path / name
    count = save_image(np.asarray(mc.gradient()), path)
    data = path.read_bytes()
    assert count == len(data) > 0
    assert sniff_image_type(data) == expected
    assert_rgb(load_image(path), 16, 24)


def test_save_image_explicit_format_wins(tmp_path: Path) -> None:
    path = tmp_path / "result.bin"
    save_image(np.asarray(mc.gradient()), path, "jpeg")
    assert sniff_image_type(path.read_bytes()) == "jpeg"


def test_save_image_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.jpeg, \.jpg, \.png, \.webp"):
        save_image(np.asarray(mc.gradient()), tmp_path / "out.gif")
    assert not (tmp_path / "out.gif").exists()


# --- corpus and fuzzing -----------------------------------------------------------------------


def test_corpus_is_small() -> None:
    assert 15 <= len(CORPUS) <= 40
    assert sum(p.stat().st_size for p in CORPUS) < 300_000


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_file(path: Path) -> None:
    data = path.read_bytes()
    if path.name.startswith("ok_"):
        image = decode_image(data)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    elif path.name.startswith("bad_"):
        with pytest.raises(ImageError):
            decode_image(data)
    else:
        check_decode_contract(data)


def check_decode_contract(data: bytes) -> None:
    """decode_image returns a uint8 H×W×3 array or raises ImageError, and nothing else."""
    # A low pixel cap keeps each example fast; it changes which branch is hit, not the contract.
    try:
        image = decode_image(data, max_pixels=1_000_000)
    except ImageError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) < 200
        return
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 1 and image.shape[1] >= 1


SEEDS = [p.read_bytes() for p in CORPUS if p.stat().st_size > 0]
MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP"]
MAGICS += [b"BM", b"II*\x00", b"MM\x00*", b"%PDF-1.4", b"<svg"]

# Headers live in the first few dozen bytes, so aim half the edits there.
_positions = st.one_of(st.integers(0, 63), st.integers(0, 1 << 20))
_edits = st.one_of(
    st.tuples(st.just("flip"), _positions, st.integers(0, 7)),
    st.tuples(st.just("truncate"), _positions),
    st.tuples(st.just("insert"), _positions, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("overwrite"), _positions, st.binary(min_size=1, max_size=8)),
)


def mutate(seed: bytes, edits: list[tuple]) -> bytes:
    data = bytearray(seed)
    for edit in edits:
        kind, position = edit[0], edit[1] % (len(data) + 1)
        if kind == "flip" and position < len(data):
            data[position] ^= 1 << edit[2]
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = edit[2]
        elif kind == "overwrite":
            data[position : position + len(edit[2])] = edit[2]
    return bytes(data)


fuzz_inputs = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGICS), st.binary(max_size=256)),
    st.builds(mutate, st.sampled_from(SEEDS), st.lists(_edits, min_size=1, max_size=4)),
)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(fuzz_inputs)
def test_fuzz_decode_never_raises_anything_but_image_error(data: bytes) -> None:
    check_decode_contract(data)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    data = encode(mc.gradient(), "PNG")
    assert_rgb(decode_image(bytearray(data)), 16, 24)
    assert_rgb(decode_image(memoryview(data)), 16, 24)


def test_decode_rejects_non_bytes_as_a_programming_error() -> None:
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


def test_pillow_limit_is_untouched() -> None:
    before = Image.MAX_IMAGE_PIXELS
    for data in (mc.png_declaring(10_000, 10_000), mc.png_declaring(30_000, 30_000)):
        with pytest.raises(ImageError):
            decode_image(data)
    assert before == Image.MAX_IMAGE_PIXELS
