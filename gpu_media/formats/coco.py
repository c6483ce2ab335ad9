"""COCO in: a folder of images, a COCO instances file and a COCO results file, as a dump.

Ground truth comes from a COCO *instances* file (``images``, ``annotations``,
``categories``), predictions from a COCO *results* file (a list of ``{image_id,
category_id, bbox, score[, segmentation]}``), as written by ``pycocotools`` and
detectron-style evaluators. Every detection form ``COCO.loadRes`` accepts is read:
without ``bbox`` (or with ``bbox: []``) the box is derived as loadRes derives it,
from the ``segmentation`` (``maskUtils.toBbox``; RLE, and polygons through
``frPyObjects``) or from the ``keypoints`` (their extent); a ``caption`` result is
refused (it has no box). They become:

* box keys ``ground_truth`` and ``predictions`` (``bbox`` ``[x, y, w, h]`` in
  pixels becomes ``minX=x, maxX=x+w, minY=y, maxY=y+h``, domain "pixel"; class id
  = category id; predictions carry ``scores={"score": s}``);
* mask keys of the same names, one class-id map per image (uint8, pixel = category
  id, 0 = background), for each side that has any ``segmentation``. Polygons and
  RLE (compressed or not) are rasterized by pycocotools (the ``coco`` extra).
  **Where instances overlap**, ground truth is painted largest area first, so a
  smaller instance lying on a larger one stays visible (equal areas: the later
  annotation wins); predictions are painted lowest score first, so the most
  confident prediction wins;
* captions: each image's ``file_name``; class labels: the ``categories`` (plus
  0 = "background" for masks).

Everything in the JSON files is checked before any image is read or any file
written. Each problem (a missing image file, an unknown ``image_id`` or
``category_id``, a malformed ``bbox``, polygon or RLE, a category id a uint8 mask
cannot hold) raises :class:`gpu_media.MediaError` naming it; with
``skip_bad=True`` the image or annotation is left out instead, with a warning, and
counted in :attr:`CocoDataset.skipped`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from ..checks import is_finite_number, is_integer
from ..dump import DumpOptions, check_key_step, check_overwrite, write_batches
from ..errors import MediaError
from ..fileio import read_json

__all__ = [
    "GT_KEY", "PRED_KEY", "COCO_EXTRA", "COCO_HELP", "CocoWarning", "CocoImage", "CocoDataset",
    "DemoCoco", "demo_coco", "load_coco", "rasterize", "read_image", "batch", "batches", "write_coco_dump", "dump_coco",
    "evaluate_dataset", "detection_section",
]

GT_KEY = "ground_truth"
PRED_KEY = "predictions"
COCO_EXTRA = 'pip install ".[coco]"'

#: The COCO input of ``gpu-media dump`` (part of ``gpu-media dump --help``).
COCO_HELP = """\
COCO: gpu-media dump IMAGES_DIR OUT_DIR --coco instances.json [--predictions results.json]
  Ground truth from a COCO instances file, predictions from a COCO results file:
  box keys and mask keys "ground_truth" and "predictions" (masks need the coco
  extra: pip install ".[coco]"). Where instances overlap in a mask, ground
  truth is painted largest first (smaller instances stay visible) and predictions
  lowest score first (the most confident wins).
"""


class CocoWarning(UserWarning):
    """An image or annotation left out by ``skip_bad=True``."""


@dataclass
class CocoImage:
    """One image of the dataset: where it is and what is drawn on it."""

    id: int
    file_name: str
    path: str
    height: int
    width: int
    gt: list = field(default_factory=list)  # annotations, in file order
    pred: list = field(default_factory=list)  # the detections shown (score >= the threshold), in file order
    pred_all: list = field(default_factory=list)  # every valid detection as given (what evaluation uses), file order
    pred_index: list = field(default_factory=list)  # for each of ``pred``: its index in ``pred_all``


@dataclass
class CocoDataset:
    """A checked COCO dataset: images (in the instances file's order) and categories.

    ``skipped`` counts what ``skip_bad=True`` left out: ``images``,
    ``annotations`` and ``predictions``; ``problems`` holds one message each.
    ``evaluation``: the :class:`gpu_media.eval.CocoEvaluation` of a dump made with
    ``evaluate="bbox"`` or ``"segm"`` (:func:`evaluate_dataset`), else None.
    """

    images: list
    categories: dict  # {category id: name}
    has_gt_masks: bool
    has_pred_masks: bool
    has_predictions: bool
    skipped: dict
    problems: list
    evaluation: Any = None  # a gpu_media.eval.CocoEvaluation when the dump was evaluated (evaluate=...)


_is_int = is_integer  # JSON values: int (not bool)
_is_num = is_finite_number  # JSON values: int or float, finite (not bool)


def _check_bbox(bbox, where):
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_num(v) for v in bbox)):
        raise MediaError(f"{where}: bbox must be 4 finite numbers [x, y, width, height], got {bbox!r}", item=bbox)
    if bbox[2] < 0 or bbox[3] < 0:
        raise MediaError(f"{where}: bbox width and height must be >= 0, got {bbox!r}", item=bbox)


def _rle_total(counts: str) -> int:
    """Sum of the run lengths of a compressed COCO RLE string (pycocotools' rleFrString).

    Only used to check that a string covers exactly H*W pixels before pycocotools
    decodes it (its decoder writes without bounds checks); decoding is pycocotools'.
    """
    cnts: list[int] = []
    pos = 0
    while pos < len(counts):
        x, k, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("truncated run length")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[pos]!r} is not a COCO RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            pos += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(cnts) > 2:
            x += cnts[-2]
        if x < 0:
            raise ValueError("negative run length")
        cnts.append(x)
    return sum(cnts)


def _check_segmentation(seg, h, w, where):
    """Raise MediaError unless ``seg`` is a well-formed polygon list or RLE for an (h, w) image."""
    if isinstance(seg, list):
        if not seg:
            raise MediaError(f"{where}: segmentation is an empty polygon list")
        for k, poly in enumerate(seg):
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_num(v) for v in poly):
                raise MediaError(
                    f"{where}: polygon {k} is malformed: it must be a flat list of at least 3 points "
                    f"(x1, y1, x2, y2, ...) of finite numbers, got "
                    f"{(str(poly)[:80] + '...') if len(str(poly)) > 80 else poly}"
                )
        return
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
            raise MediaError(f"{where}: RLE 'size' must be [height, width], got {size!r}")
        if tuple(size) != (h, w):
            raise MediaError(f"{where}: RLE size {size} does not match the image's height and width [{h}, {w}]")
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts):
                raise MediaError(f"{where}: uncompressed RLE 'counts' must be non-negative integers")
            total = sum(counts)
        elif isinstance(counts, str):
            try:
                total = _rle_total(counts)
            except ValueError as exc:
                raise MediaError(f"{where}: compressed RLE 'counts' is malformed ({exc})") from None
        else:
            raise MediaError(f"{where}: RLE 'counts' must be a string or a list of integers")
        if total != h * w:
            raise MediaError(f"{where}: RLE runs cover {total} pixels, the image has {h} x {w} = {h * w}")
        return
    raise MediaError(f"{where}: segmentation must be a list of polygons or an RLE dict, got {type(seg).__name__}")


def _derived_box(det: dict, img: CocoImage, where: str) -> dict:
    """A detection without ``bbox`` (or with ``bbox: []``) given its box as ``COCO.loadRes`` derives it.

    loadRes' forms: ``segmentation`` (box = ``maskUtils.toBbox`` of the mask; polygons
    are merged through ``frPyObjects`` first, which loadRes itself does not accept) and
    ``keypoints`` (box = the keypoints' extent). A ``caption`` result has no box and is
    refused, as is a detection with neither. Returns a copy with ``bbox`` set.
    """
    if det.get("segmentation") is not None:
        _check_segmentation(det["segmentation"], img.height, img.width, where)
        mask_api = pycocotools_mask()
        seg = det["segmentation"]
        if isinstance(seg, list):
            rle = mask_api.merge(mask_api.frPyObjects(seg, img.height, img.width))
        elif isinstance(seg["counts"], list):
            rle = mask_api.frPyObjects(seg, img.height, img.width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        box = [float(v) for v in mask_api.toBbox(rle)]
    elif det.get("keypoints") is not None:
        kp = det["keypoints"]
        if not (isinstance(kp, list) and kp and len(kp) % 3 == 0 and all(_is_num(v) for v in kp)):
            raise MediaError(f"{where}: keypoints must be a non-empty flat list of (x, y, v) finite numbers, "
                             f"got {(str(kp)[:80] + '...') if len(str(kp)) > 80 else kp}")
        xs, ys = kp[0::3], kp[1::3]
        box = [float(min(xs)), float(min(ys)), float(max(xs) - min(xs)), float(max(ys) - min(ys))]
    elif "caption" in det:
        raise MediaError(f"{where}: a caption result has no box or mask to show or evaluate "
                         "(results with 'caption' are for caption evaluation, not detection)")
    else:
        raise MediaError(f"{where}: a detection needs a bbox [x, y, width, height], a segmentation or keypoints, "
                         f"got bbox {det.get('bbox')!r}")
    return {**det, "bbox": box}


class _Problems:
    def __init__(self, skip_bad: bool):
        self.skip_bad = skip_bad
        self.skipped = {"images": 0, "annotations": 0, "predictions": 0}
        self.messages: list[str] = []

    def __call__(self, kind: str, exc: MediaError) -> None:
        if not self.skip_bad:
            raise exc
        self.skipped[kind] += 1
        self.messages.append(str(exc))
        warnings.warn(f"skipped: {exc}", CocoWarning, stacklevel=3)


class DemoCoco(NamedTuple):
    """Paths of the bundled COCO demo (:func:`demo_coco`)."""

    images_dir: str
    instances: str
    predictions: str


def demo_coco() -> DemoCoco:
    """The bundled COCO-format demo: 8 photographs with real annotations (``gpu_media/demo/coco/``).

    Made by ``scripts/make_coco_demo.py`` from scikit-image's freely licensed samples
    (``gpu_media/demo/SOURCES.md``); what ``gpu-media dump ... --coco`` is tried on in
    the README.

    Returns:
        ``DemoCoco(images_dir, instances, predictions)``: the images folder, the
        instances file (ground truth: boxes and polygons) and a results file
        (predictions with scores), as absolute paths.

    Examples:
        >>> demo = demo_coco()
        >>> ds = load_coco(demo.images_dir, demo.instances, demo.predictions)
        >>> len(ds.images), ds.images[0].file_name, ds.categories[1]
        (8, 'astronaut.jpg', 'dark object')
    """
    root = str(resources.files("gpu_media.demo").joinpath("coco"))
    return DemoCoco(os.path.join(root, "images"), os.path.join(root, "instances.json"),
                    os.path.join(root, "results.json"))


def load_coco(  # noqa: C901 - the input's checks in file order, one branch per rule and message
    images_dir: str | os.PathLike, instances: str | os.PathLike, predictions: str | os.PathLike | None = None, *,
    score_threshold: float | None = None, skip_bad: bool = False,
) -> CocoDataset:
    """Read and check a COCO instances file (and optionally a results file) against a folder.

    Args:
        images_dir: folder holding the images; each ``file_name`` is relative to it.
        instances: path of a COCO instances JSON (``images``, ``annotations``,
            ``categories``); ``annotations`` may be absent (no ground truth).
        predictions: path of a COCO results JSON (a list of ``{image_id,
            category_id, bbox, score[, segmentation]}``, or any other form
            ``COCO.loadRes`` accepts: see the module's docstring), or None.
        score_threshold: show only predictions with ``score >= score_threshold``
            (each image's ``pred``; ``pred_all`` keeps every valid one, for evaluation).
        skip_bad: leave out bad images and annotations with a :class:`CocoWarning`
            instead of raising.

    Returns:
        :class:`CocoDataset`. Nothing is decoded yet: image files are only checked
        to exist, and their pixel size is read from the header by Pillow and
        compared with the instances file.

    Raises:
        gpu_media.MediaError: unreadable JSON, or (without ``skip_bad``) the first
            bad image or annotation, named by its id, ``file_name`` or index.

    Examples:
        A folder with one 6x4 image and an instances file with one box:

        >>> import json, os, tempfile
        >>> import numpy as np
        >>> from PIL import Image
        >>> folder = tempfile.mkdtemp()
        >>> Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(os.path.join(folder, "a.png"))
        >>> instances = os.path.join(folder, "instances.json")
        >>> with open(instances, "w") as f:
        ...     json.dump({"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 6}],
        ...                "annotations": [{"id": 7, "image_id": 1, "category_id": 2, "bbox": [1, 1, 3, 2]}],
        ...                "categories": [{"id": 2, "name": "cat"}]}, f)
        >>> ds = load_coco(folder, instances)
        >>> [(im.id, im.file_name, im.height, im.width, len(im.gt)) for im in ds.images], ds.categories
        ([(1, 'a.png', 4, 6, 1)], {2: 'cat'})
        >>> load_coco(os.path.join(folder, "missing"), instances)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: ...
    """
    from PIL import Image

    problems = _Problems(skip_bad)
    inst = read_json(instances, "instances file")
    if not isinstance(inst, dict) or not isinstance(inst.get("images"), list):
        raise MediaError(f"instances file {instances!r}: not a COCO instances file (needs an 'images' list)")
    cats = inst.get("categories") or []
    if not isinstance(cats, list):
        raise MediaError(f"instances file {instances!r}: 'categories' must be a list")
    categories = {}
    for k, c in enumerate(cats):
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)):
            raise MediaError(f"instances file {instances!r}: categories[{k}] needs an integer 'id' and a string 'name'")
        if c["id"] in categories:
            raise MediaError(f"instances file {instances!r}: category id {c['id']} is listed twice")
        categories[c["id"]] = c["name"]

    images, by_id = [], {}
    for k, rec in enumerate(inst["images"]):
        where = f"instances file: images[{k}]"
        try:
            if not (isinstance(rec, dict) and _is_int(rec.get("id")) and isinstance(rec.get("file_name"), str)):
                raise MediaError(f"{where}: needs an integer 'id' and a string 'file_name'")
            if rec["id"] in by_id:
                raise MediaError(f"{where}: image id {rec['id']} is listed twice")
            name = rec["file_name"]
            path = os.path.join(os.fspath(images_dir), name)
            where = f"image id {rec['id']} ({name!r})"
            if not os.path.isfile(path):
                raise MediaError(f"{where}: image file {path!r} does not exist")
            try:
                with Image.open(path) as im:
                    w, h = im.size
            except OSError as exc:
                raise MediaError(f"{where}: cannot read {path!r} as an image ({exc})") from None
            if (_is_int(rec.get("width")) and rec["width"] != w) or (_is_int(rec.get("height")) and rec["height"] != h):
                raise MediaError(
                    f"{where}: the instances file says {rec.get('width')} x {rec.get('height')} (width x height) "
                    f"but the file is {w} x {h}"
                )
        except MediaError as exc:
            problems("images", exc)
            if _is_int(getattr(rec, "get", lambda _: None)("id")):
                by_id.setdefault(rec["id"], None)  # known id, image left out
            continue
        img = CocoImage(rec["id"], name, path, h, w)
        by_id[rec["id"]] = img
        images.append(img)

    def attach(anns, kind, side, label):
        for k, a in enumerate(anns):
            where = f"{label}[{k}]"
            try:
                if not isinstance(a, dict):
                    raise MediaError(f"{where}: must be an object")
                if "id" in a:
                    where += f" (id {a['id']})"
                iid, cid = a.get("image_id"), a.get("category_id")
                if not _is_int(iid) or iid not in by_id:
                    raise MediaError(f"{where}: unknown image_id {iid!r}" + (
                        " (pycocotools: Results do not correspond to current coco set)" if side == "pred" else ""))
                img = by_id[iid]
                if img is None:
                    continue  # its image was left out (already counted and warned about)
                if not _is_int(cid) or cid not in categories:
                    raise MediaError(f"{where}: unknown category_id {cid!r} (not in the instances file's categories)")
                original = a
                if side == "pred" and (a.get("bbox") is None or a.get("bbox") == []):
                    a = _derived_box(a, img, where)  # loadRes' segmentation and keypoints forms
                else:
                    _check_bbox(a.get("bbox"), where)
                if side == "pred":
                    if not _is_num(a.get("score")):
                        raise MediaError(f"{where}: score must be a finite number, got {a.get('score')!r}")
                if a.get("segmentation") is not None:
                    if not 0 < cid <= 255:
                        raise MediaError(
                            f"{where}: category_id {cid} cannot be a mask class id (masks are uint8, 0 = background)"
                        )
                    _check_segmentation(a["segmentation"], img.height, img.width, where)
            except MediaError as exc:
                problems(kind, exc)
                continue
            if side == "pred":
                img.pred_all.append(original)
                if score_threshold is not None and a["score"] < score_threshold:
                    continue
                img.pred_index.append(len(img.pred_all) - 1)
            getattr(img, side).append(a)

    anns = inst.get("annotations") or []
    if not isinstance(anns, list):
        raise MediaError(f"instances file {instances!r}: 'annotations' must be a list")
    attach(anns, "annotations", "gt", "instances file: annotations")
    has_predictions = predictions is not None
    if predictions is not None:
        preds = read_json(predictions, "predictions file")
        if isinstance(preds, dict) and isinstance(preds.get("annotations"), list):
            preds = preds["annotations"]
        if not isinstance(preds, list):
            raise MediaError(f"predictions file {predictions!r}: a COCO results file is a JSON list of detections "
                             "(pycocotools: results in not an array of objects)")
        attach(preds, "predictions", "pred", "predictions file: detections")
    if not images:
        raise MediaError(f"instances file {instances!r}: no usable images")
    return CocoDataset(
        images=images, categories=categories,
        has_gt_masks=any(a.get("segmentation") is not None for im in images for a in im.gt),
        has_pred_masks=any(a.get("segmentation") is not None for im in images for a in im.pred),
        has_predictions=has_predictions, skipped=problems.skipped, problems=problems.messages,
    )


def pycocotools_mask() -> Any:
    """``pycocotools.mask``, imported on first use.

    Returns:
        the module ``pycocotools.mask``.

    Raises:
        gpu_media.MediaError: pycocotools is not installed (naming the extra to install).
    """
    try:
        from pycocotools import mask
    except ImportError:
        raise MediaError(f"COCO segmentations need pycocotools: {COCO_EXTRA}") from None
    return mask


def rasterize(anns: list[dict], height: int, width: int, order: str) -> np.ndarray:
    """One uint8 ``(height, width)`` class-id map from annotations with ``segmentation``.

    ``order`` "area": largest first (smaller instances on top; ties: later wins);
    "score": lowest score first (the most confident wins). Polygons and RLE go
    through pycocotools (``frPyObjects``, ``merge``, ``decode``).

    Examples:
        Two overlapping squares (polygons); by area the smaller one stays on top:

        >>> big = {"category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}
        >>> small = {"category_id": 2, "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]}
        >>> rasterize([small, big], 4, 5, "area").tolist()
        [[1, 1, 1, 1, 0], [1, 2, 2, 1, 0], [1, 2, 2, 1, 0], [1, 1, 1, 1, 0]]
    """
    out = np.zeros((height, width), dtype=np.uint8)
    segs = [a for a in anns if a.get("segmentation") is not None]
    if not segs:
        return out
    mask_api = pycocotools_mask()
    decoded = []
    for k, a in enumerate(segs):
        seg = a["segmentation"]
        if isinstance(seg, list):
            rle = mask_api.merge(mask_api.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = mask_api.frPyObjects(seg, height, width)
        else:
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
        m = mask_api.decode(rle).astype(bool)
        key = float(m.sum()) if order == "area" else float(a["score"])
        decoded.append((key, k, m, a["category_id"]))
    if order == "area":
        decoded.sort(key=lambda t: (-t[0], t[1]))
    else:
        decoded.sort(key=lambda t: (t[0], t[1]))
    for _, _, m, cid in decoded:
        out[m] = cid
    return out


def read_image(img: CocoImage) -> np.ndarray:
    """Decode one image with Pillow to uint8 ``(H, W, 3)`` RGB.

    EXIF orientation is not applied: COCO coordinates refer to the stored pixels.

    Examples:
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> read_image(load_coco(demo.images_dir, demo.instances).images[0]).shape
        (256, 256, 3)
    """
    from PIL import Image

    try:
        with Image.open(img.path) as im:
            arr = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise MediaError(f"image id {img.id} ({img.file_name!r}): cannot decode {img.path!r} ({exc})") from None
    if arr.shape[:2] != (img.height, img.width):
        raise MediaError(f"image id {img.id} ({img.file_name!r}): decoded to {arr.shape[1]} x {arr.shape[0]}, "
                         f"expected {img.width} x {img.height}")
    return arr


def _boxes(images: list, side: str, categories: dict, with_scores: bool) -> dict:
    xyxy, idx, cid, score = [], [], [], []
    for i, img in enumerate(images):
        for a in getattr(img, side):
            x, y, w, h = (float(v) for v in a["bbox"])
            xyxy.append((x, y, x + w, y + h))
            idx.append(i)
            cid.append(a["category_id"])
            if with_scores:
                score.append(float(a["score"]))
    spec = {"xyxy": np.array(xyxy, dtype=np.float64).reshape(-1, 4), "image_index": np.array(idx, dtype=np.int64),
            "class_id": np.array(cid, dtype=np.int64), "domain": "pixel", "class_labels": dict(categories)}
    if with_scores:
        spec["scores"] = {"score": np.array(score, dtype=np.float64)}
    return spec


def batch(ds: CocoDataset, images: list[CocoImage], arrays: list[Any]) -> dict[str, Any]:
    """The write_dump arguments (images, masks, boxes, captions) of some images of ``ds``.

    Examples:
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> ds = load_coco(demo.images_dir, demo.instances)
        >>> part = batch(ds, ds.images[:2], [read_image(im) for im in ds.images[:2]])
        >>> part["captions"], part["boxes"]["ground_truth"]["xyxy"][:2].tolist()
        (['astronaut.jpg', 'chelsea.jpg'], [[0.0, 58.0, 183.0, 256.0], [137.0, 0.0, 256.0, 256.0]])
        >>> part["masks"]["ground_truth"]["mask_data"][0].shape, part["images"][1].shape
        ((256, 256), (256, 256, 3))
    """
    mask_labels = {0: "background", **{c: n for c, n in ds.categories.items() if 0 < c <= 255}}
    masks = {}
    if ds.has_gt_masks:
        masks[GT_KEY] = {"mask_data": [rasterize(im.gt, im.height, im.width, "area") for im in images],
                         "class_labels": mask_labels}
    if ds.has_pred_masks:
        masks[PRED_KEY] = {"mask_data": [rasterize(im.pred, im.height, im.width, "score") for im in images],
                           "class_labels": mask_labels}
    boxes = {GT_KEY: _boxes(images, "gt", ds.categories, False)}
    if ds.has_predictions:
        boxes[PRED_KEY] = _boxes(images, "pred", ds.categories, True)
    return {"images": arrays, "masks": masks or None, "boxes": boxes, "captions": [im.file_name for im in images]}


def evaluate_dataset(ds: CocoDataset, iou_type: str = "bbox", *, engine: str = "auto") -> Any:
    """COCO evaluation (:func:`gpu_media.eval.evaluate_coco`) of a loaded dataset: every detection, no threshold.

    The instances are the dataset's images (in its order) with their ground truth
    and categories, the results every valid detection as given (``pred_all``,
    whatever ``score_threshold`` hid), so without ``skip_bad`` this is the files'
    evaluation, pycocotools' numbers exactly.

    Args:
        ds: a :class:`CocoDataset` with predictions.
        iou_type: "bbox" or "segm".
        engine: as for :func:`gpu_media.eval.evaluate_coco`.

    Returns:
        a :class:`gpu_media.eval.CocoEvaluation`, images in ``ds.images``' order.

    Raises:
        gpu_media.MediaError: no predictions file was given; as
            :func:`gpu_media.eval.evaluate_coco`.

    Examples:
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> ev = evaluate_dataset(load_coco(demo.images_dir, demo.instances, demo.predictions))
        >>> len(ev.images), round(ev.stats[1], 3)
        (8, 0.11)
    """
    from ..eval import evaluate_coco

    if not ds.has_predictions:
        raise MediaError("evaluation needs predictions (a COCO results file)")
    instances = {
        "images": [{"id": im.id, "file_name": im.file_name, "height": im.height, "width": im.width}
                   for im in ds.images],
        "annotations": [a for im in ds.images for a in im.gt],
        "categories": [{"id": c, "name": n} for c, n in ds.categories.items()],
    }
    results = [a for im in ds.images for a in im.pred_all]
    return evaluate_coco(instances, results, iou_type, engine=engine)


def detection_section(ds: CocoDataset, evaluation: Any, gt_key: str = GT_KEY, pred_key: str = PRED_KEY) -> dict:
    """The index's ``eval.detection`` section of a COCO dump (docs/SPEC.md).

    Each image's ``pred`` marks are those of the detections the dump shows (its
    ``pred``, above ``score_threshold``), in the order of its boxes of ``pred_key``;
    counts and the summary cover every detection.

    Args:
        ds: the dataset the dump was made from.
        evaluation: :func:`evaluate_dataset`'s result for ``ds``.
        gt_key: the box key of the ground truth.
        pred_key: the box key of the predictions.

    Returns:
        the section, a JSON-ready dict.

    Examples:
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> ds = load_coco(demo.images_dir, demo.instances, demo.predictions, score_threshold=0.5)
        >>> section = detection_section(ds, evaluate_dataset(ds))
        >>> len(section["images"][0]["pred"]["o50"]) == len(ds.images[0].pred), section["pred_key"]
        (True, 'predictions')
    """
    out = evaluation.to_json()
    out["images"] = [ev.to_json(pred_indices=im.pred_index) for im, ev in zip(ds.images, evaluation.images)]
    return {"iou_type": out.pop("iou_type"), "gt_key": gt_key, "pred_key": pred_key, "engine": evaluation.engine,
            **out}


def batches(ds: CocoDataset, batch_size: int = 64,
            reader: Callable[[list[CocoImage]], list[Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Yield :func:`batch` dicts of ``batch_size`` images, decoding each part in turn.

    ``reader(list[CocoImage]) -> list of (H,W,3) arrays`` decodes a part (default:
    Pillow on the host; :func:`gpu_media.cuda.dali_reader.read_batch` decodes on the GPU).

    Examples:
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> [len(part["images"]) for part in batches(load_coco(demo.images_dir, demo.instances), batch_size=3)]
        [3, 3, 2]
    """
    read = reader or (lambda part: [read_image(im) for im in part])
    for lo in range(0, len(ds.images), batch_size):
        part = ds.images[lo : lo + batch_size]
        yield batch(ds, part, read(part))


def write_coco_dump(out_dir: str | os.PathLike, images_dir: str | os.PathLike, instances: str | os.PathLike,
                    predictions: str | os.PathLike | None = None, *, key: str = "coco", step: int | str = 0,
                    score_threshold: float | None = None, skip_bad: bool = False, batch_size: int = 64,
                    device: str = "auto", reader: Callable[[list[CocoImage]], list[Any]] | None = None,
                    evaluate: str | None = None, eval_engine: str = "auto",
                    **dump_kwargs: Any) -> tuple[CocoDataset, list[dict]]:
    """Dump a COCO dataset (ground truth and optional predictions) with :func:`gpu_media.write_dump`.

    Args:
        out_dir: the dump folder (see :func:`gpu_media.write_dump`).
        images_dir: as for :func:`load_coco`.
        instances: as for :func:`load_coco`.
        predictions: as for :func:`load_coco`.
        key: the dump's log key.
        step: the dump's step.
        score_threshold: as for :func:`load_coco`.
        skip_bad: as for :func:`load_coco`.
        batch_size: images decoded and written at once (bounds memory).
        device: "auto", "cpu" or "gpu" for the pipeline (docs/SPEC.md 1's device rule).
        reader: how images are decoded (see :func:`batches`).
        evaluate: None, or "bbox" / "segm": evaluate the predictions (every one,
            whatever ``score_threshold`` hides) with :func:`evaluate_dataset` before
            anything is written; the result is ``dataset.evaluation`` and the
            index's ``eval`` section (docs/SPEC.md).
        eval_engine: as ``engine`` of :func:`gpu_media.eval.evaluate_coco`.
        dump_kwargs: file_type, quality, compression_level, draw_boxes, ... of
            :func:`gpu_media.write_dump` (the fields of
            :class:`gpu_media.dump.DumpOptions` except ``device`` and ``classes``).

    Returns:
        ``(dataset, dicts)``: the checked :class:`CocoDataset` (with ``skipped``
        counts) and the image-file dicts of the dump.

    Raises:
        gpu_media.DumpExistsError: ``out_dir`` has an index of ``key`` at ``step``
            and ``overwrite=True`` is not given (before the files are read).
        gpu_media.MediaError: a bad key, step or dump option (first, before the
            files are read); as :func:`load_coco`, before anything is written;
            a ``segmentation`` without pycocotools installed; an image that fails
            to decode (the dump then has no index, so it never looks complete).
        TypeError: an unknown keyword in ``dump_kwargs``.

    Examples:
        >>> import os, tempfile
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> out = os.path.join(tempfile.mkdtemp(), "dump")
        >>> ds, dicts = write_coco_dump(out, demo.images_dir, demo.instances, draw_boxes=True)
        >>> len(dicts), dicts[0]["caption"], sorted(dicts[0]["boxes"]), ds.skipped
        (8, 'astronaut.jpg', ['ground_truth'], {'images': 0, 'annotations': 0, 'predictions': 0})
        >>> os.path.exists(os.path.join(out, "coco_0.index.json"))
        True
    """
    check_key_step(key, step)
    options = DumpOptions(device=device, classes=None, **dump_kwargs)
    return dump_coco(out_dir, images_dir, instances, predictions, options, key=key, step=step,
                     score_threshold=score_threshold, skip_bad=skip_bad, batch_size=batch_size, reader=reader,
                     evaluate=evaluate, eval_engine=eval_engine)


def dump_coco(out_dir: str | os.PathLike, images_dir: str | os.PathLike, instances: str | os.PathLike,
              predictions: str | os.PathLike | None, options: DumpOptions, *, key: str = "coco",
              step: int | str = 0, score_threshold: float | None = None, skip_bad: bool = False,
              batch_size: int = 64, reader: Callable[[list[CocoImage]], list[Any]] | None = None,
              evaluate: str | None = None, eval_engine: str = "auto") -> tuple[CocoDataset, list[dict]]:
    """:func:`write_coco_dump` with its dump options already built (the CLI's entry point).

    Args:
        out_dir: as for :func:`write_coco_dump`.
        images_dir: as for :func:`write_coco_dump`.
        instances: as for :func:`write_coco_dump`.
        predictions: as for :func:`write_coco_dump`.
        options: the dump's :class:`gpu_media.dump.DumpOptions` (its ``classes`` is
            not used: the labels come from the COCO categories).
        key: as for :func:`write_coco_dump`.
        step: as for :func:`write_coco_dump`.
        score_threshold: as for :func:`write_coco_dump`.
        skip_bad: as for :func:`write_coco_dump`.
        batch_size: as for :func:`write_coco_dump`.
        reader: as for :func:`write_coco_dump`.
        evaluate: as for :func:`write_coco_dump`.
        eval_engine: as for :func:`write_coco_dump`.

    Returns:
        ``(dataset, dicts)`` as :func:`write_coco_dump`.

    Raises:
        as :func:`write_coco_dump`.

    Examples:
        >>> import os, tempfile
        >>> demo = demo_coco()  # the bundled COCO demo: 8 photographs, boxes and polygons
        >>> ds, dicts = dump_coco(os.path.join(tempfile.mkdtemp(), "out"), demo.images_dir, demo.instances, None,
        ...                       DumpOptions(file_type="jpg"), key="val")
        >>> dicts[0]["path"].startswith("media/images/val_0_"), dicts[0]["format"]
        (True, 'jpg')
    """
    if options.classes is not None:
        options = dataclasses.replace(options, classes=None)
    check_overwrite(out_dir, key, step, options.overwrite)  # before the (slow) reading of the dataset
    ds = load_coco(images_dir, instances, predictions, score_threshold=score_threshold, skip_bad=skip_bad)
    if ds.has_gt_masks or ds.has_pred_masks:
        pycocotools_mask()  # fail before writing anything
    if evaluate is None:
        dicts = write_batches(out_dir, batches(ds, batch_size, reader), options, key=key, step=step,
                              total=len(ds.images))
        return ds, dicts
    ds.evaluation = evaluate_dataset(ds, evaluate, engine=eval_engine)  # its errors before any file
    evaluated = _EvaluatedParts(ds, options)
    dicts = write_batches(out_dir, evaluated.parts(batches(ds, batch_size, reader), batch_size), options, key=key,
                          step=step, total=len(ds.images), evaluation=evaluated.section)
    return ds, dicts


class _EvaluatedParts:
    """The parts of an evaluated COCO dump: outlines coloured by outcome, masks' confusion summed per part."""

    def __init__(self, ds: CocoDataset, options: DumpOptions):
        self.ds, self.options = ds, options
        self.seg = ds.has_gt_masks and ds.has_pred_masks
        self.num_classes = min(max([c for c in ds.categories if 0 < c <= 255], default=0) + 1, 256)
        self.per_image: list = []

    def parts(self, parts: Iterator[dict[str, Any]], batch_size: int) -> Iterator[dict[str, Any]]:
        from ..eval import confusion_matrix, outcome_colors

        ev = self.ds.evaluation
        for k, part in enumerate(parts):
            lo = k * batch_size
            images, evals = self.ds.images[lo:lo + batch_size], ev.images[lo:lo + batch_size]
            if self.options.draw_boxes:
                boxes = dict(part["boxes"])
                boxes[GT_KEY] = {**boxes[GT_KEY], "colors": outcome_colors([m for e in evals for m in e.gt])}
                boxes[PRED_KEY] = {**boxes[PRED_KEY], "colors": outcome_colors(
                    [e.pred[j] for im, e in zip(images, evals) for j in im.pred_index])}
                part = {**part, "boxes": boxes}
            if self.seg:
                masks = part["masks"]
                r = confusion_matrix(masks[GT_KEY]["mask_data"], masks[PRED_KEY]["mask_data"], self.num_classes,
                                     device=self.options.device)
                self.per_image.append(r.per_image)
            yield part

    def section(self) -> dict:
        from ..eval.confusion import ConfusionResult, scores

        out = {"detection": detection_section(self.ds, self.ds.evaluation)}
        if self.seg and self.per_image:
            per_image = np.concatenate(self.per_image)
            matrix = per_image.sum(axis=0, dtype=np.int64)
            iou, miou, acc = scores(matrix)
            img = [scores(m) for m in per_image]
            labels = {0: "background", **{c: n for c, n in self.ds.categories.items() if 0 < c <= 255}}
            r = ConfusionResult(self.num_classes, matrix, per_image, tuple(iou), miou, acc,
                                tuple(x[1] for x in img), tuple(x[2] for x in img), labels)
            out["segmentation"] = {"gt_key": GT_KEY, "pred_key": PRED_KEY, **r.to_json()}
        return out
