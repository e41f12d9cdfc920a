"""User and catalogue images: loaded upright in RGB, or refused with a one-line reason."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mars_core.infra.errors import BadImageError, ImageTooLargeError, UserInputError
from mars_core.vision.images import check_image, load_image, verify_image


def _png(path: Path, size: tuple[int, int], mode: str = "RGBA") -> Path:
    Image.new(mode, size, (10, 200, 30, 255) if mode == "RGBA" else 0).save(path)
    return path


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header announces `width` x `height`: a decompression bomb's shape."""
    data = bytearray(_png(path, (8, 8)).read_bytes())
    ihdr = bytearray(data[16:29])  # 13 bytes after the signature, length and b"IHDR"
    ihdr[0:8] = struct.pack(">II", width, height)
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_loads_rgb_with_its_size(tmp_path):
    image = load_image(_png(tmp_path / "room.png", (120, 90)), max_pixels=20_000)
    assert image.mode == "RGB" and image.size == (120, 90)


def test_upright_from_exif_orientation(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    assert load_image(path, max_pixels=10_000).size == (20, 40)


def _one_line_error(error_type, path: Path, max_pixels: int) -> str:
    with pytest.raises(error_type) as info:
        load_image(path, max_pixels=max_pixels)
    assert isinstance(info.value, UserInputError)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_a_file_that_is_not_an_image(tmp_path):
    path = tmp_path / "room.jpg"
    path.write_text("this is a shopping list, not a photo")
    message = _one_line_error(BadImageError, path, 1_000_000)
    assert "is not an image" in message and "JPEG, PNG" in message


def test_a_missing_file(tmp_path):
    message = _one_line_error(BadImageError, tmp_path / "nope.png", 1_000_000)
    assert "does not exist" in message


def test_a_truncated_image(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.effect_noise((200, 200), 50).convert("RGB").save(path, quality=95)
    path.write_bytes(path.read_bytes()[:600])
    message = _one_line_error(BadImageError, path, 1_000_000)
    assert "cannot be decoded" in message


def test_an_image_over_the_limit(tmp_path):
    path = _png(tmp_path / "big.png", (200, 200))
    message = _one_line_error(ImageTooLargeError, path, 10_000)
    assert "200x200 = 40,000 pixels" in message and "at most 10,000" in message


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [
        (30_000, 30_000, 50_000_000),  # over our limit and over PIL's hard bomb limit
        (30_000, 30_000, 10**12),  # our limit set absurdly high: PIL's DecompressionBombError
        (10_000, 10_000, 10**12),  # between PIL's warning and error levels: still refused
    ],
)
def test_decompression_bombs_are_refused_from_the_header(tmp_path, width, height, max_pixels):
    path = _png_claiming(tmp_path / "bomb.png", width, height)
    assert path.stat().st_size < 1_000  # tiny file, gigapixel promise
    message = _one_line_error(ImageTooLargeError, path, max_pixels)
    assert "pixels" in message


def test_verify_checks_the_whole_file_and_returns_the_header_size(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.effect_noise((200, 100), 50).convert("RGB").save(path, quality=95)
    assert verify_image(path, 1_000_000, data=path.read_bytes(), draft_px=64) == (200, 100)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(BadImageError, match="cannot be decoded"):
        verify_image(path, 1_000_000, data=path.read_bytes(), draft_px=64)
    with pytest.raises(ImageTooLargeError, match="20,000 pixels"):
        verify_image(_png(tmp_path / "big.png", (200, 100)), 10_000)


def test_the_cheap_check_reads_the_header_only(tmp_path):
    """`check_image` (a command's check before the models load) refuses what the header
    shows (no file, not an image, over the limit) and leaves the pixels to `load_image`."""
    text = tmp_path / "room.jpg"
    text.write_text("this is a shopping list, not a photo")
    with pytest.raises(BadImageError, match="is not an image"):
        check_image(text, 1_000_000)
    with pytest.raises(BadImageError, match="does not exist"):
        check_image(tmp_path / "nope.png", 1_000_000)
    with pytest.raises(ImageTooLargeError, match="200x200"):
        check_image(_png(tmp_path / "big.png", (200, 200)), 10_000)
    cut = tmp_path / "cut.jpg"
    Image.effect_noise((200, 200), 50).convert("RGB").save(cut, quality=95)
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the scan cut short, the header whole
    check_image(cut, 1_000_000)  # its header is fine: decoding it is the search's job
    with pytest.raises(BadImageError, match="cannot be decoded"):
        load_image(cut, 1_000_000)
