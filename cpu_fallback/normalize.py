"""docs/SPEC.md 2 in NumPy: per-image range detection and conversion to uint8 NHWC in one pass over memory.

The batch is cut into *chunks* of about ``CHUNK_BYTES`` of input: several whole images
when images are small, else a band of rows of one image (all its channels). Each chunk
is read from memory once: its min/max are taken, and while it is still in the CPU
cache it is converted by the rule its image's range *so far* gives, and written
straight into the NHWC uint8 output (an NCHW chunk is interleaved there channel by
channel, from a cache-resident uint8 copy: no strided pass over the batch).

The rule of docs/SPEC.md 2 can only move down the table as an image's range grows
([0,1] -> [-1,1] -> clip), so a chunk converted by a rule that the image's full range
later overturns is converted again (the *redo*, at the end, with the final rule; for
real images the rule is known from the first band of rows and nothing is redone).
Large batches run their chunks on every core (``cpu_fallback.encode.executor``).

Where the compiled module was built (:mod:`cpu_fallback.native`), each chunk is one call
of its ``normalize_chunk``: the same rules with the CUDA kernels' per-element functions,
each row's range folded and the row converted while it is in L1 (about 3x the NumPy
chunks' speed on float32; the same bytes, tests/test_native.py). Otherwise the NumPy
code below runs.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from . import native

# Per-row constants of docs/SPEC.md 2, written as y = (x + add) * scale so that every row is
# the same rounded operations: row 0 is (x + 0) * 255 == x * 255, row 1 is
# (x + 1) * 127.5, row 2 is (x + 0) * 1 == x; then clip(0, 255) and truncation.
_ADD = np.array([0.0, 1.0, 0.0])
_SCALE = np.array([255.0, 127.5, 1.0])
#: Input bytes of one chunk: small enough that its float scratch and uint8 copy stay in a core's cache.
CHUNK_BYTES = 1 << 20
#: The most input bytes of one chunk where the compiled loop (cpu_fallback/native.py) converts it (a batch
#: is cut into at least four chunks per core, of at least CHUNK_BYTES).
NATIVE_CHUNK_BYTES = 32 << 20
#: Input bytes of one thread-pool task (a run of consecutive chunks converted by one thread).
TASK_BYTES = 8 << 20


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


def rule_codes(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """docs/SPEC.md 2 row (0 = [0,1], 1 = [-1,1], 2 = clip) for each (lo, hi) range.

    Examples:
        >>> rule_codes(np.array([0.0, -1.0, 0.0, np.inf]), np.array([1.0, 1.0, 2.0, -np.inf])).tolist()
        [0, 1, 2, 0]
    """
    code = np.full(np.shape(lo), 2, dtype=np.intp)
    code[(lo >= -1) & (hi <= 1)] = 1
    code[(lo >= 0) & (hi <= 1)] = 0
    return code


def _rule(lo, hi) -> int:
    """:func:`rule_codes` of one range (Python or NumPy scalars)."""
    if hi <= 1 and lo >= -1:
        return 0 if lo >= 0 else 1
    return 2


#: ``code`` arrays of one image, by row: no allocation per band
_ONE = tuple(np.array([k], np.intp) for k in range(3))


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
    return rule_codes(lo, hi), nonfinite


_local = threading.local()
SCRATCH_MAX = 16 << 20  # a thread keeps a scratch buffer up to this size between chunks


def _scratch(shape: tuple, dtype: np.dtype, slot: str = "buf") -> np.ndarray:
    """A work array of ``shape`` for this thread, reused across chunks (no fresh pages per chunk)."""
    need = math.prod(shape) * np.dtype(dtype).itemsize
    buf = getattr(_local, slot, None)
    if buf is None or buf.nbytes < need:
        buf = np.empty(need, np.uint8)
        if need <= SCRATCH_MAX:
            setattr(_local, slot, buf)
    return buf[:need].view(dtype).reshape(shape)


def _float_rows(x: np.ndarray, code: int, clip: bool) -> np.ndarray:
    """One docs/SPEC.md 2 row for all of ``x`` (floats, in their own type), clipped if ``clip``; a scratch array."""
    dt = x.dtype
    y = _scratch(x.shape, dt)
    if code == 0:
        np.multiply(x, dt.type(255), out=y)
    elif code == 1:
        np.add(x, dt.type(1), out=y)
        np.multiply(y, dt.type(127.5), out=y)
    else:  # clip(x, 0, 255): always clipped
        np.fmax(x, dt.type(0), out=y)  # NaN and -inf -> 0
        np.minimum(y, dt.type(255), out=y)  # +inf -> 255
        return y
    if clip:  # rows 0 and 1 of finite values already lie in [0, 255]
        np.fmax(y, dt.type(0), out=y)
        np.minimum(y, dt.type(255), out=y)
    return y


def _convert_float(x: np.ndarray, code: np.ndarray, nonfinite: bool, out: np.ndarray) -> None:
    """Images ``x`` (4-D, any layout) under their rows ``code`` -> uint8 ``out`` of the same shape."""
    if (code == code[0]).all():
        y = _float_rows(x, int(code[0]), nonfinite)
        np.copyto(out, y, casting="unsafe")  # float -> uint8 truncates toward zero
        return
    dt = x.dtype
    bshape = (-1,) + (1,) * (x.ndim - 1)
    y = _scratch(x.shape, dt)
    np.add(x, _ADD[code].astype(dt).reshape(bshape), out=y)
    y *= _SCALE[code].astype(dt).reshape(bshape)
    np.fmax(y, dt.type(0), out=y)  # NaN and -inf -> 0
    np.minimum(y, dt.type(255), out=y)  # +inf -> 255
    np.copyto(out, y, casting="unsafe")


def _convert_int(x: np.ndarray, code: np.ndarray, out: np.ndarray) -> None:
    """Integer images ``x`` (4-D) under their rows ``code`` -> uint8 ``out`` of the same shape, exactly."""
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


def _chunks(n: int, h: int, image_bytes: int, chunk_bytes: int | None = None) -> list[tuple[int, int, int, int]]:
    """(first image, end image, first row, end row) of each chunk of about ``chunk_bytes`` (CHUNK_BYTES), in order."""
    chunk_bytes = CHUNK_BYTES if chunk_bytes is None else chunk_bytes
    if image_bytes >= chunk_bytes and h > 1:
        bands = min(h, -(-image_bytes // chunk_bytes))
        rows = -(-h // bands)
        return [(i, i + 1, r, min(r + rows, h)) for i in range(n) for r in range(0, h, rows)]
    step = max(1, chunk_bytes // max(1, image_bytes))
    return [(a, min(a + step, n), 0, h) for a in range(0, n, step)]


def _interleave(src: np.ndarray, dst: np.ndarray) -> None:
    """uint8 (k,C,R,W) -> (k,R,W,C) ``dst``: one long strided copy per channel (not C-long inner loops)."""
    for c in range(src.shape[1]):
        np.copyto(dst[..., c], src[:, c])


class _Job:
    """One :func:`normalize` call: the input, the output, and the conversion of one chunk."""

    def __init__(self, x: np.ndarray, nchw: bool, normalize: bool, out: np.ndarray):
        self.x, self.nchw, self.normalize, self.out = x, nchw, normalize, out
        self.h = x.shape[2] if nchw else x.shape[1]
        # the compiled loop (cpu_fallback/native.py) takes aligned input in the machine's byte order
        nat = native.get()
        self.nat = nat if nat is not None and x.dtype.isnative and x.flags.aligned and x.dtype.kind in "biuf" else None

    def block(self, a: int, b: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """The input chunk (4-D, input layout) and its NHWC uint8 destination."""
        src = self.x[a:b, :, r0:r1] if self.nchw else self.x[a:b, r0:r1]
        return src, self.out[a:b, r0:r1]

    def ranges(self, src: np.ndarray, whole: bool):
        """(lo, hi, nonfinite) of a chunk: per image if it holds whole images, else of the whole chunk."""
        if whole:
            return image_ranges(src)
        lo, hi = np.minimum.reduce(src, axis=None), np.maximum.reduce(src, axis=None)
        if src.dtype.kind != "f" or (math.isfinite(lo) and math.isfinite(hi)):
            return lo, hi, False
        fin = np.isfinite(src)
        return np.where(fin, src, np.inf).min(), np.where(fin, src, -np.inf).max(), True

    def convert(self, src: np.ndarray, dst: np.ndarray, code: np.ndarray, nonfinite: bool) -> None:
        """``src`` under its images' rows ``code`` into ``dst`` (NHWC uint8)."""
        x = self.x
        if x.dtype == np.uint8 and (code == 2).all():
            u8 = src  # clip(x, 0, 255) of uint8 is x: only the layout
        elif self.nchw and src.shape[1] > 1:
            u8 = _scratch(src.shape, np.uint8, "u8")
        else:
            u8 = dst if not self.nchw else dst.transpose(0, 3, 1, 2)  # C == 1: the same bytes
        if u8 is not src:
            if x.dtype.kind == "f":
                _convert_float(src, code, nonfinite, u8)
            else:
                _convert_int(src, code, u8)
        if self.nchw and src.shape[1] > 1:
            _interleave(u8, dst)
        elif u8 is src:
            np.copyto(dst, src.transpose(0, 2, 3, 1) if self.nchw else src)

    def task(self, chunks: list) -> list:
        """Convert ``chunks`` in order; per chunk (a, b, r0, r1, lo, hi, nonfinite, code used)."""
        if self.nat is not None:
            return self.native_task(chunks)
        done = []
        seen: dict = {}  # image -> its (lo, hi) over this task's bands so far
        for a, b, r0, r1 in chunks:
            src, dst = self.block(a, b, r0, r1)
            whole = r0 == 0 and r1 == self.h
            if not self.normalize:
                lo = hi = None
                nonfinite, code = True, np.full(b - a, 2, np.intp)
            else:
                lo, hi, nonfinite = self.ranges(src, whole)
                if whole:
                    code = rule_codes(lo, hi)
                else:  # the rule of the image's range so far: a guess the redo corrects
                    slo, shi = seen.get(a, (lo, hi))
                    slo, shi = min(slo, lo), max(shi, hi)
                    seen[a] = (slo, shi)
                    code = _ONE[_rule(slo, shi)]
            self.convert(src, dst, code, nonfinite)
            done.append((a, b, r0, r1, lo, hi, nonfinite, code))
        return done

    def native_task(self, chunks: list) -> list:
        """:meth:`task` by the compiled ``normalize_chunk`` (cpu_fallback/native.py): range, rule, conversion."""
        done = []
        seen: dict = {}  # image -> its (lo, hi) over this task's bands so far
        run, nchw, inf = self.nat.normalize_chunk, self.nchw, math.inf
        guess = 0  # the rule of the last image converted: the next whole image's first guess
        for a, b, r0, r1 in chunks:
            src, dst = self.block(a, b, r0, r1)
            if not self.normalize:
                run(src, dst, nchw, inf, -inf, 2)
                done.append((a, b, r0, r1, None, None, True, np.full(b - a, 2, np.intp)))
            elif r0 == 0 and r1 == self.h:  # whole images
                lo, hi, nonfinite, codes = run(src, dst, nchw, inf, -inf, -1, guess)
                guess = codes[-1]
                done.append((a, b, r0, r1, lo, hi, nonfinite, np.frombuffer(codes, np.uint8).astype(np.intp)))
            else:  # a band: the rule of the image's range so far (the redo corrects a wrong guess)
                slo, shi = seen.get(a, (inf, -inf))
                lo, hi, nonfinite, codes = run(src, dst, nchw, slo, shi, -1, guess)
                guess = codes[0]
                seen[a] = (min(slo, lo[0]), max(shi, hi[0]))
                done.append((a, b, r0, r1, lo[0], hi[0], nonfinite, _ONE[codes[0]]))
        return done

    def redo(self, items: list) -> None:
        """Convert again the bands whose guessed rule was not their image's final one."""
        for a, b, r0, r1, code, nonfinite in items:
            src, dst = self.block(a, b, r0, r1)
            if self.nat is not None:
                self.nat.normalize_chunk(src, dst, self.nchw, math.inf, -math.inf, int(code[0]))
            else:
                self.convert(src, dst, code, nonfinite)


def normalize(x: np.ndarray, layout: str, normalize: bool = True) -> np.ndarray:
    """(N,H,W,C) "NHWC" or (N,C,H,W) "NCHW" of any supported dtype -> uint8 (N,H,W,C).

    docs/SPEC.md 2: per image, floats computed in their own type and rounded after each
    operation (NumPy's own float16 semantics), integers exactly, NaN -> 0, +inf ->
    255, -inf -> 0, then truncation.

    The batch is walked in chunks of about ``CHUNK_BYTES`` (whole images, or bands of
    rows of one image), each read from memory once: its range is taken and it is
    converted while in the cache, straight into the NHWC output (NCHW chunks are
    interleaved there from a cache-resident uint8 copy). A band is converted by the
    rule of its image's range so far; bands whose rule the full range overturns are
    converted again at the end. Batches of at least :data:`PARALLEL_BYTES` spread
    their chunks over the backend's threads (``cpu_fallback.encode.executor``, one
    per core), except inside a gpu_media worker thread (a dump's chunk workers
    already use every core). A uint8 NHWC batch that the rules leave as it is comes
    back as the input itself when it is contiguous.

    Examples:
        >>> normalize(np.array([[[[-1.0]], [[0.0]], [[1.0]]]], np.float32), "NCHW").ravel().tolist()
        [0, 127, 255]
        >>> normalize(np.array([[[[300], [-5]]]], np.int16), "NHWC").ravel().tolist()
        [255, 0]
    """
    nchw = layout == "NCHW"
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    n, h = x.shape[0], x.shape[2] if nchw else x.shape[1]
    if x.dtype == np.uint8 and not nchw:
        code, _ = branch_codes(x, normalize)
        if (code == 2).all():
            # clip(x, 0, 255) of uint8 is x: no conversion, only the layout
            return np.ascontiguousarray(x)
    out = np.empty((n, x.shape[2], x.shape[3], x.shape[1]) if nchw else x.shape, dtype=np.uint8)
    if out.size == 0:
        return out
    job = _Job(x, nchw, normalize, out)
    target = CHUNK_BYTES  # the NumPy code's chunks are cache-sized
    if job.nat is not None:
        # the compiled loop blocks each row in L1 itself: its chunks need not fit a cache, and fewer,
        # larger chunks cost fewer calls (up to NATIVE_CHUNK_BYTES, and at least four per core)
        from .encode import cores

        target = min(NATIVE_CHUNK_BYTES, max(CHUNK_BYTES, x.nbytes // (4 * cores())))
    chunks = _chunks(n, h, x[0].nbytes, target)
    per_task = max(1, TASK_BYTES // max(1, x.nbytes // len(chunks)))
    pool = None
    if len(chunks) > 1 and x.nbytes >= PARALLEL_BYTES and not threading.current_thread().name.startswith("gpu-media"):
        from .encode import cores, executor

        if cores() > 1:
            pool = executor()
            per_task = max(1, min(per_task, -(-len(chunks) // (2 * cores()))))
    tasks = [chunks[i : i + per_task] for i in range(0, len(chunks), per_task)]
    results = list(pool.map(job.task, tasks)) if pool is not None and len(tasks) > 1 else [job.task(t) for t in tasks]
    if not normalize:
        return out
    # bands (chunks of part of an image): the image's final rule from all its bands, and the bands to redo
    bands = [r for res in results for r in res if not (r[2] == 0 and r[3] == h)]
    if not bands:
        return out
    img = np.array([r[0] for r in bands])
    lo = np.array([r[4] for r in bands])
    hi = np.array([r[5] for r in bands])
    ilo = np.full(n, np.inf, lo.dtype if lo.dtype.kind == "f" else np.float64)
    ihi = np.full(n, -np.inf, ilo.dtype)
    np.minimum.at(ilo, img, lo)
    np.maximum.at(ihi, img, hi)
    final = rule_codes(ilo, ihi)
    used = np.array([int(r[7][0]) for r in bands])
    redo = [(r[0], r[1], r[2], r[3], final[r[0] : r[0] + 1], r[6]) for r, u in zip(bands, used) if u != final[r[0]]]
    if redo:
        if pool is not None and len(redo) > 1:
            step = -(-len(redo) // (2 * cores()))
            list(pool.map(job.redo, [redo[i : i + step] for i in range(0, len(redo), step)]))
        else:
            job.redo(redo)
    return out
