"""The pipeline in one file: the :class:`Backend` protocol, the backend registry and the device rule.

Every stage of gpu_media is split the same way. The public function in
``gpu_media/<stage>.py`` parses and validates its arguments and raises every
error (so both backends raise the same type and message), then hands plain arrays
to a backend, which does the per-pixel work. A backend is any object (in practice
a module) that satisfies :class:`Backend`: ``cpu_fallback`` is the NumPy + Pillow
one, ``gpu_media.cuda.backend`` the CuPy one. Backends are registered by device name
with :func:`register_backend` and reached with :func:`get_backend`; callers use the
protocol's members only, never ``hasattr``/``getattr`` probing.

Device rule (``device=``): "cpu" and "gpu" (and any other registered name) are
honoured as given; "gpu" without a usable GPU backend raises
:class:`gpu_media.DeviceError`, never a silent fallback. "auto" is overridden by the
environment variable ``GPU_MEDIA_DEVICE`` (auto or a registered name); otherwise
"auto" means the GPU backend when the images already live on a GPU and the backend
is usable, else the CPU fallback.
"""

from __future__ import annotations

import importlib
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .errors import DeviceError, MediaError

if TYPE_CHECKING:
    import numpy as np


@runtime_checkable
class Backend(Protocol):
    """What a backend provides: the per-pixel work of docs/SPEC.md 2-5 on one array library.

    Arguments arrive validated (the stages raise every error); arrays are the
    backend's own (``xp``'s) unless a member says otherwise. Every result must equal
    ``cpu_fallback``'s bit for bit (JPEG: docs/SPEC.md 5's decoded-pixel bound).
    """

    #: the device name it is registered under ("cpu", "gpu"); stored as ``Plan.backend.name``
    name: str
    #: its array module (``numpy`` for "cpu", ``cupy`` for "gpu")
    xp: Any

    def normalize(self, x: Any, layout: str, normalize: bool = True) -> Any:
        """docs/SPEC.md 2: images of any supported dtype -> uint8 ``(N,H,W,C)``.

        ``x`` is ``(N,H,W,C)`` ("NHWC") or ``(N,C,H,W)`` ("NCHW"); per-image ranges
        over finite values (``normalize=True``), else clip and truncate.
        """
        ...

    def mask_stats(self, masks: Any) -> tuple:
        """docs/SPEC.md 3: ``masks (N,H,W)`` -> ``(hist (N,256) int64, lo (N,), hi (N,), bad (N,) int64)``.

        ``lo``/``hi``: min/max over all values (in the mask's dtype, bool as uint8);
        ``bad``: count of non-integral or non-finite values per mask.
        """
        ...

    def confusion(self, gt: Any, pred: Any, num_classes: int) -> Any:
        """Issue 20 (docs/SPEC.md, the index's ``eval`` section): two ``(N,H,W)`` class-id masks -> ``(N,C,C)`` int64.

        ``out[i, g, p]`` counts image i's pixels of ground-truth class g predicted as
        p (``C = num_classes``). The masks are this backend's arrays of any mask dtype,
        already validated as integers in ``[0, C)``; one histogram of ``g * C + p``
        (``np.bincount`` per image on the CPU, one atomic-histogram kernel on the GPU).
        """
        ...

    def draw_outlines(self, images: Any, rects: np.ndarray, image_index: np.ndarray, colors: np.ndarray,
                      thickness: int) -> Any:
        """docs/SPEC.md 4: uint8 NHWC images + host box arrays -> a new uint8 NHWC array (C=1 becomes 3).

        ``rects (M,4) int64`` inclusive x0, y0, x1, y1; ``image_index (M,)``;
        ``colors (M,3) uint8``; the last box wins where outlines overlap; RGBA outline
        pixels get alpha 255.
        """
        ...

    def encode(self, images: Any, file_type: str, quality: int, compression_level: int | None = None) -> list[bytes]:
        """docs/SPEC.md 5: uint8 ``(N,H,W,C)`` or a list of ``(H,W,C)`` -> ``list[bytes]``, one file per image.

        ``file_type``: a spelling of :data:`gpu_media.codecs.FILE_TYPES` whose
        channel counts the images already fit; dispatched through the codec table
        (:func:`gpu_media.codecs.encoder` with this backend's ``name``).
        ``quality``: JPEG 1..100; ``compression_level``: PNG zlib level 0..9 or None.
        """
        ...

    def to_host(self, x: Any) -> np.ndarray:
        """Any array of this backend (or a NumPy array) -> ``numpy.ndarray``."""
        ...

    def chunk_bytes(self) -> int:
        """Bytes of uint8 pixels a dump may normalize and encode at once on this backend."""
        ...


DEVICES = ("auto", "cpu", "gpu")  # the built-in device names (register_backend adds more)
_GPU_MODULE = "gpu_media.cuda.backend"
# the modules of the GPU encoders, each with ``available()`` and ``INSTALL_HINT`` (for gpu_status)
_GPU_CODEC_MODULES = (("JPEG", "nvImageCodec", "gpu_media.cuda.nvimgcodec"),
                      ("PNG", "nvCOMP", "gpu_media.cuda.nvcomp"))
_gpu_state: dict = {}
#: the extra that brings CuPy for each CUDA major version, and the oldest NVIDIA driver branch
#: that runs it (CUDA's minor version compatibility: any driver of the major version's first release)
GPU_EXTRAS = {13: ("gpu", 580), 12: ("gpu-cu12", 525)}
_INSTALL = ('pip install ".[gpu]" (NVIDIA driver R580 or newer, CUDA 13) or '
            '".[gpu-cu12]" (R525-R575, CUDA 12)')


def _import_cupy():
    import cupy

    return cupy


def _driver_release() -> str | None:
    """The NVIDIA kernel driver's version ("580.95.05") from /proc, or None where it cannot be read."""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    m = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else None


def _cuda(version: int) -> str:
    """CUDA's integer version (13000, 12020) as "13.0", "12.2"."""
    return f"{version // 1000}.{version % 1000 // 10}"


def _gpu_unusable_reason(cupy) -> str | None:
    """Why CuPy cannot run gpu_media's GPU backend on this machine (one line), or None when it can.

    Asks, in order: the driver (present, and new enough for the CUDA major version this
    CuPy is built for), a visible device, NVRTC (CuPy compiles its elementwise kernels with
    it). Each answer names what to install.
    """
    rt = cupy.cuda.runtime
    try:
        runtime = int(rt.runtimeGetVersion())
    except Exception as exc:  # noqa: BLE001 - a CuPy without its CUDA runtime library
        return f"CuPy {cupy.__version__} cannot load its CUDA runtime ({type(exc).__name__}: {exc}); {_INSTALL}"
    major = runtime // 1000
    extra, min_driver = GPU_EXTRAS.get(major, ("gpu", 580))
    try:
        driver = int(rt.driverGetVersion())
    except Exception as exc:  # noqa: BLE001 - no libcuda.so
        driver, why = 0, f" ({type(exc).__name__}: {exc})"
    else:
        why = ""
    release = _driver_release()
    if driver <= 0:
        return f"no NVIDIA driver found (libcuda{why}); CuPy {cupy.__version__} needs driver R{min_driver} or newer"
    if driver // 1000 < major:
        fit = GPU_EXTRAS.get(driver // 1000)
        hint = (f'pip install ".[{fit[0]}]" (after pip uninstall cupy-cuda{major}x)' if fit else
                "no gpu-media extra supports it")
        return (f"the NVIDIA driver {release or '(version unknown)'} supports CUDA up to {_cuda(driver)}, but CuPy "
                f"{cupy.__version__} is built for CUDA {_cuda(runtime)}, which needs driver R{min_driver} or newer: "
                f"update the driver, or {hint}")
    try:
        count = int(rt.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError: no device, driver/library mismatch, ...
        return (f"no usable CUDA device (driver {release or _cuda(driver)}: {type(exc).__name__}: {exc}; "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')})")
    if count < 1:
        return (f"no CUDA device is visible (driver {release or _cuda(driver)}, CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')})")
    try:
        cupy.cuda.nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 - libnvrtc.so.<major> not found
        return (f"NVRTC for CUDA {major} does not load ({type(exc).__name__}: {exc}); CuPy compiles its kernels with "
                f'it: pip install ".[{extra}]" (cuda-toolkit[nvrtc]=={major}.*)')
    return None


def _load_gpu():
    """Return the GPU backend module, or raise DeviceError saying in one line why it is unusable."""
    if "module" in _gpu_state:
        return _gpu_state["module"]
    if "error" in _gpu_state:
        raise DeviceError(_gpu_state["error"])
    try:
        cupy = _import_cupy()
    except Exception as exc:  # ImportError, or a CuPy whose libraries do not load
        reason = f"CuPy does not import ({type(exc).__name__}: {exc}); {_INSTALL}"
    else:
        try:
            reason = _gpu_unusable_reason(cupy)
        except Exception as exc:  # noqa: BLE001 - a probe we did not foresee: still one line, still a reason
            reason = f"CuPy cannot reach a GPU ({type(exc).__name__}: {exc})"
    if reason is None:
        try:
            module = importlib.import_module(_GPU_MODULE)
        except ImportError as exc:
            reason = f"the CuPy backend of gpu_media could not be loaded ({exc})"
    if reason is not None:
        _gpu_state["error"] = "device='gpu' is unusable: " + " ".join(reason.split()) + "; or use device='cpu'"
        raise DeviceError(_gpu_state["error"]) from None
    _gpu_state["module"] = module
    return module


def gpu_available() -> bool:
    """True when the GPU backend can be used on this machine (CuPy, a driver new enough for it, a device, NVRTC).

    The answer is found once per process (CuPy is imported and asked for a device on
    the first call) and remembered. When it is False, :func:`gpu_status` (and the
    :class:`gpu_media.DeviceError` of ``device="gpu"``) says why in one line: CuPy
    missing, no driver, a driver too old for this CuPy's CUDA (its version and the one
    needed, and the extra to install instead: ``pip install ".[gpu-cu12]"`` for CUDA 12
    drivers), no visible device, or NVRTC missing.

    Returns:
        whether ``device="gpu"`` works here.

    Examples:
        >>> import gpu_media
        >>> gpu_media.gpu_available() in (True, False)
        True
    """
    try:
        _load_gpu()
        return True
    except DeviceError:
        return False


def gpu_status() -> str:
    """One line on the GPU backend here: "usable: ..." with what runs on the host, or "unusable: <why>".

    Usable: the device, the driver and CUDA versions, and where JPEG and PNG are encoded
    (on the GPU with nvImageCodec / nvCOMP, or on the host with the reason and the
    install that fixes it). Unusable: the reason :func:`gpu_available` is False (see
    there), naming what to install or update. Found once per process, like
    :func:`gpu_available`.

    Returns:
        the line, without a newline.

    Examples:
        >>> line = gpu_status()
        >>> line.startswith(("usable: ", "unusable: ")) and len(line.splitlines()) == 1
        True
    """
    try:
        _load_gpu()
    except DeviceError as exc:
        return "unusable: " + str(exc).removeprefix("device='gpu' is unusable: ")
    cupy = _import_cupy()
    rt = cupy.cuda.runtime
    dev = cupy.cuda.Device()
    name = rt.getDeviceProperties(dev.id)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    parts = [f"usable: {name} (device {dev.id}, driver {_driver_release() or _cuda(rt.driverGetVersion())}, "
             f"CuPy {cupy.__version__} for CUDA {_cuda(rt.runtimeGetVersion())})"]
    for what, lib, path in _GPU_CODEC_MODULES:
        mod = importlib.import_module(path)
        parts.append(f"{what} with {lib}" if mod.available() else
                     f"{what} on the host ({lib} missing: {mod.INSTALL_HINT})")
    return "; ".join(parts)


_registry: dict[str, Callable[[], Any]] = {}
_loaded: dict[str, Backend] = {}
_registry_lock = threading.Lock()


def _load_cpu():
    import cpu_fallback

    return cpu_fallback


def register_backend(name: str, loader: Callable[[], Any]) -> None:
    """Make a backend reachable as ``device=name``.

    Args:
        name: the device name (a non-empty str other than "auto"); the backend's
            own ``name`` must be the same.
        loader: a zero-argument callable returning the backend (an object or module
            satisfying :class:`Backend`). It is called on the first
            :func:`get_backend` of ``name``, so registering imports nothing; it may
            raise :class:`DeviceError` saying why the backend is unusable here.

    Raises:
        ValueError: a bad name, a name already registered, or a loader that is not callable.

    Examples:
        A backend is usually a module; here the CPU one, registered a second time
        under another name (its ``name`` must match):

        >>> import types
        >>> import cpu_fallback
        >>> twin = types.SimpleNamespace(**{k: getattr(cpu_fallback, k) for k in cpu_fallback.__all__})
        >>> twin.name = "cpu-twin"
        >>> register_backend("cpu-twin", lambda: twin)
        >>> "cpu-twin" in backends()
        True
        >>> get_backend("cpu-twin") is twin
        True
        >>> unregister_backend("cpu-twin")
    """
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"a backend name must be a non-empty string other than 'auto', got {name!r}")
    if not callable(loader):
        raise ValueError(f"register_backend({name!r}, loader): loader must be a zero-argument callable")
    with _registry_lock:
        if name in _registry:
            raise ValueError(f"a backend named {name!r} is registered already")
        _registry[name] = loader


def unregister_backend(name: str) -> None:
    """Remove a backend added with :func:`register_backend` ("cpu" and "gpu" stay).

    Args:
        name: a name given to :func:`register_backend`.

    Raises:
        ValueError: "cpu"/"gpu", or a name that is not registered.

    Examples:
        >>> register_backend("later", lambda: None)
        >>> unregister_backend("later")
        >>> "later" in backends()
        False
        >>> unregister_backend("cpu")
        Traceback (most recent call last):
        ...
        ValueError: the built-in backend 'cpu' cannot be unregistered
    """
    if name in _BUILTIN:
        raise ValueError(f"the built-in backend {name!r} cannot be unregistered")
    with _registry_lock:
        if name not in _registry:
            raise ValueError(f"no backend named {name!r} is registered")
        del _registry[name]
        _loaded.pop(name, None)


def backends() -> tuple[str, ...]:
    """The registered device names, built-ins first: ``("cpu", "gpu", ...)`` (usable or not).

    Returns:
        the names, in registration order.

    Examples:
        >>> backends()[:2]
        ('cpu', 'gpu')
    """
    return tuple(_registry)


def get_backend(device: str) -> Backend:
    """The backend registered as ``device`` (a resolved name, e.g. "cpu" or "gpu").

    Args:
        device: a name of :func:`backends` (not "auto": see :func:`resolve_device`).

    Returns:
        the backend, loaded on first use and then cached.

    Raises:
        gpu_media.MediaError: ``device`` is not registered (a ``ValueError``).
        DeviceError: its loader says it is unusable here ("gpu" without CuPy and a GPU).
        TypeError: its loader returned something that does not satisfy :class:`Backend`.

    Examples:
        >>> import numpy as np
        >>> cpu = get_backend("cpu")
        >>> cpu.name, cpu.xp is np, isinstance(cpu, Backend)
        ('cpu', True, True)
        >>> cpu.normalize(np.ones((1, 1, 2, 1), np.float32), "NHWC").ravel().tolist()
        [255, 255]
    """
    backend = _loaded.get(device)
    if backend is not None:
        return backend
    loader = _registry.get(device)
    if loader is None:
        raise MediaError(f"no backend named {device!r}; registered: {list(_registry)}", item=device)
    backend = loader()
    if not isinstance(backend, Backend) or backend.name != device:
        raise TypeError(f"the backend registered as {device!r} does not satisfy gpu_media.backend.Backend "
                        f"(or its name is not {device!r})")
    _loaded[device] = backend
    return backend


_BUILTIN = {"cpu": _load_cpu, "gpu": _load_gpu}
_registry.update(_BUILTIN)


def resolve_device(device: str | None, on_gpu: bool = False) -> str:
    """Map ``device=`` ("auto", "cpu", "gpu" or another registered name) to a backend name by the rule above.

    Args:
        device: "auto" (or None), or a name of :func:`backends`.
        on_gpu: whether the images already live on a GPU ("auto" then prefers "gpu").

    Returns:
        the resolved name ("cpu", "gpu", ...), whose backend :func:`get_backend` gives.

    Raises:
        gpu_media.MediaError: another value (of ``device`` or of ``GPU_MEDIA_DEVICE``; a ``ValueError``).
        DeviceError: "gpu" (or another backend) that is not usable here.

    Examples:
        Host arrays stay on the CPU under "auto" (unless ``GPU_MEDIA_DEVICE`` says otherwise):

        >>> import os
        >>> "GPU_MEDIA_DEVICE" in os.environ or resolve_device("auto", on_gpu=False) == "cpu"
        True
        >>> resolve_device("cpu")
        'cpu'
        >>> resolve_device("tpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: device must be one of ('auto', 'cpu', 'gpu'...), got 'tpu'
    """
    device = "auto" if device is None else device
    names = ("auto", *backends())
    if device not in names:
        raise MediaError(f"device must be one of {names}, got {device!r}", item=device)
    if device == "auto":
        env = os.environ.get("GPU_MEDIA_DEVICE", "").strip().lower()
        if env:
            if env not in names:
                raise MediaError(f"GPU_MEDIA_DEVICE must be one of {names}, got {env!r}", item=env)
            device = env
    if device == "auto":
        device = "gpu" if on_gpu and gpu_available() else "cpu"
    if device != "cpu":
        get_backend(device)  # DeviceError now, before any work, when it is unusable
    return device
