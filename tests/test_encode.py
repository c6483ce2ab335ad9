"""docs/SPEC.md 5: PNG/BMP are lossless, JPEG quality and alpha, argument errors; both backends."""

import io
import warnings

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm


def decode(b):
    with Image.open(io.BytesIO(b)) as im:
        return im.format, im.mode, np.asarray(im)


@pytest.mark.parametrize("file_type,fmt", [("png", "PNG"), ("bmp", "BMP")])
@pytest.mark.parametrize("c,mode", [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_lossless_round_trip(device, file_type, fmt, c, mode):
    x = np.random.default_rng(c).integers(0, 256, (3, 7, 9, c), dtype=np.uint8)
    out = gm.encode(x, file_type=file_type, device=device)
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(b, bytes) for b in out)
    for b, im in zip(out, x):
        f, m, a = decode(b)
        assert (f, m) == (fmt, mode)
        np.testing.assert_array_equal(a.reshape(im.shape), im)


def test_list_of_differing_sizes(device):
    imgs = [np.full((3, 4, 3), 9, np.uint8), np.full((5, 2, 1), 200, np.uint8)]
    out = gm.encode(imgs, device=device)
    np.testing.assert_array_equal(decode(out[1])[2], np.full((5, 2), 200, np.uint8))
    assert decode(out[0])[2].shape == (3, 4, 3)


@pytest.mark.parametrize("mode,shape", [("L", (4, 5)), ("RGB", (4, 5, 3)), ("RGBA", (4, 5, 4))])
def test_pil_images_are_encoded_as_they_are(device, mode, shape):
    """docs/SPEC.md 1: PIL images are taken as they are, alone or in a list with arrays."""
    a = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    im = Image.fromarray(a, mode)
    (one,) = gm.encode(im, device=device)
    fmt, got_mode, got = decode(one)
    assert (fmt, got_mode) == ("PNG", mode)
    np.testing.assert_array_equal(got, a)
    mixed = gm.encode([im, np.zeros((2, 3, 3), np.uint8)], device=device)
    np.testing.assert_array_equal(decode(mixed[0])[2], a)


@pytest.mark.parametrize("file_type", ["jpg", "jpeg"])
def test_jpeg_quality(device, file_type):
    yy, xx = np.mgrid[0:64, 0:64]
    x = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)[None]
    hi = gm.encode(x, file_type=file_type, quality=95, device=device)[0]
    lo = gm.encode(x, file_type=file_type, quality=10, device=device)[0]
    assert decode(hi)[0] == "JPEG" and len(lo) < len(hi)
    err_hi = np.abs(decode(hi)[2].astype(int) - x[0]).mean()
    err_lo = np.abs(decode(lo)[2].astype(int) - x[0]).mean()
    assert err_hi < 2.0 and err_lo > err_hi


def test_jpeg_drops_alpha_with_one_warning(device):
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 4), dtype=np.uint8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = gm.encode(x, file_type="jpg", device=device)
    assert len([m for m in w if "alpha" in str(m.message)]) == 1
    assert all(decode(b)[1] == "RGB" for b in out)


def test_default_is_png(device):
    assert decode(gm.encode(np.zeros((1, 2, 2, 3), np.uint8), device=device)[0])[0] == "PNG"


@pytest.mark.parametrize("level", [None, 0, 1, 6, 9])
def test_png_compression_levels_are_lossless(device, level):
    x = np.random.default_rng(3).integers(0, 4, (2, 16, 16, 3), dtype=np.uint8)
    out = gm.encode(x, compression_level=level, device=device)
    for b, im in zip(out, x):
        np.testing.assert_array_equal(decode(b)[2], im)


def test_png_level_changes_the_size(device):
    yy, xx = np.mgrid[0:64, 0:64]
    x = np.stack([xx * 4, yy * 4, (xx * yy) % 256], -1).astype(np.uint8)[None]
    sizes = {lvl: len(gm.encode(x, compression_level=lvl, device=device)[0]) for lvl in (0, 9)}
    assert sizes[9] < sizes[0]


def test_bad_arguments(device):
    x = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(gm.MediaError, match="file_type must be one of"):
        gm.encode(x, file_type="gif", device=device)
    for q in (0, 101, 75.5, True):
        with pytest.raises(gm.MediaError, match="quality must be an integer from 1 to 100"):
            gm.encode(x, file_type="jpg", quality=q, device=device)
    for lvl in (-1, 10, 1.5, True):
        with pytest.raises(gm.MediaError, match="compression_level must be None or an integer from 0 to 9"):
            gm.encode(x, compression_level=lvl, device=device)
    with pytest.raises(gm.ImageError, match="encode takes uint8 images"):
        gm.encode(x.astype(np.float32), device=device)
