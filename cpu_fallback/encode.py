"""SPEC 5 with Pillow: PNG/JPEG/BMP, one image per task in a shared thread pool."""

import io
import os
import struct
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

# Pillow's default PNG settings (zlib level 6, no optimize), the ones wandb.Image
# uses, so the same pixels give the same bytes, sha256 and file names as wandb.
PNG_COMPRESS_LEVEL = 6

_pool = None


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="gpu-media-encode")
    return _pool


def bmp_rgba(a) -> bytes:
    """uint8 (H,W,4) -> a 32-bit BMP with a BITMAPV4HEADER and an alpha mask (BI_BITFIELDS).

    Pillow writes RGBA as 32-bit BI_RGB, whose fourth byte readers (Pillow
    included) ignore; with explicit channel masks the alpha survives, so BMP stays
    lossless for "RGBA" as SPEC 5 requires.
    """
    h, w = a.shape[:2]
    pixels = a[::-1, :, [2, 1, 0, 3]].tobytes()  # bottom-up rows, BGRA
    info = struct.pack("<IiiHHIIiiII4I", 108, w, h, 1, 32, 3, len(pixels), 2835, 2835, 0, 0,
                       0x00FF0000, 0x0000FF00, 0x000000FF, 0xFF000000)
    info += struct.pack("<I", 0x73524742) + bytes(36) + bytes(12)  # "sRGB", endpoints, gamma
    head = struct.pack("<2sIHHI", b"BM", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return head + info + pixels


def encode_one(a, file_type: str, quality: int) -> bytes:
    """One uint8 (H,W,C) image, C in {1,3} (JPEG) or {1,3,4} (PNG/BMP), to file bytes."""
    if file_type == "bmp" and a.shape[2] == 4:
        return bmp_rgba(a)
    img = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
    buf = io.BytesIO()
    if file_type == "png":
        img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif file_type == "jpg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="BMP")
    return buf.getvalue()


def encode(images, file_type: str, quality: int):
    """uint8 (N,H,W,C) or a list of (H,W,C) -> list of ``bytes`` (file_type "png", "jpg" or "bmp")."""
    items = list(images)
    if len(items) <= 1:
        return [encode_one(a, file_type, quality) for a in items]
    return list(_executor().map(lambda a: encode_one(a, file_type, quality), items))
