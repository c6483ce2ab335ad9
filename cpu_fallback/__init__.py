"""The NumPy + Pillow backend of gpu_media (identical semantics to the CuPy one).

Satisfies the :class:`gpu_media.backend.Backend` protocol (``name``, ``xp``,
``normalize``, ``mask_stats``, ``confusion``, ``draw_outlines``, ``encode``, ``to_host``,
``chunk_bytes``) and is registered as device "cpu". Its encoders are the codec
table's ``"cpu"`` entries (``cpu_fallback.encode.encode_png`` and so on).
Work is vectorized over the whole batch (per-image ranges come from one reduction
over the batch); encoding runs in a thread pool, since Pillow releases the GIL
while it compresses.

Examples:
    >>> import numpy as np
    >>> import cpu_fallback
    >>> u8 = cpu_fallback.normalize(np.array([[[[0.0], [0.5], [1.0]]]]), "NHWC")
    >>> u8.ravel().tolist()
    [0, 127, 255]
    >>> files = cpu_fallback.encode(np.repeat(u8, 3, axis=3), "png", 75, None)
    >>> len(files), files[0][1:4]
    (1, b'PNG')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .boxes import draw_outlines
from .encode import encode
from .masks import confusion, mask_stats
from .normalize import normalize

name = "cpu"
xp = np


def to_host(x: Any) -> np.ndarray:
    """Return ``x`` as a NumPy array (it already is one on this backend).

    Examples:
        >>> to_host([1, 2]).tolist()
        [1, 2]
    """
    return np.asarray(x)


def chunk_bytes() -> int:
    """Bytes of uint8 pixels a dump normalizes and encodes at once on this backend (64 MiB).

    Examples:
        >>> chunk_bytes() // 2**20
        64
    """
    return 64 << 20


__all__ = ["normalize", "mask_stats", "confusion", "draw_outlines", "encode", "to_host", "chunk_bytes", "name", "xp"]
