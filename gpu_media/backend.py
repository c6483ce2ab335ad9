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
import threading
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from .errors import DeviceError

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
    """True when the GPU backend can be used on this machine (CuPy, a CUDA device, the backend).

    The answer is found once per process (CuPy is imported and asked for a device on
    the first call) and remembered.

    Returns:
        whether ``device="gpu"`` works here; when False, ``device="gpu"`` raises
        :class:`gpu_media.DeviceError` saying why.

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
        ValueError: ``device`` is not registered.
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
        raise ValueError(f"no backend named {device!r}; registered: {list(_registry)}")
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
        ValueError: another value (of ``device`` or of ``GPU_MEDIA_DEVICE``).
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
        ValueError: device must be one of ('auto', 'cpu', 'gpu'...), got 'tpu'
    """
    device = "auto" if device is None else device
    names = ("auto", *backends())
    if device not in names:
        raise ValueError(f"device must be one of {names}, got {device!r}")
    if device == "auto":
        env = os.environ.get("GPU_MEDIA_DEVICE", "").strip().lower()
        if env:
            if env not in names:
                raise ValueError(f"GPU_MEDIA_DEVICE must be one of {names}, got {env!r}")
            device = env
    if device == "auto":
        device = "gpu" if on_gpu and gpu_available() else "cpu"
    if device != "cpu":
        get_backend(device)  # DeviceError now, before any work, when it is unusable
    return device
