"""Files on disk: the one way gpu_media writes a file (a hidden temporary name, then a rename).

Every file of a dump (images, masks, boxes2D JSON, the index) and the viewer page is
written by :func:`write_atomic` (a dump's media files by :class:`FolderWriter`, which
writes them the same way with each folder opened once per dump), so a name that
exists is always complete: a crash
leaves at most a hidden ``.<name>.<pid>.<8 hex>.tmp`` beside it (nothing, for a new file
on Linux: it has no name until it is whole), never a truncated file under the real
name. With ``durable=True`` the file's bytes are on the disk (``fsync``) before it gets
its real name, and :func:`fsync_dir` puts the names
themselves on the disk, so that even a power cut never leaves a name that exists with
fewer bytes than it was written with (docs/SPEC.md 6.4).

:func:`folder_lock` is the inter-process lock of a dump folder (its ``.gpu-media.lock``
file); :func:`remove_stale_temps` removes the temporary files of a dump that was
killed.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import itertools
import json
import os
import re
import threading
from typing import Any, Iterable, Iterator

from .errors import MediaError

#: The lock file of a dump folder (docs/SPEC.md 6.4); an empty file, left in place.
LOCK_NAME = ".gpu-media.lock"

#: ``.<final name>.<pid>.<8 hex>.tmp``: the temporary name of :func:`write_atomic`.
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp$")


def relative_path(p: object) -> str | None:
    r"""``p`` if it is a safe ``/``-separated path relative to a dump folder, else None.

    Safe: a non-empty str, not absolute, without NUL and without an empty, ``.`` or
    ``..`` component; on Windows also without ``\`` or ``:`` (a drive or a second
    separator there). ``:`` and ``\`` are ordinary name characters elsewhere, and the
    dump writes keys that hold them as they are (docs/SPEC.md 6.2). Used wherever a
    path is read back from an index (the viewer, overwrite's orphan removal).

    Examples:
        >>> relative_path("media/images/a:b_0_0123.png")
        'media/images/a:b_0_0123.png'
        >>> relative_path("media/../x.png") is None
        True
    """
    if not isinstance(p, str) or not p or p.startswith("/") or "\x00" in p:
        return None
    if os.name == "nt" and ("\\" in p or ":" in p):
        return None
    if any(s in ("", ".", "..") for s in p.split("/")):
        return None
    return p


#: The 8 hex digits of :func:`write_atomic`'s temporary names: a counter from a random start (unique in the
#: process; the pid tells processes apart, the random start processes of equal pid in other containers).
_TEMP_IDS = itertools.count(int.from_bytes(os.urandom(4), "little"))


def _new_temp_ids() -> None:  # a forked child starts its own sequence (its pid differs, but be sure)
    global _TEMP_IDS
    _TEMP_IDS = itertools.count(int.from_bytes(os.urandom(4), "little"))


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_temp_ids)

_DURABLE: contextvars.ContextVar[bool] = contextvars.ContextVar("gpu_media_durable_writes", default=True)


@contextlib.contextmanager
def durable_writes(durable: bool) -> Iterator[None]:
    """Make ``durable`` the default of :func:`write_atomic` in this thread for the ``with`` block.

    How a dump's option reaches the files its writer threads write (each thread sets
    it around its own work; threads do not inherit it).

    Args:
        durable: the default of ``write_atomic(durable=None)`` inside the block.

    Examples:
        >>> import os, tempfile
        >>> with durable_writes(False):  # no fsync: faster, not power-cut safe
        ...     write_atomic(os.path.join(tempfile.mkdtemp(), "a.txt"), b"x")
    """
    token = _DURABLE.set(bool(durable))
    try:
        yield
    finally:
        _DURABLE.reset(token)


def read_json(path: str | os.PathLike, what: str) -> Any:
    """The JSON document in file ``path``; ``what`` names the file in the error.

    Raises:
        gpu_media.MediaError: ``<what> '<path>': cannot read (...)`` or ``...: not valid JSON (...)``.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "a.json")
        >>> write_atomic(path, b'{"a": 1}')
        >>> read_json(path, "test file")
        {'a': 1}
        >>> read_json(path + ".missing", "test file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        gpu_media.errors.MediaError: test file '...a.json.missing': cannot read (No such file or directory)
    """
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except OSError as exc:
        raise MediaError(f"{what} {os.fspath(path)!r}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"{what} {os.fspath(path)!r}: not valid JSON ({exc})") from None


def write_atomic(path: str, data: bytes, *, overwrite: bool = False, durable: bool | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    A new file (not ``overwrite``) on Linux is made without a name instead (``O_TMPFILE``)
    and linked to ``path`` once written: no temporary name at all, and one operation on
    the folder instead of two (on a busy disk the create and the rename each wait for the
    folder); elsewhere, or where the file system cannot, the temporary name.

    Args:
        path: the file to write; its folder is created if missing.
        data: the file's bytes.
        overwrite: replace an existing file. Without it an existing ``path`` is left
            as it is: the dump's file names are content-addressed and renamed into
            place only when complete, so an existing name already holds these bytes.
        durable: ``fsync`` the temporary file before the rename, so that the name,
            once it is on the disk (:func:`fsync_dir` of the folder), never names
            fewer bytes, even after a power cut. None: as :func:`durable_writes`
            set it in this thread (True unless set).

    Raises:
        OSError: the disk; the temporary file is removed and ``path`` is unchanged.

    Examples:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "sub", "a.json")
        >>> write_atomic(path, b"{}")
        >>> write_atomic(path, b"[]")  # exists: left as it is
        >>> open(path, "rb").read()
        b'{}'
        >>> write_atomic(path, b"[]", overwrite=True)
        >>> open(path, "rb").read(), sorted(os.listdir(os.path.dirname(path)))
        (b'[]', ['a.json'])
    """
    if not overwrite and os.path.exists(path):
        return  # content-addressed and renamed into place: already complete
    if durable is None:
        durable = _DURABLE.get()
    if not overwrite and _TMPFILE and _write_unnamed(path, data, durable):
        return
    d, base = os.path.split(path)
    tmp = os.path.join(d, f".{base}.{os.getpid()}.{next(_TEMP_IDS) & 0xFFFFFFFF:08x}.tmp")
    f = _in_folder(d, lambda: open(tmp, "wb"))
    try:
        with f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _in_folder(d: str, open_it):
    """``open_it()``, with folder ``d`` made first where it is missing (up to three tries).

    The folder is made with its first file, and another dump may remove it meanwhile as
    empty: a ``FileNotFoundError`` makes it again and tries once more.
    """
    for attempt in range(3):
        try:
            return open_it()
        except FileNotFoundError:
            if attempt == 2:
                raise
            os.makedirs(d or ".", exist_ok=True)


#: Linux's ``O_TMPFILE``: a file without a name, linked into place once written (:func:`_write_unnamed`).
_TMPFILE = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0


def _write_unnamed(path: str, data: bytes, durable: bool) -> bool:
    """Write ``data`` to a new file that has no name until it is whole (``O_TMPFILE``), then link it to ``path``.

    The file is made in ``path``'s folder without a name, written (and fsynced), then
    given its name with ``linkat``: one operation on the folder instead of two (a
    temporary name, then a rename), and a process killed meanwhile leaves nothing
    behind. A name that exists meanwhile is kept (the dump's names are
    content-addressed). Returns False, having done nothing, where the file system
    cannot make such a file (the caller then uses a temporary name).
    """
    d, base = os.path.split(path)
    dfd = _in_folder(d, lambda: _open_dir(d or "."))
    try:
        return _link_new(dfd, base, data, durable)
    finally:
        os.close(dfd)


def _open_dir(d: str) -> int:
    return os.open(d, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _link_new(dfd: int, name: str, data: bytes, durable: bool) -> bool:
    """:func:`_write_unnamed` in the open folder ``dfd``: an ``O_TMPFILE`` file written, (fsynced,) linked as ``name``.

    Returns False, having done nothing, where the file system cannot make such a file.
    Raises ``OSError`` where the folder was removed (its descriptor then names a folder
    without a name, where nothing can be made: ``ENOENT``, or ``EPERM`` on Linux 6).
    """
    try:
        fd = os.open(".", _TMPFILE | os.O_WRONLY | _CLOEXEC, 0o666, dir_fd=dfd)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOTSUP):
            return False  # no O_TMPFILE on this file system
        raise
    try:
        done = os.write(fd, data)
        if done < len(data):  # a short write: the rest (a full disk raises on the next call)
            view = memoryview(data)[done:]
            while view:
                view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
        try:
            os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd, follow_symlinks=True)
        except FileExistsError:
            pass  # written meanwhile by another dump: the same bytes
    finally:
        os.close(fd)
    return True


class FolderWriter:
    """The files of one dump under ``root``, each written as :func:`write_atomic` writes a new file.

    Each folder is opened once (its descriptor kept until :meth:`close`) and its files
    are made relative to it: no path is looked up again per file, and no folder is
    opened per file. A new file is made without a name (``O_TMPFILE``), written,
    fsynced when ``durable``, then linked to its name, so a name that exists is always
    complete (docs/SPEC.md 6.4); a name that exists already is left as it is (the
    dump's names are content-addressed). Where ``O_TMPFILE`` is missing (not Linux, or
    a file system without it) every file goes through :func:`write_atomic`. Safe to use
    from several threads at once.

    Args:
        root: the dump folder (its sub-folders are made as files need them).
        durable: ``fsync`` each file before it gets its name.

    Examples:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> with FolderWriter(root, durable=False) as files:
        ...     files.write("media/images/a.png", b"x")
        ...     files.write("media/images/a.png", b"y")  # exists: left as it is
        >>> open(os.path.join(root, "media", "images", "a.png"), "rb").read()
        b'x'
    """

    def __init__(self, root: str, durable: bool = True) -> None:
        """Args: root: the dump folder; durable: fsync each file (see the class docstring)."""
        self.root, self.durable = root, bool(durable)
        self._dirs: dict = {}  # folder (relative, "/"-separated) -> open descriptor
        self._retired: list = []  # descriptors of folders removed meanwhile: closed by close(), not before
        self._lock = threading.Lock()
        self._unnamed = bool(_TMPFILE)

    def __enter__(self) -> FolderWriter:
        """The writer itself, closed (:meth:`close`) when the ``with`` block ends."""
        return self

    def __exit__(self, *exc) -> None:
        """:meth:`close`."""
        self.close()

    def write(self, rel: str, data: bytes) -> None:
        """Write ``data`` as the file ``rel`` (``/``-separated, relative to ``root``) unless it exists.

        Raises:
            OSError: the disk; ``rel`` is then unchanged and no part of the file has a name.
        """
        folder, _, name = rel.rpartition("/")
        if self._unnamed:
            for attempt in range(3):
                dfd = self._dirs.get(folder)
                if dfd is None:
                    dfd = self._open(folder)
                if self.durable:  # (not durable: no look first; an existing name makes the link fail, and stays)
                    try:
                        os.stat(name, dir_fd=dfd)
                        return  # content-addressed and linked into place whole: already complete (no fsync)
                    except FileNotFoundError:
                        pass
                try:
                    if _link_new(dfd, name, data, self.durable):
                        return
                    self._unnamed = False  # this file system makes no file without a name
                    break
                except OSError:
                    if attempt == 2 or os.fstat(dfd).st_nlink:
                        raise
                    # the folder was removed meanwhile (another dump's cleanup of empty folders): nothing
                    # can be made in it (ENOENT, or EPERM for O_TMPFILE); made again and opened anew
                    self._forget(folder, dfd)
        write_atomic(os.path.join(self.root, *rel.split("/")), data, durable=self.durable)

    def _open(self, folder: str) -> int:
        path = os.path.join(self.root, *folder.split("/")) if folder else self.root
        fd = _in_folder(path, lambda: _open_dir(path))
        with self._lock:
            kept = self._dirs.setdefault(folder, fd)
        if kept != fd:  # another thread opened it first
            os.close(fd)
        return kept

    def _forget(self, folder: str, dfd: int) -> None:
        with self._lock:
            if self._dirs.get(folder) == dfd:
                del self._dirs[folder]
                self._retired.append(dfd)  # other threads may still use it: closed at the end only

    def close(self) -> None:
        """Close the folders' descriptors (the files are all complete already)."""
        with self._lock:
            fds, self._dirs, self._retired = [*self._dirs.values(), *self._retired], {}, []
        for fd in fds:
            os.close(fd)


def fsync_dir(path: str) -> None:
    """``fsync`` a folder, so that the names renamed or created in it are on the disk.

    A no-op where folders cannot be opened (Windows).

    Args:
        path: an existing folder.

    Raises:
        OSError: the disk.

    Examples:
        >>> import tempfile
        >>> fsync_dir(tempfile.mkdtemp())
    """
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    """Hold the inter-process lock of ``folder`` (its :data:`LOCK_NAME` file) for the ``with`` block.

    ``fcntl.flock`` on the file where it exists (POSIX: the lock ``filelock`` itself
    takes there, so the two exclude each other; taken in a few microseconds, where
    :class:`filelock.FileLock` spends over 0.1 ms, which counts for a small dump that
    takes the lock twice), else :class:`filelock.FileLock` when the ``filelock``
    package is installed (a core dependency: Windows' lock); where neither exists the
    block runs unlocked. Blocks until the lock is free; a process that dies releases
    it. Not reentrant: a second ``folder_lock`` of the same folder inside the block
    waits forever. The lock file is created if missing and never removed (removing
    it would let two processes hold "the" lock on two files).

    Args:
        folder: an existing folder.

    Raises:
        OSError: the lock file cannot be created or opened.

    Examples:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with folder_lock(folder):
        ...     write_atomic(os.path.join(folder, "index.html"), b"<p>")
        >>> sorted(os.listdir(folder))
        ['.gpu-media.lock', 'index.html']
    """
    path = os.path.join(folder, LOCK_NAME)
    try:
        import fcntl
    except ImportError:  # Windows: filelock's lock, if installed
        try:
            from filelock import FileLock  # lazily: gpu_media works without it
        except ImportError:  # neither fcntl nor filelock: no lock
            yield
            return
        with FileLock(path):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (``os.kill(pid, 0)``); True where unknown.

    Args:
        pid: a process id.

    Returns:
        False only when the process is known not to exist.

    Examples:
        >>> import os
        >>> pid_alive(os.getpid())
        True
    """
    if pid <= 0 or os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process (an impossible pid included)
        return False
    except OSError:  # PermissionError: someone else's live process
        return True
    return True


def remove_stale_temps(folders: Iterable[str]) -> list[str]:
    """Remove the :func:`write_atomic` temporary files whose writer process is gone.

    Only names that match :data:`TEMP_NAME` and whose ``<pid>`` is not alive
    (:func:`pid_alive`) are removed; a live writer's files are never touched.

    Args:
        folders: folders to look in (not recursively); missing ones are skipped.

    Returns:
        the paths removed.

    Examples:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> live = os.path.join(folder, f".a.png.{os.getpid()}.0123abcd.tmp")
        >>> open(live, "wb").close()
        >>> remove_stale_temps([folder, os.path.join(folder, "missing")])  # the writer (this process) lives
        []
    """
    removed = []
    for folder in folders:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            m = TEMP_NAME.match(name)
            if m is None or pid_alive(int(m.group("pid"))):
                continue
            path = os.path.join(folder, name)
            try:
                os.unlink(path)
            except OSError:  # another dump removed it first (or it is a folder)
                continue
            removed.append(path)
    return removed
