"""A folder of ``.npz`` shards as one dump (``gpu-media dump SHARDS_DIR OUT [--ray]``).

Each shard is an ``.npz`` batch as :data:`gpu_media.formats.npz.NPZ_HELP` describes
it (box ``image_index`` counts within the shard); the shards, sorted by file name,
make one dump whose images are numbered in order across them. They must share their
``layout`` and ``class_labels``. Without Ray each shard is one part of
:func:`gpu_media.dump.write_batches`, loaded only when it is written; with Ray
(:func:`gpu_media.ray.npz_shards_dataset`) the workers read the shards and
:func:`shard_rows` turns each into one row per image.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterator

import numpy as np

from ..errors import MediaError
from .npz import load_npz

__all__ = ["SHARDS_HELP", "npz_shards", "shard_rows", "shard_classes", "shard_layout", "shard_parts"]

#: The shard-folder input of ``gpu-media dump`` (part of ``gpu-media dump --help``).
SHARDS_HELP = """\
Shards: gpu-media dump SHARDS_DIR OUT_DIR [--ray [ADDRESS]]
  A folder of .npz files (each as above), sorted by name, written as one dump;
  they must share 'layout' and 'class_labels'.
"""


def npz_shards(folder: str | os.PathLike) -> list[str]:
    """The ``*.npz`` files of ``folder`` (sorted by name): the shards of one dump.

    Raises:
        gpu_media.MediaError: not a folder, or no ``.npz`` file in it.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> folder = tempfile.mkdtemp()
        >>> for name in ("b.npz", "a.npz"):
        ...     np.savez(os.path.join(folder, name), images=np.zeros((1, 2, 2, 3), np.uint8))
        >>> [os.path.basename(p) for p in npz_shards(folder)]
        ['a.npz', 'b.npz']
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise MediaError(f"{folder}: not a folder of .npz shards", item=folder)
    shards = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".npz"))
    if not shards:
        raise MediaError(f"{folder}: no .npz shards in the folder", item=folder)
    return shards


def shard_rows(kwargs: dict) -> list[dict]:
    """The rows of one loaded shard (:func:`gpu_media.formats.npz.load_npz`), one per image, in order.

    ``NCHW`` images are transposed to ``HWC`` (normalization is per image, so the
    pixels do not change); boxes are split by ``image_index``.

    Examples:
        >>> import numpy as np
        >>> rows = shard_rows({"images": np.zeros((2, 3, 4, 5), np.uint8), "layout": "NCHW",
        ...                    "boxes": {"b": {"xyxy": np.ones((1, 4)), "image_index": np.array([1])}}})
        >>> rows[0]["image"].shape, len(rows[0]["boxes__b__xyxy"]), len(rows[1]["boxes__b__xyxy"])
        ((4, 5, 3), 0, 1)
    """
    images = np.asarray(kwargs["images"])
    if kwargs.get("layout") == "NCHW":
        images = images.transpose(0, 2, 3, 1)
    n = len(images)
    rows = [{"image": images[i]} for i in range(n)]
    if kwargs.get("captions") is not None:
        for i, c in enumerate(kwargs["captions"]):
            rows[i]["caption"] = c
    for key, spec in (kwargs.get("masks") or {}).items():
        for i in range(n):
            rows[i][f"masks__{key}"] = np.asarray(spec["mask_data"][i])
    for key, spec in (kwargs.get("boxes") or {}).items():
        xyxy = np.asarray(spec["xyxy"], dtype=np.float64).reshape(-1, 4)
        idx = np.asarray(spec.get("image_index", np.zeros(len(xyxy), np.int64))).reshape(-1)
        for i in range(n):
            sel = idx == i
            rows[i][f"boxes__{key}__xyxy"] = xyxy[sel]
            if "class_id" in spec:
                rows[i][f"boxes__{key}__class_id"] = np.asarray(spec["class_id"]).reshape(-1)[sel]
            if "scores" in spec:
                rows[i][f"boxes__{key}__score"] = np.asarray(spec["scores"]["score"]).reshape(-1)[sel]
    return rows




def shard_classes(shards: list[str]) -> Any:
    """The ``class_labels`` the shards share (``{id: name}``), or None; raises MediaError when they differ.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> np.savez(path, images=np.zeros((1, 2, 2)), class_labels='{"1": "car"}')
        >>> shard_classes([path, path])
        {1: 'car'}
    """
    found = None
    for k, path in enumerate(shards):
        try:  # only the one entry: the shards' pixels are read by the workers
            with np.load(path, allow_pickle=False) as z:
                text = str(z["class_labels"]) if "class_labels" in z.files else None
            classes = None if text is None else {int(c): str(v) for c, v in json.loads(text).items()}
        except Exception:  # noqa: BLE001 - load_npz says what is wrong with the file, as one MediaError
            classes = load_npz(path).get("classes")
        if k and classes != found:
            raise MediaError(f"{path}: class_labels differ from those of {shards[0]}", item=path)
        found = classes
    return found




def shard_layout(shards: list[str]) -> str | None:
    """The ``layout`` the shards share, or None; raises MediaError when they differ.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> np.savez(path, images=np.zeros((1, 3, 2, 2)), layout="NCHW")
        >>> shard_layout([path])
        'NCHW'
    """
    found = None
    for k, path in enumerate(shards):
        try:
            with np.load(path, allow_pickle=False) as z:
                layout = str(z["layout"]) if "layout" in z.files else None
        except Exception:  # noqa: BLE001 - load_npz says what is wrong with the file, as one MediaError
            layout = load_npz(path).get("layout")
        if k and layout != found:
            raise MediaError(f"{path}: layout {layout!r} differs from {found!r} of {shards[0]}", item=path)
        found = layout
    return found


def shard_parts(shards: list[str]) -> Iterator[dict[str, Any]]:
    """Yield each shard as a part of :func:`gpu_media.dump.write_batches`, loading it only then.

    Examples:
        >>> import os, tempfile
        >>> import numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> np.savez(path, images=np.zeros((2, 2, 2, 3)), captions=np.array(["x", "y"]))
        >>> [(len(p["images"]), p["captions"]) for p in shard_parts([path])]
        [(2, ['x', 'y'])]
    """
    for path in shards:
        kwargs = load_npz(path)
        yield {name: kwargs.get(name) for name in ("images", "masks", "boxes", "captions")}
