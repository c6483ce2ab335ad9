#!/usr/bin/env python
"""Regenerate the demo data shipped in ``gpu_media/demo/``.

Writes

* ``gpu_media/demo/demo.npz``  - 8 real photographs + two segmentation masks
  per image + boxes derived from them (the package's CLI input format),
* nothing else: ``gpu_media/demo/SOURCES.md`` documents sources, licenses and
  the methods below and is maintained by hand next to this script.

Run from the repository root::

    python scripts/make_demo_data.py

Requirements: numpy, pillow, scipy and **scikit-image** (the photographs are
the sample images bundled in the scikit-image wheel, ``skimage/data/``; the
segmentations use scikit-image algorithms). scikit-image is a *development
only* requirement of this script; it is NOT a dependency of the ``gpu-media``
package, which only ships the resulting ``demo.npz``. Nothing is downloaded.

The output is deterministic: running the script twice gives a byte-identical
``demo.npz`` (the zip archive is written by hand with fixed timestamps instead
of ``np.savez_compressed``, which stamps the current time into every member).
It was produced with scikit-image 0.26.0, numpy 2.4, pillow 13.0, scipy 1.17;
other versions may change a few mask pixels (resampling, SLIC, Otsu).

Segmentation scheme (identical class ids for every image)::

    0 background        - the tone/colour that dominates the image border
    1 dark object       - darker than the background
    2 bright object     - brighter than the background
    3 colourful object  - strongly saturated, not background

``masks__prediction``   = method A: multi-Otsu luminance thresholding +
                          HSV-saturation threshold + morphological clean-up.
``masks__ground_truth`` = method B: SLIC superpixels merged by Lab colour
                          (region adjacency graph, threshold cut), each merged
                          region classified by its mean Lab colour.
Boxes = bounding boxes of connected components (area >= 150 px) of each
non-background class of the respective mask, at most 8 per image per key
(largest first). ``boxes__prediction__score`` = mean per-pixel margin of the
region's pixels from the threshold that created the class (see ``_margin``).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi
from scipy.cluster import hierarchy

import skimage
import skimage.data
from skimage import color, filters, measure, morphology, segmentation

SIZE = 256
MIN_BOX_AREA = 150
MAX_BOXES = 8
GT_CLUSTERS = 5  # colour groups the SLIC superpixels are merged into
OUT = Path(__file__).resolve().parent.parent / "gpu_media" / "demo" / "demo.npz"

CLASS_LABELS = {
    "0": "background",
    "1": "dark object",
    "2": "bright object",
    "3": "colourful object",
}

# (skimage.data loader, bundled file, caption). Licenses: see SOURCES.md.
PHOTOS = [
    ("astronaut", "astronaut.png", "astronaut Eileen Collins (NASA, public domain)"),
    ("chelsea", "chelsea.png", "Chelsea the cat (Stefan van der Walt, CC0)"),
    ("coffee", "coffee.png", "coffee cup (Rachel Michetti, CC0)"),
    ("rocket", "rocket.jpg", "Falcon 9 / DSCOVR launch (SpaceX, public domain)"),
    ("hubble_deep_field", "hubble_deep_field.jpg", "Hubble eXtreme Deep Field (NASA, public domain)"),
    ("retina", "retina.jpg", "human retina fundus photo (Mikael Häggström, CC0)"),
    ("camera", "camera.png", "cameraman, grayscale (Lav Varshney, CC0)"),
    ("clock", "clock_motion.png", "motion-blurred wall clock, grayscale (Stefan van der Walt, public domain)"),
]


# --------------------------------------------------------------------------- images
def load_photo(loader: str) -> np.ndarray:
    """Bundled photograph -> uint8 (256, 256, 3): center square crop + LANCZOS."""
    img = np.asarray(getattr(skimage.data, loader)())
    if img.dtype != np.uint8:
        raise TypeError(f"{loader}: expected uint8, got {img.dtype}")
    if img.ndim == 2:  # grayscale photograph -> RGB by repeating the channel
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    sq = np.ascontiguousarray(img[top : top + s, left : left + s])
    out = Image.fromarray(sq, mode="RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(out, dtype=np.uint8)


def _border(a: np.ndarray, width: int = 8) -> np.ndarray:
    m = np.zeros(a.shape[:2], dtype=bool)
    m[:width, :] = m[-width:, :] = m[:, :width] = m[:, -width:] = True
    return a[m]


def _clean(mask: np.ndarray, min_px: int = 64) -> np.ndarray:
    """Opening with a disk, then drop small objects and fill small holes."""
    mask = ndi.binary_opening(mask, structure=morphology.disk(2))
    lab, n = ndi.label(mask)
    if n:
        sizes = np.bincount(lab.ravel())
        keep = sizes >= min_px
        keep[0] = False
        mask = keep[lab]
    lab, n = ndi.label(~mask)
    if n:
        sizes = np.bincount(lab.ravel())
        small = sizes < min_px
        small[0] = False
        mask = mask | small[lab]
    return mask


# --------------------------------------------------------------- method A (prediction)
def _border_plane(lum: np.ndarray, width: int = 8, iters: int = 3) -> np.ndarray:
    """Robust least-squares plane a + b*x + c*y fitted to the border ring of
    ``lum`` (trimmed: refit on the 60 % border pixels with smallest residual).
    Models the background and its illumination gradient (sky, wall, table)."""
    h, w = lum.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xx, yy = xx / (w - 1) * 2 - 1, yy / (h - 1) * 2 - 1
    ring = np.zeros(lum.shape, dtype=bool)
    ring[:width, :] = ring[-width:, :] = ring[:, :width] = ring[:, -width:] = True
    design = np.stack([np.ones_like(xx), xx, yy], axis=-1)
    a, z = design[ring], lum[ring]
    keep = np.ones(z.size, dtype=bool)
    for _ in range(iters):
        coef = np.linalg.lstsq(a[keep], z[keep], rcond=None)[0]
        resid = np.abs(z - a @ coef)
        keep = resid <= np.quantile(resid, 0.6)
    return design @ coef


def segment_prediction(img: np.ndarray):
    """Background-plane-corrected multi-Otsu thresholding + morphology.

    1. luminance (Gaussian sigma 1.5), minus a robust plane fitted to the
       image border (= background estimate incl. illumination gradient);
    2. 3-class multi-Otsu on that residual; the class containing residual 0
       is background, darker classes -> 1, brighter classes -> 2;
    3. object pixels whose HSV saturation exceeds max(0.45, Otsu(saturation))
       -> 3 (colourful object);
    4. per class: binary opening (disk r=2), drop components < 64 px, fill
       holes < 64 px.

    Returns the class mask and the per-class margin maps used for the scores.
    """
    rgb = img.astype(np.float64) / 255.0
    lum = filters.gaussian(color.rgb2gray(rgb), sigma=1.5)
    rel = lum - _border_plane(lum)
    thr = filters.threshold_multiotsu(rel, classes=3)
    tone = np.digitize(rel, thr)
    bg_tone = int(np.digitize(0.0, thr))
    t_dark = thr[bg_tone - 1] if bg_tone > 0 else -np.inf
    t_bright = thr[bg_tone] if bg_tone < 2 else np.inf

    sat = filters.gaussian(color.rgb2hsv(rgb)[:, :, 1], sigma=1.5)
    lit = sat[rgb.max(axis=2) > 0.15]  # saturation is meaningless near black
    s_thr = 0.45
    if lit.size and np.ptp(lit) > 1e-3:  # grayscale photographs: no saturation
        s_thr = max(s_thr, float(filters.threshold_otsu(lit)))

    dark, bright = tone < bg_tone, tone > bg_tone
    raw = {1: dark, 2: bright, 3: (dark | bright) & (sat > s_thr)}
    # score margin: distance of each pixel from the threshold that created its
    # class, in units of 0.15 (luminance residual or saturation), clipped to [0, 1]
    margin = {
        1: np.clip((t_dark - rel) / 0.15, 0, 1),
        2: np.clip((rel - t_bright) / 0.15, 0, 1),
        3: np.clip((sat - s_thr) / 0.15, 0, 1),
    }
    mask = np.zeros(img.shape[:2], dtype=np.uint8)
    for cid in (1, 2, 3):  # later classes win where cleaned masks overlap
        mask[_clean(raw[cid])] = cid
    return mask, margin


# ------------------------------------------------------------- method B (ground truth)
def segment_ground_truth(img: np.ndarray) -> np.ndarray:
    """SLIC superpixels merged by colour, each merged group classified by colour.

    1. SLIC superpixels (n_segments=300, compactness=10) on the RGB image;
    2. superpixels merged by colour: Ward agglomerative clustering of their
       mean CIELAB colours into GT_CLUSTERS groups (scipy.cluster.hierarchy);
    3. background = group covering most of the image border; other groups by
       mean L* relative to it: darker by > 12 -> 1, brighter by > 12 -> 2,
       else background; object groups with mean chroma > 30 -> 3.
    """
    rgb = img.astype(np.float64) / 255.0
    lab_img = color.rgb2lab(rgb)
    sp = segmentation.slic(rgb, n_segments=300, compactness=10, start_label=0,
                           channel_axis=-1)
    n_sp = int(sp.max()) + 1
    cnt = np.bincount(sp.ravel(), minlength=n_sp).astype(np.float64)
    feats = np.stack([np.bincount(sp.ravel(), weights=lab_img[:, :, c].ravel(),
                                  minlength=n_sp) for c in range(3)], axis=1)
    feats /= np.maximum(cnt, 1)[:, None]
    z = hierarchy.linkage(feats, method="ward")
    group_of_sp = hierarchy.fcluster(z, t=GT_CLUSTERS, criterion="maxclust") - 1
    groups = group_of_sp[sp]

    n = int(groups.max()) + 1
    count = np.maximum(np.bincount(groups.ravel(), minlength=n), 1).astype(np.float64)
    mean_lab = np.stack([np.bincount(groups.ravel(), weights=lab_img[:, :, c].ravel(),
                                     minlength=n) for c in range(3)], axis=1) / count[:, None]
    mean_l = mean_lab[:, 0]
    mean_c = np.hypot(mean_lab[:, 1], mean_lab[:, 2])

    # background: the group covering most of the border, grown by every group
    # that also touches the border (>= 5 %) and is within Delta E 20 of a
    # background group (sky gradients, grass under sky, lit/unlit wall)
    border_frac = np.bincount(_border(groups), minlength=n) / _border(groups).size
    bg_group = int(np.argmax(border_frac))
    is_bg = np.zeros(n, dtype=bool)
    is_bg[bg_group] = True
    grown = True
    while grown:
        grown = False
        for g in np.flatnonzero(~is_bg & (border_frac >= 0.05)):
            if np.min(np.linalg.norm(mean_lab[is_bg] - mean_lab[g], axis=1)) < 20.0:
                is_bg[g] = grown = True

    l_bg = mean_l[bg_group]
    group_cls = np.zeros(n, dtype=np.uint8)
    group_cls[mean_l < l_bg - 12.0] = 1
    group_cls[mean_l > l_bg + 12.0] = 2
    group_cls[(group_cls != 0) & (mean_c > 30.0)] = 3
    group_cls[is_bg] = 0
    return group_cls[groups]


# ------------------------------------------------------------------------- boxes
def boxes_from_mask(mask: np.ndarray, margin=None):
    """Connected components (8-connectivity) of every non-background class."""
    found = []
    for cid in range(1, len(CLASS_LABELS)):
        lab = measure.label(mask == cid, connectivity=2)
        for rp in measure.regionprops(lab):
            if rp.area < MIN_BOX_AREA:
                continue
            r0, c0, r1, c1 = rp.bbox  # max_row / max_col are exclusive
            score = None
            if margin is not None:
                rr, cc = rp.coords[:, 0], rp.coords[:, 1]
                score = float(np.mean(margin[cid][rr, cc]))
            found.append((int(rp.area), cid, (c0, r0, c1, r1), score))
    # largest first; ties broken by class id then position -> deterministic
    found.sort(key=lambda f: (-f[0], f[1], f[2]))
    return found[:MAX_BOXES]


# ------------------------------------------------------------------- writing
def write_npz_deterministic(path: Path, arrays: dict) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps/attributes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in arrays:
            arr = np.asarray(arrays[key])
            if arr.dtype.hasobject:
                raise TypeError(f"{key}: object arrays are not allowed")
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main() -> int:
    images, pred_masks, gt_masks, captions = [], [], [], []
    boxes = {k: {"xyxy": [], "image_index": [], "class_id": [], "score": []}
             for k in ("prediction", "ground_truth")}

    for i, (loader, _fname, caption) in enumerate(PHOTOS):
        img = load_photo(loader)
        pred, margin = segment_prediction(img)
        gt = segment_ground_truth(img)
        images.append(img)
        pred_masks.append(pred)
        gt_masks.append(gt)
        captions.append(caption)
        for key, m, mg in (("prediction", pred, margin), ("ground_truth", gt, None)):
            for _area, cid, xyxy, score in boxes_from_mask(m, mg):
                boxes[key]["xyxy"].append(xyxy)
                boxes[key]["image_index"].append(i)
                boxes[key]["class_id"].append(cid)
                boxes[key]["score"].append(score)

    arrays = {
        "images": np.stack(images).astype(np.uint8),
        "masks__prediction": np.stack(pred_masks).astype(np.uint8),
        "masks__ground_truth": np.stack(gt_masks).astype(np.uint8),
    }
    for key, b in boxes.items():
        arrays[f"boxes__{key}__xyxy"] = np.asarray(b["xyxy"], dtype=np.float32).reshape(-1, 4)
        arrays[f"boxes__{key}__image_index"] = np.asarray(b["image_index"], dtype=np.int64)
        arrays[f"boxes__{key}__class_id"] = np.asarray(b["class_id"], dtype=np.int64)
        if key == "prediction":
            arrays[f"boxes__{key}__score"] = np.round(
                np.asarray(b["score"], dtype=np.float64), 4).astype(np.float32)
    arrays["class_labels"] = np.array(json.dumps(CLASS_LABELS, sort_keys=True))
    arrays["captions"] = np.array(captions)

    write_npz_deterministic(OUT, arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, scikit-image {skimage.__version__})")
    for k, v in arrays.items():
        print(f"  {k:32s} {str(v.dtype):6s} {v.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
