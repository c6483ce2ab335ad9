"""The GPU PNG encoder's parts without a GPU (docs/SPEC.md 5): row filters, Adler-32, file assembly.

* ``gpu_media/cuda/src/png.cuh`` built for the host (tests/kernels_host_shim.cpp): the
  per-row filter and libpng's choice against the NumPy reference
  (``gpu_media.png.filter_rows``), itself checked against a byte-by-byte reading of the
  PNG specification; the serial twins of ``gm_png_filter``/``gm_png_adler`` driven by
  ``gpu_media.cuda.kernels.png_rows`` as the GPU backend drives them; Adler-32
  (deferred reduction, combination, the warp's strided split) against ``zlib.adler32``.
* ``gpu_media.png.assemble``: PNGs made from zlib's raw deflate of host-filtered rows
  decode to exactly the input, in Pillow and in a reader built here on ``zlib``
  (chunk CRCs, the zlib header and Adler-32 checked by ``zlib.decompress``, the rows
  unfiltered by the specification), for 1, 3 and 4 channels, odd sizes and 1x1.
"""

from __future__ import annotations

import ctypes
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import kernels_host
from gpu_media import png
from gpu_media.cuda import kernels as cuda_kernels

SHAPES = [(1, 1), (1, 7), (5, 1), (3, 5), (17, 31), (64, 33)]
CHANNELS = (1, 3, 4)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if kernels_host.compiler() is None:
        pytest.skip("no C++ compiler (g++, c++, clang++ or $CXX) to build the kernels' host library")
    lib = kernels_host.build(tmp_path_factory.mktemp("kernels_host_png"))
    for name in ("gmh_adler32", "gmh_adler32_combine", "gmh_adler32_strided"):
        getattr(lib, name).restype = ctypes.c_uint32
    lib.gmh_adler32.argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_longlong]
    lib.gmh_adler32_combine.argtypes = [ctypes.c_uint32, ctypes.c_uint32, ctypes.c_longlong]
    lib.gmh_adler32_strided.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int]
    lib.gmh_png_filter_row.restype = ctypes.c_int
    lib.gmh_png_filter_row.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int,
                                       ctypes.c_void_p]
    return lib


def _ptr(a: np.ndarray):
    return a.ctypes.data


def images(seed=0):
    """Random, smooth (photograph-like), flat and extreme images of every shape and channel count."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in SHAPES:
        for c in CHANNELS:
            out.append(rng.integers(0, 256, (h, w, c), dtype=np.uint8))
            yy, xx = np.mgrid[0:h, 0:w]
            smooth = (yy[..., None] * 7 + xx[..., None] * 3 + np.arange(c) * 40 + rng.integers(0, 4, (h, w, c)))
            out.append((smooth % 256).astype(np.uint8))
            out.append(np.full((h, w, c), 255 if c != 3 else 0, np.uint8))
    return out


# ---- the NumPy reference against the specification, byte by byte -------------------------------

def spec_predictor(f: int, row, prev, i: int, c: int) -> int:
    """PNG section 9's predictor of filter ``f`` for byte ``i`` of ``row`` (``prev``: the row above, or None)."""
    a = int(row[i - c]) if i >= c else 0
    b = int(prev[i]) if prev is not None else 0
    cc = int(prev[i - c]) if (prev is not None and i >= c) else 0
    if f == 0:
        return 0
    if f == 1:
        return a
    if f == 2:
        return b
    if f == 3:
        return (a + b) // 2
    p = a + b - cc
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else cc)


def spec_filter_rows(image: np.ndarray) -> bytes:
    """PNG section 9 and libpng's heuristic, one byte at a time (slow; small images)."""
    h, w, c = image.shape
    x = image.reshape(h, w * c).astype(int)
    out = bytearray()
    for y in range(h):
        cands = []
        for f in range(5):
            row = []
            for i in range(w * c):
                pred = spec_predictor(f, x[y], x[y - 1] if y else None, i, c)
                row.append((x[y, i] - pred) % 256)
            cands.append(row)
        sums = [sum(v if v < 128 else 256 - v for v in row) for row in cands]
        f = sums.index(min(sums))
        out.append(f)
        out.extend(cands[f])
    return bytes(out)


def test_numpy_reference_follows_the_specification():
    for img in images(1):
        if img.size <= 600:
            rows, best = png.filter_rows(img)
            assert rows.tobytes() == spec_filter_rows(img)
            assert len(best) == img.shape[0]
    # every filter type is chosen somewhere in these images (so the choice itself is exercised)
    chosen = set()
    for img in images(2):
        chosen.update(png.filter_rows(img)[1].tolist())
    assert chosen == {0, 1, 2, 3, 4}


def unfilter(rows: bytes, h: int, w: int, c: int) -> np.ndarray:
    """PNG section 9 reconstruction (the decoder's side), for the zlib-based reader."""
    stride = 1 + w * c
    data = np.frombuffer(rows, np.uint8).reshape(h, stride)
    out = np.zeros((h, w * c), np.int32)
    for y in range(h):
        f = int(data[y, 0])
        assert 0 <= f <= 4, f
        for i in range(w * c):
            pred = spec_predictor(f, out[y], out[y - 1] if y else None, i, c)
            out[y, i] = (int(data[y, 1 + i]) + pred) % 256
    return out.astype(np.uint8).reshape(h, w, c)


def zlib_read_png(data: bytes) -> np.ndarray:
    """A PNG reader on zlib alone: checks signature, chunk CRCs, IHDR, the zlib stream (header, Adler-32)."""
    assert data[:8] == png.SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [k for k, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, comp, filt, interlace) == (8, 0, 0, 0)
    c = {0: 1, 2: 3, 6: 4}[ctype]
    stream = b"".join(b for k, b in chunks if k == b"IDAT")
    assert (stream[0] * 256 + stream[1]) % 31 == 0
    rows = zlib.decompress(stream)  # checks the zlib header and the Adler-32
    assert len(rows) == h * (1 + w * c)
    return unfilter(rows, h, w, c)


def pillow_read(data: bytes, c: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.mode == {1: "L", 3: "RGB", 4: "RGBA"}[c]
        a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], c)


# ---- the kernels' functions, built for the host ---------------------------------------------------

def test_filter_row_matches_numpy_reference(lib):
    for img in images(3):
        h, w, c = img.shape
        rowbytes = w * c
        rows = img.reshape(h, rowbytes)
        want, best = png.filter_rows(img)
        got = np.empty((h, 1 + rowbytes), np.uint8)
        for y in range(h):
            prev = _ptr(rows[y - 1]) if y else None
            f = lib.gmh_png_filter_row(_ptr(rows[y]), prev, rowbytes, c, _ptr(got[y]))
            assert f == best[y]
        np.testing.assert_array_equal(got.reshape(-1), want)


def test_each_filter_matches_numpy_candidates(lib):
    for img in images(4):
        h, w, c = img.shape
        cands = png.filter_candidates(img)
        for f in range(5):
            out = np.empty((h, 1 + w * c), np.uint8)
            kernels_host.call(lib, "gmh_png_filter_fixed", np.ascontiguousarray(img), np.int64(h),
                              np.int64(w * c), np.int32(c), np.int32(f), out)
            assert (out[:, 0] == f).all()
            np.testing.assert_array_equal(out[:, 1:], cands[f])


def test_paeth_predictor_every_case(lib):
    rng = np.random.default_rng(5)
    abc = np.concatenate([rng.integers(0, 256, (20000, 3)), [[0, 0, 0], [255, 255, 255], [10, 10, 10],
                                                             [0, 255, 128], [255, 0, 128], [5, 9, 7]]])
    abc = np.ascontiguousarray(abc, dtype=np.int32)
    out = np.empty(len(abc), np.int32)
    kernels_host.call(lib, "gmh_paeth", abc, np.int64(len(abc)), out)
    a, b, c = (abc[:, k].astype(int) for k in range(3))
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    np.testing.assert_array_equal(out, np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)))


ADLER_SIZES = [0, 1, 2, 3, 31, 32, 33, 5551, 5552, 5553, 11104, 11105, 65521, 65522, 100003, (1 << 20) + 7]


def _adler_inputs():
    rng = np.random.default_rng(6)
    for n in ADLER_SIZES:
        yield n, rng.integers(0, 256, n, dtype=np.uint8)
        yield n, np.full(n, 255, np.uint8)  # the largest sums: overflow would show here


def test_adler32_matches_zlib(lib):
    for n, data in _adler_inputs():
        want = zlib.adler32(data.tobytes())
        assert lib.gmh_adler32(1, _ptr(data), n) == want, n
        # continuing from a running value, as zlib.adler32(data, value) does
        assert lib.gmh_adler32(0xDEAD0BEF % 65521, _ptr(data), n) == zlib.adler32(data.tobytes(), 0xDEAD0BEF % 65521)
        for parts in (1, 7, 32):
            assert lib.gmh_adler32_strided(_ptr(data), n, parts) == want, (n, parts)


def test_adler32_combine_matches_zlib(lib):
    rng = np.random.default_rng(7)
    for n, data in _adler_inputs():
        for cut in {0, n // 3, n // 2, n}:
            a1 = zlib.adler32(data[:cut].tobytes())
            a2 = zlib.adler32(data[cut:].tobytes())
            assert lib.gmh_adler32_combine(a1, a2, n - cut) == zlib.adler32(data.tobytes()), (n, cut)
    big = rng.integers(0, 256, 300_000, dtype=np.uint8)  # many pieces longer than 65521
    parts = np.array_split(big, 5)
    total = 1
    for p in parts:
        total = lib.gmh_adler32_combine(total, zlib.adler32(p.tobytes()), len(p))
    assert total == zlib.adler32(big.tobytes())


@pytest.mark.parametrize("c", CHANNELS)
def test_png_rows_driver_with_the_serial_kernels(lib, c):
    """cuda_kernels.png_rows as the GPU backend calls it: rows, aligned stride, per-image Adler-32."""
    rng = np.random.default_rng(8 + c)
    log: list = []
    launch = kernels_host.host_launch(lib, log)
    for n, h, w in ((1, 1, 1), (3, 5, 7), (4, 33, 17), (2, 40, 300)):
        batch = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        batch[0] = (np.arange(h * w * c).reshape(h, w, c) // 3 % 256).astype(np.uint8)  # smooth image
        per = h * (1 + w * c)
        for stride in (None, -(-per // 16) * 16 + 16):
            filtered, adler = cuda_kernels.png_rows(batch, xp=np, launch=launch, stride=stride)
            assert filtered.shape == (n, per if stride is None else stride) and adler.dtype == np.uint32
            for i in range(n):
                rows, _ = png.filter_rows(batch[i])
                np.testing.assert_array_equal(filtered[i, :per], rows)
                assert int(adler[i]) == zlib.adler32(rows.tobytes())
    assert log[:2] == ["gm_png_filter", "gm_png_adler"]
    with pytest.raises(ValueError, match="stride"):
        cuda_kernels.png_rows(batch, xp=np, launch=launch, stride=1)


# ---- assembly -----------------------------------------------------------------------------------

def test_zlib_header_is_zlibs_own():
    for level in range(10):
        assert png.zlib_header(level) == zlib.compress(b"", level)[:2], level
    assert png.zlib_header(None) == b"\x78\x01"


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_assembled_png_decodes_exactly(level):
    for img in images(9):
        data = png.encode_reference(img, level)
        c = img.shape[2]
        np.testing.assert_array_equal(pillow_read(data, c), img)
        np.testing.assert_array_equal(zlib_read_png(data), img)


def test_assemble_from_any_buffer_and_2d_input():
    img = np.arange(5 * 6, dtype=np.uint8).reshape(5, 6)
    rows, _ = png.filter_rows(img)
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    raw = comp.compress(rows.tobytes()) + comp.flush()
    adler = zlib.adler32(rows.tobytes())
    as_bytes = png.assemble(6, 5, 1, raw, adler)
    as_array = png.assemble(6, 5, 1, np.frombuffer(raw, np.uint8), adler)
    assert as_bytes == as_array == png.encode_reference(img, 1)
    np.testing.assert_array_equal(pillow_read(as_bytes, 1)[..., 0], img)


def test_a_wrong_adler_or_bad_shape_is_caught():
    img = np.zeros((2, 2, 3), np.uint8)
    rows, _ = png.filter_rows(img)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = comp.compress(rows.tobytes()) + comp.flush()
    bad = png.assemble(2, 2, 3, raw, zlib.adler32(rows.tobytes()) ^ 1)
    with pytest.raises(zlib.error, match="incorrect data check"):
        zlib_read_png(bad)
    for args in ((2, 2, 2), (0, 2, 3), (2, 0, 3)):
        with pytest.raises(ValueError):
            png.assemble(*args, raw, 1)


def test_reference_is_close_to_pillow_in_size():
    """Same filters and zlib level as Pillow's encoder, so sizes are within a few percent."""
    from gpu_media.cli import demo_input

    with np.load(demo_input()) as z:
        photos = z["images"][:3]
    for p in photos:
        ours = len(png.encode_reference(p, 6))
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG", compress_level=6)
        assert 0.9 < ours / len(buf.getvalue()) < 1.1
