"""docs/SPEC.md 5 with Pillow: the CPU encoders of the codec table (``gpu_media.codecs``).

One image per task in a shared thread pool.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from PIL import Image

from gpu_media import codecs

# PNG when compression_level is None: zlib level 1 with the Z_RLE strategy. On the
# demo photographs (256x256) this encodes about 4x faster than Pillow's default
# (level 6, the Z_DEFAULT_STRATEGY; what wandb.Image writes) for files about 7%
# larger; see benchmarks/results/. An explicit level uses Pillow's default strategy,
# so compression_level=6 gives wandb's bytes exactly.
FAST_PNG = {"compress_level": 1, "compress_type": zlib.Z_RLE}

_pool = None
_pool_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The process's encode threads (one per core), shared by both backends' host encoders.

    Returns:
        the one :class:`~concurrent.futures.ThreadPoolExecutor`, made on first use.

    Examples:
        >>> executor() is executor()
        True
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="gpu-media-encode")
        return _pool


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

    ``compression_level``: zlib level 0..9 with Pillow's default strategy (6 gives
    wandb.Image's bytes), or None for :data:`FAST_PNG`. ``quality`` is not used.

    Examples:
        >>> encode_png(np.zeros((2, 2, 1), np.uint8))[1:4]
        b'PNG'
    """
    buf = io.BytesIO()
    opts = FAST_PNG if compression_level is None else {"compress_level": int(compression_level)}
    _pil(a).save(buf, format="PNG", **opts)
    return buf.getvalue()


def encode_jpeg(a: np.ndarray, quality: int = 75, compression_level: int | None = None) -> bytes:
    """uint8 (H,W,C), C in {1,3} -> baseline JPEG bytes at ``quality`` 1..100 (Pillow's defaults, 4:2:0).

    ``compression_level`` is not used. RGBA is not accepted (``gpu_media.encode``
    drops the alpha first).

    Examples:
        >>> encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality=90)[:2].hex()
        'ffd8'
    """
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
    ``compression_level``: PNG zlib level 0..9, or None for :data:`FAST_PNG`.
    Images are encoded one per task in a shared thread pool.

    Examples:
        >>> files = encode(np.zeros((3, 2, 2, 3), np.uint8), "bmp", 75)
        >>> [f[:2] for f in files]
        [b'BM', b'BM', b'BM']
    """
    fn = codecs.encoder(file_type, "cpu")
    items = list(images)
    if len(items) <= 1:
        return [fn(a, quality, compression_level) for a in items]
    return list(executor().map(lambda a: fn(a, quality, compression_level), items))
