// docs/SPEC.md 3, per element: classify one mask value for the 256-bin histogram of mask_stats.
//
// mask_class(v) returns the bin (0..255) of an integral value in [0, 255]; MASK_OUTSIDE
// for an integral value outside [0, 255] (counted nowhere: it shows in lo/hi); MASK_BAD
// for a non-finite or fractional value (counted in `bad`), as
// cpu_fallback/masks.py::mask_stats. Bool masks are read as uint8.
#pragma once

#include "common.cuh"

namespace gm {

enum { MASK_OUTSIDE = -1, MASK_BAD = -2 };

// Whether a finite double is an integer, without <math.h>: every double of magnitude
// >= 2^52 is one; below that, the conversion to int64 is exact and truncates.
GM_HD bool is_integral_finite(double v) {
    const double a = v < 0.0 ? -v : v;
    if (a >= 4503599627370496.0) return true;
    return (double)(i64)v == v;
}

GM_HD int mask_class_f64(double v) {
    if (!is_finite(v) || !is_integral_finite(v)) return MASK_BAD;
    return (v >= 0.0 && v <= 255.0) ? (int)v : MASK_OUTSIDE;  // -0.0 -> bin 0
}

GM_HD int mask_class_i64(i64 v) { return (v >= 0 && v <= 255) ? (int)v : MASK_OUTSIDE; }
GM_HD int mask_class_u64(u64 v) { return v <= 255u ? (int)v : MASK_OUTSIDE; }

GM_HD int mask_class(half_t v) { return is_finite(v) ? mask_class_f64(f32_to_f64(half_to_float(v.bits))) : MASK_BAD; }
GM_HD int mask_class(float v) { return is_finite(v) ? mask_class_f64(f32_to_f64(v)) : MASK_BAD; }
GM_HD int mask_class(double v) { return mask_class_f64(v); }
GM_HD int mask_class(i8 v) { return mask_class_i64(v); }
GM_HD int mask_class(i16 v) { return mask_class_i64(v); }
GM_HD int mask_class(i32 v) { return mask_class_i64(v); }
GM_HD int mask_class(i64 v) { return mask_class_i64(v); }
GM_HD int mask_class(u8 v) { return (int)v; }
GM_HD int mask_class(u16 v) { return mask_class_u64(v); }
GM_HD int mask_class(u32 v) { return mask_class_u64(v); }
GM_HD int mask_class(u64 v) { return mask_class_u64(v); }

}  // namespace gm
