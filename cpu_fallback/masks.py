"""docs/SPEC.md 3 in NumPy: one 256-bin histogram per mask, plus the range/integrality facts."""

from __future__ import annotations

import numpy as np


def mask_stats(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N,H,W) masks of any dtype -> (hist (N,256) int64, lo (N,), hi (N,), bad (N,) int64).

    ``hist[i, v]`` counts pixels of value v for integral v in [0, 255]; ``lo``/``hi``
    are the smallest/largest finite value of each mask (+inf/-inf when none is
    finite); ``bad`` counts non-finite or non-integral values.

    Examples:
        >>> hist, lo, hi, bad = mask_stats(np.array([[[0, 2], [2, 2]]], np.float32))
        >>> hist[0, :3].tolist(), lo.tolist(), hi.tolist(), bad.tolist()
        ([1, 0, 3], [0.0], [2.0], [0])
        >>> mask_stats(np.array([[[0.5, 300.0]]]))[3].tolist()
        [1]
    """
    n = masks.shape[0]
    if masks.dtype == np.bool_:
        masks = masks.view(np.uint8)
    flat = masks.reshape(n, -1)
    if flat.dtype == np.uint8:
        offs = (np.arange(n, dtype=np.int64) * 256)[:, None]
        hist = np.bincount((flat + offs).ravel(), minlength=n * 256).reshape(n, 256)
        return hist, flat.min(axis=1), flat.max(axis=1), np.zeros(n, dtype=np.int64)
    if flat.dtype.kind == "f":
        fin = np.isfinite(flat)
        integral = fin & (flat == np.floor(np.where(fin, flat, 0)))
        bad = (~integral).sum(axis=1).astype(np.int64)
        lo = np.where(fin, flat, np.inf).min(axis=1)
        hi = np.where(fin, flat, -np.inf).max(axis=1)
    else:
        integral = None
        bad = np.zeros(n, dtype=np.int64)
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    valid = (flat >= 0) & (flat <= 255)
    if integral is not None:
        valid &= integral
    rows, cols = np.nonzero(valid)
    vals = flat[rows, cols].astype(np.int64) + rows.astype(np.int64) * 256
    hist = np.bincount(vals, minlength=n * 256).reshape(n, 256)
    return hist, lo, hi, bad


def confusion(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,H,W) class-id masks -> (N, C, C) int64 confusion matrices, one per image (``C = num_classes``).

    ``out[i, g, p]`` counts the pixels of image i whose ground truth is class g and
    prediction class p. The masks are validated integers in [0, C) (any integer,
    float or bool dtype); one ``np.bincount`` of ``g * C + p`` per image.

    Examples:
        >>> confusion(np.array([[[0, 1], [1, 1]]], np.uint8), np.array([[[0, 1], [0, 1]]], np.uint8), 2).tolist()
        [[[1, 0], [1, 2]]]
    """
    n, c = gt.shape[0], int(num_classes)
    out = np.empty((n, c, c), dtype=np.int64)
    for i in range(n):
        idx = gt[i].ravel().astype(np.intp)  # bincount counts intp indices: no second conversion
        idx *= c
        p = pred[i].ravel()
        idx += p if p.dtype.kind in "iu" and p.dtype != np.uint64 else p.astype(np.intp)
        out[i] = np.bincount(idx, minlength=c * c).reshape(c, c)
    return out
