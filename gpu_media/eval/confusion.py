"""Semantic segmentation: confusion matrices of two class-id masks, on the backend.

For each image the ``(C, C)`` matrix ``M[g, p]`` (pixels of ground-truth class g
predicted as p) is one histogram of ``g * C + p``: ``np.bincount`` on the CPU, one
CUDA kernel (an atomic histogram over the whole batch) on the GPU, through the
backend's ``confusion`` (docs/ARCHITECTURE.md). From the matrices: per-class IoU
``M[c,c] / (row c + column c - M[c,c])`` (None for a class absent from both masks),
mIoU (the mean over the classes that are not None), pixel accuracy
(``trace / total``), and the same per image. The masks are checked as
``gpu_media.validate_masks`` checks them (their dtypes, shapes, integral values),
and every class id must lie in ``[0, num_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _arrays
from ..backend import get_backend, resolve_device
from ..checks import check_int
from ..errors import MaskError
from ..masks import check_mask_inputs, parse_class_labels, parse_masks

__all__ = ["ConfusionResult", "confusion_matrix", "scores"]


def scores(matrix: np.ndarray) -> tuple[list, float | None, float | None]:
    """(per-class IoU, mIoU, pixel accuracy) of one ``(C, C)`` confusion matrix.

    Args:
        matrix: ``(C, C)`` counts, rows = ground truth, columns = prediction.

    Returns:
        ``iou``: C floats, None for a class absent from both masks; ``miou``: their
        mean over the non-None entries (None if all are); ``pixel_accuracy``:
        ``trace / total`` (None for no pixels).

    Examples:
        >>> scores(np.array([[1, 0, 0], [1, 2, 0], [0, 0, 0]]))
        ([0.5, 0.6666666666666666, None], 0.5833333333333333, 0.75)
    """
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - tp
    present = union > 0
    iou = np.where(present, tp / np.where(present, union, 1), 0.0)
    ious = [float(v) if ok else None for v, ok in zip(iou, present)]
    total = int(m.sum())
    return ious, (float(iou[present].mean()) if present.any() else None), (float(tp.sum() / total) if total else None)


@dataclass(frozen=True, eq=False)
class ConfusionResult:
    """The result of :func:`confusion_matrix`.

    ``matrix``: ``(C, C)`` int64, the batch's sum; ``per_image``: ``(N, C, C)``
    int64; ``iou``: C floats or None; ``miou``, ``pixel_accuracy``: floats (None
    without data); ``image_miou``, ``image_pixel_accuracy``: one per image;
    ``labels``: ``{class id: name}`` or None.
    """

    num_classes: int
    matrix: np.ndarray
    per_image: np.ndarray
    iou: tuple
    miou: float | None
    pixel_accuracy: float | None
    image_miou: tuple
    image_pixel_accuracy: tuple
    labels: dict | None = None

    def to_json(self) -> dict:
        """The index's ``eval.segmentation`` section (docs/SPEC.md), without the mask keys.

        Examples:
            >>> r = confusion_matrix(np.array([[[0, 1]]], np.uint8), np.array([[[0, 0]]], np.uint8), 2)
            >>> r.to_json()["confusion_matrix"], r.to_json()["images"]
            ([[1, 0], [1, 0]], [{'miou': 0.25, 'pixel_accuracy': 0.5}])
        """
        labels = {str(k): v for k, v in sorted((self.labels or {}).items())}
        return {"num_classes": self.num_classes, "labels": labels, "confusion_matrix": self.matrix.tolist(),
                "iou": list(self.iou), "miou": self.miou, "pixel_accuracy": self.pixel_accuracy,
                "images": [{"miou": m, "pixel_accuracy": a}
                           for m, a in zip(self.image_miou, self.image_pixel_accuracy)]}


def _sizes(data: Any) -> list:
    if isinstance(data, (list, tuple)):
        return [tuple(int(s) for s in (d.shape if hasattr(d, "shape") else np.shape(d)))[-2:] for d in data]
    shape = tuple(int(s) for s in (data.shape if hasattr(data, "shape") else np.shape(data)))
    if len(shape) == 2:
        return [shape]
    if len(shape) != 3:
        raise MaskError(f"ground truth: masks must be (N, H, W), (H, W) or a list of (H, W), got shape {shape}",
                        item=shape)
    return [shape[1:]] * shape[0]


def _check_ids(backend: Any, masks: Any, what: str, c: int, offset: int) -> None:
    """MaskError unless every value of the ``(n,H,W)`` backend array is an integer in [0, c).

    docs/SPEC.md 3's value rule (integral, finite) with the bound C: per image the
    smallest and largest value (one reduction each over the batch, on the backend)
    and, for float masks, the count of values that are not integers.
    """
    xp = backend.xp
    n = int(masks.shape[0])
    if n == 0 or masks.size == 0:
        return
    flat = masks.reshape(n, -1)
    if flat.dtype == xp.bool_:
        flat = flat.view(xp.uint8)  # 0 and 1
    bad = None
    if flat.dtype.kind == "f":
        fin = xp.isfinite(flat)
        bad = backend.to_host((~(fin & (flat == xp.floor(xp.where(fin, flat, 0))))).sum(axis=1))
        lo = backend.to_host(xp.where(fin, flat, xp.inf).min(axis=1))
        hi = backend.to_host(xp.where(fin, flat, -xp.inf).max(axis=1))
    else:
        lo, hi = backend.to_host(flat.min(axis=1)), backend.to_host(flat.max(axis=1))
    for j in range(n):
        i = offset + j
        if bad is not None and bad[j]:
            raise MaskError(f"image {i}, {what}: class ids must be integers, found {int(bad[j])} values that are not",
                            index=i, key=what)
        if lo[j] < 0 or hi[j] >= c:
            worst = lo[j] if lo[j] < 0 else hi[j]
            raise MaskError(f"image {i}, {what}: class ids must be in [0, {c}) (num_classes={c}), found {worst:g}",
                            index=i, key=what, item=float(worst))


def confusion_matrix(gt: Any, pred: Any, num_classes: int, *, device: str = "auto",
                     class_labels: dict | None = None) -> ConfusionResult:
    """Confusion matrices of a batch of ground-truth and predicted class-id masks, on the backend.

    Args:
        gt: ``(N, H, W)``, ``(H, W)`` or a list of ``(H, W)`` class-id masks: NumPy,
            CuPy, PyTorch or DLPack arrays or nested lists (integer, float or bool
            dtypes holding integers, as docs/SPEC.md 3 allows).
        pred: the same shapes as ``gt``.
        num_classes: C, 1..256 (mask values are at most 255); every value of both
            masks must be in ``[0, C)``.
        device: "auto" (the GPU when the masks live on it), "cpu" or "gpu"
            (docs/SPEC.md 1's device rule).
        class_labels: ``{class id: name}`` carried into :meth:`ConfusionResult.to_json`.

    Returns:
        :class:`ConfusionResult`: the summed ``(C, C)`` matrix (rows ground truth,
        columns prediction; equal to ``sklearn.metrics.confusion_matrix(gt.ravel(),
        pred.ravel(), labels=range(C))``), per image matrices, per-class IoU, mIoU,
        pixel accuracy and per-image mIoU / pixel accuracy.

    Raises:
        gpu_media.MaskError: an unsupported dtype, a shape that differs between
            ``gt`` and ``pred``, a value that is not an integer, or a class id
            outside ``[0, C)``: naming the batch index and which mask.
        gpu_media.MediaError: ``num_classes`` not an integer in 1..256.
        gpu_media.DeviceError: ``device="gpu"`` without a usable GPU.

    Examples:
        >>> gt = np.array([[[0, 0, 1], [2, 2, 2]]], np.uint8)
        >>> pred = np.array([[[0, 1, 1], [2, 2, 0]]], np.uint8)
        >>> r = confusion_matrix(gt, pred, 3)
        >>> r.matrix.tolist(), r.miou, r.pixel_accuracy
        ([[1, 1, 0], [0, 1, 0], [1, 0, 2]], 0.5, 0.6666666666666666)
        >>> confusion_matrix(gt, pred, 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MaskError: image 0, ground truth: class ids must be in [0, 2) (num_classes=2), found 2
    """
    c = check_int(num_classes, "num_classes", lo=1, hi=256)
    labels = parse_class_labels(class_labels, "confusion_matrix")
    sizes = _sizes(gt)
    checked = check_mask_inputs({"ground truth": {"mask_data": gt}, "prediction": {"mask_data": pred}})
    dev = resolve_device(device, on_gpu=_arrays.on_gpu(gt) or _arrays.on_gpu(pred))
    backend = get_backend(dev)
    sets = parse_masks(checked, sizes, dev)  # shapes of both against gt's
    for s in sets:
        parts = [s.data] if not isinstance(s.data, list) else [a[None] for a in s.data]
        offset = 0
        for part in parts:
            _check_ids(backend, part, s.key, c, offset)
            offset += int(part.shape[0])
    g, p = sets[0].data, sets[1].data
    if isinstance(g, list) or isinstance(p, list):
        per = [backend.to_host(backend.confusion(a[None], b[None], c)) for a, b in zip(g, p)]
        per_image = np.concatenate(per) if per else np.zeros((0, c, c), np.int64)
    else:
        per_image = backend.to_host(backend.confusion(g, p, c)).astype(np.int64, copy=False)
    matrix = per_image.sum(axis=0, dtype=np.int64)
    iou, miou, acc = scores(matrix)
    img = [scores(m) for m in per_image]
    return ConfusionResult(num_classes=c, matrix=matrix, per_image=per_image, iou=tuple(iou), miou=miou,
                           pixel_accuracy=acc, image_miou=tuple(x[1] for x in img),
                           image_pixel_accuracy=tuple(x[2] for x in img), labels=labels)
