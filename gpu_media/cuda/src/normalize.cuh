// docs/SPEC.md 2, per element: one input value -> one uint8, given its image's branch code.
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

// ---- branch code from an image's range (docs/SPEC.md 2 table) ----------------------------------
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

// ---- the fused pass (gm_normalize_<t>): ranges and conversion in one kernel -------------
// Work is cut into tickets, handed out in increasing order by one global counter. Each
// image's h*w pixels are cut into `tiles` tiles of tile_px pixels; an image has `tiles`
// range tickets (R: min/max keys over the tile's pixels) and `tiles` convert tickets (C:
// the tile's pixels to uint8, which needs the image's whole range). In ticket order the
// images' tickets come in "units" of `tiles` tickets, R of image s then C of image s-lag:
//   R(0) .. R(lag-1), R(lag) C(0), R(lag+1) C(1), ..., R(n-1) C(n-1-lag), C(n-lag) .. C(n-1)
// (lag clamped to [1, n]), so a C ticket's image was read, lag images earlier, by R
// tickets that are still in L2 when lag images fit there. Every R ticket of an image
// precedes each of its C tickets: a block holding a C ticket waits only for blocks that
// took smaller tickets (so are running), which never wait; no deadlock, whatever the
// number of resident blocks (tests/test_kernels_host.py checks the order).
enum { FUSED_RANGE = 0, FUSED_CONVERT = 1 };

GM_HD i64 fused_lag(i64 n, i64 lag) { return lag < 1 ? 1 : (lag > n ? n : lag); }

GM_HD i64 fused_tickets(i64 n, i64 tiles) { return 2 * n * tiles; }

// Ticket t (0 <= t < fused_tickets) -> its phase, image and tile (0 <= tile < tiles).
GM_HD void fused_ticket(i64 t, i64 n, i64 tiles, i64 lag, int* phase, i64* img, i64* tile) {
    lag = fused_lag(n, lag);
    i64 u, k;
    divmod(t, tiles, &u, &k);
    *tile = k;
    if (u < lag) {  // the first lag images' ranges
        *phase = FUSED_RANGE;
        *img = u;
    } else if (u < lag + 2 * (n - lag)) {  // R(s) C(s - lag) pairs
        const i64 v = u - lag, s = lag + v / 2;
        *phase = (v & 1) ? FUSED_CONVERT : FUSED_RANGE;
        *img = (v & 1) ? s - lag : s;
    } else {  // the last lag images' conversions
        *phase = FUSED_CONVERT;
        *img = n - lag + (u - lag - 2 * (n - lag));
    }
}

// Loads in flight per thread: a thread issues this many loads (range tickets: elements;
// convert tickets: pixels of C elements) before it uses any, so the grid keeps enough
// bytes in flight at a few blocks per SM.
#define GM_FUSED_RANGE_UNROLL 8
#define GM_FUSED_UNROLL 4
#ifdef __CUDACC__
#define GM_UNROLL _Pragma("unroll")  // keep the per-thread arrays in registers
#else
#define GM_UNROLL
#endif

// One thread's share (thread tid of nthreads) of a range ticket: the elements
// [start, end) of the image at `base`, in (H, W, C) order (`dense`: one contiguous run,
// any order, as range_impl), folded into *kmin / *kmax with range_key.
template <typename T>
GM_HD void fused_range_thread(const T* base, i64 start, i64 end, i64 w, i64 c, i64 sh, i64 sw, i64 sc, int dense,
                              int tid, int nthreads, u64* kmin, u64* kmax) {
    const i64 step = (i64)nthreads * GM_FUSED_RANGE_UNROLL;
    for (i64 e0 = start + tid; e0 < end; e0 += step) {
        T v[GM_FUSED_RANGE_UNROLL];
        GM_UNROLL
        for (int u = 0; u < GM_FUSED_RANGE_UNROLL; ++u) {  // every load first (past the end: the last element again)
            i64 e = e0 + (i64)u * nthreads;
            e = e < end ? e : end - 1;
            v[u] = base[dense ? e : image_offset(e, w, c, sh, sw, sc)];
        }
        GM_UNROLL
        for (int u = 0; u < GM_FUSED_RANGE_UNROLL; ++u) {
            u64 k;
            if (e0 + (i64)u * nthreads < end && range_key(v[u], &k)) {
                *kmin = k < *kmin ? k : *kmin;
                *kmax = k > *kmax ? k : *kmax;
            }
        }
    }
}

// One thread's share of a convert ticket with C channels known at compile time: pixels
// [p0, p1) of image img (0 <= p < h*w) through to_u8 under `code`, written to out as
// convert_pixel writes them (uint8 NHWC contiguous).
template <typename T, int C>
GM_HD void fused_convert_thread_c(const T* x, u8* out, i64 img, i64 p0, i64 p1, i64 h, i64 w, i64 sn, i64 sh,
                                  i64 sw, i64 sc, int code, int tid, int nthreads) {
    const T* base = x + img * sn;
    u8* obase = out + img * h * w * C;
    const i64 step = (i64)nthreads * GM_FUSED_UNROLL;
    for (i64 q0 = p0 + tid; q0 < p1; q0 += step) {
        T v[GM_FUSED_UNROLL][C];
        GM_UNROLL
        for (int u = 0; u < GM_FUSED_UNROLL; ++u) {  // every load first
            i64 q = q0 + (i64)u * nthreads, yy, xx;
            q = q < p1 ? q : p1 - 1;
            divmod(q, w, &yy, &xx);
            const T* src = base + yy * sh + xx * sw;
            GM_UNROLL
            for (int ch = 0; ch < C; ++ch) v[u][ch] = src[ch * sc];
        }
        GM_UNROLL
        for (int u = 0; u < GM_FUSED_UNROLL; ++u) {
            const i64 q = q0 + (i64)u * nthreads;
            if (q < p1) {
                u8* dst = obase + q * C;
                GM_UNROLL
                for (int ch = 0; ch < C; ++ch) dst[ch] = to_u8(v[u][ch], code);
            }
        }
    }
}

// Any C: C in {1, 3, 4} (docs/SPEC.md 1) batched as above, any other C pixel by pixel through
// convert_pixel. codes[img] holds `code` (convert_pixel reads it there).
template <typename T>
GM_HD void fused_convert_thread(const T* x, u8* out, i64 img, i64 p0, i64 p1, i64 h, i64 w, i64 c, i64 sn, i64 sh,
                                i64 sw, i64 sc, const u8* codes, int code, int tid, int nthreads) {
    if (c == 1) return fused_convert_thread_c<T, 1>(x, out, img, p0, p1, h, w, sn, sh, sw, sc, code, tid, nthreads);
    if (c == 3) return fused_convert_thread_c<T, 3>(x, out, img, p0, p1, h, w, sn, sh, sw, sc, code, tid, nthreads);
    if (c == 4) return fused_convert_thread_c<T, 4>(x, out, img, p0, p1, h, w, sn, sh, sw, sc, code, tid, nthreads);
    for (i64 p = p0 + tid; p < p1; p += nthreads) convert_pixel(x, out, img * h * w + p, h, w, c, sn, sh, sw, sc, codes);
}

}  // namespace gm
