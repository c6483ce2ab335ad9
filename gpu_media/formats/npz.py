"""The .npz reader: one NumPy archive holding a whole batch (``gpu-media dump INPUT.npz OUT``).

No pickles are loaded (``allow_pickle=False``); every entry name is checked, so a typo
is an error rather than silently ignored data. :data:`NPZ_HELP` documents the entries
(the CLI prints it in ``gpu-media dump --help``).
"""

from __future__ import annotations

import json

import numpy as np

from ..errors import MediaError

__all__ = ["NPZ_HELP", "load_npz"]

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


def load_npz(path: str) -> dict:
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
        gpu_media.MediaError: an unreadable file, no ``images`` entry, an unknown
            entry or box field, a box key without ``xyxy``, malformed
            ``class_labels`` (the message names the file and the entry).
    """
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read as .npz ({exc})", item=path) from None
    with z:
        names = set(z.files)
        if "images" not in names:
            raise MediaError(f"{path}: no 'images' entry (entries: {sorted(names)})", item=path)
        out = {"images": z["images"]}
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
                raise MediaError(f"{path}: unknown entry {name!r}", item=name)
        for key, spec in boxes.items():
            if "xyxy" not in spec:
                raise MediaError(f"{path}: box key {key!r} has no boxes__{key}__xyxy entry", key=key)
        if masks:
            out["masks"] = masks
        if boxes:
            out["boxes"] = boxes
        if "class_labels" in names:
            try:
                out["classes"] = {int(k): str(v) for k, v in json.loads(str(z["class_labels"])).items()}
            except (ValueError, AttributeError) as exc:
                raise MediaError(f"{path}: class_labels must be a JSON object {{id: name}} ({exc})",
                                 item="class_labels") from None
        if "captions" in names:
            out["captions"] = [str(c) for c in z["captions"].reshape(-1)]
    return out
