"""Where a dump goes: a local folder, or an fsspec URL (``s3://bucket/prefix``, ``gs://...``, ``file://...``).

:func:`open_output` gives an :class:`Output` with a few operations on ``/``-separated
paths relative to the dump's root (``media/images/x.png``, ``k_0.index.json``):
``put``, ``get``, ``exists``, ``listdir`` and ``remove_tree``.

* A local path, or a ``file://`` URL, is a :class:`LocalOutput`: every file goes
  through :func:`gpu_media.fileio.write_atomic` (a temporary name, then a rename), as
  :func:`gpu_media.write_dump` writes it.
* Any other URL is an :class:`FsspecOutput` over the fsspec file system of its
  protocol (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``; ``pip install
  ".[s3]"``). An object store puts an object whole or not at all, so a name
  that exists is complete there too. Objects get a ``Content-Type`` from their file
  extension (``text/html`` for ``index.html``), so a dump served from the bucket opens
  in a browser.

:meth:`Output.check` writes and removes a probe object, so a missing bucket, bad
credentials or a read-only location fail with one clear :class:`gpu_media.MediaError`
before any work starts.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import tempfile
import uuid

from .errors import (
    DumpLockError,
    DumpPathError,
    DumpPathExistsError,
    DumpPathNotADirectoryError,
    DumpPathTypeError,
    MediaError,
)
from .fileio import LOCK_NAME, write_atomic

__all__ = ["Output", "LocalOutput", "FsspecOutput", "open_output", "is_url", "check_local_folder", "S3_EXTRA"]

S3_EXTRA = 'pip install ".[s3]"'

_FSSPEC_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}


#: ``<scheme>://``: RFC 3986's scheme (a letter, then letters, digits, ``+``, ``-`` or ``.``), two
#: characters at least, so that a Windows drive (``C://x``) stays a path.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(out: object) -> bool:
    """Whether ``out`` is a URL (``<scheme>://...``, any RFC 3986 scheme) rather than a local path.

    A URL is never a local folder name: ``write_dump("s3://b/p", ...)`` writes to the
    bucket or fails, it never creates ``./s3:/b/p`` (docs/SPEC.md 6.5).

    Examples:
        >>> is_url("s3://bucket/prefix"), is_url("my-store://x"), is_url("runs/s3:/x"), is_url("C://x")
        (True, True, False, False)
    """
    return isinstance(out, str) and _URL.match(out) is not None


def _check_rel(rel: str) -> str:
    """``rel`` if it is a relative ``/``-separated path with no empty, ``.`` or ``..`` part."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise MediaError(f"refusing to write {rel!r}: not a relative path inside the dump", item=rel)
    return rel


class Output:
    """A dump's destination; paths are relative to its root and ``/``-separated.

    Attributes:
        url: the destination as given (a path or a URL), for messages.
        local: the absolute local folder, or None for a remote location.
    """

    url: str
    local: str | None = None

    def put(self, rel: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write ``data`` to ``rel`` (kept as it is if it exists, unless ``overwrite``)."""
        raise NotImplementedError

    def get(self, rel: str) -> bytes | None:
        """The bytes of ``rel``, or None where it does not exist."""
        raise NotImplementedError

    def get_many(self, rels: list[str]) -> dict[str, bytes]:
        """``{rel: bytes}`` of those of ``rels`` that exist."""
        out = {}
        for rel in rels:
            data = self.get(rel)
            if data is not None:
                out[rel] = data
        return out

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists."""
        raise NotImplementedError

    def listdir(self, rel: str = "") -> list[str]:
        """The names (not paths) of the files directly in folder ``rel`` (``""``: the root); [] if none."""
        raise NotImplementedError

    def remove_tree(self, rel: str) -> None:
        """Remove folder ``rel`` and everything in it (nothing if it does not exist)."""
        raise NotImplementedError

    def remove(self, rel: str) -> None:
        """Remove file ``rel`` (nothing if it does not exist)."""
        raise NotImplementedError

    def check(self) -> None:
        """Fail now, writing nothing that stays, if the dump could not be written here.

        Raises:
            gpu_media.MediaError: the message names the location and what is wrong
                (no such bucket, access denied, not writable).
        """
        raise NotImplementedError


class LocalOutput(Output):
    """A local folder (created when the first file is written), written with :func:`write_atomic`."""

    def __init__(self, path: str, url: str | None = None) -> None:
        """Args: path: the folder; url: how the user wrote it (for messages)."""
        self.local = os.path.abspath(path)
        self.url = url or path

    def _path(self, rel: str) -> str:
        return os.path.join(self.local, *_check_rel(rel).split("/"))

    def put(self, rel: str, data: bytes, *, overwrite: bool = False) -> None:
        """As :meth:`Output.put`: a temporary name in the folder, then a rename."""
        path = self._path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data, overwrite=overwrite)

    def get(self, rel: str) -> bytes | None:
        """As :meth:`Output.get`."""
        try:
            with open(self._path(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def exists(self, rel: str) -> bool:
        """As :meth:`Output.exists`."""
        return os.path.exists(self._path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """As :meth:`Output.listdir`."""
        folder = self._path(rel) if rel else self.local
        try:
            return sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def remove_tree(self, rel: str) -> None:
        """As :meth:`Output.remove_tree`."""
        shutil.rmtree(self._path(rel), ignore_errors=True)

    def remove(self, rel: str) -> None:
        """As :meth:`Output.remove`."""
        try:
            os.unlink(self._path(rel))
        except FileNotFoundError:
            pass

    def check(self) -> None:
        """As :meth:`Output.check`: a probe file in the folder, or in its nearest existing parent."""
        check_local_folder(self.url)


class FsspecOutput(Output):
    """A location of an fsspec file system (an object store, usually), given by its URL."""

    def __init__(self, url: str, storage_options: dict | None = None) -> None:
        """Args: url: ``<protocol>://<path>``; storage_options: keyword arguments of the file system.

        Raises:
            gpu_media.MediaError: fsspec, or the package of the protocol, is not installed;
                an unknown protocol.
        """
        self.url = url.rstrip("/")
        protocol = url.split("://", 1)[0]
        try:
            import fsspec
        except ImportError:
            raise MediaError(f"{url}: writing to a URL needs fsspec: {S3_EXTRA}", item=url) from None
        try:
            self.fs, path = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except ImportError as exc:
            pkg = _FSSPEC_PACKAGES.get(protocol, "the fsspec package of the protocol")
            raise MediaError(f"{url}: {protocol}:// needs {pkg} ({S3_EXTRA}): {exc}", item=url) from None
        except ValueError as exc:
            raise MediaError(f"{url}: unknown or unusable URL ({exc})", item=url) from None
        self.root = path.rstrip("/")
        self.protocol = protocol
        protocols = self.fs.protocol if isinstance(self.fs.protocol, (tuple, list)) else (self.fs.protocol,)
        self._s3 = any(p in ("s3", "s3a") for p in protocols)
        self._gcs = any(p in ("gs", "gcs") for p in protocols)

    def _path(self, rel: str) -> str:
        return f"{self.root}/{_check_rel(rel)}" if self.root else _check_rel(rel)

    def _content_type(self, rel: str) -> dict:
        ctype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        if self._s3:
            return {"ContentType": ctype}
        if self._gcs:
            return {"content_type": ctype}
        return {}

    def put(self, rel: str, data: bytes, *, overwrite: bool = False) -> None:
        """As :meth:`Output.put`: one object, put whole."""
        path = self._path(rel)
        if not overwrite and self.fs.exists(path):
            return  # content-addressed: an existing object already holds these bytes
        self.fs.pipe_file(path, data, **self._content_type(rel))

    def get(self, rel: str) -> bytes | None:
        """As :meth:`Output.get`."""
        try:
            return self.fs.cat_file(self._path(rel))
        except FileNotFoundError:
            return None

    def get_many(self, rels: list[str]) -> dict[str, bytes]:
        """As :meth:`Output.get_many`, fetched concurrently where the file system can."""
        if not rels:
            return {}
        paths = {self._path(r): r for r in rels}
        got = self.fs.cat(list(paths), on_error="omit")
        return {paths[p]: data for p, data in got.items() if p in paths and isinstance(data, bytes)}

    def exists(self, rel: str) -> bool:
        """As :meth:`Output.exists`."""
        return self.fs.exists(self._path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """As :meth:`Output.listdir`."""
        folder = self._path(rel) if rel else self.root
        try:
            self.fs.invalidate_cache(folder)
            entries = self.fs.ls(folder, detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file")

    def remove_tree(self, rel: str) -> None:
        """As :meth:`Output.remove_tree`."""
        path = self._path(rel)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(path)

    def remove(self, rel: str) -> None:
        """As :meth:`Output.remove`."""
        try:
            self.fs.rm(self._path(rel))
        except FileNotFoundError:
            pass

    def check(self) -> None:
        """As :meth:`Output.check`: puts and removes ``.gpu-media-probe-<hex>.tmp`` under the URL."""
        rel = f".gpu-media-probe-{uuid.uuid4().hex[:8]}.tmp"
        bucket = self.root.split("/", 1)[0]
        try:
            self.fs.pipe_file(self._path(rel), b"", **self._content_type(rel))
            self.fs.rm(self._path(rel))
        except FileNotFoundError as exc:
            raise MediaError(f"{self.url}: the bucket {bucket!r} does not exist ({_why(exc)})",
                             item=self.url) from None
        except PermissionError as exc:
            raise MediaError(f"{self.url}: access denied; check the credentials and the bucket's permissions "
                             f"({_why(exc)})", item=self.url) from None
        except OSError as exc:
            raise MediaError(f"{self.url}: cannot write there ({_why(exc)})", item=self.url) from None
        except Exception as exc:  # botocore's connection and credential errors are not OSErrors
            raise MediaError(f"{self.url}: cannot write there ({type(exc).__name__}: {_why(exc)})",
                             item=self.url) from None


_WRITABLE: set = set()


def check_local_folder(out_dir: str | os.PathLike) -> None:
    """Fail early, writing nothing, when the local folder ``out_dir`` cannot take a dump.

    ``out_dir`` must be a folder or not exist yet (it is created by the dump). A probe
    file is created and removed in it, or, when it does not exist, in its nearest
    existing parent (where the dump will create it), so that permissions, read-only
    file systems and root's exceptions all count as they will for the dump; a folder
    this process probed already, unchanged since (its inode, owner and mode), is not
    probed again. The
    folder's lock file (:data:`gpu_media.fileio.LOCK_NAME`), if there, must be a file.

    Raises:
        gpu_media.errors.DumpPathTypeError: ``out_dir`` is not a ``str`` or
            ``os.PathLike`` of ``str`` (a ``bytes`` path; also a ``TypeError``).
        gpu_media.errors.DumpPathExistsError: ``out_dir`` is an existing file (also a
            ``FileExistsError``).
        gpu_media.errors.DumpPathNotADirectoryError: a parent is a file (also a
            ``NotADirectoryError``).
        gpu_media.errors.DumpLockError: ``out_dir/.gpu-media.lock`` exists and is not
            a file (also an ``IsADirectoryError``).
        gpu_media.errors.DumpPathError: the folder the dump would write in refuses a
            new file (the message names it).

    Examples:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> check_local_folder(os.path.join(folder, "new", "out"))  # creatable: fine, nothing made
        >>> os.listdir(folder)
        []
        >>> os.mkdir(os.path.join(folder, ".gpu-media.lock"))
        >>> check_local_folder(folder)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.DumpLockError: ...: the lock file .../.gpu-media.lock is a folder...
    """
    try:
        given = os.fspath(out_dir)
    except TypeError:
        given = out_dir
    if not isinstance(given, str):
        raise DumpPathTypeError(f"output folder {out_dir!r}: a {type(given).__name__}, not a folder path (a str "
                                "or os.PathLike of str)", item=out_dir)
    if not given:
        raise DumpPathError("output folder '': an empty path (write '.' for the working folder)", item=given)
    path = os.path.abspath(given.split("://", 1)[-1] if is_url(given) else given)
    probe = path
    while not os.path.isdir(probe):
        if os.path.exists(probe):
            if os.path.isdir(probe):  # made meanwhile (by a dump starting beside this one)
                break
            if probe == path:
                raise DumpPathExistsError(f"{given}: output folder is an existing file, not a folder", item=given)
            raise DumpPathNotADirectoryError(f"{given}: output folder is under {probe}, which is a file, not a "
                                             "folder", item=given)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    lock = os.path.join(path, LOCK_NAME)
    if probe == path and os.path.lexists(lock) and not os.path.isfile(lock):
        kind = "a folder" if os.path.isdir(lock) else "not a regular file"
        raise DumpLockError(f"{given}: the lock file {lock} is {kind}; remove it (gpu-media creates the file)",
                            item=given)
    try:
        st = os.stat(probe)
        # a folder that took a probe file in this process, unchanged since (same folder, owner and
        # mode): not probed again (a training loop dumps into one folder at every step)
        seen = (probe, st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    except OSError:
        seen = None
    if seen is not None and seen in _WRITABLE:
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=".gpu-media-probe-", suffix=".tmp", dir=probe)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        where = "output folder" if probe == path else f"output folder (to be created in {probe})"
        raise DumpPathError(f"{given}: {where} is not writable ({exc.strerror or exc})", item=given) from None
    if seen is not None:
        if len(_WRITABLE) > 1 << 12:
            _WRITABLE.clear()
        _WRITABLE.add(seen)


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def open_output(out: str | os.PathLike, storage_options: dict | None = None) -> Output:
    """The :class:`Output` for ``out``: a local folder, ``file://...``, or any fsspec URL.

    Args:
        out: a path (str or ``os.PathLike``) or a URL ``<protocol>://...``.
        storage_options: keyword arguments of the fsspec file system (``key``,
            ``secret``, ``client_kwargs={"endpoint_url": ...}`` for s3fs); none for
            a local path.

    Returns:
        a :class:`LocalOutput` for a path or ``file://`` URL, else an :class:`FsspecOutput`.

    Raises:
        gpu_media.MediaError: see :class:`FsspecOutput`. Nothing is checked against the
            location itself until :meth:`Output.check`.
    """
    if is_url(out):
        protocol, rest = out.split("://", 1)
        if protocol == "file":
            return LocalOutput(rest, url=out)
        return FsspecOutput(out, storage_options)
    return LocalOutput(os.fspath(out))
