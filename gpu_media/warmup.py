"""``warmup``: the one-time work of a process's first call, done ahead of time (issue 11)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .backend import get_backend, resolve_device
from .encode import encode
from .normalize import normalize


def warmup(device: str = "auto") -> dict[str, Any]:
    """Do now what the first ``normalize`` / ``encode`` / ``write_dump`` of a process does once.

    Runs each stage once on a tiny image, so the next call on a real batch pays none of
    the start-up cost: on the CPU, the encode thread pool starts and Pillow loads its
    PNG and JPEG encoders; on the GPU, also the CUDA kernels are loaded on the current
    device (the fatbin shipped in the package, or an NVRTC compile where it does not
    fit the GPU), nvCOMP's PNG deflate and nvImageCodec's JPEG encoder are created
    (when installed), and CuPy's pinned-memory pool is touched. Nothing is written.
    Safe to call more than once (later calls are quick) and from any thread.

    Args:
        device: "auto" (default): the GPU backend when one is usable
            (:func:`gpu_media.gpu_available`, or ``GPU_MEDIA_DEVICE``), else the
            CPU; "cpu"; "gpu" (the current CuPy device).

    Returns:
        ``{"device": "cpu" or "gpu", "seconds": float}``: the backend warmed and how
        long it took.

    Raises:
        ValueError: ``device`` is not "auto", "cpu" or "gpu".
        gpu_media.DeviceError: "gpu" without a usable GPU backend.

    Examples:
        >>> import gpu_media
        >>> w = gpu_media.warmup(device="cpu")
        >>> w["device"], w["seconds"] >= 0
        ('cpu', True)
    """
    t0 = time.perf_counter()
    dev = resolve_device(device, on_gpu=True)
    be = get_backend(dev)
    x = np.linspace(0, 1, 2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    if dev == "gpu":
        x = be.xp.asarray(x)
    u8 = normalize(x, layout="NHWC", device=dev)
    encode(u8, file_type="png", device=dev)
    encode(u8, file_type="jpg", device=dev)
    if dev == "gpu":
        be.xp.cuda.get_current_stream().synchronize()
    return {"device": dev, "seconds": time.perf_counter() - t0}
