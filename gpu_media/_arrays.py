"""Turning what users pass (NumPy, CuPy, PyTorch, DLPack, PIL, lists) into 4-D batches.

docs/SPEC.md 1. Nothing here copies a GPU array to the host unless the CPU backend
was chosen for it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .checks import check_dtype
from .errors import DeviceError, ImageError, MediaError

LAYOUTS = ("NHWC", "NCHW", "HWC", "CHW", "HW", "NHW")
_PER_IMAGE = {"NHWC": "HWC", "NCHW": "CHW", "NHW": "HW"}
_CUDA_DLPACK_DEVICES = (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged


class DtypeRule(NamedTuple):
    """How one kind of input array reports an unsupported dtype (:func:`gpu_media.checks.check_dtype`)."""

    error: type[MediaError]
    label: str = "dtype"  # the word before the dtype in the message
    use: str = "bool, an integer type, float16, float32 or float64"
    kinds: str = "biuf"


#: Images (docs/SPEC.md 1): bool, every integer type, float16/32/64.
IMAGE_DTYPES = DtypeRule(ImageError)


class Group(NamedTuple):
    """Images of one shape and dtype: ``array`` is (n,H,W,C) or (n,C,H,W) per ``layout``."""

    array: Any
    layout: str  # "NHWC" or "NCHW"
    indices: list  # batch index of each of the n images
    pil: bool  # PIL input: never normalized (docs/SPEC.md 1)


def _is_torch(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "torch"


def _is_pil(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "PIL" and hasattr(obj, "getbands")


def _is_cupy(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "cupy"


def dali_batch(obj):
    """A DALI ``TensorListCPU``/``TensorListGPU`` as one tensor (uniform shapes) or a list of its samples.

    Anything else comes back unchanged. No copy: DALI tensors expose
    ``__cuda_array_interface__`` (GPU) or the buffer protocol (CPU).
    """
    t = type(obj)
    if not (t.__module__.startswith("nvidia.dali") and t.__name__.startswith("TensorList")):
        return obj
    if obj.is_dense_tensor():
        return obj.as_tensor()
    return [obj[i] for i in range(len(obj))]


def is_sequence_batch(obj) -> bool:
    """A list/tuple of images (as opposed to one array)."""
    return isinstance(obj, (list, tuple))


def on_gpu(obj) -> bool:
    """Whether an image (or any image of a list) lives in CUDA memory."""
    obj = dali_batch(obj)
    if is_sequence_batch(obj):
        return any(on_gpu(o) for o in obj)
    if _is_pil(obj) or isinstance(obj, np.ndarray):
        return False
    if _is_torch(obj):
        return bool(getattr(obj, "is_cuda", False))
    if _is_cupy(obj) or hasattr(obj, "__cuda_array_interface__"):
        return True
    dev = getattr(obj, "__dlpack_device__", None)
    if dev is not None:
        try:
            return dev()[0] in _CUDA_DLPACK_DEVICES
        except Exception:
            return False
    return False


def _pil_to_numpy(img) -> np.ndarray:
    mode = img.mode
    if mode not in ("L", "RGB", "RGBA"):
        if mode == "1":
            img = img.convert("L")
        elif mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            img = img.convert("L")
        elif "A" in mode or "transparency" in img.info:
            img = img.convert("RGBA")
        else:
            img = img.convert("RGB")
    return np.asarray(img)


def input_dtype(obj):
    """The dtype an array-like already has, read without copying or converting it.

    A NumPy dtype for NumPy, CuPy, PyTorch, ``__cuda_array_interface__``,
    ``__array_interface__`` and DLPack objects with a ``dtype``; the name of a dtype
    NumPy does not have (PyTorch's ``"bfloat16"``, ``"float8_e4m3fn"``, ...); None
    when only reading the object tells (lists, scalars, PIL images, bare DLPack
    capsule holders).
    """
    if _is_pil(obj) or isinstance(obj, (list, tuple)):
        return None
    if isinstance(obj, np.ndarray):
        return obj.dtype
    if _is_torch(obj):
        name = str(obj.dtype).split(".")[-1]
        try:
            return np.dtype(name)
        except TypeError:
            return name
    for attr in ("__cuda_array_interface__", "__array_interface__"):
        iface = getattr(obj, attr, None)
        if isinstance(iface, dict) and "typestr" in iface:
            try:
                return np.dtype(iface["typestr"])
            except (TypeError, ValueError):
                return str(iface["typestr"])
    dt = getattr(obj, "dtype", None)
    if dt is None:
        return None
    try:
        return np.dtype(dt)
    except (TypeError, ValueError):
        return str(dt)


def _check(dtype, rule: DtypeRule | None, where: str, index, key) -> None:
    if rule is not None:
        check_dtype(dtype, where, kinds=rule.kinds, use=rule.use, label=rule.label, error=rule.error, index=index,
                    key=key)


def _read_host(obj, rule: DtypeRule | None, where: str, index, key) -> np.ndarray:
    """A host object (list, scalar, ``__array__`` or DLPack object) as a NumPy array.

    With a ``rule``, what NumPy cannot read (ragged nested lists, a DLPack dtype NumPy
    lacks) raises ``rule.error`` instead of NumPy's own exception.
    """
    try:
        if hasattr(obj, "__dlpack__"):
            return np.from_dlpack(obj)
        return np.asarray(obj)
    except (TypeError, ValueError, BufferError, RuntimeError) as exc:
        if rule is None:
            raise
        raise rule.error(f"{where}: cannot be read as an array: {exc}", index=index, key=key,
                         item=type(obj).__name__) from None


def check_input(obj, rule: DtypeRule, where: str, index: int | None = None, key=None):
    """Check one input array's dtype before anything is copied to a device (docs/SPEC.md 1, 3, 4).

    Runs before the device is resolved, so both backends and ``device="gpu"`` on a
    machine without a GPU raise the same ``rule.error``. An object whose dtype only
    reading it tells (a list, a scalar, an ``__array__`` object) is read with NumPy
    here, once, on the host; anything else is returned as given.

    Args:
        obj: an image, mask or box column as the caller gave it.
        rule: the allowed dtypes, the error type and the wording.
        where: what the message starts with ("image 3", "mask key 'seg'").
        index: the ``index`` field of the error (batch index), if any.
        key: the ``key`` field of the error, if any.

    Returns:
        ``obj``, or its NumPy reading.

    Raises:
        MediaError: ``rule.error``: an object, string, bytes, void, datetime,
            timedelta, complex, float128 or non-NumPy (``bfloat16``) dtype; a list
            NumPy cannot read as one array (ragged).
    """
    if _is_pil(obj):
        return obj  # PIL modes become uint8 images
    dt = input_dtype(obj)
    if dt is None:
        if on_gpu(obj):
            return obj  # a CUDA DLPack object without a dtype: to_array checks it once CuPy holds it
        obj = _read_host(obj, rule, where, index, key)
        dt = obj.dtype
    _check(dt, rule, where, index, key)
    return obj


def check_images(images):
    """:func:`check_input` on an image batch, or on every image of a list ("image <i>").

    Returns the batch with DALI tensor lists unwrapped and lists read by NumPy, for
    :func:`image_groups`; raises :class:`ImageError` for an unsupported dtype.
    """
    images = dali_batch(images)
    if is_sequence_batch(images):
        return [check_input(o, IMAGE_DTYPES, f"image {i}", i) for i, o in enumerate(images)]
    return check_input(images, IMAGE_DTYPES, "images")


def _cupy():
    """CuPy, or DeviceError when a CUDA array was given where CuPy is not installed."""
    try:
        import cupy
    except ImportError as exc:
        raise DeviceError(f"a CUDA array was given, and reading it needs CuPy ({exc}); pip install \".[gpu]\" "
                          "or pass a host array") from None
    return cupy


def to_array(obj, device: str, *, rule: DtypeRule | None = None, where: str = "", index: int | None = None,
             key=None):
    """One array-like -> (array on ``device``'s library, channel_first_default, is_pil).

    "cpu" gives NumPy (a CUDA array is copied to the host once); "gpu" gives CuPy
    (a CUDA array is taken without a copy through DLPack or ``__cuda_array_interface__``).
    With a ``rule``, the dtype is checked on the input itself and on what was read,
    before any copy to the device, and what NumPy cannot read raises ``rule.error``
    (``where``, ``index`` and ``key`` as in :func:`check_input`).
    """
    if rule is not None:
        dt = input_dtype(obj)
        if dt is not None:
            _check(dt, rule, where, index, key)
    channel_first = pil = False
    if _is_pil(obj):
        arr, pil = _pil_to_numpy(obj), True
    elif _is_torch(obj):
        channel_first, t = True, obj.detach()
        if getattr(t, "is_cuda", False) and device == "gpu":
            import cupy

            return cupy.from_dlpack(t), True, False
        arr = t.cpu().numpy()
    elif isinstance(obj, np.ndarray):
        arr = obj
    elif _is_cupy(obj) or hasattr(obj, "__cuda_array_interface__") or on_gpu(obj):
        cupy = _cupy()
        if _is_cupy(obj):
            arr = obj
        elif hasattr(obj, "__cuda_array_interface__"):
            arr = cupy.asarray(obj)
        else:
            arr = cupy.from_dlpack(obj)
        _check(arr.dtype, rule, where, index, key)
        if device != "gpu":
            arr = cupy.asnumpy(arr)
    else:
        arr = _read_host(obj, rule, where, index, key)
    if isinstance(arr, np.ndarray):
        _check(arr.dtype, rule, where, index, key)
        if device == "gpu":
            import cupy

            if not arr.dtype.isnative:  # big-endian input ("I;16B" mask files): swapped on the host
                arr = arr.astype(arr.dtype.newbyteorder("="))
            arr = cupy.asarray(arr)
    return arr, channel_first, pil


def canonical(arr, channel_first: bool, layout: str | None, where: str, single: bool, index: int | None = None):
    """Reshape one array to (n,H,W,C) "NHWC" or (n,C,H,W) "NCHW" following docs/SPEC.md 1.

    ``single`` is True for list elements, which are one image each; ``index`` is then
    their batch index (the ``index`` field of any :class:`ImageError`).
    """
    shape = tuple(int(s) for s in arr.shape)
    given = layout
    if layout is not None:
        if layout not in LAYOUTS:
            raise ImageError(f"{where}: layout must be one of {LAYOUTS}, got {layout!r}", index=index, item=layout)
        if single:
            layout = _PER_IMAGE.get(layout, layout)
        if len(layout) != arr.ndim:
            raise ImageError(f"{where}: shape {shape} does not match layout {layout!r}", index=index, item=shape)
    else:
        while arr.ndim > 4:  # squeeze size-1 dims, as wandb does
            axes = [a for a in range(1, arr.ndim) if arr.shape[a] == 1]
            if not axes:
                break
            arr = arr.squeeze(axis=axes[0])
        nd = arr.ndim
        s = tuple(arr.shape)
        if nd == 2:
            layout = "HW"
        elif nd == 3:
            if channel_first:
                layout = "CHW" if s[0] in (1, 3, 4) else "NHW"
            else:
                layout = "HWC" if s[-1] in (1, 3, 4) else "NHW"
            if single and layout == "NHW":
                hint = ('; if the channels come first (C,H,W), say so: layout="CHW"' if not channel_first
                        and s[0] in (1, 3, 4) else "")
                raise ImageError(
                    f"{where}: unsupported image shape {shape}: channels must be 1, 3 or 4{hint}", index=index,
                    item=shape,
                )
        elif nd == 4 and not single:
            layout = "NCHW" if channel_first else "NHWC"
        else:
            kind = "an image" if single else "a batch"
            raise ImageError(f"{where}: unsupported shape {shape} for {kind}", index=index, item=shape)
    if layout == "HW":
        arr, layout = arr[None, :, :, None], "NHWC"
    elif layout == "NHW":
        arr, layout = arr[:, :, :, None], "NHWC"
    elif layout in ("HWC", "CHW"):
        arr, layout = arr[None], "N" + layout
    n, c, h, w = (arr.shape[0], arr.shape[1], arr.shape[2], arr.shape[3]) if layout == "NCHW" \
        else (arr.shape[0], arr.shape[3], arr.shape[1], arr.shape[2])
    if c not in (1, 3, 4):
        hint = ""
        if given is None and layout == "NHWC" and arr.shape[1] in (1, 3, 4):
            hint = ('; if the channels come first (N,C,H,W), say so: layout="NCHW" '
                    "(gpu-media dump: --layout NCHW, or a 'layout' entry \"NCHW\" in the .npz)")
        raise ImageError(
            f"{where}: unsupported shape {shape} (layout {layout}): channels must be 1, 3 or 4, got {c}{hint}",
            index=index, item=shape,
        )
    if h == 0 or w == 0:
        raise ImageError(f"{where}: image of height {h} and width {w}: both must be at least 1", index=index,
                         item=shape)
    return arr, layout


def image_groups(images, layout: str | None, device: str) -> tuple[list[Group], int]:
    """Split ``images`` into groups of equal shape/dtype (docs/SPEC.md 1). Returns (groups, N)."""
    images = dali_batch(images)
    if is_sequence_batch(images):
        if len(images) == 0:
            raise ImageError("images: the batch is empty")
        buckets: dict = {}
        for i, obj in enumerate(images):
            arr, cf, pil = to_array(obj, device, rule=IMAGE_DTYPES, where=f"image {i}", index=i)
            arr, lay = canonical(arr, cf, layout, f"image {i}", single=True, index=i)
            k = (tuple(arr.shape[1:]), str(arr.dtype), lay, pil)
            buckets.setdefault(k, ([], []))
            buckets[k][0].append(arr)
            buckets[k][1].append(i)
        groups = []
        for (_shape, _dtype, lay, pil), (arrs, idx) in buckets.items():
            xp = xp_of(arrs[0])
            stacked = arrs[0] if len(arrs) == 1 else xp.concatenate(arrs, axis=0)
            groups.append(Group(stacked, lay, idx, pil))
        return groups, len(images)
    arr, cf, pil = to_array(images, device, rule=IMAGE_DTYPES, where="images")
    arr, lay = canonical(arr, cf, layout, "images", single=False)
    n = int(arr.shape[0])
    if n == 0:
        raise ImageError("images: the batch is empty")
    return [Group(arr, lay, list(range(n)), pil)], n


def xp_of(arr: Any) -> Any:
    """The array module of ``arr``: NumPy for a NumPy array, else CuPy."""
    if isinstance(arr, np.ndarray):
        return np
    import cupy

    return cupy


def hw_of(group: Group) -> tuple[int, int]:
    a = group.array
    return (int(a.shape[2]), int(a.shape[3])) if group.layout == "NCHW" else (int(a.shape[1]), int(a.shape[2]))
