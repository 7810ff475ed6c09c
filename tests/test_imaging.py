"""scenegan.imaging against the generated bad-input corpus, plus its geometry and encoders."""

from __future__ import annotations

import io

import numpy as np
import pytest
from corpus import accepted_cases, encode, exif_rotated_jpeg, rejected_cases, scene_array
from PIL import Image, ImageCms, ImageFile

from scenegan import imaging
from scenegan.imaging import DecodeLimits, ImageError, decode_image, load_image


@pytest.mark.parametrize("case", accepted_cases(), ids=lambda case: case.name)
def test_accepted_images_decode_upright_to_rgb(case, tmp_path):
    path = tmp_path / case.name
    path.write_bytes(case.data)

    decoded = load_image(path)

    assert (decoded.width, decoded.height) == case.expected
    assert (decoded.orig_width, decoded.orig_height) == case.expected
    assert decoded.image.mode == "RGB"
    assert decoded.to_array().shape == (case.expected[1], case.expected[0], 3)


@pytest.mark.parametrize("case", rejected_cases(), ids=lambda case: case.name)
def test_rejected_inputs_carry_their_exact_reason(case, tmp_path):
    path = tmp_path / case.name
    path.write_bytes(case.data)

    with pytest.raises(ImageError) as raised:
        load_image(path)

    assert raised.value.reason == case.expected
    assert raised.value.detail  # a human-readable explanation, never empty
    assert raised.value.reason in imaging.REASONS


def test_format_is_decided_by_content_not_name():
    jpeg_named_png = next(c for c in accepted_cases() if c.name == "jpeg-saved-as.png")
    assert decode_image(jpeg_named_png.data).orig_format == "jpeg"


def test_bomb_is_refused_from_header_without_decoding_pixels(monkeypatch):
    def fail_load(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail_load)
    bomb = next(c for c in rejected_cases() if c.name == "bomb-60mp.png")
    with pytest.raises(ImageError) as raised:
        decode_image(bomb.data)
    assert raised.value.reason == "too_large"
    assert "60.0 megapixels" in raised.value.detail


def test_limits_are_configurable():
    data = encode(scene_array(64, 48), "PNG")
    with pytest.raises(ImageError, match="too_large"):
        decode_image(data, limits=DecodeLimits(max_pixels=64 * 48 - 1))
    assert decode_image(data, limits=DecodeLimits(max_pixels=64 * 48)).width == 64
    with pytest.raises(ImageError, match="too_small"):
        decode_image(data, limits=DecodeLimits(min_side=49))
    assert decode_image(data, limits=DecodeLimits(min_side=48)).height == 48


def test_limits_refuse_impossible_values():
    with pytest.raises(ValueError, match="hard limit"):
        DecodeLimits(max_pixels=10**12)
    with pytest.raises(ValueError, match="min_side"):
        DecodeLimits(min_side=0)


def test_exif_rotation_moves_pixels_not_just_size():
    # Orientation 6 = stored rotated 90 degrees counter-clockwise; display turns it clockwise.
    stored = np.asarray(Image.open(io.BytesIO(exif_rotated_jpeg(80, 48, 6))).convert("RGB"))
    upright = decode_image(exif_rotated_jpeg(80, 48, 6)).to_array()
    expected = np.rot90(stored, k=-1)
    assert upright.shape == expected.shape == (80, 48, 3)
    assert np.abs(upright.astype(int) - expected.astype(int)).max() == 0


def test_alpha_is_composited_over_white():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish where opaque
    rgba[:, :20, 3] = 255  # left half opaque, right half fully transparent
    pixels = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")).to_array()
    assert tuple(pixels[10, 5]) == (200, 0, 0)
    assert tuple(pixels[10, 35]) == (255, 255, 255)


def test_sixteen_bit_gray_is_scaled_not_clipped():
    from corpus import raw_png

    gray = np.array([[0, 32896, 65535] * 11] * 33, dtype=np.uint16)  # 33 x 33
    pixels = decode_image(raw_png(gray, bit_depth=16, color_type=0)).to_array()
    assert tuple(pixels[0, :3, 0]) == (0, 128, 255)


def test_gif_uses_the_first_frame():
    gif = next(c for c in accepted_cases() if c.name == "animated.gif")
    red, _green, blue = decode_image(gif.data).to_array()[20, 20]
    assert red > 150 and blue < 80  # frame 0 is red, frame 1 blue


def test_cmyk_jpeg_keeps_its_colours():
    picture = scene_array(64, 48)
    cmyk = encode(Image.fromarray(picture).convert("CMYK"), "JPEG", quality=95)
    decoded = decode_image(cmyk).to_array().astype(int)
    assert np.abs(decoded - picture.astype(int)).mean() < 6


def test_srgb_and_broken_profiles_leave_pixels_alone():
    picture = scene_array(64, 48)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = decode_image(encode(picture, "PNG")).to_array()
    tagged = decode_image(encode(picture, "PNG", icc_profile=srgb)).to_array()
    broken = decode_image(encode(picture, "PNG", icc_profile=b"not a profile")).to_array()
    assert np.array_equal(plain, tagged)
    assert np.array_equal(plain, broken)


def test_draft_decodes_large_jpeg_smaller_but_close_to_full_decode():
    big = np.asarray(Image.fromarray(scene_array(400, 300)).resize((1600, 1200)))
    data = encode(big, "JPEG", quality=90)

    drafted = decode_image(data, draft_short_side=150)
    full = decode_image(data)

    assert (drafted.orig_width, drafted.orig_height) == (1600, 1200)  # the source size
    assert 150 <= drafted.height < 1200  # DCT-scaled, still at least the promised size
    small_drafted = imaging.resize_short_side(drafted.image, 150)
    small_full = imaging.resize_short_side(full.image, 150)
    diff = np.abs(np.asarray(small_drafted, int) - np.asarray(small_full, int)).mean()
    assert diff < 3.0


def test_draft_respects_exif_orientation():
    big = np.asarray(Image.fromarray(scene_array(200, 100)).resize((1200, 600)))
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(big, "JPEG", exif=exif.tobytes())
    decoded = decode_image(data, draft_short_side=100)
    assert (decoded.orig_width, decoded.orig_height) == (600, 1200)
    assert decoded.height > decoded.width


@pytest.mark.parametrize("name", ["truncated.png", "truncated.jpg", "truncated-progressive.jpg"])
def test_truncated_images_are_refused_even_when_pillow_is_lenient(monkeypatch, name):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what some libraries do
    truncated = next(c for c in rejected_cases() if c.name == name)
    with pytest.raises(ImageError) as raised:
        decode_image(truncated.data)
    assert raised.value.reason == "truncated"


def test_trailing_bytes_after_a_complete_jpeg_are_tolerated():
    data = encode(scene_array(64, 48), "JPEG") + b"camera maker trailer" * 10
    assert decode_image(data).width == 64


def test_unknown_reason_codes_are_a_programming_error():
    with pytest.raises(KeyError):
        ImageError("bad_vibes", "no")


# --- geometry ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "short", "expected"),
    [((400, 300), 150, (200, 150)), ((300, 400), 150, (150, 200)), ((64, 64), 128, (128, 128))],
)
def test_resize_short_side(size, short, expected):
    assert imaging.resize_short_side(Image.new("RGB", size), short).size == expected


def test_resize_and_center_crop_takes_the_middle():
    pixels = np.zeros((100, 300, 3), np.uint8)
    pixels[:, 100:200] = 255  # a white middle third
    square = imaging.resize_and_center_crop(Image.fromarray(pixels), 50)
    assert square.size == (50, 50)
    assert np.asarray(square).min() > 200


def test_resize_max_side_never_enlarges():
    assert imaging.resize_max_side(Image.new("RGB", (4000, 1000)), 512).size == (512, 128)
    assert imaging.resize_max_side(Image.new("RGB", (100, 50)), 512).size == (100, 50)


@pytest.mark.parametrize("multiple", [1, 4, 8, 32])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (33, 64), (250, 187), (256, 256)])
def test_pad_to_multiple_is_exactly_undone(shape, multiple):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)

    padded, box = imaging.pad_to_multiple(pixels, multiple)

    assert padded.shape[0] % multiple == 0 and padded.shape[1] % multiple == 0
    assert padded.shape[0] - shape[0] < multiple and padded.shape[1] - shape[1] < multiple
    assert np.array_equal(imaging.crop_to_box(padded, box), pixels)
    channels_first = np.moveaxis(padded, -1, 0)[None]  # (1, C, H, W), as a generator sees it
    restored = imaging.crop_to_box(channels_first, box, channels_first=True)
    assert np.array_equal(np.moveaxis(restored[0], 0, -1), pixels)


def test_reflection_padding_mirrors_the_border():
    pixels = np.arange(3 * 5, dtype=np.uint8).reshape(3, 5)
    padded, box = imaging.pad_to_multiple(pixels, 4)  # (3, 5) -> (4, 8)
    assert padded.shape == (4, 8)
    assert (box.top, box.left) == (0, 1)
    assert padded[0, 0] == pixels[0, 1]  # reflect, not edge-repeat


def test_fit_and_pad_shrinks_then_pads():
    padded, box = imaging.fit_and_pad(Image.new("RGB", (1000, 700)), 16, max_side=300)
    assert (box.width, box.height) == (300, 210)
    assert padded.shape == (224, 304, 3)


# --- encoding ---------------------------------------------------------------------------


def test_png_round_trip_is_lossless_and_deterministic():
    image = Image.fromarray(scene_array(64, 48))
    first, second = imaging.encode_image(image, "png"), imaging.encode_image(image, "png")
    assert first == second
    assert np.array_equal(decode_image(first).to_array(), np.asarray(image))


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_lossy_quality_trades_size_for_fidelity(fmt):
    image = Image.fromarray(scene_array(128, 96))
    low, high = (imaging.encode_image(image, fmt, quality=q) for q in (20, 95))
    assert len(low) < len(high)
    errors = [
        np.abs(decode_image(data).to_array().astype(int) - np.asarray(image, int)).mean()
        for data in (low, high)
    ]
    assert errors[1] < errors[0]
    assert decode_image(high).orig_format == fmt


def test_encode_refuses_bad_arguments():
    image = Image.new("RGB", (40, 40))
    with pytest.raises(ValueError, match="quality"):
        imaging.encode_image(image, "jpeg", quality=0)
    with pytest.raises(ValueError, match="unknown encoding"):
        imaging.encode_image(image, "gif")  # type: ignore[arg-type]
