"""Driving the CUDA kernels of ``gpu_media/cuda/src/`` from any array library (docs/SPEC.md 2-4).

The GPU backend (:mod:`gpu_media.cuda.backend`) runs the functions below with
``xp=cupy`` and a ``launch`` that starts the compiled kernels; the tests run the very
same functions with ``xp=numpy`` and the serial host twins of the kernels
(``tests/kernels_host_shim.cpp``, same names and arguments), so the planning done here
(layouts, element strides, tiles, range keys, box order) is checked without a GPU.
This module imports neither CuPy nor anything that needs a GPU.

``launch(name, blocks, args)`` starts kernel ``name`` on ``blocks`` blocks of
:data:`BLOCK` threads; ``args`` holds arrays of ``xp`` (passed as device pointers to
their first element), ``numpy.int64`` (``long long``) and ``numpy.int32`` (``int``)
scalars, in the order of the kernel's parameters in ``kernels.cu``.
"""

from __future__ import annotations

import hashlib
import os
from typing import NamedTuple

import numpy as np

KERNEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
HEADERS = ("common.cuh", "normalize.cuh", "masks.cuh", "boxes.cuh", "png.cuh")
SOURCE = "kernels.cu"
# --fmad=false: no a*b+c contraction anywhere (docs/SPEC.md 2 rounds after each operation).
NVRTC_OPTIONS = ("--fmad=false", "-std=c++17")
# What CuPy's compiler appends to every kernel's options, after ours (so it wins): float32
# subnormals are flushed to zero. The kernels are written to give NumPy's results under
# it (see f32_to_f64 in common.cuh); the compile tests use it too.
CUPY_APPENDED_OPTIONS = ("-ftz=true",)
# The precompiled kernels shipped in the package (scripts/build_kernels.py): machine code
# for each of these architectures, plus PTX of the first, which the driver compiles for
# any later GPU. The stamp beside the fatbin names the source digest it was built from.
FATBIN = os.path.join(KERNEL_DIR, "kernels.fatbin")
FATBIN_STAMP = FATBIN + ".json"
FATBIN_ARCHS = (80, 86, 89, 90, 100)
BLOCK = 256  # GM_BLOCK in kernels.cu: every kernel is launched with this many threads
TILE = 1 << 14  # elements per block-tile of the range and mask reductions
MAX_BLOCKS = 1 << 16  # grid cap; the kernels loop (grid-stride) over the rest

# docs/SPEC.md 2 conversion paths (issue 11.3): "two-pass" (gm_range_<t>, gm_codes, gm_convert_<t>:
# the input is read twice from device memory) and "fused" (gm_normalize_<t>: ranges and
# conversion in one kernel, scheduled so an image's second read hits L2; see fused_plan).
NORMALIZE_METHODS = ("two-pass", "fused")
DEFAULT_NORMALIZE_METHOD = "two-pass"  # "fused" waits for a GPU run's parity and speed (README)
# The fused kernel's knobs (fused_plan): pixels per ticket, blocks per SM (a persistent
# grid; more blocks only queue), and the share of L2 that the images between an image's
# range and its conversion may fill.
FUSED_TILE_PIXELS = 2048
FUSED_BLOCKS_PER_SM = 4
FUSED_L2_FRACTION = 0.25


class DeviceInfo(NamedTuple):
    """What the fused kernel's plan needs of the device: its SM count and L2 size in bytes."""

    sms: int
    l2_bytes: int


# A100's (108 SMs, 40 MiB): the plan's assumption where the device is not known.
DEFAULT_DEVICE = DeviceInfo(108, 40 << 20)


class FusedPlan(NamedTuple):
    """Launch geometry of ``gm_normalize_<t>`` (see :func:`fused_plan`)."""

    tile_px: int  # pixels per ticket
    tiles: int  # tickets per image and phase
    lag: int  # images between an image's range tickets and its convert tickets
    tickets: int  # 2 * n * tiles
    blocks: int  # grid size


def fused_plan(n: int, h: int, w: int, c: int, itemsize: int, device: DeviceInfo = DEFAULT_DEVICE, *,
               tile_px: int | None = None, blocks_per_sm: int | None = None,
               l2_fraction: float | None = None, lag: int | None = None) -> FusedPlan:
    """Host-side plan of the fused docs/SPEC.md 2 kernel for n images of (h, w, c) elements of ``itemsize`` bytes.

    Tickets (``fused_ticket`` in src/normalize.cuh) run image by image, the range
    tickets of image s beside the convert tickets of image s - lag. ``lag`` is the
    larger of: the images whose bytes fill ``l2_fraction`` of L2 (their second read
    then hits L2), and the images the grid holds in flight at once (about
    blocks / (2 * tiles): with fewer, a convert ticket would wait for its image's last
    range tickets). At least 1, at most n; any value is correct, only speed depends on
    it (``lag`` given: that, clamped to [1, n]). Defaults: :data:`FUSED_TILE_PIXELS`,
    :data:`FUSED_BLOCKS_PER_SM`, :data:`FUSED_L2_FRACTION`. Raises ValueError on n, h,
    w, c or itemsize < 1, and on knobs out of range.
    """
    if min(n, h, w, c, itemsize) < 1:
        raise ValueError(f"fused_plan needs n, h, w, c, itemsize >= 1, got {(n, h, w, c, itemsize)}")
    tile_px = FUSED_TILE_PIXELS if tile_px is None else int(tile_px)
    blocks_per_sm = FUSED_BLOCKS_PER_SM if blocks_per_sm is None else int(blocks_per_sm)
    l2_fraction = FUSED_L2_FRACTION if l2_fraction is None else float(l2_fraction)
    if tile_px < 1 or blocks_per_sm < 1 or not 0 <= l2_fraction <= 1:
        raise ValueError(f"bad fused plan knobs: tile_px {tile_px}, blocks_per_sm {blocks_per_sm}, "
                         f"l2_fraction {l2_fraction}")
    hw = h * w
    tiles = -(-hw // tile_px)
    tickets = 2 * n * tiles
    blocks = int(max(1, min(tickets, MAX_BLOCKS, max(1, device.sms) * blocks_per_sm)))
    in_flight = -(-blocks // (2 * tiles)) + 1
    fits = int(l2_fraction * device.l2_bytes) // (hw * c * itemsize)
    lag = int(max(1, min(n, max(in_flight, fits) if lag is None else int(lag))))
    return FusedPlan(tile_px, tiles, lag, tickets, blocks)


def fused_schedule(n: int, tiles: int, lag: int) -> np.ndarray:
    """(2*n*tiles, 3) int64: (phase, image, tile) of each ticket in order; phase 0 range, 1 convert.

    The order of ``fused_ticket`` (src/normalize.cuh), written out in NumPy for the
    tests and for reading: they check the two agree and that every range ticket of an
    image precedes each of its convert tickets (what makes the kernel deadlock-free).
    """
    lag = max(1, min(n, lag))
    units = [(0, s) for s in range(lag)]
    for s in range(lag, n):
        units += [(0, s), (1, s - lag)]
    units += [(1, s) for s in range(n - lag, n)]
    out = np.empty((len(units) * tiles, 3), np.int64)
    for u, (phase, img) in enumerate(units):
        out[u * tiles:(u + 1) * tiles] = np.stack([np.full(tiles, phase), np.full(tiles, img), np.arange(tiles)], 1)
    return out

SUFFIXES = ("u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f16", "f32", "f64")
_MIN_INIT = {"f": 0xFFF0000000000000, "i": 0xFFFFFFFFFFFFFFFF, "u": 0xFFFFFFFFFFFFFFFF}
_MAX_INIT = {"f": 0x000FFFFFFFFFFFFF, "i": 0, "u": 0}  # keys of -inf / the smallest value
_SIGN = np.uint64(1 << 63)


def kernel_names() -> list[str]:
    """Every ``extern "C"`` kernel of ``kernels.cu`` that this module launches."""
    return [f"gm_{k}_{s}" for k in ("range", "convert", "normalize", "mask") for s in SUFFIXES] + [
        "gm_codes", "gm_outlines", "gm_png_filter", "gm_png_adler"]


def source() -> str:
    """``kernels.cu``, headed by a digest of the ``.cuh`` files it includes.

    Compile it with ``-I`` :data:`KERNEL_DIR`. The digest is there for CuPy's kernel
    cache, whose key is the source text and options only: a changed header then means
    a changed key, never a stale binary.
    """
    digest = hashlib.sha256()
    for name in HEADERS:
        with open(os.path.join(KERNEL_DIR, name), "rb") as f:
            digest.update(f.read())
    with open(os.path.join(KERNEL_DIR, SOURCE), encoding="utf-8") as f:
        code = f.read()
    return f"// headers sha256 {digest.hexdigest()}\n{code}"


def source_digest() -> str:
    """The sha256 of what the kernels are built from.

    That is :func:`source` (kernels.cu and its headers' digest), the compile options
    and :data:`FATBIN_ARCHS`.
    """
    h = hashlib.sha256(source().encode())
    h.update(repr((NVRTC_OPTIONS, CUPY_APPENDED_OPTIONS, FATBIN_ARCHS)).encode())
    return h.hexdigest()


def fatbin_path():
    """The shipped fatbin when its stamp matches the current sources, else None (then compile with NVRTC)."""
    import json

    try:
        with open(FATBIN_STAMP, encoding="utf-8") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    if stamp.get("source_sha256") != source_digest() or not os.path.isfile(FATBIN):
        return None
    return FATBIN


def nvcc_fatbin_command(nvcc: str, src: str, out: str) -> list:
    """The nvcc command that builds the fatbin from ``src`` (a copy of :func:`source`), with the backend's options."""
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in FATBIN_ARCHS]
    gencode.append(f"-gencode=arch=compute_{FATBIN_ARCHS[0]},code=compute_{FATBIN_ARCHS[0]}")
    return [nvcc, "-fatbin", "-Xfatbin=-compress-all", *gencode, *NVRTC_OPTIONS, *CUPY_APPENDED_OPTIONS,
            f"-I{KERNEL_DIR}", "--Werror", "all-warnings", "-o", out, src]


def suffix(dtype) -> str:
    """The kernel suffix of a dtype: bool is read as u8, float16 as f16, ..."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return "u8"
    if dt.kind not in "iuf" or (dt.kind == "f" and dt.itemsize not in (2, 4, 8)):
        raise TypeError(f"no kernel for dtype {dt}")
    return f"{dt.kind}{8 * dt.itemsize}"


def key_kind(dtype) -> str:
    """'f' (floats), 'i' (signed integers) or 'u' (unsigned integers and bool): how range keys read."""
    kind = np.dtype(dtype).kind
    return "u" if kind == "b" else kind


def blocks_for(items: int, per_block: int = BLOCK) -> int:
    """Blocks for ``items`` work items of ``per_block`` each, at least 1, at most :data:`MAX_BLOCKS`."""
    return int(max(1, min(MAX_BLOCKS, -(-int(items) // per_block))))


def element_strides(a):
    """Strides of ``a`` in elements (any sign), or None when a stride is not a whole element."""
    item = a.dtype.itemsize
    if any(s % item for s in a.strides):
        return None
    return tuple(int(s) // item for s in a.strides)


def images_dense(shape, strides) -> bool:
    """Whether one image (``shape``/``strides`` without the batch axis) fills a contiguous run.

    Any axis order counts (NCHW and NHWC alike): the range and mask reductions do not
    care about order, so such images are read as one flat run of elements.
    """
    expect = 1
    for st, sz in sorted((st, sz) for sz, st in zip(shape, strides) if sz != 1):
        if st != expect:
            return False
        expect *= sz
    return True


def _strided(a, xp):
    st = element_strides(a)
    if st is None:
        a = xp.ascontiguousarray(a)
        st = element_strides(a)
    return a, st


def init_keys(n: int, kind: str, xp):
    """(n, 2) uint64 keys: column 0 the identity of min, column 1 of max, for ``kind``.

    Made on the host and copied (``xp.asarray``): no CuPy elementwise kernel, which
    CuPy would compile with NVRTC on a first call.
    """
    keys = np.empty((n, 2), dtype=np.uint64)
    keys[:, 0] = np.uint64(_MIN_INIT[kind])
    keys[:, 1] = np.uint64(_MAX_INIT[kind])
    return xp.asarray(keys)


def decode_keys(keys, dtype, xp):
    """(n, 2) uint64 min/max keys -> (lo, hi) in ``dtype`` (bool: uint8).

    Floats without a finite value decode to lo=+inf, hi=-inf (the initial keys).
    """
    kind = key_kind(dtype)
    out = np.dtype(np.uint8) if np.dtype(dtype) == np.bool_ else np.dtype(dtype)

    def one(k):
        k = xp.ascontiguousarray(k)
        if kind == "f":
            bits = xp.where((k >> np.uint64(63)) != 0, k & ~_SIGN, ~k)
            return xp.ascontiguousarray(bits).view(xp.float64)
        if kind == "i":
            return (k ^ _SIGN).view(xp.int64)
        return k

    return one(keys[:, 0]).astype(out), one(keys[:, 1]).astype(out)


def image_ranges(x, *, xp, launch):
    """Per-image (min, max) keys of a 4-D batch ``x`` (N,H,W,C), over finite values (docs/SPEC.md 2).

    One launch of ``gm_range_<t>`` for the whole batch. Returns (n, 2) uint64 keys.
    """
    if x.dtype == np.bool_:
        x = x.view(xp.uint8)
    x, (sn, sh, sw, sc) = _strided(x, xp)
    n, h, w, c = (int(v) for v in x.shape)
    keys = init_keys(n, key_kind(x.dtype), xp)
    per = h * w * c
    if n and per:
        tile = min(per, TILE)
        dense = images_dense(x.shape[1:], (sh, sw, sc))
        launch(f"gm_range_{suffix(x.dtype)}", blocks_for(n * -(-per // tile), 1),
               (x, *_i64(n, h, w, c, sn, sh, sw, sc), np.int32(dense), np.int64(tile), keys))
    return keys


def normalize(x, layout: str, normalize: bool = True, *, xp, launch, method: str = DEFAULT_NORMALIZE_METHOD,
              device: DeviceInfo = DEFAULT_DEVICE, **plan):
    """(N,H,W,C) "NHWC" or (N,C,H,W) "NCHW" of any supported dtype -> uint8 (N,H,W,C) (docs/SPEC.md 2).

    Any strides (views, slices, negative steps). ``method`` (one of
    :data:`NORMALIZE_METHODS`) with ``normalize`` True: "two-pass" is three launches for
    the whole batch (per-image ranges, branch codes, conversion); "fused" is one launch
    of ``gm_normalize_<t>``, planned by :func:`fused_plan` from ``device`` and ``plan``
    (its keyword knobs). Both give the same bits. ``normalize`` False is one conversion
    launch either way. Raises ValueError on an unknown method.
    """
    if method not in NORMALIZE_METHODS:
        raise ValueError(f"normalize method {method!r} is not one of {NORMALIZE_METHODS}")
    if layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    if x.dtype == np.bool_:
        x = x.view(xp.uint8)
    x, (sn, sh, sw, sc) = _strided(x, xp)
    n, h, w, c = (int(v) for v in x.shape)
    out = xp.empty((n, h, w, c), dtype=xp.uint8)
    if out.size == 0:
        return out
    if normalize and method == "fused":
        p = fused_plan(n, h, w, c, x.dtype.itemsize, device, **plan)
        kind = key_kind(x.dtype)
        state = np.zeros(3 * n + 1, dtype=np.uint64)  # keys | done | ticket counter, one copy to the device
        state[0:2 * n:2] = np.uint64(_MIN_INIT[kind])
        state[1:2 * n:2] = np.uint64(_MAX_INIT[kind])
        codes = xp.empty(n, dtype=xp.uint8)
        dense = images_dense(x.shape[1:], (sh, sw, sc))
        launch(f"gm_normalize_{suffix(x.dtype)}", p.blocks,
               (x, out, *_i64(n, h, w, c, sn, sh, sw, sc), np.int32(dense), *_i64(p.tile_px, p.lag), xp.asarray(state),
                codes))
        return out
    if normalize:
        keys = image_ranges(x, xp=xp, launch=launch)
        codes = xp.empty(n, dtype=xp.uint8)
        launch("gm_codes", blocks_for(n), (keys, codes, np.int64(n), np.int32(ord(key_kind(x.dtype)))))
    else:
        codes = xp.asarray(np.full(n, 2, dtype=np.uint8))  # a copy, not a CuPy fill kernel
    launch(f"gm_convert_{suffix(x.dtype)}", blocks_for(n * h * w),
           (x, out, *_i64(n, h, w, c, sn, sh, sw, sc), codes))
    return out


def mask_stats(masks, *, xp, launch):
    """(N,H,W) masks of any dtype -> (hist (N,256) int64, lo (N,), hi (N,), bad (N,) int64) (docs/SPEC.md 3).

    As ``cpu_fallback.mask_stats``: ``hist[i, v]`` counts pixels of integral value v in
    [0, 255]; lo/hi are the min/max over finite values in the mask's dtype (bool:
    uint8; floats without a finite value: +inf/-inf); ``bad`` counts non-finite or
    fractional values. One launch of ``gm_mask_<t>`` for the whole batch.
    """
    dtype = masks.dtype
    m = masks.view(xp.uint8) if dtype == np.bool_ else masks
    m, (sn, sh, sw) = _strided(m, xp)
    n, h, w = (int(v) for v in m.shape)
    hist = xp.zeros((n, 256), dtype=xp.uint64)
    keys = init_keys(n, key_kind(m.dtype), xp)
    bad = xp.zeros(n, dtype=xp.uint64)
    per = h * w
    if n and per:
        tile = min(per, TILE)
        dense = images_dense(m.shape[1:], (sh, sw))
        launch(f"gm_mask_{suffix(m.dtype)}", blocks_for(n * -(-per // tile), 1),
               (m, *_i64(n, h, w, sn, sh, sw), np.int32(dense), np.int64(tile), hist, keys, bad))
    lo, hi = decode_keys(keys, dtype, xp)
    return hist.view(xp.int64), lo, hi, bad.view(xp.int64)


def box_plan(rects, image_index, colors, n: int, h: int, w: int):
    """Host-side order of the boxes for ``gm_outlines`` (docs/SPEC.md 4 step 5).

    rects (M,4) int64 inclusive x0, y0, x1, y1; image_index (M,); colors (M,3) uint8.
    Drops boxes that draw nothing here (empty, or wholly outside the (h, w) image, or
    of an image outside 0..n-1), then sorts by image with the order kept (stable), so
    the highest index among an image's boxes is the one painted last. Returns NumPy
    (rects (K,4) int64, colors (K,3) uint8, offsets (n+1,) int64): image i's boxes are
    ``offsets[i]:offsets[i+1]``.
    """
    r = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    idx = np.asarray(image_index, dtype=np.int64).reshape(-1)
    col = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    x0, y0, x1, y1 = r.T
    keep = (x1 >= x0) & (y1 >= y0) & (x1 >= 0) & (y1 >= 0) & (x0 < w) & (y0 < h) & (idx >= 0) & (idx < n)
    r, idx, col = r[keep], idx[keep], col[keep]
    order = np.argsort(idx, kind="stable")
    offsets = np.searchsorted(idx[order], np.arange(n + 1), side="left").astype(np.int64)
    return np.ascontiguousarray(r[order]), np.ascontiguousarray(col[order]), offsets


def draw_outlines(images, rects, image_index, colors, thickness: int, *, xp, launch):
    """Burn outlines into a new uint8 NHWC batch (docs/SPEC.md 4), as ``cpu_fallback.draw_outlines``.

    images: uint8 (N,H,W,C), C in {1,3,4}; C=1 becomes RGB. rects, image_index,
    colors: host arrays (see :func:`box_plan`). One launch of ``gm_outlines``: each
    pixel takes the colour of the last box whose outline covers it (alpha 255 on RGBA).
    """
    images = xp.ascontiguousarray(images)
    n, h, w, c = (int(v) for v in images.shape)
    out = xp.empty((n, h, w, 3 if c == 1 else c), dtype=xp.uint8)
    if out.size == 0:
        return out
    r, col, offsets = box_plan(_numpy(rects), _numpy(image_index), _numpy(colors), n, h, w)
    launch("gm_outlines", blocks_for(n * h * w),
           (images, out, *_i64(n, h, w, c), xp.asarray(r), xp.asarray(col), xp.asarray(offsets),
            np.int64(thickness)))
    return out


# Longest PNG row (filter byte + W*C bytes) gm_png_filter takes: its per-row sums (filter
# scores in 32 bits, Adler-32 parts in 64 bits before their one reduction) are exact up
# to here. Longer rows are encoded on the host.
PNG_MAX_ROW = 1 << 24


def png_rows(images, *, xp, launch, stride=None):
    """uint8 (N,H,W,C) -> (filtered (N, stride) uint8, adler (N,) uint32) (docs/SPEC.md 5, PNG).

    ``stride`` (default and least ``per = H*(1+W*C)``) is the distance between images in
    bytes, so image starts can be aligned for nvCOMP; bytes past ``per`` are left
    unwritten. Row y of image i is ``filtered[i, y*(1+W*C) : (y+1)*(1+W*C)]``: its PNG filter type
    (libpng's rule: the least sum of absolute values of the five filters, see
    ``src/png.cuh``) then its filtered bytes, so ``filtered[i]`` is the data a PNG's
    zlib stream compresses; ``adler[i]`` its Adler-32. Two launches for the batch:
    ``gm_png_filter`` (one warp per row) and ``gm_png_adler`` (one thread per image).
    """
    images = xp.ascontiguousarray(images)
    n, h, w, c = (int(v) for v in images.shape)
    per = h * (1 + w * c)
    if 1 + w * c > PNG_MAX_ROW:
        raise ValueError(f"PNG rows of {1 + w * c} bytes are longer than {PNG_MAX_ROW}")
    stride = per if stride is None else int(stride)
    if stride < per:
        raise ValueError(f"stride {stride} < {per} bytes per image")
    filtered = xp.empty((n, stride), dtype=xp.uint8)
    if n == 0 or h == 0:
        return filtered, xp.asarray(np.ones(n, dtype=np.uint32))
    adler = xp.empty(n, dtype=xp.uint32)  # gm_png_adler writes every entry
    row_adler = xp.empty(n * h, dtype=xp.uint32)
    launch("gm_png_filter", blocks_for(n * h, BLOCK // 32), (images, filtered, row_adler, *_i64(n, h, w, c, stride)))
    launch("gm_png_adler", blocks_for(n), (row_adler, adler, *_i64(n, h, 1 + w * c)))
    return filtered, adler


def _numpy(a):
    if hasattr(a, "__cuda_array_interface__") and hasattr(a, "get"):
        return a.get()
    return np.asarray(a)


def _i64(*values):
    return tuple(np.int64(v) for v in values)
