#!/usr/bin/env python
"""Regenerate the demo data shipped in ``gpu_media/demo/``.

Run from the repository root::

    python scripts/make_demo_data.py

Writes (deterministically, byte-identical on every run)

* ``gpu_media/demo/demo.npz``   - 8 real photographs, two segmentation masks
  per image and boxes derived from them, in the package's CLI input format;
* ``gpu_media/demo/SOURCES.md`` - sources, authors and licenses of the
  photographs (quoted from scikit-image, checked against its docstrings),
  how masks/boxes/scores were made, and this command.

Requirements: numpy, pillow, scipy and **scikit-image**. scikit-image is a
DEVELOPMENT-ONLY requirement of this script (the photographs are the sample
images bundled inside the scikit-image wheel, ``skimage/data/``, and the
segmentations use its algorithms); it is NOT a dependency of the
``gpu-media`` package, which only ships the generated files. Nothing is
downloaded: only images bundled in the wheel are used.

Determinism: ``np.savez_compressed`` stamps the current time into every zip
member, so the archive is written by hand (``zipfile`` with a fixed 1980-01-01
timestamp + ``np.lib.format.write_array``). It still loads with a plain
``np.load(path)`` (no ``allow_pickle``; no object arrays). Generated with
scikit-image 0.26.0, numpy 2.4, pillow 13.0, scipy 1.17; other versions may
change some mask pixels (resampling, SLIC, Otsu), hence boxes.

npz keys (N = 8 images, M_k = boxes of key k)::

    images                          uint8   (N, 256, 256, 3)
    masks__prediction               uint8   (N, 256, 256)   class id per pixel
    masks__ground_truth             uint8   (N, 256, 256)   class id per pixel
    boxes__<k>__xyxy                float32 (M_k, 4)  x0, y0, x1, y1 (x1/y1 exclusive)
    boxes__<k>__image_index         int64   (M_k,)
    boxes__<k>__class_id            int64   (M_k,)
    boxes__prediction__score        float32 (M_prediction,)  in [0, 1]
    class_labels                    0-d str  JSON {"0": "background", ...}
    captions                        str     (N,)

Class scheme (same for every image): 0 background, 1 dark object,
2 bright object, 3 colourful object - see ``segment_prediction`` (method A,
"prediction") and ``segment_ground_truth`` (method B, "ground truth"), two
different real segmentation methods that disagree the way a model prediction
and an annotation would.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import skimage
import skimage.data
from PIL import Image
from scipy import ndimage as ndi
from scipy.cluster import hierarchy
from skimage import color, filters, measure, morphology, segmentation
from skimage.data._registry import registry as skimage_registry

SIZE = 256
MIN_BOX_AREA = 150  # pixels; smaller connected components get no box
MAX_BOXES = 8  # per image per key, largest components first
GT_CLUSTERS = 5  # colour groups the SLIC superpixels are merged into (method B)

DEMO_DIR = Path(__file__).resolve().parent.parent / "gpu_media" / "demo"
OUT_NPZ = DEMO_DIR / "demo.npz"
OUT_SOURCES = DEMO_DIR / "SOURCES.md"
SKIMAGE_DATA_DIR = Path(skimage.data.__file__).resolve().parent

CLASS_LABELS = {
    "0": "background",
    "1": "dark object",
    "2": "bright object",
    "3": "colourful object",
}

# Only bundled photographs whose scikit-image docstring states a public-domain
# or CC0 status. ``license_quote``: verbatim from the ``skimage.data`` docstring
# (whitespace-normalised, RST links reduced to their text; ``license_url`` is
# the link target of that sentence); the script refuses to run if the quote is
# not found there.
PHOTOS = [
    dict(
        loader="astronaut",
        file="astronaut.png",
        caption="astronaut Eileen Collins (NASA, public domain)",
        shows="Portrait of NASA astronaut Eileen Collins in an orange flight "
              "suit, US flag and space-shuttle model behind her.",
        author="NASA (NASA Great Images database, https://flic.kr/p/r9qvLn)",
        license="Public domain",
        license_quote="No known copyright restrictions, released into the public domain.",
    ),
    dict(
        loader="chelsea",
        file="chelsea.png",
        caption="Chelsea the cat (Stefan van der Walt, CC0)",
        shows="Close-up of the face of Chelsea, a tabby cat.",
        author="Stefan van der Walt (photographer)",
        license="CC0",
        license_quote="No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
    ),
    dict(
        loader="coffee",
        file="coffee.png",
        caption="coffee cup (Rachel Michetti, CC0)",
        shows="A cup of espresso on a red saucer with a spoon, on a wooden table "
              "(courtesy of Pikolo Espresso Bar).",
        author="Rachel Michetti (photographer); courtesy of Pikolo Espresso Bar",
        license="CC0",
        license_quote="No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
    ),
    dict(
        loader="rocket",
        file="rocket.jpg",
        caption="Falcon 9 / DSCOVR launch (SpaceX, public domain)",
        shows="SpaceX Falcon 9 carrying DSCOVR on the pad at Launch Complex 40, "
              "Cape Canaveral, at dusk.",
        author="SpaceX (SpaceX Photos on Flickr, "
               "https://www.flickr.com/photos/spacexphotos/16511594820/)",
        license="Public domain",
        license_quote="The image was captured by SpaceX and released in the public domain.",
        license_url="http://arstechnica.com/tech-policy/2015/03/"
                    "elon-musk-puts-spacex-photos-into-the-public-domain/",
    ),
    dict(
        loader="hubble_deep_field",
        file="hubble_deep_field.jpg",
        caption="Hubble eXtreme Deep Field (NASA, public domain)",
        shows="Hubble eXtreme Deep Field: thousands of distant galaxies on black sky.",
        author="NASA (HubbleSite, "
               "http://hubblesite.org/newscenter/archive/releases/2012/37/image/a/)",
        license="Public domain",
        license_quote="The image was captured by NASA and may be freely used in the public domain.",
        license_url="http://www.nasa.gov/audience/formedia/features/MP_Photo_Guidelines.html",
    ),
    dict(
        loader="retina",
        file="retina.jpg",
        caption="human retina fundus photo (Mikael Häggström, CC0)",
        shows="Fundus photograph of a normal human left eye (retina, optic disc, "
              "vessels) on a black surround.",
        author="Mikael Häggström, via Wikimedia Commons "
               "(https://commons.wikimedia.org/wiki/File:Fundus_photograph_of_normal_left_eye.jpg); "
               "reference given by scikit-image: Häggström, Mikael (2014). \"Medical gallery "
               "of Mikael Häggström 2014\". WikiJournal of Medicine 1 (2). "
               "DOI 10.15347/wjm/2014.008",
        license="CC0 1.0",
        license_quote="This file is made available under the Creative Commons CC0 1.0 "
                      "Universal Public Domain Dedication.",
    ),
    dict(
        loader="camera",
        file="camera.png",
        caption="cameraman, grayscale (Lav Varshney, CC0)",
        shows="Grayscale photograph of a man operating a camera on a tripod on a "
              "lawn, buildings behind (the CC0 replacement image of skimage >= 0.18, "
              "not the classic 'cameraman' test image). Converted to RGB by "
              "repeating the channel.",
        author="Lav Varshney (photographer)",
        license="CC0",
        license_quote="No copyright restrictions. CC0 by the photographer (Lav Varshney).",
    ),
    dict(
        loader="clock",
        file="clock_motion.png",
        caption="motion-blurred wall clock, grayscale (Stefan van der Walt, public domain)",
        shows="Grayscale photograph of a wall clock, motion-blurred by moving the "
              "camera horizontally. Converted to RGB by repeating the channel.",
        author="Stefan van der Walt (photographer)",
        license="Public domain",
        license_quote="Released into the public domain by the photographer (Stefan van der Walt).",
    ),
]


def _plain_doc(loader: str) -> str:
    """Docstring of ``skimage.data.<loader>``, whitespace normalised, RST links reduced to their text.

    An RST hyperlink (`text <url>`_) becomes its text.
    """
    doc = getattr(skimage.data, loader).__doc__ or ""
    doc = re.sub(r"`([^`<]*?)\s*<[^>`]*>`_+", r"\1", doc)
    return " ".join(doc.split())


def check_licenses() -> None:
    """Check every license quote and bundled photo.

    Every license quote must appear verbatim in the skimage.data docstring,
    and every photo must be a file bundled in the installed wheel.
    """
    for p in PHOTOS:
        doc = _plain_doc(p["loader"])
        if " ".join(p["license_quote"].split()) not in doc:
            raise SystemExit(f"{p['loader']}: license text not found in its docstring")
        if not (SKIMAGE_DATA_DIR / p["file"]).is_file():
            raise SystemExit(f"{p['file']} is not bundled in {SKIMAGE_DATA_DIR}")


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
    out = Image.fromarray(sq).resize((SIZE, SIZE), Image.Resampling.LANCZOS)
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
    """Robust least-squares plane a + b*x + c*y fitted to the border ring of ``lum``.

    Trimmed: refit on the 60 % border pixels with smallest residual.
    Models the background and its illumination gradient (sky, wall, table).
    """
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
    3. object pixels whose HSV saturation exceeds max(0.45, Otsu threshold of
       the saturation of pixels with HSV value > 0.15) -> 3 (colourful object);
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
    """Write an .npz like ``np.savez_compressed``, but byte-identical on reruns.

    Same layout as ``np.savez_compressed`` (deflated ``<key>.npy`` members)
    but with a fixed timestamp and attributes, so reruns are byte-identical.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            arr = np.asarray(value)
            if arr.dtype.hasobject:
                raise TypeError(f"{key}: object arrays are not allowed")
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


EXCLUDED = """\
Bundled in the wheel but **not** used:

* `ihc.png` (immunohistochemistry), `coins.png` - the docstrings only say
  "No known copyright restrictions." with no explicit public-domain or CC
  dedication; left out to stay on the safe side.
* `motorcycle_left.png` / `motorcycle_right.png` (Middlebury 2014 stereo),
  `moon.png`, `page.png`, `color.png` (colour wheel), `logo.png`,
  `lfw_subset.npy` (faces) - no license stated in the docstring.
* `grass.png`, `gravel.png`, `brick.png` (CC0 textures), `text.png` (public
  domain), `horse.png` (CC0 clip art), `cell.png` (CC0 phase image),
  `microaneurysms.png` (CC0, 102x102 crop), `chessboard_*.png`,
  `phantom.png`, `no_time_for_that_tiny.gif`, `multipage*.tif` - licenses
  fine or unstated but not (colour) photographs with objects, or too small.
* The historical "Lena" image and the pre-0.18 "cameraman" are not bundled
  and were not used; `camera.png` is the CC0 replacement.
"""

METHODS = """\
## How the annotations were made

All processing runs on the 256x256 images stored in `images` (each photo:
centre crop to the largest square, then Pillow `resize((256, 256),
Image.Resampling.LANCZOS)`; grayscale photos repeated to 3 channels).

Class ids (same scheme for every image; `class_labels` in the npz):

| id | name | meaning |
|---:|---|---|
| 0 | background | the tone/colour that frames the image (dominates its border) |
| 1 | dark object | clearly darker than the background |
| 2 | bright object | clearly brighter than the background |
| 3 | colourful object | a dark or bright object that is strongly saturated |

### `masks__prediction` - method A: thresholding + morphology

1. Luminance (`skimage.color.rgb2gray`, Gaussian sigma 1.5).
2. Background model: a plane `a + b*x + c*y` fitted by trimmed least squares
   to the 8-px border ring (3 refits on the 60 % best-fitting border pixels);
   it absorbs illumination gradients (dusk sky, lit wall). Residual = luminance
   minus plane.
3. 3-class multi-Otsu (`skimage.filters.threshold_multiotsu`) on the
   residual; the class containing residual 0 is background, darker classes
   -> 1, brighter classes -> 2.
4. Pixels of class 1/2 whose HSV saturation (Gaussian sigma 1.5) exceeds
   `max(0.45, Otsu threshold of the saturation of pixels with value > 0.15)`
   -> 3.
5. Per class: binary opening with a radius-2 disk, components < 64 px
   removed, holes < 64 px filled; classes painted in order 1, 2, 3.

### `masks__ground_truth` - method B: superpixels merged by colour

1. SLIC superpixels (`skimage.segmentation.slic`, n_segments=300,
   compactness=10, on RGB -> Lab).
2. Superpixels merged by colour: Ward agglomerative clustering
   (`scipy.cluster.hierarchy.linkage`/`fcluster`, 5 clusters) of the
   superpixels' mean CIELAB colours.
3. Background = the colour group covering most of the 8-px border ring,
   grown by every group that covers >= 5 % of the border and lies within
   Delta E 20 of a background group. Every other group by its mean L*
   relative to the main background group: darker by > 12 -> 1, brighter by
   > 12 -> 2, otherwise 0; object groups with mean Lab chroma > 30 -> 3.

The two methods agree on the large structures and disagree on details
(region borders, small parts, dark-vs-colourful on saturated objects), like a
model prediction and a coarse annotation would.

### Boxes

For each key (`prediction`, `ground_truth`), each image and each class 1..3:
connected components (`skimage.measure.label`, 8-connectivity) of
`mask == class`, with `skimage.measure.regionprops`; components with area
>= 150 px are kept, at most 8 per image per key (largest area first).
`bbox = (min_row, min_col, max_row, max_col)` ->
`xyxy = (min_col, min_row, max_col, max_row)` in pixels, x1/y1 exclusive.

`boxes__prediction__score` (float32 in [0, 1], rounded to 4 decimals): the
confidence of method A in that region = mean over the region's pixels of the
margin between the pixel and the threshold that created its class, in units
of 0.15 and clipped to [0, 1] - residual luminance vs the multi-Otsu
threshold for classes 1/2, saturation vs the saturation threshold for class 3.
Regions whose pixels barely passed the threshold score near 0, regions far
from it near 1. Ground-truth boxes have no score.
"""


def write_sources(path: Path, arrays: dict, photo_meta: list) -> None:
    lines = [
        "# Demo data: sources and licenses",
        "",
        "`demo.npz` (the CLI input format of `gpu-media`) holds 8 real",
        "photographs with two segmentation masks each and boxes derived from",
        "them. The photographs are sample images bundled in the scikit-image",
        f"{skimage.__version__} wheel (`skimage/data/`, loaded with the",
        "`skimage.data.<name>()` functions); the license texts below are quoted",
        "verbatim from those functions' docstrings (the generator checks this).",
        "",
        "This file and `demo.npz` are generated - do not edit by hand. Regenerate",
        "both (byte-identical output) from the repository root with:",
        "",
        "```",
        "pip install scikit-image numpy pillow scipy   # dev-only, not package deps",
        "python scripts/make_demo_data.py",
        "```",
        "",
        "## Photographs",
        "",
        "| # | skimage.data file | shows | author / source | license |",
        "|---:|---|---|---|---|",
    ]
    for i, p in enumerate(PHOTOS):
        lines.append(f"| {i} | `{p['file']}` (`skimage.data.{p['loader']}()`) | "
                     f"{p['shows']} | {p['author']} | {p['license']} |")
    lines += ["", "License statements, verbatim from the scikit-image docstrings "
              "(RST link markup reduced to its text, link target given after it):", ""]
    for i, (p, meta) in enumerate(zip(PHOTOS, photo_meta)):
        link = f" (<{p['license_url']}>)" if p.get("license_url") else ""
        lines += [
            f"{i}. `{p['file']}`: \"{' '.join(p['license_quote'].split())}\"{link}",
            f"   Original {meta['shape']} {meta['dtype']}; sha256 of the bundled file "
            f"`{meta['sha256']}` (as in `skimage/data/_registry.py`); "
            f"caption \"{p['caption']}\".",
        ]
    lines += ["", EXCLUDED, METHODS]
    lines += ["## Contents of demo.npz", "", "| key | dtype | shape |", "|---|---|---|"]
    for k, v in arrays.items():
        lines.append(f"| `{k}` | {v.dtype} | {tuple(v.shape)} |")
    lines += ["", "Boxes per image:", "",
              "| # | image | prediction | ground_truth |", "|---:|---|---:|---:|"]
    for i, p in enumerate(PHOTOS):
        n_p = int(np.sum(arrays["boxes__prediction__image_index"] == i))
        n_g = int(np.sum(arrays["boxes__ground_truth__image_index"] == i))
        lines.append(f"| {i} | {p['loader']} | {n_p} | {n_g} |")
    lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    check_licenses()
    images, pred_masks, gt_masks, photo_meta = [], [], [], []
    boxes = {k: {"xyxy": [], "image_index": [], "class_id": [], "score": []}
             for k in ("prediction", "ground_truth")}

    for i, p in enumerate(PHOTOS):
        raw = np.asarray(getattr(skimage.data, p["loader"])())
        sha = hashlib.sha256((SKIMAGE_DATA_DIR / p["file"]).read_bytes()).hexdigest()
        if sha != skimage_registry.get("data/" + p["file"]):
            raise SystemExit(f"{p['file']}: sha256 differs from skimage's registry")
        photo_meta.append(dict(shape=tuple(raw.shape), dtype=str(raw.dtype), sha256=sha))
        img = load_photo(p["loader"])
        pred, margin = segment_prediction(img)
        gt = segment_ground_truth(img)
        images.append(img)
        pred_masks.append(pred)
        gt_masks.append(gt)
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
    arrays["class_labels"] = np.array(json.dumps(CLASS_LABELS))
    arrays["captions"] = np.array([p["caption"] for p in PHOTOS])

    used = set(np.unique(arrays["masks__prediction"])) | set(np.unique(arrays["masks__ground_truth"]))
    assert {str(int(c)) for c in used} <= set(CLASS_LABELS), used

    write_npz_deterministic(OUT_NPZ, arrays)
    write_sources(OUT_SOURCES, arrays, photo_meta)
    print(f"wrote {OUT_NPZ} ({OUT_NPZ.stat().st_size} bytes)")
    print(f"wrote {OUT_SOURCES}")
    for k, v in arrays.items():
        print(f"  {k:32s} {str(v.dtype):8s} {v.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
