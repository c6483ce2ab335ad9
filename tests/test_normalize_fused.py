"""The fused docs/SPEC.md 2 kernel (``gm_normalize_<t>``, issue 11.3) without a GPU.

``gm_normalize_<t>`` reads each image about once from device memory: its range tickets
and its convert tickets run in one kernel, in the order of ``fused_ticket``
(gpu_media/cuda/src/normalize.cuh). Here, with the host build of the kernels
(tests/kernels_host.py):

* the ticket order, against its NumPy statement (``cuda_kernels.fused_schedule``), and
  the property the kernel's freedom from deadlock rests on: every range ticket of an
  image comes before each of its convert tickets;
* ``cuda_kernels.fused_plan`` (tiles, lag, grid), pure Python;
* the whole fused path (``cuda_kernels.normalize(method="fused")``, driving the serial
  twin of the kernel: the same per-thread functions, with 256 or fewer "threads" and
  tickets taken in counter order) bit for bit against cpu_fallback, on every dtype,
  both layouts, strided views, tiles of 1 pixel up, every lag.

What only a GPU shows (atomics, the wait on the per-image count, block reductions,
speed) is in tests/test_normalize_gpu.py.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_kernels_host import ALL_DTYPES, SETTINGS, VIEWS, _batch, _view, flush_to_zero

import cpu_fallback
import kernels_host
from gpu_media.cuda import kernels as cuda_kernels


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if kernels_host.compiler() is None:
        pytest.skip("no C++ compiler (g++, c++, clang++ or $CXX) to build the kernels' host library")
    return kernels_host.build(tmp_path_factory.mktemp("kernels_host"))


def set_threads(lib, threads: int) -> int:
    fn = lib.gmh_set_fused_threads
    fn.restype = ctypes.c_int
    return fn(ctypes.c_int(threads))


def host_schedule(lib, n, tiles, lag):
    out = np.empty((2 * n * tiles, 3), np.int64)
    kernels_host.call(lib, "gmh_fused_schedule", np.int64(n), np.int64(tiles), np.int64(lag), out)
    return out


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("tiles", [1, 2, 7])
def test_schedule(lib, n, tiles):
    for lag in (-3, 0, 1, 2, 3, n - 1, n, n + 4):
        sched = host_schedule(lib, n, tiles, lag)
        np.testing.assert_array_equal(sched, cuda_kernels.fused_schedule(n, tiles, lag))
        # every (phase, image, tile) exactly once
        assert sorted(map(tuple, sched.tolist())) == [(p, i, k) for p in (0, 1) for i in range(n) for k in range(tiles)]
        phase, img = sched[:, 0], sched[:, 1]
        order = np.arange(len(sched))
        for i in range(n):
            ranges, converts = order[(phase == 0) & (img == i)], order[(phase == 1) & (img == i)]
            assert ranges.max() < converts.min()  # a convert ticket waits only on earlier tickets
        # image s's range tickets sit just before image (s - lag)'s convert tickets
        eff = max(1, min(n, lag))
        for s in range(eff, n):
            first_convert = order[(phase == 1) & (img == s - eff)].min()
            assert first_convert == order[(phase == 0) & (img == s)].max() + 1


def test_schedule_keeps_images_in_order():
    sched = cuda_kernels.fused_schedule(4, 1, 1)
    assert sched[:, :2].tolist() == [[0, 0], [0, 1], [1, 0], [0, 2], [1, 1], [0, 3], [1, 2], [1, 3]]
    assert cuda_kernels.fused_schedule(3, 2, 9)[:, :2].tolist() == [[0, 0]] * 2 + [[0, 1]] * 2 + [[0, 2]] * 2 + \
        [[1, 0]] * 2 + [[1, 1]] * 2 + [[1, 2]] * 2


H100 = cuda_kernels.DeviceInfo(132, 50 << 20)


def test_fused_plan():
    # the benchmark batch: 256 crops 512x512x3 float32 on an H100
    p = cuda_kernels.fused_plan(256, 512, 512, 3, 4, H100)
    assert p.tile_px == cuda_kernels.FUSED_TILE_PIXELS and p.tiles == -(-512 * 512 // p.tile_px)
    assert p.tickets == 2 * 256 * p.tiles
    assert p.blocks == 132 * cuda_kernels.FUSED_BLOCKS_PER_SM
    image = 512 * 512 * 3 * 4
    assert p.lag == max(int(cuda_kernels.FUSED_L2_FRACTION * H100.l2_bytes) // image, -(-p.blocks // (2 * p.tiles)) + 1)
    assert 1 <= p.lag <= 8
    # images larger than L2: the lag only covers what the grid holds in flight
    big = cuda_kernels.fused_plan(3, 8192, 8192, 3, 4, H100)
    assert big.lag == 2 and big.tiles == -(-8192 * 8192 // big.tile_px)
    # many tiny images: one tile each, all ranges before all conversions when they fit L2
    tiny = cuda_kernels.fused_plan(10_000, 2, 3, 1, 2, H100)
    assert (tiny.tiles, tiny.lag, tiny.tickets) == (1, 10_000, 20_000)
    # the grid never exceeds the tickets nor MAX_BLOCKS
    assert cuda_kernels.fused_plan(1, 1, 1, 1, 1, H100).blocks == 2
    assert cuda_kernels.fused_plan(10**6, 64, 64, 3, 4, cuda_kernels.DeviceInfo(10**6, 1)).blocks == \
        cuda_kernels.MAX_BLOCKS
    # knobs
    k = cuda_kernels.fused_plan(5, 10, 10, 3, 4, H100, tile_px=7, blocks_per_sm=1, l2_fraction=0, lag=3)
    assert (k.tile_px, k.tiles, k.lag, k.blocks) == (7, 15, 3, 132)
    assert cuda_kernels.fused_plan(5, 10, 10, 3, 4, H100, lag=99).lag == 5
    assert cuda_kernels.fused_plan(5, 10, 10, 3, 4, H100, lag=0).lag == 1
    for bad in ({"tile_px": 0}, {"blocks_per_sm": 0}, {"l2_fraction": 1.5}, {"l2_fraction": -0.1}):
        with pytest.raises(ValueError):
            cuda_kernels.fused_plan(5, 10, 10, 3, 4, H100, **bad)
    with pytest.raises(ValueError):
        cuda_kernels.fused_plan(0, 10, 10, 3, 4, H100)


def test_unknown_method(lib):
    x = np.zeros((1, 2, 2, 3), np.float32)
    with pytest.raises(ValueError, match="one of"):
        cuda_kernels.normalize(x, "NHWC", True, xp=np, launch=kernels_host.host_launch(lib), method="three-pass")


def _fused(lib, x, layout, norm, threads=256, log=None, **plan):
    prev = set_threads(lib, threads)
    try:
        return cuda_kernels.normalize(x, layout, norm, xp=np, launch=kernels_host.host_launch(lib, log),
                                      method="fused", device=cuda_kernels.DeviceInfo(2, 1 << 12), **plan)
    finally:
        set_threads(lib, prev)


@SETTINGS
@given(dtype=st.sampled_from(ALL_DTYPES), n=st.integers(1, 5), h=st.integers(1, 9), w=st.integers(1, 9),
       c=st.sampled_from([1, 3, 4, 2]), layout=st.sampled_from(["NHWC", "NCHW"]), view=st.sampled_from(VIEWS),
       tile_px=st.sampled_from([None, 1, 2, 5, 17]), lag=st.sampled_from([None, 1, 2, 100]),
       threads=st.sampled_from([256, 1, 3, 8]), seed=st.integers(0, 2**32 - 1), ftz=st.booleans())
def test_fused_matches_cpu(lib, dtype, n, h, w, c, layout, view, tile_px, lag, threads, seed, ftz):
    """c=2 (outside docs/SPEC.md 1, taken by the kernel all the same) runs the pixel-by-pixel branch."""
    rng = np.random.default_rng(seed)
    x = _view(_batch(rng, dtype, n, h, w, c, layout), view, layout)
    with np.errstate(all="ignore"):
        want = cpu_fallback.normalize(x, layout, True)
    log: list = []
    with flush_to_zero(lib, ftz and dtype != "float64"):
        got = _fused(lib, x, layout, True, threads, log, tile_px=tile_px, lag=lag)
    assert log == [f"gm_normalize_{cuda_kernels.suffix(x.dtype)}"]
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [256, 7])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_fused_every_float16_and_no_finite_images(lib, dtype, threads):
    every = np.arange(65536, dtype=np.uint16).view(np.float16).astype(dtype).reshape(256, 256, 1)
    with np.errstate(invalid="ignore"):
        scaled = np.where(np.isfinite(every), every / 65504, every)
    x = np.stack([every, np.full_like(every, np.nan), np.full_like(every, np.inf), np.full_like(every, -np.inf),
                  scaled, np.clip(every, -1, 1), np.clip(every, 0, 1)])
    for layout, arr in (("NHWC", x), ("NCHW", x.transpose(0, 3, 1, 2))):
        with np.errstate(all="ignore"):
            want = cpu_fallback.normalize(arr, layout, True)
        for lag in (None, 1):
            np.testing.assert_array_equal(_fused(lib, arr, layout, True, threads, lag=lag), want)


def test_fused_without_normalize_is_the_plain_conversion(lib):
    x = np.random.default_rng(3).normal(100, 200, (3, 5, 4, 3)).astype(np.float32)
    log: list = []
    got = _fused(lib, x, "NHWC", False, log=log)
    assert log == ["gm_convert_f32"]
    np.testing.assert_array_equal(got, cpu_fallback.normalize(x, "NHWC", False))


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint8", "bool"])
def test_fused_state_and_codes(lib, dtype):
    """The twin leaves what the kernel leaves: the two-pass keys, every range ticket counted, each image's code."""
    rng = np.random.default_rng(5)
    x = np.stack([_batch(rng, dtype, 1, 13, 11, 3, "NHWC")[0] for _ in range(6)])
    xs = x.view(np.uint8) if x.dtype == np.bool_ else x
    n, h, w, c = x.shape
    plan = cuda_kernels.fused_plan(n, h, w, c, xs.dtype.itemsize, tile_px=10, lag=2)
    keys = cuda_kernels.image_ranges(xs, xp=np, launch=kernels_host.host_launch(lib))
    codes_two = np.empty(n, np.uint8)
    kernels_host.call(lib, "gm_codes", keys, codes_two, np.int64(n), np.int32(ord(cuda_kernels.key_kind(xs.dtype))))
    state = np.zeros(3 * n + 1, np.uint64)
    state[:2 * n] = cuda_kernels.init_keys(n, cuda_kernels.key_kind(xs.dtype), np).reshape(-1)
    out, codes = np.empty((n, h, w, c), np.uint8), np.full(n, 77, np.uint8)
    sn, sh, sw, sc = cuda_kernels.element_strides(xs)
    kernels_host.call(lib, f"gm_normalize_{cuda_kernels.suffix(xs.dtype)}", xs, out,
                      *(np.int64(v) for v in (n, h, w, c, sn, sh, sw, sc)), np.int32(1), np.int64(plan.tile_px),
                      np.int64(plan.lag), state, codes)
    np.testing.assert_array_equal(state[:2 * n].reshape(n, 2), keys)
    assert (state[2 * n:3 * n] == plan.tiles).all()
    assert state[3 * n] == plan.tickets + 1  # the one "block" took every ticket, then found none left
    np.testing.assert_array_equal(codes, codes_two)
    np.testing.assert_array_equal(out, cpu_fallback.normalize(x, "NHWC", True))
