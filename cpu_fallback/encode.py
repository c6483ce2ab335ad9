"""docs/SPEC.md 5 on the CPU: the CPU encoders of the codec table (``gpu_media.codecs``).

JPEG: ``imagecodecs.jpeg8_encode`` (libjpeg-turbo; releases the GIL, so images encode
in parallel threads; its bytes are Pillow's, checked in tests/test_encode_fast.py) when
imagecodecs is installed (``pip install ".[fast]"``), else Pillow (which holds
the GIL while it encodes).

PNG at the default level (``compression_level=None``): PNG's Average filter on every
row (:func:`gpu_media.png.filter_average`, vectorized over the image; the compiled
``png_filter_average`` of :mod:`cpu_fallback.native` where it was built), deflate by
zlib-ng (``zlib_ng``, a dependency; the standard library's zlib without it, same bytes;
both release the GIL), Huffman-only for photographs and run-length (``Z_RLE``) for
mostly flat pictures such as masks (:func:`deflate_strategy`), assembled by
:func:`gpu_media.png.assemble`. An explicit
``compression_level`` is Pillow's encoder at that zlib level: ``compression_level=6``
gives ``wandb.Image``'s bytes exactly.

Batches run one image per task in a thread pool kept for the life of the process
(:func:`executor`, one thread per usable core).
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Sequence

import numpy as np
from PIL import Image

from gpu_media import codecs, png
from gpu_media.threads import cores

from . import native

#: The deflate of the default PNG (``compression_level=None``): zlib level 1 with the strategy of
#: :func:`deflate_strategy` (Huffman coding only, or run-length matches), by the first importable of
#: these modules, zlib-ng (``zlib_ng``, a dependency) or the standard library's zlib; both release the
#: GIL. Its output depends on nothing but the input, as content-addressed file names need, and is the
#: same with either library (tests/test_encode_fast.py). ISA-L (``isal.isal_zlib``) is faster (level 1:
#: ~0.55 ms against ~0.8 ms for a 256x256 RGB photograph) but not deterministic: compressing the same
#: bytes in fresh processes, its levels 1 and 2 gave a different valid stream for some inputs in some
#: processes (isal 1.9.1; ``benchmarks/deflate_determinism.py``), and its match hash differs with the
#: CPU's features (intel/isa-l issue 73); so it is not used.
DEFLATE_LIBRARIES = ("zlib_ng.zlib_ng", "zlib")

#: :func:`deflate_strategy` switches to run-length matches where at least this share of the filtered
#: bytes are zero. The 256 photographs of ``benchmarks/cpu_goals.py`` have 8-68% zeros; masks, plots
#: and pictures on flat backgrounds from about 75% on are both faster and smaller with ``Z_RLE``
#: (a 256x256 mask: about 40x faster and 3-8x smaller than Huffman-only).
RLE_ZERO_SHARE = 0.75

_pool = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:  # a forked child has none of its parent's threads
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def executor() -> ThreadPoolExecutor:
    """The process's encode threads (one per core: :func:`cores`), shared by both backends' host encoders.

    Returns:
        the one :class:`~concurrent.futures.ThreadPoolExecutor`, made on first use and kept across calls.

    Examples:
        >>> executor() is executor()
        True
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="gpu-media-cpu")
        return _pool


@functools.lru_cache(maxsize=None)
def optional(name: str) -> ModuleType | None:
    """The module ``name`` if it can be imported, else None; looked up once (``optional.cache_clear()`` resets).

    Examples:
        >>> optional("zlib").__name__, optional("no_such_module_here")
        ('zlib', None)
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def jpeg_library() -> str:
    """Which encoder :func:`encode_jpeg` uses here: ``"imagecodecs"`` or ``"pillow"``.

    Examples:
        >>> jpeg_library() in ("imagecodecs", "pillow")
        True
    """
    ic = optional("imagecodecs")
    return "imagecodecs" if ic is not None and hasattr(ic, "jpeg8_encode") else "pillow"


def deflate_library() -> ModuleType:
    """The zlib-like module of the default PNG's deflate: the first importable of :data:`DEFLATE_LIBRARIES`.

    Examples:
        >>> deflate_library().__name__ in ("zlib_ng.zlib_ng", "zlib")
        True
    """
    for name in DEFLATE_LIBRARIES:
        mod = optional(name)
        if mod is not None:
            return mod
    return zlib


def deflate_strategy(rows: np.ndarray) -> int:
    """The zlib strategy of the default PNG's deflate for these filtered rows: ``Z_RLE`` or ``Z_HUFFMAN_ONLY``.

    Args:
        rows: uint8, any shape: the rows the deflate compresses (filter type bytes included).

    Returns:
        ``zlib.Z_RLE`` (run-length matches: runs of one byte value, as flat areas give after
        the filter) when at least :data:`RLE_ZERO_SHARE` of the bytes are zero, else
        ``zlib.Z_HUFFMAN_ONLY`` (no match search: on photographs the fastest, within ~10% of
        Pillow's level 6 bytes after the Average filter). One pass of ``np.count_nonzero``.

    Examples:
        >>> deflate_strategy(np.zeros((4, 9), np.uint8)) == zlib.Z_RLE
        True
        >>> deflate_strategy(np.arange(36, dtype=np.uint8).reshape(4, 9)) == zlib.Z_HUFFMAN_ONLY
        True
    """
    zeros = rows.size - np.count_nonzero(rows)
    return zlib.Z_RLE if zeros >= RLE_ZERO_SHARE * rows.size else zlib.Z_HUFFMAN_ONLY


def bmp_rgba(a: np.ndarray) -> bytes:
    """uint8 (H,W,4) -> a 32-bit BMP with a BITMAPV4HEADER and an alpha mask (BI_BITFIELDS).

    Pillow writes RGBA as 32-bit BI_RGB, whose fourth byte readers (Pillow
    included) ignore; with explicit channel masks the alpha survives, so BMP stays
    lossless for "RGBA" as docs/SPEC.md 5 requires.

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
        >>> data = bmp_rgba(a)
        >>> data[:2], len(data)
        (b'BM', 146)
        >>> np.array_equal(np.asarray(Image.open(io.BytesIO(data))), a)
        True
    """
    h, w = a.shape[:2]
    pixels = a[::-1, :, [2, 1, 0, 3]].tobytes()  # bottom-up rows, BGRA
    info = struct.pack("<IiiHHIIiiII4I", 108, w, h, 1, 32, 3, len(pixels), 2835, 2835, 0, 0,
                       0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    info += struct.pack("<I", 0x73524742) + bytes(36) + bytes(12)  # "sRGB", endpoints, gamma
    head = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return head + info + pixels


def _pil(a: np.ndarray) -> Image.Image:
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def encode_png(a: np.ndarray, quality: int = 75, compression_level: int | None = None) -> bytes:
    """uint8 (H,W,C), C in {1,3,4} -> PNG bytes ("L", "RGB", "RGBA"; lossless; docs/SPEC.md 5).

    ``compression_level``: None (default) for the fast PNG: Average filter on every
    row and a level-1 deflate by :func:`deflate_library` (zlib-ng where installed),
    Huffman-only or run-length as :func:`deflate_strategy` chooses (on photographs
    about 4.5-5x faster than Pillow at level 1 with Z_RLE, the previous default, for
    files about 10% larger than level 6's; see
    benchmarks/results/cpu-2026-12-07-png.md); or a zlib level 0..9, encoded by
    Pillow with its default strategy (6 gives ``wandb.Image``'s bytes exactly).
    ``quality`` is not used.

    Examples:
        >>> encode_png(np.zeros((2, 2, 1), np.uint8))[1:4]
        b'PNG'
        >>> a = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
        >>> np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(a)))), a)
        True
    """
    if compression_level is not None:
        buf = io.BytesIO()
        _pil(a).save(buf, format="PNG", compress_level=int(compression_level))
        return buf.getvalue()
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    h, w, c = a.shape
    if c not in png.COLOR_TYPES:
        raise ValueError(f"PNG images here have 1, 3 or 4 channels, not {c}")
    nat = native.get()
    if nat is not None:  # the compiled filter (cpu_fallback/native.py): the same rows, and their zero count
        rows, zeros = nat.png_filter_average(np.ascontiguousarray(a))
        strategy = zlib.Z_RLE if zeros >= RLE_ZERO_SHARE * len(rows) else zlib.Z_HUFFMAN_ONLY
    else:
        rows = png.filter_average(a)
        strategy = deflate_strategy(rows)
    lib = deflate_library()
    comp = lib.compressobj(1, zlib.DEFLATED, -15, 9, strategy)  # raw; png.assemble wraps it
    return png.assemble(w, h, c, (comp.compress(rows), comp.flush()), lib.adler32(rows), 1)


def encode_jpeg(a: np.ndarray, quality: int = 75, compression_level: int | None = None) -> bytes:
    """uint8 (H,W,C), C in {1,3} -> baseline JPEG bytes at ``quality`` 1..100 (Pillow's defaults, 4:2:0).

    With imagecodecs installed, ``imagecodecs.jpeg8_encode`` (libjpeg-turbo with the
    settings Pillow uses: the same bytes, and it releases the GIL); else Pillow
    (:func:`jpeg_library`). ``compression_level`` is not used. RGBA is not accepted
    (``gpu_media.encode`` drops the alpha first).

    Examples:
        >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality=90)[:2].hex()
        'ffd8'
    """
    if jpeg_library() == "imagecodecs":
        img = a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a
        return bytes(optional("imagecodecs").jpeg8_encode(np.ascontiguousarray(img), level=int(quality)))
    buf = io.BytesIO()
    _pil(a).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_bmp(a: np.ndarray, quality: int = 75, compression_level: int | None = None) -> bytes:
    """uint8 (H,W,C), C in {1,3,4} -> BMP bytes, lossless (RGBA through :func:`bmp_rgba`).

    ``quality`` and ``compression_level`` are not used.

    Examples:
        >>> encode_bmp(np.zeros((2, 2, 3), np.uint8))[:2]
        b'BM'
    """
    if a.shape[2] == 4:
        return bmp_rgba(a)
    buf = io.BytesIO()
    _pil(a).save(buf, format="BMP")
    return buf.getvalue()


def encode_one(a: np.ndarray, file_type: str, quality: int, compression_level: int | None = None) -> bytes:
    """One uint8 (H,W,C) image to file bytes with this backend's encoder of ``file_type``.

    ``file_type``: any spelling of ``gpu_media.codecs.FILE_TYPES``; the encoder is the
    codec table's ``"cpu"`` entry (:func:`encode_png`, :func:`encode_jpeg`, :func:`encode_bmp`).

    Examples:
        >>> encode_one(np.zeros((2, 2, 3), np.uint8), "jpeg", 75)[:2].hex()
        'ffd8'
    """
    return codecs.encoder(file_type, "cpu")(a, quality, compression_level)


def encode(images: np.ndarray | Sequence[np.ndarray], file_type: str, quality: int,
           compression_level: int | None = None) -> list[bytes]:
    """uint8 (N,H,W,C) or a list of (H,W,C) -> list of ``bytes``, one per image, in order.

    ``file_type``: a spelling of ``gpu_media.codecs.FILE_TYPES`` ("png", "jpg"/"jpeg",
    "bmp"), dispatched through the codec table; ``quality``: JPEG 1..100;
    ``compression_level``: PNG zlib level 0..9, or None for the fast PNG (:func:`encode_png`).
    Images are encoded one per task in the backend's thread pool (:func:`executor`), or
    one after the other when called from a gpu_media worker thread (a thread whose name
    starts with ``gpu-media``: a dump's chunk workers, one per core already).

    Examples:
        >>> files = encode(np.zeros((3, 2, 2, 3), np.uint8), "bmp", 75)
        >>> [f[:2] for f in files]
        [b'BM', b'BM', b'BM']
    """
    fn = codecs.encoder(file_type, "cpu")
    items = list(images)
    if len(items) <= 1 or threading.current_thread().name.startswith("gpu-media"):
        # in one of gpu_media's own worker threads (a dump's chunk worker): they already
        # keep every core busy, so the images of this call are encoded in this thread
        return [fn(a, quality, compression_level) for a in items]
    return list(executor().map(lambda a: fn(a, quality, compression_level), items))
