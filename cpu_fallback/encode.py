"""SPEC 5 with Pillow: PNG/JPEG/BMP, one image per task in a shared thread pool."""

import io
import os
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


def encode_one(a, file_type: str, quality: int) -> bytes:
    """One uint8 (H,W,C) image, C in {1,3} (JPEG) or {1,3,4} (PNG/BMP), to file bytes."""
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
