"""docs/SPEC.md 4 in NumPy: paint box outlines, later boxes over earlier ones."""

from __future__ import annotations

import numpy as np


def draw_outlines(images: np.ndarray, rects: np.ndarray, image_index: np.ndarray, colors: np.ndarray,
                  thickness: int) -> np.ndarray:
    """Burn outlines into a copy of ``images``.

    images: uint8 (N,H,W,C), C in {1,3,4}; C=1 becomes RGB. rects: int64 (M,4) with
    inclusive pixel bounds x0, y0, x1, y1 (docs/SPEC.md 4 step 2). image_index: (M,) ints.
    colors: uint8 (M,3). A pixel is on a box's outline when it is inside the box and
    closer than ``thickness`` to one of its edges; boxes are painted in order, so the
    later box wins where outlines overlap; RGBA outline pixels get alpha 255.

    Examples:
        >>> out = draw_outlines(np.zeros((1, 4, 5, 1), np.uint8), np.array([[0, 0, 3, 2]]), np.array([0]),
        ...                     np.array([[9, 9, 9]], np.uint8), 1)
        >>> out.shape
        (1, 4, 5, 3)
        >>> out[0, :, :, 0].tolist()
        [[9, 9, 9, 9, 0], [9, 0, 0, 9, 0], [9, 9, 9, 9, 0], [0, 0, 0, 0, 0]]
    """
    out = np.repeat(images, 3, axis=3) if images.shape[3] == 1 else images.copy()
    _, h, w, c = out.shape
    t = int(thickness)
    for (x0, y0, x1, y1), i, col in zip(rects.tolist(), image_index.tolist(), colors):
        if x1 < x0 or y1 < y0:
            continue
        img = out[i]
        strips = (
            (y0, min(y0 + t - 1, y1), x0, x1),  # top
            (max(y1 - t + 1, y0), y1, x0, x1),  # bottom
            (y0, y1, x0, min(x0 + t - 1, x1)),  # left
            (y0, y1, max(x1 - t + 1, x0), x1),  # right
        )
        for r0, r1, c0, c1 in strips:
            r0, r1, c0, c1 = max(r0, 0), min(r1, h - 1), max(c0, 0), min(c1, w - 1)
            if r0 > r1 or c0 > c1:
                continue
            img[r0 : r1 + 1, c0 : c1 + 1, :3] = col
            if c == 4:
                img[r0 : r1 + 1, c0 : c1 + 1, 3] = 255
    return out
