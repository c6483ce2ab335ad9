"""COCO detection evaluation: COCOeval's numbers, and which prediction is right.

The statistics are COCOeval's own: pycocotools' ``COCOeval`` (the ``coco`` extra;
the default, its floats are the reference), or faster-coco-eval's
``COCOeval_faster`` (the ``eval`` extra; ``engine="faster-coco-eval"``, or "auto"
without pycocotools). faster-coco-eval documents its results as identical; measured
(1.8.0, tests/test_eval_coco.py) they are to about 1e-16 relative, not bit for bit
(e.g. the demo's segm AP ...324258 vs ...32426), and its marks are the same.
Nothing of AP or AR is recomputed here: the 12 ``stats`` are the
engine's, and the per-class AP, AP50, AP75 and AR100 are read from its
``eval['precision']`` / ``eval['recall']`` arrays exactly as ``COCOeval.summarize``
reads them (area "all", maxDets 100, mean over the entries > -1).

What COCOeval computes and does not expose is the per-image matching
(``COCOeval.evaluateImg`` keeps it in ``evalImgs``, faster-coco-eval keeps it in
C++). It is redone here with the engine's own IoU matrices (``COCOeval.ious``), for
area "all", maxDets 100 and the IoU thresholds 0.50 and 0.75 only, by a port of
``evaluateImg``'s greedy loop (detections by score, highest first, mergesort; at
most 100 per image and category; ground truth with ``iscrowd`` (or an area outside
area "all") last and ignored; a crowd may be matched many times; a detection
matched to an ignored ground truth is ignored), run in NumPy for every (image,
category) pair at once: the pairs step through their detections together (previous
versions looped in Python, pair by pair: most of ``--eval``'s cost). Each detection
of the results file is then "tp", "fp" or "ignored" (ignored also: beyond the 100
best of its image and category, which COCOeval never looks at), each ground-truth
annotation "matched", "fn" or "ignored", with the IoU of each match. The tests re-derive these
marks from pycocotools' ``evalImgs`` and compare.
"""

from __future__ import annotations

import contextlib
import gc
import io
import itertools
import operator
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MediaError
from ..fileio import read_json

__all__ = ["ENGINES", "STATS_NAMES", "OUTCOME_COLORS", "outcome_colors", "Mark", "ImageEvaluation",
           "ClassEvaluation", "CocoEvaluation", "evaluate_boxes", "evaluate_coco", "summary_lines"]

#: The evaluation engines, in the order "auto" tries them: pycocotools first, its floats are the
#: reference (faster-coco-eval 1.8 differs from them in the last bits, e.g. the demo's segm AP).
ENGINES = ("pycocotools", "faster-coco-eval")
#: ``COCOeval.stats``' order (bbox and segm).
STATS_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
#: ``COCOeval.summarize``'s arguments for each of the 12 lines: (ap, iouThr, areaRng, maxDets).
_SUMMARY = ((1, None, "all", 100), (1, .5, "all", 100), (1, .75, "all", 100), (1, None, "small", 100),
            (1, None, "medium", 100), (1, None, "large", 100), (0, None, "all", 1), (0, None, "all", 10),
            (0, None, "all", 100), (0, None, "small", 100), (0, None, "medium", 100), (0, None, "large", 100))
#: Outline colours of an evaluated dump (docs/SPEC.md 6.6), by outcome at IoU 0.50.
OUTCOME_COLORS = {"tp": (0, 200, 0), "fp": (230, 0, 0), "fn": (255, 165, 0), "matched": (255, 255, 255),
                  "ignored": (128, 128, 128)}
_EXTRA = 'pip install ".[coco]" (pycocotools) or ".[eval]" (faster-coco-eval)'
_MAX_DET = 100
_AREA_ALL = (0 ** 2, 1e5 ** 2)


@dataclass(frozen=True)
class Mark:
    """The outcome of one box at IoU 0.50 and 0.75 (area "all", maxDets 100).

    ``o50``/``o75``: for a prediction "tp", "fp" or "ignored"; for a ground-truth
    annotation "matched", "fn" or "ignored". ``iou50``/``iou75``: the IoU of the
    match (COCOeval's ``ious`` entry), None when unmatched.
    """

    o50: str
    iou50: float | None
    o75: str
    iou75: float | None

    def to_json(self) -> dict:
        """``{"o50", "iou50", "o75", "iou75"}`` (docs/SPEC.md, the index's ``eval`` section).

        Examples:
            >>> Mark("tp", 0.8, "fp", None).to_json()
            {'o50': 'tp', 'iou50': 0.8, 'o75': 'fp', 'iou75': None}
        """
        return {"o50": self.o50, "iou50": self.iou50, "o75": self.o75, "iou75": self.iou75}


@dataclass(frozen=True)
class ImageEvaluation:
    """One image: its detections' and ground truth's marks and counts.

    ``pred``: one :class:`Mark` per detection of this image, in the results file's
    order; ``gt``: one per ground-truth annotation, in the instances file's order.
    Counts at IoU 0.50 (``tp``, ``fp``, ``fn``) and 0.75 (``tp75``...) leave ignored
    boxes out; ``f1`` = 2 tp / (2 tp + fp + fn) at 0.50, None when that is 0 / 0;
    ``error_classes``: category ids with an FP or FN at 0.50, ascending.
    """

    image_id: int
    pred: tuple
    gt: tuple
    tp: int
    fp: int
    fn: int
    tp75: int
    fp75: int
    fn75: int
    f1: float | None
    error_classes: tuple

    def to_json(self, pred_indices: Any = None, gt_indices: Any = None) -> dict:
        """The image's entry of the index's ``eval.detection.images`` (docs/SPEC.md).

        ``pred`` and ``gt`` are columns aligned with the boxes:
        ``{"o50": [...], "iou50": [...], "o75": [...], "iou75": [...]}`` (one entry
        per box in each; a JSON array per column is some 4x smaller and faster to
        write and read than an object per box, ~100 boxes per image).

        Args:
            pred_indices: which of ``pred`` to list (e.g. those shown above a score
                threshold), in that order; None: all.
            gt_indices: the same for ``gt``.

        Examples:
            >>> im = ImageEvaluation(1, (Mark("tp", 0.9, "tp", 0.9), Mark("fp", None, "fp", None)),
            ...                      (Mark("matched", 0.9, "matched", 0.9),), 1, 1, 0, 1, 1, 0, 2 / 3, (5,))
            >>> im.to_json(pred_indices=[0])["pred"], im.to_json()["f1"]
            ({'o50': ['tp'], 'iou50': [0.9], 'o75': ['tp'], 'iou75': [0.9]}, 0.6666666666666666)
            >>> im.to_json()["pred"]["o50"]
            ['tp', 'fp']
        """
        pred = self.pred if pred_indices is None else [self.pred[int(i)] for i in pred_indices]
        gt = self.gt if gt_indices is None else [self.gt[int(i)] for i in gt_indices]
        return {"image_id": self.image_id, "tp": self.tp, "fp": self.fp, "fn": self.fn, "f1": self.f1,
                "tp75": self.tp75, "fp75": self.fp75, "fn75": self.fn75, "error_classes": list(self.error_classes),
                "pred": _columns(pred), "gt": _columns(gt)}


def _columns(marks: Any) -> dict:
    """``{"o50": [...], "iou50": [...], "o75": [...], "iou75": [...]}`` of a sequence of :class:`Mark`."""
    return {"o50": [m.o50 for m in marks], "iou50": [m.iou50 for m in marks], "o75": [m.o75 for m in marks],
            "iou75": [m.iou75 for m in marks]}


@dataclass(frozen=True)
class ClassEvaluation:
    """One category: AP, AP50, AP75, AR100 and TP / FP / FN counts.

    AP over IoU 0.50:0.95, AP50, AP75, AR100: area "all", maxDets 100, None without
    ground truth of the class; counts at IoU 0.50 (area "all", maxDets 100).
    """

    id: int
    name: str
    ap: float | None
    ap50: float | None
    ap75: float | None
    ar100: float | None
    tp: int
    fp: int
    fn: int

    def to_json(self) -> dict:
        """One row of ``eval.detection.classes`` (docs/SPEC.md).

        Examples:
            >>> ClassEvaluation(1, "cat", 0.5, 0.7, None, 0.6, 3, 1, 0).to_json()["ap75"] is None
            True
        """
        return {"id": self.id, "name": self.name, "ap": self.ap, "ap50": self.ap50, "ap75": self.ap75,
                "ar100": self.ar100, "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass(frozen=True)
class CocoEvaluation:
    """The result of :func:`evaluate_coco`.

    ``stats``: COCOeval's 12 numbers (order :data:`STATS_NAMES`, -1 where
    undefined); ``classes``: one :class:`ClassEvaluation` per category id (ascending);
    ``images``: one :class:`ImageEvaluation` per image of the instances file, in its
    order; ``recall``: the 101 recall points; ``precision50``: {category id: the 101
    precisions at IoU 0.50 (area "all", maxDets 100; -1 where undefined)};
    ``engine``: which engine computed it.
    """

    iou_type: str
    engine: str
    stats: tuple
    classes: tuple
    images: tuple
    recall: tuple
    precision50: dict

    def summary(self) -> str:
        """COCOeval.summarize's 12 lines, character for character.

        Examples:
            >>> from gpu_media.formats.coco import demo_coco
            >>> demo = demo_coco()
            >>> print(evaluate_coco(demo.instances, demo.predictions).summary().splitlines()[1])
             Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.110
        """
        return "\n".join(summary_lines(self.stats))

    def image(self, image_id: int) -> ImageEvaluation:
        """The :class:`ImageEvaluation` of ``image_id`` (KeyError if it is not an image of the instances).

        Examples:
            >>> from gpu_media.formats.coco import demo_coco
            >>> demo = demo_coco()
            >>> ev = evaluate_coco(demo.instances, demo.predictions)
            >>> ev.image(ev.images[0].image_id) is ev.images[0]
            True
        """
        lookup = self.__dict__.get("_by_id")
        if lookup is None:
            lookup = {im.image_id: im for im in self.images}
            object.__setattr__(self, "_by_id", lookup)
        return lookup[image_id]

    def to_json(self) -> dict:
        """The ``eval.detection`` section of an index (docs/SPEC.md), without the box keys.

        Examples:
            >>> from gpu_media.formats.coco import demo_coco
            >>> demo = demo_coco()
            >>> section = evaluate_coco(demo.instances, demo.predictions).to_json()
            >>> sorted(section)[:4], len(section["stats"]), len(section["pr_curves"]["recall"])
            (['classes', 'images', 'iou_type', 'pr_curves'], 12, 101)
        """
        with _gc_paused():  # a few objects per box: see _gc_paused
            return {"iou_type": self.iou_type, "stats": list(self.stats), "stats_names": list(STATS_NAMES),
                    "classes": [c.to_json() for c in self.classes],
                    "pr_curves": {"recall": list(self.recall), "iou": 0.5,
                                  "precision": {str(k): list(v) for k, v in self.precision50.items()}},
                    "images": [im.to_json() for im in self.images]}


def outcome_colors(marks: Any) -> np.ndarray:
    """(M,3) uint8 outline colours of boxes by their outcome at IoU 0.50 (:data:`OUTCOME_COLORS`).

    Args:
        marks: :class:`Mark` objects (of predictions or of ground truth).

    Returns:
        one row per mark: TP green, FP red, FN orange, matched white, ignored grey.

    Examples:
        >>> outcome_colors([Mark("tp", 0.9, "fp", None), Mark("fn", None, "fn", None)]).tolist()
        [[0, 200, 0], [255, 165, 0]]
    """
    return np.array([OUTCOME_COLORS[m.o50] for m in marks], dtype=np.uint8).reshape(-1, 3)


def summary_lines(stats: Any) -> list[str]:
    """``COCOeval.summarize``'s 12 printed lines for 12 ``stats`` (bbox / segm), its format string.

    Args:
        stats: 12 numbers in the order of :data:`STATS_NAMES`.

    Returns:
        the lines, without newlines.

    Examples:
        >>> summary_lines([0.5] * 12)[0]
        ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500'
    """
    i_str = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
    out = []
    for (ap, iou_thr, area, max_dets), value in zip(_SUMMARY, stats):
        title, kind = ("Average Precision", "(AP)") if ap == 1 else ("Average Recall", "(AR)")
        iou = "{:0.2f}:{:0.2f}".format(0.5, 0.95) if iou_thr is None else "{:0.2f}".format(iou_thr)
        out.append(i_str.format(title, kind, iou, area, max_dets, value))
    return out


def _engine(name: str):
    """(engine name, COCO class, COCOeval factory) for "auto", "pycocotools" or "faster-coco-eval"."""
    if name not in ("auto", *ENGINES):
        raise MediaError(f"engine must be 'auto' or one of {ENGINES}, got {name!r}")
    if name in ("auto", "pycocotools"):
        try:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval
        except ImportError:
            if name != "auto":
                raise MediaError('engine="pycocotools" needs pycocotools: pip install ".[coco]"') from None
        else:
            return "pycocotools", COCO, COCOeval
    try:
        from faster_coco_eval.core import COCO, COCOeval_faster
    except ImportError:
        if name != "auto":
            raise MediaError("engine='faster-coco-eval' needs faster-coco-eval: "
                             'pip install ".[eval]"') from None
        raise MediaError(f"COCO evaluation needs pycocotools or faster-coco-eval: {_EXTRA}") from None

    def make(gt, dt, iou_type):
        return COCOeval_faster(gt, dt, iou_type, print_function=lambda *a, **k: None)
    return "faster-coco-eval", COCO, make


def _read(source: Any, what: str) -> Any:
    return read_json(source, what) if isinstance(source, (str, os.PathLike)) else source


def _ground_truth(inst: Any, iou_type: str) -> dict:
    """A COCO dataset dict COCOeval can read, with fresh annotation dicts (COCOeval writes into them)."""
    if not isinstance(inst, dict) or not isinstance(inst.get("images"), list):
        raise MediaError("instances: not a COCO instances file (needs an 'images' list)")
    anns = inst.get("annotations") or []
    cats = inst.get("categories") or []
    if not isinstance(anns, list) or not isinstance(cats, list):
        raise MediaError("instances: 'annotations' and 'categories' must be lists")
    out = []
    for k, a in enumerate(anns):
        if not isinstance(a, dict):
            raise MediaError(f"instances: annotations[{k}] must be an object")
        for field in ("image_id", "category_id", "bbox", "area", "iscrowd") + (("segmentation",) if iou_type == "segm"
                                                                                else ()):
            if field not in a:
                raise MediaError(f"instances: annotations[{k}] has no {field!r} (COCOeval reads it)")
        out.append(dict(a))
    ids = [a.get("id") for a in out]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(set(ids)) != len(ids):
        for k, a in enumerate(out):  # COCO indexes annotations by id: missing or repeated ids get k + 1
            a["id"] = k + 1
    return {"images": [dict(im) for im in inst["images"]], "annotations": out, "categories": list(cats),
            "info": inst.get("info", {})}


def _results(preds: Any, image_ids: set, owned: bool = False) -> list:
    """The detections in a form ``COCO.loadRes`` takes; copies unless ``owned`` (loadRes writes into them).

    A detection with only a polygon or uncompressed-RLE ``segmentation`` gets it as
    compressed RLE (loadRes' segmentation form reads areas of RLE only); the
    evaluation of the mask is the same, COCOeval converts polygons the same way.
    """
    if not isinstance(preds, list):
        raise MediaError("predictions: a COCO results file is a JSON list of detections "
                         "(pycocotools: results in not an array of objects)")
    # the checks below in C (map), ~100 detections per image; the loop after names the first bad one
    if (all(map(isinstance, preds, itertools.repeat(dict)))
            and set(map(operator.methodcaller("get", "image_id"), preds)) <= image_ids
            and all(map(operator.contains, preds, itertools.repeat("score")))):
        return preds if owned else list(map(dict, preds))
    for k, d in enumerate(preds):
        if not isinstance(d, dict):
            raise MediaError(f"predictions: detections[{k}] must be an object")
        if d.get("image_id") not in image_ids:
            raise MediaError(f"predictions: detections[{k}]: unknown image_id {d.get('image_id')!r} "
                             "(pycocotools: Results do not correspond to current coco set)")
        if "score" not in d:
            raise MediaError(f"predictions: detections[{k}] has no 'score'")
    return preds if owned else [dict(d) for d in preds]


def _load_results(gt, coco_cls, results: list, images: dict) -> Any:
    if not results:  # loadRes reads results[0]; an empty results file evaluates as no detections
        dt = coco_cls()
        dt.dataset = {"images": list(gt.dataset["images"]), "categories": list(gt.dataset["categories"]),
                      "annotations": []}
        dt.createIndex()
        return dt
    first = results[0]
    if not ("bbox" in first and first["bbox"] != []) and "segmentation" in first:
        from pycocotools import mask as mask_api  # faster-coco-eval's is the same API

        for d in results:
            seg = d.get("segmentation")
            if isinstance(seg, list) or (isinstance(seg, dict) and isinstance(seg.get("counts"), list)):
                h, w = images[d["image_id"]]
                rle = mask_api.merge(mask_api.frPyObjects(seg, h, w)) if isinstance(seg, list) else \
                    mask_api.frPyObjects(seg, h, w)
                d["segmentation"] = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    return gt.loadRes(results)


_PRED_NAMES = ("tp", "fp", "ignored")
_GT_NAMES = ("matched", "fn", "ignored")
_TP, _MISS, _IGN = 0, 1, 2  # outcome codes: tp / matched, fp / fn, ignored
_FP = Mark("fp", None, "fp", None)
_FN = Mark("fn", None, "fn", None)
_IGNORED = Mark("ignored", None, "ignored", None)


def _dense(values: list, ids: np.ndarray, index: dict) -> np.ndarray:
    """(N,) int64 positions of ``values`` among ``ids`` (sorted; ``index`` = {id: position}), -1 where absent."""
    arr = np.array(values)
    if arr.ndim == 1 and arr.dtype.kind in "iu" and len(ids):
        pos = np.minimum(np.searchsorted(ids, arr), len(ids) - 1)
        return np.where(ids[pos] == arr, pos, -1).astype(np.int64)
    get = index.get  # ids of other types (COCO's are integers): one by one
    return np.fromiter((get(v, -1) for v in values), dtype=np.int64, count=len(values))


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For keys already sorted: (unique keys, start of each group, rank of each element in its group)."""
    n = len(keys)
    if n == 0:
        return keys, np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    rank = np.arange(n, dtype=np.int64) - np.repeat(first, np.diff(np.r_[first, n]))
    return keys[first], first, rank


def _greedy(flat: np.ndarray, off: np.ndarray, n_dt: np.ndarray, n_gt: np.ndarray, g_ign: np.ndarray,
            g_crowd: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``COCOeval.evaluateImg``'s matching at one threshold, for many (image, category) pairs at once.

    Pair p's IoU matrix (detections by score, highest first, x ground truth in file
    order) is ``flat[off[p]:off[p] + n_dt[p] * n_gt[p]]``, row-major; ``g_ign`` /
    ``g_crowd`` (P, Gmax) its ground truth's ignore and crowd flags. The pairs step
    through their detections together; each detection takes, as evaluateImg's loop
    does, among the ground truth not yet matched (a crowd always available) with IoU
    >= min(threshold, 1 - 1e-10), the last of the highest IoU among the not ignored,
    else among the ignored. Returns (P, Dmax) the matched ground truth of each
    detection (-1: none) and (P, Gmax) the detection rank that matched each ground
    truth last (-1: none).
    """
    n_pairs = len(off)
    d_max, g_max = int(n_dt.max(initial=0)), int(n_gt.max(initial=0))
    dt_m = np.full((n_pairs, d_max), -1, dtype=np.int64)
    gt_m = np.full((n_pairs, g_max), -1, dtype=np.int64)
    thr = min(threshold, 1 - 1e-10)
    # buckets of pairs by ground-truth count (1, 2, 3-4, 5-8, ...), each padded to its widest
    bucket = np.ceil(np.log2(np.maximum(n_gt, 1))).astype(np.int64)
    for b in np.unique(bucket):
        pairs = np.flatnonzero(bucket == b)
        pairs = pairs[np.argsort(-n_dt[pairs], kind="stable")]  # the pairs still active at step k: a prefix
        width = int(n_gt[pairs].max())
        col = np.arange(width)
        valid = col < n_gt[pairs, None]
        ign, crowd = g_ign[pairs, :width], g_crowd[pairs, :width]
        gm = np.full((len(pairs), width), -1, dtype=np.int64)
        steps = n_dt[pairs]
        for k in range(int(steps[0])):
            a = int(np.count_nonzero(steps > k))
            v = valid[:a]
            vals = np.where(v, flat[np.where(v, off[pairs[:a], None] + k * n_gt[pairs[:a], None] + col, 0)], -1.0)
            ok = v & ~((gm[:a] >= 0) & ~crowd[:a]) & (vals >= thr)
            good = ok & ~ign[:a]
            cand = np.where(good.any(axis=1)[:, None], good, ok & ign[:a])
            has = cand.any(axis=1)
            best = np.where(cand, vals, -np.inf)
            top = cand & (best == best.max(axis=1, initial=-np.inf)[:, None])
            m = np.where(has, width - 1 - np.argmax(top[:, ::-1], axis=1), -1)
            rows = np.flatnonzero(has)
            gm[rows, m[rows]] = k
            dt_m[pairs[:a], k] = m
        gt_m[pairs, :width] = gm
    return dt_m, gt_m


def _match(E, gt_anns: list, dt_anns: list, image_ids: list, cat_ids: list, thresholds: tuple) -> dict:
    """Every detection's and ground truth's outcome codes and IoUs, from the engine's ``ious`` and evaluateImg's rules.

    Returns arrays: ``d_img``, ``d_cat`` / ``g_img``, ``g_cat`` (positions in
    ``image_ids`` / ``cat_ids``, -1 outside them), ``d_code``, ``d_iou`` (2, N) /
    ``g_code``, ``g_iou`` (2, M) at each threshold (codes _TP, _MISS, _IGN; IoU NaN
    where unmatched).
    """
    lo, hi = _AREA_ALL
    n_cat = max(len(cat_ids), 1)
    img_pos = {v: k for k, v in enumerate(image_ids)}
    cat_pos = {v: k for k, v in enumerate(cat_ids)}
    img_sorted, cat_sorted = np.array(image_ids, dtype=np.int64), np.array(cat_ids, dtype=np.int64)
    if (np.diff(img_sorted) <= 0).any() or (np.diff(cat_sorted) <= 0).any():
        raise MediaError("evaluation: the engine's image or category ids are not sorted and unique")
    take = operator.itemgetter
    d_img = _dense(list(map(take("image_id"), dt_anns)), img_sorted, img_pos)
    d_cat = _dense(list(map(take("category_id"), dt_anns)), cat_sorted, cat_pos)
    g_img = _dense(list(map(take("image_id"), gt_anns)), img_sorted, img_pos)
    g_cat = _dense(list(map(take("category_id"), gt_anns)), cat_sorted, cat_pos)
    n, n_g = len(dt_anns), len(gt_anns)
    score = np.fromiter(map(take("score"), dt_anns), dtype=np.float64, count=n)
    d_area = np.fromiter(map(take("area"), dt_anns), dtype=np.float64, count=n)
    g_area = np.fromiter(map(take("area"), gt_anns), dtype=np.float64, count=n_g)
    g_crowd = np.array([int(a["iscrowd"]) != 0 for a in gt_anns], dtype=bool).reshape(n_g)
    g_ign = g_crowd | (g_area < lo) | (g_area > hi)
    d_out = (d_area < lo) | (d_area > hi)
    d_pair = np.where((d_img >= 0) & (d_cat >= 0), d_img * n_cat + d_cat, -1)
    g_pair = np.where((g_img >= 0) & (g_cat >= 0), g_img * n_cat + g_cat, -1)

    # detections by (image, category), then score, highest first (stable: evaluateImg's mergesort)
    d_order = np.argsort(-score, kind="stable")
    d_order = d_order[np.argsort(d_pair[d_order], kind="stable")]
    d_order = d_order[d_pair[d_order] >= 0]
    d_keys, _, d_rank = _groups(d_pair[d_order])
    g_order = np.argsort(g_pair, kind="stable")
    g_order = g_order[g_pair[g_order] >= 0]
    g_keys, g_first, g_rank = _groups(g_pair[g_order])
    d_pid = np.searchsorted(d_keys, d_pair[d_order])  # each sorted detection's pair
    g_pid = np.searchsorted(g_keys, g_pair[g_order])
    d_count = np.bincount(d_pid, minlength=len(d_keys))

    # pairs with both: the engine's IoU matrices, laid end to end
    both = np.intersect1d(d_keys, g_keys, assume_unique=True)
    in_d, in_g = np.searchsorted(d_keys, both), np.searchsorted(g_keys, both)
    n_dt = np.minimum(d_count[in_d], _MAX_DET)
    n_gt = np.bincount(g_pid, minlength=len(g_keys))[in_g]
    mats = []
    for key, nd, ng in zip(both.tolist(), n_dt.tolist(), n_gt.tolist()):
        m = np.asarray(E.ious.get((image_ids[key // n_cat], cat_ids[key % n_cat]), ()), dtype=np.float64)
        if m.shape != (nd, ng):
            raise MediaError(f"evaluation: the engine's IoU matrix of image {image_ids[key // n_cat]}, category "
                             f"{cat_ids[key % n_cat]} is {m.shape}, expected {(nd, ng)} (an engine version "
                             "this module does not know?)")
        mats.append(m.ravel())
    flat = np.concatenate(mats) if mats else np.zeros(0)
    off = np.r_[0, np.cumsum(n_dt * n_gt)[:-1]].astype(np.int64) if len(both) else np.zeros(0, np.int64)
    g_max = int(n_gt.max(initial=0))
    col = np.arange(g_max)
    g_at = np.where(col < n_gt[:, None], g_first[in_g, None] + col, 0)  # (P, Gmax) positions in g_order
    pair_ign = np.where(col < n_gt[:, None], g_ign[g_order][g_at], False) if len(g_order) else g_at > 0
    pair_crowd = np.where(col < n_gt[:, None], g_crowd[g_order][g_at], False) if len(g_order) else g_at > 0

    # where each sorted detection / ground truth sits among the pairs with both (-1: its pair has no other side)
    d_both = np.full(len(d_keys), -1, np.int64)
    d_both[in_d] = np.arange(len(both))
    g_both = np.full(len(g_keys), -1, np.int64)
    g_both[in_g] = np.arange(len(both))
    d_p, g_p = d_both[d_pid], g_both[g_pid]

    d_code = np.full((2, n), _IGN, dtype=np.int8)
    d_iou = np.full((2, n), np.nan)
    g_code = np.full((2, n_g), _IGN, dtype=np.int8)
    g_iou = np.full((2, n_g), np.nan)
    for t, threshold in enumerate(thresholds):
        dm, gm = _greedy(flat, off, n_dt, n_gt, pair_ign, pair_crowd, threshold)
        # detections: matched (to an ignored ground truth: ignored), else fp unless outside area "all"
        code = np.where(d_out[d_order], _IGN, _MISS).astype(np.int8)
        iou = np.full(len(d_order), np.nan)
        sel = (d_p >= 0) & (d_rank < _MAX_DET)
        ps, rs = d_p[sel], d_rank[sel]
        m = dm[ps, rs]
        hit = m >= 0
        idx = np.flatnonzero(sel)[hit]
        code[idx] = np.where(pair_ign[ps[hit], m[hit]], _IGN, _TP)
        iou[idx] = flat[off[ps[hit]] + rs[hit] * n_gt[ps[hit]] + m[hit]]
        code[d_rank >= _MAX_DET] = _IGN  # beyond maxDets: COCOeval never looks at them
        d_code[t, d_order], d_iou[t, d_order] = code, iou
        # ground truth: ignored (crowd, outside area "all"), else matched or fn
        gcode = np.where(g_ign[g_order], _IGN, _MISS).astype(np.int8)
        giou = np.full(len(g_order), np.nan)
        sel = g_p >= 0
        ps, cs = g_p[sel], g_rank[sel]
        m = gm[ps, cs]
        hit = m >= 0
        idx = np.flatnonzero(sel)[hit]
        gcode[idx] = np.where(g_ign[g_order][idx], _IGN, _TP)
        giou[idx] = flat[off[ps[hit]] + m[hit] * n_gt[ps[hit]] + cs[hit]]
        g_code[t, g_order], g_iou[t, g_order] = gcode, giou
    return {"d_img": d_img, "d_cat": d_cat, "g_img": g_img, "g_cat": g_cat,
            "d_code": d_code, "d_iou": d_iou, "g_code": g_code, "g_iou": g_iou}


def _mark_list(code: np.ndarray, iou: np.ndarray, names: tuple) -> list:
    """One :class:`Mark` per column of ``code`` / ``iou`` (2, N); the marks without an IoU shared."""
    shared = [Mark(names[a], None, names[b], None) for a in range(3) for b in range(3)]
    marks = [shared[k] for k in (code[0].astype(np.int64) * 3 + code[1]).tolist()]
    with_iou = np.flatnonzero(~np.isnan(iou).all(axis=0))
    for j, c0, i0, c1, i1 in zip(with_iou.tolist(), code[0, with_iou].tolist(), iou[0, with_iou].tolist(),
                                 code[1, with_iou].tolist(), iou[1, with_iou].tolist()):
        marks[j] = Mark(names[c0], None if i0 != i0 else i0, names[c1], None if i1 != i1 else i1)
    return marks


def _per_image(marks: list, img: np.ndarray, n_img: int) -> list:
    """``marks`` grouped by image position (file order kept within an image): a tuple per image."""
    ends = np.cumsum(np.bincount(img[img >= 0], minlength=n_img)).tolist()
    if len(img) and img[0] >= 0 and (np.diff(img) >= 0).all():
        ranked = marks  # already by image (a results file usually is)
    else:
        order = np.argsort(img, kind="stable")
        ranked = [marks[i] for i in order[img[order] >= 0].tolist()]
    out, start = [], 0
    for end in ends:
        out.append(tuple(ranked[start:end]))
        start = end
    return out


def _mean_valid(s: np.ndarray) -> float | None:
    v = s[s > -1]
    return float(np.mean(v)) if v.size else None


@contextlib.contextmanager
def _gc_paused():
    """CPython's cyclic garbage collector paused for the block, as it was after it.

    An evaluation allocates a few Python objects per detection (copies of the results,
    what ``loadRes`` and COCOeval add to them, the marks): ~100 000 detections trigger
    full collections that each walk every object of the process (measured on 1000
    generated images, benchmarks/eval_coco.py's data: copying the results alone added
    ~20% to faster-coco-eval's time with the collector on, 3% with it paused). Nothing
    here needs the collector: reference counting frees the evaluation's
    objects, any cycle among them is collected once it runs again.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def evaluate_coco(instances: Any, predictions: Any, iou_type: str = "bbox", *,
                  engine: str = "auto") -> CocoEvaluation:
    """COCO detection evaluation (COCOeval) with every prediction marked TP / FP and every miss FN.

    Args:
        instances: a COCO instances file (path) or its parsed dict (``images``,
            ``annotations`` with ``bbox``, ``area``, ``iscrowd`` (and
            ``segmentation`` for "segm"), ``categories``).
        predictions: a COCO results file (path) or its parsed list: every form
            ``COCO.loadRes`` accepts (bbox; segmentation without bbox; polygon or
            uncompressed-RLE segmentations are converted to RLE first). All of them
            are evaluated, as COCOeval does (no score threshold).
        iou_type: "bbox" or "segm".
        engine: "auto" (pycocotools where installed, else faster-coco-eval),
            "pycocotools" or "faster-coco-eval" (faster; stats equal to ~1e-16).

    Returns:
        :class:`CocoEvaluation`: the 12 stats, per class AP / AP50 / AP75 / AR100
        and TP / FP / FN at IoU 0.50, per image the marks of its detections (results
        file order) and ground truth (instances file order), the PR curves at 0.50.
        Rules: the module's docstring (COCOeval's, area "all", maxDets 100).

    Raises:
        gpu_media.MediaError: neither pycocotools nor faster-coco-eval installed
            (naming the extras), unreadable files, a malformed instances or results
            file (as COCOeval would fail on it), an unknown ``iou_type`` or engine.

    Examples:
        >>> from gpu_media.formats.coco import demo_coco
        >>> demo = demo_coco()
        >>> ev = evaluate_coco(demo.instances, demo.predictions)
        >>> round(ev.stats[1], 3), ev.classes[0].name, (ev.classes[0].tp, ev.classes[0].fp, ev.classes[0].fn)
        (0.11, 'dark object', (2, 13, 14))
        >>> first = ev.images[0]  # astronaut.jpg: 8 detections, 7 ground-truth instances
        >>> first.tp, first.fp, first.fn, first.pred[7].o50, round(first.pred[7].iou50, 2), first.pred[0].o50
        (1, 7, 6, 'tp', 0.6, 'fp')
    """
    with _gc_paused():  # several Python objects per detection: see _gc_paused
        return _evaluate_coco(instances, predictions, iou_type, engine)


def _evaluate_coco(instances: Any, predictions: Any, iou_type: str, engine: str) -> CocoEvaluation:
    if iou_type not in ("bbox", "segm"):
        raise MediaError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    name, coco_cls, make_eval = _engine(engine)
    inst = _ground_truth(_read(instances, "instances file"), iou_type)
    images = {}
    for k, im in enumerate(inst["images"]):
        if not (isinstance(im, dict) and isinstance(im.get("id"), int)):
            raise MediaError(f"instances: images[{k}] needs an integer 'id'")
        images[im["id"]] = (im.get("height"), im.get("width"))
    results = _results(_read(predictions, "predictions file"), set(images),
                       owned=isinstance(predictions, (str, os.PathLike)))  # parsed here: ours to change
    if iou_type == "segm":
        for k, d in enumerate(results):
            if d.get("segmentation") is None:
                raise MediaError(f"predictions: detections[{k}] has no 'segmentation' (iou_type='segm')")
        for im_id, (h, w) in images.items():
            if not (isinstance(h, int) and isinstance(w, int)):
                raise MediaError(f"instances: image {im_id} needs integer 'height' and 'width' for iou_type='segm'")
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        gt = coco_cls()
        gt.dataset = inst
        gt.createIndex()
        try:
            dt = _load_results(gt, coco_cls, results, images)
        except (KeyError, TypeError, ValueError, AssertionError) as exc:
            raise MediaError(f"predictions: COCO.loadRes refused them ({type(exc).__name__}: {exc})") from None
        E = make_eval(gt, dt, iou_type)
        E.evaluate()
        E.accumulate()
        E.summarize()
    p = E.params
    stats = tuple(float(v) for v in E.stats[:12])
    precision, recall = np.asarray(E.eval["precision"]), np.asarray(E.eval["recall"])
    t50 = int(np.where(p.iouThrs == .5)[0][0])
    t75 = int(np.where(p.iouThrs == .75)[0][0])
    area_all = list(p.areaRngLbl).index("all")
    m100 = list(p.maxDets).index(100)
    cat_ids = [int(c) for c in p.catIds]
    image_ids = [int(i) for i in p.imgIds]
    r = _match(E, gt.dataset["annotations"], dt.dataset["annotations"], image_ids, cat_ids,
               (float(p.iouThrs[t50]), float(p.iouThrs[t75])))
    n_img, n_cat = len(image_ids), len(cat_ids)
    d_img, g_img, d_code, g_code = r["d_img"], r["g_img"], r["d_code"], r["g_code"]
    pm_by_image = _per_image(_mark_list(d_code, r["d_iou"], _PRED_NAMES), d_img, n_img)
    gm_by_image = _per_image(_mark_list(g_code, r["g_iou"], _GT_NAMES), g_img, n_img)
    d_in, g_in = d_img >= 0, g_img >= 0

    def count(img: np.ndarray, sel: np.ndarray) -> list:
        return np.bincount(img[sel], minlength=n_img).tolist()

    tp, fp, fn = count(d_img, d_in & (d_code[0] == _TP)), count(d_img, d_in & (d_code[0] == _MISS)), \
        count(g_img, g_in & (g_code[0] == _MISS))
    tp75, fp75, fn75 = count(d_img, d_in & (d_code[1] == _TP)), count(d_img, d_in & (d_code[1] == _MISS)), \
        count(g_img, g_in & (g_code[1] == _MISS))
    # classes with an error at 0.50: (image, category) pairs of the FP and FN, ascending
    d_err, g_err = d_in & (d_code[0] == _MISS), g_in & (g_code[0] == _MISS)
    cats = max(n_cat, 1)
    err = np.unique(np.r_[r["d_img"][d_err] * cats + r["d_cat"][d_err], r["g_img"][g_err] * cats + r["g_cat"][g_err]])
    err_ends = np.searchsorted(err, np.arange(1, n_img + 1) * cats).tolist()
    err_cats = np.asarray(cat_ids, dtype=np.int64)[err % cats].tolist() if n_cat else []  # ascending per image
    per_class = np.stack([np.bincount(r["d_cat"][d_in & (r["d_cat"] >= 0) & (d_code[0] == code)], minlength=n_cat)
                          for code in (_TP, _MISS)]
                         + [np.bincount(r["g_cat"][g_in & (r["g_cat"] >= 0) & (g_code[0] == _MISS)], minlength=n_cat)],
                         axis=1).tolist() if n_cat else []
    position = {v: k for k, v in enumerate(image_ids)}
    image_rows = []
    for im in inst["images"]:
        k = position[im["id"]]
        denom = 2 * tp[k] + fp[k] + fn[k]
        image_rows.append(ImageEvaluation(im["id"], pm_by_image[k], gm_by_image[k], tp[k], fp[k], fn[k], tp75[k],
                                          fp75[k], fn75[k], 2 * tp[k] / denom if denom else None,
                                          tuple(err_cats[err_ends[k - 1] if k else 0:err_ends[k]])))
    names = {c["id"]: c.get("name", str(c["id"])) for c in inst["categories"]}
    classes, pr = [], {}
    for k, c in enumerate(cat_ids):
        s = precision[:, :, k, area_all, m100]
        classes.append(ClassEvaluation(
            c, names.get(c, str(c)), _mean_valid(s), _mean_valid(s[t50]), _mean_valid(s[t75]),
            _mean_valid(recall[:, k, area_all, m100]), *per_class[k]))
        pr[c] = tuple(float(v) for v in s[t50])
    return CocoEvaluation(iou_type=iou_type, engine=name, stats=stats, classes=tuple(classes),
                          images=tuple(image_rows), recall=tuple(float(v) for v in p.recThrs), precision50=pr)


def _box_rows(spec: Any, what: str, sizes: list, scores: bool) -> list:
    """Rows ``(image index, [x, y, w, h] in pixels, class id, score)`` of a batched box spec, in its order."""
    if not isinstance(spec, dict) or "xyxy" not in spec:
        raise MediaError(f"{what}: evaluation needs the batched box form {{'xyxy', 'image_index', 'class_id', ...}}")
    xyxy = np.asarray(spec["xyxy"], dtype=np.float64).reshape(-1, 4)
    idx = np.asarray(spec.get("image_index", np.zeros(len(xyxy))), dtype=np.int64).reshape(-1)
    cid = np.asarray(spec.get("class_id", np.zeros(len(xyxy))), dtype=np.int64).reshape(-1)
    if not (len(idx) == len(cid) == len(xyxy)):
        raise MediaError(f"{what}: xyxy, image_index and class_id must have one row per box")
    score = None
    if scores:
        table = spec.get("scores") or {}
        if len(table) != 1:
            raise MediaError(f"{what}: evaluated predictions need exactly one score per box (a 'scores' entry, "
                             f"e.g. boxes__KEY__score in an .npz), got {sorted(table)}")
        score = np.asarray(next(iter(table.values())), dtype=np.float64).reshape(-1)
        if len(score) != len(xyxy) or not np.isfinite(score).all():
            raise MediaError(f"{what}: scores must be one finite number per box")
    fraction = spec.get("domain", "pixel") != "pixel"  # the batched form's default is "pixel" (docs/SPEC.md 4)
    rows = []
    for k in range(len(xyxy)):
        i = int(idx[k])
        if not 0 <= i < len(sizes):
            raise MediaError(f"{what}: box {k} has image_index {i}, outside the batch of {len(sizes)}")
        x0, y0, x1, y1 = xyxy[k]
        if fraction:
            h, w = sizes[i]
            x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
        if not (np.isfinite([x0, y0, x1, y1]).all() and x1 >= x0 and y1 >= y0):
            raise MediaError(f"{what}: box {k} is not finite with x0 <= x1 and y0 <= y1: {xyxy[k].tolist()}")
        rows.append((i, [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], int(cid[k]),
                     float(score[k]) if score is not None else None))
    return rows


def evaluate_boxes(gt: Any, pred: Any, sizes: Any, *, class_labels: dict | None = None,
                   engine: str = "auto") -> CocoEvaluation:
    """COCO detection evaluation of two batched box specs of one batch (no COCO files).

    The ground-truth boxes become COCO annotations (``bbox`` ``[x, y, w, h]`` in
    pixels, ``area = w * h``, ``iscrowd`` 0, ``category_id`` = class id), the
    predictions COCO results with their score; image ids are the batch indices.

    Args:
        gt: the ground truth in :func:`gpu_media.write_dump`'s batched box form
            ``{"xyxy" (M,4), "image_index" (M,), "class_id" (M,), "domain"}``
            ("pixel", the batched form's default, or "fraction" of the image's width and height).
        pred: the same form with one ``"scores"`` entry (``{"score": (M,)}``).
        sizes: ``(H, W)`` of each image of the batch.
        class_labels: ``{class id: name}`` of the classes (else every class id
            present, named by its id).
        engine: as for :func:`evaluate_coco`.

    Returns:
        :class:`CocoEvaluation`; image i's marks follow the order of its boxes in
        each spec (the order of their ``boxes2D`` entries in a dump).

    Raises:
        gpu_media.MediaError: a spec not in the batched form, boxes that are not
            finite or reversed, an image index outside the batch, predictions
            without exactly one score column; as :func:`evaluate_coco`.

    Examples:
        >>> gt = {"xyxy": np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), "image_index": np.array([0, 1]),
        ...       "class_id": np.array([1, 1]), "domain": "pixel"}
        >>> pred = {"xyxy": np.array([[1, 0, 10, 10]]), "image_index": np.array([0]), "class_id": np.array([1]),
        ...         "domain": "pixel", "scores": {"score": np.array([0.9])}}
        >>> ev = evaluate_boxes(gt, pred, [(32, 32), (32, 32)])
        >>> [(im.tp, im.fp, im.fn) for im in ev.images], ev.images[0].pred[0].iou50
        ([(1, 0, 0), (0, 0, 1)], 0.9)
    """
    sizes = [tuple(int(v) for v in s) for s in sizes]
    g_rows = _box_rows(gt, "ground truth boxes", sizes, scores=False)
    p_rows = _box_rows(pred, "predicted boxes", sizes, scores=True)
    ids = sorted({r[2] for r in g_rows} | {r[2] for r in p_rows} | set((class_labels or {}).keys()))
    names = dict(class_labels or {})
    instances = {
        "images": [{"id": i, "height": h, "width": w} for i, (h, w) in enumerate(sizes)],
        "annotations": [{"id": k + 1, "image_id": r[0], "category_id": r[2], "bbox": r[1], "area": r[1][2] * r[1][3],
                         "iscrowd": 0} for k, r in enumerate(sorted(g_rows, key=lambda r: r[0]))],
        "categories": [{"id": c, "name": str(names.get(c, c))} for c in ids],
    }
    results = [{"image_id": r[0], "category_id": r[2], "bbox": r[1], "score": r[3]}
               for r in sorted(p_rows, key=lambda r: r[0])]
    return evaluate_coco(instances, results, "bbox", engine=engine)
