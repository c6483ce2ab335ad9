// SPEC 2, per element: one input value -> one uint8, given its image's branch code.
//
// Branch codes (chosen per image from its finite range, see branch_code_* below):
//   0: [0, 1]  -> trunc(x * 255)
//   1: [-1, 1] -> trunc((x + 1) * 127.5)
//   2: other   -> trunc(clip(x, 0, 255))       (also every image when normalize=False)
// Floats follow cpu_fallback/normalize.py::_convert_float exactly: y = (x + add) * scale
// in the input's own type, rounded after each operation (float16: computed in float32
// and rounded back to float16 after each op, as NumPy does), then fmax(y, 0) (NaN -> 0),
// min(y, 255), truncation toward zero. Integers and bool follow _convert_int: exact.
#pragma once

#include "common.cuh"

namespace gm {

enum { CODE_UNIT = 0, CODE_SIGNED_UNIT = 1, CODE_CLIP = 2 };

// ---- branch code from an image's range (SPEC 2 table) ----------------------------------
// lo/hi are the min/max over the finite values; an image with none has lo=+inf, hi=-inf
// and so takes code 0, as in cpu_fallback (the result is the same under every code).
GM_HD u8 branch_code_f64(double lo, double hi) {
    if (lo >= 0.0 && hi <= 1.0) return CODE_UNIT;
    if (lo >= -1.0 && hi <= 1.0) return CODE_SIGNED_UNIT;
    return CODE_CLIP;
}

GM_HD u8 branch_code_i64(i64 lo, i64 hi) {
    if (lo >= 0 && hi <= 1) return CODE_UNIT;
    if (lo >= -1 && hi <= 1) return CODE_SIGNED_UNIT;
    return CODE_CLIP;
}

GM_HD u8 branch_code_u64(u64 lo, u64 hi) {
    (void)lo;  // lo >= 0 always
    return hi <= 1 ? (u8)CODE_UNIT : (u8)CODE_CLIP;
}

// The branch code from the (min key, max key) of range_key (common.cuh), per key kind:
// 'f' floats, 'i' signed integers, 'u' unsigned integers and bool.
GM_HD u8 branch_code_from_keys(char kind, u64 kmin, u64 kmax) {
    if (kind == 'f') return branch_code_f64(double_of_key(kmin), double_of_key(kmax));
    if (kind == 'i') return branch_code_i64(i64_of_key(kmin), i64_of_key(kmax));
    return branch_code_u64(kmin, kmax);
}

// ---- floats -------------------------------------------------------------------------
// fmax(y, 0) with NaN -> 0, min(y, 255), truncation. y is in the input's own type; the
// sign of a zero does not matter once truncated.
GM_HD u8 clip_trunc(float y) {
    y = (y > 0.0f) ? y : 0.0f;  // NaN fails the compare: 0 (np.fmax)
    y = (y < 255.0f) ? y : 255.0f;
    return (u8)(i32)y;  // in [0, 255]: C's conversion truncates toward zero
}

GM_HD u8 clip_trunc(double y) {
    y = (y > 0.0) ? y : 0.0;
    y = (y < 255.0) ? y : 255.0;
    return (u8)(i32)y;
}

GM_HD u8 to_u8(half_t x, int code) {
    float y = half_to_float(x.bits);
    if (code == CODE_SIGNED_UNIT) {
        y = round_to_half(add_rn(y, 1.0f));
        y = round_to_half(mul_rn(y, 127.5f));
    } else if (code == CODE_UNIT) {
        y = round_to_half(mul_rn(y, 255.0f));
    }
    return clip_trunc(y);
}

// float32 and float64: every operation in the input's own type (1, 127.5 and 255 are exact in both)
template <typename F>
GM_HD u8 to_u8(F x, int code) {
    F y = x;
    if (code == CODE_SIGNED_UNIT) {
        y = add_rn(y, F(1));
        y = mul_rn(y, F(127.5));
    } else if (code == CODE_UNIT) {
        y = mul_rn(y, F(255));
    }
    return clip_trunc(y);
}

// ---- integers and bool ----------------------------------------------------------------
// xc is the input clamped to [-1, 255] (exact: values outside only matter to the clip
// row); then y = ((xc + add) * mult) >> add, clipped to [0, 255]; exact in int32.
GM_HD u8 int_to_u8(i32 xc, int code) {
    const i32 add = (code == CODE_SIGNED_UNIT) ? 1 : 0;
    const i32 mult = (code == CODE_CLIP) ? 1 : 255;
    i32 y = ((xc + add) * mult) >> add;
    y = y < 0 ? 0 : (y > 255 ? 255 : y);
    return (u8)y;
}

GM_HD i32 clamp_signed(i64 v) { return (i32)(v < -1 ? -1 : (v > 255 ? 255 : v)); }
GM_HD i32 clamp_unsigned(u64 v) { return (i32)(v > 255u ? 255u : v); }

GM_HD u8 to_u8(u8 x, int code) { return int_to_u8((i32)x, code); }  // uint8 and bool
GM_HD u8 to_u8(i8 x, int code) { return int_to_u8(clamp_signed(x), code); }
GM_HD u8 to_u8(u16 x, int code) { return int_to_u8(clamp_unsigned(x), code); }
GM_HD u8 to_u8(i16 x, int code) { return int_to_u8(clamp_signed(x), code); }
GM_HD u8 to_u8(u32 x, int code) { return int_to_u8(clamp_unsigned(x), code); }
GM_HD u8 to_u8(i32 x, int code) { return int_to_u8(clamp_signed(x), code); }
GM_HD u8 to_u8(u64 x, int code) { return int_to_u8(clamp_unsigned(x), code); }
GM_HD u8 to_u8(i64 x, int code) { return int_to_u8(clamp_signed(x), code); }

// The key kind of each input type, for branch_code_from_keys.
GM_HD char key_kind(half_t) { return 'f'; }
GM_HD char key_kind(float) { return 'f'; }
GM_HD char key_kind(double) { return 'f'; }
GM_HD char key_kind(i8) { return 'i'; }
GM_HD char key_kind(i16) { return 'i'; }
GM_HD char key_kind(i32) { return 'i'; }
GM_HD char key_kind(i64) { return 'i'; }
GM_HD char key_kind(u8) { return 'u'; }
GM_HD char key_kind(u16) { return 'u'; }
GM_HD char key_kind(u32) { return 'u'; }
GM_HD char key_kind(u64) { return 'u'; }

GM_HD u64 key_min_init(char kind) { return kind == 'f' ? GM_KEY_FLOAT_MIN_INIT : GM_KEY_INT_MIN_INIT; }
GM_HD u64 key_max_init(char kind) { return kind == 'f' ? GM_KEY_FLOAT_MAX_INIT : GM_KEY_INT_MAX_INIT; }

// ---- one output pixel of the conversion pass ----------------------------------------
// Pixel p of the batch (p = (i*h + y)*w + x): reads its c values at
// x + i*sn + y*sh + x*sw + ch*sc (element strides, so NCHW, NHWC and any strided view
// alike) and writes out[p*c + ch], uint8 NHWC contiguous; codes[i] is image i's branch.
template <typename T>
GM_HD void convert_pixel(const T* x, u8* out, i64 p, i64 h, i64 w, i64 c, i64 sn, i64 sh, i64 sw,
                         i64 sc, const u8* codes) {
    i64 img, r, yy, xx;
    divmod(p, h * w, &img, &r);
    divmod(r, w, &yy, &xx);
    const T* src = x + img * sn + yy * sh + xx * sw;
    const int code = codes[img];
    u8* dst = out + p * c;
    for (i64 ch = 0; ch < c; ++ch) dst[ch] = to_u8(src[ch * sc], code);
}

}  // namespace gm
