"""docs/SPEC.md 2 in NumPy: per-image range detection, then one conversion pass to uint8 NHWC.

The batch is walked in blocks of whole images small enough to stay in the CPU
cache (``BLOCK_BYTES``): each block is read from memory once, for its min/max,
and the conversion passes that follow hit the cache. Large batches convert their
blocks on every core.
"""

from __future__ import annotations

import threading

import numpy as np

# Per-row constants of docs/SPEC.md 2, written as y = (x + add) * scale so that every row is
# the same rounded operations: row 0 is (x + 0) * 255 == x * 255, row 1 is
# (x + 1) * 127.5, row 2 is (x + 0) * 1 == x; then clip(0, 255) and truncation.
_ADD = np.array([0.0, 1.0, 0.0])
_SCALE = np.array([255.0, 127.5, 1.0])
BLOCK_BYTES = 1 << 20


def image_ranges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Per-image (lo, hi, nonfinite) of a 4-D batch (axis 0 = image), over finite values.

    Images without a finite value get lo=+inf, hi=-inf; ``nonfinite`` tells whether
    any NaN/inf is present. Integer/bool input: plain min/max.

    Examples:
        >>> lo, hi, nonfinite = image_ranges(np.array([[0.5, np.nan, 2.0], [np.inf, -1.0, 0.0]]))
        >>> lo.tolist(), hi.tolist(), nonfinite
        ([0.5, -1.0], [2.0, 0.0], True)
    """
    axes = tuple(range(1, x.ndim))
    lo = x.min(axis=axes)
    hi = x.max(axis=axes)
    if x.dtype.kind != "f":
        return lo, hi, False
    bad = ~(np.isfinite(lo) & np.isfinite(hi))
    if bad.any():
        sub = x[bad]
        fin = np.isfinite(sub)
        lo[bad] = np.where(fin, sub, np.inf).min(axis=axes)
        hi[bad] = np.where(fin, sub, -np.inf).max(axis=axes)
    return lo, hi, bool(bad.any())


def branch_codes(x: np.ndarray, normalize: bool) -> tuple[np.ndarray, bool]:
    """docs/SPEC.md 2 row per image (0 = [0,1] -> *255, 1 = [-1,1] -> (x+1)*127.5, 2 = clip) and the non-finite flag.

    Examples:
        >>> code, nonfinite = branch_codes(np.array([[0.0, 1.0], [-1.0, 1.0], [0.0, 2.0]]), True)
        >>> code.tolist(), nonfinite
        ([0, 1, 2], False)
    """
    n = x.shape[0]
    if not normalize:
        return np.full(n, 2, dtype=np.intp), True
    lo, hi, nonfinite = image_ranges(x)
    code = np.full(n, 2, dtype=np.intp)
    code[(lo >= -1) & (hi <= 1)] = 1
    code[(lo >= 0) & (hi <= 1)] = 0
    return code, nonfinite


_local = threading.local()
SCRATCH_MAX = 16 << 20  # a thread keeps a scratch buffer up to this size between blocks


def _scratch(shape: tuple, dtype: np.dtype) -> np.ndarray:
    """A float work array of ``shape`` for this thread, reused across blocks (no fresh pages per block)."""
    need = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buf = getattr(_local, "buf", None)
    if buf is None or buf.nbytes < need:
        buf = np.empty(need, np.uint8)
        if need <= SCRATCH_MAX:
            _local.buf = buf
    return buf[:need].view(dtype).reshape(shape)


def _convert_float(x: np.ndarray, code: np.ndarray, nonfinite: bool, out: np.ndarray) -> None:
    dt = x.dtype
    bshape = (-1,) + (1,) * (x.ndim - 1)
    scale = _SCALE[code].astype(dt).reshape(bshape)
    y = _scratch(x.shape, dt)
    if (code == 1).any():
        np.add(x, _ADD[code].astype(dt).reshape(bshape), out=y)
        y *= scale
    elif (code == 2).all():
        np.copyto(y, x)
    else:
        np.multiply(x, scale, out=y)
    if nonfinite or (code == 2).any():  # rows 0 and 1 of finite images already lie in [0, 255]
        np.fmax(y, dt.type(0), out=y)  # NaN and -inf -> 0
        np.minimum(y, dt.type(255), out=y)  # +inf -> 255
    np.copyto(out, y, casting="unsafe")  # float -> uint8 truncates toward zero


def _convert_int(x: np.ndarray, code: np.ndarray, out: np.ndarray) -> None:
    # Clamp to [-1, 255] first (exact: values outside only matter to the clip row),
    # then y = ((x + add) * mult) >> shift, exact in int32.
    bshape = (-1,) + (1,) * (x.ndim - 1)
    if x.dtype.kind == "u":
        xc = np.minimum(x, 255) if x.dtype.itemsize > 1 else x
    else:
        xc = np.maximum(x, -1) if x.dtype.itemsize == 1 else np.clip(x, -1, 255)
    xc = xc.astype(np.int32)
    add = (code == 1).astype(np.int32).reshape(bshape)
    mult = np.where(code == 2, 1, 255).astype(np.int32).reshape(bshape)
    y = ((xc + add) * mult) >> add
    np.clip(y, 0, 255, out=y)
    np.copyto(out, y, casting="unsafe")


#: Batches at least this large (bytes of input) are converted on every core (:func:`normalize`).
PARALLEL_BYTES = 4 << 20


def _blocks(x: np.ndarray) -> list[tuple[int, int]]:
    step = max(1, BLOCK_BYTES // max(1, x[0].nbytes))
    return [(lo, min(lo + step, x.shape[0])) for lo in range(0, x.shape[0], step)]


def normalize(x: np.ndarray, layout: str, normalize: bool = True) -> np.ndarray:
    """(N,H,W,C) "NHWC" or (N,C,H,W) "NCHW" of any supported dtype -> uint8 (N,H,W,C).

    docs/SPEC.md 2: per image, floats computed in their own type and rounded after each
    operation (NumPy's own float16 semantics), integers exactly, NaN -> 0, +inf ->
    255, -inf -> 0, then truncation.

    The batch is walked in blocks of whole images of about ``BLOCK_BYTES``, each
    converted in the input's own layout (contiguous reads); an NCHW block becomes
    uint8 first and is then transposed into the output (the one strided pass is over
    the uint8 bytes, a quarter of float32's, while the block is in the cache). Batches
    of at least :data:`PARALLEL_BYTES` spread their blocks over the backend's threads
    (``cpu_fallback.encode.executor``, one per core), except inside a gpu_media worker
    thread (a dump's chunk workers already use every core).

    Examples:
        >>> normalize(np.array([[[[-1.0]], [[0.0]], [[1.0]]]], np.float32), "NCHW").ravel().tolist()
        [0, 127, 255]
        >>> normalize(np.array([[[[300], [-5]]]], np.int16), "NHWC").ravel().tolist()
        [255, 0]
    """
    nchw = layout == "NCHW"
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    if x.dtype == np.uint8:
        code, _ = branch_codes(x, normalize)
        if (code == 2).all():
            # clip(x, 0, 255) of uint8 is x: no conversion, only the layout
            return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if nchw else x)
    n = x.shape[0]
    out = np.empty((n, x.shape[2], x.shape[3], x.shape[1]) if nchw else x.shape, dtype=np.uint8)

    def work(bounds: tuple[int, int]) -> None:
        lo, hi = bounds
        blk = x[lo:hi]
        code, nonfinite = branch_codes(blk, normalize)
        dst = np.empty(blk.shape, np.uint8) if nchw else out[lo:hi]
        if x.dtype.kind == "f":
            _convert_float(blk, code, nonfinite, dst)
        else:
            _convert_int(blk, code, dst)
        if nchw:
            np.copyto(out[lo:hi], dst.transpose(0, 2, 3, 1))

    blocks = _blocks(x)
    if len(blocks) > 1 and x.nbytes >= PARALLEL_BYTES and not threading.current_thread().name.startswith("gpu-media"):
        from .encode import cores, executor

        if cores() > 1:
            list(executor().map(work, blocks))
            return out
    for b in blocks:
        work(b)
    return out
