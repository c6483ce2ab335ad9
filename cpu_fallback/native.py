"""The CPU backend's compiled loops, where they were built: ``_gpu_media_native`` (cpu_fallback/native.cpp).

``pip install .`` compiles ``cpu_fallback/native.cpp`` into the top-level extension
module ``_gpu_media_native`` when it finds a C++ compiler (setup.py; the build goes on
without one). It holds two loops of the CPU backend, each the NumPy code's exact twin
(tests/test_native.py checks them bit for bit, on both paths):

* ``normalize_chunk``: docs/SPEC.md 2 on one chunk of a batch (used by
  :func:`cpu_fallback.normalize.normalize`): each image's range, its rule and the
  conversion to uint8 NHWC in one call, reading the chunk from memory once, with the
  per-element functions of the CUDA kernels (``gpu_media/cuda/src/normalize.cuh``);
* ``png_filter_average``: PNG's Average filter on every row with the count of zero
  filtered bytes (used by :func:`cpu_fallback.encode.encode_png`), per byte
  ``gpu_media/cuda/src/png.cuh``'s ``png_filter_byte``.

Both release the GIL. Without the module (no compiler at install time, or
``GPU_MEDIA_NATIVE=0`` in the environment) the backend runs its NumPy code: same
results, slower (benchmarks/results/cpu-2026-12-07-goals-s7.md).

Examples:
    >>> import numpy as np
    >>> from cpu_fallback import native
    >>> with native.disabled():
    ...     native.get() is None
    True
    >>> native.get() is None or hasattr(native.get(), "normalize_chunk")
    True
"""

from __future__ import annotations

import contextlib
import os
from types import ModuleType
from typing import Iterator

try:
    import _gpu_media_native as _module
except ImportError:  # not built here (no C++ compiler at install time): the NumPy code runs
    _module = None

#: ``GPU_MEDIA_NATIVE=0`` turns the compiled loops off for the process (the NumPy code runs).
ENV = "GPU_MEDIA_NATIVE"
_on = os.environ.get(ENV, "1") != "0"


def built() -> bool:
    """Whether ``_gpu_media_native`` was built and imports here (whatever ``GPU_MEDIA_NATIVE`` says).

    Examples:
        >>> isinstance(built(), bool)
        True
    """
    return _module is not None


def get() -> ModuleType | None:
    """The compiled module, or None where it was not built or is turned off (``GPU_MEDIA_NATIVE=0``, :func:`disabled`).

    Examples:
        >>> get() is None or callable(get().png_filter_average)
        True
    """
    return _module if _on else None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block, :func:`get` answers None: the CPU backend runs its NumPy code (for tests and benchmarks).

    Not for use while other threads of the process encode or normalize: it switches the
    whole process.

    Examples:
        >>> with disabled():
        ...     get() is None
        True
    """
    global _on
    before = _on
    _on = False
    try:
        yield
    finally:
        _on = before
