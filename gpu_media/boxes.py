"""Stage 3: bounding boxes, parsed from both wandb forms and burned in as outlines (docs/SPEC.md 4)."""

from __future__ import annotations

import json
import math
import numbers
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np

from . import _arrays
from .backend import get_backend, resolve_device
from .checks import MAX_CLASS_ID, check_class_id, check_int, is_integer, is_number
from .errors import BoxError, ImageError
from .masks import parse_class_labels

if TYPE_CHECKING:
    from .backend import Backend

#: Default outline colours, indexed by ``class_id % 20``: matplotlib's "tab10"
#: colours followed by their light variants from "tab20" (RGB, uint8).
PALETTE = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
)  # fmt: skip

_POS_ERR = (
    "Each box must contain a position with: middle, width, and height or minX, maxX, minY, maxY."
)
_NO_CLASS_ID = "A box needs a class_id (an integer); wandb raises KeyError without one"
_LIMIT = float(2**40)  # coordinates beyond this are clipped: same outline for any image <= 65500


class BoxTable(NamedTuple):
    """Every box of a batch, in drawing order (image-major, then key order, then list order)."""

    image_index: np.ndarray  # (M,) int64
    bounds: np.ndarray  # (M,4) float64 minX, minY, maxX, maxY in pixels
    class_id: np.ndarray  # (M,) int64, class used for colour
    per_image: list  # per image: {key: {"box_data": [...]}} (wandb's boxes2D JSON; "class_labels" when given)
    class_labels: dict  # {key: {int: str}} across the batch; wandb's {c: "class_<c>"} where none given
    colors: np.ndarray | None = None  # (M,3) int16 outline colour per box from the batched form's "colors"; -1: class


def _has_num(d, k) -> bool:
    return k in d and is_number(d[k])


def _py(v):
    """NumPy/PyTorch scalars -> plain Python numbers (arrays are left as they are)."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)) and getattr(v, "ndim", 0) == 0:
        return v.item()
    return v


def _jsonable(v):
    """A box (dicts, lists, NumPy/PyTorch numbers and arrays) as plain JSON-able Python."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    return v


def _bounds(box: dict, where: str, index: int | None = None, key: str | None = None):
    """Validate one wandb box (wandb's ``validate`` rules + finiteness + min <= max) -> (minX, minY, maxX, maxY).

    Errors carry ``index`` (batch index), ``key`` (box key) and ``item`` (the box).
    """

    def error(message: str) -> BoxError:
        return BoxError(message, index=index, key=key, item=box)

    if not isinstance(box, dict) or "position" not in box or not isinstance(box["position"], dict):
        raise error(f"{where}: {_POS_ERR}")
    p = box["position"]
    p = {k: _py(v) for k, v in p.items()}
    if "middle" in p and hasattr(p["middle"], "__len__") and len(p["middle"]) == 2 \
            and _has_num(p, "width") and _has_num(p, "height"):
        mx, my = (_py(v) for v in list(p["middle"]))
        if not all(is_number(v) for v in (mx, my)):
            raise error(f"{where}: {_POS_ERR}")
        w, h = float(p["width"]), float(p["height"])
        vals = (float(mx) - w / 2, float(my) - h / 2, float(mx) + w / 2, float(my) + h / 2)
        raw = {"middle": [mx, my], "width": p["width"], "height": p["height"]}
    elif all(_has_num(p, k) for k in ("minX", "maxX", "minY", "maxY")):
        vals = (float(p["minX"]), float(p["minY"]), float(p["maxX"]), float(p["maxY"]))
        raw = p
    else:
        raise error(f"{where}: {_POS_ERR}")
    if not all(math.isfinite(v) for v in vals) or not all(
        math.isfinite(float(v)) for v in ([raw["width"], raw["height"]] if "width" in raw else [])
    ):
        raise error(f"{where}: box coordinates must be finite, got position {raw}")
    if vals[0] > vals[2]:
        raise error(f"{where}: minX {vals[0]!r} > maxX {vals[2]!r}")
    if vals[1] > vals[3]:
        raise error(f"{where}: minY {vals[1]!r} > maxY {vals[3]!r}")
    if "scores" in box:
        if not isinstance(box["scores"], dict):
            raise error(f"{where}: Box scores must be a dictionary")
        for k, v in box["scores"].items():
            if not isinstance(k, str):
                raise error(f"{where}: A score key must be a string")
            v = _py(v)
            if not isinstance(v, numbers.Number):  # wandb's own rule (a bool score passes)
                raise error(f"{where}: A score value must be a number")
            if isinstance(v, float) and not math.isfinite(v):  # NaN/Infinity are not JSON (docs/SPEC.md 4)
                raise error(f"{where}: score {k!r} must be finite, got {v!r}")
    if "class_id" in box:
        if not is_integer(_py(box["class_id"])):
            raise error(f"{where}: A box's class_id must be an integer")
        check_class_id(_py(box["class_id"]), where, BoxError, index=index, key=key, item=box)
    if "box_caption" in box and not isinstance(box["box_caption"], str):
        raise error(f"{where}: A box's caption must be a string")
    return vals


def _to_pixels(vals, pixel: bool, h: int, w: int):
    x0, y0, x1, y1 = vals
    if not pixel:
        x0, x1, y0, y1 = x0 * w, x1 * w, y0 * h, y1 * h
    return (x0, y0, x1, y1)


def _parse_list(boxes, sizes):
    n = len(sizes)
    if len(boxes) != n:
        raise BoxError(f"boxes: {len(boxes)} entries for a batch of {n} images (give None for images without boxes)")
    idx, bnd, cls, per_image, labels_all = [], [], [], [], {}
    for i, entry in enumerate(boxes):
        per_image.append({})
        if entry is None:
            continue
        if not isinstance(entry, dict):
            raise BoxError(f"image {i}: boxes must be a dictionary {{key: {{'box_data': [...]}}}} or None",
                           index=i, item=entry)
        h, w = sizes[i]
        for key, spec in entry.items():
            where = f"image {i}, box key {key!r}"
            if not isinstance(key, str) or not key:
                raise BoxError(f"{where}: box keys must be non-empty strings", index=i, key=key)
            if not isinstance(spec, dict) or "box_data" not in spec:
                raise BoxError(f"{where}: needs 'box_data' (a list of boxes)", index=i, key=key)
            labels = parse_class_labels(spec.get("class_labels"), where, BoxError, index=i, key=key)
            data = spec["box_data"]
            if not isinstance(data, list):
                raise BoxError(f"{where}: Boxes must be a list", index=i, key=key, item=data)
            vals = [_bounds(box, f"{where}, box {j}", i, key) for j, box in enumerate(data)]
            for j, box in enumerate(data):  # after every position, as wandb (validate, then KeyError)
                if "class_id" not in box:
                    raise BoxError(f"{where}, box {j}: {_NO_CLASS_ID}", index=i, key=key, item=box)
            jboxes = []
            for box, v in zip(data, vals):
                idx.append(i)
                bnd.append(_to_pixels(v, box.get("domain") == "pixel", h, w))
                cls.append(int(_py(box["class_id"])))
                jboxes.append(_jsonable(box))
            _check_json(jboxes, where, i, key)
            entry = {"box_data": jboxes}
            if labels is not None:  # wandb writes class_labels into the file only when given
                entry["class_labels"] = {str(k): v for k, v in labels.items()}
            else:  # the index (and so the viewer) gets wandb's defaults, {c: "class_<c>"}
                labels = {c: f"class_{c}" for c in sorted({int(_py(b["class_id"])) for b in data})}
            labels_all.setdefault(key, {}).update(labels)
            per_image[i][key] = entry
    return idx, bnd, cls, per_image, labels_all


def _check_json(jboxes: list, where: str, index: int, key: str) -> None:
    """Raise BoxError naming the first box of ``jboxes`` that is not strict JSON (NaN, Infinity, other objects).

    The boxes are written as they are given (wandb keeps every field of a box), so a
    NaN in any field would make ``boxes2D.json`` a file that ``JSON.parse`` rejects.
    """
    try:
        json.dumps(jboxes, allow_nan=False)
        return
    except (TypeError, ValueError):
        pass
    for j, box in enumerate(jboxes):
        try:
            json.dumps(box, allow_nan=False)
        except (TypeError, ValueError) as exc:
            why = "NaN and infinite numbers are not JSON" if isinstance(exc, ValueError) else str(exc)
            raise BoxError(f"{where}, box {j}: the box cannot be written as JSON ({why})", index=index, key=key,
                           item=box) from None


#: The fields of one key of the batched form (docs/SPEC.md 4), in the order messages list them.
BATCHED_FIELDS = ("xyxy", "image_index", "class_id", "scores", "captions", "domain", "class_labels", "colors")


def _dtype_rule(name: str) -> _arrays.DtypeRule:
    """The batched form's columns (docs/SPEC.md 4): the image dtypes; ids must then hold integers."""
    return _arrays.DtypeRule(BoxError, f"{name} dtype")


def _batched_columns(spec):
    """(label, container, name) of every array of one key of the batched form."""
    cols = [(c, spec, c) for c in ("xyxy", "image_index", "class_id") if c in spec]
    scores = spec.get("scores")
    if isinstance(scores, dict):
        cols += [(f"scores[{k!r}]", scores, k) for k in scores]
    return cols


def check_box_inputs(boxes: Any) -> Any:
    """Check the dtype of every array of the batched form as given, before the device is resolved.

    Args:
        boxes: as for :func:`draw_boxes`; the list form (plain numbers in dicts) and
            anything malformed are returned unchanged (:func:`parse_boxes` reports them).

    Returns:
        ``boxes`` with the batched form's lists read by NumPy (``xyxy``,
        ``image_index``, ``class_id``, ``scores``).

    Raises:
        gpu_media.BoxError: a column whose dtype is not bool, an integer type,
            float16, float32 or float64 (object, string, bytes, void, datetime,
            complex, ...), naming the box key and the column.

    Examples:
        >>> checked = check_box_inputs({"pred": {"xyxy": [[0, 0, 2, 2]], "image_index": [0], "class_id": [1]}})
        >>> type(checked["pred"]["xyxy"]).__name__, checked["pred"]["xyxy"].shape
        ('ndarray', (1, 4))
    """
    if not isinstance(boxes, dict):
        return boxes
    out = {}
    for key, spec in boxes.items():
        if isinstance(spec, dict) and "xyxy" in spec:
            spec = {**spec, "scores": dict(spec["scores"])} if isinstance(spec.get("scores"), dict) else dict(spec)
            for label, holder, name in _batched_columns(spec):
                holder[name] = _arrays.check_input(holder[name], _dtype_rule(label), f"box key {key!r}", key=key)
        out[key] = spec
    return out


def _box_captions(captions: Any, m: int, key: str) -> list | None:
    """The batched form's ``captions`` (M,): str or None per box (None: the default caption); raises BoxError."""
    if captions is None:
        return None
    if isinstance(captions, np.ndarray) and captions.dtype.kind in "UO":
        captions = captions.tolist()
    if isinstance(captions, (str, bytes)) or not isinstance(captions, (list, tuple)):
        raise BoxError(f"box key {key!r}: captions must be a list of {m} strings (None for the default caption), "
                       f"got {type(captions).__name__}", key=key, item=captions)
    if len(captions) != m:
        raise BoxError(f"box key {key!r}: captions must have shape ({m},), got ({len(captions)},)", key=key,
                       item=len(captions))
    for j, c in enumerate(captions):
        if c is not None and not isinstance(c, str):
            raise BoxError(f"box key {key!r}, box {j}: a caption must be a string or None, got {type(c).__name__}",
                           key=key, item=c)
    return [None if c is None else str(c) for c in captions]


def _column(spec, name, m, key, dtype_kind):
    arr = np.asarray(_arrays.to_array(spec[name], "cpu", rule=_dtype_rule(name), where=f"box key {key!r}",
                                      key=key)[0])
    if arr.shape != (m,):
        raise BoxError(f"box key {key!r}: {name} must have shape ({m},), got {tuple(arr.shape)}", key=key,
                       item=tuple(arr.shape))
    if dtype_kind == "i" and arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.floor(arr) == arr):
            raise BoxError(f"box key {key!r}: {name} must hold integers", key=key)
    return arr


def _box_rgb(spec, m, key):
    """The batched form's optional ``colors`` (M,3): integers in [0, 255] -> int16, or None."""
    if spec.get("colors") is None:
        return None
    rgb = np.asarray(_arrays.to_array(spec["colors"], "cpu", rule=_dtype_rule("colors"), where=f"box key {key!r}",
                                      key=key)[0])
    if rgb.shape != (m, 3) or (rgb.size and (rgb.dtype.kind not in "iu" or rgb.min() < 0 or rgb.max() > 255)):
        raise BoxError(f"box key {key!r}: colors must be (M, 3) = ({m}, 3) integers in [0, 255], got shape "
                       f"{tuple(rgb.shape)} {rgb.dtype}", key=key, item=tuple(rgb.shape))
    return rgb.astype(np.int16)


def _parse_batched(boxes, sizes):  # noqa: C901 - one pass of docs/SPEC.md 4's checks, in the order the errors are raised
    n = len(sizes)
    idx, bnd, cls, per_image, labels_all = [], [], [], [{} for _ in range(n)], {}
    rgbs: list = []  # per box: its (3,) colour or (-1, -1, -1)
    for key, spec in boxes.items():
        if not isinstance(key, str) or not key:
            raise BoxError(f"box key {key!r}: box keys must be non-empty strings", key=key)
        if not isinstance(spec, dict) or "xyxy" not in spec:
            raise BoxError(f"box key {key!r}: the batched form needs 'xyxy' (M, 4) and 'image_index' (M,)", key=key)
        unknown = [f for f in spec if f not in BATCHED_FIELDS]
        if unknown:
            raise BoxError(f"box key {key!r}: unknown field {unknown[0]!r} of the batched form (its fields: "
                           f"{', '.join(BATCHED_FIELDS)})", key=key, item=unknown[0])
        domain = spec.get("domain", "pixel")
        if domain not in ("pixel", "fraction"):
            raise BoxError(f"box key {key!r}: domain must be 'pixel' or 'fraction', got {domain!r}", key=key,
                           item=domain)
        xyxy = np.asarray(_arrays.to_array(spec["xyxy"], "cpu", rule=_dtype_rule("xyxy"), where=f"box key {key!r}",
                                           key=key)[0])
        if xyxy.ndim != 2 or xyxy.shape[1] != 4 or (xyxy.size and xyxy.dtype.kind not in "biuf"):
            raise BoxError(f"box key {key!r}: xyxy must be a numeric (M, 4) array, got shape {tuple(xyxy.shape)}",
                           key=key, item=tuple(xyxy.shape))
        xyxy = xyxy.astype(np.float64)
        m = xyxy.shape[0]
        if "image_index" not in spec:
            if n != 1:
                raise BoxError(f"box key {key!r}: 'image_index' (M,) is required for a batch of {n} images", key=key)
            img = np.zeros(m, dtype=np.int64)
        else:
            img = _column(spec, "image_index", m, key, "i").astype(np.int64)
        cid = None
        if "class_id" in spec:
            raw = _column(spec, "class_id", m, key, "i")
            far = np.flatnonzero((raw > MAX_CLASS_ID) | (raw < -MAX_CLASS_ID)) if raw.size else ()
            if len(far):  # before the cast to int64, which would wrap it
                j = int(far[0])
                check_class_id(int(raw[j]), f"image {int(img[j])}, box key {key!r}, box {j}", BoxError,
                               index=int(img[j]), key=key, item=[float(v) for v in xyxy[j]])
            cid = raw.astype(np.int64)
        rgb = _box_rgb(spec, m, key)
        scores = spec.get("scores") or {}
        if not isinstance(scores, dict):
            raise BoxError(f"box key {key!r}: scores must be a dictionary {{name: (M,) array}}", key=key)
        for k in scores:
            if not isinstance(k, str):
                raise BoxError(f"box key {key!r}: score names must be strings, got {k!r}", key=key, item=k)
        scores = {k: _column(scores, k, m, key, "f").astype(np.float64) for k in scores}
        box_captions = _box_captions(spec.get("captions"), m, key)
        given = parse_class_labels(spec.get("class_labels"), f"box key {key!r}", BoxError, key=key)
        labels = given
        if labels is None:  # the index (and so the viewer) gets wandb's defaults, {c: "class_<c>"}
            labels = {c: f"class_{c}" for c in sorted(set(cid.tolist()))} if cid is not None else {}
        labels_all.setdefault(key, {}).update(labels)
        for j in range(m):
            i = int(img[j])
            if not 0 <= i < n:
                raise BoxError(f"box key {key!r}, box {j}: image_index {i} is out of range for a batch of {n} images",
                               key=key, item=i)
            where = f"image {i}, box key {key!r}, box {j}"
            x0, y0, x1, y1 = (float(v) for v in xyxy[j])
            fields = {"index": i, "key": key, "item": [x0, y0, x1, y1]}
            if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
                raise BoxError(f"{where}: box coordinates must be finite, got xyxy {[x0, y0, x1, y1]}", **fields)
            if x0 > x1:
                raise BoxError(f"{where}: minX {x0!r} > maxX {x1!r}", **fields)
            if y0 > y1:
                raise BoxError(f"{where}: minY {y0!r} > maxY {y1!r}", **fields)
            for k, s in scores.items():
                if not math.isfinite(s[j]):
                    raise BoxError(f"{where}: score {k!r} must be finite, got {s[j]!r}", **fields)
        if cid is None and m:  # after every box, as in the per-image form
            i = int(img[0])
            raise BoxError(f"image {i}, box key {key!r}, box 0: {_NO_CLASS_ID} (give 'class_id' (M,))",
                           index=i, key=key, item=[float(v) for v in xyxy[0]])
        jpos = np.argsort(img, kind="stable")
        h_w = np.array(sizes, dtype=np.float64).reshape(-1, 2)
        for j in jpos.tolist():
            i = int(img[j])
            x0, y0, x1, y1 = (float(v) for v in xyxy[j])
            box = {"position": {"minX": x0, "maxX": x1, "minY": y0, "maxY": y1}}
            if domain == "pixel":
                box["domain"] = "pixel"
            c = int(cid[j])
            box["class_id"] = c
            sc = {k: float(s[j]) for k, s in scores.items()}
            name = labels.get(c, f"class_{c}")
            if box_captions is not None and box_captions[j] is not None:
                box["box_caption"] = box_captions[j]
            else:
                box["box_caption"] = f"{name} {next(iter(sc.values())):.2f}" if sc else name
            if sc:
                box["scores"] = sc
            entry = per_image[i].setdefault(key, {"box_data": []})
            entry["box_data"].append(box)
            idx.append(i)
            bnd.append(_to_pixels((x0, y0, x1, y1), domain == "pixel", *(int(v) for v in h_w[i])))
            cls.append(c)
            rgbs.append(rgb[j] if rgb is not None else (-1, -1, -1))
        if given is not None:  # wandb writes class_labels into the file only when given
            for i in range(n):
                if key in per_image[i]:
                    per_image[i][key]["class_labels"] = {str(k): v for k, v in given.items()}
    return idx, bnd, cls, per_image, labels_all, rgbs


def parse_boxes(boxes: Any, sizes: Sequence[tuple[int, int]]) -> BoxTable | None:
    """Parse either box form against the images' ``(H, W)`` sizes; raises BoxError.

    Args:
        boxes: either form of :func:`draw_boxes` (after :func:`check_box_inputs`), or None.
        sizes: ``(H, W)`` of each image, in batch order.

    Returns:
        the boxes in drawing order, or None for ``boxes=None``.

    Raises:
        gpu_media.BoxError: see :func:`draw_boxes`.

    Examples:
        >>> import numpy as np
        >>> t = parse_boxes({"pred": {"xyxy": np.array([[0.5, 0, 0.75, 0.5]]), "image_index": np.array([1]),
        ...                           "class_id": np.array([3]), "domain": "fraction"}}, [(4, 8), (4, 8)])
        >>> t.image_index.tolist(), t.bounds.tolist(), t.class_id.tolist(), t.class_labels
        ([1], [[4.0, 0.0, 6.0, 2.0]], [3], {'pred': {3: 'class_3'}})
    """
    if boxes is None:
        return None
    n = len(sizes)
    if isinstance(boxes, dict) and boxes and all(isinstance(v, dict) and "box_data" in v for v in boxes.values()):
        if n != 1:
            raise BoxError(
                f"boxes: wandb's per-image form {{key: {{'box_data': ...}}}} was given for a batch of {n} images; "
                "give a list with one entry per image, or the batched form with 'xyxy'"
            )
        boxes = [boxes]
    rgbs = None
    if isinstance(boxes, (list, tuple)):
        idx, bnd, cls, per_image, labels = _parse_list(list(boxes), sizes)
    elif isinstance(boxes, dict):
        idx, bnd, cls, per_image, labels, rgbs = _parse_batched(boxes, sizes)
        order = np.argsort(np.asarray(idx, dtype=np.int64), kind="stable")  # image-major, keys in order
        idx, bnd, cls = [idx[o] for o in order], [bnd[o] for o in order], [cls[o] for o in order]
        rgbs = None if not any(v[0] >= 0 for v in rgbs) else [rgbs[o] for o in order]
    else:
        raise BoxError("boxes must be a list (one entry per image) or the batched form {key: {'xyxy': ...}}")
    return BoxTable(
        np.asarray(idx, dtype=np.int64).reshape(-1),
        np.asarray(bnd, dtype=np.float64).reshape(-1, 4),
        np.asarray(cls, dtype=np.int64).reshape(-1),
        per_image,
        labels,
        None if rgbs is None else np.asarray(rgbs, dtype=np.int16).reshape(-1, 3),
    )


def outline_rects(bounds: np.ndarray) -> np.ndarray:
    """docs/SPEC.md 4 step 2: float64 (M,4) minX, minY, maxX, maxY -> int64 inclusive x0, y0, x1, y1.

    Examples:
        >>> outline_rects(np.array([[0.0, 0.0, 4.0, 3.0], [1.4, 1.6, 2.5, 3.5]])).tolist()
        [[0, 0, 3, 2], [1, 2, 1, 3]]
    """
    r = np.rint(np.clip(bounds, -_LIMIT, _LIMIT)).astype(np.int64)
    r[:, 2:] -= 1
    return r


def box_colors(class_id: np.ndarray, colors: Mapping[int, Sequence[int]] | None) -> np.ndarray:
    """(M,) class ids -> (M,3) uint8 from ``colors`` or :data:`PALETTE` (docs/SPEC.md 4 step 4).

    Examples:
        >>> box_colors(np.array([0, 21, 5]), {5: (255, 255, 255)}).tolist()
        [[31, 119, 180], [255, 127, 14], [255, 255, 255]]
    """
    pal = np.asarray(PALETTE, dtype=np.uint8)
    out = pal[np.mod(class_id, len(PALETTE))] if class_id.size else np.zeros((0, 3), np.uint8)
    if colors is None:
        return out
    if not isinstance(colors, dict):
        raise BoxError(f"colors must be a dictionary {{class_id: (r, g, b)}}, got {type(colors).__name__}")
    for c, rgb in colors.items():
        c = _py(c)
        if not is_integer(c):
            raise BoxError(f"colors: key {c!r} is not an integer class id", item=c)
        parts = [_py(v) for v in rgb] if isinstance(rgb, (list, tuple, np.ndarray)) else None
        if parts is None or len(parts) != 3 or not all(
            is_integer(v) and 0 <= v <= 255 for v in parts
        ):
            raise BoxError(f"colors[{c!r}] must be an (r, g, b) triple of integers in [0, 255], got {rgb!r}",
                           item=rgb)
        out[class_id == int(c)] = parts
    return out


def check_thickness(thickness: Any) -> int:
    """``thickness`` checked (an integer >= 1) and capped at 2**31; raises BoxError.

    Examples:
        >>> check_thickness(3), check_thickness(2**40)
        (3, 2147483648)
        >>> check_thickness(0)
        Traceback (most recent call last):
        ...
        gpu_media.errors.BoxError: thickness must be an integer >= 1 (pixels), got 0
    """
    return min(check_int(thickness, "thickness", lo=1, unit="pixels", error=BoxError), 2**31)


def render(images_u8: Any, table: BoxTable | None, backend: Backend, thickness: int,
           colors: Mapping[int, Sequence[int]] | None, lo: int = 0) -> Any:
    """Draw ``table``'s boxes of images ``lo:lo+len(images_u8)`` into a uint8 NHWC batch.

    Examples:
        >>> from gpu_media.backend import get_backend
        >>> table = parse_boxes([None, {"p": {"box_data": [{"position": {"minX": 0, "maxX": 2, "minY": 0, "maxY": 2},
        ...                                                 "class_id": 0, "domain": "pixel"}]}}], [(2, 2), (2, 2)])
        >>> out = render(np.zeros((1, 2, 2, 3), np.uint8), table, get_backend("cpu"), 1, None, lo=1)
        >>> out[0, :, :, 0].tolist()
        [[31, 31], [31, 31]]
    """
    n = images_u8.shape[0]
    if table is None:
        table = BoxTable(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64), [], {})
    sel = (table.image_index >= lo) & (table.image_index < lo + n)
    rects = outline_rects(table.bounds[sel])
    cols = box_colors(table.class_id[sel], colors)
    if table.colors is not None:  # per-box colours of the batched form win over the class colour
        given = table.colors[sel]
        own = given[:, 0] >= 0
        cols[own] = given[own].astype(np.uint8)
    return backend.draw_outlines(images_u8, rects, table.image_index[sel] - lo, cols, thickness)


def draw_boxes(images_u8: Any, boxes: Any, *, thickness: int = 2, colors: Mapping[int, Sequence[int]] | None = None,
               device: str = "auto") -> Any:
    """Burn box outlines into uint8 images (docs/SPEC.md 4), later boxes over earlier ones.

    Args:
        images_u8: uint8 ``(N,H,W,C)`` (NHWC, C in {1,3,4}; e.g. from
            :func:`gpu_media.normalize`), or a list of ``(H,W,C)`` of differing sizes.
        boxes: either a list with one entry per image, each ``None`` or wandb's
            ``{key: {"box_data": [box, ...], "class_labels": {int: str}}}`` (box
            ``position`` as ``{minX, maxX, minY, maxY}`` or ``{middle: [x, y],
            width, height}``; ``domain`` "pixel" for pixels, else fractions of W
            and H); or the batched form ``{key: {"xyxy": (M,4), "image_index":
            (M,), "class_id": (M,), "scores": {name: (M,)}, "captions": (M,),
            "domain": "pixel" | "fraction", "class_labels": {int: str}}}`` (domain
            defaults to "pixel"; ``captions``, optional, are the boxes'
            ``box_caption``, None for the default ``"<class name> <score>"``; ``colors``
            (M,3), optional, integers in [0, 255], are each box's outline colour
            instead of its class colour).
        thickness: outline width in pixels (>= 1), growing inward.
        colors: ``{class_id: (r, g, b)}``; other classes use :data:`PALETTE`
            entry ``class_id % 20``.
        device: "auto", "cpu" or "gpu" (``gpu_media.backend``).

    Returns:
        uint8 ``(N,H,W,C')`` (a new array; "L" images become "RGB", RGBA outline
        pixels get alpha 255), or a list when the input was a list.

    Raises:
        gpu_media.BoxError: naming the image index, box key and box: wandb's box
            validation rules, a box without ``class_id`` (required in both forms;
            wandb raises KeyError), NaN/inf coordinates or scores, a box that
            is not strict JSON, a class id beyond ``2**53 - 1`` in magnitude,
            an unknown field of the batched form, an empty box key, an
            ``image_index`` out of range, bad ``colors`` or ``thickness``; a
            batched-form column whose dtype is not bool, integer or
            float16/32/64 (checked before the device is resolved).
        gpu_media.ImageError: images that are not uint8 NHWC.

    Examples:
        One grey 4x5 image, one box of class 0 (x1, y1 exclusive) in the batched form;
        the image becomes RGB and the outline takes :data:`PALETTE` entry 0:

        >>> import numpy as np
        >>> from gpu_media import PALETTE, draw_boxes
        >>> boxes = {"pred": {"xyxy": np.array([[0, 0, 4, 3]]), "image_index": np.array([0]),
        ...                   "class_id": np.array([0])}}
        >>> out = draw_boxes(np.zeros((1, 4, 5, 1), np.uint8), boxes, thickness=1)
        >>> out.shape, PALETTE[0]
        ((1, 4, 5, 3), (31, 119, 180))
        >>> out[0, :, :, 0].tolist()
        [[31, 31, 31, 31, 0], [31, 0, 0, 31, 0], [31, 31, 31, 31, 0], [0, 0, 0, 0, 0]]

        wandb's per-image form, with a colour for class 1:

        >>> box = {"position": {"middle": [2, 2], "width": 2, "height": 2}, "class_id": 1, "domain": "pixel"}
        >>> out = draw_boxes(np.zeros((1, 4, 4, 3), np.uint8), [{"gt": {"box_data": [box]}}],
        ...                  colors={1: (255, 0, 0)}, thickness=1)
        >>> out[0, :, :, 0].tolist()
        [[0, 0, 0, 0], [0, 255, 255, 0], [0, 255, 255, 0], [0, 0, 0, 0]]
    """
    t = check_thickness(thickness)
    images_u8 = _arrays.check_images(images_u8)
    boxes = check_box_inputs(boxes)
    dev = resolve_device(device, _arrays.on_gpu(images_u8))
    backend = get_backend(dev)
    groups, n = _arrays.image_groups(images_u8, "NHWC" if not isinstance(images_u8, (list, tuple)) else None, dev)
    for g in groups:
        if str(g.array.dtype) != "uint8" or g.layout != "NHWC":
            raise ImageError(f"image {g.indices[0]}: draw_boxes takes uint8 NHWC images (call normalize first)",
                             index=g.indices[0], item=g.array.dtype)
    sizes = [None] * n
    for g in groups:
        for i in g.indices:
            sizes[i] = _arrays.hw_of(g)
    table = parse_boxes(boxes, sizes)
    box_colors(np.zeros(0, np.int64), colors)  # validate colors even without boxes
    if len(groups) == 1:
        return render(groups[0].array, table, backend, t, colors)
    out = [None] * n
    for g in groups:
        for k, i in enumerate(g.indices):
            out[i] = render(g.array[k : k + 1], table, backend, t, colors, lo=i)[0]
    return out
