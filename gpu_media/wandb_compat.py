"""``to_wandb``: gpu_media's encoded files handed to wandb without re-encoding."""

from __future__ import annotations

import atexit
import copy
import hashlib
import io
import os
import shutil
import tempfile
import threading
import uuid
from typing import Any, Mapping, Sequence

from .dump import DumpOptions, encode_chunk, prepare
from .dump.pipeline import chunks, run

_TMP = {}
_FAST: dict = {}  # wandb.Image class -> the prototype of the fast constructor, or None (plain constructor)
_FAST_LOCK = threading.Lock()


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


def _written(rec: dict, ext: str) -> dict:
    """One record's files written to the temporary folder (in a worker or writer thread).

    Returns ``{"image": (path, sha256 hex, size), "masks": {key: path}}``: the image's
    digest is taken here, from the bytes in memory, so that wandb need not read the file
    back (hashlib and file writes release the GIL).
    """
    data = rec["image"]
    masks = {}
    for key, mdata in rec["masks"].items():
        masks[key] = _write(mdata, rec["mask_ext"].get(key) or ".mask.png")
    return {"image": (_write(data, ext), hashlib.sha256(data).hexdigest(), len(data)), "masks": masks}


def _from_file(wandb: Any, proto: Any, path: str, data: bytes, sha256: str, fmt: str, caption: str | None = None,
               **meta: Any) -> Any:
    """``wandb.Image(path, **meta)`` without decoding the file: what the plain constructor gives.

    wandb's constructor from a path opens and decodes the whole image (``PIL.Image.load``),
    then reads the file back for its sha256, only to learn its size and digest; the pixels are
    dropped. Here ``wandb.Image(template, **meta)`` (wandb's supported copy constructor) takes
    those fields from a copy of ``proto`` (a plain ``wandb.Image`` of another file) given this
    file's path, digest, size, format and a lazily opened PIL image of ``data`` (only its header
    is read; the pixels decode if someone asks for them). That image is kept on the result, so
    that ``run.log`` reads the size from it instead of decoding the file again.
    """
    from PIL import Image as PILImage

    lazy = PILImage.open(io.BytesIO(data))
    template = copy.copy(proto)
    template._path, template._sha256, template._size = path, sha256, len(data)
    template._is_tmp, template._extension, template.format = True, None, fmt
    template._image = lazy
    template._caption = caption  # the copy constructor takes the caption from the template, not the argument
    img = wandb.Image(template, caption=caption, **meta)
    img._image = lazy
    return img


def _fast_prototype(wandb: Any) -> Any:
    """A plain ``wandb.Image`` to copy in :func:`_from_file`, or None where the installed wandb differs.

    Checked once per process against the installed wandb: an image made by :func:`_from_file`
    must have every attribute of the plain ``wandb.Image(path)`` of the same file (and the same
    image size and mode); otherwise (a wandb that builds its images differently) ``to_wandb``
    uses the plain constructor.
    """
    with _FAST_LOCK:
        if wandb.Image not in _FAST:
            _FAST[wandb.Image] = _check_fast(wandb)
        return _FAST[wandb.Image]


def _png(mode: str, size: tuple[int, int]) -> bytes:
    from PIL import Image as PILImage

    buf = io.BytesIO()
    im = PILImage.new(mode, size)
    im.putpixel((0, 0), 7 if mode == "L" else (1, 2, 3))
    im.save(buf, format="PNG")
    return buf.getvalue()


def _check_fast(wandb: Any) -> Any:
    paths = []
    try:
        a, b = _png("L", (1, 1)), _png("RGB", (3, 2))
        paths = [_write(a, ".png"), _write(b, ".png")]
        proto = wandb.Image(paths[0])
        plain = wandb.Image(paths[1], caption="c")
        plain._is_tmp = True  # as to_wandb sets it
        fast = _from_file(wandb, proto, paths[1], b, hashlib.sha256(b).hexdigest(), "png", caption="c")
        if type(fast) is not type(plain) or fast.image is None:
            return None
        if {k: v for k, v in vars(fast).items() if k != "_image"} != {k: v for k, v in vars(plain).items()
                                                                        if k != "_image"}:
            return None
        if (fast.image.size, fast.image.mode) != (plain.image.size, plain.image.mode):
            return None
        if (fast._width, fast._height) != (3, 2):
            return None
        proto._free_ram()
        return proto
    except Exception:  # noqa: BLE001 - any surprise from wandb's internals: the plain constructor
        return None
    finally:
        for p in paths:
            try:
                os.remove(p)
            except OSError:
                pass


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
        them into the run; the folder is removed when the process exits. Each image is what
        ``wandb.Image(file)`` would be, built without decoding the file (wandb's constructor
        decodes it only to learn its size; checked once per process against the installed wandb,
        which is otherwise called as is), and keeps the file's bytes in memory (its ``image`` a
        lazily decoded PIL image of them), so that ``run.log`` does not decode it either.

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
    ext = "." + options.file_type
    proto = _fast_prototype(wandb)
    classes = None if options.classes is None else [{"id": c, "name": v} for c, v in options.classes.items()]

    def encode(bounds):
        return encode_chunk(plan, *bounds)

    def write(rec):  # a record's files written (and its image hashed) in a worker or writer thread
        return rec, _written(rec, ext)

    def encode_write(bounds):  # the CPU: a chunk encoded and written in one worker thread
        return [write(rec) for rec in encode(bounds)]

    out = []
    for done in run(plan, chunks(plan), encode, write, encode_write):
        for rec, files in done:
            i = rec["index"]
            wmasks = {}
            for key, path in files["masks"].items():
                if rec["mask_ext"].get(key) is not None:
                    # {"path": file}: wandb's own ImageMask of that form (no labels, named with the
                    # file's extension); only the file it moves into the run is our copy of the bytes
                    m = ImageMask({"path": path}, key)
                    m._is_tmp = True
                    wmasks[key] = m
                    continue
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
            meta = {"caption": plan.captions[i], "masks": wmasks or None, "boxes": wboxes or None,
                    "classes": classes}
            path, sha256, _ = files["image"]
            if proto is not None:
                img = _from_file(wandb, proto, path, rec["image"], sha256, options.file_type, **meta)
            else:
                img = wandb.Image(path, **meta)
                img._is_tmp = True
            out.append(img)
    return out
