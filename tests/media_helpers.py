"""Helpers shared by the tests (imported by name, so kept out of conftest.py)."""

import os

import numpy as np


def host(x):
    """Any backend output (NumPy/CuPy array, or a list of them) -> NumPy."""
    if isinstance(x, list):
        return [host(a) for a in x]
    if type(x).__module__.split(".")[0] == "cupy":
        return x.get()
    return np.asarray(x)


def read_rel(root, rel) -> bytes:
    """Bytes of the file at the '/'-separated path ``rel`` under ``root`` (asserting it exists)."""
    path = os.path.join(str(root), *rel.split("/"))
    assert os.path.isfile(path), rel
    with open(path, "rb") as f:
        return f.read()


def decode_image(data: bytes) -> np.ndarray:
    """Encoded image bytes -> the decoded NumPy array (Pillow)."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


def hwc(a):
    """(H,W) -> (H,W,1); (H,W,C) unchanged."""
    a = np.asarray(a)
    return a[:, :, None] if a.ndim == 2 else a


def files_under(root) -> dict:
    """``{relative path with '/' separators: bytes}`` of every file under ``root`` but its lock file.

    The folder's ``.gpu-media.lock`` is the local folder's state, not part of the dump: it
    records when the viewer's list was made (docs/SPEC.md 6.4), so two runs of one dump
    differ there only.
    """
    out = {}
    root = os.fspath(root)
    for d, _, fs in os.walk(root):
        for f in fs:
            if f == ".gpu-media.lock" and os.path.samefile(d, root):
                continue
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root).replace(os.sep, "/")] = fh.read()
    return out
