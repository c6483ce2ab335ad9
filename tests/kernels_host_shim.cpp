// Host build of gpu_media/cuda/src/*.cuh for tests/test_kernels_host.py (g++ -O2
// -ffp-contract=off -std=c++17 -shared -fPIC -I gpu_media/cuda/src).
//
// Two kinds of functions, all extern "C" over plain arrays (ctypes):
//  * gmh_*: one per-element helper looped over an array (to_u8, range_key, mask_class,
//    the float16 conversions), checked bit for bit against NumPy / cpu_fallback;
//  * gm_*: serial twins of the CUDA entry points of kernels.cu, with the same names and
//    arguments: the same per-pixel functions, tile decomposition and key folding, with
//    loops in place of the grid, block and atomics. gpu_media/cuda/kernels.py drives
//    them exactly as it drives the GPU, so its planning (strides, layouts, keys, box
//    offsets) is tested end to end without a GPU.
#include "common.cuh"
#include "normalize.cuh"
#include "masks.cuh"
#include "boxes.cuh"
#include "png.cuh"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#define GMH_HAVE_FTZ 1
#else
#define GMH_HAVE_FTZ 0
#endif

using namespace gm;

namespace {

// CuPy compiles every kernel with -ftz=true: float32 subnormal inputs and results are
// flushed to zero (doubles are not). gmh_set_ftz(1) makes every function below run
// with the x86 MXCSR FTZ and DAZ bits set (restored on return), the host's model of
// that; the tests then check float16/float32 paths under it too.
int g_ftz = 0;

struct FtzScope {
#if GMH_HAVE_FTZ
    unsigned saved;
    FtzScope() : saved(_mm_getcsr()) {
        if (g_ftz) _mm_setcsr(saved | 0x8040u);  // FTZ (bit 15) | DAZ (bit 6)
    }
    ~FtzScope() { _mm_setcsr(saved); }
#endif
};

template <typename T>
void range_serial(const T* x, i64 n, i64 h, i64 w, i64 c, i64 sn, i64 sh, i64 sw, i64 sc, int dense,
                  i64 tile, u64* keys) {
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    const i64 per = h * w * c;
    for (i64 t = 0; t < tile_count(n, per, tile); ++t) {
        i64 img, start, end;
        tile_bounds(t, per, tile, &img, &start, &end);
        const T* base = x + img * sn;
        u64 kmin = init_min, kmax = init_max;
        for (i64 e = start; e < end; ++e) {
            u64 k;
            if (range_key(base[dense ? e : image_offset(e, w, c, sh, sw, sc)], &k)) {
                kmin = k < kmin ? k : kmin;
                kmax = k > kmax ? k : kmax;
            }
        }
        if (kmin < keys[2 * img]) keys[2 * img] = kmin;  // atomicMin
        if (kmax > keys[2 * img + 1]) keys[2 * img + 1] = kmax;  // atomicMax
    }
}

template <typename T>
void convert_serial(const T* x, u8* out, i64 n, i64 h, i64 w, i64 c, i64 sn, i64 sh, i64 sw, i64 sc,
                    const u8* codes) {
    for (i64 p = 0; p < n * h * w; ++p) convert_pixel(x, out, p, h, w, c, sn, sh, sw, sc, codes);
}

template <typename T>
void mask_serial(const T* m, i64 n, i64 h, i64 w, i64 sn, i64 sh, i64 sw, int dense, i64 tile, u64* hist,
                 u64* keys, u64* bad) {
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    const i64 per = h * w;
    for (i64 t = 0; t < tile_count(n, per, tile); ++t) {
        i64 img, start, end;
        tile_bounds(t, per, tile, &img, &start, &end);
        const T* base = m + img * sn;
        u64 kmin = init_min, kmax = init_max;
        for (i64 e = start; e < end; ++e) {
            const T v = base[dense ? e : image_offset(e, w, 1, sh, sw, 0)];
            const int cls = mask_class(v);
            if (cls >= 0) hist[256 * img + cls] += 1;
            else if (cls == MASK_BAD) bad[img] += 1;
            u64 k;
            if (range_key(v, &k)) {
                kmin = k < kmin ? k : kmin;
                kmax = k > kmax ? k : kmax;
            }
        }
        if (kmin < keys[2 * img]) keys[2 * img] = kmin;
        if (kmax > keys[2 * img + 1]) keys[2 * img + 1] = kmax;
    }
}

// Threads of the fused twin's "block": GM_BLOCK (256) as on the device, or any other count
// (gmh_set_fused_threads), so the per-thread strides and the loads past a tile's end are
// exercised at small sizes.
int g_fused_threads = 256;

// Serial twin of gm_normalize_<t> (kernels.cu fused_impl): the tickets in counter order,
// each by g_fused_threads "threads" in turn (fused_range_thread / fused_convert_thread,
// their keys folded as block_reduce folds them), the keys folded into the image's as the
// atomics do. A convert ticket reads its image's keys when it comes, so a schedule that
// let one run before all of its image's range tickets would give wrong pixels. state and
// codes as on the device; the counter ends at the number of tickets, done[i] at tiles.
template <typename T>
void fused_serial(const T* x, u8* out, i64 n, i64 h, i64 w, i64 c, i64 sn, i64 sh, i64 sw, i64 sc, int dense,
                  i64 tile_px, i64 lag, u64* state, u8* codes) {
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    u64* keys = state;
    u64* done = state + 2 * n;
    u64* counter = state + 3 * n;
    const i64 hw = h * w, tiles = (hw + tile_px - 1) / tile_px, total = fused_tickets(n, tiles);
    for (i64 t = (i64)(*counter)++; t < total; t = (i64)(*counter)++) {
        int phase;
        i64 img, k;
        fused_ticket(t, n, tiles, lag, &phase, &img, &k);
        const i64 p0 = k * tile_px, p1 = p0 + tile_px < hw ? p0 + tile_px : hw;
        if (phase == FUSED_RANGE) {
            u64 bmin = init_min, bmax = init_max;
            for (int tid = 0; tid < g_fused_threads; ++tid) {
                u64 kmin = init_min, kmax = init_max;
                fused_range_thread(x + img * sn, p0 * c, p1 * c, w, c, sh, sw, sc, dense, tid, g_fused_threads, &kmin,
                                   &kmax);
                bmin = kmin < bmin ? kmin : bmin;
                bmax = kmax > bmax ? kmax : bmax;
            }
            if (bmin < keys[2 * img]) keys[2 * img] = bmin;
            if (bmax > keys[2 * img + 1]) keys[2 * img + 1] = bmax;
            done[img] += 1;
        } else {
            const u8 code = branch_code_from_keys(kind, keys[2 * img], keys[2 * img + 1]);
            codes[img] = code;
            for (int tid = 0; tid < g_fused_threads; ++tid)
                fused_convert_thread(x, out, img, p0, p1, h, w, c, sn, sh, sw, sc, codes, code, tid, g_fused_threads);
        }
    }
}

}  // namespace

#define GMH_TYPED(SUFFIX, T)                                                                          \
    extern "C" void gmh_to_u8_##SUFFIX(const T* x, long long n, const int* codes, unsigned char* out) { \
        FtzScope ftz;                                                                                \
        for (long long i = 0; i < n; ++i) out[i] = to_u8(x[i], codes[i]);                          \
    }                                                                                                 \
    extern "C" void gmh_range_key_##SUFFIX(const T* x, long long n, unsigned long long* keys,        \
                                           unsigned char* valid) {                                   \
        FtzScope ftz;                                                                                \
        for (long long i = 0; i < n; ++i) valid[i] = range_key(x[i], keys + i) ? 1 : 0;             \
    }                                                                                                 \
    extern "C" void gmh_mask_class_##SUFFIX(const T* x, long long n, int* out) {                     \
        FtzScope ftz;                                                                                \
        for (long long i = 0; i < n; ++i) out[i] = mask_class(x[i]);                                 \
    }                                                                                                 \
    extern "C" int gmh_key_kind_##SUFFIX() { return key_kind(T()); }                                 \
    extern "C" void gm_range_##SUFFIX(const T* x, long long n, long long h, long long w, long long c, \
                                      long long sn, long long sh, long long sw, long long sc,       \
                                      int dense, long long tile, unsigned long long* keys) {         \
        FtzScope ftz;                                                                                \
        range_serial<T>(x, n, h, w, c, sn, sh, sw, sc, dense, tile, keys);                           \
    }                                                                                                 \
    extern "C" void gm_convert_##SUFFIX(const T* x, unsigned char* out, long long n, long long h,    \
                                        long long w, long long c, long long sn, long long sh,       \
                                        long long sw, long long sc, const unsigned char* codes) {    \
        FtzScope ftz;                                                                                \
        convert_serial<T>(x, out, n, h, w, c, sn, sh, sw, sc, codes);                                \
    }                                                                                                 \
    extern "C" void gm_normalize_##SUFFIX(const T* x, unsigned char* out, long long n, long long h,  \
                                          long long w, long long c, long long sn, long long sh,     \
                                          long long sw, long long sc, int dense, long long tile_px, \
                                          long long lag, unsigned long long* state,                  \
                                          unsigned char* codes) {                                    \
        FtzScope ftz;                                                                                \
        fused_serial<T>(x, out, n, h, w, c, sn, sh, sw, sc, dense, tile_px, lag, state, codes);     \
    }                                                                                                 \
    extern "C" void gm_mask_##SUFFIX(const T* m, long long n, long long h, long long w, long long sn, \
                                     long long sh, long long sw, int dense, long long tile,          \
                                     unsigned long long* hist, unsigned long long* keys,             \
                                     unsigned long long* bad) {                                      \
        FtzScope ftz;                                                                                \
        mask_serial<T>(m, n, h, w, sn, sh, sw, dense, tile, hist, keys, bad);                        \
    }

GMH_TYPED(u8, u8)
GMH_TYPED(i8, i8)
GMH_TYPED(u16, u16)
GMH_TYPED(i16, i16)
GMH_TYPED(u32, u32)
GMH_TYPED(i32, i32)
GMH_TYPED(u64, u64)
GMH_TYPED(i64, i64)
GMH_TYPED(f16, half_t)
GMH_TYPED(f32, float)
GMH_TYPED(f64, double)

extern "C" void gm_codes(const unsigned long long* keys, unsigned char* codes, long long n, int kind) {
    FtzScope ftz;
    for (long long i = 0; i < n; ++i) codes[i] = branch_code_from_keys((char)kind, keys[2 * i], keys[2 * i + 1]);
}

extern "C" void gm_outlines(const unsigned char* img, unsigned char* out, long long n, long long h, long long w,
                            long long c_in, const long long* rects, const unsigned char* colors,
                            const long long* offsets, long long thickness) {
    for (long long p = 0; p < n * h * w; ++p) outline_pixel(img, out, p, h, w, c_in, rects, colors, offsets, thickness);
}

// The fused twin's threads per block (see g_fused_threads); returns the previous count.
extern "C" int gmh_set_fused_threads(int threads) {
    const int prev = g_fused_threads;
    g_fused_threads = threads;
    return prev;
}

// fused_ticket over tickets [0, 2*n*tiles): out (2*n*tiles, 3) = phase, image, tile.
extern "C" void gmh_fused_schedule(long long n, long long tiles, long long lag, long long* out) {
    for (long long t = 0; t < fused_tickets(n, tiles); ++t) {
        int phase;
        i64 img, k;
        fused_ticket(t, n, tiles, lag, &phase, &img, &k);
        out[3 * t] = phase;
        out[3 * t + 1] = img;
        out[3 * t + 2] = k;
    }
}

// Turns the flush-to-zero model on (1) or off (0); returns 0 where the host has none.
extern "C" int gmh_set_ftz(int on) {
    g_ftz = on && GMH_HAVE_FTZ;
    return GMH_HAVE_FTZ;
}

extern "C" void gmh_half_to_float(const unsigned short* h, long long n, float* out) {
    FtzScope ftz;
    for (long long i = 0; i < n; ++i) out[i] = half_to_float(h[i]);
}

extern "C" void gmh_float_to_half(const float* f, long long n, unsigned short* out) {
    FtzScope ftz;
    for (long long i = 0; i < n; ++i) out[i] = float_to_half(f[i]);
}

extern "C" void gmh_on_outline(const long long* xy, long long n, const long long* rect, long long t,
                               unsigned char* out) {
    for (long long i = 0; i < n; ++i)
        out[i] = on_outline(xy[2 * i], xy[2 * i + 1], rect[0], rect[1], rect[2], rect[3], t) ? 1 : 0;
}

// ---- docs/SPEC.md 5, PNG (png.cuh) --------------------------------------------------------------
// Serial twin of gm_png_filter: each row through png_filter_row; each row's Adler-32 from
// its bytes split into 32 strided parts, as the kernel's lanes split it (adler_add,
// adler_part_mod, adler_mod_add, adler_from_sums).
extern "C" void gm_png_filter(const unsigned char* img, unsigned char* out, unsigned int* row_adler, long long n,
                              long long h, long long w, long long c, long long stride) {
    const long long rowbytes = w * c, len = 1 + rowbytes;
    for (long long r = 0; r < n * h; ++r) {
        const unsigned char* row = img + r * rowbytes;
        unsigned char* dst = out + (r / h) * stride + (r % h) * len;
        png_filter_row(row, (r % h) ? row - rowbytes : nullptr, rowbytes, (int)c, dst);
        u32 ma = 0, mb = 0;
        for (int lane = 0; lane < 32; ++lane) {
            u64 sa = 0, sb = 0;
            for (long long j = lane; j < len; j += 32) adler_add(&sa, &sb, dst[j], j, len);
            ma = adler_mod_add(ma, adler_part_mod(sa));
            mb = adler_mod_add(mb, adler_part_mod(sb));
        }
        row_adler[r] = adler_from_sums(ma, mb, len);
    }
}

extern "C" void gm_png_adler(const unsigned int* row_adler, unsigned int* adler, long long n, long long h,
                             long long len) {
    for (long long i = 0; i < n; ++i) adler[i] = adler32_join(row_adler + i * h, h, len);
}

// One row (rowbytes bytes, prev null for a first row) -> out (1 + rowbytes); returns the filter.
extern "C" int gmh_png_filter_row(const unsigned char* row, const unsigned char* prev, long long rowbytes, int bpp,
                                  unsigned char* out) {
    return png_filter_row(row, prev, rowbytes, bpp, out);
}

// One filter type over a whole image (n rows of rowbytes): out (h, 1 + rowbytes).
extern "C" void gmh_png_filter_fixed(const unsigned char* img, long long h, long long rowbytes, int bpp, int f,
                                     unsigned char* out) {
    for (long long y = 0; y < h; ++y) {
        const unsigned char* row = img + y * rowbytes;
        const unsigned char* prev = y ? row - rowbytes : nullptr;
        out[y * (1 + rowbytes)] = (unsigned char)f;
        for (long long i = 0; i < rowbytes; ++i) {
            int a, b, c;
            png_neighbours(row, prev, i, bpp, &a, &b, &c);
            out[y * (1 + rowbytes) + 1 + i] = png_filter_byte(f, row[i], a, b, c);
        }
    }
}

extern "C" void gmh_paeth(const int* abc, long long n, int* out) {
    for (long long i = 0; i < n; ++i) out[i] = paeth_predictor(abc[3 * i], abc[3 * i + 1], abc[3 * i + 2]);
}

extern "C" unsigned int gmh_adler32(unsigned int adler, const unsigned char* p, long long n) {
    return adler32_update(adler, p, n);
}

extern "C" unsigned int gmh_adler32_combine(unsigned int a1, unsigned int a2, long long len2) {
    return adler32_combine(a1, a2, len2);
}

// Adler-32 of n bytes split into `parts` strided parts (byte j in part j % parts), as a warp splits a row.
extern "C" unsigned int gmh_adler32_strided(const unsigned char* p, long long n, int parts) {
    u32 ma = 0, mb = 0;
    for (int k = 0; k < parts; ++k) {
        u64 sa = 0, sb = 0;
        for (long long j = k; j < n; j += parts) adler_add(&sa, &sb, p[j], j, n);
        ma = adler_mod_add(ma, adler_part_mod(sa));
        mb = adler_mod_add(mb, adler_part_mod(sb));
    }
    return adler_from_sums(ma, mb, n);
}
