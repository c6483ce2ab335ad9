"""``to_wandb``: gpu_media's encoded files handed to wandb without re-encoding."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from typing import Any, Mapping, Sequence

from .dump import DumpOptions, encode_chunk, prepare
from .dump.pipeline import chunks

_TMP = {}


def _tmp_dir() -> str:
    if "dir" not in _TMP:
        _TMP["dir"] = tempfile.mkdtemp(prefix="gpu-media-wandb-")
        atexit.register(shutil.rmtree, _TMP["dir"], True)
    return _TMP["dir"]


def _write(data: bytes, ext: str) -> str:
    path = os.path.join(_tmp_dir(), uuid.uuid4().hex + ext)
    with open(path, "wb") as f:
        f.write(data)
    return path


def to_wandb(images: Any, *, masks: Mapping[str, Mapping[str, Any]] | None = None, boxes: Any = None,
             captions: Sequence[str | None] | None = None, classes: Any = None, file_type: str = "png",
             quality: int = 75, compression_level: int | None = None, draw_boxes: bool = False,
             normalize: bool = True, layout: str | None = None, device: str = "auto", thickness: int = 2,
             colors: Mapping[int, Sequence[int]] | None = None) -> list[Any]:
    """A list of ``wandb.Image`` built from gpu_media's own encoded files.

    ``run.log({"val": gpu_media.to_wandb(batch, masks=..., boxes=...)})`` logs what
    wandb would have logged for the same pixels, but the whole batch is
    normalized, checked and encoded by gpu_media (docs/SPEC.md 1-5) and wandb only moves
    the finished files into the run (it does not decode-and-re-encode them).

    wandb logs at most the first 108 images of a list under one key
    (``wandb.Image.MAX_ITEMS``; it warns and drops the rest). To log more, split the
    list over several keys, ``run.log({f"val/{k // 108}": imgs[k:k + 108] for k in
    range(0, len(imgs), 108)})``, or log a ``wandb.Table`` with one image per row,
    ``wandb.Table(columns=["image"], data=[[im] for im in imgs])``.
    :func:`gpu_media.write_dump` keeps every image.

    Args:
        images: a batch as for :func:`gpu_media.normalize` (N images).
        masks: as for :func:`gpu_media.write_dump`.
        boxes: as for :func:`gpu_media.write_dump` (either form of :func:`gpu_media.draw_boxes`).
        captions: as for :func:`gpu_media.write_dump`.
        classes: as for :func:`gpu_media.write_dump`; also passed to ``wandb.Image``.
        file_type: as for :func:`gpu_media.encode`.
        quality: as for :func:`gpu_media.encode`.
        compression_level: as for :func:`gpu_media.encode` (``compression_level=6``
            gives the very bytes ``wandb.Image`` would write).
        draw_boxes: as for :func:`gpu_media.write_dump`.
        normalize: as for :func:`gpu_media.normalize`.
        layout: as for :func:`gpu_media.normalize`.
        device: as for :func:`gpu_media.normalize`.
        thickness: as for :func:`gpu_media.draw_boxes`.
        colors: as for :func:`gpu_media.draw_boxes`.

    Returns:
        list of N ``wandb.Image``, each with its caption, its masks (as
        ``ImageMask``: ``mask_data`` with the key's class labels, or wandb's default
        ``{c: "class_<c>"}`` for the values in that image's mask; a ``{"path": file}``
        mask as wandb's path form, the file's bytes unchanged) and its boxes (wandb's
        ``box_data`` form, with ``class_labels`` when given). Files wait in a temporary folder until wandb moves
        them into the run; the folder is removed when the process exits.

    Raises:
        ImportError: wandb is not installed (``pip install ".[wandb]"``).
        gpu_media.ImageError, MaskError, BoxError, MediaError: bad input, before
            anything is encoded.

    Examples:
        Needs wandb (``pip install ".[wandb]"``); no run is needed to build the images:

        >>> import numpy as np
        >>> import wandb
        >>> import gpu_media
        >>> masks = {"pred": {"mask_data": np.ones((2, 8, 8), np.uint8), "class_labels": {1: "car"}}}
        >>> imgs = gpu_media.to_wandb(np.zeros((2, 8, 8, 3), np.uint8), masks=masks, captions=["a", "b"])
        >>> len(imgs), isinstance(imgs[0], wandb.Image), imgs[0].format, imgs[0].image.size
        (2, True, 'png', (8, 8))
    """
    try:
        import wandb
        from wandb.sdk.data_types.helper_types.image_mask import ImageMask
    except ImportError as exc:
        raise ImportError('gpu_media.to_wandb needs wandb: pip install ".[wandb]"') from exc
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, normalize=normalize, layout=layout, device=device,
                          thickness=thickness, colors=colors, classes=classes)
    plan = prepare(images, options, masks=masks, boxes=boxes, captions=captions)
    given_labels = {ms.key: ms.class_labels for ms in plan.masks}
    out = []
    for lo, hi in chunks(plan):
        for rec in encode_chunk(plan, lo, hi):
            i = rec["index"]
            wmasks = {}
            for key, data in rec["masks"].items():
                ext = rec["mask_ext"].get(key)
                if ext is not None:
                    # {"path": file}: wandb's own ImageMask of that form (no labels, named with the
                    # file's extension); only the file it moves into the run is our copy of the bytes
                    m = ImageMask({"path": _write(data, ext)}, key)
                    m._is_tmp = True
                    wmasks[key] = m
                    continue
                path = _write(data, ".mask.png")
                m = ImageMask({"path": path}, key)
                # wandb moves (not copies) the file into the run, named like its own masks
                m._set_file(path, is_tmp=True, extension=".mask.png")
                # the path form of ImageMask keeps no labels; give it what mask_data would have:
                # the labels given, else wandb's {c: "class_<c>"} for the values in this image's mask
                labels = given_labels[key]
                if labels is None:
                    labels = {c: f"class_{c}" for c in plan.report[i][key]}
                m._key = key
                m._val = {"class_labels": dict(labels)}
                wmasks[key] = m
            per = plan.boxes.per_image[i] if plan.boxes is not None else {}
            wboxes = {}
            for k, v in per.items():  # class_labels only when given: wandb then makes its defaults itself
                wboxes[k] = {"box_data": v["box_data"]}
                if "class_labels" in v:
                    wboxes[k]["class_labels"] = {int(c): n for c, n in v["class_labels"].items()}
            img = wandb.Image(_write(rec["image"], "." + options.file_type), caption=plan.captions[i],
                              masks=wmasks or None, boxes=wboxes or None,
                              classes=None if options.classes is None else
                              [{"id": c, "name": v} for c, v in options.classes.items()])
            img._is_tmp = True
            out.append(img)
    return out
