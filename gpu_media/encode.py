"""Stage 4: uint8 images to PNG / JPEG / BMP bytes (docs/SPEC.md 5)."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

from . import _arrays
from .backend import get_backend, resolve_device
from .checks import check_int
from .codecs import FILE_TYPES, lookup
from .errors import ImageError

__all__ = ["FILE_TYPES", "check_format", "check_size", "drop_alpha_for_jpeg", "encode"]


def check_format(file_type: str, quality: int, compression_level: int | None = None) -> str:
    """Validate ``file_type``/``quality``/``compression_level``; return the canonical codec name.

    Args:
        file_type: a spelling of :data:`FILE_TYPES` (``gpu_media.codecs``).
        quality: an integer 1..100.
        compression_level: None or an integer 0..9.

    Returns:
        the codec table's name for ``file_type``: "png", "jpg" (for "jpg"/"jpeg") or "bmp".

    Raises:
        gpu_media.MediaError: the first bad argument, checked in the order
            compression_level, file_type, quality.

    Examples:
        >>> check_format("jpeg", 90)
        'jpg'
        >>> check_format("png", 75, compression_level=10)
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: compression_level must be None or an integer from 0 to 9, got 10
    """
    check_int(compression_level, "compression_level", lo=0, hi=9, optional=True)
    codec = lookup(file_type)
    check_int(quality, "quality", lo=1, hi=100)
    return codec.name


def check_size(sizes: Sequence[tuple[int, int]], codec: str) -> None:
    """Every image's H and W at most the codec's ``max_side`` (JPEG: 65500; PNG, BMP: any; docs/SPEC.md 2, 5).

    The one check of both backends: the public :func:`encode` and the dump call it
    before anything is encoded or written.

    Args:
        sizes: ``(H, W)`` of each image, in batch order.
        codec: a ``file_type`` spelling (``gpu_media.codecs``).

    Raises:
        gpu_media.ImageError: naming the first image (batch index) over the limit.

    Examples:
        >>> check_size([(480, 640), (70000, 10)], "png")
        >>> check_size([(480, 640), (70000, 10)], "jpg")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.ImageError: image 1: image of height 70000 and width 10 exceeds JPEG's maximum dimension ...
    """
    c = lookup(codec)
    if c.max_side is None:
        return
    for i, (h, w) in enumerate(sizes):
        if h > c.max_side or w > c.max_side:
            raise ImageError(
                f"image {i}: image of height {h} and width {w} exceeds {c.label}'s maximum dimension "
                f"{c.max_side} (PNG and BMP have no such limit)", index=i, item=(h, w))


def drop_alpha_for_jpeg(images_u8: Any, codec: str) -> Any:
    """A codec without alpha (the table's ``alpha=False``: JPEG): RGBA -> RGB, one warning per call.

    wandb does the same. Other codecs' images come back unchanged.

    Args:
        images_u8: uint8 ``(N,H,W,C)`` or a list of ``(H,W,C)`` (any array library).
        codec: a spelling of :data:`FILE_TYPES`.

    Returns:
        ``images_u8`` without the fourth channel when ``codec`` has no alpha, else unchanged.

    Examples:
        >>> import warnings
        >>> import numpy as np
        >>> rgba = np.zeros((1, 2, 2, 4), np.uint8)
        >>> drop_alpha_for_jpeg(rgba, "png").shape
        (1, 2, 2, 4)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     drop_alpha_for_jpeg(rgba, "jpg").shape
        (1, 2, 2, 3)
        >>> str(caught[0].message)
        'JPEG does not support transparency: the alpha channel is dropped'
    """
    c = lookup(codec)
    if c.alpha:
        return images_u8
    message = f"{c.label} does not support transparency: the alpha channel is dropped"
    items = images_u8 if isinstance(images_u8, list) else None
    if items is None:
        if images_u8.shape[-1] != 4:
            return images_u8
        warnings.warn(message, stacklevel=3)
        return images_u8[..., :3]
    if any(a.shape[-1] == 4 for a in items):
        warnings.warn(message, stacklevel=3)
        return [a[..., :3] if a.shape[-1] == 4 else a for a in items]
    return items


def encode(images_u8: Any, *, file_type: str = "png", quality: int = 75, compression_level: int | None = None,
           device: str = "auto") -> list[bytes]:
    """Encode uint8 images, one file's bytes per image.

    Args:
        images_u8: uint8 ``(N,H,W,C)`` (NHWC, C in {1,3,4}: modes "L", "RGB",
            "RGBA"), one ``(H,W,C)``/``(H,W)`` image, or a list of ``(H,W,C)``
            of differing sizes; NumPy, CuPy, PyTorch or DLPack arrays.
        file_type: "png" (default), "jpg"/"jpeg" or "bmp", as in wandb.
        quality: JPEG quality 1..100 (default 75, Pillow's and so wandb's);
            ignored by PNG and BMP.
        compression_level: PNG only. None (default): the backend's fast PNG (on
            the CPU: Average row filter + Huffman-only deflate by zlib-ng, run-length
            for mostly flat pictures such as masks; about 4.5-5x faster than Pillow at
            level 1 and 20x faster than its default, for files about 10% larger than the
            default's on photographs); 0..9: that zlib level with
            Pillow's default strategy (6 is Pillow's default: the same bytes as
            ``wandb.Image``).
        device: "auto", "cpu" or "gpu" (``gpu_media.backend``).

    Returns:
        ``list[bytes]``, one per image in batch order. PNG and BMP are lossless
        (decoding gives back the exact array); JPEG drops RGBA's alpha with one
        ``UserWarning`` (docs/SPEC.md 5).

    Raises:
        gpu_media.MediaError: an unknown ``file_type``, a quality outside 1..100,
            a compression_level outside 0..9.
        gpu_media.ImageError: images that are not uint8 or not 1/3/4 channels; for
            JPEG, H or W above 65500 (the codec table's ``max_side``).

    Examples:
        Two RGB images to PNG; PNG is lossless, so Pillow decodes the exact pixels:

        >>> import io
        >>> import numpy as np
        >>> from PIL import Image
        >>> from gpu_media import encode
        >>> u8 = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
        >>> files = encode(u8, device="cpu")
        >>> len(files), files[0][1:4]
        (2, b'PNG')
        >>> np.array_equal(np.asarray(Image.open(io.BytesIO(files[1]))), u8[1])
        True
        >>> encode(u8, file_type="jpg", quality=90, device="cpu")[0][:3].hex()  # a JPEG's SOI marker
        'ffd8ff'
    """
    codec = check_format(file_type, quality, compression_level)
    images_u8 = _arrays.check_images(images_u8)
    dev = resolve_device(device, _arrays.on_gpu(images_u8))
    shape = getattr(images_u8, "shape", None)  # lists and PIL images have none: layout by wandb's rule
    layout = "NHWC" if shape is not None and len(shape) == 4 else None
    groups, n = _arrays.image_groups(images_u8, layout, dev)
    items = [None] * n
    for g in groups:
        if str(g.array.dtype) != "uint8":
            raise ImageError(f"image {g.indices[0]}: encode takes uint8 images, got {g.array.dtype} "
                             "(call normalize first)")
        arr = g.array.transpose(0, 2, 3, 1) if g.layout == "NCHW" else g.array
        for k, i in enumerate(g.indices):
            items[i] = arr[k]
    check_size([tuple(int(v) for v in a.shape[:2]) for a in items], codec)
    batch = groups[0].array if len(groups) == 1 and groups[0].layout == "NHWC" else items
    return get_backend(dev).encode(drop_alpha_for_jpeg(batch, codec), codec, int(quality), compression_level)
