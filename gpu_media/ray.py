"""Offline evaluation dumps of a Ray Data dataset, on many workers, to a local folder or object storage.

:func:`write_dump_dataset` writes one dump (docs/SPEC.md 6) of a ``ray.data.Dataset`` whose
rows are images (:data:`ROW_HELP`):

1. ``map_batches`` hands blocks of ``batch_size`` rows to a pool of actors. Each
   actor asks for one GPU where the cluster has GPUs (and uses the GPU backend),
   else one CPU (and the NumPy + Pillow backend).
2. An actor validates, normalizes, draws and encodes its block
   (:func:`gpu_media.dump.prepare`, :func:`gpu_media.dump.encode_chunk`) and writes
   the block's files straight to ``out`` (:mod:`gpu_media.storage`), then a
   *partial index* ``.gpu-media-parts/<index stem>/<block id>.json`` with the
   block's image-file JSON, captions, mask report and class labels.
3. The driver merges the partial indexes in the dataset's order into the dump's
   index (:func:`gpu_media.dump.index_json`), writes it last, rebuilds ``index.html``
   and removes the partial indexes.

The result is byte-identical to :func:`gpu_media.write_dump` of the same rows in one
process: file names are content-addressed, and the merge gives the same JSON.

**Resuming.** A block's id is the sha256 of its rows (the raw values, before any
decoding) and of everything that decides the dump's bytes (key, step, options,
labels). An actor whose block already has a partial index returns it without
encoding or writing anything, so running the same call again after a worker or the
driver was killed does only the blocks that are missing.

``import gpu_media.ray`` needs only NumPy and Pillow; Ray (``pip install
".[ray]"``) is imported when a function here is called.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import check_int, is_integer
from .dump import (
    DumpOptions,
    check_key_step,
    check_overwrite,
    destination,
    encode_chunk,
    file_stem,
    image_json,
    index_json,
    index_name,
    index_path,
    json_bytes,
    key_path,
    merge_labels,
    prepare,
    step_str,
)
from .dump.finish import check_overwrite_at, claim, finish_dump, finish_dump_at, folders_up, missing_files, release
from .dump.index import paths_of
from .dump.layout import dump_folders
from .dump.pipeline import chunks, ordered
from .errors import DeviceError, DumpWriteError, MediaError
from .fileio import FolderWriter, durable_writes, folder_lock, fsync_dir, remove_stale_temps
from .masks import parse_class_labels
from .storage import Output, open_output

__all__ = ["ROW_HELP", "RAY_EXTRA", "PARTS_DIR", "DatasetDump", "BlockWriter", "write_dump_dataset", "rows_to_batch",
           "block_id", "placement", "coco_dataset", "npz_shards_dataset", "storage_failure"]

RAY_EXTRA = 'pip install ".[ray]"'
PARTS_DIR = ".gpu-media-parts"

#: The columns of a dataset row (one image), as :func:`write_dump_dataset` reads them.
ROW_HELP = """\
  image                  (H,W,C) or (H,W) array, or the bytes of an image file (PNG, JPEG, ...; decoded by Pillow)
  caption                optional str (or None)
  masks__<key>           optional (H,W) integer class ids, one column per mask key
  boxes__<key>__xyxy     optional (M,4) pixel boxes x0,y0,x1,y1 (x1, y1 exclusive), one set per box key
  boxes__<key>__class_id (M,) class id of each box
  boxes__<key>__score    (M,) optional score of each box
"""


@dataclass(frozen=True)
class DatasetDump:
    """What :func:`write_dump_dataset` wrote.

    Attributes:
        index: the index's path or URL.
        count: images in the dump.
        blocks: blocks the dataset was cut into.
        written: blocks encoded and written by this call (the others had a partial
            index from an earlier, interrupted call).
        images: every image's wandb ``image-file`` dict, as :func:`gpu_media.write_dump` returns.
        worker_seconds: seconds the actors spent in the blocks they wrote (hashing,
            validating, encoding, writing), summed over blocks; the rest of the wall
            time is Ray's (actor start, moving rows, scheduling) and the driver's.
    """

    index: str
    count: int
    blocks: int
    written: int
    images: list
    worker_seconds: float = 0.0


def _ray():
    try:
        import ray  # the real Ray: this module is gpu_media.ray, imports are absolute
        import ray.data  # noqa: F401  (ray.data.ActorPoolStrategy, DataContext)
    except ImportError:
        raise MediaError(f"Ray datasets need Ray Data: {RAY_EXTRA}") from None
    return ray


# ----------------------------------------------------------------------------------------------- rows


def _columns(names) -> tuple[list, list, dict]:
    """``(mask keys, box keys, {box key: fields})`` of a dataset's column names; raises MediaError."""
    names = list(names)
    if "image" not in names:
        raise MediaError(f"the dataset has no 'image' column (columns: {names})", item=names)
    masks, boxes = [], {}
    for name in names:
        parts = name.split("__")
        if name in ("image", "caption"):
            continue
        if parts[0] == "masks" and len(parts) == 2 and parts[1]:
            masks.append(parts[1])
        elif parts[0] == "boxes" and len(parts) == 3 and parts[2] in ("xyxy", "class_id", "score") and parts[1]:
            boxes.setdefault(parts[1], []).append(parts[2])
        else:
            raise MediaError(f"unknown dataset column {name!r} (image, caption, masks__<key>, boxes__<key>__xyxy, "
                             "boxes__<key>__class_id, boxes__<key>__score; ds.drop_columns([...]) drops others)",
                             item=name)
    for key, fields in boxes.items():
        if "xyxy" not in fields:
            raise MediaError(f"box key {key!r} has no boxes__{key}__xyxy column", key=key, item=key)
    return masks, list(boxes), boxes


def _decode(data, i: int) -> np.ndarray:
    """An encoded image file to an array: L, RGB, RGBA and 16/32-bit grey as stored, other modes as RGB(A)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            if im.mode not in ("L", "RGB", "RGBA", "I", "I;16", "F"):
                transparent = im.mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info
                im = im.convert("RGBA" if transparent else "RGB")
            return np.asarray(im)
    except OSError as exc:
        raise MediaError(f"image {i}: cannot decode the image file ({exc})", index=i) from None


def _is_bytes(v) -> bool:
    return isinstance(v, (bytes, bytearray, memoryview)) or (isinstance(v, np.ndarray) and v.dtype.kind == "S")


def _stacked(arrays: list) -> Any:
    """One ``(N, ...)`` array where every array has the same shape and dtype (the faster batch path), else the list.

    The dump is the same either way: every stage works per image.
    """
    first = arrays[0] if arrays else None
    if first is not None and all(a.shape == first.shape and a.dtype == first.dtype for a in arrays):
        return np.stack(arrays)
    return arrays


def rows_to_batch(batch: dict, mask_labels: dict | None = None, box_labels: dict | None = None) -> dict:
    """A block of rows (``{column: values}``, as ``map_batches`` gives it) as one write_dump batch.

    Args:
        batch: ``{column: sequence of N values}`` with the columns of :data:`ROW_HELP`.
        mask_labels: ``{mask key: {id: name}}`` given to the masks of that key.
        box_labels: ``{box key: {id: name}}`` given to the boxes of that key.

    Returns:
        ``{"images", "masks", "boxes", "captions"}`` as :func:`gpu_media.dump.write_batches`
        takes a part: images (encoded files decoded) and each key's masks as one
        ``(N, ...)`` array where they share a shape and dtype, else as a list; boxes
        in the batched form with ``image_index`` counted in the block.

    Raises:
        gpu_media.MediaError: an unknown column, an image file that does not decode, a
            box column whose length differs from its ``xyxy``.
    """
    mask_keys, box_keys, _ = _columns(batch)
    mask_labels, box_labels = mask_labels or {}, box_labels or {}
    n = len(batch["image"])
    images = _stacked([_decode(v, i) if _is_bytes(v) else np.asarray(v) for i, v in enumerate(batch["image"])])
    out: dict[str, Any] = {"images": images, "masks": None, "boxes": None, "captions": None}
    if "caption" in batch:
        out["captions"] = [None if c is None else str(c) for c in batch["caption"]]
    if mask_keys:
        out["masks"] = {}
        for key in mask_keys:
            spec = {"mask_data": _stacked([np.asarray(m) for m in batch[f"masks__{key}"]])}
            if key in mask_labels:
                spec["class_labels"] = mask_labels[key]
            out["masks"][key] = spec
    if box_keys:
        out["boxes"] = {}
        for key in box_keys:
            xyxy = [np.asarray(v, dtype=np.float64).reshape(-1, 4) for v in batch[f"boxes__{key}__xyxy"]]
            spec = {"xyxy": np.concatenate(xyxy) if xyxy else np.zeros((0, 4)), "domain": "pixel",
                    "image_index": np.concatenate([np.full(len(x), i, np.int64) for i, x in enumerate(xyxy)])}
            for field, name in (("class_id", "class_id"), ("score", "scores")):
                col = f"boxes__{key}__{field}"
                if col not in batch:
                    continue
                vals = [np.asarray(v).reshape(-1) for v in batch[col]]
                for i, (v, x) in enumerate(zip(vals, xyxy)):
                    if len(v) != len(x):
                        raise MediaError(f"image {i}: {col} has {len(v)} values for {len(x)} boxes",
                                         index=i, key=key, item=col)
                arr = np.concatenate(vals) if vals else np.zeros(0)
                spec[name] = {"score": arr.astype(np.float64)} if field == "score" else arr  # ids checked there
            if key in box_labels:
                spec["class_labels"] = box_labels[key]
            out["boxes"][key] = spec
    if len(images) != n:  # pragma: no cover - one image per row
        raise MediaError("rows: internal length mismatch")
    return out


def _feed(h, value) -> None:
    """Feed one cell's exact value (type, dtype, shape, bytes) into the hash ``h``."""
    if value is None:
        h.update(b"N")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        h.update(b"B%d:" % len(b) + b)
    elif isinstance(value, str):
        b = value.encode("utf-8")
        h.update(b"S%d:" % len(b) + b)
    else:
        a = np.ascontiguousarray(np.asarray(value))
        if a.dtype.kind == "O":
            h.update(b"L%d:" % a.size)
            for v in a.reshape(-1):
                _feed(h, v)
            return
        h.update(f"A{a.dtype.str}{a.shape}:".encode("ascii"))
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")  # the bytes themselves, not a copy


def block_id(batch: dict, fingerprint: str) -> str:
    """The id of a block: sha256 of ``fingerprint`` and of every cell of its rows, column by column (hex).

    Args:
        batch: ``{column: N values}``.
        fingerprint: what else decides the block's output (key, step, options, labels).

    Returns:
        64 hex digits.
    """
    h = hashlib.sha256(b"gpu-media block v1\0" + fingerprint.encode("utf-8") + b"\0")
    for name in sorted(batch):
        h.update(b"C" + name.encode("utf-8") + b"\0")
        values = batch[name]
        h.update(b"%d:" % len(values))
        for v in values:
            _feed(h, v)
    return h.hexdigest()


# --------------------------------------------------------------------------------------- the actor


def _labels_json(labels: dict) -> dict:
    return {k: {str(c): v for c, v in lab.items()} for k, lab in labels.items()}


def _labels_back(labels: dict) -> dict:
    return {k: {int(c): v for c, v in lab.items()} for k, lab in labels.items()}


class BlockWriter:
    """The ``map_batches`` actor: one block in, its files and partial index written, one row out.

    Each call returns ``{"block": [id], "part": [partial index JSON], "written": [bool]}``.
    """

    def __init__(self, out: str, storage_options: dict | None, options: DumpOptions, key: str, step: int | str,
                 stem: str, mask_labels: dict, box_labels: dict, fingerprint: str, threads: int) -> None:
        """Open the output once per actor; arguments as :func:`write_dump_dataset` resolved them."""
        self.output = open_output(out, storage_options)
        self.options, self.key, self.step, self.stem = options, key, step, stem
        self.mask_labels, self.box_labels = mask_labels, box_labels
        self.fingerprint, self.threads = fingerprint, max(1, threads)
        self.parts = _parts_dir(key, step)

    def __call__(self, batch: dict) -> dict:
        """Write one block (or find it written); returns its partial index.

        A failure of the storage is raised as a :class:`gpu_media.errors.DumpWriteError`
        naming the location (it reaches the driver whole; the storage's own exception
        may not unpickle there).
        """
        try:
            return self._block(batch)
        except Exception as exc:
            cause = storage_failure(exc)
            if cause is None or isinstance(cause, DumpWriteError):
                raise
            err = DumpWriteError(f"{self.output.url}: {_one_line(cause)}", key=self.key, item=self.output.url)
            err.errno = getattr(cause, "errno", None)
            raise err from None

    def _block(self, batch: dict) -> dict:
        t0 = time.perf_counter()
        bid = block_id(batch, self.fingerprint)
        rel = f"{self.parts}/{bid}.json"
        part = self.output.get(rel)
        if part is not None and self.output.local is not None and missing_files(
                self.output.local, paths_of(json.loads(part.decode("utf-8")))):
            part = None  # a file it names was removed since (an overwrite of an aliasing key): write it again
        written = part is None
        if written:
            part = json_bytes(self._write(batch, bid, t0))
            self.output.put(rel, part, overwrite=True)  # after every file of the block
        return {"block": np.array([bid]), "part": np.array([part.decode("utf-8")], dtype=object),
                "written": np.array([written])}

    def _write(self, batch: dict, bid: str, t0: float) -> dict:
        part = rows_to_batch(batch, self.mask_labels, self.box_labels)
        plan = prepare(part["images"], self.options, masks=part["masks"], boxes=part["boxes"],
                       captions=part["captions"])
        out = self.output
        root = out.local or ""
        with contextlib.ExitStack() as held:
            # a local folder's files as write_dump writes them (each folder opened once, O_TMPFILE + link)
            put = out.put if out.local is None else held.enter_context(FolderWriter(root, self.options.durable)).write

            def write_chunk(bounds):
                with durable_writes(self.options.durable):  # local files: fsynced in this thread
                    return [image_json(rec, root, self.stem, plan, put=put) for rec in encode_chunk(plan, *bounds)]

            dicts = [d for done in ordered(write_chunk, chunks(plan), self.threads) for d in done]
        return {
            "_type": "gpu-media/dump-part", "version": 1, "key": self.key, "step": self.step, "block": bid,
            "writer": {"pid": os.getpid(), "host": socket.gethostname(), "seconds": time.perf_counter() - t0},
            "count": len(dicts), "images": dicts, "captions": plan.captions,
            "mask_report": [{k: {str(c): v for c, v in r.items()} for k, r in rep.items()} for rep in plan.report],
            "mask_class_labels": _labels_json(plan.mask_labels),
            "box_class_labels": _labels_json(plan.boxes.class_labels if plan.boxes is not None else {}),
        }


def _parts_dir(key: str, step) -> str:
    return f"{PARTS_DIR}/{index_name(key, step)[: -len('.index.json')]}"


# ------------------------------------------------------------------------------------ the driver


def write_dump_dataset(ds: Any, out: str | os.PathLike, *, key: str, step: int | str = 0, classes: Any = None,
                       mask_labels: dict | None = None, box_labels: dict | None = None, file_type: str = "png",
                       quality: int = 75, compression_level: int | None = None, draw_boxes: bool = False,
                       normalize: bool = True, device: str = "auto", thickness: int = 2, colors: dict | None = None,
                       strict_masks: bool = False, viewer: bool = True, overwrite: bool = False,
                       durable: bool = True, batch_size: int = 32, num_workers: int | None = None,
                       storage_options: dict | None = None, ray_remote_args: dict | None = None) -> DatasetDump:
    """Write a Ray Data dataset of images as one dump (docs/SPEC.md 6, 6.5), encoded by Ray actors.

    Args:
        ds: a ``ray.data.Dataset``, one image per row (columns as in :data:`ROW_HELP`).
        out: a local folder, or an fsspec URL (``s3://bucket/prefix``, ``gs://...``,
            ``file://...``; see :mod:`gpu_media.storage`). Every worker must reach it:
            on a cluster, a bucket or a shared file system.
        key: the log key (str), as for :func:`gpu_media.write_dump`.
        step: the step (int or str).
        classes: as for :func:`gpu_media.write_dump`: labels of every mask and box key
            given none.
        mask_labels: ``{mask key: {id: name}}`` (wins over ``classes``).
        box_labels: ``{box key: {id: name}}`` (wins over ``classes``). Keys given no
            labels get wandb's ``class_<c>`` for the ids present in the whole dataset,
            as one batch would.
        file_type: as for :func:`gpu_media.write_dump`.
        quality: as for :func:`gpu_media.write_dump`.
        compression_level: as for :func:`gpu_media.write_dump`.
        draw_boxes: as for :func:`gpu_media.write_dump`.
        normalize: as for :func:`gpu_media.write_dump`.
        device: "auto" (the GPU backend with ``num_gpus=1`` per actor where the cluster
            has GPUs, else the CPU backend), "cpu" or "gpu" (the cluster must have GPUs).
        thickness: as for :func:`gpu_media.write_dump`.
        colors: as for :func:`gpu_media.write_dump`.
        strict_masks: as for :func:`gpu_media.dump.DumpOptions`.
        viewer: also (re)write ``index.html`` at ``out`` after the index.
        overwrite: replace an existing index of ``key`` at ``step`` (else it is an
            error, before any work). With it, files that only the old index named are
            removed afterwards (local folders and URLs alike).
        durable: in a local folder, fsync every file and folder before the index names
            them (docs/SPEC.md 6.4); an object store has no such step.
        batch_size: rows per block (the unit of work, of the partial indexes and of
            resuming).
        num_workers: actors in the pool (default: the cluster's GPUs with the GPU
            backend, else its CPUs minus one, at least 1).
        storage_options: keyword arguments of the fsspec file system of ``out``.
        ray_remote_args: more arguments of the actors (``max_restarts``,
            ``runtime_env``, ``num_cpus``, ...), passed to ``map_batches``.

    Returns:
        a :class:`DatasetDump`; its ``images`` are what :func:`gpu_media.write_dump`
        returns for the same rows.

    Raises:
        gpu_media.MediaError: Ray is not installed; a bad key, step, option or column;
            ``out`` cannot be written (a missing bucket, bad credentials: checked with a
            probe before any work starts); bad rows (raised from the block that has
            them; blocks already written stay, and a re-run resumes); an empty dataset.
        gpu_media.errors.DumpWriteError: the storage (the disk, an object store, its
            network) failed while the workers wrote the blocks (:func:`storage_failure`):
            one line saying how many blocks (and images) are written and that running
            the same call again resumes; no index is written.
        gpu_media.DumpExistsError: the index exists and ``overwrite`` is False.
        gpu_media.DeviceError: ``device="gpu"`` on a cluster without GPUs.

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> import ray  # doctest: +SKIP
        >>> ds = ray.data.from_items([{"image": np.zeros((4, 4, 3), np.uint8), "caption": "a"}])  # doctest: +SKIP
        >>> write_dump_dataset(ds, tempfile.mkdtemp(), key="val").count  # doctest: +SKIP
        1
    """
    ray = _ray()
    check_key_step(key, step)
    step = int(step) if is_integer(step) else step
    if device not in ("auto", "cpu", "gpu"):
        raise MediaError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}", item=device)
    options = DumpOptions(file_type=file_type, quality=quality, compression_level=compression_level,
                          draw_boxes=draw_boxes, normalize=normalize, thickness=thickness, colors=colors,
                          classes=classes, strict_masks=strict_masks, viewer=viewer, overwrite=overwrite,
                          durable=durable)
    batch_size = check_int(batch_size, "batch_size", lo=1)
    num_workers = check_int(num_workers, "num_workers", lo=1, optional=True)
    mask_labels = {str(k): parse_class_labels(v, f"mask_labels[{k!r}]", MediaError)
                   for k, v in (mask_labels or {}).items()}
    box_labels = {str(k): parse_class_labels(v, f"box_labels[{k!r}]", MediaError)
                  for k, v in (box_labels or {}).items()}
    output = destination(out, storage_options)
    output.check()
    name = index_name(key, step)
    if output.local is not None:
        root = output.local
        check_overwrite(root, key, step, overwrite)
        stem = file_stem(root, key, step)
    else:
        check_overwrite_at(output, key, step, overwrite)
        stem = f"{key_path(key)}_{step_str(step)}"

    names = ds.columns()
    if not names:
        raise MediaError("images: the dataset is empty (it has no columns)")
    mask_keys, box_keys, _ = _columns(names)
    if options.classes:
        for k in mask_keys:
            mask_labels.setdefault(k, options.classes)
        for k in box_keys:
            box_labels.setdefault(k, options.classes)

    if not ray.is_initialized():
        ray.init()
    backend, remote, size = placement(device, ray.cluster_resources(), num_workers, ray_remote_args)
    options = dataclasses.replace(options, device=backend)
    threads = int(remote.get("num_cpus") or 1)

    fingerprint = json.dumps({
        "key": key, "step": step, "file_type": options.file_type, "quality": options.quality,
        "compression_level": options.compression_level, "draw_boxes": options.draw_boxes,
        "normalize": options.normalize, "thickness": options.thickness,
        "colors": None if colors is None else {str(k): list(map(int, v)) for k, v in colors.items()},
        "strict_masks": options.strict_masks, "mask_labels": _labels_json(mask_labels),
        "box_labels": _labels_json(box_labels),
    }, sort_keys=True)
    writer_args = dict(out=out if output.local is None else output.local, storage_options=storage_options,
                       options=options, key=key, step=step, stem=stem, mask_labels=mask_labels,
                       box_labels=box_labels, fingerprint=fingerprint, threads=threads)

    claim_path = None
    with contextlib.ExitStack() as held:
        if output.local is not None:
            os.makedirs(output.local, exist_ok=True)
            if overwrite:  # as write_dump: no other dump may remove or replace files while this one runs
                held.enter_context(folder_lock(output.local))
                claim_path = claim(output.local, stem)
            else:
                with folder_lock(output.local):  # as write_dump: claimed before any worker looks for a file
                    claim_path = claim(output.local, stem)
            held.callback(release, claim_path)
            remove_stale_temps(dump_folders(output.local))
        rows = _write_blocks(ray, ds, writer_args, batch_size, size, remote, output, key, step)
        parts = [json.loads(r["part"]) for r in rows]
        if not parts:
            raise MediaError("images: the dataset is empty")
        dicts = [d for p in parts for d in p["images"]]
        captions = [c for p in parts for c in p["captions"]]
        report = [{k: {int(c): v for c, v in r.items()} for k, r in rep.items()}
                  for p in parts for rep in p["mask_report"]]
        index = index_json(key, step, dicts, captions, report,
                           merge_labels([_labels_back(p["mask_class_labels"]) for p in parts]),
                           merge_labels([_labels_back(p["box_class_labels"]) for p in parts]), options)
        if output.local is not None:
            root = output.local
            ours = paths_of(index)
            if durable:
                for folder in folders_up(root, ours | {f"{_parts_dir(key, step)}/x"}):
                    fsync_dir(folder)
            if not overwrite:
                held.enter_context(folder_lock(root))
            finish_dump(root, index_path(root, key, step), json_bytes(index), ours, options, key, step,
                        claim_path=claim_path)
            where = index_path(root, key, step)
        else:
            finish_dump_at(output, name, index, options)
            where = f"{output.url}/{name}"
    output.remove_tree(_parts_dir(key, step))
    if output.local is not None:
        try:
            os.rmdir(os.path.join(output.local, PARTS_DIR))  # when no other dump's parts are left there
        except OSError:
            pass
    return DatasetDump(index=where, count=len(dicts), blocks=len(parts),
                       written=sum(bool(r["written"]) for r in rows), images=dicts,
                       worker_seconds=sum(p["writer"]["seconds"] for p, r in zip(parts, rows) if r["written"]))


def placement(device: str, resources: dict, num_workers: int | None = None,
              ray_remote_args: dict | None = None) -> tuple[str, dict, int]:
    """Where the actors run: ``(backend, their resources, how many)`` for a cluster's resources.

    Args:
        device: "auto", "cpu" or "gpu", as :func:`write_dump_dataset` takes it.
        resources: the cluster's, as ``ray.cluster_resources()`` gives them (``{"CPU": 32.0, "GPU": 4.0, ...}``).
        num_workers: actors asked for, or None.
        ray_remote_args: more actor resources and options, which win.

    Returns:
        ``("gpu", {"num_gpus": 1, "num_cpus": 1, ...}, GPUs)`` where the cluster has GPUs and
        ``device`` is not "cpu"; else ``("cpu", {"num_cpus": 1, ...}, CPUs - 1 (at least 1))``;
        ``num_workers`` replaces the count.

    Raises:
        gpu_media.DeviceError: ``device="gpu"`` and the cluster has no GPU.

    Examples:
        >>> placement("auto", {"CPU": 64.0, "GPU": 8.0})
        ('gpu', {'num_gpus': 1, 'num_cpus': 1}, 8)
        >>> placement("auto", {"CPU": 16.0}), placement("cpu", {"CPU": 16.0, "GPU": 2.0}, 4)
        (('cpu', {'num_cpus': 1}, 15), ('cpu', {'num_cpus': 1}, 4))
    """
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    if device == "gpu" and gpus < 1:
        raise DeviceError("device='gpu': the Ray cluster has no GPUs")
    use_gpu = device == "gpu" or (device == "auto" and gpus >= 1)
    remote = {"num_gpus": 1, "num_cpus": 1} if use_gpu else {"num_cpus": 1}
    remote.update(ray_remote_args or {})
    size = num_workers or (gpus if use_gpu else max(1, cpus - 1))
    return ("gpu" if use_gpu else "cpu"), remote, size


#: Modules whose exceptions are the storage's (an object store or its network), not gpu-media's.
_STORAGE_MODULES = ("botocore", "aiobotocore", "s3fs", "fsspec", "gcsfs", "adlfs", "aiohttp", "urllib3",
                    "requests", "google", "azure")


def storage_failure(exc: BaseException) -> BaseException | None:
    """The storage error (the disk, an object store, its network) inside ``exc`` from Ray's workers, or None.

    Ray wraps a worker's exception (``RayTaskError`` and Ray Data's ``UserCodeException``);
    the chain (``__cause__``, ``__context__``, ``.cause``) is searched for an
    ``OSError`` that is not a :class:`gpu_media.MediaError`, or an exception of an
    fsspec / botocore / aiohttp module. A :class:`gpu_media.MediaError` found first
    (bad rows) gives None: that is not the storage's failure.

    Args:
        exc: what the driver caught.

    Returns:
        the storage's exception, or None.

    Examples:
        >>> storage_failure(RuntimeError("x")) is None
        True
        >>> try:
        ...     try:
        ...         raise OSError(28, "No space left on device")
        ...     except OSError as inner:
        ...         raise RuntimeError("task failed") from inner
        ... except RuntimeError as outer:
        ...     storage_failure(outer).strerror
        'No space left on device'
    """
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        inner = getattr(e, "cause", None)
        if isinstance(inner, BaseException) and type(e).__module__.startswith("ray."):
            todo.insert(0, inner)  # Ray's wrapper (RayTaskError(X) is an X too): what the worker raised
            continue
        if isinstance(e, DumpWriteError):
            return e
        if isinstance(e, MediaError):
            return None
        if isinstance(e, OSError) or type(e).__module__.split(".")[0] in _STORAGE_MODULES:
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` of ``exc`` on one line, at most ``limit`` characters."""
    why = " ".join(f"{type(exc).__name__}: {exc}".split())
    return why if len(why) <= limit else why[: limit - 3] + "..."


def _interrupted(output: Output, key: str, step, rows: list[dict], cause: BaseException) -> DumpWriteError:
    """The one-line error of a run stopped by the storage: how many blocks are written, and that a re-run resumes."""
    parts = {r["block"]: json.loads(r["part"]) for r in rows}
    try:  # the partial indexes really there (blocks finished but not yet reported count too)
        names = [n for n in output.listdir(_parts_dir(key, step)) if n.endswith(".json")]
        for rel, data in output.get_many([f"{_parts_dir(key, step)}/{n}" for n in names]).items():
            part = json.loads(data.decode("utf-8"))
            if part.get("key") == key and part.get("step") == step:
                parts.setdefault(rel.rsplit("/", 1)[-1][: -len(".json")], part)
    except Exception:  # noqa: BLE001 - the storage is down: what the driver was told is what is known
        pass
    images = sum(int(p.get("count", 0)) for p in parts.values())
    # (a worker's DumpWriteError "<url>: <why>", to which Ray Data may have added lines of its own)
    why = str(cause).split("\n", 1)[0].split(": ", 1)[-1] if isinstance(cause, DumpWriteError) else _one_line(cause)
    err = DumpWriteError(f"{output.url}: the storage failed while the blocks were written ({why}); "
                         f"{len(parts)} blocks ({images} images) written, no index yet; "
                         "run again to resume (written blocks are skipped)", key=key, item=output.url)
    err.errno = getattr(cause, "errno", None)
    return err


def _write_blocks(ray, ds, writer_args: dict, batch_size: int, size: int, remote: dict, output: Output, key: str,
                  step) -> list[dict]:
    """:func:`_run`, a failure of the storage raised as :func:`_interrupted`'s one-line error."""
    rows: list[dict] = []
    try:
        return _run(ray, ds, writer_args, batch_size, size, remote, rows)
    except Exception as exc:
        cause = storage_failure(exc)
        if cause is None:  # bad rows (a MediaError), a bug: raised as they are
            raise
        raise _interrupted(output, key, step, rows, cause) from exc


def _run(ray, ds, writer_args: dict, batch_size: int, size: int, remote: dict, rows: list[dict]) -> list[dict]:
    """The actors' pass over the dataset: one ``{"block", "part", "written"}`` row per block, in order.

    The rows are appended to ``rows`` as they come back, so that a caller knows how
    many blocks finished when the pass fails.
    """
    ctx = ray.data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.raise_original_map_exception
    ctx.execution_options.preserve_order = True  # the partial indexes come back in the dataset's order
    ctx.raise_original_map_exception = True  # a worker's own exception, not Ray Data's UserCodeException
    try:
        done = ds.map_batches(BlockWriter, fn_constructor_kwargs=writer_args, batch_size=batch_size,
                              batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size), **remote)
        done.context.execution_options.preserve_order = True
        done.context.raise_original_map_exception = True
        for row in done.iter_rows():
            rows.append(row)
        return rows
    finally:
        ctx.execution_options.preserve_order, ctx.raise_original_map_exception = saved


# ------------------------------------------------------------------------ datasets from files


def _coco_row(row: dict, coco: Any) -> dict:
    """One dataset row of image ``row["i"]`` of a checked COCO dataset: decoded, masks rasterized (in a Ray task)."""
    from .formats import coco as _coco

    im = coco.images[int(row["i"])]
    part = _coco.batch(coco, [im], [_coco.read_image(im)])
    out = {"image": part["images"][0], "caption": part["captions"][0]}
    for key, spec in (part["masks"] or {}).items():
        out[f"masks__{key}"] = spec["mask_data"][0]
    for key, spec in part["boxes"].items():
        out[f"boxes__{key}__xyxy"] = spec["xyxy"]
        out[f"boxes__{key}__class_id"] = spec["class_id"]
        if "scores" in spec:
            out[f"boxes__{key}__score"] = spec["scores"]["score"]
    return out


def coco_dataset(coco: Any) -> tuple[Any, dict, dict]:
    """A Ray dataset of a checked COCO dataset, one row per image, as :func:`write_dump_dataset` reads it.

    Images are decoded and masks rasterized in Ray tasks (:func:`gpu_media.formats.coco.read_image`,
    :func:`~gpu_media.formats.coco.rasterize`): the image files must be readable by the
    workers (a shared file system on a cluster).

    Args:
        coco: a :class:`gpu_media.formats.coco.CocoDataset` (from
            :func:`~gpu_media.formats.coco.load_coco`).

    Returns:
        ``(dataset, mask_labels, box_labels)``: the labels to pass to
        :func:`write_dump_dataset`, those :func:`gpu_media.formats.coco.batch` gives,
        so that the dump equals ``gpu-media dump --coco`` without Ray byte for byte.
    """
    from .formats import coco as _coco

    ray = _ray()
    labels = _coco.batch(coco, [], [])
    mask_labels = {k: v["class_labels"] for k, v in (labels["masks"] or {}).items()}
    box_labels = {k: v["class_labels"] for k, v in labels["boxes"].items()}
    n = len(coco.images)
    ds = ray.data.from_items([{"i": i} for i in range(n)], override_num_blocks=max(1, min(n, 256)))
    return ds.map(functools.partial(_coco_row, coco=coco)), mask_labels, box_labels


def _shard_rows(row: dict) -> list[dict]:
    from .formats.npz import load_npz
    from .formats.shards import shard_rows

    return shard_rows(load_npz(str(row["path"])))


def npz_shards_dataset(shards: list[str]) -> Any:
    """A Ray dataset of ``.npz`` shards (:data:`gpu_media.formats.npz.NPZ_HELP`), read in Ray tasks, one row per image.

    Args:
        shards: the shard files, in the dump's order (:func:`gpu_media.formats.shards.npz_shards`); the workers
            must be able to read them.

    Returns:
        the dataset (:func:`gpu_media.formats.shards.shard_rows` of each shard, in order).
    """
    ray = _ray()
    return ray.data.from_items([{"path": p} for p in shards],
                               override_num_blocks=max(1, min(len(shards), 256))).flat_map(_shard_rows)
