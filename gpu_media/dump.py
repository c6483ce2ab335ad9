"""Stage 5: batches written as wandb's own media files and JSON (docs/SPEC.md 6).

Layout under ``out_dir`` (wandb 0.31's run ``files/`` layout; ``path(key)`` is the key
as ``wandb.util.make_file_path_upload_safe`` makes it, so ``/`` makes sub-folders)::

    media/images/<path(key)>_<step>_<sha256[:20]>.<ext>                    images
    media/images/mask/<path(key)>_<step>_<sha256[:20]>.mask.png             masks (mask_data)
    media/images/mask/<path(key)>_<step>_<sha256[:20]><ext of the file>     masks ({"path": file})
    media/metadata/boxes2D/<path(key)>_<step>_<sha256[:20]>.boxes2D.json    boxes
    <enc(key)>_<enc_step(step)>.index.json                                   the index, written last

Every file goes to a hidden temporary name in its folder, is fsynced and renamed into
place, so a name that exists is complete; the folders are fsynced and the index is
renamed into place last, so an index that exists describes a complete dump, even after
a power cut. File names are content-addressed, so running the same dump again (after
an interruption, say) writes the missing files only and the same index. The index and
``index.html`` are written under the folder's inter-process lock, so dumps running at
once into one folder all appear in its viewer; a dump whose index exists already is
an error unless ``overwrite=True`` (docs/SPEC.md 6.4).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import posixpath
import sys
import urllib.parse
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from . import _arrays
from .backend import Backend, get_backend, resolve_device
from .boxes import BoxTable, box_colors, check_box_inputs, check_thickness, parse_boxes, render
from .checks import check_int, is_integer
from .encode import check_format, check_size, drop_alpha_for_jpeg
from .errors import DumpExistsError, MediaError
from .fileio import durable_writes, folder_lock, fsync_dir, relative_path, remove_stale_temps, write_atomic
from .masks import check_mask_inputs, mask_report, parse_class_labels, parse_masks
from .normalize import normalize_groups

IMAGE_DIR = "media/images"
MASK_DIR = "media/images/mask"
BOX_DIR = "media/metadata/boxes2D"


def _classes(classes) -> dict | None:
    if classes is None:
        return None
    if hasattr(classes, "_class_set"):  # wandb.Classes
        classes = classes._class_set
    if isinstance(classes, (list, tuple)):
        try:
            classes = {c["id"]: c["name"] for c in classes}
        except (TypeError, KeyError):
            raise MediaError("classes must be {id: name} or a list of {'id': int, 'name': str}", item=classes) from None
    return parse_class_labels(classes, "classes", MediaError)


@dataclass(frozen=True)
class DumpOptions:
    """How a dump is made: every keyword of :func:`write_dump` except the data, the key and the step.

    Built once per call by the public functions (:func:`write_dump`,
    :func:`write_dump_batches`, :func:`gpu_media.coco.write_coco_dump`,
    :func:`gpu_media.to_wandb`, the CLI) and handed down unchanged to every part and
    chunk. Building it validates it (``file_type``/``quality``/``compression_level``,
    ``thickness``, ``classes``, ``colors``, ``chunk_size``), so a bad option raises
    before any image is read or any file written; the stored values are the
    checked ones (``quality`` and ``thickness`` as ``int``, ``classes`` as
    ``{int: str}``, ``draw_boxes``/``normalize`` as ``bool``).

    Attributes:
        file_type: "png", "jpg"/"jpeg" or "bmp" (as :func:`gpu_media.encode`).
        quality: JPEG quality 1..100.
        compression_level: PNG zlib level 0..9, or None for the fast default
            (applies to image and mask PNGs).
        draw_boxes: burn the box outlines into the image pixels.
        normalize: docs/SPEC.md 2's per-image range rule (else clip and truncate).
        layout: the images' layout ("NHWC", "NCHW", ...), or None to infer it.
        device: "auto", "cpu" or "gpu", resolved for each batch (``gpu_media.backend``).
        thickness: outline width in pixels (>= 1; capped at 2**31).
        colors: ``{class_id: (r, g, b)}`` outline colours, or None for the palette.
        classes: class labels of every mask and box key that gives none, as
            ``{id: name}`` (given as a dict, wandb's ``[{"id", "name"}]`` or a
            ``wandb.Classes``), or None.
        strict_masks: every class id present in a mask must be in its labels.
        chunk_size: images normalized and encoded at once (None: about 64 MiB of
            pixels per worker on the CPU, the GPU backend's own budget there).
        progress: show a progress bar on stderr when the dump takes more than one chunk.
        viewer: (re)write ``out_dir/index.html`` after the index.
        overwrite: replace an existing index of the same key and step (else
            :class:`gpu_media.DumpExistsError`); files only the old index named are
            removed once the new one is in place.
        durable: fsync every file and folder before the index names them (docs/SPEC.md 6.4).
        codec: derived from ``file_type``: "png", "jpg" or "bmp" (not an argument).

    Raises:
        gpu_media.MediaError: an option out of its range (the message as the stage
            that owns it words it: ``quality must be an integer from 1 to 100, ...``).
        gpu_media.BoxError: bad ``thickness`` or ``colors``.
    """

    file_type: str = "png"
    quality: int = 75
    compression_level: int | None = None
    draw_boxes: bool = False
    normalize: bool = True
    layout: str | None = None
    device: str = "auto"
    thickness: int = 2
    colors: Mapping[int, Sequence[int]] | None = None
    classes: Any = None
    strict_masks: bool = False
    chunk_size: int | None = None
    progress: bool = False
    viewer: bool = True
    overwrite: bool = False
    durable: bool = True
    codec: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate the options and store the checked values (see the class docstring)."""
        put = object.__setattr__  # frozen: store the checked values once
        put(self, "codec", check_format(self.file_type, self.quality, self.compression_level))
        put(self, "quality", int(self.quality))
        put(self, "thickness", check_thickness(self.thickness))
        put(self, "classes", _classes(self.classes))
        box_colors(np.zeros(0, np.int64), self.colors)  # validates colors even without boxes
        put(self, "chunk_size", check_int(self.chunk_size, "chunk_size", lo=1, optional=True))
        put(self, "draw_boxes", bool(self.draw_boxes))
        put(self, "normalize", bool(self.normalize))
        put(self, "strict_masks", bool(self.strict_masks))
        put(self, "overwrite", bool(self.overwrite))
        put(self, "durable", bool(self.durable))


class Plan(NamedTuple):
    """A validated batch: everything checked, nothing written yet."""

    groups: list
    n: int
    sizes: list  # (H, W) per image
    backend: Backend
    masks: list  # MaskSet
    report: list  # per image {mask key: {class id: count}}
    mask_labels: dict  # {mask key: {int: str}}
    boxes: BoxTable | None
    captions: list  # str or None per image
    options: DumpOptions


#: The longest fixed suffix of a dump's file names (``check_key_step`` sizes names with it).
_LONGEST_EXT = ".boxes2D.json"
_NAME_MAX = 255  # bytes in one path component (Linux, macOS)
#: a file is written as ``.<name>.<pid>.<8 hex>.tmp`` first (:func:`gpu_media.fileio.write_atomic`):
#: its name leaves room for that (a pid of up to 7 digits), folders need none
_TMP_ROOM = len("..1234567.12345678.tmp")


def key_path(key: str) -> str:
    """The log key as a relative path, exactly as wandb 0.31 makes it (docs/SPEC.md 6.2).

    ``wandb.util.make_file_path_upload_safe`` on Linux and macOS: leading ``/``
    removed, then each ``/``-separated component that is exactly ``.`` becomes ``_``
    and one that is exactly ``..`` becomes ``__``; everything else stays as written.
    ``"val/pred"`` -> ``"val/pred"`` (a sub-folder), ``"/a/../b"`` -> ``"a/__/b"``.

    Args:
        key: the log key (str).

    Returns:
        the ``/``-separated relative path (no component is ``.`` or ``..``).

    Examples:
        >>> key_path("val/pred"), key_path("/a/../b"), key_path("./x")
        ('val/pred', 'a/__/b', '_/x')
    """
    parts = key.lstrip("/").split("/")
    return "/".join("_" if p == "." else "__" if p == ".." else p for p in parts)


def step_str(step: int | str) -> str:
    """The step as it appears in file names: ``str(int(step))`` for an integer, else the str itself.

    Examples:
        >>> import numpy as np
        >>> step_str(np.int64(7)), step_str("final")
        ('7', 'final')
    """
    return str(int(step)) if is_integer(step) else str(step)


def _enc(s: str) -> str:
    """docs/SPEC.md 6.3 ``enc``: percent-encoding with only ``A-Z a-z 0-9 . _ -`` literal, never a leading dot."""
    e = urllib.parse.quote(s, safe="").replace("~", "%7E")
    return "%2E" + e[1:] if e.startswith(".") else e


def index_name(key: str, step: int | str) -> str:
    """The index file name of ``key`` at ``step``: ``<enc(key)>_<enc_step(step)>.index.json`` (docs/SPEC.md 6.3).

    ``enc_step`` also encodes ``_``, so the last ``_`` separates the two parts and the
    name differs for every different (key, step): ``a/b`` -> ``a%2Fb_0.index.json``,
    ``a_b`` -> ``a_b_0.index.json``, ``demo`` -> ``demo_0.index.json``.

    Examples:
        >>> index_name("a/b", 0), index_name("a_b", "x_y"), index_name(".hidden", 1)
        ('a%2Fb_0.index.json', 'a_b_x%5Fy.index.json', '%2Ehidden_1.index.json')
    """
    return f"{_enc(key)}_{_enc(step_str(step)).replace('_', '%5F')}.index.json"


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


def check_key_step(key: Any, step: Any) -> None:
    """Check a dump's log key and step, and that every name they make fits (docs/SPEC.md 6.2, 6.3).

    Args:
        key: the log key: a non-empty str without NUL.
        step: an integer (Python or NumPy), or a str without ``/`` or NUL.

    Raises:
        gpu_media.MediaError: with ``key`` (and ``item``) set to the bad value: a key
            or step of another type, NUL in either, ``/`` in a str step, text that is
            not valid UTF-8 (lone surrogates), or a path component too long in
            UTF-8: a folder made from the key over 255 bytes; a file name with its
            ``_<step>_<sha20>.boxes2D.json`` suffix, or the index file name, over
            233 bytes (255 less the room its temporary name takes).

    Examples:
        >>> check_key_step("val/pred", 3)
        >>> check_key_step("val", "a/b")
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: step must not contain '/' or NUL, got 'a/b'
    """
    if not isinstance(key, str) or not key:
        raise MediaError(f"key must be a non-empty string, got {key!r}", key=key, item=key)
    if not (isinstance(step, str) or is_integer(step)):
        raise MediaError(f"step must be an integer or a string, got {step!r}", key=key, item=step)
    if "\x00" in key:
        raise MediaError(f"key must not contain NUL, got {key!r}", key=key, item=key)
    if isinstance(step, str) and ("/" in step or "\x00" in step):
        raise MediaError(f"step must not contain '/' or NUL, got {step!r}", key=key, item=step)
    for what, text in (("key", key), ("step", step_str(step))):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise MediaError(f"{what} must be valid UTF-8 text, got {text!r}", key=key, item=text) from None
    *folders, last = key_path(key).split("/")
    names = [(f, f"folder {f!r} of key {key!r}", _NAME_MAX) for f in folders]
    names.append((f"{last}_{step_str(step)}_{'0' * 20}{_LONGEST_EXT}", f"file names of key {key!r} at step {step!r}",
                  _NAME_MAX - _TMP_ROOM))
    names.append((index_name(key, step), f"index file name of key {key!r} at step {step!r}", _NAME_MAX - _TMP_ROOM))
    for name, what, limit in names:
        if _utf8_len(name) > limit:
            room = "" if limit == _NAME_MAX else f" ({_NAME_MAX} less room for its temporary name)"
            raise MediaError(f"{what}: {_utf8_len(name)} bytes in UTF-8, above the {limit} a name may have{room}",
                             key=key, item=name)


def file_stem(root: str, key: str, step: int | str) -> str:
    """``<path(key)>_<step>`` of :func:`key_path`, checked to stay inside ``root`` once resolved.

    Args:
        root: the dump folder (absolute).
        key: the log key, checked by :func:`check_key_step`.
        step: the step, checked by :func:`check_key_step`.

    Returns:
        the ``/``-separated stem of every media file of the dump.

    Raises:
        gpu_media.MediaError: a folder the files would go to resolves (through a
            symbolic link) outside ``root``; raised before anything is written.

    Examples:
        >>> import tempfile
        >>> file_stem(tempfile.mkdtemp(), "val/pred", 3)
        'val/pred_3'
    """
    stem = f"{key_path(key)}_{step_str(step)}"
    folders = stem.split("/")[:-1]
    for sub in (IMAGE_DIR, MASK_DIR, BOX_DIR):
        _inside(root, os.path.join(root, *sub.split("/"), *folders), f"{sub}/{stem}")
    return stem


def _inside(root: str, path: str, rel: str) -> None:
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise MediaError(f"refusing to write {rel!r}: it resolves outside {root!r}", item=rel)


def _captions(captions, n) -> list:
    if captions is None:
        return [None] * n
    if isinstance(captions, str):
        captions = [captions]
    captions = [c.item() if hasattr(c, "item") else c for c in captions]
    if len(captions) != n:
        raise MediaError(f"captions: {len(captions)} captions for a batch of {n} images", item=len(captions))
    for i, c in enumerate(captions):
        if c is not None and not isinstance(c, str):
            raise MediaError(f"image {i}: caption must be a string or None, got {type(c).__name__}", index=i, item=c)
    return captions


def _with_default_labels(sets, classes):
    if not classes or sets is None:
        return sets
    if isinstance(sets, dict):
        return {k: ({**v, "class_labels": classes} if isinstance(v, dict) and "class_labels" not in v
                    and ("mask_data" in v or "path" in v or "xyxy" in v or "box_data" in v) else v)
                for k, v in sets.items()}
    return [None if e is None else _with_default_labels(e, classes) for e in sets]


def prepare(images: Any, options: DumpOptions, *, masks: Mapping[str, Any] | None = None, boxes: Any = None,
            captions: Sequence[str | None] | None = None) -> Plan:
    """Validate a whole batch (docs/SPEC.md 1-5) before anything is written; see :func:`write_dump`.

    Args:
        images: the batch, as for :func:`gpu_media.normalize`.
        options: the dump's (already validated) options.
        masks: as for :func:`write_dump`.
        boxes: as for :func:`write_dump`.
        captions: as for :func:`write_dump`.

    Returns:
        the :class:`Plan` of the batch, on the backend ``options.device`` resolves to.

    Raises:
        gpu_media.ImageError, MaskError, BoxError, MediaError: as :func:`write_dump`.

    Examples:
        >>> import numpy as np
        >>> masks = {"pred": {"mask_data": np.array([[[0, 1], [1, 1]]], np.uint8)}}
        >>> plan = prepare(np.zeros((1, 2, 2, 3), np.uint8), DumpOptions(device="cpu"), masks=masks)
        >>> plan.n, plan.sizes, plan.report, plan.mask_labels
        (1, [(2, 2)], [{'pred': {0: 1, 1: 3}}], {'pred': {0: 'class_0', 1: 'class_1'}})
    """
    images = _arrays.check_images(images)  # dtypes first: before the device and any copy to it
    masks, boxes = check_mask_inputs(masks), check_box_inputs(boxes)
    dev = resolve_device(options.device, _arrays.on_gpu(images))
    backend = get_backend(dev)
    groups, n = _arrays.image_groups(images, options.layout, dev)
    sizes = [None] * n
    for g in groups:
        for i in g.indices:
            sizes[i] = _arrays.hw_of(g)
    check_size(sizes, options.codec)
    caps = _captions(captions, n)
    cls = options.classes
    msets = parse_masks(_with_default_labels(masks, cls), sizes, dev)
    report = mask_report(msets, n, backend, options.strict_masks)
    labels = {}
    for ms in msets:
        if ms.class_labels is not None:
            labels[ms.key] = ms.class_labels
        else:  # wandb: {c: "class_<c>"} for the values present
            present = sorted({c for r in report for c in r[ms.key]})
            labels[ms.key] = {c: f"class_{c}" for c in present}
    table = parse_boxes(_with_default_labels(boxes, cls), sizes)
    return Plan(groups, n, sizes, backend, msets, report, labels, table, caps, options)


def _workers(plan: Plan) -> int:
    """Chunks normalized and encoded at once: one per core on the CPU backend (NumPy and Pillow release the GIL).

    Two on the GPU, so that one chunk's kernels run while the previous chunk is encoded. The
    files are written by the writer threads meanwhile (:func:`_written`).
    """
    return (os.cpu_count() or 1) if plan.backend.name == "cpu" else 2


def _on_caller_stream(fn):
    """``fn`` made to run on the caller's current CuPy stream in any thread.

    CuPy's current stream is per thread; ``fn`` itself where CuPy is not in use.
    """
    cupy = sys.modules.get("cupy")
    if cupy is None:
        return fn
    stream = cupy.cuda.get_current_stream()

    def run(*args):
        with stream:
            return fn(*args)

    return run


def _chunks(plan: Plan) -> list[tuple[int, int]]:
    """``(lo, hi)`` image ranges of the batch: ``options.chunk_size`` images each.

    By default, the backend's ``chunk_bytes()`` of uint8 pixels shared among the workers.
    """
    chunk_size = plan.options.chunk_size
    if chunk_size is None:
        h, w = max(s[0] for s in plan.sizes), max(s[1] for s in plan.sizes)
        budget = plan.backend.chunk_bytes()
        chunk_size = max(1, budget // (h * w * 4) // _workers(plan))
        if _workers(plan) > 1:  # enough chunks to keep every core busy
            chunk_size = min(chunk_size, max(1, -(-plan.n // (2 * _workers(plan)))))
    return [(lo, min(lo + chunk_size, plan.n)) for lo in range(0, plan.n, chunk_size)]


def _ordered(fn, items, workers: int):
    """``map(fn, items)`` in order, at most ``workers + 1`` calls in flight (bounded memory)."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gpu-media-dump") as pool:
        pending = deque()
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


#: Writer threads of a dump: hashing, writing and (durable) fsyncing the files run here while the
#: next chunk is normalized and encoded. Mostly waiting on the disk, so more threads than cores.
_WRITERS = min(32, (os.cpu_count() or 1) + 4)


def _written(encoded: Iterable[list[dict]], write, pool: ThreadPoolExecutor, ahead: int = 1):
    """Per chunk of ``encoded`` (records, in order), ``[write(rec) for rec in records]``, the writes run in ``pool``.

    A chunk's records are handed to the writer threads one per task as soon as the
    chunk is encoded; the results of the chunk ``ahead`` chunks back are collected
    (waiting for its writes) before the next chunk is taken, so the encoding of
    chunk k+1 overlaps the writes of chunk k and at most ``ahead + 1`` chunks' records
    wait for the disk (bounded memory). Yields each chunk's results in order. The
    first write that fails raises here once the writes already running have
    finished; the writes not started yet are cancelled, so nothing of the dump is
    left running when it raises.
    """
    pending: deque = deque()
    try:
        for records in encoded:
            pending.append([pool.submit(write, rec) for rec in records])
            while len(pending) > ahead:
                yield _results(pending.popleft())
        while pending:
            yield _results(pending.popleft())
    finally:
        while pending:
            _drain(pending.popleft())


def _results(futures: list) -> list:
    """The results of ``futures`` in order; on the first error, :func:`_drain` them all, then raise it."""
    try:
        return [f.result() for f in futures]
    except BaseException:
        _drain(futures)
        raise


def _drain(futures: list) -> None:
    """Cancel the ``futures`` not started yet and wait for the running ones (their errors are dropped)."""
    for f in futures:
        f.cancel()
    for f in futures:
        if not f.cancelled():
            with contextlib.suppress(BaseException):
                f.result()


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_chunk(plan: Plan, lo: int, hi: int) -> list[dict]:
    """Normalize, draw and encode images ``lo:hi``: one record per image (bytes, not files).

    Examples:
        >>> import numpy as np
        >>> plan = prepare(np.zeros((3, 2, 2, 3), np.uint8), DumpOptions(device="cpu"))
        >>> [(r["index"], r["image"][1:4], r["height"], r["width"]) for r in encode_chunk(plan, 1, 3)]
        [(1, b'PNG', 2, 2), (2, b'PNG', 2, 2)]
    """
    be, opt = plan.backend, plan.options
    u8 = normalize_groups(plan.groups, plan.n, opt.normalize, be, lo, hi)
    if opt.draw_boxes:
        if isinstance(u8, list):
            u8 = [render(a[None], plan.boxes, be, opt.thickness, opt.colors, lo=lo + k)[0] for k, a in enumerate(u8)]
        else:
            u8 = render(u8, plan.boxes, be, opt.thickness, opt.colors, lo=lo)
    images = be.encode(drop_alpha_for_jpeg(u8, opt.codec), opt.codec, opt.quality, opt.compression_level)
    mask_bytes, mask_ext = {}, {}
    for ms in plan.masks:
        if ms.files is not None:  # {"path": file}: the file's own bytes and extension, as wandb copies it
            mask_bytes[ms.key] = [data for data, _ in ms.files[lo:hi]]
            mask_ext[ms.key] = [ext for _, ext in ms.files[lo:hi]]
            continue
        part = ms.data[lo:hi]
        if isinstance(part, list):
            mask_bytes[ms.key] = [be.encode(p.astype("uint8")[None, :, :, None], "png", 75, opt.compression_level)[0]
                                  for p in part]
        else:
            mask_bytes[ms.key] = be.encode(part.astype("uint8")[:, :, :, None], "png", 75, opt.compression_level)
    records = []
    for k, i in enumerate(range(lo, hi)):
        h, w = plan.sizes[i]
        per = plan.boxes.per_image[i] if plan.boxes is not None else {}
        records.append({
            "index": i, "image": images[k], "height": h, "width": w,
            "masks": {key: mb[k] for key, mb in mask_bytes.items()},
            "mask_ext": {key: ext[k] for key, ext in mask_ext.items()},
            "boxes": {key: _json_bytes(v) for key, v in per.items()},
        })
    return records


def _file_entry(root, subdir, stem, ext, data, write=True, put=None) -> dict:
    sha = hashlib.sha256(data).hexdigest()
    # "a//b" is the folder a/b, and wandb's JSON path is os.path.relpath's: no empty parts
    rel = "/".join(p for p in f"{subdir}/{stem}_{sha[:20]}{ext}".split("/") if p)
    if put is not None:  # another sink (gpu_media.storage): it checks and writes ``rel`` itself
        if write:
            put(rel, data)
        return {"sha256": sha, "size": len(data), "path": rel}
    path = os.path.join(root, *rel.split("/"))
    _inside(root, path, rel)
    if write:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data)
    return {"sha256": sha, "size": len(data), "path": rel}


def image_json(rec: dict, root: str, stem: str, plan: Plan, put: Callable[[str, bytes], None] | None = None) -> dict:
    """Write one record's files; return wandb's ``image-file`` JSON for it.

    ``put(rel, data)``, when given, writes each file instead of :func:`write_atomic`
    under ``root`` (``rel`` is the ``/``-separated path in the dump, as in the JSON;
    :meth:`gpu_media.storage.Output.put`).

    Examples:
        >>> import tempfile
        >>> import numpy as np
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


def _progress(total: int | None):
    """A progress bar of ``total`` images (None: unknown) on stderr: tqdm's, else plain lines."""
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, unit="img", file=sys.stderr, desc="gpu-media dump")
    except ImportError:
        class _Plain:
            def __init__(self):
                self.done = 0

            def update(self, k):
                self.done += k
                of = "" if total is None else f"/{total}"
                print(f"gpu-media dump: {self.done}{of} images", file=sys.stderr, flush=True)

            def close(self):
                pass

        return _Plain()


def write_dump(out_dir: str | os.PathLike, images: Any, *, key: str, step: int | str = 0,
               masks: Mapping[str, Mapping[str, Any]] | None = None, boxes: Any = None,
               captions: Sequence[str | None] | None = None, classes: Any = None, file_type: str = "png",
               quality: int = 75, compression_level: int | None = None, draw_boxes: bool = False,
               normalize: bool = True, layout: str | None = None, device: str = "auto", thickness: int = 2,
               colors: Mapping[int, Sequence[int]] | None = None, chunk_size: int | None = None,
               progress: bool = False, viewer: bool = True, overwrite: bool = False,
               durable: bool = True) -> list[dict]:
    """Write a batch as wandb's media files plus an index, for offline evaluation (docs/SPEC.md 6).

    Args:
        out_dir: folder (created if missing); files go under ``media/`` as in a
            wandb run's ``files/`` folder, the index to ``<enc(key)>_<enc_step(step)>.index.json``
            (:func:`index_name`).
        images: a batch as for :func:`gpu_media.normalize` (N images).
        key: the log key (str); it names the files as wandb names them
            (:func:`key_path`: ``val/pred`` makes the sub-folder ``val``, a component
            ``.`` becomes ``_`` and ``..`` becomes ``__``, a leading ``/`` is dropped)
            and the index (:func:`index_name`, one per key and step).
        step: the step (an integer, or a str without ``/``), part of the file names.
        masks: ``{key: {"mask_data": (N,H,W) or list, "class_labels": {int: str}}}``
            or ``{key: {"path": file or [files]}}`` (see
            :func:`gpu_media.validate_masks`); ``mask_data`` becomes an 8-bit grayscale
            PNG (pixel = class id) named ``....mask.png``, a ``path`` file is copied
            unchanged and keeps its last extension, as wandb does.
        boxes: either form of :func:`gpu_media.draw_boxes`; written as wandb's
            ``boxes2D`` JSON files (``{"box_data": [...]}``, plus ``class_labels``
            when the box set or ``classes`` gives labels).
        captions: N captions (str or None); only ever written inside JSON.
        classes: ``{id: name}``, wandb's ``[{"id", "name"}]`` or a ``wandb.Classes``:
            the class labels of every mask and box key that gives none.
        file_type: as for :func:`gpu_media.encode`.
        quality: as for :func:`gpu_media.encode`.
        compression_level: as for :func:`gpu_media.encode` (applies to image and mask PNGs).
        draw_boxes: also burn the box outlines into the image pixels (docs/SPEC.md 4).
        normalize: as for :func:`gpu_media.normalize`.
        layout: as for :func:`gpu_media.normalize`.
        device: as for :func:`gpu_media.normalize`.
        thickness: as for :func:`gpu_media.draw_boxes`.
        colors: as for :func:`gpu_media.draw_boxes`.
        chunk_size: images normalized and encoded at once (default: about 64 MiB
            of pixels), which bounds memory.
        progress: show a progress bar on stderr (tqdm when installed) when the dump
            takes more than one chunk.
        viewer: also (re)write ``out_dir/index.html``, the self-contained page that
            shows every dump in the folder (:func:`gpu_media.viewer.write_viewer`),
            after the index, under the folder's lock (docs/SPEC.md 6.4).
        overwrite: replace the index of ``key`` at ``step`` if the folder has one
            (else that is an error); once the new index is in place, the files that
            only the old index named are removed. The whole dump then holds the
            folder's lock.
        durable: fsync each file (and the folders) before the index names it, so
            that after a crash or power cut an index never names a missing or short
            file (docs/SPEC.md 6.4).

    Returns:
        list of N wandb ``image-file`` dicts (``caption``, ``_type``, ``sha256``,
        ``size``, ``path``, ``format``, ``width``, ``height``, ``boxes``, ``masks``),
        as ``wandb.Image.to_json`` gives, with paths relative to ``out_dir``.

    Raises:
        gpu_media.DumpExistsError: ``out_dir`` has an index of ``key`` at ``step``
            and ``overwrite`` is False: raised before any file is written (or, when
            another dump of the same key and step finished meanwhile, at the end,
            with this dump's files removed again).
        gpu_media.ImageError, MaskError, BoxError, MediaError: bad input, raised
            before any file is written (naming the batch index and key).
        OSError: the disk; files already renamed into place are complete, and
            running the same call again finishes the dump.

    Examples:
        Two float images with a mask key, into a new folder:

        >>> import os, tempfile
        >>> import numpy as np
        >>> import gpu_media
        >>> out = tempfile.mkdtemp()
        >>> masks = {"pred": {"mask_data": np.ones((2, 8, 8), np.uint8), "class_labels": {1: "car"}}}
        >>> dicts = gpu_media.write_dump(out, np.zeros((2, 8, 8, 3), np.float32), key="val", step=3, masks=masks,
        ...                              captions=["a", "b"])
        >>> d = dicts[0]
        >>> d["caption"], d["format"], d["width"], d["path"].startswith("media/images/val_3_")
        ('a', 'png', 8, True)
        >>> d["masks"]["pred"]["path"].startswith("media/images/mask/val_3_")
        True
        >>> sorted(os.listdir(out))
        ['.gpu-media.lock', 'index.html', 'media', 'val_3.index.json']

        The same key and step again needs ``overwrite=True``:

        >>> gpu_media.write_dump(out, np.zeros((1, 8, 8, 3)), key="val", step=3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.DumpExistsError: ...
    """
    check_key_step(key, step)
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, normalize=normalize, layout=layout, device=device,
                          thickness=thickness, colors=colors, classes=classes, chunk_size=chunk_size,
                          progress=progress, viewer=viewer, overwrite=overwrite, durable=durable)
    batch = {"images": images, "masks": masks, "boxes": boxes, "captions": captions}
    return write_batches(out_dir, [batch], options, key=key, step=step)


def write_dump_batches(out_dir: str | os.PathLike, batches: Iterable[Mapping[str, Any]], *, key: str,
                       step: int | str = 0, total: int | None = None, classes: Any = None, file_type: str = "png",
                       quality: int = 75, compression_level: int | None = None, draw_boxes: bool = False,
                       normalize: bool = True, layout: str | None = None, device: str = "auto", thickness: int = 2,
                       colors: Mapping[int, Sequence[int]] | None = None, chunk_size: int | None = None,
                       progress: bool = False, viewer: bool = True, overwrite: bool = False,
                       durable: bool = True) -> list[dict]:
    """:func:`write_dump` of a batch too large to hold at once, given as consecutive parts.

    Args:
        batches: an iterable of ``{"images", "masks", "boxes", "captions"}`` dicts
            (each as for :func:`write_dump`, box ``image_index`` counted within the
            part); they are validated, written and released one at a time, and make
            up one dump whose images are numbered in order across the parts.
        out_dir: as for :func:`write_dump`.
        key: as for :func:`write_dump`.
        step: as for :func:`write_dump`.
        total: the number of images in all parts (for the progress bar), if known.
        classes: as for :func:`write_dump`.
        file_type: as for :func:`write_dump`.
        quality: as for :func:`write_dump`.
        compression_level: as for :func:`write_dump`.
        draw_boxes: as for :func:`write_dump`.
        normalize: as for :func:`write_dump`.
        layout: as for :func:`write_dump`.
        device: as for :func:`write_dump`.
        thickness: as for :func:`write_dump`.
        colors: as for :func:`write_dump`.
        chunk_size: as for :func:`write_dump`.
        progress: as for :func:`write_dump`.
        viewer: as for :func:`write_dump`.
        overwrite: as for :func:`write_dump`.
        durable: as for :func:`write_dump`.

    Returns:
        the image-file dicts of every image, as :func:`write_dump`.

    Raises:
        as :func:`write_dump`; each part is validated before any of its files is
        written. The index is written last, after every part: an error in a later
        part leaves complete media files from the earlier ones but no index.

    Examples:
        Parts are read one at a time (a generator keeps memory bounded); images are
        numbered across them:

        >>> import tempfile
        >>> import numpy as np
        >>> parts = ({"images": np.full((2, 4, 5, 3), k, np.uint8)} for k in range(3))
        >>> dicts = write_dump_batches(tempfile.mkdtemp(), parts, key="big", total=6)
        >>> len(dicts), dicts[0]["width"]
        (6, 5)
    """
    check_key_step(key, step)
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, normalize=normalize, layout=layout, device=device,
                          thickness=thickness, colors=colors, classes=classes, chunk_size=chunk_size,
                          progress=progress, viewer=viewer, overwrite=overwrite, durable=durable)
    return write_batches(out_dir, batches, options, key=key, step=step, total=total)


def write_batches(out_dir: str | os.PathLike, batches: Iterable[Mapping[str, Any]], options: DumpOptions, *,
                  key: str, step: int | str = 0, total: int | None = None) -> list[dict]:
    """The dump itself, given its options: what :func:`write_dump_batches` does once it has built them.

    The order of the writes (docs/SPEC.md 6.4): the existing-index check; then, with
    the first part validated, the removal of the temporary files that killed dumps
    left in the folder (:func:`gpu_media.fileio.remove_stale_temps`); the media
    files (each fsynced in the writer threads); an fsync of every folder that
    received one; then, under the folder's lock, the index (temporary name, fsync,
    rename, fsync of the folder), with ``overwrite`` the removal of the files only
    the old index named, and ``index.html``.

    Args:
        out_dir: as for :func:`write_dump`.
        batches: as for :func:`write_dump_batches`.
        options: the dump's :class:`DumpOptions` (already validated).
        key: as for :func:`write_dump`.
        step: as for :func:`write_dump`.
        total: as for :func:`write_dump_batches`.

    Returns:
        the image-file dicts of every image, as :func:`write_dump`.

    Raises:
        as :func:`write_dump_batches`.

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> options = DumpOptions(file_type="jpg", quality=90, device="cpu", viewer=False)
        >>> dicts = write_batches(tempfile.mkdtemp(), [{"images": np.zeros((1, 4, 4, 3))}], options, key="k")
        >>> dicts[0]["format"], dicts[0]["path"].endswith(".jpg")
        ('jpg', True)
    """
    check_key_step(key, step)
    step = int(step) if is_integer(step) else step  # a NumPy integer step: a plain int in the index JSON
    root = os.path.abspath(os.fspath(out_dir))
    check_overwrite(root, key, step, options.overwrite)
    stem = file_stem(root, key, step)
    dicts, captions, report = [], [], []
    mask_labels, box_labels = [], []  # each part's
    with contextlib.ExitStack() as held:
        started, bar, n_chunks = False, None, 0
        writers = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="gpu-media-write")
        held.callback(writers.shutdown, wait=True, cancel_futures=True)
        try:
            for part in batches:
                plan = prepare(part["images"], options, masks=part.get("masks"), boxes=part.get("boxes"),
                               captions=part.get("captions"))
                if not started:  # the first file is about to be written
                    os.makedirs(root, exist_ok=True)
                    if options.overwrite:  # no other dump may remove or replace files while this one runs
                        held.enter_context(folder_lock(root))
                    remove_stale_temps(_dump_folders(root))
                    started = True
                chunks = _chunks(plan)
                n_chunks += len(chunks)
                if bar is None and options.progress and n_chunks > 1:  # more than one chunk: a bar
                    one_part = isinstance(batches, (list, tuple)) and len(batches) == 1
                    bar = _progress(plan.n if total is None and one_part else total)
                    if dicts:
                        bar.update(len(dicts))

                def encode(bounds, plan=plan):
                    return encode_chunk(plan, *bounds)

                def write(rec, plan=plan):
                    with durable_writes(options.durable):  # the files image_json writes, in this writer thread
                        return image_json(rec, root, stem, plan)

                if plan.backend.name == "gpu":
                    encode = _on_caller_stream(encode)
                for done in _written(_ordered(encode, chunks, _workers(plan)), write, writers):
                    dicts.extend(done)
                    if bar is not None:
                        bar.update(len(done))
                captions.extend(plan.captions)
                report.extend(plan.report)
                mask_labels.append(plan.mask_labels)
                box_labels.append(plan.boxes.class_labels if plan.boxes is not None else {})
        finally:
            if bar is not None:
                bar.close()
        if not dicts:
            raise MediaError("images: the batch is empty")
        index = index_json(key, step, dicts, captions, report, merge_labels(mask_labels), merge_labels(box_labels),
                           options)
        ours = _paths_of(index)
        if options.durable:  # the files' names on the disk before an index names them
            for folder in _folders_up(root, ours):
                fsync_dir(folder)
        if not options.overwrite:
            held.enter_context(folder_lock(root))
        _finish(root, index_path(root, key, step), _json_bytes(index), ours, options, key, step)
    return dicts


def merge_labels(parts: Sequence[Mapping[str, Mapping[int, str]]]) -> dict[str, dict[int, str]]:
    """The class labels of a whole dump from its parts': those one batch of all the images would have.

    Labels the caller gave are the same in every part and keep their order. Labels
    made by wandb's rule from the ids present (``class_<c>``, sorted by id) differ
    between parts; their union is sorted by id, as the rule sorts them for one batch.
    So :func:`write_dump_batches` and :func:`gpu_media.ray.write_dump_dataset` write
    the index :func:`write_dump` writes for the same images.

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
               box_labels: dict, options: DumpOptions) -> dict:
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

    Returns:
        the JSON object (a dict) that :func:`write_batches` writes to the index file.

    Examples:
        >>> index = index_json("k", 0, [{"width": 2, "height": 2, "format": "png", "path": "p"}], [None], [{}],
        ...                    {}, {}, DumpOptions())
        >>> index["count"], index["separated"]["filenames"], index["classes"]
        (1, ['p'], None)
    """
    cls = options.classes
    return {
        "_type": "gpu-media/dump", "version": 1, "key": key, "step": step, "count": len(dicts),
        "images": dicts,
        "separated": separated_json(dicts, captions),
        "mask_class_labels": {k: {str(c): v for c, v in lab.items()} for k, lab in mask_labels.items()},
        "box_class_labels": {k: {str(c): v for c, v in lab.items()} for k, lab in box_labels.items()},
        "classes": None if cls is None else [{"id": c, "name": v} for c, v in cls.items()],
        "mask_report": [{k: {str(c): v for c, v in r.items()} for k, r in rep.items()} for rep in report],
        "boxes_drawn": options.draw_boxes,
    }


def json_bytes(obj: Any) -> bytes:
    """``obj`` as the dump writes its JSON files: compact, UTF-8, non-ASCII kept.

    Examples:
        >>> json_bytes({"a": [1, "b"], "c": None})
        b'{"a":[1,"b"],"c":null}'
    """
    return _json_bytes(obj)


def check_overwrite(out_dir: str | os.PathLike, key: str, step: int | str, overwrite: bool) -> None:
    """Raise :class:`gpu_media.DumpExistsError` if ``out_dir`` has an index of ``key`` at ``step`` and no ``overwrite``.

    docs/SPEC.md 6.4; the dump's first check, before any file is written.

    Args:
        out_dir: the dump folder.
        key: the log key.
        step: the step.
        overwrite: whether an existing index may be replaced.

    Raises:
        gpu_media.DumpExistsError: naming the index's path; ``key`` is the key, ``item`` the path.

    Examples:
        >>> import tempfile
        >>> check_overwrite(tempfile.mkdtemp(), "val", 0, overwrite=False)  # no index yet
    """
    path = index_path(out_dir, key, step)
    if not overwrite and os.path.exists(path):
        raise _exists_error(path, key, step)


def _exists_error(path: str, key: str, step, meanwhile: bool = False) -> DumpExistsError:
    when = "was written meanwhile by another dump" if meanwhile else "exists"
    return DumpExistsError(f"the index of key {key!r} at step {step!r} {when}: {path}; pass overwrite=True "
                           f"(gpu-media: --overwrite) to replace it", key=key, item=path)


def _dump_folders(root: str) -> list[str]:
    """``root`` and every folder under ``root/media``: where a dump's temporary files can be."""
    folders = [root]
    for d, _, _ in os.walk(os.path.join(root, "media")):
        folders.append(d)
    return folders


def _paths_of(index) -> set[str]:
    """The relative paths of the files an index names (images, masks, boxes2D JSON) under ``media/``.

    Anything else in a hand-edited index is never touched.
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


def _folders_up(root: str, rel_paths: Iterable[str]) -> list[str]:
    """The folders holding ``rel_paths`` and every folder between them and ``root``, deepest first, then ``root``.

    What to fsync so that the files' names (and the new folders') are on the disk.
    """
    rels = set()
    for p in rel_paths:
        r = posixpath.dirname(p)
        while r:
            rels.add(r)
            r = posixpath.dirname(r)
    deepest_first = sorted(rels, key=lambda r: (-r.count("/"), r))
    return [os.path.join(root, *r.split("/")) for r in deepest_first] + [root]


def _referenced(root: str) -> set[str] | None:
    """The paths every ``*.index.json`` of ``root`` names, or None if one of them cannot be read."""
    out = set()
    for path in glob.glob(os.path.join(glob.escape(root), "*.index.json")):
        try:
            with open(path, "rb") as f:
                out |= _paths_of(json.loads(f.read().decode("utf-8")))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            warnings.warn(f"gpu-media: {path} cannot be read ({exc}); no file is removed", stacklevel=4)
            return None
    return out


def _remove_unreferenced(root: str, candidates: set[str]) -> None:
    """Remove the ``candidates`` (relative paths) that no index in ``root`` names, then the folders left empty.

    Called under the folder's lock.
    """
    referenced = _referenced(root)
    if referenced is None:
        return
    folders = set()
    for rel in sorted(candidates - referenced):
        try:
            os.unlink(os.path.join(root, *rel.split("/")))
        except FileNotFoundError:
            pass
        folders.add(os.path.dirname(rel))
    for rel in sorted(folders, key=lambda r: -r.count("/")):
        while rel and rel != "media":
            try:
                os.rmdir(os.path.join(root, *rel.split("/")))
            except OSError:  # not empty (or gone)
                break
            rel = os.path.dirname(rel)


def _finish(root: str, index_file: str, data: bytes, ours: set[str], options: DumpOptions, key: str, step) -> None:
    """The dump's last steps, under the folder's lock: the index, the old index's orphans, index.html."""
    old: set[str] = set()
    if os.path.exists(index_file):
        if not options.overwrite:  # another dump of this key and step finished while this one ran
            _remove_unreferenced(root, ours)
            raise _exists_error(index_file, key, step, meanwhile=True)
        try:
            with open(index_file, "rb") as f:
                old = _paths_of(json.loads(f.read().decode("utf-8")))
        except (OSError, ValueError):
            old = set()  # not a readable index: it names nothing this dump could remove
    write_atomic(index_file, data, overwrite=True, durable=options.durable)
    if options.durable:
        fsync_dir(root)
    if old - ours:
        _remove_unreferenced(root, old - ours)
    if options.viewer:
        from .viewer import write_viewer_locked  # here, not at the top: the viewer's http.server import is slow

        write_viewer_locked(root, durable=options.durable)


def index_path(out_dir: str | os.PathLike, key: str, step: int | str = 0) -> str:
    """Where :func:`write_dump` puts the index of ``key`` at ``step``: ``out_dir/`` + :func:`index_name`.

    Examples:
        >>> import os
        >>> index_path("dump", "val/pred", 3) == os.path.join("dump", "val%2Fpred_3.index.json")
        True
    """
    return os.path.join(os.fspath(out_dir), index_name(key, step))
