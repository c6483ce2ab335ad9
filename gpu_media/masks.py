"""Stage 2: segmentation masks checked against their images (docs/SPEC.md 3)."""

from __future__ import annotations

import math
import numbers
import os
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np

from . import _arrays
from .backend import get_backend, resolve_device
from .checks import check_class_id, is_integer, is_number
from .errors import MaskError, MediaError

if TYPE_CHECKING:
    from .backend import Backend


class MaskSet(NamedTuple):
    """One parsed mask key: ``data`` is a backend array (N,H,W) or a list of (H,W)."""

    key: str
    data: Any
    class_labels: dict | None  # {int: str} as given, or None
    files: list | None = None  # {"path": ...} form: (bytes, extension) per image, written unchanged


def parse_class_labels(labels: Any, where: str, error: type[MediaError] = MaskError, *, index: int | None = None,
                       key: str | None = None) -> dict[int, str] | None:
    """``{number: str}`` -> ``{int: str}``; wandb's rule, plus keys must be integral.

    Args:
        labels: the class labels as given, or None.
        where: what the messages start with ("mask key 'pred'", ...).
        error: the :class:`gpu_media.MediaError` subclass to raise.
        index: the ``index`` field of the errors (batch index), if any.
        key: the ``key`` field of the errors (mask or box key), if any.

    Returns:
        ``{int: str}``, or None when ``labels`` is None.

    Examples:
        >>> parse_class_labels({0: "bg", "1": "car", 2.0: "road"}, "mask key 'pred'")
        {0: 'bg', 1: 'car', 2: 'road'}
        >>> parse_class_labels({1.5: "car"}, "mask key 'pred'", key="pred")
        Traceback (most recent call last):
        ...
        gpu_media.errors.MaskError: mask key 'pred': class_labels key 1.5 is not an integer
    """
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise error(f"{where}: class_labels must be a dictionary of numbers to strings", index=index, key=key,
                    item=labels)
    out = {}
    for k, v in labels.items():
        if isinstance(k, str) and k.lstrip("-").isdigit():  # JSON round trip: {"1": "car"}
            k = int(k)
        if not is_number(k) or not isinstance(v, str):
            raise error(f"{where}: class_labels must be a dictionary of numbers to strings, got {k!r}: {v!r}",
                        index=index, key=key, item=(k, v))
        if not is_integer(k) and (not math.isfinite(float(k)) or float(k) != int(k)):
            raise error(f"{where}: class_labels key {k!r} is not an integer", index=index, key=key, item=k)
        out[check_class_id(int(k), where, error, what="class_labels key", index=index, key=key)] = v
    return out


def _load_path(path, where, index=None, key=None):
    """A mask file -> ``(pixels, (bytes, extension))``.

    The bytes are what a dump copies, unchanged, and the extension is the last one of
    the file name (``os.path.splitext``), as wandb names it.
    """
    import io

    from PIL import Image

    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            pixels = np.asarray(im)
    except (OSError, TypeError, ValueError) as exc:
        raise MaskError(f"{where}: cannot read mask file {path!r}: {exc}", index=index, key=key, item=path) from None
    ext = os.path.splitext(os.path.basename(os.fsdecode(path)))[1]
    return pixels, (data, ext)


#: Masks (docs/SPEC.md 3): the image dtypes; float masks must then hold integers only.
MASK_DTYPES = _arrays.DtypeRule(MaskError, "mask dtype", "integers, bool or integral floats")


def check_mask_inputs(masks: Any) -> Any:
    """Check the dtype of every ``mask_data`` array as given, before the device is resolved.

    Args:
        masks: as for :func:`validate_masks`; anything else is returned unchanged
            (:func:`parse_masks` reports it).

    Returns:
        ``masks`` with lists and scalars read by NumPy (:func:`gpu_media._arrays.check_input`).

    Raises:
        gpu_media.MaskError: an unsupported dtype (object, string, bytes, void,
            datetime, complex, float128, bfloat16, ...), naming the mask key and,
            for a list of masks, the batch index of the offending one.

    Examples:
        >>> import numpy as np
        >>> checked = check_mask_inputs({"pred": {"mask_data": [[[0, 1]], [[1, 1]]]}})  # a list of 2 masks
        >>> [type(a).__name__ for a in checked["pred"]["mask_data"]]
        ['ndarray', 'ndarray']
        >>> check_mask_inputs({"pred": {"mask_data": np.zeros((1, 2, 2), np.complex64)}})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MaskError: mask key 'pred': mask dtype complex64 is not supported; use integers, ...
    """
    if not isinstance(masks, dict):
        return masks
    out = {}
    for key, spec in masks.items():
        if isinstance(spec, dict) and "mask_data" in spec:
            data = spec["mask_data"]
            if isinstance(data, (list, tuple)):
                data = [_arrays.check_input(d, MASK_DTYPES, f"image {i}, mask key {key!r}", i, key)
                        for i, d in enumerate(data)]
            else:
                data = _arrays.check_input(data, MASK_DTYPES, f"mask key {key!r}", key=key)
            spec = {**spec, "mask_data": data}
        out[key] = spec
    return out


def _as_mask_array(obj, device, where, index=None, key=None):
    return _arrays.to_array(obj, device, rule=MASK_DTYPES, where=where, index=index, key=key)[0]


def parse_masks(masks: Mapping[str, Any] | None, sizes: Sequence[tuple[int, int]], device: str) -> list[MaskSet]:
    """Check every mask's type and (H,W) against ``sizes`` (one (H,W) per image).

    Args:
        masks: as for :func:`validate_masks` (after :func:`check_mask_inputs`), or None.
        sizes: ``(H, W)`` of each image, in batch order.
        device: the resolved device ("cpu", "gpu"): the arrays are moved to it.

    Returns:
        one :class:`MaskSet` per key, in key order.

    Raises:
        gpu_media.MaskError: see :func:`validate_masks` (all but the value checks).

    Examples:
        >>> import numpy as np
        >>> [(s.key, s.data.shape, s.class_labels) for s in parse_masks(
        ...     {"pred": {"mask_data": np.zeros((2, 3, 4), np.uint8), "class_labels": {1: "car"}}},
        ...     [(3, 4), (3, 4)], "cpu")]
        [('pred', (2, 3, 4), {1: 'car'})]
    """
    if masks is None:
        return []
    if not isinstance(masks, dict):
        raise MaskError("masks must be a dictionary {key: {'mask_data': ..., 'class_labels': ...}}")
    n = len(sizes)
    out, shape_errors = [], []
    for key, spec in masks.items():
        if not isinstance(key, str) or not key:
            raise MaskError(f"mask key {key!r}: keys must be non-empty strings", key=key)
        if not isinstance(spec, dict) or not ("mask_data" in spec or "path" in spec):
            raise MaskError(f"mask key {key!r}: needs 'mask_data' (an array) or 'path' (a mask file)", key=key)
        labels = parse_class_labels(spec.get("class_labels"), f"mask key {key!r}", key=key)
        files = None
        if "mask_data" in spec:
            data = spec["mask_data"]
        else:
            paths = spec["path"]
            paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
            loaded = [_load_path(p, f"image {i}, mask key {key!r}", i, key) for i, p in enumerate(paths)]
            data, files = [d for d, _ in loaded], [f for _, f in loaded]
        if isinstance(data, (list, tuple)):
            if len(data) != n:
                raise MaskError(f"mask key {key!r}: {len(data)} masks for a batch of {n} images", key=key,
                                item=len(data))
            arrays = [_as_mask_array(d, device, f"image {i}, mask key {key!r}", i, key) for i, d in enumerate(data)]
            shapes = [tuple(int(s) for s in a.shape) for a in arrays]
        else:
            arr = _as_mask_array(data, device, f"mask key {key!r}", key=key)
            if arr.ndim == 2 and n == 1:
                arr = arr[None]
            if arr.ndim != 3:
                raise MaskError(
                    f"mask key {key!r}: mask_data must be (N, H, W) or a list of (H, W), got shape {tuple(arr.shape)}",
                    key=key, item=tuple(arr.shape),
                )
            if arr.shape[0] != n:
                raise MaskError(f"mask key {key!r}: {arr.shape[0]} masks for a batch of {n} images", key=key,
                                item=tuple(arr.shape))
            arrays = arr
            shapes = [tuple(int(s) for s in arr.shape[1:])] * n
        for i, shape in enumerate(shapes):
            if len(shape) != 2:
                shape_errors.append((i, len(out),
                                     f"image {i}, mask key {key!r}: mask must be 2-D (H, W), got shape {shape}",
                                     key, shape))
            elif shape != tuple(sizes[i]):
                shape_errors.append((i, len(out), f"image {i}, mask key {key!r}: mask shape {shape} does not match "
                                                  f"the image's (H, W) {tuple(sizes[i])}", key, shape))
        if shape_errors:
            out.append(None)
            continue
        if isinstance(arrays, list) and len(set(shapes)) == 1 and len({str(a.dtype) for a in arrays}) == 1:
            arrays = _arrays.xp_of(arrays[0]).stack(arrays)
        out.append(MaskSet(key, arrays, labels, files))
    if shape_errors:
        i, _, message, key, shape = min(shape_errors, key=lambda e: e[:2])  # lowest image index, then key order
        raise MaskError(message, index=i, key=key, item=shape)
    return out


def _value(v) -> int | float:
    """A mask statistic as a plain Python number (int when integral)."""
    v = v.item() if hasattr(v, "item") else v
    return int(v) if float(v).is_integer() else float(v)


def _num(v) -> str:
    v = v.item() if hasattr(v, "item") else v
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def mask_report(sets: list[MaskSet], n: int, backend: Backend, strict: bool) -> list[dict[str, dict[int, int]]]:
    """Run the backend histogram and turn it into the report, raising the first error (image-major).

    Args:
        sets: :func:`parse_masks`'s result.
        n: the number of images.
        backend: the backend of the sets' arrays.
        strict: as for :func:`validate_masks`.

    Returns:
        as :func:`validate_masks`.

    Raises:
        gpu_media.MaskError: values that are not integers in [0, 255]; with ``strict``,
            class ids missing from ``class_labels``.

    Examples:
        >>> import numpy as np
        >>> from gpu_media.backend import get_backend
        >>> sets = [MaskSet("pred", np.array([[[0, 2], [2, 2]]], np.uint8), None)]
        >>> mask_report(sets, 1, get_backend("cpu"), strict=False)
        [{'pred': {0: 1, 2: 3}}]
    """
    stats = {}
    for ms in sets:
        if isinstance(ms.data, list):
            parts = [backend.mask_stats(d[None]) for d in ms.data]
            stats[ms.key] = tuple(np.concatenate([backend.to_host(p[k]) for p in parts]) for k in range(4))
        else:
            stats[ms.key] = tuple(backend.to_host(a) for a in backend.mask_stats(ms.data))
    report = []
    for i in range(n):
        entry = {}
        for ms in sets:
            hist, lo, hi, bad = (s[i] for s in stats[ms.key])
            where = f"image {i}, mask key {ms.key!r}"
            if bad:
                raise MaskError(f"{where}: {int(bad)} mask values are not integers (fractional, NaN or inf)",
                                index=i, key=ms.key)
            if lo < 0 or hi > 255:
                parts = ([f"smallest value {_num(lo)}"] if lo < 0 else []) + (
                    [f"largest value {_num(hi)}"] if hi > 255 else []
                )
                raise MaskError(f"{where}: mask values must be integers in [0, 255]; found {', '.join(parts)}",
                                index=i, key=ms.key, item=_value(lo) if lo < 0 else _value(hi))
            present = {int(c): int(hist[c]) for c in np.flatnonzero(hist)}
            if strict and ms.class_labels is not None:  # without labels, the defaults cover every class
                labels = ms.class_labels
                missing = [c for c in present if c not in labels]
                if missing:
                    raise MaskError(f"{where}: class ids {missing} are present but not in class_labels (strict=True)",
                                    index=i, key=ms.key, item=missing)
            entry[ms.key] = present
        report.append(entry)
    return report


def _sizes(image_sizes) -> list:
    if (
        isinstance(image_sizes, (tuple, list))
        and len(image_sizes) == 2
        and all(isinstance(v, numbers.Integral) for v in image_sizes)
    ):
        return None  # one (H, W) for every image; N comes from the masks
    return [tuple(int(v) for v in s) for s in image_sizes]


def validate_masks(masks: Mapping[str, Mapping[str, Any]] | None, image_sizes: Any, *, strict: bool = False,
                   device: str = "auto") -> list[dict[str, dict[int, int]]]:
    """Validate a mask set against its images and count the classes present.

    Args:
        masks: ``{key: {"mask_data": masks, "class_labels": {int: str}}}`` or
            ``{key: {"path": file or [files]}}`` (wandb's ``ImageMask`` forms; a file
            is any single-band image Pillow reads, and a dump copies it unchanged);
            ``masks`` is ``(N,H,W)`` or a list of N ``(H,W)`` arrays (NumPy, CuPy,
            PyTorch, DLPack), integers in [0, 255]; bool masks are 0/1; float
            masks only when every value is integral.
        image_sizes: one ``(H, W)`` for every image, or a list of N ``(H, W)``.
        strict: every class id present must be a key of ``class_labels`` (a key
            without ``class_labels`` gets wandb's defaults, which cover every class).
        device: "auto", "cpu" or "gpu" (``gpu_media.backend``).

    Returns:
        ``report`` with ``report[i][key] == {class_id: pixel_count}`` for the class
        ids present in image i's mask ``key``, in increasing class id (docs/SPEC.md 3).

    Raises:
        gpu_media.MaskError: naming the image index and mask key: a mask that is
            not 2-D or whose (H, W) differs from its image's; values outside
            [0, 255] (smallest/largest offending value) or not integral; class
            labels that are not ``{number: str}``; with ``strict``, the class ids
            missing from ``class_labels``. Shape errors are reported first (lowest
            image index, then key order), then value errors (the same order).
            A dtype other than bool, integers, float16/32/64 is reported before
            the device is resolved, so ``device="gpu"`` raises it on any machine.

    Examples:
        >>> import numpy as np
        >>> from gpu_media import validate_masks
        >>> pred = np.array([[[0, 1], [1, 1]], [[0, 0], [0, 2]]], np.uint8)  # 2 masks of 2x2
        >>> validate_masks({"pred": {"mask_data": pred, "class_labels": {0: "bg", 1: "car", 2: "road"}}}, (2, 2))
        [{'pred': {0: 1, 1: 3}}, {'pred': {0: 3, 2: 1}}]
        >>> validate_masks({"pred": {"mask_data": pred, "class_labels": {0: "bg"}}}, (2, 2), strict=True)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MaskError: image 0, mask key 'pred': class ids [1] are present but not in class_labels ...
        >>> validate_masks({"pred": {"mask_data": pred}}, [(2, 2), (2, 3)])
        Traceback (most recent call last):
        ...
        gpu_media.errors.MaskError: image 1, mask key 'pred': mask shape (2, 2) does not match the image's (H, W) (2, 3)
    """
    masks = check_mask_inputs(masks)
    sizes = _sizes(image_sizes)
    any_gpu = isinstance(masks, dict) and any(
        isinstance(s, dict) and _arrays.on_gpu(s.get("mask_data")) for s in masks.values()
    )
    dev = resolve_device(device, any_gpu)
    if sizes is None:
        n = None
        for spec in (masks or {}).values():
            if not isinstance(spec, dict):
                continue
            d = spec.get("mask_data", spec.get("path"))
            if isinstance(d, (list, tuple)):
                n = len(d)
            elif d is not None and hasattr(d, "shape"):
                n = 1 if len(d.shape) == 2 else int(d.shape[0])
            if n is not None:
                break
        sizes = [tuple(int(v) for v in image_sizes)] * (n or 1)
    sets = parse_masks(masks, sizes, dev)
    return mask_report(sets, len(sizes), get_backend(dev), strict)
