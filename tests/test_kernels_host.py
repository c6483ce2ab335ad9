"""The CUDA kernels' math and indexing, built for the host and checked bit for bit against cpu_fallback.

``gpu_media/cuda/src/*.cuh`` hold every per-element and per-pixel function of the
kernels (docs/SPEC.md 2 conversion, range keys and branch codes, docs/SPEC.md 3 mask classes, docs/SPEC.md 4
outline test, the strided indexing and the tile decomposition). They compile with a
host C++ compiler too; ``tests/kernels_host_shim.cpp`` loops them over arrays and
provides serial twins of every kernel entry point (same names and arguments). This
module builds that library once per session (g++ -O2 -ffp-contract=off, so no FMA
contraction, like --fmad=false on the device) and checks:

* each per-element function on adversarial inputs: every float16 bit pattern under
  each branch code, float32/float64 boundaries (k/255, k/127.5 - 1, nextafter around
  0, +-1, 255, tiny, huge, NaN, +-inf), every 8- and 16-bit integer, 32/64-bit extremes,
  bool; the float16 conversions against NumPy's; range keys' order and decoding;
  mask classes; the outline test against cpu_fallback's strip painting;
* gpu_media.cuda.kernels (the backend's driver) with xp=numpy and the serial kernels,
  against cpu_fallback.normalize / mask_stats / draw_outlines, on random batches in
  both layouts, strided and negative-stride views, with images split into many tiles.

The only thing left for a GPU run is what a host cannot show: the grid loops,
shuffles, shared memory and atomics of kernels.cu (tests/test_cupy_backend.py).
"""

from __future__ import annotations

import contextlib
import ctypes

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cpu_fallback
import kernels_host
from cpu_fallback.normalize import _convert_float, _convert_int
from gpu_media.cuda import kernels as cuda_kernels

INT_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64")
FLOAT_DTYPES = ("float16", "float32", "float64")
ALL_DTYPES = ("bool",) + INT_DTYPES + FLOAT_DTYPES
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="session")
def lib(tmp_path_factory):
    if kernels_host.compiler() is None:
        pytest.skip("no C++ compiler (g++, c++, clang++ or $CXX) to build the kernels' host library")
    return kernels_host.build(tmp_path_factory.mktemp("kernels_host"))


_call = kernels_host.call
host_launch = kernels_host.host_launch


@contextlib.contextmanager
def flush_to_zero(lib, on: bool):
    """Run the shim's functions as CuPy compiles them (-ftz=true: float32 subnormals flushed).

    Only float16/float32 work is meaningful under it: the host model (MXCSR FTZ+DAZ)
    flushes float64 subnormals as well, which the GPU does not.
    """
    fn = lib.gmh_set_ftz
    fn.restype = ctypes.c_int
    if on and not fn(1):
        pytest.skip("no flush-to-zero model (MXCSR) on this host")
    try:
        yield
    finally:
        fn(0)


FTZ = pytest.mark.parametrize("ftz", [False, True], ids=["ieee", "ftz"])


def suffix_of(dtype) -> str:
    return cuda_kernels.suffix(dtype)


def to_u8(lib, x: np.ndarray, codes, ftz: bool = False) -> np.ndarray:
    x = np.ascontiguousarray(x)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    codes = np.ascontiguousarray(np.broadcast_to(np.asarray(codes, dtype=np.int32), x.shape))
    out = np.empty(x.shape, np.uint8)
    with flush_to_zero(lib, ftz):
        _call(lib, f"gmh_to_u8_{suffix_of(x.dtype)}", x, np.int64(x.size), codes, out)
    return out


def cpu_to_u8(x: np.ndarray, code: int) -> np.ndarray:
    """cpu_fallback's conversion of the flat array ``x`` as one image under branch ``code``."""
    x4 = x.reshape(1, -1, 1, 1)
    if x4.dtype == np.bool_:
        x4 = x4.view(np.uint8)
    out = np.empty(x4.shape, np.uint8)
    if x4.dtype.kind == "f":
        _convert_float(x4, np.array([code]), True, out)
    else:
        _convert_int(x4, np.array([code]), out)
    return out.reshape(x.shape)


def float_cases(dtype) -> np.ndarray:
    """Boundary values of docs/SPEC.md 2 in ``dtype``, each with its 2 neighbours either side."""
    dt = np.dtype(dtype)
    f = dt.type
    fi = np.finfo(dt)
    k = np.arange(256)
    base = [
        np.array([0.0, 1.0, 0.5, 2.0, 127.5, 128.0, 254.0, 254.99999, 255.0, 255.5, 256.0, 1e4, 1e30], dtype=dt),
        np.array([fi.tiny, fi.smallest_subnormal, fi.max, fi.eps], dtype=dt),
        fi.smallest_subnormal * np.array([2, 3, 1000, 2**20], dtype=dt), np.nextafter(fi.tiny, f(0)) * np.ones(1, dt),
        k.astype(dt), k.astype(dt) / f(255), k / 255.0, k.astype(dt) / f(127.5) - f(1), k / 127.5 - 1.0,
    ]
    vals = np.concatenate([b.astype(dt) for b in base])
    vals = np.concatenate([vals, -vals])
    around = [vals]
    for direction in (np.inf, -np.inf):
        v = vals
        for _ in range(2):
            with np.errstate(over="ignore"):
                v = np.nextafter(v, f(direction))
            around.append(v)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0], dtype=dt)
    rng = np.random.default_rng(0)
    uniform = rng.uniform(-2.5, 2.5, 4000).astype(dt)
    bits = rng.integers(0, 2 ** (8 * dt.itemsize), 4000, dtype=np.uint64, endpoint=False)
    random_bits = bits.astype(f"u{dt.itemsize}").view(dt)
    return np.concatenate(around + [specials, uniform, random_bits])


def int_cases(dtype) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.itemsize <= 2:
        info = np.iinfo(dt)
        return np.arange(int(info.min), int(info.max) + 1).astype(dt)
    info = np.iinfo(dt)
    lo, hi = int(info.min), int(info.max)
    edges = {lo, lo + 1, hi - 1, hi, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, -(2**31), -(2**63)}
    vals = sorted(v for v in edges | set(range(-300, 300)) if lo <= v <= hi)
    rng = np.random.default_rng(1)
    return np.concatenate([np.array(vals, dtype=object).astype(dt),
                           rng.integers(lo, hi, 5000, dtype=dt, endpoint=True)])


# ---- float16 conversions ------------------------------------------------------------------

@FTZ
def test_half_to_float_every_pattern(lib, ftz):
    h = np.arange(65536, dtype=np.uint16)
    out = np.empty(65536, np.float32)
    with flush_to_zero(lib, ftz):
        _call(lib, "gmh_half_to_float", h, np.int64(h.size), out)
    ref = h.view(np.float16).astype(np.float32)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(out), nan)
    np.testing.assert_array_equal(out.view(np.uint32)[~nan], ref.view(np.uint32)[~nan])


def test_float_to_half_rounding(lib):
    """Round to nearest, ties to even, at every halfway point between float16 values."""
    h = np.arange(0, 0x7C01, dtype=np.uint16).view(np.float16).astype(np.float64)  # 0 .. +inf
    mids = ((h[:-1] + h[1:]) / 2).astype(np.float32)  # exact: 12 significant bits
    cases = [mids, np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf)),
             h[:-1].astype(np.float32), np.float32([65504, 65519.99, 65520, 65536, 1e30, 2.0**-25, 2.0**-26, 3e-8])]
    rng = np.random.default_rng(2)
    cases.append(rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32))
    f = np.concatenate(cases)
    f = np.concatenate([f, -f, np.float32([np.nan, np.inf, -np.inf])])
    out = np.empty(f.size, np.uint16)
    _call(lib, "gmh_float_to_half", f, np.int64(f.size), out)
    with np.errstate(over="ignore"):
        ref = f.astype(np.float16)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(out.view(np.float16)), nan)
    np.testing.assert_array_equal(out[~nan], ref.view(np.uint16)[~nan])


# ---- docs/SPEC.md 2 per element ---------------------------------------------------------------------

@FTZ
@pytest.mark.parametrize("code", [0, 1, 2])
def test_float16_every_pattern(lib, code, ftz):
    x = np.arange(65536, dtype=np.uint16).view(np.float16)
    with np.errstate(all="ignore"):
        ref = cpu_to_u8(x, code)
    np.testing.assert_array_equal(to_u8(lib, x, code, ftz), ref)


@pytest.mark.parametrize("code", [0, 1, 2])
@pytest.mark.parametrize(("dtype", "ftz"), [("float32", False), ("float32", True), ("float64", False)])
def test_float_boundaries(lib, dtype, code, ftz):
    x = float_cases(dtype)
    with np.errstate(all="ignore"):
        ref = cpu_to_u8(x, code)
    got = to_u8(lib, x, code, ftz)
    bad = np.flatnonzero(got != ref)
    assert bad.size == 0, f"{dtype} code {code}: x={x[bad[:5]]!r} got {got[bad[:5]]} want {ref[bad[:5]]}"


@pytest.mark.parametrize("code", [0, 1, 2])
@pytest.mark.parametrize("dtype", ("bool",) + INT_DTYPES)
def test_integers(lib, dtype, code):
    x = np.array([False, True]) if dtype == "bool" else int_cases(dtype)
    np.testing.assert_array_equal(to_u8(lib, x, code), cpu_to_u8(x, code))


# ---- range keys and branch codes ------------------------------------------------------------

@pytest.mark.parametrize(("dtype", "ftz"), [(d, False) for d in ALL_DTYPES] + [("float16", True), ("float32", True)])
def test_range_keys_order_and_decode(lib, dtype, ftz):
    if dtype == "bool":
        x = np.array([True, False, True])
    elif dtype in FLOAT_DTYPES:
        x = float_cases(dtype) if dtype != "float16" else np.arange(65536, dtype=np.uint16).view(np.float16)
    else:
        x = int_cases(dtype)
    xs = x.view(np.uint8) if x.dtype == np.bool_ else x
    keys = np.empty(x.size, np.uint64)
    valid = np.empty(x.size, np.uint8)
    with flush_to_zero(lib, ftz):
        _call(lib, f"gmh_range_key_{suffix_of(x.dtype)}", xs, np.int64(x.size), keys, valid)
    fin = np.isfinite(x) if x.dtype.kind == "f" else np.ones(x.size, bool)
    np.testing.assert_array_equal(valid.astype(bool), fin)
    k, v = keys[fin], x[fin]
    order = np.argsort(k, kind="stable")
    assert np.all(np.diff(v[order].astype(np.float64 if x.dtype.kind == "f" else object)) >= 0)
    lo, _ = cuda_kernels.decode_keys(np.stack([k, k], axis=1), x.dtype, np)
    ref = v.view(np.uint8) if x.dtype == np.bool_ else v
    assert lo.dtype == ref.dtype
    np.testing.assert_array_equal(lo.view(f"u{lo.dtype.itemsize}"), ref.view(f"u{ref.dtype.itemsize}"))  # bits
    kind = getattr(lib, f"gmh_key_kind_{suffix_of(x.dtype)}")
    kind.restype = ctypes.c_int
    assert chr(kind()) == cuda_kernels.key_kind(x.dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_no_finite_value_decodes_to_inf(dtype):
    keys = cuda_kernels.init_keys(3, cuda_kernels.key_kind(dtype), np)
    lo, hi = cuda_kernels.decode_keys(keys, dtype, np)
    if np.dtype(dtype).kind == "f":
        assert np.all(lo == np.inf) and np.all(hi == -np.inf)


# ---- docs/SPEC.md 3 per element ---------------------------------------------------------------------

@pytest.mark.parametrize(("dtype", "ftz"), [(d, False) for d in ALL_DTYPES] + [("float16", True), ("float32", True)])
def test_mask_classes(lib, dtype, ftz):
    if dtype == "bool":
        x = np.array([False, True])
    elif dtype == "float16":
        x = np.arange(65536, dtype=np.uint16).view(np.float16)
    elif dtype in FLOAT_DTYPES:
        with np.errstate(over="ignore"):
            extra = np.array([2.0**53, 2.0**63, 1e300, 0.5, 255.5]).astype(dtype)
        x = np.concatenate([float_cases(dtype), np.arange(-300, 600).astype(dtype), extra])
    else:
        x = int_cases(dtype)
    xs = x.view(np.uint8) if x.dtype == np.bool_ else x
    cls = np.empty(x.size, np.int32)
    with flush_to_zero(lib, ftz):
        _call(lib, f"gmh_mask_class_{suffix_of(x.dtype)}", xs, np.int64(x.size), cls)
    with np.errstate(all="ignore"):
        hist, _, _, bad = cpu_fallback.mask_stats(x.reshape(-1, 1, 1))
    ref = np.full(x.size, -1, np.int64)
    counted = hist.any(axis=1)
    ref[counted] = hist[counted].argmax(axis=1)
    ref[bad.astype(bool)] = -2
    np.testing.assert_array_equal(cls, ref)


# ---- docs/SPEC.md 4 per pixel -----------------------------------------------------------------------

def _cpu_outline_mask(rect, t, h, w):
    img = np.zeros((1, h, w, 3), np.uint8)
    out = cpu_fallback.draw_outlines(img, np.array([rect], np.int64), np.array([0]),
                                     np.array([[255, 255, 255]], np.uint8), t)
    return out[0, :, :, 0] == 255


def _on_outline(lib, rect, t, h, w):
    ys, xs = np.mgrid[0:h, 0:w]
    xy = np.ascontiguousarray(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64))
    out = np.empty(h * w, np.uint8)
    _call(lib, "gmh_on_outline", xy, np.int64(h * w), np.ascontiguousarray(rect, dtype=np.int64), np.int64(t), out)
    return out.reshape(h, w).astype(bool)


BIG = 2**40
EDGE_RECTS = [
    (0, 0, 0, 0), (3, 4, 3, 4), (2, 2, 1, 5), (2, 2, 5, 1), (0, 0, 11, 8), (-5, -5, 20, 20),
    (-BIG, -BIG, BIG, BIG), (-BIG, 2, BIG, 5), (5, -BIG, 6, BIG), (BIG, BIG, BIG, BIG), (-BIG, -BIG, -BIG + 3, 3),
    (11, 8, 11, 8), (12, 0, 20, 8), (1, 1, 3, 2), (-1, -1, 0, 0),
]


@pytest.mark.parametrize("t", [1, 2, 3, 4, 5, 2**31])
def test_outline_edge_boxes(lib, t):
    for rect in EDGE_RECTS:
        np.testing.assert_array_equal(_on_outline(lib, rect, t, 9, 12), _cpu_outline_mask(rect, t, 9, 12),
                                      err_msg=str(rect))


coord = st.one_of(st.integers(-4, 16), st.sampled_from([-BIG, BIG, -BIG + 1, BIG - 1]))


@SETTINGS
@given(x0=coord, y0=coord, x1=coord, y1=coord, t=st.integers(1, 6))
def test_outline_random_boxes(lib, x0, y0, x1, y1, t):
    rect = (x0, y0, x1, y1)
    np.testing.assert_array_equal(_on_outline(lib, rect, t, 10, 13), _cpu_outline_mask(rect, t, 10, 13))


# ---- the backend's driver end to end, on the serial kernels -----------------------------------

REGIMES = ("unit", "signed", "wide", "nonfinite", "binary")


def _values(rng, dtype, shape, regime):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if regime == "binary":
            return rng.integers(0, 2, shape).astype(dt)
        if regime == "signed" and dt.kind == "i":
            return rng.integers(-1, 2, shape).astype(dt)
        if regime == "wide":
            return rng.integers(int(info.min), int(info.max), shape, dtype=dt, endpoint=True)
        return rng.integers(max(int(info.min), -300), min(int(info.max), 300), shape, endpoint=True).astype(dt)
    with np.errstate(all="ignore"):
        if regime == "unit":
            v = rng.random(shape)
        elif regime == "signed":
            v = rng.uniform(-1, 1, shape)
        elif regime == "binary":
            v = rng.integers(0, 2, shape).astype(np.float64)
        else:
            v = rng.normal(0, 300, shape)
        v = v.astype(dt)
        if regime == "nonfinite":
            pick = rng.random(shape)
            v[pick < 0.2] = np.nan
            v[(pick >= 0.2) & (pick < 0.3)] = np.inf
            v[(pick >= 0.3) & (pick < 0.4)] = -np.inf
            if rng.random() < 0.3:
                v[...] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=dt), shape)
        elif rng.random() < 0.3:  # hit the exact edges of the ranges
            v.flat[0] = {"unit": 1, "signed": -1}.get(regime, 255)
        if rng.random() < 0.3:  # a subnormal, either sign: it decides the range of a [0, 1] image
            v.flat[-1] = np.finfo(dt).smallest_subnormal * dt.type(rng.choice([-3, 3]))
    return v


def _batch(rng, dtype, n, h, w, c, layout):
    shape = (h, w, c) if layout == "NHWC" else (c, h, w)
    return np.stack([_values(rng, dtype, shape, REGIMES[rng.integers(len(REGIMES))]) for _ in range(n)])


VIEWS = ("plain", "reversed", "step", "fortran", "sliced_channels")


def _view(x, how, layout):
    if how == "reversed":
        return x[:, ::-1] if x.shape[1] > 1 else x[::-1]
    if how == "step":
        big = np.repeat(x, 2, axis=2)
        return big[:, :, ::2]
    if how == "fortran":
        return np.asfortranarray(x)
    if how == "sliced_channels":
        cax = 3 if layout == "NHWC" else 1
        pad = np.concatenate([x, x[:, :, :, :1] if cax == 3 else x[:, :1]], axis=cax)
        return pad[:, :, :, :-1] if cax == 3 else pad[:, :-1]
    return x


@SETTINGS
@given(dtype=st.sampled_from(ALL_DTYPES), n=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 6),
       c=st.sampled_from([1, 3, 4]), layout=st.sampled_from(["NHWC", "NCHW"]), view=st.sampled_from(VIEWS),
       norm=st.booleans(), tile=st.sampled_from([cuda_kernels.TILE, 1, 5, 17]), seed=st.integers(0, 2**32 - 1),
       ftz=st.booleans())
def test_normalize_matches_cpu(lib, dtype, n, h, w, c, layout, view, norm, tile, seed, ftz):
    rng = np.random.default_rng(seed)
    x = _view(_batch(rng, dtype, n, h, w, c, layout), view, layout)
    with np.errstate(all="ignore"):
        want = cpu_fallback.normalize(x, layout, norm)
    with pytest.MonkeyPatch.context() as mp, flush_to_zero(lib, ftz and dtype != "float64"):
        mp.setattr(cuda_kernels, "TILE", tile)  # several tiles (blocks) per image
        got = cuda_kernels.normalize(x, layout, norm, xp=np, launch=host_launch(lib))
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_normalize_every_float16_and_no_finite_images(lib, dtype):
    """A batch holding every float16 value in one image, a NaN-only and an inf-only image."""
    every = np.arange(65536, dtype=np.uint16).view(np.float16).astype(dtype).reshape(256, 256, 1)
    with np.errstate(invalid="ignore"):
        scaled = np.where(np.isfinite(every), every / 65504, every)
    x = np.stack([every, np.full_like(every, np.nan), np.full_like(every, np.inf), np.full_like(every, -np.inf),
                  scaled])
    for layout, arr in (("NHWC", x), ("NCHW", x.transpose(0, 3, 1, 2))):
        with np.errstate(all="ignore"):
            want = cpu_fallback.normalize(arr, layout, True)
        np.testing.assert_array_equal(cuda_kernels.normalize(arr, layout, True, xp=np, launch=host_launch(lib)), want)


def _mask_values(rng, dtype, shape):
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    regime = rng.integers(4)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if regime == 0:
            return rng.integers(int(info.min), int(info.max), shape, dtype=dt, endpoint=True)
        return rng.integers(max(int(info.min), -3), min(int(info.max), 300), shape, endpoint=True).astype(dt)
    v = rng.integers(-3, 300, shape).astype(dt)
    with np.errstate(all="ignore"):
        if regime == 0:
            v[rng.random(shape) < 0.2] = dt.type(0.5)
        elif regime == 1:
            v[rng.random(shape) < 0.3] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], dtype=dt))
        elif regime == 2:
            v[...] = np.nan
        if rng.random() < 0.3:
            v.flat[0] = np.finfo(dt).smallest_subnormal * dt.type(rng.choice([-5, 5]))
    return v


@SETTINGS
@given(dtype=st.sampled_from(ALL_DTYPES), n=st.integers(1, 4), h=st.integers(1, 7), w=st.integers(1, 7),
       view=st.sampled_from(["plain", "reversed", "transposed", "step"]),
       tile=st.sampled_from([cuda_kernels.TILE, 1, 4]),
       seed=st.integers(0, 2**32 - 1), ftz=st.booleans())
def test_mask_stats_matches_cpu(lib, dtype, n, h, w, view, tile, seed, ftz):
    rng = np.random.default_rng(seed)
    m = np.stack([_mask_values(rng, dtype, (h, w)) for _ in range(n)])
    if view == "reversed":
        m = m[:, ::-1, ::-1]
    elif view == "transposed":
        m = m.transpose(0, 2, 1)
    elif view == "step":
        m = np.repeat(m, 2, axis=1)[:, ::2]
    with np.errstate(all="ignore"):
        want = cpu_fallback.mask_stats(m)
    with pytest.MonkeyPatch.context() as mp, flush_to_zero(lib, ftz and dtype != "float64"):
        mp.setattr(cuda_kernels, "TILE", tile)
        got = cuda_kernels.mask_stats(m, xp=np, launch=host_launch(lib))
    for name, g, e in zip(("hist", "lo", "hi", "bad"), got, want):
        assert g.dtype == np.asarray(e).dtype, name
        np.testing.assert_array_equal(g, e, err_msg=name)


@SETTINGS
@given(n=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12), c=st.sampled_from([1, 3, 4]),
       m=st.integers(0, 12), t=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_draw_outlines_matches_cpu(lib, n, h, w, c, m, t, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    x0 = rng.integers(-3, w + 2, m)
    y0 = rng.integers(-3, h + 2, m)
    rects = np.stack([x0, y0, x0 + rng.integers(-2, w + 3, m), y0 + rng.integers(-2, h + 3, m)], axis=1)
    huge = rng.random(m) < 0.15
    rects[huge] = rng.choice([-BIG, BIG], (int(huge.sum()), 4))
    rects = np.sort(rects.reshape(-1, 2, 2), axis=1).reshape(-1, 4) if rng.random() < 0.5 else rects
    rects = rects.astype(np.int64)
    image_index = rng.integers(0, n, m)  # unsorted: the order within an image decides
    colors = rng.integers(0, 256, (m, 3), dtype=np.uint8)
    want = cpu_fallback.draw_outlines(images, rects, image_index, colors, t)
    got = cuda_kernels.draw_outlines(images, rects, image_index, colors, t, xp=np, launch=host_launch(lib))
    np.testing.assert_array_equal(got, want)


def test_draw_outlines_later_box_wins(lib):
    images = np.zeros((2, 8, 8, 4), np.uint8)
    rects = np.array([[0, 0, 7, 7], [0, 0, 7, 7], [2, 2, 5, 5], [0, 0, 3, 3]], np.int64)
    image_index = np.array([0, 1, 0, 0])
    colors = np.array([[10, 0, 0], [20, 0, 0], [30, 0, 0], [40, 0, 0]], np.uint8)
    got = cuda_kernels.draw_outlines(images, rects, image_index, colors, 2, xp=np, launch=host_launch(lib))
    np.testing.assert_array_equal(got, cpu_fallback.draw_outlines(images, rects, image_index, colors, 2))
    assert got[0, 0, 0].tolist() == [40, 0, 0, 255] and got[1, 0, 0].tolist() == [20, 0, 0, 255]


def test_images_dense():
    assert cuda_kernels.images_dense((4, 5, 3), (15, 3, 1))  # NHWC
    assert cuda_kernels.images_dense((4, 5, 3), (5, 1, 20))  # NCHW seen as NHWC
    assert cuda_kernels.images_dense((1, 5, 1), (999, 1, 7))  # size-1 axes do not matter
    assert not cuda_kernels.images_dense((4, 5, 3), (-15, 3, 1))
    assert not cuda_kernels.images_dense((4, 5, 3), (30, 6, 2))
    assert not cuda_kernels.images_dense((4, 5, 3), (0, 3, 1))


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_subnormal_decides_the_range_under_ftz(lib, dtype):
    """A [0, 1] image holding one tiny negative subnormal takes the [-1, 1] row on the CPU and GPU.

    It must on the GPU too, where CuPy's -ftz=true flushes float32 subnormals.
    """
    x = np.full((1, 2, 3, 1), 0.5, dtype)
    x[0, 0, 0, 0] = -np.finfo(dtype).smallest_subnormal
    want = cpu_fallback.normalize(x, "NHWC", True)
    assert want[0, 1, 1, 0] == 191  # trunc((0.5 + 1) * 127.5)
    with flush_to_zero(lib, True):
        got = cuda_kernels.normalize(x, "NHWC", True, xp=np, launch=host_launch(lib))
    np.testing.assert_array_equal(got, want)
    m = np.zeros((1, 2, 2), dtype)
    m[0, 0, 0] = np.finfo(dtype).smallest_subnormal
    with flush_to_zero(lib, True):
        got = cuda_kernels.mask_stats(m, xp=np, launch=host_launch(lib))
    for g, w in zip(got, cpu_fallback.mask_stats(m)):
        np.testing.assert_array_equal(g, w)
