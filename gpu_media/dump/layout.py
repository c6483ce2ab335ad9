"""wandb's naming of a dump's files (docs/SPEC.md 6.2, 6.3): key paths, file stems, index names, their checks.

Layout under ``out_dir`` (wandb 0.31's run ``files/`` layout; ``path(key)`` is the key
as ``wandb.util.make_file_path_upload_safe`` makes it, so ``/`` makes sub-folders)::

    media/images/<path(key)>_<step>_<sha256[:20]>.<ext>                    images
    media/images/mask/<path(key)>_<step>_<sha256[:20]>.mask.png             masks (mask_data)
    media/images/mask/<path(key)>_<step>_<sha256[:20]><ext of the file>     masks ({"path": file})
    media/metadata/boxes2D/<path(key)>_<step>_<sha256[:20]>.boxes2D.json    boxes
    <enc(key)>_<enc_step(step)>.index.json                                   the index, written last
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from typing import Any

from ..checks import is_integer
from ..errors import MediaError

IMAGE_DIR = "media/images"


MASK_DIR = "media/images/mask"


BOX_DIR = "media/metadata/boxes2D"


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
    real_root = os.path.realpath(root)  # once; then each folder below it component by component
    for sub in (IMAGE_DIR, MASK_DIR, BOX_DIR):
        parts = [p for p in (*sub.split("/"), *folders) if p]
        if os.path.commonpath([real_root, _resolved_under(real_root, parts)]) != real_root:
            raise MediaError(f"refusing to write {sub + '/' + stem!r}: it resolves outside {root!r}",
                             item=f"{sub}/{stem}")
    return stem


def _resolved_under(real_root: str, parts: list[str]) -> str:
    """``os.path.realpath`` of ``real_root/parts...`` (no part is ``.``, ``..`` or empty), with one lstat per part.

    A part that does not exist is made by the dump as a plain folder, and so is everything
    below it; a symbolic link is resolved in full from there.
    """
    cur = real_root
    for i, p in enumerate(parts):
        nxt = os.path.join(cur, p)
        try:
            st = os.lstat(nxt)
        except (FileNotFoundError, NotADirectoryError):
            return os.path.join(nxt, *parts[i + 1:])
        if stat.S_ISLNK(st.st_mode):
            return os.path.realpath(os.path.join(nxt, *parts[i + 1:]))
        cur = nxt
    return cur


def check_inside(root: str, path: str, rel: str) -> None:
    """Raise unless ``path`` stays inside ``root`` once symbolic links are resolved (docs/SPEC.md 6.4).

    Args:
        root: the dump folder.
        path: a file or folder the dump is about to write.
        rel: ``path`` relative to ``root``, for the message.

    Raises:
        gpu_media.MediaError: ``path`` resolves outside ``root``; ``item`` is ``rel``.

    Examples:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> check_inside(root, os.path.join(root, "media", "a.png"), "media/a.png")
        >>> check_inside(root, os.path.join(root, "..", "a.png"), "../a.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: refusing to write '../a.png': it resolves outside ...
    """
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise MediaError(f"refusing to write {rel!r}: it resolves outside {root!r}", item=rel)


def index_path(out_dir: str | os.PathLike, key: str, step: int | str = 0) -> str:
    """Where :func:`gpu_media.dump.write_dump` puts the index of ``key`` at ``step``: ``out_dir/`` + :func:`index_name`.

    Examples:
        >>> import os
        >>> index_path("dump", "val/pred", 3) == os.path.join("dump", "val%2Fpred_3.index.json")
        True
    """
    return os.path.join(os.fspath(out_dir), index_name(key, step))


def dump_folders(root: str) -> list[str]:
    """``root`` and every folder under ``root/media``: where a dump's temporary files can be.

    Args:
        root: the dump folder.

    Returns:
        the folders' paths, ``root`` first.

    Examples:
        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()
        >>> os.makedirs(os.path.join(root, "media", "images"))
        >>> [os.path.relpath(f, root) for f in dump_folders(root)]
        ['.', 'media', 'media/images']
    """
    folders = [root]
    for d, _, _ in os.walk(os.path.join(root, "media")):
        folders.append(d)
    return folders
