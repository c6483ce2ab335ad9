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
matched to an ignored ground truth is ignored). Each detection of the results file
is then "tp", "fp" or "ignored" (ignored also: beyond the 100 best of its image
and category, which COCOeval never looks at), each ground-truth annotation
"matched", "fn" or "ignored", with the IoU of each match. The tests re-derive these
marks from pycocotools' ``evalImgs`` and compare.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MediaError

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

        Args:
            pred_indices: which of ``pred`` to list (e.g. those shown above a score
                threshold), in that order; None: all.
            gt_indices: the same for ``gt``.

        Examples:
            >>> im = ImageEvaluation(1, (Mark("tp", 0.9, "tp", 0.9), Mark("fp", None, "fp", None)),
            ...                      (Mark("matched", 0.9, "matched", 0.9),), 1, 1, 0, 1, 1, 0, 2 / 3, (5,))
            >>> im.to_json(pred_indices=[0])["pred"], im.to_json()["f1"]
            ([{'o50': 'tp', 'iou50': 0.9, 'o75': 'tp', 'iou75': 0.9}], 0.6666666666666666)
        """
        pred = self.pred if pred_indices is None else [self.pred[int(i)] for i in pred_indices]
        gt = self.gt if gt_indices is None else [self.gt[int(i)] for i in gt_indices]
        return {"image_id": self.image_id, "tp": self.tp, "fp": self.fp, "fn": self.fn, "f1": self.f1,
                "tp75": self.tp75, "fp75": self.fp75, "fn75": self.fn75, "error_classes": list(self.error_classes),
                "pred": [m.to_json() for m in pred], "gt": [m.to_json() for m in gt]}


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
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                return json.load(f)
        except OSError as exc:
            raise MediaError(f"{what} {os.fspath(source)!r}: cannot read ({exc.strerror or exc})") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise MediaError(f"{what} {os.fspath(source)!r}: not valid JSON ({exc})") from None
    return source


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


def _results(preds: Any, image_ids: set) -> list:
    """Copies of the detections in a form ``COCO.loadRes`` takes (it writes into them).

    A detection with only a polygon or uncompressed-RLE ``segmentation`` gets it as
    compressed RLE (loadRes' segmentation form reads areas of RLE only); the
    evaluation of the mask is the same, COCOeval converts polygons the same way.
    """
    if not isinstance(preds, list):
        raise MediaError("predictions: a COCO results file is a JSON list of detections "
                         "(pycocotools: results in not an array of objects)")
    out = []
    for k, d in enumerate(preds):
        if not isinstance(d, dict):
            raise MediaError(f"predictions: detections[{k}] must be an object")
        if d.get("image_id") not in image_ids:
            raise MediaError(f"predictions: detections[{k}]: unknown image_id {d.get('image_id')!r} "
                             "(pycocotools: Results do not correspond to current coco set)")
        if "score" not in d:
            raise MediaError(f"predictions: detections[{k}] has no 'score'")
        out.append(dict(d))
    return out


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


_FP = Mark("fp", None, "fp", None)
_FN = Mark("fn", None, "fn", None)
_IGNORED = Mark("ignored", None, "ignored", None)


def _greedy(ious: np.ndarray, gt_ignore: np.ndarray, iscrowd: list, threshold: float):
    """``COCOeval.evaluateImg``'s matching at one threshold: (dt -> gt index or -1, gt -> dt index or -1).

    ``ious (D, G)``: detections by score (highest first), ground truth already sorted
    ignored-last; ``gt_ignore (G,)``.
    """
    n_dt, n_gt = ious.shape
    dt_m, gt_m = [-1] * n_dt, [-1] * n_gt
    rows = ious.tolist()
    ign = gt_ignore.tolist()
    for d in range(n_dt):
        iou, m = min(threshold, 1 - 1e-10), -1
        row = rows[d]
        for g in range(n_gt):
            if gt_m[g] >= 0 and not iscrowd[g]:
                continue
            if m > -1 and ign[m] == 0 and ign[g] == 1:
                break
            if row[g] < iou:
                continue
            iou, m = row[g], g
        if m == -1:
            continue
        dt_m[d] = m
        gt_m[m] = d
    return dt_m, gt_m


def _pair_marks(g_list: list, d_list: list, raw_ious: Any, thresholds: tuple, gt_marks: dict, dt_marks: dict) -> None:
    """One image and category with ground truth and detections: evaluateImg's matching at each threshold."""
    lo, hi = _AREA_ALL
    order = sorted(range(len(d_list)), key=lambda i: -d_list[i]["score"])  # stable, as mergesort
    d_sorted = [d_list[i] for i in order[:_MAX_DET]]
    ignore = [int(bool(g.get("iscrowd")) or g["area"] < lo or g["area"] > hi) for g in g_list]
    g_order = sorted(range(len(g_list)), key=lambda i: ignore[i])
    g_sorted = [g_list[i] for i in g_order]
    g_ign = np.array([ignore[i] for i in g_order])
    crowd = [int(g["iscrowd"]) for g in g_sorted]
    ious = np.asarray(raw_ious, dtype=np.float64)
    per_t = []
    for t in thresholds:
        if ious.size:
            dm, gm = _greedy(ious[:, g_order], g_ign, crowd, t)
        else:
            dm, gm = [-1] * len(d_sorted), [-1] * len(g_sorted)
        per_t.append((dm, gm))
    d_out = {}
    for j, d in enumerate(d_sorted):
        out = []
        for dm, _ in per_t:
            m = dm[j]
            if m >= 0:
                out += ["ignored" if g_ign[m] else "tp", float(ious[j, g_order[m]])]
            elif d["area"] < lo or d["area"] > hi:
                out += ["ignored", None]
            else:
                out += ["fp", None]
        d_out[d["id"]] = Mark(*out)
    for d in d_list:
        dt_marks[d["id"]] = d_out.get(d["id"]) or _IGNORED  # beyond maxDets
    for j, g in enumerate(g_sorted):
        out = []
        for dm, gm in per_t:
            m = gm[j]
            if g_ign[j]:
                out += ["ignored", float(ious[m, g_order[j]]) if m >= 0 else None]
            elif m >= 0:
                out += ["matched", float(ious[m, g_order[j]])]
            else:
                out += ["fn", None]
        gt_marks[g["id"]] = Mark(*out)


def _marks(E, gt, dt, image_ids: list, cat_ids: list, thresholds: tuple) -> tuple[dict, dict]:
    """{gt ann id: Mark}, {dt ann id: Mark} from the engine's ``ious`` and evaluateImg's rules."""
    gts: dict = {}
    for img_id in image_ids:
        for a in gt.imgToAnns.get(img_id, ()):
            gts.setdefault((img_id, a["category_id"]), []).append(a)
    dts: dict = {}
    for img_id in image_ids:
        for a in dt.imgToAnns.get(img_id, ()):
            dts.setdefault((img_id, a["category_id"]), []).append(a)
    cats = set(cat_ids)
    gt_marks, dt_marks = {}, {}
    lo, hi = _AREA_ALL
    for key in set(gts) | set(dts):
        if key[1] not in cats:
            continue
        g_list, d_list = gts.get(key, []), dts.get(key, [])
        if not g_list and len(d_list) <= _MAX_DET:  # nothing to match: FP, or ignored outside area "all"
            for d in d_list:
                dt_marks[d["id"]] = _FP if lo <= d["area"] <= hi else _IGNORED
            continue
        if not d_list:  # nothing matches: FN, or ignored (crowd, outside area "all")
            for g in g_list:
                gt_marks[g["id"]] = _IGNORED if (g.get("iscrowd") or g["area"] < lo or g["area"] > hi) else _FN
            continue
        _pair_marks(g_list, d_list, E.ious.get(key, []), thresholds, gt_marks, dt_marks)
    return gt_marks, dt_marks


def _mean_valid(s: np.ndarray) -> float | None:
    v = s[s > -1]
    return float(np.mean(v)) if v.size else None


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
    if iou_type not in ("bbox", "segm"):
        raise MediaError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    name, coco_cls, make_eval = _engine(engine)
    inst = _ground_truth(_read(instances, "instances file"), iou_type)
    images = {}
    for k, im in enumerate(inst["images"]):
        if not (isinstance(im, dict) and isinstance(im.get("id"), int)):
            raise MediaError(f"instances: images[{k}] needs an integer 'id'")
        images[im["id"]] = (im.get("height"), im.get("width"))
    results = _results(_read(predictions, "predictions file"), set(images))
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
    gt_marks, dt_marks = _marks(E, gt, dt, [int(i) for i in p.imgIds], cat_ids,
                                (float(p.iouThrs[t50]), float(p.iouThrs[t75])))

    per_class = {c: [0, 0, 0] for c in cat_ids}
    image_rows = []
    for im in inst["images"]:
        img_id = im["id"]
        g_anns, d_anns = gt.imgToAnns.get(img_id, []), dt.imgToAnns.get(img_id, [])
        pm = tuple(dt_marks.get(d["id"], _IGNORED) for d in d_anns)
        gm = tuple(gt_marks.get(g["id"], _IGNORED) for g in g_anns)
        c50 = [sum(m.o50 == "tp" for m in pm), sum(m.o50 == "fp" for m in pm), sum(m.o50 == "fn" for m in gm)]
        c75 = [sum(m.o75 == "tp" for m in pm), sum(m.o75 == "fp" for m in pm), sum(m.o75 == "fn" for m in gm)]
        errors = set()
        for a, m in zip(d_anns, pm):
            if a["category_id"] in per_class:
                per_class[a["category_id"]][0] += m.o50 == "tp"
                per_class[a["category_id"]][1] += m.o50 == "fp"
            if m.o50 == "fp":
                errors.add(int(a["category_id"]))
        for a, m in zip(g_anns, gm):
            if a["category_id"] in per_class:
                per_class[a["category_id"]][2] += m.o50 == "fn"
            if m.o50 == "fn":
                errors.add(int(a["category_id"]))
        denom = 2 * c50[0] + c50[1] + c50[2]
        image_rows.append(ImageEvaluation(img_id, pm, gm, *c50, *c75, 2 * c50[0] / denom if denom else None,
                                          tuple(sorted(errors))))
    names = {c["id"]: c.get("name", str(c["id"])) for c in inst["categories"]}
    classes, pr = [], {}
    for k, c in enumerate(cat_ids):
        s = precision[:, :, k, area_all, m100]
        classes.append(ClassEvaluation(
            c, names.get(c, str(c)), _mean_valid(s), _mean_valid(s[t50]), _mean_valid(s[t75]),
            _mean_valid(recall[:, k, area_all, m100]), *per_class[c]))
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
