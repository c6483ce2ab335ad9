// gpu_media CUDA kernels: shared definitions (types, bit casts, exactly rounded float ops).
//
// Every .cuh file under gpu_media/kernels/ compiles three ways:
//   * NVRTC (CuPy's RawModule, at run time): no system headers at all;
//   * nvcc (the tests compile each .cu for sm_80 and sm_90);
//   * a host C++ compiler (tests/kernels_host_shim.cpp, g++ -ffp-contract=off), where the
//     per-element functions are checked bit for bit against cpu_fallback.
// So nothing here includes a header, and every function is GM_HD (host and device).
#pragma once

#ifdef __CUDACC__
#define GM_HD __host__ __device__ __forceinline__
#else
#define GM_HD inline
#endif

namespace gm {

// Fixed-width integers without <stdint.h> (not available under NVRTC). LP64 / CUDA sizes.
typedef signed char i8;
typedef unsigned char u8;
typedef short i16;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

// A float16 value, given as its IEEE binary16 bits (no cuda_fp16.h needed).
struct half_t {
    u16 bits;
};

// ---- bit casts -----------------------------------------------------------------------
GM_HD u32 f32_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    union { float f; u32 u; } v;
    v.f = f;
    return v.u;
#endif
}

GM_HD float f32_from_bits(u32 u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    union { float f; u32 u; } v;
    v.u = u;
    return v.f;
#endif
}

GM_HD u64 f64_bits(double d) {
#ifdef __CUDA_ARCH__
    return (u64)__double_as_longlong(d);
#else
    union { double d; u64 u; } v;
    v.d = d;
    return v.u;
#endif
}

GM_HD double f64_from_bits(u64 u) {
#ifdef __CUDA_ARCH__
    return __longlong_as_double((long long)u);
#else
    union { double d; u64 u; } v;
    v.u = u;
    return v.d;
#endif
}

// ---- one IEEE operation, rounded to nearest even, never contracted into an FMA --------
// (Device: the _rn intrinsics are never fused, whatever --fmad says. Host: the shim is
// built with -ffp-contract=off, and x86-64 computes float/double in SSE registers.)
GM_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

GM_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

GM_HD double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}

GM_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}

// ---- float16 <-> float32, exact and round-to-nearest-even -----------------------------
// binary16 -> binary32 is exact (every half is a float). NaN payloads are kept.
GM_HD float half_to_float(u16 h) {
    const u32 sign = (u32)(h & 0x8000u) << 16;
    const u32 exp = (h >> 10) & 0x1fu;
    const u32 mant = h & 0x3ffu;
    if (exp == 0x1fu) return f32_from_bits(sign | 0x7f800000u | (mant << 13));  // inf, NaN
    if (exp != 0) return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
    // zero or subnormal: mant * 2^-24, exact in float (mant < 2^10, result >= 2^-24)
    const float mag = mul_rn((float)mant, 5.9604644775390625e-8f);
    return f32_from_bits(sign | f32_bits(mag));
}

// binary32 -> binary16, rounded to nearest, ties to even (what NumPy and F16C do).
GM_HD u16 float_to_half(float f) {
    u32 x = f32_bits(f);
    const u16 sign = (u16)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) return (u16)(sign | (x > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN, inf
    if (x >= 0x477ff000u) return (u16)(sign | 0x7c00u);  // >= 65520 rounds to inf
    if (x >= 0x38800000u) {  // a normal half (>= 2^-14): drop 13 mantissa bits, RNE
        x += 0x0fffu + ((x >> 13) & 1u);  // a carry into the exponent is the right answer
        return (u16)(sign | ((x - 0x38000000u) >> 13));
    }
    if (x < 0x33000000u) return sign;  // below 2^-25: rounds to (signed) zero
    // subnormal half: q = rne(|f| / 2^-24), |f| = m * 2^(e-150), shift = 126 - e in [14, 24]
    const u32 e = x >> 23;
    const u32 m = (x & 0x7fffffu) | 0x800000u;
    const u32 shift = 126u - e;
    u32 q = m >> shift;
    const u32 rem = m & ((1u << shift) - 1u);
    const u32 halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (q & 1u))) q += 1u;  // q == 0x400 is 2^-14: right
    return (u16)(sign | q);
}

// The float16 result of one float32 operation on float16 operands: the float32 result
// (exact or correctly rounded) rounded once more to float16. For + and * this double
// rounding equals a direct binary16 rounding (24 >= 2*11 + 2), and it is what NumPy does.
GM_HD float round_to_half(float f) { return half_to_float(float_to_half(f)); }

// float32 -> float64, exact, by bits. CuPy compiles every kernel with -ftz=true (it
// appends the option after ours), which flushes float32 subnormals to zero in float32
// arithmetic *and* in the conversion to double (cvt.ftz.f64.f32); NumPy does not. Every
// float32 that must keep its exact value (range keys, mask classes) goes through here.
// (The docs/SPEC.md 2 float32 arithmetic itself gives the same uint8 with or without flushing:
// a subnormal contributes less than one unit to any result before truncation.)
GM_HD double f32_to_f64(float f) {
    const u32 b = f32_bits(f);
    const u64 sign = (u64)(b >> 31) << 63;
    const u32 exp = (b >> 23) & 0xffu;
    const u64 mant = b & 0x7fffffu;
    if (exp == 0xffu) return f64_from_bits(sign | 0x7ff0000000000000ull | (mant << 29));  // inf, NaN
    if (exp != 0) return f64_from_bits(sign | ((u64)(exp + 896u) << 52) | (mant << 29));  // 1023 - 127
    // zero or subnormal: mant * 2^-149, exact in double (doubles are never flushed)
    return f64_from_bits(sign | f64_bits(mul_rn((double)mant, 0x1p-149)));
}

// ---- finiteness ---------------------------------------------------------------------
GM_HD bool is_finite(half_t h) { return (h.bits & 0x7c00u) != 0x7c00u; }
GM_HD bool is_finite(float f) { return (f32_bits(f) & 0x7f800000u) != 0x7f800000u; }
GM_HD bool is_finite(double d) { return (f64_bits(d) & 0x7ff0000000000000ull) != 0x7ff0000000000000ull; }

// ---- order-preserving 64-bit keys, for min/max by unsigned compares and atomics -------
// Floats (of every width, widened exactly to double): key(a) < key(b) iff a < b, except
// that -0.0 orders below +0.0 (harmless: both decode back to a zero that compares equal
// to 0). Signed integers: flip the sign bit. Unsigned integers: the value itself.
GM_HD u64 key_of_double(double d) {
    const u64 b = f64_bits(d);
    return (b >> 63) ? ~b : (b | 0x8000000000000000ull);
}

GM_HD double double_of_key(u64 k) {
    return f64_from_bits((k >> 63) ? (k & 0x7fffffffffffffffull) : ~k);
}

GM_HD u64 key_of_i64(i64 v) { return (u64)v ^ 0x8000000000000000ull; }
GM_HD i64 i64_of_key(u64 k) { return (i64)(k ^ 0x8000000000000000ull); }

// Initial (identity) keys of a min and a max reduction, per kind of key.
// Floats start at +inf / -inf, so an image without a finite value decodes to
// lo = +inf, hi = -inf, exactly as cpu_fallback's np.where(finite, x, +-inf).min/max.
#define GM_KEY_FLOAT_MIN_INIT 0xfff0000000000000ull  // key_of_double(+inf)
#define GM_KEY_FLOAT_MAX_INIT 0x000fffffffffffffull  // key_of_double(-inf)
#define GM_KEY_INT_MIN_INIT 0xffffffffffffffffull
#define GM_KEY_INT_MAX_INIT 0x0000000000000000ull

// range_key(x, &key): the key of x; false when x is non-finite (ignored by docs/SPEC.md 2 ranges).
GM_HD bool range_key(half_t x, u64* key) { *key = key_of_double(f32_to_f64(half_to_float(x.bits))); return is_finite(x); }
GM_HD bool range_key(float x, u64* key) { *key = key_of_double(f32_to_f64(x)); return is_finite(x); }
GM_HD bool range_key(double x, u64* key) { *key = key_of_double(x); return is_finite(x); }
GM_HD bool range_key(i8 x, u64* key) { *key = key_of_i64(x); return true; }
GM_HD bool range_key(i16 x, u64* key) { *key = key_of_i64(x); return true; }
GM_HD bool range_key(i32 x, u64* key) { *key = key_of_i64(x); return true; }
GM_HD bool range_key(i64 x, u64* key) { *key = key_of_i64(x); return true; }
GM_HD bool range_key(u8 x, u64* key) { *key = x; return true; }
GM_HD bool range_key(u16 x, u64* key) { *key = x; return true; }
GM_HD bool range_key(u32 x, u64* key) { *key = x; return true; }
GM_HD bool range_key(u64 x, u64* key) { *key = x; return true; }

// ---- indexing (64-bit throughout) -----------------------------------------------------
// q = a / b, r = a % b for 0 <= a, 0 < b; 32-bit division when both fit (the common case:
// 64-bit division is emulated on the GPU).
GM_HD void divmod(i64 a, i64 b, i64* q, i64* r) {
    if (((u64)a | (u64)b) <= 0xffffffffull) {
        const u32 qq = (u32)a / (u32)b;
        *q = qq;
        *r = (i64)((u32)a - qq * (u32)b);
    } else {
        *q = a / b;
        *r = a - *q * b;
    }
}

// Element offset (in elements) of the e-th element in (H, W, C) order, 0 <= e < h*w*c, of
// one image whose H, W, C axes have element strides sh, sw, sc (any sign).
GM_HD i64 image_offset(i64 e, i64 w, i64 c, i64 sh, i64 sw, i64 sc) {
    i64 r, ch, yy, xx;
    divmod(e, c, &r, &ch);
    divmod(r, w, &yy, &xx);
    return yy * sh + xx * sw + ch * sc;
}

// Tile t of a batch cut into tiles of `tile` elements that never straddle two images
// (`per` elements per image): its image and its element range [start, end).
GM_HD void tile_bounds(i64 t, i64 per, i64 tile, i64* img, i64* start, i64* end) {
    const i64 tiles_per_image = (per + tile - 1) / tile;
    *img = t / tiles_per_image;
    *start = (t - *img * tiles_per_image) * tile;
    *end = *start + tile < per ? *start + tile : per;
}

GM_HD i64 tile_count(i64 n, i64 per, i64 tile) { return n * ((per + tile - 1) / tile); }

}  // namespace gm
