"""Plain, unoptimized per-image / per-pixel references written straight from docs/SPEC.md.

Used only by the tests, to check both backends against the SPEC's words.
"""

import math

import numpy as np


def normalize_image(img: np.ndarray, normalize: bool = True) -> np.ndarray:
    """docs/SPEC.md 2 for ONE channel-last image (H,W,C) of any supported dtype -> uint8 (H,W,C)."""
    x = img.astype(np.uint8) if img.dtype == np.bool_ else img
    if x.dtype.kind == "f":
        finite = x[np.isfinite(x)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (None, None)
    else:
        lo, hi = int(x.min()), int(x.max())
    if normalize and lo is not None and 0 <= lo and hi <= 1:
        row = "unit"
    elif normalize and lo is not None and -1 <= lo and hi <= 1:
        row = "signed"
    else:
        row = "clip"
    out = np.empty(x.shape, dtype=np.uint8)
    if x.dtype.kind == "f":
        t = x.dtype.type
        for idx, v in np.ndenumerate(x):
            if row == "unit":
                y = v * t(255)  # rounded to the input's float type (NumPy scalar math)
            elif row == "signed":
                y = (v + t(1)) * t(127.5)
            else:
                y = v
            if math.isnan(y):
                out[idx] = 0
            else:
                out[idx] = int(math.trunc(min(max(float(y), 0.0), 255.0)))
    else:
        for idx, v in np.ndenumerate(x):
            v = int(v)
            if row == "unit":
                y = v * 255
            elif row == "signed":
                y = ((v + 1) * 255) // 2  # trunc((v+1)*127.5) for v+1 >= 0
            else:
                y = min(max(v, 0), 255)
            out[idx] = y
    return out


def outline_pixels(h, w, min_x, min_y, max_x, max_y, t):
    """docs/SPEC.md 4 steps 2-3 for one box in pixels: boolean (H,W) outline mask, pixel by pixel."""
    x0, x1 = round_half_even(min_x), round_half_even(max_x) - 1
    y0, y1 = round_half_even(min_y), round_half_even(max_y) - 1
    m = np.zeros((h, w), dtype=bool)
    if x1 < x0 or y1 < y0:
        return m
    for y in range(h):
        for x in range(w):
            if x0 <= x <= x1 and y0 <= y <= y1 and min(x - x0, x1 - x, y - y0, y1 - y) < t:
                m[y, x] = True
    return m


def round_half_even(v: float) -> int:
    return int(round(v))  # Python's round() is round-half-to-even


def draw_reference(img_u8, boxes, t, colors):
    """docs/SPEC.md 4 for one image: boxes = [(minX, minY, maxX, maxY, class_id)] in pixels, in order."""
    from gpu_media import PALETTE

    out = np.repeat(img_u8, 3, axis=2) if img_u8.shape[2] == 1 else img_u8.copy()
    h, w = out.shape[:2]
    for (a, b, c, d, cid) in boxes:
        col = (colors or {}).get(cid, PALETTE[cid % len(PALETTE)])
        m = outline_pixels(h, w, a, b, c, d, t)
        out[m, :3] = col
        if out.shape[2] == 4:
            out[m, 3] = 255
    return out
