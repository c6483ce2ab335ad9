"""The pipeline in one file: the backend interface and the device dispatch.

Every stage of gpu_media is split the same way. The public function in
``gpu_media/<stage>.py`` parses and validates its arguments and raises every
error (so both backends raise the same type and message), then hands plain arrays
to a backend, which does the per-pixel work. A backend is a module with these
functions (``cpu_fallback`` is the NumPy + Pillow one):

=================  ==========================================================  ========
function           what it does                                                 SPEC
=================  ==========================================================  ========
``normalize``      ``(x, layout, normalize: bool)`` -> uint8 ``(N,H,W,C)``;      2
                   ``x`` is ``(N,H,W,C)`` ("NHWC") or ``(N,C,H,W)`` ("NCHW")
                   of any supported dtype; per-image ranges.
``mask_stats``     ``(masks (N,H,W))`` -> ``hist (N,256) int64``, ``lo (N,)``,    3
                   ``hi (N,)`` float64 (min/max over all values),
                   ``bad (N,) int64`` (count of non-integral/non-finite values).
``draw_outlines``  ``(images uint8 NHWC, rects (M,4) int64 x0,y0,x1,y1           4
                   inclusive, image_index (M,), colors (M,3) uint8,
                   thickness)`` -> uint8 NHWC (new array; C=1 becomes 3).
``encode``         ``(images uint8 NHWC or list of HWC, file_type, quality,     5
                   compression_level)`` -> ``list[bytes]``.
``to_host``        any array of this backend -> ``numpy.ndarray``.
=================  ==========================================================  ========

Device rule (``device=``): "cpu" and "gpu" are honoured as given; "gpu" without a
usable GPU backend raises :class:`gpu_media.DeviceError`, never a silent fallback.
"auto" is overridden by the environment variable ``GPU_MEDIA_DEVICE`` (cpu, gpu or
auto); otherwise "auto" means the GPU backend when the images already live on a
GPU and the backend is usable, else the CPU fallback.
"""

from __future__ import annotations

import importlib
import os

from .errors import DeviceError

DEVICES = ("auto", "cpu", "gpu")
_GPU_MODULE = "gpu_media.cupy_backend"
_gpu_state: dict = {}


def _load_gpu():
    """Return the GPU backend module, or raise DeviceError saying why it is unusable."""
    if "module" in _gpu_state:
        return _gpu_state["module"]
    if "error" in _gpu_state:
        raise DeviceError(_gpu_state["error"])
    try:
        import cupy  # noqa: F401

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no CUDA device is visible")
    except Exception as exc:  # ImportError, CUDARuntimeError, ...
        _gpu_state["error"] = (
            f"device='gpu' needs CuPy and a CUDA GPU ({type(exc).__name__}: {exc}); "
            "install gpu-media[gpu] on a machine with a GPU, or use device='cpu'"
        )
        raise DeviceError(_gpu_state["error"]) from None
    try:
        module = importlib.import_module(_GPU_MODULE)
    except ImportError as exc:
        _gpu_state["error"] = (
            f"device='gpu': the CuPy backend of gpu_media could not be loaded ({exc}); "
            "use device='cpu'"
        )
        raise DeviceError(_gpu_state["error"]) from None
    _gpu_state["module"] = module
    return module


def gpu_available() -> bool:
    """True when the GPU backend can be used on this machine (CuPy, a CUDA device, the backend)."""
    try:
        _load_gpu()
        return True
    except DeviceError:
        return False


def resolve_device(device: str | None, on_gpu: bool = False) -> str:
    """Map ``device=`` ("auto", "cpu", "gpu") to "cpu" or "gpu" by the rule above.

    Raises ``ValueError`` for another value and :class:`DeviceError` for "gpu"
    without a usable GPU backend.
    """
    device = "auto" if device is None else device
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        env = os.environ.get("GPU_MEDIA_DEVICE", "").strip().lower()
        if env:
            if env not in DEVICES:
                raise ValueError(f"GPU_MEDIA_DEVICE must be one of {DEVICES}, got {env!r}")
            device = env
    if device == "auto":
        device = "gpu" if on_gpu and gpu_available() else "cpu"
    if device == "gpu":
        _load_gpu()
    return device


def get_backend(device: str):
    """The backend module for a resolved device name ("cpu" or "gpu")."""
    if device == "gpu":
        return _load_gpu()
    import cpu_fallback

    return cpu_fallback
