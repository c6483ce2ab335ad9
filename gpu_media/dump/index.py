"""A dump's JSON: wandb's ``image-file`` and ``images/separated`` JSON, the index, label merging (docs/SPEC.md 6.1).

:func:`image_json` also writes one image's files (content-addressed names under
:data:`~gpu_media.dump.layout.IMAGE_DIR`, ``MASK_DIR``, ``BOX_DIR``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..fileio import relative_path, write_atomic
from .layout import BOX_DIR, IMAGE_DIR, MASK_DIR
from .options import DumpOptions

if TYPE_CHECKING:
    from .pipeline import Plan


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the dump writes its JSON files: compact, UTF-8, non-ASCII kept.

    Examples:
        >>> json_bytes({"a": [1, "b"], "c": None})
        b'{"a":[1,"b"],"c":null}'
    """
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@functools.lru_cache(maxsize=256)
def _prefix(subdir: str, stem: str) -> str:
    """``<subdir>/<stem>_`` without empty parts: the start of the dump's file names in ``subdir``.

    "a//b" is the folder a/b, and wandb's JSON path is os.path.relpath's (the digest and
    the extension that follow hold no ``/``).
    """
    return "/".join(p for p in f"{subdir}/{stem}_".split("/") if p)


def _file_entry(root, subdir, stem, ext, data, write=True, put=None) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    rel = f"{_prefix(subdir, stem)}{sha[:20]}{ext}"
    if write:
        if put is not None:  # the dump's writer (fileio.FolderWriter) or another sink (gpu_media.storage)
            put(rel, data)
        else:  # inside ``root``: ``stem``'s folders were checked once per dump (layout.file_stem), and the
            # name adds only a hex digest and an extension. write_atomic makes a missing folder itself.
            write_atomic(os.path.join(root, *rel.split("/")), data)
    return {"sha256": sha, "size": len(data), "path": rel}


def image_json(rec: dict, root: str, stem: str, plan: Plan, put: Callable[[str, bytes], None] | None = None) -> dict:
    """Write one record's files; return wandb's ``image-file`` JSON for it.

    ``stem`` is :func:`~gpu_media.dump.layout.file_stem`'s, whose folders it checked to
    stay inside ``root``; the files' names add only a hex digest and an extension, so
    they are not checked again here. ``put(rel, data)``, when given, writes each file
    instead of :func:`write_atomic` under ``root`` (``rel`` is the ``/``-separated path in the dump, as in the JSON;
    :meth:`gpu_media.fileio.FolderWriter.write` of the dump's folder, :meth:`gpu_media.storage.Output.put`).

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> from gpu_media.dump import encode_chunk, prepare
        >>> plan = prepare(np.zeros((1, 2, 2, 3), np.uint8), DumpOptions(device="cpu"), captions=["c"])
        >>> entry = image_json(encode_chunk(plan, 0, 1)[0], tempfile.mkdtemp(), "val_0", plan)
        >>> entry["caption"], entry["_type"], entry["path"].startswith("media/images/val_0_"), entry["width"]
        ('c', 'image-file', True, 2)
    """
    file_type = plan.options.file_type
    img = _file_entry(root, IMAGE_DIR, stem, "." + file_type, rec["image"], put=put)
    out = {}
    if plan.captions[rec["index"]] is not None:
        out["caption"] = plan.captions[rec["index"]]
    out.update({"_type": "image-file", **img, "format": file_type, "width": rec["width"], "height": rec["height"]})
    if rec["boxes"]:
        out["boxes"] = {k: {"_type": "boxes2D", **_file_entry(root, BOX_DIR, stem, ".boxes2D.json", b, put=put)}
                        for k, b in rec["boxes"].items()}
    if rec["masks"]:
        exts = rec.get("mask_ext", {})
        out["masks"] = {k: {"_type": "mask", **_file_entry(root, MASK_DIR, stem, exts.get(k, ".mask.png"), m,
                                                                 put=put)}
                        for k, m in rec["masks"].items()}
    return out


def separated_json(dicts: list[dict], captions: list[str | None]) -> dict:
    """The ``images/separated`` JSON of wandb for a list of image-file dicts (``Image.seq_to_json``).

    Examples:
        >>> d = {"path": "media/images/k_0_x.png", "width": 4, "height": 2, "format": "png"}
        >>> separated_json([d, d], ["a", "b"])["count"], separated_json([d], [None]).get("captions")
        (2, None)
    """
    meta = {"_type": "images/separated", "width": dicts[0]["width"], "height": dicts[0]["height"],
            "format": dicts[0]["format"], "count": len(dicts), "filenames": [d["path"] for d in dicts]}
    if captions and captions[0] is not None:
        meta["captions"] = list(captions)
    all_masks = [d.get("masks") for d in dicts]
    if any(m is not None for m in all_masks):
        meta["all_masks"] = all_masks
    all_boxes = [d.get("boxes") for d in dicts]
    if any(b is not None for b in all_boxes):
        meta["all_boxes"] = all_boxes
    return meta


def merge_labels(parts: Sequence[Mapping[str, Mapping[int, str]]]) -> dict[str, dict[int, str]]:
    """The class labels of a whole dump from its parts': those one batch of all the images would have.

    Labels the caller gave are the same in every part and keep their order. Labels
    made by wandb's rule from the ids present (``class_<c>``, sorted by id) differ
    between parts; their union is sorted by id, as the rule sorts them for one batch.
    So :func:`gpu_media.dump.write_dump_batches` and :func:`gpu_media.ray.write_dump_dataset` write
    the index :func:`gpu_media.dump.write_dump` writes for the same images.

    Args:
        parts: each part's ``{key: {class id: name}}``, in order.

    Returns:
        ``{key: {class id: name}}``, keys in order of first appearance.

    Examples:
        >>> merge_labels([{"m": {0: "class_0", 2: "class_2"}}, {"m": {1: "class_1"}}])
        {'m': {0: 'class_0', 1: 'class_1', 2: 'class_2'}}
        >>> merge_labels([{"m": {5: "car", 1: "bus"}}, {"m": {5: "car", 1: "bus"}}])
        {'m': {5: 'car', 1: 'bus'}}
    """
    out: dict[str, dict[int, str]] = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        seen = [p[key] for p in parts if key in p]
        merged: dict[int, str] = {}
        for lab in seen:
            merged.update(lab)
        if any(lab != seen[0] for lab in seen):
            merged = dict(sorted(merged.items()))
        out[key] = merged
    return out


def index_json(key: str, step: int | str, dicts: list, captions: list, report: list, mask_labels: dict,
               box_labels: dict, options: DumpOptions, evaluation: dict | None = None) -> dict:
    """The index of a dump (SPEC 6.1) from what its parts gave, in image order.

    Args:
        key: the dump's log key.
        step: the dump's step (a plain int or a str).
        dicts: every image's ``image-file`` dict (:func:`image_json`).
        captions: every image's caption (str or None).
        report: every image's ``{mask key: {class id (int): pixel count}}``.
        mask_labels: ``{mask key: {class id (int): name}}`` of the whole dump.
        box_labels: ``{box key: {class id (int): name}}`` of the whole dump.
        options: the dump's options (``classes``, ``draw_boxes``).
        evaluation: the index's ``eval`` section (docs/SPEC.md 6.6), or None for none
            (the key is then absent).

    Returns:
        the JSON object (a dict) that :func:`gpu_media.dump.write_batches` writes to the index file.

    Examples:
        >>> index = index_json("k", 0, [{"width": 2, "height": 2, "format": "png", "path": "p"}], [None], [{}],
        ...                    {}, {}, DumpOptions())
        >>> index["count"], index["separated"]["filenames"], index["classes"]
        (1, ['p'], None)
    """
    cls = options.classes
    index = {
        "_type": "gpu-media/dump", "version": 1, "key": key, "step": step, "count": len(dicts),
        "images": dicts,
        "separated": separated_json(dicts, captions),
        "mask_class_labels": {k: {str(c): v for c, v in lab.items()} for k, lab in mask_labels.items()},
        "box_class_labels": {k: {str(c): v for c, v in lab.items()} for k, lab in box_labels.items()},
        "classes": None if cls is None else [{"id": c, "name": v} for c, v in cls.items()],
        "mask_report": [{k: {str(c): v for c, v in r.items()} for k, r in rep.items()} for rep in report],
        "boxes_drawn": options.draw_boxes,
    }
    if evaluation is not None:
        index["eval"] = evaluation
    return index


def paths_of(index: Any) -> set[str]:
    """The relative paths of the files an index names (images, masks, boxes2D JSON) under ``media/``.

    Anything else in a hand-edited index is never touched.

    Args:
        index: a parsed index (any JSON value; what is not an index names nothing).

    Returns:
        the ``/``-separated paths, relative to the dump folder.

    Examples:
        >>> entry = {"path": "media/images/k_0_a.png", "masks": {"m": {"path": "media/images/mask/k_0_b.mask.png"}}}
        >>> sorted(paths_of({"images": [entry, {"path": "../etc/passwd"}]}))
        ['media/images/k_0_a.png', 'media/images/mask/k_0_b.mask.png']
    """
    out = set()
    images = index.get("images") if isinstance(index, dict) else None
    for d in images if isinstance(images, list) else []:
        if not isinstance(d, dict):
            continue
        entries = [d]
        for kind in ("masks", "boxes"):
            if isinstance(d.get(kind), dict):
                entries.extend(v for v in d[kind].values() if isinstance(v, dict))
        for e in entries:
            p = e.get("path")
            if relative_path(p) and p.startswith("media/"):
                out.add(p)
    return out
