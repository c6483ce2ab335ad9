"""A dump's end (docs/SPEC.md 6.4, 6.5): the overwrite rule, the final rename of the index, the old index's orphans.

The index is renamed into place last, under the folder's lock, so an index that
exists describes a complete dump; then ``index.html`` is rewritten.

Files are removed in one way only, resumably and never from under a running dump:

* A dump *claims* the files it may name (:func:`claim`, under the lock, before it
  looks for any existing file) and releases the claim once its index is in place.
  Keys that alias one path (``k`` and ``/k``) claim the same files.
* Files to remove (with ``overwrite``, those only the old index named) are first
  written to the folder's removal *journal* (:func:`journal_removals`, before the
  new index replaces the old one); then :func:`finish_removals`, at the end of every
  dump into the folder, removes the journal's files that no index names and no live
  claim covers. A dump killed in between leaves the journal for the next one.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import re
import socket
import tempfile
import uuid
import warnings
from typing import TYPE_CHECKING, Iterable

from ..errors import DumpExistsError, MediaError, ViewerWarning
from ..fileio import fsync_dir, pid_alive, relative_path, write_atomic
from .index import json_bytes, paths_of
from .layout import BOX_DIR, IMAGE_DIR, MASK_DIR, index_name, index_path
from .options import DumpOptions

if TYPE_CHECKING:
    from ..storage import Output


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


def check_overwrite_at(output: Output, key: str, step: int | str, overwrite: bool) -> None:
    """:func:`check_overwrite` at a URL (or any :class:`gpu_media.storage.Output`).

    Args:
        output: the dump's location (:func:`gpu_media.storage.open_output`).
        key: the log key.
        step: the step.
        overwrite: whether an existing index may be replaced.

    Raises:
        gpu_media.DumpExistsError: naming the index's URL; ``key`` is the key, ``item`` the index's name.

    Examples:
        >>> import tempfile
        >>> from gpu_media.storage import open_output
        >>> check_overwrite_at(open_output(tempfile.mkdtemp()), "val", 0, overwrite=False)  # no index yet
    """
    name = index_name(key, step)
    if not overwrite and output.exists(name):
        raise DumpExistsError(f"the index of key {key!r} at step {step!r} exists: {output.url}/{name}; pass "
                              "overwrite=True (gpu-media: --overwrite) to replace it", key=key, item=name)


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


# ---- claims: which running dumps may still name which files (docs/SPEC.md 6.4)

#: The folder of the running dumps' claims, in the dump folder: a dump lists it, not the dump folder
#: (which holds every index of a training run), to find the other dumps' claims.
CLAIMS_DIR = ".gpu-media-claims"
#: A running dump's claim file in :data:`CLAIMS_DIR`: ``<pid>.<8 hex>.json``.
CLAIM_NAME = re.compile(r"^(?P<pid>[0-9]+)\.[0-9a-f]{8}\.json$")
#: The removal journal of a dump folder: the files to remove once nothing names them.
JOURNAL_NAME = ".gpu-media-remove.json"


def claim_prefixes(stem: str) -> list[str]:
    """The path prefixes of every media file a dump of ``stem`` (``<path(key)>_<step>``) can write.

    Empty path components are dropped as :func:`gpu_media.dump.image_json` drops them,
    so keys that alias one path (``k`` and ``/k``, ``a//b`` and ``a/b``, ``a/./b`` and
    ``a/_/b``) claim the same prefixes.

    Args:
        stem: the dump's :func:`gpu_media.dump.file_stem`.

    Returns:
        one ``/``-separated prefix per media folder (images, masks, boxes2D).

    Examples:
        >>> claim_prefixes("a//b_0") == claim_prefixes("a/b_0")
        True
        >>> claim_prefixes("k_0")[0]
        'media/images/k_0_'
    """
    return ["/".join(p for p in f"{sub}/{stem}_".split("/") if p) for sub in (IMAGE_DIR, MASK_DIR, BOX_DIR)]


def claim(root: str, stem: str) -> str:
    """Claim, for this process, every file a dump of ``stem`` may name; call it under the folder's lock.

    Made before the dump looks for (and skips) any existing file, and released once
    its index is in place (:func:`release`): while it stands, no dump removes a file
    the claim covers (:func:`finish_removals`), so an index never names a file removed
    after it was found present. Claims of processes that are gone (on this host) are
    removed here.

    Args:
        root: the dump folder (it exists).
        stem: the dump's :func:`gpu_media.dump.file_stem`.

    Returns:
        the claim file's path, for :func:`release`.

    Examples:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> path = claim(root, "k_0")
        >>> live_claims(root)
        ['media/images/k_0_', 'media/images/mask/k_0_', 'media/metadata/boxes2D/k_0_']
        >>> release(path)
        >>> live_claims(root), os.listdir(root), os.listdir(os.path.join(root, CLAIMS_DIR))
        ([], ['.gpu-media-claims'], [])
    """
    return claim_folder(root, stem)[0]


def claim_folder(root: str, stem: str) -> tuple[str, bool]:
    """:func:`claim`, also saying whether the claim of a dead process was found (and removed).

    A dump writes its temporary files only while its claim stands, so a dump that was
    killed leaves its claim: finding one is when the folder may hold temporary files of a
    dead writer (:func:`gpu_media.fileio.remove_stale_temps`).

    Args:
        root: the dump folder (it exists).
        stem: the dump's :func:`gpu_media.dump.file_stem`.

    Returns:
        ``(the claim file's path, whether a dead process's claim was removed)``.

    Examples:
        >>> import tempfile
        >>> path, dead = claim_folder(tempfile.mkdtemp(), "k_0")
        >>> dead
        False
        >>> release(path)
    """
    _, dead = _scan_claims(root, None)  # drops the claims of dead processes
    folder = os.path.join(root, CLAIMS_DIR)
    path = os.path.join(folder, f"{os.getpid()}.{uuid.uuid4().hex[:8]}.json")
    data = json_bytes({"pid": os.getpid(), "host": socket.gethostname(), "prefixes": claim_prefixes(stem)})
    # created in place, not renamed, and never fsynced: only a live process's claim counts, and one
    # read half-written claims everything (live_claims), so a reader never removes too much
    try:
        f = open(path, "xb")
    except FileNotFoundError:  # the folder's first claim: the folder stays (as the lock file) once made
        os.makedirs(folder, exist_ok=True)
        f = open(path, "xb")
    with f:
        f.write(data)
    return path, dead


def release(path: str | None) -> None:
    """Remove the claim file ``path`` (:func:`claim`); nothing if None or gone.

    Args:
        path: what :func:`claim` returned, or None.

    Examples:
        >>> release(None)
    """
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def live_claims(root: str, ignore: str | None = None) -> list[str]:
    """The prefixes that running dumps into ``root`` claim; claims of dead processes on this host are removed.

    A claim of another host, or one that cannot be read while its process lives,
    counts in full (an unreadable one claims everything: ``""``).

    Args:
        root: the dump folder.
        ignore: a claim file's path not to count (the caller's own).

    Returns:
        the claimed ``/``-separated path prefixes, sorted.

    Examples:
        >>> import json, os, socket, tempfile
        >>> root = tempfile.mkdtemp()
        >>> stale = {"pid": 999999999, "host": socket.gethostname(), "prefixes": ["media/images/k_0_"]}
        >>> os.mkdir(os.path.join(root, CLAIMS_DIR))
        >>> with open(os.path.join(root, CLAIMS_DIR, "999999999.0123abcd.json"), "w") as f:  # no such pid
        ...     _ = f.write(json.dumps(stale))
        >>> live_claims(root), os.listdir(os.path.join(root, CLAIMS_DIR))
        ([], [])
    """
    return sorted(_scan_claims(root, ignore)[0])


def _scan_claims(root: str, ignore: str | None) -> tuple[set[str], bool]:
    """:func:`live_claims`' prefixes (unsorted), and whether a dead process's claim was removed."""
    folder = os.path.join(root, CLAIMS_DIR)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return set(), False
    host = socket.gethostname()
    out, dead = set(), False
    for name in names:
        m = CLAIM_NAME.match(name)
        if m is None:
            continue
        path = os.path.join(folder, name)
        if path == ignore:
            continue
        try:
            with open(path, "rb") as f:
                data = json.loads(f.read().decode("utf-8"))
            prefixes = [p for p in data["prefixes"] if isinstance(p, str)]
            other_host = data.get("host") != host
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            prefixes, other_host = [""], False
        if not other_host and not pid_alive(int(m.group("pid"))):
            release(path)
            dead = True
            continue
        out.update(prefixes)
    return out, dead


def _claimed(rel: str, prefixes: list[str]) -> bool:
    return any(rel.startswith(p) for p in prefixes)


# ---- the removal journal


def _read_journal(root: str) -> set[str]:
    path = os.path.join(root, JOURNAL_NAME)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
        return {p for p in data["remove"] if relative_path(p) and p.startswith("media/")}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"gpu-media: {path} cannot be read ({exc}); it is replaced", stacklevel=4)
        return set()


def _write_journal(root: str, pending: set[str], durable: bool) -> None:
    path = os.path.join(root, JOURNAL_NAME)
    if pending:
        write_atomic(path, json_bytes({"remove": sorted(pending)}), overwrite=True, durable=durable)
        if durable:
            fsync_dir(root)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def journal_removals(root: str, rels: set[str], durable: bool) -> None:
    """Add ``rels`` to the folder's removal journal (written whole, then renamed); call it under the folder's lock.

    Written before the index that stops naming them replaces the old one, so that a
    dump killed after that rename has its removals finished by the next dump into the
    folder (:func:`finish_removals`).

    Args:
        root: the dump folder.
        rels: ``/``-separated paths under ``media/``.
        durable: fsync the journal (and the folder) before returning.

    Examples:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "media", "images"))
        >>> open(os.path.join(root, "media", "images", "k_0_a.png"), "wb").close()
        >>> journal_removals(root, {"media/images/k_0_a.png"}, durable=False)
        >>> sorted(os.listdir(root))
        ['.gpu-media-remove.json', 'media']
        >>> finish_removals(root, durable=False)  # no index names it, no dump claims it
        >>> os.listdir(root)
        ['media']
    """
    if rels:
        _write_journal(root, _read_journal(root) | rels, durable)


def finish_removals(root: str, durable: bool, ignore: str | None = None) -> None:
    """Remove the journal's files that no index names and no running dump claims; call it under the folder's lock.

    The journaled files that an index names now are dropped from the journal (they
    are not orphans); those a live claim covers stay in it, for a later dump to
    remove; the journal is removed when nothing is left in it. A folder emptied by the
    removals is removed too. If an index in the folder cannot be read nothing is
    removed (it may name anything) and the journal is kept.

    Args:
        root: the dump folder.
        durable: fsync the rewritten journal.
        ignore: the caller's own claim file, not counted (its dump is indexed already).

    Examples:
        >>> import tempfile
        >>> finish_removals(tempfile.mkdtemp(), durable=False)  # no journal: nothing to do
    """
    pending = _read_journal(root)
    if not pending:
        return
    referenced = _referenced(root)
    if referenced is None:
        return
    prefixes = live_claims(root, ignore)
    kept = {rel for rel in pending - referenced if _claimed(rel, prefixes)}
    _remove_files(root, pending - referenced - kept)
    _write_journal(root, kept, durable)


def _remove_files(root: str, rels: set[str]) -> None:
    """Unlink ``rels`` (relative paths) whose folder resolves inside ``root``, then the folders left empty."""
    real_root = os.path.realpath(root)
    inside: dict[str, bool] = {}
    folders = set()
    for rel in sorted(rels):
        folder = posixpath.dirname(rel)
        if folder not in inside:
            real = os.path.realpath(os.path.join(root, *folder.split("/")))
            inside[folder] = os.path.commonpath([real_root, real]) == real_root
        if not inside[folder]:  # a symbolic link out of the dump: never follow it
            continue
        try:
            os.unlink(os.path.join(root, *rel.split("/")))
        except FileNotFoundError:
            pass
        folders.add(folder)
    for rel in sorted(folders, key=lambda r: -r.count("/")):
        while rel and rel != "media":
            try:
                os.rmdir(os.path.join(root, *rel.split("/")))
            except OSError:  # not empty (or gone)
                break
            rel = posixpath.dirname(rel)


def missing_files(root: str, rels: Iterable[str]) -> list[str]:
    """The ``rels`` (``/``-separated paths relative to ``root``) that do not exist, sorted.

    A folder with more than 64 of them is listed once rather than each file looked up.

    Args:
        root: the dump folder.
        rels: the paths to look for.

    Returns:
        the missing ones.

    Examples:
        >>> import tempfile
        >>> missing_files(tempfile.mkdtemp(), ["media/images/a.png"])
        ['media/images/a.png']
    """
    by_folder: dict[str, list[str]] = {}
    for rel in rels:
        folder, name = posixpath.split(rel)
        by_folder.setdefault(folder, []).append(name)
    missing = []
    for folder, names in by_folder.items():
        path = os.path.join(root, *folder.split("/"))
        if len(names) <= 64:  # a few files: one stat each, whatever the folder holds
            missing.extend(f"{folder}/{n}" for n in names if not os.path.exists(os.path.join(path, n)))
            continue
        try:
            have = set(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            have = set()
        missing.extend(f"{folder}/{n}" for n in names if n not in have)
    return sorted(missing)


def finish_dump(root: str, index_file: str, data: bytes, ours: set[str], options: DumpOptions, key: str,
                step: int | str, claim_path: str | None = None, *, scan_viewer: bool | None = None) -> None:
    """The dump's last steps, under the folder's lock: the index, the removals, index.html (docs/SPEC.md 6.4).

    In order: with ``overwrite``, the files only the old index named go to the removal
    journal (:func:`journal_removals`); every file ``ours`` names is checked to exist;
    the viewer's data file of the index is removed (:func:`gpu_media.viewer.forget_viewer_data`)
    and the index renamed into place (and the folder fsynced); the dump's claim is
    released; the journal's removals are done (:func:`finish_removals`); with
    ``options.viewer`` the viewer is updated (:func:`gpu_media.viewer.update_viewer`:
    this index's data file, the list of indexes, ``index.html`` if it is not the page).

    Args:
        root: the dump folder (absolute).
        index_file: the index's path (:func:`gpu_media.dump.index_path`).
        data: the index's bytes (:func:`gpu_media.dump.json_bytes`).
        ours: the paths the new index names (:func:`gpu_media.dump.index.paths_of`).
        options: the dump's options (``overwrite``, ``durable``, ``viewer``).
        key: the log key, for the error.
        step: the step, for the error.
        claim_path: the dump's claim (:func:`claim`), released here in any case.
        scan_viewer: make the viewer's list from a listing of the folder (True: the
            dump found the claim of a dead process, whose index may have no data file),
            or as :func:`gpu_media.viewer.update_viewer` decides (None).

    Raises:
        gpu_media.DumpExistsError: the index exists and ``options.overwrite`` is False
            (another dump of this key and step finished meanwhile); the files of
            ``ours`` that no index names are removed first.
        gpu_media.MediaError: a file ``ours`` names is missing (removed meanwhile by
            something that holds no claim): the index is not written, and running
            the dump again writes the file.

    Examples:
        >>> import os, tempfile
        >>> from gpu_media.dump import DumpOptions
        >>> root = tempfile.mkdtemp()
        >>> finish_dump(root, os.path.join(root, "k_0.index.json"), b"{}", set(), DumpOptions(viewer=False), "k", 0)
        >>> sorted(os.listdir(root))
        ['k_0.index.json']
    """
    try:
        _finish(root, index_file, data, ours, options, key, step, claim_path, scan_viewer)
    finally:  # last: the dump's temporary files are all written while its claim stands (claim_folder)
        release(claim_path)


def _finish(root: str, index_file: str, data: bytes, ours: set[str], options: DumpOptions, key: str,
            step: int | str, claim_path: str | None, scan_viewer: bool | None = None) -> None:
    if os.path.exists(index_file) and not options.overwrite:
        # another dump of this key and step finished while this one ran: this one's files may go
        journal_removals(root, ours, options.durable)
        finish_removals(root, options.durable, ignore=claim_path)
        raise _exists_error(index_file, key, step, meanwhile=True)
    missing = missing_files(root, ours)
    if missing:
        raise MediaError(f"{len(missing)} files this dump wrote or found were removed while it ran (e.g. "
                         f"{missing[0]}); its index was not written: run the dump again", key=key,
                         item=missing[0])
    old: set[str] = set()
    if os.path.exists(index_file):
        try:
            with open(index_file, "rb") as f:
                old = paths_of(json.loads(f.read().decode("utf-8")))
        except (OSError, ValueError):
            old = set()  # not a readable index: it names nothing this dump could remove
    journal_removals(root, old - ours, options.durable)  # before the index that stops naming them
    from .. import viewer  # here, not at the top: the viewer's http.server import is slow

    # the page's data of the index being replaced goes first: killed after the rename below, the
    # folder's next viewer update finds no data file for the index and writes it from the new one
    # the folder as the viewer's list may have recorded it (update_viewer: the list is made from the list
    # there when nothing else changed the folder since)
    before = viewer.folder_mtime_ns(root)
    try:
        viewer.forget_viewer_data(root, os.path.basename(index_file))
        write_atomic(index_file, data, overwrite=True, durable=options.durable)
        if options.durable:
            fsync_dir(root)
        finish_removals(root, options.durable, ignore=claim_path)  # as if released: the index is in place
    except BaseException:  # the data file may be gone and the folder unchanged: the next update lists it
        viewer.relist_viewer(root)
        raise
    if not options.viewer:
        return
    try:
        # this index's data file and the list of indexes; not the data of the folder's other dumps
        viewer.update_viewer(root, [os.path.basename(index_file)], durable=options.durable,
                             scan=True if scan_viewer else None, before=before)
    except OSError as exc:  # the dump is complete and indexed: a warning, not a failure (docs/SPEC.md 6.4)
        why = exc.strerror or str(exc)
        warnings.warn(ViewerWarning(
            f"{root}: the dump is written and indexed ({os.path.basename(index_file)}), but the viewer "
            f"index.html was not updated ({why}); `gpu-media view {root} --rebuild` writes it again"),
            stacklevel=2)


# ---- at a URL (docs/SPEC.md 6.5): no lock and no claims, the same journal


def _journal_at(output: Output) -> set[str]:
    data = output.get(JOURNAL_NAME)
    if data is None:
        return set()
    try:
        return {p for p in json.loads(data.decode("utf-8"))["remove"] if relative_path(p) and p.startswith("media/")}
    except (ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"gpu-media: {output.url}/{JOURNAL_NAME} cannot be read ({exc}); it is replaced", stacklevel=4)
        return set()


def finish_removals_at(output: Output) -> None:
    """:func:`finish_removals` at a URL: the journal's objects that no index names are removed, then the journal.

    Args:
        output: the dump's location (:func:`gpu_media.storage.open_output`).

    Examples:
        >>> from gpu_media.storage import open_output
        >>> finish_removals_at(open_output("memory://dumps/none"))  # doctest: +SKIP
    """
    pending = _journal_at(output)
    if not pending:
        return
    names = [n for n in output.listdir() if n.endswith(".index.json")]
    referenced: set[str] = set()
    got = output.get_many(names)
    for name in names:
        try:
            referenced |= paths_of(json.loads(got[name].decode("utf-8")))
        except KeyError:
            continue  # removed meanwhile
        except ValueError:
            return  # an unreadable index: it may name anything, so nothing is removed
    for rel in sorted(pending - referenced):
        output.remove(rel)
    output.remove(JOURNAL_NAME)


def finish_dump_at(output: Output, name: str, index: dict, options: DumpOptions) -> None:
    """At a URL: the journal, the index (an object put whole), the journal's removals, index.html (docs/SPEC.md 6.5).

    Args:
        output: the dump's location (a URL's :class:`gpu_media.storage.Output`).
        name: the index's name (:func:`gpu_media.dump.index_name`).
        index: the index JSON.
        options: the dump's options (``overwrite``, ``viewer``).

    Examples:
        >>> from gpu_media.storage import open_output
        >>> out = open_output("memory://dumps/x")  # doctest: +SKIP
        >>> finish_dump_at(out, "k_0.index.json", {"images": []}, DumpOptions(viewer=False))  # doctest: +SKIP
        >>> out.listdir()  # doctest: +SKIP
        ['k_0.index.json']
    """
    old = output.get(name) if options.overwrite else None
    if old is not None:
        try:
            stale = paths_of(json.loads(old.decode("utf-8"))) - paths_of(index)
        except ValueError:
            stale = set()
        if stale:  # journaled before the index that stops naming them
            pending = _journal_at(output) | stale
            output.put(JOURNAL_NAME, json_bytes({"remove": sorted(pending)}), overwrite=True)
    from ..viewer import data_file

    output.remove(data_file(name))  # the page's data of the index being replaced: first (as finish_dump)
    output.put(name, json_bytes(index), overwrite=True)
    finish_removals_at(output)
    if options.viewer:
        try:
            write_viewer_at(output, [name])
        except OSError as exc:  # the dump is complete and indexed: a warning, not a failure (docs/SPEC.md 6.4)
            warnings.warn(ViewerWarning(
                f"{output.url}: the dump is written and indexed ({name}), but the viewer index.html was not "
                f"updated ({' '.join(str(exc).split())}); the next dump there writes it again"), stacklevel=2)


def write_viewer_at(output: Output, changed: Iterable[str] = ()) -> None:
    """The viewer of every index at ``output``: the files :func:`gpu_media.viewer.update_viewer` writes in a folder.

    In a local folder that function itself (a full rebuild); at a URL the same objects:
    the data file of each index in ``changed`` and of every index without one (read
    through a local copy of the index and its box files), the list files
    (:data:`gpu_media.viewer.LIST_FILES`) and
    ``index.html``.

    Args:
        output: the dump's location (:func:`gpu_media.storage.open_output`).
        changed: names of indexes written since the viewer was last brought up to date.

    Examples:
        >>> import os, tempfile
        >>> from gpu_media.storage import open_output
        >>> root = tempfile.mkdtemp()
        >>> write_viewer_at(open_output(root))
        >>> sorted(os.listdir(root))
        ['.gpu-media.lock', 'index.html', 'viewer']
    """
    from ..storage import open_output
    from ..viewer import (
        INDEX_HTML,
        LIST_FILES,
        VIEWER_DIR,
        data_file,
        dump_entry,
        dump_js,
        list_js,
        static_page,
        write_viewer,
    )

    if output.local is not None:
        write_viewer(output.local)
        return
    changed = set(changed)
    names = [n for n in output.listdir() if n.endswith(".index.json")]
    have = set(output.listdir(VIEWER_DIR))
    todo = [n for n in names if n in changed or data_file(n)[len(VIEWER_DIR) + 1:] not in have]
    listed, errors = [n for n in names if n not in todo], []
    with tempfile.TemporaryDirectory(prefix="gpu-media-viewer-") as tmp:
        local = open_output(tmp)
        got = output.get_many(todo)
        boxes = set()
        for name, data in got.items():
            local.put(name, data)
            try:
                index = json.loads(data.decode("utf-8"))
                for d in index.get("images") or []:
                    for v in (d.get("boxes") or {}).values():
                        if isinstance(v, dict) and isinstance(v.get("path"), str):
                            boxes.add(v["path"])
            except (ValueError, AttributeError, TypeError):
                continue  # the viewer reports an unreadable index itself
        for rel, data in output.get_many(sorted(boxes)).items():
            try:
                local.put(rel, data)
            except MediaError:
                continue  # not a path inside the dump: the viewer reports the box file as unreadable
        for name in todo:
            try:
                entry = dump_entry(tmp, name)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                errors.append(f"{name}: cannot read ({exc})")
                if data_file(name)[len(VIEWER_DIR) + 1:] in have:
                    output.remove(data_file(name))
                continue
            output.put(data_file(name), dump_js(entry), overwrite=True)
            listed.append(name)
    for n in LIST_FILES:  # each object put whole, one after the other (as update_viewer)
        output.put(f"{VIEWER_DIR}/{n}", list_js(listed, errors), overwrite=True)
    output.put(INDEX_HTML, static_page().encode("utf-8"), overwrite=True)
