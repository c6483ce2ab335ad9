"""docs/SPEC.md 2 on a GPU by both paths, bit for bit against cpu_fallback.

Both paths: ``GPU_MEDIA_NORMALIZE`` = "two-pass" (the default) and "fused".

The fused kernel (``gm_normalize_<t>``, issue 11.3) is opt-in until these pass on a GPU:
what the host twins cannot show is exercised here, namely the ticket counter and the
wait of convert tickets on their image's range tickets (atomics, fences, a spin on
global memory), block reductions, loads past a tile's end, grids larger than the
device holds at once, and repeat runs (a race shows as a run that differs). Sizes: every
dtype and layout, strided views, images larger than the device's L2, batches of many
tiny images, odd shapes, extreme knobs of ``cuda_kernels.fused_plan``. Skipped without
a usable GPU.
"""

from __future__ import annotations

import numpy as np
import pytest

import cpu_fallback
import gpu_media
from gpu_media.cuda import kernels as cuda_kernels

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not gpu_media.gpu_available(), reason="no usable GPU backend (CuPy + CUDA device)")]

DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
          "float16", "float32", "float64")
METHODS = cuda_kernels.NORMALIZE_METHODS


@pytest.fixture
def be():
    return gpu_media.backend.get_backend("gpu")


def values(rng, dtype, shape, regime):
    """One image: "photo" ([0, 1]), "signed" ([-1, 1]), "wide" (the clip row) or "nonfinite"."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if regime == "photo":
            return rng.integers(0, 2, shape).astype(dt)
        if regime == "signed" and dt.kind == "i":
            return rng.integers(-1, 2, shape).astype(dt)
        return rng.integers(max(int(info.min), -50), min(int(info.max), 400), shape, endpoint=True).astype(dt)
    with np.errstate(all="ignore"):
        if regime == "photo":
            v = rng.random(shape).astype(dt)
        elif regime == "signed":
            v = rng.uniform(-1, 1, shape).astype(dt)
        else:
            v = rng.normal(100, 200, shape).astype(dt)
        if regime == "nonfinite":
            pick = rng.random(shape)
            v[pick < 0.1] = np.nan
            v[(pick >= 0.1) & (pick < 0.15)] = np.inf
            v[(pick >= 0.15) & (pick < 0.2)] = -np.inf
    return v


def batch(rng, dtype, n, h, w, c):
    regimes = ("photo", "signed", "wide", "nonfinite")
    return np.stack([values(rng, dtype, (h, w, c), regimes[i % 4]) for i in range(n)])


def run(be, monkeypatch, method, x, layout="NHWC", norm=True):
    import cupy

    monkeypatch.setenv("GPU_MEDIA_NORMALIZE", method)
    return cupy.asnumpy(be.normalize(x if isinstance(x, cupy.ndarray) else cupy.asarray(x), layout, norm))


def cpu(x, layout="NHWC", norm=True):
    with np.errstate(all="ignore"):
        return cpu_fallback.normalize(x, layout, norm)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_layout_and_view(be, monkeypatch, method, dtype):
    import cupy

    rng = np.random.default_rng(7)
    x = batch(rng, dtype, 6, 181, 243, 3)
    for layout, arr in (("NHWC", x), ("NCHW", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))):
        d = cupy.asarray(arr)
        for view in (d, d[:, ::-1], d[::2], d[:, :, 1::3]):
            np.testing.assert_array_equal(run(be, monkeypatch, method, view, layout), cpu(cupy.asnumpy(view), layout))
        np.testing.assert_array_equal(run(be, monkeypatch, method, d, layout, False), cpu(arr, layout, False))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shape", [(3, 1, 1, 1), (2, 1, 1000, 3), (2, 1000, 1, 4), (7, 13, 17, 3), (5, 64, 64, 4),
                                   (1, 2049, 3, 1)])
def test_odd_shapes(be, monkeypatch, method, shape):
    rng = np.random.default_rng(sum(shape))
    for dtype in ("float32", "float16", "uint16"):
        x = batch(rng, dtype, *shape)
        np.testing.assert_array_equal(run(be, monkeypatch, method, x), cpu(x))


@pytest.mark.parametrize("method", METHODS)
def test_images_larger_than_l2(be, monkeypatch, method):
    """Two float32 RGB images of about twice the device's L2 each: the second read cannot hit L2."""
    l2 = be._device_info().l2_bytes
    side = int(np.ceil(np.sqrt(2 * l2 / 12)))
    rng = np.random.default_rng(8)
    x = np.stack([rng.random((side, side, 3), dtype=np.float32),
                  rng.uniform(-1, 1, (side, side, 3)).astype(np.float32)])
    x[0, side - 1, side - 1, 2] = 1.5  # the very last element decides image 0's row: clip
    np.testing.assert_array_equal(run(be, monkeypatch, method, x), cpu(x))
    xc = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(run(be, monkeypatch, method, xc, "NCHW"), cpu(xc, "NCHW"))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("dtype", "n", "shape"), [("float16", 20_000, (2, 3, 1)), ("uint16", 5_000, (1, 1, 3)),
                                                   ("float32", 3_000, (5, 7, 4)), ("float64", 70_000, (1, 1, 1))])
def test_many_tiny_images(be, monkeypatch, method, dtype, n, shape):
    x = batch(np.random.default_rng(n), dtype, n, *shape)
    np.testing.assert_array_equal(run(be, monkeypatch, method, x), cpu(x))


@pytest.mark.parametrize("method", METHODS)
def test_every_float16_value_on_a_stream(be, monkeypatch, method):
    import cupy

    every = np.arange(65536, dtype=np.uint16).view(np.float16).reshape(1, 256, 256, 1)
    with np.errstate(all="ignore"):
        x = np.concatenate([every, np.where(np.isfinite(every), every / np.float16(65504), every),
                            np.clip(every, -1, 1), np.clip(every, 0, 1), np.full_like(every, np.nan)])
    monkeypatch.setenv("GPU_MEDIA_NORMALIZE", method)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        got = be.normalize(cupy.asarray(x), "NHWC", True)
        host = cupy.asnumpy(got, stream=stream)
    np.testing.assert_array_equal(host, cpu(x))


@pytest.mark.parametrize("knobs", [{"tile_px": 1, "blocks_per_sm": 1, "lag": 1}, {"tile_px": 7, "lag": 1},
                                   {"blocks_per_sm": 64, "tile_px": 64}, {"lag": 10**6}, {"l2_fraction": 1.0},
                                   {"tile_px": 1 << 20}])
def test_fused_knobs(be, knobs):
    """Any plan gives the same bits.

    One-pixel tickets, a grid far beyond what the device holds at once (later blocks
    queue; convert tickets still wait only on running blocks), any lag.
    """
    import cupy

    rng = np.random.default_rng(9)
    for dtype, shape in (("float32", (9, 37, 41, 3)), ("int16", (4, 130, 70, 1)), ("float16", (3, 300, 200, 4))):
        x = batch(rng, dtype, *shape)
        got = cuda_kernels.normalize(cupy.asarray(x), "NHWC", True, xp=cupy, launch=be._launch, method="fused",
                                     device=be._device_info(), **knobs)
        np.testing.assert_array_equal(cupy.asnumpy(got), cpu(x))


def test_fused_repeats_exactly(be, monkeypatch):
    """Races show as runs that differ: 30 runs of a batch whose ranges sit on the rows' edges."""
    import cupy

    rng = np.random.default_rng(10)
    x = batch(rng, "float32", 32, 96, 96, 3)
    for i in range(0, 32, 3):  # one element decides the row of these images
        x[i] = np.clip(x[i], 0, 1)
        x[i, 95, 95, 2] = -1e-7 if i % 2 else 1.0000001
    want = cpu(x)
    d = cupy.asarray(x)
    monkeypatch.setenv("GPU_MEDIA_NORMALIZE", "fused")
    for _ in range(30):
        np.testing.assert_array_equal(cupy.asnumpy(be.normalize(d, "NHWC", True)), want)


def test_fused_equals_two_pass_through_the_public_api(monkeypatch):
    import cupy

    rng = np.random.default_rng(11)
    x = cupy.asarray(batch(rng, "float32", 8, 120, 90, 3).transpose(0, 3, 1, 2).copy())
    outs = {}
    for method in METHODS:
        monkeypatch.setenv("GPU_MEDIA_NORMALIZE", method)
        outs[method] = cupy.asnumpy(gpu_media.normalize(x, layout="NCHW", device="gpu"))
    np.testing.assert_array_equal(outs["fused"], outs["two-pass"])
    np.testing.assert_array_equal(outs["fused"], gpu_media.normalize(cupy.asnumpy(x), layout="NCHW", device="cpu"))
