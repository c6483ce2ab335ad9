"""The codec table: every file type gpu_media encodes, in one place (docs/SPEC.md 5).

One :class:`Codec` per format: its canonical name, the other spellings accepted for
it, its Pillow and nvImageCodec names, the channel counts its encoders take and
which options it reads, and the encoder each backend uses for it. Everything that
knows about formats reads this table: ``gpu_media.encode`` (:data:`FILE_TYPES`,
``check_format``), ``DumpOptions``, the CLI's ``--format`` choices, both backends'
``encode`` and ``gpu_media.cuda.nvimgcodec`` (its ``CODECS``/``CHANNELS``).

Adding a codec (say WebP) means one entry in :data:`CODECS` plus its encoder
function in each backend (the ``encoders`` field names them); nothing else changes.

The spelling a caller gives (``"jpg"`` or ``"jpeg"``) is kept as given for the file
extension and for the ``"format"`` field of wandb's JSON, as ``wandb.Image`` does
(``self.format = file_type``); the table decides only which encoder runs.

This module is pure data plus two look-ups; it imports nothing but the standard
library and ``gpu_media.errors``/``gpu_media.checks``, so every layer may use it.
"""

from __future__ import annotations

import functools
import pkgutil
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

from .checks import check_choice


@dataclass(frozen=True)
class Codec:
    """One file format and how each backend encodes it.

    Attributes:
        name: canonical name, what the backends are handed ("png", "jpg", "bmp").
        aliases: other accepted spellings of ``file_type`` ("jpeg" for "jpg").
        label: the format's usual name, as Pillow spells it ("PNG", "JPEG", "BMP");
            also used in messages.
        nvimgcodec_name: nvImageCodec's codec name ("png", "jpeg", "bmp").
        channels: the channel counts C of uint8 ``(H,W,C)`` images its encoders
            take (1: "L", 3: "RGB", 4: "RGBA").
        lossless: decoding gives back the exact array (docs/SPEC.md 5).
        alpha: keeps a fourth channel; without it ``gpu_media.encode`` drops RGBA's
            alpha first, with one ``UserWarning`` (wandb does the same).
        uses_quality: reads ``quality`` (1..100, libjpeg's scale).
        uses_compression_level: reads ``compression_level`` (zlib level 0..9).
        max_side: the largest H and W its encoders take, or None for any size the
            format holds (JPEG: 65500, wandb's ``Image.MAX_DIMENSION``, under
            libjpeg's 65535; PNG and BMP: None, as wandb; docs/SPEC.md 2). Checked by
            ``gpu_media.encode.check_size`` before anything is encoded.
        encoders: ``{backend name: "module:function"}``, the encoder of this codec on
            each registered backend. The function's signature is the backend's own:
            ``cpu_fallback``'s take one ``(H,W,C)`` image,
            ``(a, quality, compression_level) -> bytes``; ``gpu_media.cuda.backend``'s
            take a batch, ``(images, codec, quality, compression_level) -> list[bytes]``.
    """

    name: str
    aliases: tuple[str, ...]
    label: str
    nvimgcodec_name: str
    channels: tuple[int, ...]
    lossless: bool
    alpha: bool
    uses_quality: bool
    uses_compression_level: bool
    encoders: Mapping[str, str]
    max_side: int | None = None

    @property
    def spellings(self) -> tuple[str, ...]:
        """``(name, *aliases)``: every accepted ``file_type`` for this codec.

        Examples:
            >>> lookup("jpg").spellings
            ('jpg', 'jpeg')
        """
        return (self.name, *self.aliases)


def _encoders(**by_backend: str) -> Mapping[str, str]:
    return MappingProxyType(dict(by_backend))


#: The codecs, in the order :data:`FILE_TYPES` (and so error messages and ``--format``) lists them.
CODECS: tuple[Codec, ...] = (
    Codec("png", (), "PNG", "png", (1, 3, 4), lossless=True, alpha=True, uses_quality=False,
          uses_compression_level=True,
          encoders=_encoders(cpu="cpu_fallback.encode:encode_png", gpu="gpu_media.cuda.backend:encode_png")),
    Codec("jpg", ("jpeg",), "JPEG", "jpeg", (1, 3), lossless=False, alpha=False, uses_quality=True,
          uses_compression_level=False,
          encoders=_encoders(cpu="cpu_fallback.encode:encode_jpeg", gpu="gpu_media.cuda.backend:encode_jpeg"),
          max_side=65500),
    Codec("bmp", (), "BMP", "bmp", (1, 3, 4), lossless=True, alpha=True, uses_quality=False,
          uses_compression_level=False,
          encoders=_encoders(cpu="cpu_fallback.encode:encode_bmp", gpu="gpu_media.cuda.backend:encode_on_host")),
)

#: Every accepted ``file_type`` spelling, wandb.Image's accepted formats: ("png", "jpg", "jpeg", "bmp").
FILE_TYPES: tuple[str, ...] = tuple(s for c in CODECS for s in c.spellings)

_BY_SPELLING: dict[str, Codec] = {s: c for c in CODECS for s in c.spellings}


def lookup(file_type: str, what: str = "file_type") -> Codec:
    """The :class:`Codec` of a ``file_type`` spelling ("png", "jpg", "jpeg", "bmp").

    Args:
        file_type: any spelling in :data:`FILE_TYPES`.
        what: how an error message names the argument.

    Returns:
        the codec (``lookup("jpeg").name == "jpg"``).

    Raises:
        gpu_media.MediaError: ``"file_type must be one of ['png', 'jpg', 'jpeg', 'bmp'], got 'gif'"``
            (as ``gpu_media.checks.check_choice``), with ``item`` set.

    Examples:
        >>> c = lookup("jpeg")
        >>> c.name, c.label, c.channels, c.lossless
        ('jpg', 'JPEG', (1, 3), False)
        >>> lookup("gif")
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: file_type must be one of ['png', 'jpg', 'jpeg', 'bmp'], got 'gif'
    """
    check_choice(file_type, what, FILE_TYPES)
    return _BY_SPELLING[file_type]


@functools.lru_cache(maxsize=None)
def _resolve(ref: str) -> Callable:
    return pkgutil.resolve_name(ref)


def encoder(file_type: str, backend: str) -> Callable:
    """The encoder function of ``file_type``'s codec on the backend named ``backend``.

    Imports the module named in :attr:`Codec.encoders` on first use (so the GPU
    backend's entries are only imported by the GPU backend).

    Args:
        file_type: any spelling in :data:`FILE_TYPES`.
        backend: a backend name ("cpu", "gpu", or one added with the codec's ``encoders``).

    Returns:
        the encoder function, with the backend's own signature (see :class:`Codec`).

    Raises:
        gpu_media.MediaError: an unknown ``file_type``.
        KeyError: the codec has no encoder for ``backend``.

    Examples:
        >>> import numpy as np
        >>> fn = encoder("png", "cpu")
        >>> fn.__module__, fn.__name__
        ('cpu_fallback.encode', 'encode_png')
        >>> fn(np.zeros((2, 2, 3), np.uint8), 75, None)[1:4]
        b'PNG'
    """
    codec = lookup(file_type)
    try:
        ref = codec.encoders[backend]
    except KeyError:
        raise KeyError(f"codec {codec.name!r} has no encoder for backend {backend!r} "
                       f"(it has {sorted(codec.encoders)}); add one in gpu_media/codecs.py") from None
    return _resolve(ref)
