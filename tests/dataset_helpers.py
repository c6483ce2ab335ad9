"""Shared by the Ray and S3 tests: a local Ray, dataset rows, the same rows as one write_dump, file trees."""

import contextlib
import hashlib
import importlib
import io
import os
import signal

import numpy as np
import pytest
from PIL import Image

import gpu_media as gm
from media_helpers import files_under

#: Each Ray / S3 test fails (it does not hang CI) after this many seconds.
TEST_SECONDS = 240


def need_ray():
    """The ``ray`` module, or a skip saying why (``pip install ".[ray]"``)."""
    return pytest.importorskip("ray", reason="Ray is not installed (pip install \".[ray]\")")


@contextlib.contextmanager
def time_limit(seconds=TEST_SECONDS):
    """Raise TimeoutError in the block after ``seconds`` (SIGALRM; the main thread only)."""
    def expire(signum, frame):
        raise TimeoutError(f"test ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def local_ray():
    """A local Ray with 2 CPUs for this module (as CI runs it), shut down after."""
    ray = need_ray()
    importlib.import_module("ray.data")

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                 p for p in (os.path.dirname(os.path.dirname(gm.__file__)), os.environ.get("PYTHONPATH")) if p)}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def make_rows(n=13, seed=0, encoded=None):
    """``n`` dataset rows (dicts): images of two sizes, a caption, a mask and boxes (some with none).

    ``encoded`` "png" or "jpeg" gives each image as the bytes of that file instead of an array.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        h, w = (20, 30) if i % 3 else (24, 18)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if encoded:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format=encoded.upper())
            img = buf.getvalue()
        nb = i % 3
        rows.append({
            "image": img,
            "caption": f"image {i}",
            "masks__pred": rng.integers(0, 2 + i % 4, (h, w)).astype(np.uint8),
            "boxes__pred__xyxy": np.array([[1.0, 2.0, 10.0, 12.0 + k] for k in range(nb)]).reshape(-1, 4),
            "boxes__pred__class_id": (np.arange(nb) + i).astype(np.int64),
            "boxes__pred__score": np.linspace(0.1, 0.9, nb),
        })
    return rows


def decoded(v):
    """A row's image as the array the dump sees (encoded files decoded by Pillow)."""
    if isinstance(v, bytes):
        with Image.open(io.BytesIO(v)) as im:
            return np.asarray(im)
    return v


def single_process_dump(out, rows, **kw):
    """The same rows as ONE ``gpu_media.write_dump`` call (images as a list, boxes in the batched form)."""
    xyxy = np.concatenate([r["boxes__pred__xyxy"] for r in rows])
    index = np.concatenate([np.full(len(r["boxes__pred__xyxy"]), i) for i, r in enumerate(rows)]).astype(np.int64)
    return gm.write_dump(
        out, [decoded(r["image"]) for r in rows], captions=[r["caption"] for r in rows],
        masks={"pred": {"mask_data": [r["masks__pred"] for r in rows]}},
        boxes={"pred": {"xyxy": xyxy, "image_index": index, "domain": "pixel",
                        "class_id": np.concatenate([r["boxes__pred__class_id"] for r in rows]),
                        "scores": {"score": np.concatenate([r["boxes__pred__score"] for r in rows])}}},
        **kw)


def tree(root) -> dict:
    """``{relative path: sha256}`` of every file under ``root``."""
    return {k: hashlib.sha256(v).hexdigest() for k, v in files_under(root).items()}


def split_npz(src, folder, cuts):
    """Write ``src`` (an .npz batch) as shards ``folder/shard-000.npz``... cut at image indices ``cuts``."""
    z = dict(np.load(src))
    os.makedirs(folder, exist_ok=True)
    keys = {k.split("__")[1] for k in z if k.startswith("boxes__")}
    for s, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
        d = {k: (v[lo:hi] if k in ("images", "captions") or k.startswith("masks__") else v)
             for k, v in z.items() if not k.startswith("boxes__")}
        for key in keys:
            sel = (z[f"boxes__{key}__image_index"] >= lo) & (z[f"boxes__{key}__image_index"] < hi)
            for f in ("xyxy", "image_index", "class_id", "score"):
                if f"boxes__{key}__{f}" in z:
                    d[f"boxes__{key}__{f}"] = z[f"boxes__{key}__{f}"][sel] - (lo if f == "image_index" else 0)
        np.savez(os.path.join(folder, f"shard-{s:03d}.npz"), **d)
    return str(folder)

