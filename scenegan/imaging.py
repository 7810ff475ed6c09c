"""Image I/O: the one place that decides what a valid scenegan image is.

Every stage (ingest, training, stylize) turns bytes into pixels through `decode_image`,
so one set of rules applies everywhere:

* Accepted formats: JPEG (baseline, progressive, CMYK), PNG (8/16-bit, grayscale, palette,
  alpha), WebP, GIF (first frame), TIFF (first page) and BMP. The format is decided by the
  bytes, never by the file name.
* The result is upright (EXIF orientation applied) 8-bit RGB.
* Alpha rule: transparent pixels are composited over opaque white, so a cut-out on a
  transparent background reads as the same cut-out on white paper. 16-bit channels are
  scaled to 8 bits (65535 -> 255), not clipped.
* Refusals raise `ImageError` whose `reason` is a stable code (see `REASONS`) and whose
  `detail` is for humans. The size limits are checked from the header, before any pixel
  is decoded, so a decompression bomb costs microseconds.

Pure functions on bytes, PIL images and numpy arrays; no file system, no Beam, no torch.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

REASONS: dict[str, str] = {
    "not_an_image": "the bytes are not an image in any format (empty, text, random data)",
    "unsupported_format": "an image format scenegan does not accept (e.g. PPM, ICO, EPS)",
    "truncated": "the file ends before the image does",
    "unreadable": "an accepted format, but the data is corrupt (bad checksum, bad structure)",
    "too_large": "more pixels than the configured limit (decompression-bomb guard)",
    "too_small": "shorter side below the configured minimum",
}
"""Stable reject reason codes of the image layer. Ingest and stylize write them verbatim."""

ACCEPTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")

# (signature, offset, Pillow format): lets us tell "a damaged PNG" from "not an image".
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"WEBP", 8, "WEBP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
    (b"BM", 0, "BMP"),
)

EncodeFormat = Literal["png", "jpeg", "webp"]
ENCODE_EXTENSIONS: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}

# We enforce our own pixel limit from the header (see `_check_size`); Pillow's warning for
# images between its soft and hard limit would only be noise on top of that.
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

_SRGB_PROFILE = ImageCms.createProfile("sRGB")


class ImageError(ValueError):
    """An input that is not a valid scenegan image. `reason` is a key of `REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown image reject reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodeLimits:
    """What an acceptable image looks like before we spend time decoding it."""

    max_pixels: int = 50_000_000
    min_side: int = 32

    def __post_init__(self) -> None:
        # Pillow refuses images above 2 * MAX_IMAGE_PIXELS while opening; a larger limit
        # here could never be honoured without changing that global.
        hard_limit = 2 * (Image.MAX_IMAGE_PIXELS or math.inf)
        if not 1 <= self.max_pixels <= hard_limit:
            raise ValueError(
                f"max_pixels={self.max_pixels} must be between 1 and Pillow's hard limit "
                f"{hard_limit:.0f}; raise PIL.Image.MAX_IMAGE_PIXELS first for larger images"
            )
        if self.min_side < 1:
            raise ValueError(f"min_side={self.min_side} must be at least 1")


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True)
class DecodedImage:
    """An accepted image: upright 8-bit RGB pixels plus what the source looked like."""

    image: Image.Image  # mode "RGB", upright; may be smaller than orig_* when drafted
    orig_width: int  # upright size of the source, before any draft or resize
    orig_height: int
    orig_format: str  # lower-case Pillow format name: "jpeg", "png", ...

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def to_array(self) -> np.ndarray:
        """Pixels as a (H, W, 3) uint8 array."""
        return np.asarray(self.image, dtype=np.uint8)


def sniff_format(data: bytes) -> str | None:
    """The accepted format whose magic number `data` starts with, or None."""
    for signature, offset, name in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            if name == "WEBP" and data[:4] != b"RIFF":
                continue
            return name
    return None


def decode_image(
    data: bytes,
    *,
    limits: DecodeLimits = DEFAULT_LIMITS,
    draft_short_side: int | None = None,
    draft_max_side: int | None = None,
) -> DecodedImage:
    """Decode `data` into an upright RGB image, or raise `ImageError` with a reason.

    `draft_short_side` is a promise that the caller will downscale to at least this short
    side: JPEGs are then decoded with DCT scaling straight to the smallest power-of-two
    reduction that is still at least that large, which skips most of the decoding work.
    `draft_max_side` is the same promise for the long side.
    """
    image = _open(data)
    orientation = _orientation(image)  # read once: EXIF parsing is not free
    width, height = image.size
    if orientation in (5, 6, 7, 8):  # stored rotated by 90 degrees
        width, height = height, width
    _check_size(width, height, limits)
    if image.format == "JPEG" and (draft_short_side or draft_max_side):
        scale = max(  # both promises kept: the larger of the two sizes wins
            draft_short_side / min(image.size) if draft_short_side else 0.0,
            draft_max_side / max(image.size) if draft_max_side else 0.0,
        )
        if scale < 1:
            requested = (math.ceil(image.width * scale), math.ceil(image.height * scale))
            image.draft("RGB", requested)
    _load(image, data)
    rgb = _to_rgb(_apply_orientation(image, orientation))
    return DecodedImage(rgb, width, height, str(image.format).lower())


def probe_image(data: bytes, *, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[int, int, str]:
    """(upright width, height, format) from the header alone, checked against `limits`;
    raises `ImageError` like `decode_image`. Damage past the header shows only on decode."""
    image = _open(data)
    width, height = image.size
    if _orientation(image) in (5, 6, 7, 8):
        width, height = height, width
    _check_size(width, height, limits)
    return width, height, str(image.format).lower()


def max_side_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size `resize_max_side` produces, without touching pixels."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_image(path: str | Path, **kwargs: object) -> DecodedImage:
    """`decode_image` on a local file's bytes (any name: spaces and non-ASCII are fine)."""
    return decode_image(Path(path).read_bytes(), **kwargs)  # type: ignore[arg-type]


def _open(data: bytes) -> Image.Image:
    """Open lazily (header only), restricted to the accepted formats."""
    if not data:
        raise ImageError("not_an_image", "the file is empty (0 bytes)")
    if sniff_format(data) == "PNG":
        _check_png_structure(data)
    try:
        return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageError("too_large", f"refused from its header: {error}") from error
    except UnidentifiedImageError:
        raise _classify_unidentified(data) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as error:
        raise _classify_failure(data, error) from error


def _classify_unidentified(data: bytes) -> ImageError:
    claimed = sniff_format(data)
    if claimed is not None:
        return ImageError(
            "truncated" if _looks_truncated(claimed, data) else "unreadable",
            f"starts like a {claimed} file ({len(data)} bytes) but its header cannot be parsed",
        )
    try:
        other = Image.open(io.BytesIO(data)).format  # names it; never decodes pixels
    except Exception:
        other = None
    if other is not None:
        return ImageError(
            "unsupported_format",
            f"format {other} is not accepted (accepted: {', '.join(ACCEPTED_FORMATS)}); "
            "convert it to PNG or JPEG first",
        )
    return ImageError("not_an_image", f"not a recognised image format ({len(data)} bytes)")


def _looks_truncated(claimed: str, data: bytes) -> bool:
    """Whether a file that claims `claimed` by its magic number stops short of its end."""
    if claimed == "JPEG":
        return not data.endswith(b"\xff\xd9")  # every complete JPEG ends with EOI
    if claimed == "GIF":
        return not data.endswith(b";")  # the GIF trailer byte
    if claimed in ("BMP", "WEBP"):  # both declare their total size in the header
        if len(data) < 8:
            return True
        declared = struct.unpack("<I", data[2:6] if claimed == "BMP" else data[4:8])[0]
        return declared + (0 if claimed == "BMP" else 8) > len(data)
    return len(data) < 16


def _classify_failure(data: bytes, error: BaseException) -> ImageError:
    message = str(error) or type(error).__name__
    lowered = message.lower()
    claimed = sniff_format(data)
    size_declared = claimed in ("WEBP", "BMP") and _looks_truncated(claimed, data)
    if (
        size_declared
        or "truncated" in lowered
        or "premature" in lowered
        or isinstance(error, EOFError)
    ):
        return ImageError("truncated", f"{message} ({len(data)} bytes)")
    return ImageError("unreadable", f"{type(error).__name__}: {message}")


def _check_png_structure(data: bytes) -> None:
    """Walk the PNG chunks: each must fit in the file and match its CRC, up to IEND.

    Pillow only checks the CRCs of header chunks; a flipped bit in pixel data would
    otherwise decode silently into a damaged image.
    """
    offset = 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunk_type = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data):
            break
        (stored_crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(data[offset + 4 : end - 4]) != stored_crc:
            name = chunk_type.decode("latin-1")
            raise ImageError("unreadable", f"PNG chunk {name!r} at byte {offset} fails its CRC")
        if chunk_type == b"IEND":
            return
        offset = end
    raise ImageError("truncated", f"PNG ends at byte {len(data)} before its IEND chunk")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)  # 0x0112 = EXIF Orientation
    except Exception:  # a broken EXIF block is not a broken image: treat as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_size(width: int, height: int, limits: DecodeLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageError(
            "too_large",
            f"{width}x{height} = {width * height / 1e6:.1f} megapixels exceeds the "
            f"{limits.max_pixels / 1e6:g} megapixel limit",
        )
    if min(width, height) < limits.min_side:
        raise ImageError(
            "too_small", f"{width}x{height}: shorter side is below the minimum {limits.min_side}"
        )


def _load(image: Image.Image, data: bytes) -> None:
    # Some libraries flip Pillow's process-wide LOAD_TRUNCATED_IMAGES on, after which a cut
    # JPEG decodes silently with a grey bottom. The image layer's verdict must not depend on
    # that: a JPEG whose last scan never reaches an EOI marker is truncated, full stop.
    if image.format == "JPEG" and not _jpeg_has_eoi(data):
        raise ImageError("truncated", f"JPEG ends without its EOI marker ({len(data)} bytes)")
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageError("too_large", str(error)) from error
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as error:
        raise _classify_failure(data, error) from error


def _jpeg_has_eoi(data: bytes) -> bool:
    if data.endswith(b"\xff\xd9"):  # the common case, without scanning megabytes
        return True
    # Trailing bytes after EOI are tolerated; an EOI inside an EXIF thumbnail is not enough,
    # so look only after the last start-of-scan marker.
    return b"\xff\xd9" in data[data.rfind(b"\xff\xda") :]


_TRANSPOSES = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _apply_orientation(image: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSES.get(orientation)
    if method is None:
        return image
    rotated = image.transpose(method)
    rotated.info = dict(image.info)
    return rotated


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode -> 8-bit RGB, following the module's alpha and 16-bit rules."""
    icc_profile = image.info.get("icc_profile")
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _wide_gray_to_l(image)
    elif "transparency" in image.info and mode in ("P", "1", "L", "RGB"):
        image = image.convert("RGBA")  # a transparent palette entry or colour key
    elif mode == "CMYK" and icc_profile:
        image = _to_srgb(image, icc_profile)
    elif mode in ("P", "1", "L", "CMYK", "YCbCr", "RGBX"):
        image = image.convert("RGB")
    elif mode not in ("RGB", "RGBA", "LA", "PA", "La", "RGBa"):
        try:
            image = image.convert("RGB")
        except ValueError as error:
            raise ImageError("unreadable", f"unsupported color mode {mode}") from error
    if image.mode != "RGB":
        image = _composite_on_white(image)
    if icc_profile and mode in ("RGB", "RGBA", "P"):
        image = _to_srgb(image, icc_profile)
    return image


def _wide_gray_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        peak = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or values.max(initial=0) > 255:
        peak = 65535.0  # 16-bit samples (Pillow opens 16-bit PNG gray as I;16 or I)
    else:
        peak = 255.0
    scaled = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L").convert("RGB")


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_srgb(image: Image.Image, icc_profile: bytes) -> Image.Image:
    """Convert from an embedded colour profile to sRGB; an unusable profile is ignored."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if image.mode != "CMYK" and "srgb" in ImageCms.getProfileDescription(source).lower():
            return image
        converted = ImageCms.profileToProfile(image, source, _SRGB_PROFILE, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        converted = None
    return converted if converted is not None else image.convert("RGB")


# --- geometry -------------------------------------------------------------------------


def resize_short_side(image: Image.Image, size: int) -> Image.Image:
    """Scale so the shorter side is `size`, keeping the aspect ratio (never 0 px)."""
    width, height = image.size
    scale = size / min(width, height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)


def center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centred `width` x `height` window; both must fit inside the image."""
    if width > image.width or height > image.height:
        raise ValueError(f"cannot crop {width}x{height} out of {image.width}x{image.height}")
    left = (image.width - width) // 2
    top = (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def resize_and_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Short side to `size`, then the centred `size` x `size` square."""
    return center_crop(resize_short_side(image, size), size, size)


def resize_max_side(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is at most `max_side`, keeping the aspect; never enlarges."""
    target = max_side_size(*image.size, max_side)
    if target == image.size:
        return image
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=3.0)


@dataclass(frozen=True)
class PadBox:
    """Where the real pixels sit inside a padded array, to undo `pad_to_multiple` exactly."""

    top: int
    left: int
    height: int
    width: int
    padded_height: int
    padded_width: int


def pad_to_multiple(
    pixels: np.ndarray, multiple: int, *, mode: Literal["reflect", "edge", "constant"] = "reflect"
) -> tuple[np.ndarray, PadBox]:
    """Pad a (H, W, C) or (H, W) array, centred, so H and W are multiples of `multiple`.

    Reflection padding is the default because convolutional generators see no artificial
    edge in it; `crop_to_box` is the exact inverse.
    """
    if multiple < 1:
        raise ValueError(f"multiple={multiple} must be at least 1")
    height, width = pixels.shape[:2]
    padded_height = -(-height // multiple) * multiple
    padded_width = -(-width // multiple) * multiple
    top = (padded_height - height) // 2
    left = (padded_width - width) // 2
    widths = [(top, padded_height - height - top), (left, padded_width - width - left)]
    widths += [(0, 0)] * (pixels.ndim - 2)
    if mode == "reflect" and min(height, width) < 2:
        mode = "edge"  # reflection needs at least two samples along each axis
    padded = np.pad(pixels, widths, mode=mode)
    return padded, PadBox(top, left, height, width, padded_height, padded_width)


def crop_to_box(pixels: np.ndarray, box: PadBox, *, channels_first: bool = False) -> np.ndarray:
    """Undo `pad_to_multiple`: (..., H, W, C) or, with channels_first, (..., C, H, W)."""
    rows = slice(box.top, box.top + box.height)
    columns = slice(box.left, box.left + box.width)
    if channels_first:
        return pixels[..., rows, columns]
    return pixels[..., rows, columns, :] if pixels.ndim >= 3 else pixels[rows, columns]


def fit_and_pad(
    image: Image.Image, multiple: int, *, max_side: int | None = None
) -> tuple[np.ndarray, PadBox]:
    """Shrink to `max_side` (if given), then reflect-pad to a multiple of `multiple`."""
    if max_side is not None:
        image = resize_max_side(image, max_side)
    return pad_to_multiple(np.asarray(image.convert("RGB")), multiple)


# --- encoding -------------------------------------------------------------------------


def encode_image(image: Image.Image, fmt: EncodeFormat = "png", *, quality: int = 90) -> bytes:
    """Encode RGB pixels. `quality` (1-100) applies to JPEG and WebP; PNG is lossless.

    Output is deterministic for a given image and Pillow version (no timestamps).
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality={quality} must be between 1 and 100")
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=6)
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
    elif fmt == "webp":
        image.save(buffer, "WEBP", quality=quality, method=4)
    else:
        raise ValueError(f"unknown encoding {fmt!r}; choose one of {sorted(ENCODE_EXTENSIONS)}")
    return buffer.getvalue()
