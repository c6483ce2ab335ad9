// docs/SPEC.md 4 steps 3 and 5, per pixel: which box outline (if any) colours a pixel.
//
// Boxes are inclusive int64 pixel rectangles x0, y0, x1, y1 (docs/SPEC.md 4 step 2, clipped to
// +-2^40 by gpu_media/boxes.py::outline_rects, so every difference below fits in int64).
// Pixel (x, y) is on a box's outline of thickness t >= 1 when it is inside the box and
// closer than t to one of its edges; a box with x1 < x0 or y1 < y0 draws nothing. This
// is the union of the four edge strips that cpu_fallback/boxes.py paints.
#pragma once

#include "common.cuh"

namespace gm {

GM_HD bool on_outline(i64 x, i64 y, i64 x0, i64 y0, i64 x1, i64 y1, i64 t) {
    if (x < x0 || x > x1 || y < y0 || y > y1) return false;  // also every empty box
    i64 d = x - x0;
    if (x1 - x < d) d = x1 - x;
    if (y - y0 < d) d = y - y0;
    if (y1 - y < d) d = y1 - y;
    return d < t;
}

// The winning box of pixel (x, y) among boxes [first, last) of its image (rects is
// (M, 4) int64 row-major, boxes sorted by image with their order kept): the highest
// index whose outline covers the pixel, since later boxes are painted over earlier ones
// (docs/SPEC.md 4 step 5); -1 when none does. Deterministic: no atomics, no race.
GM_HD i64 winning_box(i64 x, i64 y, const i64* rects, i64 first, i64 last, i64 t) {
    for (i64 k = last - 1; k >= first; --k) {
        const i64* r = rects + 4 * k;
        if (on_outline(x, y, r[0], r[1], r[2], r[3], t)) return k;
    }
    return -1;
}

// One output pixel p = (i*h + y)*w + x of the outline pass. img (n, h, w, c_in) and out
// (n, h, w, c_out) are uint8 contiguous, c_out = 3 when c_in == 1, else c_in. rects (M, 4)
// sorted by image with their order kept; image i's boxes are [offsets[i], offsets[i+1]);
// colors (M, 3) uint8. A covered pixel takes its winning box's colour (alpha 255 for
// RGBA); any other pixel is copied (grey replicated to RGB).
GM_HD void outline_pixel(const u8* img, u8* out, i64 p, i64 h, i64 w, i64 c_in, const i64* rects,
                         const u8* colors, const i64* offsets, i64 t) {
    const i64 c_out = c_in == 1 ? 3 : c_in;
    i64 i, r, y, x;
    divmod(p, h * w, &i, &r);
    divmod(r, w, &y, &x);
    const i64 k = winning_box(x, y, rects, offsets[i], offsets[i + 1], t);
    const u8* s = img + p * c_in;
    u8* d = out + p * c_out;
    if (k >= 0) {
        d[0] = colors[3 * k];
        d[1] = colors[3 * k + 1];
        d[2] = colors[3 * k + 2];
        if (c_out == 4) d[3] = 255;
    } else if (c_in == 1) {
        d[0] = d[1] = d[2] = s[0];
    } else {
        for (i64 ch = 0; ch < c_out; ++ch) d[ch] = s[ch];
    }
}

}  // namespace gm
