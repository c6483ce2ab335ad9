"""Stage 5: batches written as wandb's own media files and JSON (docs/SPEC.md 6).

The files' layout under ``out_dir`` (wandb 0.31's run ``files/`` layout) is in
:mod:`gpu_media.dump.layout`.

Every file goes to a hidden temporary name in its folder, is fsynced and renamed into
place, so a name that exists is complete; the folders are fsynced and the index is
renamed into place last, so an index that exists describes a complete dump, even after
a power cut. File names are content-addressed, so running the same dump again (after
an interruption, say) writes the missing files only and the same index. The index and
``index.html`` are written under the folder's inter-process lock, so dumps running at
once into one folder all appear in its viewer; a dump whose index exists already is
an error unless ``overwrite=True`` (docs/SPEC.md 6.4).

The package's modules, one concern each: :mod:`~gpu_media.dump.options`
(:class:`DumpOptions`), :mod:`~gpu_media.dump.layout` (wandb's naming),
:mod:`~gpu_media.dump.pipeline` (validation, chunks, workers, the ordered writer),
:mod:`~gpu_media.dump.index` (the JSON), :mod:`~gpu_media.dump.finish` (overwrite,
orphans, the final rename); this module runs them (:func:`write_batches`).
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..checks import is_integer
from ..errors import DumpWriteError, MediaError
from ..fileio import FolderWriter, folder_lock, fsync_dir, remove_stale_temps
from ..storage import Output, check_local_folder, is_url, open_output
from . import pipeline
from .finish import check_overwrite, check_overwrite_at, claim_folder, finish_dump, finish_dump_at, folders_up, release
from .index import image_json, index_json, json_bytes, merge_labels, paths_of, separated_json
from .layout import (
    BOX_DIR,
    IMAGE_DIR,
    MASK_DIR,
    check_key_step,
    dump_folders,
    file_stem,
    index_name,
    index_path,
    key_path,
    step_str,
)
from .options import DumpOptions
from .pipeline import Plan, encode_chunk, prepare

__all__ = [
    "write_dump", "write_dump_batches", "write_batches", "DumpOptions", "Plan", "prepare", "encode_chunk",
    "image_json", "separated_json", "index_json", "merge_labels", "json_bytes", "check_key_step", "check_overwrite",
    "file_stem", "index_name", "index_path", "key_path", "step_str", "IMAGE_DIR", "MASK_DIR", "BOX_DIR",
    "destination",
]


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
               durable: bool = True, storage_options: dict | None = None) -> list[dict]:
    """Write a batch as wandb's media files plus an index, for offline evaluation (docs/SPEC.md 6).

    Args:
        out_dir: folder (created if missing); files go under ``media/`` as in a
            wandb run's ``files/`` folder, the index to ``<enc(key)>_<enc_step(step)>.index.json``
            (:func:`index_name`). Or a URL ``<scheme>://...`` (docs/SPEC.md 6.5):
            ``file://`` is a local folder, any other scheme an fsspec file system
            (``s3://bucket/prefix`` needs the s3 extra), never a local folder name.
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
        storage_options: keyword arguments of the fsspec file system of a URL
            ``out_dir`` (``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``
            for s3fs); unused for a local folder.

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
            before any file is written (naming the batch index and key); an empty
            ``out_dir``; a URL whose fsspec package is not installed (the message
            names the extra) or whose scheme fsspec does not know; a file the
            dump found present and was removed before its index was written (run
            it again).
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
        ['.gpu-media-claims', '.gpu-media.lock', 'index.html', 'media', 'val_3.index.json', 'viewer']

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
    return write_batches(out_dir, [batch], options, key=key, step=step, storage_options=storage_options)


def write_dump_batches(out_dir: str | os.PathLike, batches: Iterable[Mapping[str, Any]], *, key: str,
                       step: int | str = 0, total: int | None = None, classes: Any = None, file_type: str = "png",
                       quality: int = 75, compression_level: int | None = None, draw_boxes: bool = False,
                       normalize: bool = True, layout: str | None = None, device: str = "auto", thickness: int = 2,
                       colors: Mapping[int, Sequence[int]] | None = None, chunk_size: int | None = None,
                       progress: bool = False, viewer: bool = True, overwrite: bool = False,
                       durable: bool = True, storage_options: dict | None = None) -> list[dict]:
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
        storage_options: as for :func:`write_dump`.

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
    return write_batches(out_dir, batches, options, key=key, step=step, total=total,
                         storage_options=storage_options)


_SEEN_FOLDERS: set = set()


def _first_dump_here(root: str) -> bool:
    """True the first time this process dumps into ``root`` (the folder itself: its device and inode).

    The stale temporary files of a folder are looked for then, and whenever a dump finds the
    claim of a dead process (:func:`gpu_media.dump.finish.claim_folder`): a dump writes its
    temporary files only while its claim stands, so a killed one leaves its claim. A training
    loop's dumps into one folder then do not list every folder of the dump at each step.
    """
    try:
        st = os.stat(root)
    except OSError:
        return True
    here = (st.st_dev, st.st_ino)
    if here in _SEEN_FOLDERS:
        return False
    if len(_SEEN_FOLDERS) > 1 << 16:
        _SEEN_FOLDERS.clear()
    _SEEN_FOLDERS.add(here)
    return True


def _claim(root: str, stem: str, options: DumpOptions, held: contextlib.ExitStack) -> tuple[str, bool]:
    """The dump's claim (released when ``held`` closes), then the stale temporary files removed if there may be any.

    Returns the claim's path and whether the claim of a dead process was found (a dump was
    killed in the folder: the viewer's list is then made from a listing of the folder).
    """
    os.makedirs(root, exist_ok=True)
    if options.overwrite:  # no other dump may remove or replace files while this one runs
        held.enter_context(folder_lock(root))
        claim_path, dead = claim_folder(root, stem)
    else:
        with folder_lock(root):
            claim_path, dead = claim_folder(root, stem)
    held.callback(release, claim_path)  # also when the dump fails
    if dead or _first_dump_here(root):
        remove_stale_temps(dump_folders(root))
    return claim_path, dead


def _preflight(out_dir) -> None:
    """A local ``out_dir`` checked before any work: its type, a file in the way, the lock file, permissions."""
    if out_dir == "" or is_url(out_dir):  # destination() says what is wrong with these
        return
    check_local_folder(out_dir)


@contextlib.contextmanager
def _disk_errors(out_dir, key: str):
    """An OSError of the block (the disk, while the media files are written) as :func:`_not_indexed`'s error."""
    try:
        yield
    except OSError as exc:
        if isinstance(exc, MediaError):
            raise
        raise _not_indexed(out_dir, key, exc) from exc


def _not_indexed(out_dir, key: str, exc: OSError) -> DumpWriteError:
    """The disk's failure while the media files were written, naming the folder and saying nothing was indexed."""
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename:
        why += f": {exc.filename}"
    err = DumpWriteError(f"{out_dir}: the dump's files could not be written ({why}); the dump was not indexed: no "
                         "index names any of its files, and running it again (with the space freed) writes it whole",
                         key=key, item=os.fspath(out_dir))
    err.errno = exc.errno
    return err


def write_batches(out_dir: str | os.PathLike, batches: Iterable[Mapping[str, Any]], options: DumpOptions, *,
                  key: str, step: int | str = 0, total: int | None = None,
                  storage_options: dict | None = None,
                  evaluation: dict | Callable[[], dict | None] | None = None) -> list[dict]:
    """The dump itself, given its options: what :func:`write_dump_batches` does once it has built them.

    The order of the writes (docs/SPEC.md 6.4): the existing-index check; then, with
    the first part validated, under the folder's lock, the dump's claim on the files
    it may name (:func:`gpu_media.dump.finish.claim_folder`), and, at the process's
    first dump into the folder or when the claim of a dead process was found there, the
    removal of the temporary files that killed dumps left in the folder
    (:func:`gpu_media.fileio.remove_stale_temps`); the media files (each fsynced in
    the thread that wrote it: on the CPU the chunk worker that encoded it, on the GPU
    a writer thread); an fsync of every folder that received one; then, under the
    folder's lock (:func:`gpu_media.dump.finish.finish_dump`), with ``overwrite`` the
    files only the old index named to the removal journal, the index (temporary
    name, fsync, rename, fsync of the folder), the journal's removals, the viewer, and
    the claim released. At a URL (docs/SPEC.md 6.5) the files are put
    whole, without lock, claim or fsync (:func:`gpu_media.dump.finish.finish_dump_at`).

    Args:
        out_dir: as for :func:`write_dump`.
        batches: as for :func:`write_dump_batches`.
        options: the dump's :class:`DumpOptions` (already validated).
        key: as for :func:`write_dump`.
        step: as for :func:`write_dump`.
        total: as for :func:`write_dump_batches`.
        storage_options: as for :func:`write_dump`.
        evaluation: the index's ``eval`` section (docs/SPEC.md 6.6), or a callable
            giving it once every part has been written (so it may sum what the parts
            gave), or None: no ``eval`` key.

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
    _preflight(out_dir)
    output = destination(out_dir, storage_options)
    remote = output.local is None
    root = output.local or ""
    if remote:  # docs/SPEC.md 6.5: every file an object put whole; no lock, claims or temporary names there
        output.check()
        check_overwrite_at(output, key, step, options.overwrite)
        stem = f"{key_path(key)}_{step_str(step)}"
    else:
        check_overwrite(root, key, step, options.overwrite)
        stem = file_stem(root, key, step)
    put = output.put if remote else None
    dicts, captions, report = [], [], []
    mask_labels, box_labels = [], []  # each part's
    with contextlib.ExitStack() as held:
        started, bar, n_chunks, claim_path, dead = False, None, 0, None, False
        with _disk_errors(out_dir, key):  # a disk failure before the index: one error saying so
            try:
                for part in batches:
                    plan = prepare(part["images"], options, masks=part.get("masks"), boxes=part.get("boxes"),
                                   captions=part.get("captions"))
                    if not started and not remote:  # the first file is about to be written (or found present)
                        claim_path, dead = _claim(root, stem, options, held)
                        put = held.enter_context(FolderWriter(root, options.durable)).write
                    started = True
                    chunks = pipeline.chunks(plan)
                    n_chunks += len(chunks)
                    if bar is None and options.progress and n_chunks > 1:  # more than one chunk: a bar
                        one_part = isinstance(batches, (list, tuple)) and len(batches) == 1
                        bar = _progress(plan.n if total is None and one_part else total)
                        if dicts:
                            bar.update(len(dicts))

                    def encode(bounds, plan=plan):
                        return encode_chunk(plan, *bounds)

                    def write(rec, plan=plan):  # (a local file: the dump's FolderWriter, fsynced if durable)
                        return image_json(rec, root, stem, plan, put=put)

                    def encode_write(bounds, plan=plan):  # the CPU: each image encoded and written in one thread
                        return [image_json(rec, root, stem, plan, put=put) for rec in encode_chunk(plan, *bounds)]

                    for done in pipeline.run(plan, chunks, encode, write, encode_write):
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
        section = evaluation() if callable(evaluation) else evaluation
        index = index_json(key, step, dicts, captions, report, merge_labels(mask_labels), merge_labels(box_labels),
                           options, section)
        if remote:
            finish_dump_at(output, index_name(key, step), index, options)
            return dicts
        ours = paths_of(index)
        if options.durable:  # the files' names on the disk before an index names them
            for folder in folders_up(root, ours):
                fsync_dir(folder)
        if not options.overwrite:
            held.enter_context(folder_lock(root))
        finish_dump(root, index_path(root, key, step), json_bytes(index), ours, options, key, step,
                    claim_path=claim_path, scan_viewer=dead or None)
    return dicts


def destination(out_dir: str | os.PathLike, storage_options: dict | None = None) -> Output:
    """Where a dump goes: the :class:`gpu_media.storage.Output` of a folder or a URL (docs/SPEC.md 6.5).

    A URL (``<scheme>://...``, :func:`gpu_media.storage.is_url`) is never taken as a
    local folder name: ``file://`` is the local folder, any other scheme needs its
    fsspec file system.

    Args:
        out_dir: a folder (str or ``os.PathLike``) or a URL.
        storage_options: keyword arguments of a URL's fsspec file system.

    Returns:
        a :class:`gpu_media.storage.LocalOutput` (``.local`` absolute) or an fsspec one.

    Raises:
        gpu_media.MediaError: ``out_dir`` is empty; the URL's fsspec package is not
            installed (the message names the extra); a scheme fsspec does not know.

    Examples:
        >>> destination("runs/d").local == os.path.abspath("runs/d")
        True
        >>> destination("file:///tmp/d").local
        '/tmp/d'
        >>> destination("")
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: out_dir must be a folder or a URL, got ''
    """
    out = os.fspath(out_dir)
    if not out:
        raise MediaError(f"out_dir must be a folder or a URL, got {out!r}", item=out)
    if isinstance(out, str) and is_url(out):
        return open_output(out, storage_options)
    return open_output(os.path.abspath(out))
