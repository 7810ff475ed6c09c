"""The bad-input corpus: generated image files, each with its known verdict.

Every later stage (ingest, stylize) runs this same corpus through its pipeline, so the
verdicts here are the single source of truth: `expected` is either a reject reason code or
the exact upright (width, height) an accepted image decodes to.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scenegan.scenes import render_scene


@dataclass(frozen=True)
class Case:
    name: str  # file name to write it under (spaces and non-ASCII on purpose)
    data: bytes
    expected: str | tuple[int, int]  # reason code, or upright (width, height)


def scene_array(width: int, height: int, index: int = 0) -> np.ndarray:
    """A natural-looking (H, W, 3) uint8 test picture (JPEG-realistic, not flat)."""
    return np.asarray(render_scene(7, index, width, height))


def encode(array_or_image, fmt: str, **params) -> bytes:
    image = array_or_image
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def raw_png(pixels: np.ndarray, *, bit_depth: int, color_type: int) -> bytes:
    """A PNG written by hand: lets the corpus hold 16-bit RGB and hand-made damage."""
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = pixels.astype(dtype).reshape(height, -1).tobytes()
    stride = len(rows) // height
    filtered = b"".join(b"\x00" + rows[i * stride : (i + 1) * stride] for i in range(height))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(filtered))
        + png_chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A valid-looking PNG that declares a size but carries (almost) no pixel data: what a
    decompression bomb looks like from its header. Decoding it would fail as truncated."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def flip_byte(data: bytes, offset: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


def exif_rotated_jpeg(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored `width` x `height` whose EXIF says to rotate it for display."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(scene_array(width, height, 3), "JPEG", quality=90, exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (48, 40), colour) for colour in ((220, 20, 20), (20, 20, 220))]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def accepted_cases() -> list[Case]:
    picture = scene_array(96, 64)
    rgba = np.dstack([picture, np.full((64, 96), 128, np.uint8)])
    gray16 = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)
    rgb16 = picture.astype(np.uint16) * 257
    palette = Image.fromarray(picture).convert("P", palette=Image.Palette.ADAPTIVE)
    return [
        Case("baseline.jpg", encode(picture, "JPEG", quality=90), (96, 64)),
        Case("progressive.jpg", encode(picture, "JPEG", progressive=True), (96, 64)),
        Case("cmyk.jpg", encode(Image.fromarray(picture).convert("CMYK"), "JPEG"), (96, 64)),
        Case("gray.jpg", encode(Image.fromarray(picture).convert("L"), "JPEG"), (96, 64)),
        Case("rgb8.png", encode(picture, "PNG"), (96, 64)),
        Case("rgb16.png", raw_png(rgb16, bit_depth=16, color_type=2), (96, 64)),
        Case("gray16.png", raw_png(gray16, bit_depth=16, color_type=0), (64, 48)),
        Case("gray8.png", encode(Image.fromarray(picture).convert("L"), "PNG"), (96, 64)),
        Case("palette.png", encode(palette, "PNG"), (96, 64)),
        Case("palette-transparent.png", encode(palette, "PNG", transparency=0), (96, 64)),
        Case("alpha.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"), (96, 64)),
        Case(
            "gray-alpha.png", encode(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"), (96, 64)
        ),
        Case("photo.webp", encode(picture, "WEBP", quality=80), (96, 64)),
        Case("alpha.webp", encode(Image.fromarray(rgba, "RGBA"), "WEBP"), (96, 64)),
        Case("animated.gif", animated_gif(), (48, 40)),
        Case("photo.tiff", encode(picture, "TIFF"), (96, 64)),
        Case("photo.bmp", encode(picture, "BMP"), (96, 64)),
        Case("exif-rotated.jpg", exif_rotated_jpeg(80, 48, 6), (48, 80)),
        Case("exif-flipped.jpg", exif_rotated_jpeg(80, 48, 3), (80, 48)),
        Case("jpeg-saved-as.png", encode(picture, "JPEG"), (96, 64)),
        Case("mountain lake at dawn.jpg", encode(picture, "JPEG"), (96, 64)),
        Case("Fjällsjön ñandú 山の湖.png", encode(picture, "PNG"), (96, 64)),
        Case("exactly-min-side.png", encode(scene_array(32, 32), "PNG"), (32, 32)),
    ]


def rejected_cases() -> list[Case]:
    picture = scene_array(128, 96, 1)
    jpeg = encode(picture, "JPEG", quality=92)
    progressive = encode(picture, "JPEG", quality=92, progressive=True)
    png = encode(picture, "PNG")
    idat_at = png.index(b"IDAT")
    rng = np.random.default_rng(1234)
    return [
        Case("empty.png", b"", "not_an_image"),
        Case(
            "random-bytes.jpg", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), "not_an_image"
        ),
        Case("notes.png", b"these are my holiday notes, not a picture\n" * 20, "not_an_image"),
        Case("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated"),
        Case("truncated-header.jpg", jpeg[:100], "truncated"),
        Case("truncated-progressive.jpg", progressive[: len(progressive) // 2], "truncated"),
        Case("no-eoi.jpg", jpeg[:-2], "truncated"),
        Case("truncated.png", png[: len(png) // 2], "truncated"),
        Case("truncated-header.png", png[:20], "truncated"),
        Case("no-iend.png", png[:-12], "truncated"),
        Case("bad-crc-idat.png", flip_byte(png, idat_at + 10), "unreadable"),
        Case("bad-crc-ihdr.png", flip_byte(png, 29), "unreadable"),
        Case("truncated.gif", animated_gif()[:60], "truncated"),
        Case("truncated.bmp", encode(picture, "BMP")[:5000], "truncated"),
        Case("truncated.webp", encode(picture, "WEBP")[:400], "truncated"),
        Case("truncated.tiff", encode(picture, "TIFF")[:9000], "truncated"),
        Case("only-signature.png", b"\x89PNG\r\n\x1a\n", "truncated"),
        Case("tiny-1x1.png", encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "too_small"),
        Case("strip-4000x20.png", encode(np.full((20, 4000, 3), 90, np.uint8), "PNG"), "too_small"),
        Case("just-too-narrow.png", encode(scene_array(31, 64), "PNG"), "too_small"),
        Case("bomb-60mp.png", png_header_only(10_000, 6_000), "too_large"),
        Case("bomb-400mp.png", png_header_only(20_000, 20_000), "too_large"),
        Case("portable-pixmap.ppm", encode(picture, "PPM"), "unsupported_format"),
        Case("icon.ico", encode(picture, "ICO"), "unsupported_format"),
    ]


def all_cases() -> list[Case]:
    return accepted_cases() + rejected_cases()


def write_corpus(directory: Path) -> dict[Path, str | tuple[int, int]]:
    """Write every case under `directory`; returns path -> expected verdict."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for case in all_cases():
        path = directory / case.name
        path.write_bytes(case.data)
        written[path] = case.expected
    return written
