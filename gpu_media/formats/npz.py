"""The .npz reader: one NumPy archive holding a whole batch (``gpu-media dump INPUT.npz OUT``).

No pickles are loaded (``allow_pickle=False``); every entry name is checked, so a typo
is an error rather than silently ignored data. :data:`NPZ_HELP` documents the entries
(the CLI prints it in ``gpu-media dump --help``).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from ..errors import MediaError

__all__ = ["NPZ_HELP", "load_npz", "available_memory"]

#: The entries of an .npz input, one per line (part of ``gpu-media dump --help``).
NPZ_HELP = """\
  images                 (N,H,W,C) or (N,H,W); (N,C,H,W) with a 'layout' entry "NCHW"
  layout                 optional string, one of NHWC NCHW NHW
  masks__<key>           optional (N,H,W) integer class ids, one entry per mask key
  boxes__<key>__xyxy     optional (M,4) pixel boxes x0,y0,x1,y1 (x1, y1 exclusive)
  boxes__<key>__image_index (M,)  batch index of each box
  boxes__<key>__class_id    (M,)  class id of each box
  boxes__<key>__score       (M,)  optional score of each box
  class_labels           optional JSON string {"<id>": "<name>", ...}
  captions               optional (N,) strings
"""

_BOX_FIELDS = {"xyxy": "xyxy", "image_index": "image_index", "class_id": "class_id", "score": "score"}


def load_npz(path: str | os.PathLike) -> dict[str, Any]:
    """Read an .npz batch into :func:`gpu_media.write_dump`'s keyword arguments (no pickles).

    Args:
        path: the .npz file (entries as in :data:`NPZ_HELP`).

    Returns:
        ``{"images": array, ...}`` with, where present, ``layout`` (str),
        ``masks`` (``{key: {"mask_data": (N,H,W)}}``), ``boxes`` (the batched form
        ``{key: {"xyxy", "image_index", "class_id", "scores", "domain": "pixel"}}``),
        ``classes`` (``{int: str}``) and ``captions`` (list of str). Every array is
        read into memory (the archive is closed on return).

    Raises:
        gpu_media.MediaError: a file that cannot be opened, is empty, is not a zip
            archive (a text file, a single ``.npy``), is truncated or damaged (a bad
            CRC, bad compressed data), an entry holding Python objects (never
            unpickled, for safety), no ``images`` entry, an unknown
            entry or box field, a box key without ``xyxy``, malformed
            ``class_labels``, an ``images`` entry with fewer than 2 dimensions, an
            entry whose header claims more bytes than :func:`available_memory`
            (checked before anything is allocated; docs/SPEC.md 1) (the message
            names the file and the entry).

    Examples:
        >>> import json, os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "batch.npz")
        >>> np.savez(path, images=np.zeros((2, 4, 4, 3), np.uint8), masks__pred=np.ones((2, 4, 4), np.uint8),
        ...          boxes__pred__xyxy=np.array([[0, 0, 2, 2]]), boxes__pred__image_index=np.array([1]),
        ...          boxes__pred__class_id=np.array([1]), class_labels=json.dumps({"1": "car"}))
        >>> kw = load_npz(path)
        >>> sorted(kw), kw["classes"], kw["boxes"]["pred"]["domain"]
        (['boxes', 'classes', 'images', 'masks'], {1: 'car'}, 'pixel')
        >>> np.savez(path, pixels=np.zeros((1, 2, 2)))
        >>> load_npz(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gpu_media.errors.MediaError: ...batch.npz: no 'images' entry (entries: ['pixels'])
    """
    with _open(path) as archive:
        names = set(archive.files)
        if "images" not in names:
            raise MediaError(f"{path}: no 'images' entry (entries: {sorted(names)})", item=path)
        z = _Entries(archive, path)
        images = z["images"]
        if images.ndim < 2:
            raise MediaError(f"{path}: entry 'images' has shape {images.shape}: not an image or a batch of images "
                             "((N,H,W,C), (N,H,W) or a single (H,W[,C]) image)", item=images.shape)
        out = {"images": images}
        if "layout" in names:
            out["layout"] = str(z["layout"])
        masks, boxes = {}, {}
        for name in sorted(names):
            parts = name.split("__")
            if parts[0] == "masks" and len(parts) == 2:
                masks[parts[1]] = {"mask_data": z[name]}
            elif parts[0] == "boxes" and len(parts) == 3:
                field = _BOX_FIELDS.get(parts[2])
                if field is None:
                    raise MediaError(f"{path}: unknown box entry {name!r} (xyxy, image_index, class_id or score)",
                                     key=parts[1], item=name)
                spec = boxes.setdefault(parts[1], {"domain": "pixel"})
                if field == "score":
                    spec["scores"] = {"score": z[name]}
                else:
                    spec[field] = z[name]
            elif name not in ("images", "layout", "class_labels", "captions"):
                raise MediaError(f"{path}: unknown entry {name!r}{_entry_hint(name)}", item=name)
        for key, spec in boxes.items():
            if "xyxy" not in spec:
                raise MediaError(f"{path}: box key {key!r} has no boxes__{key}__xyxy entry", key=key)
        if masks:
            out["masks"] = masks
        if boxes:
            out["boxes"] = boxes
        if "class_labels" in names:
            text = str(z["class_labels"])
            try:
                out["classes"] = {int(k): str(v) for k, v in json.loads(text).items()}
            except (ValueError, AttributeError) as exc:
                raise MediaError(f"{path}: class_labels must be a JSON object {{id: name}} ({exc})",
                                 item="class_labels") from None
        if "captions" in names:
            out["captions"] = [str(c) for c in z["captions"].reshape(-1)]
    return out


def _entry_hint(name: str) -> str:
    """What an unknown entry name was probably meant to be (``masks_pred``: ``masks__pred``)."""
    if name.startswith("masks") and name[5:].strip("_"):
        return (f"; a mask entry is named masks__<key> (two underscores), so did you mean "
                f"'masks__{name[5:].strip('_')}'?")
    if name.startswith("boxes"):
        return ("; box entries are named boxes__<key>__xyxy, boxes__<key>__image_index, boxes__<key>__class_id "
                "and boxes__<key>__score (two underscores each)")
    return "; the entries are images, layout, masks__<key>, boxes__<key>__<field>, class_labels and captions"


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip's end record
_NPY_MAGIC = b"\x93NUMPY"


def _open(path):
    """``np.load(path)`` as an archive, every way it fails as a :class:`MediaError` naming ``path``."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})", item=path) from None
    if not head:
        raise MediaError(f"{path}: empty file, not an .npz archive", item=path)
    if head.startswith(_NPY_MAGIC):
        raise MediaError(f"{path}: a single .npy array, not an .npz archive (write one with numpy.savez)",
                         item=path)
    if not head.startswith(_ZIP_MAGIC):
        raise MediaError(f"{path}: not an .npz (zip) file", item=path)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise MediaError(f"{path}: truncated or damaged .npz archive ({exc})", item=path) from None


class _Entries:
    """``z[name]`` of an open archive, a damaged entry or an object array as a :class:`MediaError`."""

    def __init__(self, z, path):
        self._z, self._path = z, path

    def __getitem__(self, name):
        self._check_size(name)
        try:
            return self._z[name]
        except ValueError as exc:
            if "pickle" in str(exc):  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
                raise MediaError(f"{self._path}: entry {name!r} holds Python objects (an object array), which "
                                 "gpu-media does not load, for safety; store numbers or strings",
                                 item=name) from None
            raise MediaError(f"{self._path}: entry {name!r} cannot be read ({exc})", item=name) from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise MediaError(f"{self._path}: entry {name!r} is damaged ({exc})", item=name) from None
        except MemoryError:  # the size check passed, but the memory went meanwhile
            raise MediaError(f"{self._path}: entry {name!r} does not fit in memory", item=name) from None

    def _check_size(self, name):
        """The size the entry's ``.npy`` header claims, against the memory available (docs/SPEC.md 1)."""
        try:
            with self._z.zip.open(name + ".npy") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:  # a 3.0 header (UTF-8 field names): numpy reads it, and a MemoryError is caught
                    return
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error):
            return  # reading the entry itself reports what is wrong
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        available = available_memory()
        if available is not None and claimed > available:
            raise MediaError(f"{self._path}: entry {name!r} claims shape {tuple(shape)} {dtype} ({_size(claimed)}), "
                             f"more than the {_size(available)} of memory available; a batch must fit in memory "
                             "(split it into .npz shards in a folder)", item=name)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


def available_memory() -> int | None:
    """Bytes of memory a new array can take now: Linux's ``MemAvailable``, else the free physical memory.

    The largest batch an input file may claim (docs/SPEC.md 1); None where the
    system does not say.

    Returns:
        a byte count, or None.

    Examples:
        >>> n = available_memory()
        >>> n is None or n > 0
        True
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
