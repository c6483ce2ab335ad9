"""A static HTML viewer for dump folders: ``out_dir/index.html``, one self-contained page.

:func:`write_viewer` reads every ``*.index.json`` that :func:`gpu_media.write_dump` left
in a folder (several keys and steps may share it) and writes ``index.html`` beside
them: a grid of the images with paging (page size selectable) and lazy loading, and
for each mask key a toggle, an opacity slider and per-class show/hide checkboxes; for
each box key a toggle, per-class checkboxes and a score threshold; image captions; and
a per-class summary table (mask pixels per mask key from ``mask_report``, box counts
per box key), so ground truth and predictions sit side by side.

The page needs no server and no network: all JS and CSS are inline, and images and
masks are referenced by their relative paths, so it works opened as a ``file://`` URL
and served (:func:`serve`). The dump's data (image paths and sizes, captions, the
boxes2D JSON, class labels, mask paths, mask report) comes in one of two ways:

* In a dump folder, ``index.html`` is the same page for every folder (written when
  missing or out of date), and the data lives beside it in small script files it
  loads with ``<script src>`` (which works from ``file://``, unlike ``fetch``):
  ``viewer/dumps-a.js`` and ``viewer/dumps-b.js``, the list of the folder's indexes
  (:data:`LIST_FILES`), and one
  ``viewer/<key>_<step>.dump.js`` per index (:func:`data_file`), each written once,
  when its index is. So a
  dump into a folder of many dumps (a training loop logging every N steps) writes
  its own data file and the short list, never the data of the dumps before it
  (:func:`update_viewer`).
* :func:`render_html` of :func:`viewer_data` embeds everything as JSON in a
  ``<script type="application/json">`` element: one file (the page of a dump at a URL).

A Content-Security-Policy allows only the page's own scripts (by hash), the data
files of its folder, and images from the folder.

Masks are coloured without reading their pixels (a canvas would be tainted under
``file://``): each mask key has an SVG ``<filter>`` whose ``discrete`` transfer tables
map the grey value (the class id) to the class colour, or to transparent for hidden
classes, applied with CSS ``filter`` to an ``<img>`` of the mask over the image.
Boxes are drawn on a ``<canvas>`` per image. Class colours are :data:`gpu_media.PALETTE`
entry ``class_id % 20``, as for the burned-in outlines. Every class is shown by default,
except a class named "background" or "bg" in masks (its checkbox brings it back). The
default view is meant to be readable: the first mask key is on at opacity 0.35, the other
mask keys off, and the box keys on unless the boxes are burned into the pixels
(``boxes_drawn`` in the index), where drawing them again would hide the image, or the
mask of the same key is shown (it shows the same objects): ground-truth masks beside
predicted boxes.

An index with an ``eval`` section (docs/SPEC.md; ``gpu-media dump --eval``) adds a summary
panel (COCOeval's 12 stats, a per-class table sortable by any column whose class names
filter the gallery to the images with an error in that class, precision/recall curves
per class as inline SVG, the mask confusion matrix as a heat map with counts), each
image's TP / FP / FN, F1 and mIoU, worst-first orders of the gallery, and outlines
filtered (TP / FP / FN / ignored) and coloured by outcome at IoU 0.50 or 0.75 (using
these switches, the IoU or a class of the table turns on the box layers holding the
outcomes shown, and that class in them). The section is checked on reading
(:func:`viewer_data`): unknown keys dropped, numbers that are not finite as None, one
entry per image.

Every string from the dump reaches the page as text (``textContent``), never as markup.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import functools
import glob
import hashlib
import http
import http.server
import json
import math
import os
import re
import shutil
import stat
import sys
import threading
import urllib.parse
from importlib import resources
from typing import Any, Iterable, TextIO

from .boxes import PALETTE
from .checks import is_integer, is_number
from .fileio import LOCK_NAME, folder_lock, fsync_dir, relative_path, remove_stale_temps, write_atomic

INDEX_HTML = "index.html"
#: The folder of the page's data files, beside ``index.html`` (docs/SPEC.md 6.1).
VIEWER_DIR = "viewer"
#: ``viewer/dumps-a.js``, ``viewer/dumps-b.js``: two copies of the list of the folder's indexes, in the page's
#: order; the page takes the first that loads. An update rewrites ``dumps-b.js`` in place, then ``dumps-a.js``
#: (no new file: making, renaming and linking files cost a busy ext4 ~10x the writes), so one whole list is
#: there at every moment and, between updates, both are the same (:func:`update_viewer`). A page that loads
#: while a copy is rewritten may read that copy cut, which does not parse, and takes the other; a cut that
#: falls between whole entries parses as the list less an index or two, until the page is loaded again.
LIST_FILES = ("dumps-a.js", "dumps-b.js")
_DATA_MARK = "__GPU_MEDIA_DATA__"
_HASH_MARK = "__GPU_MEDIA_SCRIPT_HASH__"
#: every inline script of the template (not the JSON data element): the CSP allows them by hash
_INLINE_SCRIPT = re.compile(r'<script id="gpu-media-[a-z]+">(.*?)</script>', re.DOTALL)


@functools.lru_cache(maxsize=2)
def _page_parts(external: bool) -> tuple[str, str]:
    """The page before and after the data placeholder, its CSP filled in (computed once per process)."""
    html = resources.files(__package__).joinpath("viewer_template.html").read_text(encoding="utf-8")
    hashes = [base64.b64encode(hashlib.sha256(m.group(1).encode("utf-8")).digest()).decode("ascii")
              for m in _INLINE_SCRIPT.finditer(html)]
    sources = " ".join(f"'sha256-{h}'" for h in hashes)
    if external:  # the data files of viewer/: 'self' when served, file: opened from the disk
        sources += " 'self' file:"
    html = html.replace(_HASH_MARK, sources, 1)
    head, sep, tail = html.partition(_DATA_MARK)
    if not sep:
        raise RuntimeError("viewer template has no data placeholder")
    return head, tail


def _finite(v):
    """JSON data with NaN / inf (which ``JSON.parse`` rejects) replaced by None."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _labels(obj) -> dict:
    """``{id: name}`` with integer-like keys only, names as strings."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            try:
                c = int(k)
            except (TypeError, ValueError):
                continue
            out[str(c)] = str(v)
    return out


def _step_order(step):
    return (0, step, "") if is_integer(step) else (1, 0, str(step))


def _read_boxes(root: str, rel: str | None, cache: dict):
    """The ``(box_data, class_labels)`` of one boxes2D JSON file; raises OSError / ValueError."""
    if rel is None:
        raise ValueError("no valid path")
    if rel in cache:
        return cache[rel]
    path = os.path.join(root, *rel.split("/"))
    with open(path, "rb") as f:
        obj = json.loads(f.read().decode("utf-8"))
    if not isinstance(obj, dict) or not isinstance(obj.get("box_data"), list):
        raise ValueError("not a boxes2D JSON object with a 'box_data' list")
    boxes = []
    for b in obj["box_data"]:
        if not isinstance(b, dict):
            continue
        keep = {k: b[k] for k in ("position", "domain", "class_id", "box_caption", "scores") if k in b}
        boxes.append(_finite(keep))
    cache[rel] = (boxes, _labels(obj.get("class_labels")))
    return cache[rel]


# ---- the optional ``eval`` section of an index (issue 20; docs/SPEC.md): checked, compacted ----

_PRED_OUTCOMES = ("tp", "fp", "ignored")
_GT_OUTCOMES = ("matched", "fn", "ignored")


def _eval_num(v) -> float | None:
    """A finite real number as float, else None (-1, COCO's "undefined", is kept: the page shows it as such)."""
    return float(v) if is_number(v) and math.isfinite(v) else None


def _eval_int(v) -> int | None:
    return int(v) if is_integer(v) else None


def _eval_iou(v) -> float | None:
    v = _eval_num(v)
    return None if v is None else round(v, 4)


def _eval_outcomes(entries, allowed: tuple) -> list:
    """Per-box outcomes as compact ``[o50, iou50, o75, iou75]`` lists (unknown outcomes: None).

    ``entries``: the index's columns ``{"o50": [...], "iou50": [...], "o75": [...],
    "iou75": [...]}`` (docs/SPEC.md 6.6; a column shorter than the longest reads as
    None), or one ``{"o50", ...}`` object per box (the form of the first evaluated
    dumps). (JSON values only, so a plain type test; ~100 of these per image: kept lean.)
    """
    isfinite, num = math.isfinite, (int, float)
    if isinstance(entries, dict):
        cols = [entries.get(k) for k in ("o50", "iou50", "o75", "iou75")]
        cols = [c if isinstance(c, list) else [] for c in cols]
        n = max(len(c) for c in cols)
        cols = [c + [None] * (n - len(c)) for c in cols]
        rows = zip(*cols)
    elif isinstance(entries, list):
        rows = ((e.get("o50"), e.get("iou50"), e.get("o75"), e.get("iou75")) if isinstance(e, dict)
                else (None, None, None, None) for e in entries)
    else:
        return []
    return [[o50 if o50 in allowed else None,
             round(i50, 4) if type(i50) in num and isfinite(i50) else None,
             o75 if o75 in allowed else None,
             round(i75, 4) if type(i75) in num and isfinite(i75) else None] for o50, i50, o75, i75 in rows]


def _eval_images(raw, count: int, what: str, errors: list) -> list:
    """``raw`` (one entry per image) as exactly ``count`` dicts, naming a length mismatch in ``errors``."""
    raw = raw if isinstance(raw, list) else []
    if len(raw) != count:
        errors.append(f"{what}: {len(raw)} entries for {count} images")
    return [raw[i] if i < len(raw) and isinstance(raw[i], dict) else {} for i in range(count)]


def _aligned_outcomes(det: dict, images: list, name: str, errors: list) -> None:
    """Drops the per-box outcomes of an image whose box list they do not match one for one (named in ``errors``)."""
    bad = []
    for i, (im, e) in enumerate(zip(images, det["images"], strict=True)):
        for part, key in (("pred", det["pred_key"]), ("gt", det["gt_key"])):
            boxes = im["boxes"].get(key)
            if e[part] and len(boxes or []) != len(e[part]):
                bad.append(f"image {i}: {len(e[part])} {part} outcomes for {len(boxes or [])} boxes of {key!r}")
                e[part] = []
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        errors.append(f"{name}: eval.detection: outcomes not shown: " + "; ".join(bad[:3]) + more)


def _read_detection(det: dict, count: int, name: str, errors: list) -> dict:
    classes = []
    for row in det.get("classes") if isinstance(det.get("classes"), list) else []:
        if not isinstance(row, dict) or not is_integer(row.get("id")):
            continue
        c = int(row["id"])
        r = {"id": c, "name": str(row["name"]) if row.get("name") is not None else f"class_{c}"}
        r.update({k: _eval_num(row.get(k)) for k in ("ap", "ap50", "ap75", "ar100")})
        r.update({k: _eval_int(row.get(k)) for k in ("tp", "fp", "fn")})
        classes.append(r)
    pr, curves = det.get("pr_curves"), None
    if isinstance(pr, dict) and isinstance(pr.get("recall"), list) and isinstance(pr.get("precision"), dict):
        precision = {}
        for k, v in pr["precision"].items():
            try:
                c = int(k)
            except (TypeError, ValueError):
                continue
            if isinstance(v, list):
                precision[str(c)] = [_eval_iou(x) for x in v]
        curves = {"iou": _eval_num(pr.get("iou")), "recall": [_eval_iou(x) for x in pr["recall"]],
                  "precision": precision}
    images = []
    for e in _eval_images(det.get("images"), count, f"{name}: eval.detection.images", errors):
        im = {k: _eval_int(e.get(k)) for k in ("tp", "fp", "fn", "tp75", "fp75", "fn75")}
        im["f1"] = _eval_num(e.get("f1"))
        errs = e.get("error_classes")
        im["error_classes"] = sorted({int(c) for c in errs if is_integer(c)}) if isinstance(errs, list) else []
        im["pred"] = _eval_outcomes(e.get("pred"), _PRED_OUTCOMES)
        im["gt"] = _eval_outcomes(e.get("gt"), _GT_OUTCOMES)
        images.append(im)
    stats = det.get("stats") if isinstance(det.get("stats"), list) else []
    names = det.get("stats_names") if isinstance(det.get("stats_names"), list) else []
    return {
        "iou_type": str(det.get("iou_type", "bbox")),
        "engine": str(det["engine"]) if isinstance(det.get("engine"), str) else None,
        "gt_key": det["gt_key"] if isinstance(det.get("gt_key"), str) else None,
        "pred_key": det["pred_key"] if isinstance(det.get("pred_key"), str) else None,
        "stats": [_eval_num(v) for v in stats], "stats_names": [str(n) for n in names],
        "classes": classes, "pr_curves": curves, "images": images,
    }


def _read_segmentation(seg: dict, count: int, name: str, errors: list) -> dict:
    cm = seg.get("confusion_matrix")
    cm = cm if isinstance(cm, list) else []
    rows = [[int(v) if is_integer(v) else 0 for v in r] for r in cm if isinstance(r, list)]
    iou = seg.get("iou") if isinstance(seg.get("iou"), list) else []
    images = [{"miou": _eval_num(e.get("miou")), "pixel_accuracy": _eval_num(e.get("pixel_accuracy"))}
              for e in _eval_images(seg.get("images"), count, f"{name}: eval.segmentation.images", errors)]
    return {
        "gt_key": seg["gt_key"] if isinstance(seg.get("gt_key"), str) else None,
        "pred_key": seg["pred_key"] if isinstance(seg.get("pred_key"), str) else None,
        "num_classes": _eval_int(seg.get("num_classes")) or len(rows), "labels": _labels(seg.get("labels")),
        "confusion_matrix": rows, "iou": [_eval_num(v) for v in iou],
        "miou": _eval_num(seg.get("miou")), "pixel_accuracy": _eval_num(seg.get("pixel_accuracy")),
        "images": images,
    }


def _read_eval(raw, images: list, name: str, errors: list) -> dict | None:
    """An index's optional ``eval`` section as the page reads it, or None when there is none.

    Unknown keys are dropped, numbers that are not finite become None, per-image lists
    get exactly one entry per image (a length mismatch is named in ``errors``), and
    each box's outcomes become a compact ``[o50, iou50, o75, iou75]`` list (dropped,
    and named in ``errors``, where they do not match the image's boxes one for one).
    """
    if not isinstance(raw, dict):
        return None
    out = {}
    if isinstance(raw.get("detection"), dict):
        out["detection"] = _read_detection(raw["detection"], len(images), name, errors)
        _aligned_outcomes(out["detection"], images, name, errors)
    if isinstance(raw.get("segmentation"), dict):
        out["segmentation"] = _read_segmentation(raw["segmentation"], len(images), name, errors)
    return out or None


def _load_dump(root: str, name: str, box_cache: dict, errors: list) -> dict:
    with open(os.path.join(root, name), "rb") as f:
        index = json.loads(f.read().decode("utf-8"))
    if not isinstance(index, dict) or not isinstance(index.get("images"), list):
        raise ValueError("not a gpu-media dump index (no 'images' list)")
    key = index.get("key")
    step = index.get("step", 0)
    if not isinstance(key, str):  # the key back from the name: <enc(key)>_<enc_step(step)>.index.json
        enc_key, sep, _ = name[: -len(".index.json")].rpartition("_")
        key = urllib.parse.unquote(enc_key if sep else name[: -len(".index.json")])
    if not (isinstance(step, str) or is_integer(step)):
        step = str(step)
    mask_labels = {str(k): _labels(v) for k, v in (index.get("mask_class_labels") or {}).items()}
    box_labels = {str(k): _labels(v) for k, v in (index.get("box_class_labels") or {}).items()}
    mask_keys, box_keys = list(mask_labels), list(box_labels)
    report = index.get("mask_report") if isinstance(index.get("mask_report"), list) else []
    images, bad_boxes = [], 0
    for i, d in enumerate(index["images"]):
        d = d if isinstance(d, dict) else {}
        w, h = d.get("width"), d.get("height")
        im = {
            "path": relative_path(d.get("path")),
            "width": int(w) if isinstance(w, int) and w > 0 else None,
            "height": int(h) if isinstance(h, int) and h > 0 else None,
            "caption": d.get("caption") if isinstance(d.get("caption"), str) else None,
            "masks": {},
            "boxes": {},
            "report": {},
        }
        for k, v in (d.get("masks") or {}).items():
            if k not in mask_keys:
                mask_keys.append(k)
            im["masks"][k] = relative_path(v.get("path")) if isinstance(v, dict) else None
        problems = []
        for k, v in (d.get("boxes") or {}).items():
            if k not in box_keys:
                box_keys.append(k)
            rel = relative_path(v.get("path")) if isinstance(v, dict) else None
            try:
                boxes, labels = _read_boxes(root, rel, box_cache)
            except (OSError, ValueError) as exc:
                bad_boxes += 1
                problems.append(f"boxes {k!r} unreadable")
                if bad_boxes <= 5:
                    errors.append(f"{name}: image {i}: boxes {k!r} ({rel or v!r}): {exc}")
                continue
            im["boxes"][k] = boxes
            merged = box_labels.setdefault(k, {})
            for c, n in labels.items():
                merged.setdefault(c, n)
        if problems:
            im["box_errors"] = ", ".join(problems)
        rep = report[i] if i < len(report) and isinstance(report[i], dict) else {}
        for k, counts in rep.items():
            if isinstance(counts, dict):
                im["report"][str(k)] = {str(c): int(n) for c, n in counts.items()
                                        if is_number(n)}
        images.append(im)
    if bad_boxes > 5:
        errors.append(f"{name}: {bad_boxes - 5} more unreadable box files")
    return {
        "file": name, "key": key, "step": step, "count": len(images),
        "boxes_drawn": bool(index.get("boxes_drawn")),
        "mask_keys": mask_keys, "box_keys": box_keys,
        "mask_labels": mask_labels, "box_labels": box_labels,
        "images": images,
        "eval": _read_eval(index.get("eval"), images, name, errors),
    }


#: Indexes already read in this process: {path: ((mtime_ns, size, inode), the page's entry)}. A
#: dump folder's page is rebuilt after every dump from all its indexes; an index is renamed into
#: place whole and never edited (a new one replaces it: another inode), so an entry whose file
#: stat is unchanged is reused instead of read again (a training loop dumping every N steps into
#: one folder would otherwise read every earlier index at each step). Entries with read errors
#: are not kept; at most _LOADED_MAX entries, the oldest dropped first.
_LOADED: dict = {}
_LOADED_MAX = 4096
_LOADED_LOCK = threading.Lock()


def _remember(path: str, sig: tuple, dump: dict) -> None:
    with _LOADED_LOCK:
        _LOADED.pop(path, None)
        _LOADED[path] = (sig, dump)
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))


def viewer_data(out_dir: str | os.PathLike) -> dict[str, Any]:
    """What the page embeds: every ``*.index.json`` of ``out_dir`` with its box JSON read in.

    Args:
        out_dir: a dump folder.

    Returns:
        ``{"generator", "version", "palette", "dumps", "errors"}``: one entry of
        ``dumps`` per index, sorted by key and step; ``errors`` names the files that
        could not be read (the page shows them).

    Examples:
        >>> import tempfile
        >>> data = viewer_data(tempfile.mkdtemp())
        >>> data["dumps"], data["errors"], data["palette"][0]
        ([], [], [31, 119, 180])
    """
    root = os.path.abspath(os.fspath(out_dir))
    dumps, errors, cache = [], [], {}
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(glob.escape(root), "*.index.json")))
    for name in names:
        path = os.path.join(root, name)
        try:
            st = os.stat(path)
            sig = (st.st_mtime_ns, st.st_size, st.st_ino)
            hit = _LOADED.get(path)
            if hit is not None and hit[0] == sig:  # read before, unchanged since
                dumps.append(hit[1])
                continue
            errs: list = []
            dump = _load_dump(root, name, cache, errs)
            dumps.append(dump)
            errors.extend(errs)
            if not errs:
                _remember(path, sig, dump)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            errors.append(f"{name}: cannot read ({exc})")
    dumps.sort(key=lambda d: (d["key"], _step_order(d["step"]), d["file"]))
    return {"generator": "gpu-media viewer", "version": 1, "palette": [list(c) for c in PALETTE],
            "dumps": dumps, "errors": errors}


def script_json(obj: Any) -> str:
    r"""JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&``, U+2028, U+2029 as ``\uXXXX``.

    Args:
        obj: JSON-serializable data (no NaN or infinity).

    Returns:
        compact ASCII JSON that cannot end the ``<script>`` element.

    Examples:
        >>> print(script_json({"caption": "</script><b>&"}))
        {"caption":"\u003c/script\u003e\u003cb\u003e\u0026"}
    """
    s = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def render_html(data: dict[str, Any]) -> str:
    """The page for ``data`` (from :func:`viewer_data`).

    Args:
        data: :func:`viewer_data`'s result.

    Returns:
        the self-contained HTML page, ``data`` embedded with :func:`script_json`.

    Examples:
        >>> import tempfile
        >>> page = render_html(viewer_data(tempfile.mkdtemp()))
        >>> page.startswith("<!DOCTYPE html>"), '"dumps":[]' in page
        (True, True)
    """
    head, tail = _page_parts(False)
    return head + script_json(data) + tail


def _skeleton() -> dict[str, Any]:
    """The page's own data without the dumps: what every page shows whatever the folder holds."""
    return {"generator": "gpu-media viewer", "version": 1, "palette": [list(c) for c in PALETTE],
            "dumps": None, "errors": []}


def static_page() -> str:
    """``index.html`` of a dump folder: the page that loads its dumps from ``viewer/`` (the same for every folder).

    Its data element holds :func:`viewer_data`'s fields with ``"dumps": null``, which
    makes the page load the folder's list (:data:`LIST_FILES`) and the data file of each index it lists
    (:func:`update_viewer`); its CSP also allows the folder's own scripts (``'self'``
    served, ``file:`` opened from the disk).

    Returns:
        the HTML page.

    Examples:
        >>> page = static_page()
        >>> '"dumps":null' in page, "'self' file:" in page
        (True, True)
    """
    head, tail = _page_parts(True)
    return head + script_json(_skeleton()) + tail


#: ``viewer/dumps.js`` and ``viewer/<index>.js`` each call one function of the page's loader with one
#: JSON argument (:func:`script_json`), so that :func:`page_data` can read them back as JSON.
_LIST_CALL = ("gpuMediaData.list(", ");\n")
_DUMP_CALL = ("gpuMediaData.dump(", ");\n")


def _js(call: tuple[str, str], obj: Any) -> bytes:
    return (call[0] + script_json(obj) + call[1]).encode("ascii")


def _unjs(call: tuple[str, str], data: bytes) -> Any:
    text = data.decode("ascii")
    if not (text.startswith(call[0]) and text.endswith(call[1])):
        raise ValueError(f"not a {call[0]}...) file")
    return json.loads(text[len(call[0]): -len(call[1])])


def parse_data_js(data: bytes) -> Any:
    """The JSON argument of a viewer data file's bytes (a list file, :data:`LIST_FILES`, or a :func:`data_file`).

    Args:
        data: the file's bytes.

    Returns:
        ``{"files", "errors"}`` of a list file, or ``{"dump", "errors"}`` of a data file.

    Raises:
        ValueError: not such a file.

    Examples:
        >>> parse_data_js(list_js(["k_0.index.json"], []))
        {'files': ['k_0.index.json'], 'errors': []}
    """
    for call in (_LIST_CALL, _DUMP_CALL):
        if data.startswith(call[0].encode("ascii")):
            return _unjs(call, data)
    raise ValueError("not a gpu-media viewer data file")


def data_file(name: str) -> str:
    """The page's data file of index ``name``: ``viewer/<name less .index.json>.dump.js`` (``/``-separated).

    Shorter than the index's name, so its temporary name fits wherever the index's does
    (docs/SPEC.md 6.2), and never a list file (:data:`LIST_FILES`).

    Examples:
        >>> data_file("val%2Fpred_3.index.json")
        'viewer/val%2Fpred_3.dump.js'
    """
    return f"{VIEWER_DIR}/{name[: -len('.index.json')]}.dump.js"


def dump_entry(root: str, name: str) -> dict[str, Any]:
    """``{"dump": viewer_data's entry of index name, "errors": [its box files' errors]}``: a data file's content.

    Args:
        root: the dump folder.
        name: an ``*.index.json`` file in it.

    Returns:
        the entry (:func:`dump_js` writes it).

    Raises:
        OSError, ValueError, TypeError, AttributeError: the index cannot be read.

    Examples:
        >>> import tempfile
        >>> dump_entry(tempfile.mkdtemp(), "k_0.index.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: ...
    """
    errors: list = []
    return {"dump": _load_dump(root, name, {}, errors), "errors": errors}


def dump_js(entry: dict[str, Any]) -> bytes:
    r"""The bytes of a data file (:func:`data_file`): ``gpuMediaData.dump(<entry as script_json>);``.

    Examples:
        >>> dump_js({"dump": {"file": "k_0.index.json"}, "errors": []})
        b'gpuMediaData.dump({"dump":{"file":"k_0.index.json"},"errors":[]});\n'
    """
    return _js(_DUMP_CALL, entry)


def list_js(names: Iterable[str], errors: list[str], *, presorted: bool = False) -> bytes:
    r"""The bytes of a list file (:data:`LIST_FILES`): the indexes ``names`` in the page's order, ``errors``.

    Args:
        names: the index names (sorted here: :func:`sort_names`).
        errors: the indexes that cannot be read, as the page shows them.
        presorted: ``names`` is a list in the page's order already (not sorted again).

    Returns:
        ``gpuMediaData.list({"files", "errors"});`` and a newline.

    Examples:
        >>> list_js(["b_0.index.json", "a_1.index.json"], [])
        b'gpuMediaData.list({"files":["a_1.index.json","b_0.index.json"],"errors":[]});\n'
    """
    files = names if presorted and isinstance(names, list) else sort_names(names)
    return _js(_LIST_CALL, {"files": files, "errors": list(errors)})


def sort_names(names: Iterable[str]) -> list[str]:
    """Index names in the page's order: by key, then step (integers first, by value), as :func:`viewer_data` sorts.

    The key and step are read back from each name (``<enc(key)>_<enc_step(step)>.index.json``,
    docs/SPEC.md 6.3), so no index is read.

    Examples:
        >>> sort_names(["k_10.index.json", "k_9.index.json", "k_final.index.json", "a_3.index.json"])
        ['a_3.index.json', 'k_9.index.json', 'k_10.index.json', 'k_final.index.json']
    """
    return sorted(names, key=_name_order)


_ORDER: dict[str, tuple] = {}


def _name_order(name: str) -> tuple:
    got = _ORDER.get(name)
    if got is None:
        stem = name[: -len(".index.json")]
        enc_key, sep, enc_step = stem.rpartition("_")
        key = urllib.parse.unquote(enc_key if sep else stem)
        text = urllib.parse.unquote(enc_step) if sep else "0"
        step: Any = int(text) if re.fullmatch(r"-?[0-9]+", text) and str(int(text)) == text else text
        got = (key, _step_order(step), name)
        if len(_ORDER) > 1 << 16:
            _ORDER.clear()
        _ORDER[name] = got
    return got


def _index_names(root: str) -> list[str]:
    return [n for n in os.listdir(root) if n.endswith(".index.json")]


def _write_if_changed(path: str, data: bytes, durable: bool, seen: dict) -> bool:
    """Write ``path`` (atomically) unless it holds ``data`` already; True if it was written."""
    try:
        st = os.stat(path)
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen.get(path) == (sig, len(data)):  # this process wrote or checked it, and it is unchanged
            return False
        if st.st_size == len(data):
            with open(path, "rb") as f:
                if f.read() == data:
                    seen[path] = (sig, len(data))
                    return False
    except (FileNotFoundError, NotADirectoryError):
        pass
    write_atomic(path, data, overwrite=True, durable=durable)
    st = os.stat(path)
    seen[path] = ((st.st_ino, st.st_mtime_ns, st.st_size), len(data))
    return True


_PAGES_SEEN: dict = {}
#: folders ((st_dev, st_ino)) whose next update this process makes from a listing (:func:`relist_viewer`)
_RELIST: set = set()


def _folder_id(root: str) -> tuple[int, int] | None:
    try:
        st = os.stat(root)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def folder_mtime_ns(root: str) -> int | None:
    """The modification time of the folder ``root`` in ns (None if it cannot be read).

    A dump reads it under the folder's lock just before its index goes into the folder and
    hands it to :func:`update_viewer`: when the viewer's list was made at that same time
    (:func:`update_viewer` records it), nothing was added to or removed from the folder
    since, but for the dump's own index.

    Examples:
        >>> import tempfile
        >>> folder_mtime_ns(tempfile.mkdtemp()) > 0
        True
    """
    try:
        return os.stat(root).st_mtime_ns
    except OSError:
        return None


def relist_viewer(root: str) -> None:
    """Have this process's next :func:`update_viewer` of ``root`` make the list from a listing of the folder.

    For what the folder's modification time does not show: a dump that removed an index's
    data file and then failed before its index was written.

    Examples:
        >>> import tempfile
        >>> relist_viewer(tempfile.mkdtemp())
    """
    here = _folder_id(root)
    if here is not None:
        _RELIST.add(here)


#: What the lock file holds (:func:`_record`): the folder's modification time when the list was made, and the
#: list file's inode. The lock file belongs to the local folder (never written at a URL) and is held while
#: the list is written; a record that cannot be read or written only makes the next update list the folder.
_RECORD = re.compile(rb"gpu-media viewer list ([0-9]+) ([0-9]+)\n")


def _record(root: str, vdir: str) -> None:
    """Write in the folder's lock file (held) when the list now in ``vdir`` was made (:func:`update_viewer`)."""
    try:
        mtime = os.stat(root).st_mtime_ns
        ino = os.stat(os.path.join(vdir, LIST_FILES[0])).st_ino
        fd = os.open(os.path.join(root, LOCK_NAME), os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        # one length for every record, written over the last in place (a truncate costs a journal
        # transaction, 0.2 ms); a record half-written by a crash does not match, and the folder is listed
        _overwrite(fd, b"gpu-media viewer list %020d %020d\n" % (mtime, ino), False)
    except OSError:
        pass
    finally:
        os.close(fd)


def _recorded(root: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(root, LOCK_NAME), "rb") as f:
            m = _RECORD.fullmatch(f.read(80))
    except OSError:
        return None
    return (int(m.group(1)), int(m.group(2))) if m else None


def _read_list(root: str, vdir: str, before: int) -> tuple[list[str], list[str]] | None:
    """``dumps-a.js``'s ``files`` and ``errors`` if it is the list made when the folder's time was ``before``."""
    rec = _recorded(root)
    if rec is None or rec[0] != before:
        return None
    try:
        with open(os.path.join(vdir, LIST_FILES[0]), "rb") as f:
            if os.fstat(f.fileno()).st_ino != rec[1]:
                return None
            info = _unjs(_LIST_CALL, f.read())
        files, errors = info["files"], info["errors"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(files, list) and isinstance(errors, list):  # (their items: _added checks the few it uses)
        return files, errors
    return None


def update_viewer(root: str, changed: Iterable[str] = (), *, durable: bool = True, full: bool = False,
                  scan: bool | None = None, before: int | None = None) -> str:
    """Bring the viewer of the dump folder ``root`` up to date; call it under the folder's lock.

    The viewer is ``index.html`` (:func:`static_page`), the list of the folder's
    ``*.index.json``, sorted by key and step, and of the indexes that cannot be read
    (two copies, :data:`LIST_FILES`, replaced one after the other) and one
    data file per index (:func:`data_file`: its :func:`viewer_data`
    entry). The data file of each index in ``changed`` is (re)written and the list
    rewritten; ``index.html`` only when it is not the page already (docs/SPEC.md 6.1).

    Once the list is written, the folder's modification time and the list file's inode
    are recorded in the folder's lock file (local state, like the lock), and the list is
    made in one of two ways:

    * from the list there, when the record names it and the time ``before`` (the caller's
      :func:`folder_mtime_ns`, read under the lock before it wrote the indexes of
      ``changed``): those indexes are added to it (or moved to its errors when they cannot
      be read, or dropped when they are gone).
      So the work of a dump does not grow with the dumps already in the folder, but for
      the list of their names, read and written whole (about 0.7 ms for 5,000 indexes);
    * otherwise (``scan``, or the folder changed otherwise: a dump without the viewer, an
      index added or removed by hand, or no list that can be read) from a listing of the
      folder: every ``*.index.json`` there, and the data file written of every index in
      ``changed`` and of every index that has none.

    ``full`` rewrites every data file and removes those whose index is gone (``gpu-media
    view --rebuild``). Every file is written to a temporary name and renamed into place
    (and fsynced with ``durable``).

    Args:
        root: the dump folder (absolute).
        changed: names of indexes written since the viewer was last brought up to date.
        durable: fsync the files written, then their folders.
        full: rebuild every data file.
        scan: make the list from a listing of the folder (True), or decide as above (None).
        before: :func:`folder_mtime_ns` of ``root`` read before the indexes of ``changed``
            were written, under the same hold of the lock; None: the folder is listed.

    Returns:
        the path of ``index.html``.

    Raises:
        OSError: the disk (the dump itself is complete: :func:`gpu_media.dump.write_dump`
            turns this into a :class:`gpu_media.errors.ViewerWarning`).

    Examples:
        >>> import os, tempfile
        >>> from gpu_media.fileio import folder_lock
        >>> root = tempfile.mkdtemp()
        >>> with folder_lock(root):
        ...     path = update_viewer(root, durable=False)
        >>> sorted(os.listdir(root)), sorted(os.listdir(os.path.join(root, "viewer")))
        (['.gpu-media.lock', 'index.html', 'viewer'], ['dumps-a.js', 'dumps-b.js'])
        >>> page_data(root)["dumps"]
        []
    """
    vdir = os.path.join(root, VIEWER_DIR)
    here = _folder_id(root)
    relist = here in _RELIST
    _RELIST.discard(here)
    if full:  # the temporary files of a rebuild that was killed (a dump's go with its claim: gpu_media.dump)
        remove_stale_temps([root, vdir])
    added = None
    if not (full or scan or relist or before is None):
        have_list = _read_list(root, vdir, before)
        if have_list is not None:
            with contextlib.suppress(TypeError, AttributeError):  # a list that is not the page's (not str names)
                added = _added(root, vdir, have_list, changed, durable)
    if added is None:
        listed, errors, new_vdir = _listed(root, vdir, set(changed), full, durable)
    else:
        (listed, errors), new_vdir = added, False
    path = os.path.join(root, INDEX_HTML)
    wrote_page = _write_if_changed(path, static_page().encode("utf-8"), durable, _PAGES_SEEN)
    _write_lists(vdir, list_js(listed, errors, presorted=True), durable)
    if durable:
        fsync_dir(vdir)
        if wrote_page or new_vdir:
            fsync_dir(root)
    _record(root, vdir)  # after the last change this update makes to the folder itself
    return path


def _listed(root: str, vdir: str, changed: set[str], full: bool, durable: bool) -> tuple[list[str], list[str], bool]:
    """:func:`update_viewer` from a listing of ``root``: (the indexes, the errors, whether ``viewer/`` was new)."""
    names = _index_names(root)
    try:
        have = set(os.listdir(vdir))
    except FileNotFoundError:
        have = set()
    except NotADirectoryError:
        raise NotADirectoryError(f"{vdir}: the viewer's folder is not a folder") from None
    listed, errors = [], []
    for name in names:
        js = name[: -len(".index.json")] + ".dump.js"  # data_file(name) in viewer/ (inline: once per index)
        if full or name in changed or js not in have:
            try:
                entry = dump_entry(root, name)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                errors.append(f"{name}: cannot read ({exc})")
                if js in have:  # the data of an index that is broken now
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(vdir, js))
                continue
            write_atomic(os.path.join(vdir, js), dump_js(entry), overwrite=True, durable=durable)
        listed.append(name)
    if full:  # the data of indexes that are gone
        keep = {data_file(n)[len(VIEWER_DIR) + 1:] for n in listed}
        for n in have - keep:
            if n.endswith(".dump.js"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(vdir, n))
    return sort_names(listed), errors, not have


def _added(root: str, vdir: str, have_list: tuple[list[str], list[str]], changed: Iterable[str],
           durable: bool) -> tuple[list[str], list[str]]:
    """:func:`update_viewer` from the list there: ``changed`` written and added (the list stays sorted)."""
    listed, errors = have_list
    for name in sorted(set(changed)):
        js = os.path.join(vdir, name[: -len(".index.json")] + ".dump.js")
        mark = f"{name}: "
        errors = [e for e in errors if not e.startswith(mark)]  # (TypeError where one is not a str)
        try:
            entry = dump_entry(root, name)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            if name in listed:
                listed.remove(name)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(js)
            if not isinstance(exc, FileNotFoundError) or os.path.lexists(os.path.join(root, name)):
                errors.append(f"{name}: cannot read ({exc})")  # (an index that is gone: no longer listed)
            continue
        write_atomic(js, dump_js(entry), overwrite=True, durable=durable)
        if name not in listed:  # (bisect: TypeError where a name it meets is not a str)
            listed.insert(bisect.bisect_left(listed, _name_order(name), key=_name_order), name)
    return listed, errors


def _write_lists(vdir: str, data: bytes, durable: bool) -> None:
    """Both list files rewritten in place, ``dumps-b.js`` then ``dumps-a.js``: one of them whole at every moment.

    With ``durable`` each is fsynced before the other is touched. No new file is made (but
    the first time): on a busy ext4, making and linking files costs ~10x the writes.
    """
    first, second = (os.path.join(vdir, n) for n in LIST_FILES)
    try:
        fd = _open_copy(second)
    except FileNotFoundError:  # no viewer/ yet
        os.makedirs(vdir, exist_ok=True)
        fd = _open_copy(second)
    try:
        st = os.fstat(fd)
        with contextlib.suppress(OSError):
            other = os.lstat(first)
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):  # one file by two names (older gpu-media's
                os.close(fd)  # link): the second made a file of its own, so that the first stays whole meanwhile
                fd = -1
                os.unlink(second)
                fd = _open_copy(second)
        _overwrite(fd, data, durable)
    finally:
        if fd >= 0:
            os.close(fd)
    fd = _open_copy(first)
    try:
        _overwrite(fd, data, durable)
    finally:
        os.close(fd)


def _open_copy(path: str) -> int:
    """A list file opened for writing in place (created if missing); a symbolic link there is replaced, not followed."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        if not os.path.islink(path):
            raise
    os.unlink(path)  # (ELOOP: not a file gpu-media wrote)
    return os.open(path, flags | os.O_EXCL, 0o644)


def _overwrite(fd: int, data: bytes, durable: bool) -> None:
    """``data`` written over the file ``fd`` from its start, the file cut to its length, fsynced with ``durable``."""
    view, done = memoryview(data), 0
    while done < len(data):
        if hasattr(os, "pwrite"):
            done += os.pwrite(fd, view[done:], done)
        else:  # Windows
            os.lseek(fd, done, os.SEEK_SET)
            done += os.write(fd, view[done:])
    if os.fstat(fd).st_size != len(data):  # (a truncate costs a journal transaction: only when it is shorter)
        os.ftruncate(fd, len(data))
    if durable:
        os.fsync(fd)


def forget_viewer_data(root: str, name: str) -> None:
    """Remove the page's data file of index ``name`` (:func:`data_file`), if there (its index was rewritten).

    Called when an index is written without updating the viewer, so that the next update
    (:func:`update_viewer`) writes the data again instead of showing the old index's.

    Examples:
        >>> import tempfile
        >>> forget_viewer_data(tempfile.mkdtemp(), "k_0.index.json")  # none: nothing to do
    """
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        os.unlink(os.path.join(root, *data_file(name).split("/")))


def page_data(out_dir: str | os.PathLike) -> dict[str, Any]:
    """What the folder's ``index.html`` shows: its data files read back as the page reads them.

    The same as :func:`viewer_data` of the folder once the viewer is up to date (the
    errors may come in another order); for tests and for looking at a folder's viewer
    without a browser.

    Args:
        out_dir: a dump folder with a viewer (:func:`update_viewer`).

    Returns:
        ``{"generator", "version", "palette", "dumps", "errors"}`` as the page assembles it.

    Examples:
        >>> import tempfile
        >>> page_data(tempfile.mkdtemp())["errors"]  # no viewer there  # doctest: +ELLIPSIS
        ['viewer/dumps-a.js and viewer/dumps-b.js is missing or unreadable: `gpu-media view <folder> --rebuild` ...']
    """
    root = os.path.abspath(os.fspath(out_dir))
    vdir = os.path.join(root, VIEWER_DIR)
    out = _skeleton()
    out["dumps"] = []
    info = None
    for n in LIST_FILES:  # the first that can be read, as the page takes it
        try:
            with open(os.path.join(vdir, n), "rb") as f:
                info = _unjs(_LIST_CALL, f.read())
            break
        except (OSError, ValueError):
            continue
    if info is None:
        out["errors"].append("viewer/dumps-a.js and viewer/dumps-b.js is missing or unreadable: `gpu-media view "
                             "<folder> --rebuild` writes it")
        return out
    for name in info["files"]:
        try:
            with open(os.path.join(root, *data_file(name).split("/")), "rb") as f:
                entry = _unjs(_DUMP_CALL, f.read())
        except (OSError, ValueError):
            out["errors"].append(f"{name}: {data_file(name)} is missing or unreadable: `gpu-media view <folder> "
                                 "--rebuild` writes it")
            continue
        out["dumps"].append(entry["dump"])
        out["errors"].extend(entry["errors"])
    out["errors"].extend(info["errors"])
    return out


def write_viewer(out_dir: str | os.PathLike) -> str:
    """(Re)write the viewer of ``out_dir`` from every ``*.index.json`` there; returns the path of ``index.html``.

    Every data file is written again (:func:`update_viewer` with ``full=True``), under
    the folder's inter-process lock (:func:`gpu_media.fileio.folder_lock`, as every
    dump's last step), so a viewer written while dumps finish in the same folder lists
    them all (docs/SPEC.md 6.4). A folder without any index still gets a page (saying
    so), so it can be opened before the first dump.

    Args:
        out_dir: the dump folder.

    Returns:
        the path of ``index.html``.

    Raises:
        NotADirectoryError: ``out_dir`` is not a folder.

    Examples:
        >>> import os, tempfile
        >>> path = write_viewer(tempfile.mkdtemp())
        >>> os.path.basename(path), os.path.getsize(path) > 1000
        ('index.html', True)
    """
    root = os.path.abspath(os.fspath(out_dir))
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{out_dir!r} is not a folder")
    with folder_lock(root):
        return write_viewer_locked(root)


def write_viewer_locked(root: str, *, durable: bool = True) -> str:
    """:func:`write_viewer` for a caller that already holds ``root``'s :func:`~gpu_media.fileio.folder_lock`.

    Args:
        root: the dump folder (absolute).
        durable: fsync the files and the folders (see :func:`gpu_media.fileio.write_atomic`).

    Returns:
        the path of ``index.html``.

    Examples:
        >>> import tempfile
        >>> from gpu_media.fileio import folder_lock
        >>> root = tempfile.mkdtemp()
        >>> with folder_lock(root):
        ...     path = write_viewer_locked(root, durable=False)
        >>> path.endswith("index.html")
        True
    """
    return update_viewer(root, durable=durable, full=True)


def find_chromium() -> str | None:
    """The Chromium executable for browser tests and screenshots, or None.

    ``$GPU_MEDIA_CHROMIUM`` when set, else ``/usr/bin/chromium`` (Debian's package
    ``chromium``), else ``chromium`` or ``chromium-browser`` on ``PATH``.

    Returns:
        the executable's path, or None when there is none.

    Examples:
        >>> path = find_chromium()
        >>> path is None or isinstance(path, str)
        True
    """
    env = os.environ.get("GPU_MEDIA_CHROMIUM")
    if env:
        return env
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


#: Command-line switches for headless Chromium: no sandbox (root in containers), no
#: GPU, nothing that reaches the network, colours as the files say.
CHROMIUM_ARGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--force-color-profile=srgb",
)


class _BadRequest(Exception):
    """A request path that is not a file name (undecodable, a NUL byte)."""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """The dump folder's regular files, confined to it (see :func:`serve`), without a log line per request."""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def _host_ok(self) -> bool:
        """True when the ``Host`` header names this server as a local name (no DNS rebinding)."""
        host = self.headers.get("Host")
        if host is None:
            self.send_error(http.HTTPStatus.BAD_REQUEST, "No Host header")
            return False
        if host.strip().lower() not in self.server.allowed_hosts:
            self.send_error(http.HTTPStatus.MISDIRECTED_REQUEST, "Host not served here")
            return False
        return True

    def _file(self) -> str | None:
        """The real path of the regular file the URL names inside the dump, or None (404).

        Raises:
            _BadRequest: the path does not decode to a file name.
        """
        raw = self.path.split("?", 1)[0].split("#", 1)[0]
        try:
            rel = urllib.parse.unquote(raw, errors="strict")
        except UnicodeDecodeError:
            raise _BadRequest("path is not UTF-8") from None
        if "\0" in rel or not rel.startswith("/"):
            raise _BadRequest("not a file path")
        parts = [p for p in rel.split("/") if p]
        if any(p.startswith(".") or p.endswith(".tmp") for p in parts):
            return None  # dotfiles (the lock, temporary files), "..", temporary names
        root = self.server.real_root
        path = os.path.realpath(os.path.join(root, *parts))
        if os.path.isdir(path):
            path = os.path.realpath(os.path.join(path, INDEX_HTML))
        if os.path.commonpath([root, path]) != root:
            return None  # a symlink (of the file or a folder on the way) out of the dump
        if any(p.startswith(".") for p in os.path.relpath(path, root).split(os.sep)):
            return None  # a symlink to a hidden file of the dump
        return path

    def send_head(self):
        """Headers for the confined file and the open file object, or None after an error response."""
        if not self._host_ok():
            return None
        try:
            path = self._file()
        except _BadRequest as exc:
            self.send_error(http.HTTPStatus.BAD_REQUEST, str(exc))
            return None
        if path is None:
            self.send_error(http.HTTPStatus.NOT_FOUND, "Not found")
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except (OSError, ValueError):
            self.send_error(http.HTTPStatus.NOT_FOUND, "Not found")
            return None
        f = os.fdopen(fd, "rb")
        try:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # a FIFO, a device, a folder swapped in
                f.close()
                self.send_error(http.HTTPStatus.NOT_FOUND, "Not found")
                return None
            self.send_response(http.HTTPStatus.OK)
            self.send_header("Content-type", self.guess_type(path))
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise


class _Server(http.server.ThreadingHTTPServer):
    """The server of :func:`serve`: the dump's real path and the ``Host`` values it answers."""

    daemon_threads = True

    def __init__(self, address, handler, root: str) -> None:
        super().__init__(address, handler)
        self.real_root = os.path.realpath(root)
        port = self.server_address[1]
        names = ["127.0.0.1", "localhost", "[::1]"]
        bound = address[0]
        if bound not in ("", "0.0.0.0", "::"):  # an explicit address answers to its own name too
            names.append(f"[{bound}]" if ":" in bound else bound)
        self.allowed_hosts = {f"{n.lower()}:{port}" for n in names}
        if port == 80:  # the default port, which browsers leave out of Host
            self.allowed_hosts |= {n.lower() for n in names}


def serve(out_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server for ``out_dir`` on ``host:port`` (0: any free port), not yet serving.

    It serves the folder's regular files; ``/`` gives ``index.html``, and a folder URL
    without an ``index.html`` is 404 (no directory listings). Confined to the dump:

    * a file whose real path is outside ``out_dir`` (a symlinked file, a file under a
      symlinked folder) is 404, as are FIFOs, devices and other non-regular files;
    * hidden names (a path segment starting with ``.``: the ``.gpu-media.lock``,
      :func:`gpu_media.fileio.write_atomic`'s temporary files, ``..``) and ``*.tmp`` are 404;
    * a path that does not decode to a file name (``%00``, bytes that are not UTF-8) is 400;
    * the ``Host`` header must be ``127.0.0.1:PORT``, ``localhost:PORT`` or ``[::1]:PORT``
      (or ``host:PORT`` for an explicit ``host``), else 421 Misdirected Request, and a
      request without one is 400: a web page on another name that resolves to 127.0.0.1
      (DNS rebinding) cannot read the dump.

    Call ``serve_forever()`` (in a thread, say) and ``shutdown()`` / ``server_close()``;
    the port is ``server.server_address[1]``.

    Args:
        out_dir: the folder to serve.
        host: the address to listen on.
        port: the port, 0 for any free one.

    Returns:
        the server, bound but not serving yet.

    Raises:
        NotADirectoryError: ``out_dir`` is not a folder.
        OSError: the address cannot be bound.

    Examples:
        >>> import tempfile, threading, urllib.request
        >>> folder = tempfile.mkdtemp()
        >>> _ = write_viewer(folder)
        >>> server = serve(folder)
        >>> threading.Thread(target=server.serve_forever, daemon=True).start()
        >>> with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/") as r:
        ...     r.status, r.read(15)
        (200, b'<!DOCTYPE html>')
        >>> server.shutdown(); server.server_close()
    """
    root = os.path.abspath(os.fspath(out_dir))
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{out_dir!r} is not a folder")
    return _Server((host, port), functools.partial(_Handler, directory=root), root)


def view(out_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0, *, rewrite: bool = False,
         stream: TextIO | None = None) -> int:
    """Bring the viewer up to date, print its URL and serve until Ctrl-C; returns 0.

    ``gpu-media view``; ``out_dir``, ``host`` and ``port`` as for :func:`serve`,
    ``stream`` where the URL is printed (stdout). The viewer is written whole
    (:func:`write_viewer`) when ``index.html`` is missing or with ``rewrite``; else its
    list is made from a listing of the folder (:func:`update_viewer` with ``scan``), so
    it names the indexes written without the viewer too; in a folder that cannot be
    written, the page is served as it is (a line on ``stream`` says so). It serves
    until interrupted, so it has no example here (``tests/test_viewer.py`` runs it).
    """
    stream = sys.stdout if stream is None else stream
    if rewrite or not os.path.exists(os.path.join(os.fspath(out_dir), INDEX_HTML)):
        write_viewer(out_dir)
    else:
        root = os.path.abspath(os.fspath(out_dir))
        try:
            with folder_lock(root):
                update_viewer(root, scan=True)
        except OSError as exc:
            print(f"gpu-media: the viewer's list was not brought up to date ({exc.strerror or exc}); serving it "
                  "as it is", file=stream, flush=True)
    server = serve(out_dir, host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"http://{shown}:{server.server_address[1]}/{INDEX_HTML}", file=stream, flush=True)
    print("serving; Ctrl-C stops", file=stream, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
