"""PNG files from raw deflate streams, and the PNG row filters in NumPy (docs/SPEC.md 5).

The GPU PNG encoder (:mod:`gpu_media.cuda.backend` with nvCOMP) filters the rows and
sums their Adler-32 on the device, compresses them with nvCOMP's raw deflate, and
hands each image's compressed bytes here to become a file: :func:`assemble` writes the
signature, IHDR, one IDAT holding a zlib stream (RFC 1950: a 2-byte header, the raw
deflate data, the big-endian Adler-32 of the uncompressed data) and IEND, with each
chunk's CRC-32 computed here on the host (PNG, ISO/IEC 15948 sections 5 and 11.2).

:func:`filter_rows` is the NumPy reference of the device's filter kernel
(``gpu_media/cuda/src/png.cuh``): the five PNG filters and libpng's choice per row.
:func:`encode_reference` puts both together with zlib on the host; it is what the
tests check the assembly with, and what a reader of the GPU path can run without one.

:func:`filter_average` is the CPU backend's fast filter: PNG's Average filter on every
row, vectorized over the whole image in a few NumPy passes (no per-row choice);
``cpu_fallback.encode`` compresses its rows with a deflate that releases the GIL and
assembles the file with :func:`assemble`.

NumPy and the standard library; the CRC-32s are zlib-ng's (``zlib_ng``, a dependency:
:func:`crc32`, several times faster than the standard library's on large chunks, same
values) where it is installed. Nothing here needs a GPU.
"""

from __future__ import annotations

import functools
import importlib
import struct
import zlib
from typing import Callable

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: greyscale, truecolour, truecolour + alpha
FILTERS = ("none", "sub", "up", "average", "paeth")  # PNG filter types 0..4
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))


def zlib_header(level=None) -> bytes:
    """The 2-byte zlib header (RFC 1950 section 2.2) of a deflate stream with a 32 KiB window.

    FLEVEL (informative only: decoders ignore it) follows zlib's own choice for
    ``level``: None, 0 or 1 -> 0 "fastest" (``78 01``), 2..5 -> 1 (``78 5E``),
    6 -> 2 "default" (``78 9C``), 7..9 -> 3 "maximum" (``78 DA``). FCHECK makes the
    16-bit big-endian value a multiple of 31.
    """
    if level is None or level < 2:
        flevel = 0
    elif level < 6:
        flevel = 1
    elif level == 6:
        flevel = 2
    else:
        flevel = 3
    cmf = 0x78  # CM 8 (deflate), CINFO 7 (32 KiB window)
    flg = flevel << 6
    flg |= 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


@functools.lru_cache(maxsize=None)
def crc32() -> Callable:
    """The CRC-32 function of the PNG chunks: ``zlib_ng.zlib_ng.crc32`` where importable, else ``zlib.crc32``.

    Both compute the same CRC-32 (ISO 3309, PNG section 5.5) with the signature
    ``crc32(data, value=0) -> int``; zlib-ng's uses carry-less multiplication
    (PCLMULQDQ / VPCLMULQDQ / ARMv8 CRC), about 10x the standard library's speed on
    the ~100 KB IDAT of a 256x256 photograph. Looked up once (``crc32.cache_clear()``
    resets).

    Examples:
        >>> crc32()(b"IEND") == zlib.crc32(b"IEND") == 0xAE426082
        True
    """
    try:
        return importlib.import_module("zlib_ng.zlib_ng").crc32
    except ImportError:
        return zlib.crc32


def chunk(kind: bytes, data) -> bytes:
    """One PNG chunk: big-endian length, the 4-byte type, the data, CRC-32 of type + data."""
    crc = crc32()(data, zlib.crc32(kind))
    return b"".join((struct.pack(">I", len(data)), kind, data, struct.pack(">I", crc)))


def ihdr(width: int, height: int, channels: int) -> bytes:
    """The IHDR chunk of an 8-bit, non-interlaced image with 1 ("L"), 3 ("RGB") or 4 ("RGBA") channels."""
    if channels not in COLOR_TYPES:
        raise ValueError(f"PNG images here have 1, 3 or 4 channels, not {channels}")
    if not (1 <= width < 2**31 and 1 <= height < 2**31):
        raise ValueError(f"PNG width and height are 1 .. 2**31-1, got {width}x{height}")
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[channels], 0, 0, 0))


def assemble(width: int, height: int, channels: int, raw_deflate, adler: int, level=None) -> bytes:
    """A whole PNG file from the raw deflate stream of its filtered rows.

    Args:
        width: the image's width in pixels.
        height: the image's height in pixels.
        channels: 1, 3 or 4 (8 bits each).
        raw_deflate: bytes-like (bytes, memoryview, a NumPy uint8 array): a complete
            raw deflate stream (RFC 1951, no zlib header) of the ``height`` rows, each
            its filter type byte and ``width * channels`` filtered bytes; or a list or
            tuple of such pieces, whose concatenation is that stream (a compressor's
            ``compress()`` and ``flush()`` outputs, joined here without another copy).
        adler: the Adler-32 of those uncompressed rows (0 .. 2**32-1).
        level: the compression level the stream was made at, for the zlib header's
            informative FLEVEL (see :func:`zlib_header`).

    Returns:
        The file's bytes: signature, IHDR, one IDAT, IEND. The deflate data is copied
        once, into the result.

    Raises:
        ValueError: a channel count other than 1, 3, 4, or an empty image.

    Examples:
        >>> c = zlib.compressobj(6, zlib.DEFLATED, -15)
        >>> rows = bytes([0, 7, 0, 9])  # two rows of one grey pixel, filter type 0
        >>> parts = [c.compress(rows), c.flush()]
        >>> data = assemble(1, 2, 1, parts, zlib.adler32(rows))
        >>> data == assemble(1, 2, 1, b"".join(parts), zlib.adler32(rows))
        True
        >>> data[:8] == SIGNATURE, data[-12:] == _IEND
        (True, True)
    """
    parts = [memoryview(p).cast("B") for p in (raw_deflate if isinstance(raw_deflate, (list, tuple))
                                               else (raw_deflate,))]
    head = zlib_header(level)
    tail = struct.pack(">I", int(adler) & 0xFFFFFFFF)
    crc_of = crc32()
    crc = crc_of(head, zlib.crc32(b"IDAT"))
    for p in parts:
        crc = crc_of(p, crc)
    crc = crc_of(tail, crc)
    idat_len = len(head) + sum(len(p) for p in parts) + len(tail)
    return b"".join((SIGNATURE, ihdr(width, height, channels), struct.pack(">I", idat_len), b"IDAT", head, *parts,
                     tail, struct.pack(">I", crc), _IEND))


def filter_candidates(image: np.ndarray) -> np.ndarray:
    """uint8 (H,W,C) -> uint8 (5, H, W*C): every row under each of the five PNG filters.

    Filter f of byte x with left a (``C`` bytes back, 0 in the first pixel), above b
    (0 in the first row) and above-left c: None x, Sub x-a, Up x-b, Average
    x-floor((a+b)/2), Paeth x-paeth(a,b,c), modulo 256 (PNG section 9).
    """
    h, w, c = image.shape
    x = image.reshape(h, w * c).astype(np.int16)
    a = np.zeros_like(x)
    a[:, c:] = x[:, :-c]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    cc = np.zeros_like(x)
    cc[1:, c:] = x[:-1, :-c]
    p = a + b - cc
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - cc)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, cc))
    out = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth])
    return (out & 0xFF).astype(np.uint8)


def filter_average(image: np.ndarray) -> np.ndarray:
    """uint8 (H,W,C) -> uint8 (H, 1+W*C): every row under PNG's Average filter (type 3), with its type byte.

    Byte x with left a (``C`` bytes back, 0 in the first pixel) and above b (0 in the
    first row) becomes ``x - floor((a + b) / 2)`` modulo 256 (PNG section 9.3), computed
    in uint8 as ``x - ((a & b) + ((a ^ b) >> 1))``, a few passes over the whole image.
    On photographs it compresses about 3% smaller than Up for one more pass or two, and
    unlike libpng's per-row choice (:func:`filter_rows`) it costs no candidate filters.

    Examples:
        >>> a = np.array([[[10], [20]], [[30], [40]]], np.uint8)
        >>> filter_average(a).tolist()  # [type, x - floor((a+b)/2), ...] per row
        [[3, 10, 15], [3, 25, 15]]
        >>> bool((filter_average(a)[:, 1:] == filter_candidates(a)[3]).all())
        True
    """
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    h, w, c = image.shape
    n = w * c  # bytes per row
    r = image.reshape(h, n)
    out = np.empty((h, 1 + n), dtype=np.uint8)
    out[:, 0] = 3
    o = out[:, 1:]
    if h > 1:
        # rows 1.. as one flat run of bytes (contiguous operands: fewer, faster NumPy loops): above is n
        # bytes back, left c bytes back; the first pixel of each row, whose "left" here is the end of the
        # row above, is redone below
        f = r.reshape(-1)
        a, b = f[n - c:-c], f[:-n]
        t = np.bitwise_xor(a, b)
        t >>= 1
        t += a & b
        np.subtract(r[1:], t.reshape(h - 1, n), out=o[1:])
        np.subtract(r[1:, :c], r[:-1, :c] >> 1, out=o[1:, :c])  # first pixel of each row: a = 0
    o[0, :c] = r[0, :c]  # the first pixel of the first row: a = b = 0
    np.subtract(r[0, c:], r[0, :-c] >> 1, out=o[0, c:])  # first row: b = 0
    return out


def filter_rows(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (H,W,C) -> (rows (H*(1+W*C),) uint8, filter types (H,) uint8), as libpng chooses.

    Each row takes the filter whose bytes, read as signed (-128..127), have the least
    sum of absolute values, ties to the lowest type (libpng's ``png_write_find_filter``
    heuristic); ``rows`` is each row's filter type followed by its filtered bytes: the
    data a PNG's zlib stream compresses. The reference of ``gm_png_filter``.
    """
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    h, w, c = image.shape
    cands = filter_candidates(image)
    score = np.abs(cands.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, H)
    best = np.argmin(score, axis=0).astype(np.uint8)  # argmin: the first of equal scores
    rows = np.empty((h, 1 + w * c), dtype=np.uint8)
    rows[:, 0] = best
    rows[:, 1:] = cands[best, np.arange(h)]
    return rows.reshape(-1), best


def encode_reference(image: np.ndarray, level: int = 6) -> bytes:
    """uint8 (H,W,C) or (H,W) -> PNG bytes: :func:`filter_rows`, zlib's raw deflate at ``level``, :func:`assemble`.

    The host model of the GPU encoder (whose deflate is nvCOMP's); decodes to exactly
    ``image`` in any PNG reader.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    rows, _ = filter_rows(image)
    comp = zlib.compressobj(level, zlib.DEFLATED, -15)
    raw = comp.compress(rows.tobytes()) + comp.flush()
    h, w, c = image.shape
    return assemble(w, h, c, raw, zlib.adler32(rows.tobytes()), level)
