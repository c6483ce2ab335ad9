"""The CPU backend's fast encoders (issue 19) and their fallbacks with numpy + pillow only.

JPEG: ``imagecodecs.jpeg8_encode`` must give Pillow's exact bytes (so ``wandb.Image``'s),
and without imagecodecs Pillow itself runs. PNG at the default level: Average filter +
Huffman-only deflate by zlib-ng or zlib, assembled by ``gpu_media.png``; decoding gives back the
exact pixels whichever deflate library is installed. ``compression_level=6`` stays
Pillow's (``wandb.Image``'s) bytes. The default PNG's bytes depend only on the pixels
(content-addressed names): the same image gives the same file in any thread, any order.
"""

from __future__ import annotations

import importlib
import io
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import gpu_media as gm
from gpu_media import png

enc = importlib.import_module("cpu_fallback.encode")

DEFLATES = ["zlib_ng.zlib_ng", "zlib"]


def pillow_jpeg(a: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    a = np.asarray(Image.open(io.BytesIO(data)))
    return a[:, :, None] if a.ndim == 2 else a


def without(monkeypatch, *names: str) -> None:
    """Make ``enc.optional`` answer None for ``names``: as if those libraries were not installed."""
    real = enc.optional

    def fake(name):
        return None if name in names else real(name)

    monkeypatch.setattr(enc, "optional", fake)


def only_deflate(monkeypatch, lib: str) -> None:
    if lib != "zlib" and enc.optional(lib) is None:
        pytest.skip(f"{lib} is not installed")
    without(monkeypatch, *DEFLATES[:DEFLATES.index(lib)])
    assert enc.deflate_library().__name__ == lib


images = st.tuples(st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3, 4]), st.integers(0, 2**32 - 1))


def make(h, w, c, seed, smooth):
    """uint8 (h, w, c): noise (``smooth`` False), a noisy gradient (True) or flat blocks like a mask ("flat")."""
    rng = np.random.default_rng(seed)
    if smooth == "flat":  # a mask or a plot: a few flat blocks and a few stray pixels (run-length deflate)
        blocks = rng.integers(0, 6, (4, 4, c), dtype=np.uint8) * 40
        a = np.repeat(np.repeat(blocks, -(-h // 4), 0), -(-w // 4), 1)[:h, :w].copy()
        a[rng.integers(0, h, 3), rng.integers(0, w, 3)] = 255
        return a
    if smooth:  # photograph-like: gradients with a little noise (compresses, exercises the filter)
        y, x = np.mgrid[0:h, 0:w]
        base = (x * 7 + y * 3)[:, :, None] + np.arange(c) * 40
        return ((base + rng.integers(0, 4, (h, w, c))) % 256).astype(np.uint8)
    return rng.integers(0, 256, (h, w, c), dtype=np.uint8)


@settings(max_examples=60, deadline=None)
@given(images, st.sampled_from([False, True, "flat"]))
def test_filter_average_is_the_png_average_filter(shape, smooth):
    a = make(*shape, smooth)
    rows = png.filter_average(a)
    assert rows.shape == (a.shape[0], 1 + a.shape[1] * a.shape[2])
    assert (rows[:, 0] == 3).all()
    assert np.array_equal(rows[:, 1:], png.filter_candidates(a)[3])


@pytest.mark.parametrize("lib", DEFLATES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=images, smooth=st.sampled_from([False, True, "flat"]))
def test_default_png_decodes_to_the_input_with_each_deflate(monkeypatch, lib, shape, smooth):
    with monkeypatch.context() as m:  # undone after each example
        only_deflate(m, lib)
        a = make(*shape, smooth)
        data = enc.encode_png(a)
        assert data[:8] == png.SIGNATURE
        assert np.array_equal(decode(data), a)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_default_png_round_trip_on_each_backend(device, c):
    a = make(33, 47, c, 7, True)[None].repeat(3, axis=0)
    a[1] = 255 - a[1]
    for data, img in zip(gm.encode(a, device=device), a):
        assert np.array_equal(decode(data), img)


def test_mask_pngs_are_greyscale_and_exact(tmp_path):
    m = (np.arange(4 * 20 * 30) % 5).reshape(4, 20, 30).astype(np.uint8)
    data = gm.encode(m[..., None], device="cpu")
    for d, mk in zip(data, m):
        im = Image.open(io.BytesIO(d))
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), mk)


@pytest.mark.parametrize("c", [1, 3, 4])
def test_level_6_is_pillows_bytes(c):
    a = make(31, 45, c, 3, True)
    buf = io.BytesIO()
    Image.fromarray(a[:, :, 0] if c == 1 else a).save(buf, format="PNG", compress_level=6)
    assert enc.encode_png(a, compression_level=6) == buf.getvalue()


def test_default_png_is_not_pillows_per_row_choice():
    """The default level uses the Average filter on every row (the file's rows say so)."""
    a = make(16, 16, 3, 1, True)
    data = enc.encode_png(a)
    idat = data.index(b"IDAT")
    n = int.from_bytes(data[idat - 4:idat], "big")
    rows = zlib.decompress(data[idat + 4: idat + 4 + n])
    assert [rows[k * 49] for k in range(16)] == [3] * 16


needs_imagecodecs = pytest.mark.skipif(enc.optional("imagecodecs") is None, reason="imagecodecs is not installed")


@needs_imagecodecs
@settings(max_examples=60, deadline=None)
@given(shape=st.tuples(st.integers(1, 70), st.integers(1, 70), st.sampled_from([1, 3]), st.integers(0, 2**32 - 1)),
       quality=st.integers(1, 100), smooth=st.booleans())
def test_imagecodecs_jpeg_is_pillows_bytes(shape, quality, smooth):
    assert enc.jpeg_library() == "imagecodecs"
    a = make(*shape, smooth)
    assert enc.encode_jpeg(a, quality) == pillow_jpeg(a, quality)


@needs_imagecodecs
def test_imagecodecs_jpeg_takes_strided_views():
    rgba = make(20, 30, 4, 5, True)
    assert enc.encode_jpeg(rgba[:, :, :3], 75) == pillow_jpeg(np.ascontiguousarray(rgba[:, :, :3]), 75)
    assert enc.encode_jpeg(rgba[::2, ::3, :1], 75) == pillow_jpeg(np.ascontiguousarray(rgba[::2, ::3, :1]), 75)


@pytest.mark.parametrize("c", [1, 3])
def test_without_imagecodecs_jpeg_is_pillow(monkeypatch, c):
    a = make(40, 24, c, 9, True)
    fast = enc.encode_jpeg(a, 80)
    without(monkeypatch, "imagecodecs")
    assert enc.jpeg_library() == "pillow"
    slow = enc.encode_jpeg(a, 80)
    assert slow == pillow_jpeg(a, 80)
    assert fast == slow  # with imagecodecs installed: the same bytes; without: both are Pillow's


def test_dump_with_numpy_and_pillow_only(monkeypatch, tmp_path):
    """No imagecodecs nor zlib-ng: dumps still write valid files (stdlib zlib, Pillow's JPEG)."""
    without(monkeypatch, "imagecodecs", "zlib_ng.zlib_ng")
    x = np.stack([make(24, 32, 3, s, True) for s in range(3)])
    for ft in ("png", "jpg"):
        out = tmp_path / ft
        gm.write_dump(str(out), x, key="k", file_type=ft, device="cpu")
        files = sorted(p for p in out.rglob(f"*.{ft}"))
        assert len(files) == 3
        got = [decode(p.read_bytes()) for p in files]
        if ft == "png":
            assert sorted(g.tobytes() for g in got) == sorted(i.tobytes() for i in x)
        else:
            assert all(g.shape == (24, 32, 3) for g in got)


def test_pool_is_kept_and_sized_to_the_cores():
    assert enc.executor() is enc.executor()
    assert enc.executor()._max_workers == enc.cores()


def test_default_png_bytes_depend_only_on_the_pixels():
    """Tiny and large images, encoded again and again from many threads, give one file each."""
    from concurrent.futures import ThreadPoolExecutor

    imgs = [make(h, w, c, s, True) for s, (h, w, c) in enumerate([(5, 7, 1), (8, 8, 3), (3, 3, 4), (64, 48, 3),
                                                                  (200, 150, 3)])]
    first = [enc.encode_png(a) for a in imgs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(20):
            assert list(pool.map(enc.encode_png, imgs * 3)) == first * 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=images, smooth=st.sampled_from([False, True, "flat"]))
def test_default_png_bytes_do_not_depend_on_the_deflate_library(monkeypatch, shape, smooth):
    """zlib-ng's and the standard library's zlib give the same file: a machine without zlib-ng names it alike.

    Huffman-only deflate has no match search and run-length deflate only distance-1 matches
    taken greedily; both libraries end a block after the same number of symbols and build the
    same trees, so the stream is a function of the rows alone.
    """
    if enc.optional("zlib_ng.zlib_ng") is None:
        pytest.skip("zlib_ng is not installed")
    a = make(*shape, smooth)
    with monkeypatch.context() as m:
        only_deflate(m, "zlib_ng.zlib_ng")
        ng = enc.encode_png(a)
    with monkeypatch.context() as m:
        only_deflate(m, "zlib")
        assert enc.encode_png(a) == ng


@pytest.mark.parametrize("kind", ["photograph", "mask"])
def test_default_png_bytes_of_a_large_image_do_not_depend_on_the_deflate_library(monkeypatch, kind):
    """The same on large images: a photograph-like one (Huffman-only) and a mask (run-length).

    Both span several deflate blocks (32767 symbols each).
    """
    if enc.optional("zlib_ng.zlib_ng") is None:
        pytest.skip("zlib_ng is not installed")
    y, x = np.mgrid[0:300, 0:260]
    rng = np.random.default_rng(5)
    if kind == "photograph":
        a = (np.stack([x + y, 2 * x - y, (x * y) // 64], axis=2) + rng.normal(0, 6, (300, 260, 3))).astype(np.uint8)
    else:
        a = ((x // 29 + y // 41 + (x * x + y * y < 150 ** 2)) % 7).astype(np.uint8)[:, :, None]
    files = []
    for lib in DEFLATES:
        with monkeypatch.context() as m:
            only_deflate(m, lib)
            files.append(enc.encode_png(a))
    assert files[0] == files[1]
    assert np.array_equal(decode(files[0]), a)


def test_flat_pictures_take_run_length_deflate(monkeypatch):
    """Masks and plots (mostly zero after the filter) use Z_RLE: much smaller than Huffman-only, same pixels."""
    yy, xx = np.mgrid[0:128, 0:160]
    mask = ((xx // 37 + yy // 23) % 5).astype(np.uint8)[:, :, None]
    plot = np.full((128, 160, 3), 255, np.uint8)
    plot[(64 + 40 * np.sin(xx[0] / 15)).astype(int), xx[0]] = (31, 119, 180)
    photo = make(128, 160, 3, 2, False)
    strategy = [enc.deflate_strategy(png.filter_average(a)) for a in (mask, plot, photo)]
    assert strategy == [zlib.Z_RLE, zlib.Z_RLE, zlib.Z_HUFFMAN_ONLY]
    rle = [enc.encode_png(a) for a in (mask, plot, photo)]
    with monkeypatch.context() as m:
        m.setattr(enc, "RLE_ZERO_SHARE", 2.0)  # never run-length
        huffman = [enc.encode_png(a) for a in (mask, plot, photo)]
    assert len(rle[0]) * 3 < len(huffman[0]) and len(rle[1]) * 3 < len(huffman[1])
    assert rle[2] == huffman[2]
    for data, a in zip(rle, (mask, plot, photo)):
        assert np.array_equal(decode(data), a)
