#!/usr/bin/env python
"""Regenerate the small COCO-format dataset in ``gpu_media/demo/coco/`` from the demo batch.

Run from the repository root::

    python scripts/make_coco_demo.py

Input: ``gpu_media/demo/demo.npz`` (8 real photographs with two segmentations
each, see ``gpu_media/demo/SOURCES.md`` and ``scripts/make_demo_data.py``).
Output (deterministic, byte-identical on every run):

* ``images/<name>.jpg``  - the photographs, JPEG quality 92 (Pillow);
* ``instances.json``    - COCO instances: the "ground_truth" segmentation as one
  annotation per connected region (8-connectivity, >= 150 pixels, the 8 largest
  per image, as the demo's boxes), each with a **polygon** ``segmentation``
  (outer contours from scikit-image's ``find_contours``, simplified to 0.5 px),
  ``bbox`` ``[x, y, w, h]`` of the region's pixels, ``area`` and ``iscrowd`` 0;
  plus ``categories`` 1 "dark object", 2 "bright object", 3 "colourful object";
* ``results.json``      - COCO results: the "prediction" segmentation's regions,
  each with a compressed **RLE** ``segmentation`` (pycocotools ``encode``), its
  ``bbox`` and the demo's ``score`` for that region.

Requirements (development only): numpy, pillow, scikit-image, pycocotools.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
from skimage import measure

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "gpu_media" / "demo"
OUT = DEMO / "coco"
sys.path.insert(0, str(ROOT / "scripts"))
from make_demo_data import PHOTOS  # noqa: E402  (the photographs' order and names)

NAMES = [p["loader"] for p in PHOTOS]
MIN_AREA, MAX_REGIONS = 150, 8


def load_npz():
    with zipfile.ZipFile(DEMO / "demo.npz") as z:
        return {n[:-4]: np.load(io.BytesIO(z.read(n)), allow_pickle=False) for n in z.namelist()}


def regions(mask):
    """(area, class id, bbox xyxy exclusive, boolean mask) per region, largest first (as make_demo_data.py)."""
    found = []
    for cid in (1, 2, 3):
        lab = measure.label(mask == cid, connectivity=2)
        for rp in measure.regionprops(lab):
            if rp.area < MIN_AREA:
                continue
            r0, c0, r1, c1 = rp.bbox
            found.append((int(rp.area), cid, (c0, r0, c1, r1), lab == rp.label))
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return found[:MAX_REGIONS]


def polygons(region):
    """COCO polygons (flat x, y lists in pixel-edge coordinates) of a region's outer contours."""
    padded = np.pad(region.astype(np.float64), 1)
    out = []
    for c in measure.find_contours(padded, 0.5):
        c = measure.approximate_polygon(c, tolerance=0.5)
        if len(c) < 3:
            continue
        xy = np.stack([c[:, 1] - 1 + 0.5, c[:, 0] - 1 + 0.5], axis=1)  # pixel centres -> COCO coordinates
        out.append([round(float(v), 2) for v in xy.ravel()])
    return out


def main() -> int:
    z = load_npz()
    images = z["images"]
    labels = json.loads(str(z["class_labels"]))
    captions = [str(c) for c in z["captions"]]
    n = images.shape[0]
    if len(NAMES) != n:
        raise SystemExit(f"NAMES has {len(NAMES)} entries, demo.npz {n} images")
    scores = {}
    for j, (i, cid, xyxy) in enumerate(zip(z["boxes__prediction__image_index"], z["boxes__prediction__class_id"],
                                           z["boxes__prediction__xyxy"])):
        scores[(int(i), int(cid), tuple(int(v) for v in xyxy))] = float(z["boxes__prediction__score"][j])
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    inst = {
        "info": {"description": "gpu-media demo: 8 freely licensed photographs (see ../SOURCES.md) with two "
                                "automatic segmentations, in COCO format", "version": "1.0", "year": 2026},
        "licenses": [{"id": 1, "name": "public domain or CC0; per photograph in gpu_media/demo/SOURCES.md",
                      "url": ""}],
        "images": [], "annotations": [],
        "categories": [{"id": int(k), "name": v, "supercategory": "object"} for k, v in labels.items() if k != "0"],
    }
    results = []
    ann_id = 1
    for i in range(n):
        h, w = images.shape[1:3]
        name = f"{NAMES[i]}.jpg"
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="JPEG", quality=92)
        (OUT / "images" / name).write_bytes(buf.getvalue())
        inst["images"].append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h), "license": 1,
                               "caption": captions[i]})
        for area, cid, (x0, y0, x1, y1), region in regions(z["masks__ground_truth"][i]):
            polys = polygons(region)
            if not polys:
                continue
            inst["annotations"].append({"id": ann_id, "image_id": i + 1, "category_id": cid, "segmentation": polys,
                                        "area": area, "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
            ann_id += 1
        for area, cid, (x0, y0, x1, y1), region in regions(z["masks__prediction"][i]):
            rle = mask_api.encode(np.asfortranarray(region.astype(np.uint8)))
            results.append({"image_id": i + 1, "category_id": cid, "bbox": [x0, y0, x1 - x0, y1 - y0],
                            "score": scores[(i, cid, (x0, y0, x1, y1))],
                            "segmentation": {"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")}})
    (OUT / "instances.json").write_text(json.dumps(inst, indent=1) + "\n")
    (OUT / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {OUT}: {n} images, {len(inst['annotations'])} ground-truth annotations, {len(results)} detections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
