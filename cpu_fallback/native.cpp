// _gpu_media_native: the CPU backend's compiled loops (optional; cpu_fallback/native.py loads it).
//
// Built by setup.py as the top-level module `_gpu_media_native` when a C++ compiler is
// there (`pip install .`); without it the CPU backend runs its NumPy code, with the same
// results. The per-element math is the CUDA kernels' own (gpu_media/cuda/src/*.cuh, whose
// functions are GM_HD: host and device), so the GPU, this module and the NumPy code follow
// one docs/SPEC.md rule, and tests/test_native.py checks this module against the NumPy code
// bit for bit.
//
//   normalize_chunk(src, dst, nchw, prior_lo, prior_hi, force, guess=0) -> (lo, hi, nonfinite, codes)
//       docs/SPEC.md 2 on one chunk of a batch (k images, or a band of rows of one), in
//       one call: each image's range over its finite values (lo, hi: lists of k floats;
//       nonfinite: any NaN or infinity), its rule (codes: k bytes, from that range joined
//       with (prior_lo, prior_hi), the range of the image's earlier bands; +inf, -inf for
//       none) and the conversion to uint8 NHWC. One pass reads each row from memory, folds
//       its range and converts it (from L1) by a guessed rule (see chunk() below); a wrong
//       guess converts the image again. `force` >= 0 converts every image by that rule and
//       takes no range (lo and hi are then empty).
//   png_filter_average(image) -> (rows, zeros)
//       PNG's Average filter (type 3) on every row, with the type bytes; and how many of
//       the filtered bytes are zero (cpu_fallback.encode.deflate_strategy's count).
//
// Both release the GIL while they work, so the backend's threads run them on every core.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define GM_SSE2 1
#endif
// AVX2 twins of the SSE2 loops, chosen at run time where the CPU has AVX2 (GCC and Clang on
// x86-64: the target attribute compiles one function for AVX2 in an SSE2 build).
#if defined(GM_SSE2) && defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define GM_AVX2 1
#define GM_AVX2_FN __attribute__((target("avx2")))
#endif

#include "normalize.cuh"
#include "png.cuh"

using gm::half_t;
using gm::i16;
using gm::i32;
using gm::i64;
using gm::i8;
using gm::u16;
using gm::u32;
using gm::u64;
using gm::u8;

namespace {

// ---- one strided 4-D operand -------------------------------------------------------
struct Arr {
    char* p;
    Py_ssize_t shape[4];
    Py_ssize_t st[4];  // strides in bytes
};

// The element kinds, from a buffer's format and item size.
enum Kind { K_NONE, K_F16, K_F32, K_F64, K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32, K_U64 };

Kind kind_of(const Py_buffer& b) {
    const char* f = b.format ? b.format : "B";
    if (*f == '@' || *f == '=') ++f;
#if PY_LITTLE_ENDIAN
    if (*f == '<') ++f;
#else
    if (*f == '>' || *f == '!') ++f;
#endif
    if (f[0] == 0 || f[1] != 0) return K_NONE;
    const Py_ssize_t s = b.itemsize;
    switch (f[0]) {
        case 'e': return s == 2 ? K_F16 : K_NONE;
        case 'f': return s == 4 ? K_F32 : K_NONE;
        case 'd': return s == 8 ? K_F64 : K_NONE;
        case 'b': case 'h': case 'i': case 'l': case 'q':
            return s == 1 ? K_I8 : s == 2 ? K_I16 : s == 4 ? K_I32 : s == 8 ? K_I64 : K_NONE;
        case 'B': case '?': case 'H': case 'I': case 'L': case 'Q':
            return s == 1 ? K_U8 : s == 2 ? K_U16 : s == 4 ? K_U32 : s == 8 ? K_U64 : K_NONE;
        default: return K_NONE;
    }
}

// A 4-D buffer whose strides are whole elements and whose data is aligned.
bool arr_of(const Py_buffer& b, Arr* a) {
    if (b.ndim != 4) return false;
    a->p = (char*)b.buf;
    for (int d = 0; d < 4; ++d) {
        a->shape[d] = b.shape[d];
        a->st[d] = b.strides ? b.strides[d] : 0;
        if (a->st[d] % b.itemsize) return false;
    }
    if (!b.strides) {  // C-contiguous
        Py_ssize_t s = b.itemsize;
        for (int d = 3; d >= 0; --d) {
            a->st[d] = s;
            s *= b.shape[d];
        }
    }
    return ((size_t)a->p % (size_t)b.itemsize) == 0;
}

// ---- ranges ------------------------------------------------------------------------
// The value a range compares: the element itself, float for float16.
template <typename T> struct Val { typedef T type; static T get(T x) { return x; } };
template <> struct Val<half_t> { typedef float type; static float get(half_t x) { return gm::half_to_float(x.bits); } };

template <typename T> constexpr bool is_float() { return false; }
template <> constexpr bool is_float<half_t>() { return true; }
template <> constexpr bool is_float<float>() { return true; }
template <> constexpr bool is_float<double>() { return true; }

#ifdef GM_SSE2
// SIMD min/max of a contiguous float32 / float64 run, into per-lane accumulators kept
// across runs (lo[8], hi[8]: reduced to one value once per image, so short rows cost no
// horizontal reduction). MINPS(v, l) is v < l ? v : l, so a NaN never enters (as in the
// scalar loop); CMPUNORD(v, v - v) flags NaN and infinities. Compilers do not vectorize
// the scalar loop themselves (IEEE min is not associative). Each returns how many leading
// elements it took (the caller's scalar loop takes the rest).
template <typename T, typename V> Py_ssize_t simd_lanes(const T*, Py_ssize_t, V*, V*, bool*) { return 0; }

#ifdef GM_AVX2
// Where the CPU has AVX2, unless GPU_MEDIA_NATIVE_AVX2=0 (tests run the SSE2 loops that way).
bool has_avx2() {
    static const bool yes = __builtin_cpu_supports("avx2") && !(getenv("GPU_MEDIA_NATIVE_AVX2") &&
                                                                 strcmp(getenv("GPU_MEDIA_NATIVE_AVX2"), "0") == 0);
    return yes;
}

GM_AVX2_FN Py_ssize_t avx2_lanes(const float* s, Py_ssize_t n, float* lo, float* hi, bool* bad) {
    __m256 l[4], h[4], b[4];
    l[0] = _mm256_loadu_ps(lo);
    h[0] = _mm256_loadu_ps(hi);
    for (int k = 0; k < 4; ++k) {
        if (k) {
            l[k] = _mm256_set1_ps(INFINITY);
            h[k] = _mm256_set1_ps(-INFINITY);
        }
        b[k] = _mm256_setzero_ps();
    }
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; ++k) {  // four independent chains (VMINPS' latency)
            const __m256 v = _mm256_loadu_ps(s + i + 8 * k);
            l[k] = _mm256_min_ps(v, l[k]);
            h[k] = _mm256_max_ps(v, h[k]);
            b[k] = _mm256_or_ps(b[k], _mm256_cmp_ps(v, _mm256_sub_ps(v, v), _CMP_UNORD_Q));
        }
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(s + i);
        l[0] = _mm256_min_ps(v, l[0]);
        h[0] = _mm256_max_ps(v, h[0]);
        b[0] = _mm256_or_ps(b[0], _mm256_cmp_ps(v, _mm256_sub_ps(v, v), _CMP_UNORD_Q));
    }
    _mm256_storeu_ps(lo, _mm256_min_ps(_mm256_min_ps(l[0], l[1]), _mm256_min_ps(l[2], l[3])));
    _mm256_storeu_ps(hi, _mm256_max_ps(_mm256_max_ps(h[0], h[1]), _mm256_max_ps(h[2], h[3])));
    if (_mm256_movemask_ps(_mm256_or_ps(_mm256_or_ps(b[0], b[1]), _mm256_or_ps(b[2], b[3])))) *bad = true;
    return i;
}
#endif

Py_ssize_t simd_lanes(const float* s, Py_ssize_t n, float* lo, float* hi, bool* bad) {
#ifdef GM_AVX2
    if (has_avx2()) return avx2_lanes(s, n, lo, hi, bad);
#endif
    __m128 l[4], h[4], b[4];
    for (int k = 0; k < 4; ++k) {
        l[k] = _mm_loadu_ps(lo + 4 * (k & 1));
        h[k] = _mm_loadu_ps(hi + 4 * (k & 1));
        b[k] = _mm_setzero_ps();
    }
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int k = 0; k < 4; ++k) {
            const __m128 v = _mm_loadu_ps(s + i + 4 * k);
            l[k] = _mm_min_ps(v, l[k]);
            h[k] = _mm_max_ps(v, h[k]);
            b[k] = _mm_or_ps(b[k], _mm_cmpunord_ps(v, _mm_sub_ps(v, v)));
        }
    }
    _mm_storeu_ps(lo, _mm_min_ps(l[0], l[2]));
    _mm_storeu_ps(lo + 4, _mm_min_ps(l[1], l[3]));
    _mm_storeu_ps(hi, _mm_max_ps(h[0], h[2]));
    _mm_storeu_ps(hi + 4, _mm_max_ps(h[1], h[3]));
    if (_mm_movemask_ps(_mm_or_ps(_mm_or_ps(b[0], b[1]), _mm_or_ps(b[2], b[3])))) *bad = true;
    return i;
}

Py_ssize_t simd_lanes(const double* s, Py_ssize_t n, double* lo, double* hi, bool* bad) {
    __m128d l[4], h[4], b[4];
    for (int k = 0; k < 4; ++k) {
        l[k] = _mm_loadu_pd(lo + 2 * k);
        h[k] = _mm_loadu_pd(hi + 2 * k);
        b[k] = _mm_setzero_pd();
    }
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 4; ++k) {
            const __m128d v = _mm_loadu_pd(s + i + 2 * k);
            l[k] = _mm_min_pd(v, l[k]);
            h[k] = _mm_max_pd(v, h[k]);
            b[k] = _mm_or_pd(b[k], _mm_cmpunord_pd(v, _mm_sub_pd(v, v)));
        }
    }
    for (int k = 0; k < 4; ++k) {
        _mm_storeu_pd(lo + 2 * k, l[k]);
        _mm_storeu_pd(hi + 2 * k, h[k]);
    }
    if (_mm_movemask_pd(_mm_or_pd(_mm_or_pd(b[0], b[1]), _mm_or_pd(b[2], b[3])))) *bad = true;
    return i;
}
#endif

// Min/max of a run of n elements `step` elements apart. Floats: NaN never enters (its
// compares are false), `bad` is set by any NaN or infinity (x - x is then NaN); a range
// that took an infinity is taken again over the finite values (finite_range).
template <typename T>
struct Range {
    typedef typename Val<T>::type V;
    V lo, hi;
    V lane_lo[8], lane_hi[8];  // the SIMD loops' accumulators (floats; folded into lo, hi by fold())
    bool bad;
    bool any;  // integers: seen a value
    void fold() {
        if (!is_float<T>()) return;
        for (int k = 0; k < 8; ++k) {
            lo = lane_lo[k] < lo ? lane_lo[k] : lo;
            hi = lane_hi[k] > hi ? lane_hi[k] : hi;
        }
    }
    void run(const T* s, Py_ssize_t n, Py_ssize_t step) {
#ifdef GM_SSE2
        if (step == 1) {
            const Py_ssize_t done = simd_lanes(s, n, lane_lo, lane_hi, &bad);
            s += done;
            n -= done;
        }
#endif
        V l = lo, h = hi;
        if (is_float<T>()) {
            bool b = false;
            for (Py_ssize_t i = 0; i < n; ++i) {
                const V v = Val<T>::get(s[i * step]);
                l = v < l ? v : l;
                h = v > h ? v : h;
                b |= !(v - v == v - v);
            }
            bad = bad || b;
        } else if (n > 0) {
            if (!any) l = h = Val<T>::get(s[0]);
            any = true;
            for (Py_ssize_t i = 0; i < n; ++i) {
                const V v = Val<T>::get(s[i * step]);
                l = v < l ? v : l;
                h = v > h ? v : h;
            }
        }
        lo = l;
        hi = h;
    }
    void finite_run(const T* s, Py_ssize_t n, Py_ssize_t step) {
        for (Py_ssize_t i = 0; i < n; ++i) {
            const V v = Val<T>::get(s[i * step]);
            if (!(v - v == v - v)) continue;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    }
};

// Calls f(src run, n, step, row y, channel ch) over image i's runs of elements, in
// memory-friendly order: NHWC (R,W,C): one run per row (W*C elements) when the pixels of
// a row are evenly spaced, else one per pixel; NCHW (C,R,W): one run per channel row.
template <typename T, typename F>
void each_run(const Arr& a, bool nchw, Py_ssize_t i, F f) {
    const Py_ssize_t it = (Py_ssize_t)sizeof(T);
    const char* base = a.p + i * a.st[0];
    if (nchw) {
        const Py_ssize_t C = a.shape[1], R = a.shape[2], W = a.shape[3];
        for (Py_ssize_t y = 0; y < R; ++y)
            for (Py_ssize_t ch = 0; ch < C; ++ch)
                f((const T*)(base + ch * a.st[1] + y * a.st[2]), W, a.st[3] / it, y, ch);
    } else {
        const Py_ssize_t R = a.shape[1], W = a.shape[2], C = a.shape[3];
        const bool flat = a.st[2] == C * a.st[3];
        for (Py_ssize_t y = 0; y < R; ++y) {
            const char* row = base + y * a.st[1];
            if (flat) {
                f((const T*)row, W * C, a.st[3] / it, y, (Py_ssize_t)-1);
            } else {
                for (Py_ssize_t x = 0; x < W; ++x) f((const T*)(row + x * a.st[2]), C, a.st[3] / it, y, -2 - x);
            }
        }
    }
}

template <typename T>
void range_init(Range<T>* r) {
    typedef typename Val<T>::type V;
    r->lo = is_float<T>() ? (V)INFINITY : (V)0;
    r->hi = is_float<T>() ? (V)-INFINITY : (V)0;
    for (int k = 0; k < 8; ++k) {
        r->lane_lo[k] = r->lo;
        r->lane_hi[k] = r->hi;
    }
    r->bad = false;
    r->any = false;
}

// Image i's range over its finite values from the pass's Range (NaN never entered; a range
// that took an infinity is taken again over the finite values, a second pass: rare).
template <typename T>
void range_finish(Range<T>* r, const Arr& a, bool nchw, Py_ssize_t i, double* lo, double* hi, bool* nonfinite) {
    typedef typename Val<T>::type V;
    r->fold();
    if (is_float<T>() && r->bad && (std::isinf((double)r->lo) || std::isinf((double)r->hi))) {
        r->lo = (V)INFINITY;
        r->hi = (V)-INFINITY;
        each_run<T>(a, nchw, i,
                    [&](const T* s, Py_ssize_t n, Py_ssize_t step, Py_ssize_t, Py_ssize_t) { r->finite_run(s, n, step); });
    }
    if (!is_float<T>() && !r->any) {  // no elements: the range of no finite values
        *lo = INFINITY;
        *hi = -INFINITY;
    } else {
        *lo = (double)r->lo;
        *hi = (double)r->hi;
    }
    *nonfinite = r->bad;
}

// ---- conversion --------------------------------------------------------------------
// A run of n elements `step` apart -> n bytes `dstep` apart, by rule CODE (gm::to_u8).
#ifdef GM_SSE2
// docs/SPEC.md 2's float32 rule on 4 values, as gm::to_u8: y = (x + add) * scale in float32
// (ADDPS/MULPS round like the scalar code), MAXPS(y, 0) is y > 0 ? y : 0 (NaN -> 0),
// MINPS(y, 255) is y < 255 ? y : 255, CVTTPS2DQ truncates: int32 in [0, 255].
template <int CODE>
inline __m128i rule4(__m128 y) {
    if (CODE == gm::CODE_SIGNED_UNIT) y = _mm_mul_ps(_mm_add_ps(y, _mm_set1_ps(1.0f)), _mm_set1_ps(127.5f));
    else if (CODE == gm::CODE_UNIT) y = _mm_mul_ps(y, _mm_set1_ps(255.0f));
    y = _mm_min_ps(_mm_max_ps(y, _mm_setzero_ps()), _mm_set1_ps(255.0f));
    return _mm_cvttps_epi32(y);
}

template <int CODE>
inline __m128i rule2d(__m128d y) {  // float64: two values -> int32 in the low two lanes
    if (CODE == gm::CODE_SIGNED_UNIT) y = _mm_mul_pd(_mm_add_pd(y, _mm_set1_pd(1.0)), _mm_set1_pd(127.5));
    else if (CODE == gm::CODE_UNIT) y = _mm_mul_pd(y, _mm_set1_pd(255.0));
    y = _mm_min_pd(_mm_max_pd(y, _mm_setzero_pd()), _mm_set1_pd(255.0));
    return _mm_cvttpd_epi32(y);
}

// 16 int32 in [0, 255] -> 16 bytes (saturating packs that saturate nothing).
inline __m128i pack16(__m128i a, __m128i b, __m128i c, __m128i d) {
    return _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d));
}

template <int CODE>
Py_ssize_t simd_convert(const float* s, Py_ssize_t n, u8* d) {
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i*)(d + i),
                         pack16(rule4<CODE>(_mm_loadu_ps(s + i)), rule4<CODE>(_mm_loadu_ps(s + i + 4)),
                                rule4<CODE>(_mm_loadu_ps(s + i + 8)), rule4<CODE>(_mm_loadu_ps(s + i + 12))));
    return i;
}

template <int CODE>
Py_ssize_t simd_convert(const double* s, Py_ssize_t n, u8* d) {
    Py_ssize_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m128i q[4];
        for (int k = 0; k < 4; ++k)
            q[k] = _mm_unpacklo_epi64(rule2d<CODE>(_mm_loadu_pd(s + i + 4 * k)), rule2d<CODE>(_mm_loadu_pd(s + i + 4 * k + 2)));
        _mm_storeu_si128((__m128i*)(d + i), pack16(q[0], q[1], q[2], q[3]));
    }
    return i;
}

template <int CODE, typename T>
Py_ssize_t simd_convert(const T*, Py_ssize_t, u8*) { return 0; }

// NCHW float32 with 3 channels: a row of W pixels from three planes -> W RGB triples. Four
// pixels at a time: r | g << 8 | b << 16 in 32-bit lanes, squeezed to 12 bytes by 64-bit
// shifts and stored as two 8-byte writes (the 2 bytes past each lie inside the row: the
// loop stops a pixel short of its end). Returns the pixels done.
template <int CODE>
Py_ssize_t simd_rgb_row(const float* p0, const float* p1, const float* p2, Py_ssize_t w, u8* d) {
    const __m128i lo32 = _mm_set_epi32(0, -1, 0, -1);
    Py_ssize_t x = 0;
    for (; x + 5 <= w; x += 4) {
        const __m128i r = rule4<CODE>(_mm_loadu_ps(p0 + x));
        const __m128i g = rule4<CODE>(_mm_loadu_ps(p1 + x));
        const __m128i b = rule4<CODE>(_mm_loadu_ps(p2 + x));
        const __m128i px = _mm_or_si128(r, _mm_or_si128(_mm_slli_epi32(g, 8), _mm_slli_epi32(b, 16)));
        const __m128i two = _mm_or_si128(_mm_and_si128(px, lo32), _mm_slli_epi64(_mm_srli_epi64(px, 32), 24));
        _mm_storel_epi64((__m128i*)(d + 3 * x), two);
        _mm_storel_epi64((__m128i*)(d + 3 * x + 6), _mm_srli_si128(two, 8));
    }
    return x;
}
#endif

#ifdef GM_AVX2
// The AVX2 twins of rule4, pack16, simd_convert and simd_rgb_row (VMINPS/VMAXPS/VCVTTPS2DQ have the SSE2
// instructions' semantics lane by lane: the same results).
template <int CODE>
GM_AVX2_FN inline __m256i avx2_rule8(__m256 y) {
    if (CODE == gm::CODE_SIGNED_UNIT) y = _mm256_mul_ps(_mm256_add_ps(y, _mm256_set1_ps(1.0f)), _mm256_set1_ps(127.5f));
    else if (CODE == gm::CODE_UNIT) y = _mm256_mul_ps(y, _mm256_set1_ps(255.0f));
    y = _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(y);
}

// 32 int32 in [0, 255] (four vectors) -> 32 bytes in order (the packs work per 128-bit lane:
// a final cross-lane permute puts the bytes back in order).
GM_AVX2_FN inline __m256i avx2_pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    return _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

template <int CODE>
GM_AVX2_FN Py_ssize_t avx2_convert(const float* s, Py_ssize_t n, u8* d) {
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm256_storeu_si256((__m256i*)(d + i),
                            avx2_pack32(avx2_rule8<CODE>(_mm256_loadu_ps(s + i)), avx2_rule8<CODE>(_mm256_loadu_ps(s + i + 8)),
                                        avx2_rule8<CODE>(_mm256_loadu_ps(s + i + 16)),
                                        avx2_rule8<CODE>(_mm256_loadu_ps(s + i + 24))));
    return i;
}

// simd_rgb_row, 8 pixels at a time: r | g << 8 | b << 16 per 32-bit lane, a byte shuffle
// packs each 128-bit lane's four pixels into its low 12 bytes, stored as two 16-byte writes
// (4 bytes past each lie inside the row: the loop stops two pixels short of its end).
template <int CODE>
GM_AVX2_FN Py_ssize_t avx2_rgb_row(const float* p0, const float* p1, const float* p2, Py_ssize_t w, u8* d) {
    const __m256i sq = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                        0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
    Py_ssize_t x = 0;
    for (; x + 10 <= w; x += 8) {
        const __m256i r = avx2_rule8<CODE>(_mm256_loadu_ps(p0 + x));
        const __m256i g = avx2_rule8<CODE>(_mm256_loadu_ps(p1 + x));
        const __m256i b = avx2_rule8<CODE>(_mm256_loadu_ps(p2 + x));
        const __m256i px = _mm256_or_si256(r, _mm256_or_si256(_mm256_slli_epi32(g, 8), _mm256_slli_epi32(b, 16)));
        const __m256i q = _mm256_shuffle_epi8(px, sq);
        _mm_storeu_si128((__m128i*)(d + 3 * x), _mm256_castsi256_si128(q));
        _mm_storeu_si128((__m128i*)(d + 3 * x + 12), _mm256_extracti128_si256(q, 1));
    }
    return x;
}
#endif

template <typename T, int CODE>
void convert_run(const T* s, Py_ssize_t n, Py_ssize_t step, u8* d, Py_ssize_t dstep) {
#ifdef GM_SSE2
    if (step == 1 && dstep == 1) {
#ifdef GM_AVX2
        if (std::is_same<T, float>::value && has_avx2()) {
            const Py_ssize_t i0 = avx2_convert<CODE>((const float*)s, n, d);
            for (Py_ssize_t i = i0; i < n; ++i) d[i] = gm::to_u8(s[i], CODE);
            return;
        }
#endif
        const Py_ssize_t i0 = simd_convert<CODE>(s, n, d);
        for (Py_ssize_t i = i0; i < n; ++i) d[i] = gm::to_u8(s[i], CODE);
        return;
    }
#endif
    if (step == 1 && dstep == 1) {
        for (Py_ssize_t i = 0; i < n; ++i) d[i] = gm::to_u8(s[i], CODE);
    } else {
        for (Py_ssize_t i = 0; i < n; ++i) d[i * dstep] = gm::to_u8(s[i * step], CODE);
    }
}

// Scratch rows for the NCHW interleave: one channel's row converted contiguously, then
// spread into the NHWC row (a row wider than this goes straight, strided).
constexpr Py_ssize_t SCRATCH = 8192;

// Image i by rule CODE into o; with `r`, each row's range is folded into *r just before
// the row is converted (one read of the image from memory, the second from L1).
template <typename T, int CODE>
void convert_image(const Arr& a, const Arr& o, bool nchw, Py_ssize_t i, Range<T>* r) {
    u8* out = (u8*)(o.p + i * o.st[0]);
    const Py_ssize_t W = o.shape[2], C = o.shape[3];
    const bool orow = o.st[3] == 1 && o.st[2] == C;  // each output row is W*C contiguous bytes
    if (nchw) {
        const Py_ssize_t it = (Py_ssize_t)sizeof(T);
        const char* base = a.p + i * a.st[0];
        const Py_ssize_t step = a.st[3] / it;
        u8 tmp[4][SCRATCH];
        for (Py_ssize_t y = 0; y < o.shape[1]; ++y) {
            u8* drow = out + y * o.st[1];
            if (r)
                for (Py_ssize_t ch = 0; ch < C; ++ch) r->run((const T*)(base + ch * a.st[1] + y * a.st[2]), W, step);
#ifdef GM_SSE2
            if (std::is_same<T, float>::value && orow && C == 3 && step == 1) {
                const float* p0 = (const float*)(base + y * a.st[2]);
                const float* p1 = (const float*)(base + a.st[1] + y * a.st[2]);
                const float* p2 = (const float*)(base + 2 * a.st[1] + y * a.st[2]);
#ifdef GM_AVX2
                const Py_ssize_t x0 = has_avx2() ? avx2_rgb_row<CODE>(p0, p1, p2, W, drow)
                                                 : simd_rgb_row<CODE>(p0, p1, p2, W, drow);
#else
                const Py_ssize_t x0 = simd_rgb_row<CODE>(p0, p1, p2, W, drow);
#endif
                for (Py_ssize_t x = x0; x < W; ++x) {
                    drow[3 * x] = gm::to_u8(p0[x], CODE);
                    drow[3 * x + 1] = gm::to_u8(p1[x], CODE);
                    drow[3 * x + 2] = gm::to_u8(p2[x], CODE);
                }
                continue;
            }
#endif
            if (orow && C <= 4 && W <= SCRATCH) {
                for (Py_ssize_t ch = 0; ch < C; ++ch)
                    convert_run<T, CODE>((const T*)(base + ch * a.st[1] + y * a.st[2]), W, step, tmp[ch], 1);
                if (C == 3) {
                    const u8 *t0 = tmp[0], *t1 = tmp[1], *t2 = tmp[2];
                    for (Py_ssize_t x = 0; x < W; ++x) {
                        drow[3 * x] = t0[x];
                        drow[3 * x + 1] = t1[x];
                        drow[3 * x + 2] = t2[x];
                    }
                } else {
                    for (Py_ssize_t ch = 0; ch < C; ++ch)
                        for (Py_ssize_t x = 0; x < W; ++x) drow[x * C + ch] = tmp[ch][x];
                }
            } else {
                for (Py_ssize_t ch = 0; ch < C; ++ch)
                    convert_run<T, CODE>((const T*)(base + ch * a.st[1] + y * a.st[2]), W, step, drow + ch * o.st[3],
                                         o.st[2]);
            }
        }
    } else {
        each_run<T>(a, false, i, [&](const T* s, Py_ssize_t n, Py_ssize_t step, Py_ssize_t y, Py_ssize_t tag) {
            u8* drow = out + y * o.st[1];
            if (r) r->run(s, n, step);
            if (tag == -1) {  // a whole row
                if (orow) convert_run<T, CODE>(s, n, step, drow, 1);
                else
                    for (Py_ssize_t x = 0; x < W; ++x)
                        convert_run<T, CODE>(s + x * C * step, C, step, drow + x * o.st[2], o.st[3]);
            } else {  // one pixel
                convert_run<T, CODE>(s, n, step, drow + (-2 - tag) * o.st[2], o.st[3]);
            }
        });
    }
}

template <typename T>
void convert_by(const Arr& a, const Arr& o, bool nchw, Py_ssize_t i, int code, Range<T>* r) {
    if (code == gm::CODE_UNIT) convert_image<T, gm::CODE_UNIT>(a, o, nchw, i, r);
    else if (code == gm::CODE_SIGNED_UNIT) convert_image<T, gm::CODE_SIGNED_UNIT>(a, o, nchw, i, r);
    else convert_image<T, gm::CODE_CLIP>(a, o, nchw, i, r);
}

// The chunk's images in order. force >= 0: every image by that rule, no range. Else one
// pass per image takes its range and converts it by a guessed rule: the rule of the
// prior range (earlier bands of the image; rules only move down the table as a range
// grows, so the final one is never above it), or, where the image has no prior, the
// previous image's rule (`guess` for the first): batches hold alike images. An image
// whose final rule differs from the guess is converted again.
template <typename T>
void chunk(const Arr& a, const Arr& o, bool nchw, double plo, double phi, int force, int guess, double* lo,
           double* hi, bool* nonfinite, u8* codes) {
    const Py_ssize_t k = a.shape[0];
    const bool prior = plo <= phi;
    *nonfinite = false;
    int prev = guess;
    for (Py_ssize_t i = 0; i < k; ++i) {
        if (force >= 0) {
            convert_by<T>(a, o, nchw, i, force, nullptr);
            codes[i] = (u8)force;
            continue;
        }
        Range<T> r;
        range_init(&r);
        int g = prev;
        if (prior) {
            const int pc = gm::branch_code_f64(plo, phi);
            g = pc > g ? pc : g;
        }
        convert_by<T>(a, o, nchw, i, g, &r);
        bool bad = false;
        range_finish(&r, a, nchw, i, &lo[i], &hi[i], &bad);
        *nonfinite = *nonfinite || bad;
        const double l = lo[i] < plo ? lo[i] : plo, h = hi[i] > phi ? hi[i] : phi;
        const int code = gm::branch_code_f64(l, h);
        if (code != g) convert_by<T>(a, o, nchw, i, code, nullptr);
        codes[i] = (u8)code;
        prev = code;
    }
}

void chunk_kind(Kind kd, const Arr& a, const Arr& o, bool nchw, double plo, double phi, int force, int guess,
                double* lo, double* hi, bool* nf, u8* codes) {
    switch (kd) {
        case K_F16: chunk<half_t>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_F32: chunk<float>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_F64: chunk<double>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_I8: chunk<i8>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_I16: chunk<i16>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_I32: chunk<i32>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_I64: chunk<i64>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_U8: chunk<u8>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_U16: chunk<u16>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_U32: chunk<u32>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        case K_U64: chunk<u64>(a, o, nchw, plo, phi, force, guess, lo, hi, nf, codes); break;
        default: break;
    }
}

PyObject* normalize_chunk(PyObject*, PyObject* args) {
    PyObject *src_o, *dst_o;
    int nchw, force, guess = 0;
    double plo, phi;
    if (!PyArg_ParseTuple(args, "OOpddi|i:normalize_chunk", &src_o, &dst_o, &nchw, &plo, &phi, &force, &guess))
        return nullptr;
    if (force > 2 || guess < 0 || guess > 2) {
        PyErr_SetString(PyExc_ValueError, "force is -1 or a rule 0..2, guess a rule 0..2");
        return nullptr;
    }
    Py_buffer sb, db;
    if (PyObject_GetBuffer(src_o, &sb, PyBUF_RECORDS_RO) < 0) return nullptr;
    if (PyObject_GetBuffer(dst_o, &db, PyBUF_RECORDS) < 0) {
        PyBuffer_Release(&sb);
        return nullptr;
    }
    PyObject* result = nullptr;
    Arr a, o;
    const Kind kd = kind_of(sb);
    const bool ok_src = kd != K_NONE && arr_of(sb, &a);
    const bool ok_dst = db.itemsize == 1 && arr_of(db, &o);
    const Py_ssize_t k = ok_src ? a.shape[0] : 0;
    bool shapes = ok_src && ok_dst && o.shape[0] == k &&
                  (nchw ? (o.shape[1] == a.shape[2] && o.shape[2] == a.shape[3] && o.shape[3] == a.shape[1])
                        : (o.shape[1] == a.shape[1] && o.shape[2] == a.shape[2] && o.shape[3] == a.shape[3]));
    if (!shapes) {
        PyErr_SetString(PyExc_TypeError,
                        "normalize_chunk: a 4-D numeric source and a uint8 NHWC destination of its shape "
                        "(aligned, native byte order)");
    } else {
        double* lo = (double*)PyMem_Malloc(sizeof(double) * (size_t)(k ? k : 1));
        double* hi = (double*)PyMem_Malloc(sizeof(double) * (size_t)(k ? k : 1));
        PyObject* codes = PyBytes_FromStringAndSize(nullptr, k);
        if (!lo || !hi || !codes) {
            PyErr_NoMemory();
        } else {
            bool nf = false;
            u8* cp = (u8*)PyBytes_AS_STRING(codes);
            Py_BEGIN_ALLOW_THREADS chunk_kind(kd, a, o, nchw != 0, plo, phi, force, guess, lo, hi, &nf, cp);
            Py_END_ALLOW_THREADS
            PyObject* los = PyList_New(force < 0 ? k : 0);
            PyObject* his = PyList_New(force < 0 ? k : 0);
            if (los && his && force < 0)
                for (Py_ssize_t i = 0; i < k; ++i) {
                    PyList_SET_ITEM(los, i, PyFloat_FromDouble(lo[i]));
                    PyList_SET_ITEM(his, i, PyFloat_FromDouble(hi[i]));
                }
            if (los && his) result = Py_BuildValue("(NNON)", los, his, nf ? Py_True : Py_False, codes), codes = nullptr;
            else {
                Py_XDECREF(los);
                Py_XDECREF(his);
            }
        }
        Py_XDECREF(codes);
        PyMem_Free(lo);
        PyMem_Free(hi);
    }
    PyBuffer_Release(&sb);
    PyBuffer_Release(&db);
    return result;
}

// ---- PNG's Average filter ----------------------------------------------------------
// Row y of n = W*C bytes -> out[0] = 3, out[1 + i] = x - floor((a + b) / 2) (gm::png_filter_byte
// with PNG_AVERAGE; a is C bytes left, 0 in the first pixel; b the byte above, 0 in row 0).
#if defined(__GNUC__)
#define GM_INLINE inline __attribute__((always_inline))
#else
#define GM_INLINE inline
#endif

GM_INLINE Py_ssize_t filter_average_body(const u8* img, Py_ssize_t h, Py_ssize_t n, Py_ssize_t c, u8* out) {
    Py_ssize_t zeros = 0;
    for (Py_ssize_t y = 0; y < h; ++y) {
        const u8* row = img + y * n;
        u8* o = out + y * (n + 1);
        o[0] = (u8)gm::PNG_AVERAGE;
        u8* f = o + 1;
        if (y == 0) {
            for (Py_ssize_t i = 0; i < c && i < n; ++i) f[i] = gm::png_filter_byte(gm::PNG_AVERAGE, row[i], 0, 0, 0);
            for (Py_ssize_t i = c; i < n; ++i) f[i] = gm::png_filter_byte(gm::PNG_AVERAGE, row[i], row[i - c], 0, 0);
        } else {
            const u8* prev = row - n;
            for (Py_ssize_t i = 0; i < c && i < n; ++i)
                f[i] = gm::png_filter_byte(gm::PNG_AVERAGE, row[i], 0, prev[i], 0);
            // png_filter_byte(PNG_AVERAGE, x, a, b) in 8-bit lanes: floor((a + b) / 2) is
            // (a & b) + ((a ^ b) >> 1), exactly, with no carry out of the byte (the NumPy filter's
            // identity too; tests/test_native.py checks the two filters byte for byte)
            for (Py_ssize_t i = c; i < n; ++i) {
                const u8 a = row[i - c], b = prev[i];
                f[i] = (u8)(row[i] - (u8)((a & b) + ((a ^ b) >> 1)));
            }
        }
        for (Py_ssize_t i0 = 0; i0 < n; i0 += (Py_ssize_t)1 << 30) {  // 32-bit counts (vector lanes), blocks of 2^30
            const Py_ssize_t i1 = n - i0 < ((Py_ssize_t)1 << 30) ? n : i0 + ((Py_ssize_t)1 << 30);
            unsigned z = 0;
            for (Py_ssize_t i = i0; i < i1; ++i) z += f[i] == 0;
            zeros += z;
        }
    }
    return zeros;
}

#ifdef GM_AVX2
// The same loops compiled for AVX2 (the compiler vectorizes them 32 bytes wide).
GM_AVX2_FN Py_ssize_t filter_average_avx2(const u8* img, Py_ssize_t h, Py_ssize_t n, Py_ssize_t c, u8* out) {
    return filter_average_body(img, h, n, c, out);
}
#endif

Py_ssize_t filter_average(const u8* img, Py_ssize_t h, Py_ssize_t n, Py_ssize_t c, u8* out) {
#ifdef GM_AVX2
    if (has_avx2()) return filter_average_avx2(img, h, n, c, out);
#endif
    return filter_average_body(img, h, n, c, out);
}

PyObject* png_filter_average(PyObject*, PyObject* args) {
    PyObject* img_o;
    if (!PyArg_ParseTuple(args, "O:png_filter_average", &img_o)) return nullptr;
    Py_buffer b;
    if (PyObject_GetBuffer(img_o, &b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return nullptr;
    PyObject* result = nullptr;
    if (b.ndim != 3 || b.itemsize != 1 || b.shape[2] < 1) {
        PyErr_SetString(PyExc_TypeError, "png_filter_average: a C-contiguous uint8 (H, W, C) image");
    } else {
        const Py_ssize_t h = b.shape[0], n = b.shape[1] * b.shape[2], c = b.shape[2];
        PyObject* rows = PyBytes_FromStringAndSize(nullptr, h * (n + 1));
        if (rows) {
            Py_ssize_t zeros;
            u8* out = (u8*)PyBytes_AS_STRING(rows);
            Py_BEGIN_ALLOW_THREADS zeros = filter_average((const u8*)b.buf, h, n, c, out);
            Py_END_ALLOW_THREADS
            result = Py_BuildValue("(Nn)", rows, zeros);  // the type bytes (3) are never zero
        }
    }
    PyBuffer_Release(&b);
    return result;
}

PyObject* simd(PyObject*, PyObject*) {
#if defined(GM_AVX2)
    return PyUnicode_FromString(has_avx2() ? "avx2" : "sse2");
#elif defined(GM_SSE2)
    return PyUnicode_FromString("sse2");
#else
    return PyUnicode_FromString("none");
#endif
}

PyMethodDef methods[] = {
    {"simd", simd, METH_NOARGS, "simd() -> 'avx2', 'sse2' or 'none': the vector loops this process runs"},
    {"normalize_chunk", normalize_chunk, METH_VARARGS,
     "normalize_chunk(src, dst, nchw, prior_lo, prior_hi, force, guess=0) -> (lo, hi, nonfinite, codes): docs/SPEC.md 2 on "
     "one chunk (see cpu_fallback/native.py)"},
    {"png_filter_average", png_filter_average, METH_VARARGS,
     "png_filter_average(image) -> (rows, zeros): PNG's Average filter on every row (see cpu_fallback/native.py)"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_gpu_media_native",
                      "gpu_media's compiled CPU loops (cpu_fallback/native.cpp)", -1, methods,
                      nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__gpu_media_native(void) { return PyModule_Create(&module); }
