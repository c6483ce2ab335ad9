"""A dump's end (docs/SPEC.md 6.4): the overwrite rule, the final rename of the index, the old index's orphans.

The index is renamed into place last, under the folder's lock, so an index that
exists describes a complete dump; with ``overwrite`` the files only the old index
named are removed once the new one is in place; then ``index.html`` is rewritten.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import warnings
from typing import Iterable

from ..errors import DumpExistsError
from ..fileio import fsync_dir, write_atomic
from .index import paths_of
from .layout import index_path
from .options import DumpOptions


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


def folders_up(root: str, rel_paths: Iterable[str]) -> list[str]:
    """The folders holding ``rel_paths`` and every folder between them and ``root``, deepest first, then ``root``.

    What to fsync so that the files' names (and the new folders') are on the disk.

    Args:
        root: the dump folder.
        rel_paths: ``/``-separated paths relative to ``root``.

    Returns:
        the folders' paths under ``root``, deepest first, ``root`` last.

    Examples:
        >>> import os
        >>> [os.path.relpath(f, "d") for f in folders_up("d", ["media/images/a.png", "media/x.json"])]
        ['media/images', 'media', '.']
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
                out |= paths_of(json.loads(f.read().decode("utf-8")))
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


def finish_dump(root: str, index_file: str, data: bytes, ours: set[str], options: DumpOptions, key: str,
                step: int | str) -> None:
    """The dump's last steps, under the folder's lock: the index, the old index's orphans, index.html.

    Args:
        root: the dump folder (absolute).
        index_file: the index's path (:func:`gpu_media.dump.index_path`).
        data: the index's bytes (:func:`gpu_media.dump.json_bytes`).
        ours: the paths the new index names (:func:`gpu_media.dump.index.paths_of`).
        options: the dump's options (``overwrite``, ``durable``, ``viewer``).
        key: the log key, for the error.
        step: the step, for the error.

    Raises:
        gpu_media.DumpExistsError: the index exists and ``options.overwrite`` is False
            (another dump of this key and step finished meanwhile); the files of
            ``ours`` that no index names are removed first.

    Examples:
        >>> import os, tempfile
        >>> from gpu_media.dump import DumpOptions
        >>> root = tempfile.mkdtemp()
        >>> finish_dump(root, os.path.join(root, "k_0.index.json"), b"{}", set(), DumpOptions(viewer=False), "k", 0)
        >>> sorted(os.listdir(root))
        ['k_0.index.json']
    """
    old: set[str] = set()
    if os.path.exists(index_file):
        if not options.overwrite:  # another dump of this key and step finished while this one ran
            _remove_unreferenced(root, ours)
            raise _exists_error(index_file, key, step, meanwhile=True)
        try:
            with open(index_file, "rb") as f:
                old = paths_of(json.loads(f.read().decode("utf-8")))
        except (OSError, ValueError):
            old = set()  # not a readable index: it names nothing this dump could remove
    write_atomic(index_file, data, overwrite=True, durable=options.durable)
    if options.durable:
        fsync_dir(root)
    if old - ours:
        _remove_unreferenced(root, old - ours)
    if options.viewer:
        from ..viewer import write_viewer_locked  # here, not at the top: the viewer's http.server import is slow

        write_viewer_locked(root, durable=options.durable)
