// gpu_media's CUDA kernels (the CuPy backend, gpu_media/cupy_backend.py, loads this file
// with cupy.RawModule; NVRTC, --fmad=false, -std=c++17, -I<this folder>).
//
// Self-contained: no CuPy header, no cuda_fp16.h, no system header. The per-element and
// per-pixel work (math and indexing) lives in the .cuh files, which the host tests build
// with g++ and check against cpu_fallback; this file holds the grid loops, the
// reductions and the extern "C" entry points, each with its docs/SPEC.md section:
//
//   gm_range_<t>     2   per-image min/max keys over finite values, whole batch
//   gm_codes         2   per-image branch code from those keys
//   gm_convert_<t>   2   one pass: any-strided (N,H,W,C) input -> uint8 NHWC
//   gm_normalize_<t> 2   ranges + conversion in one kernel, each image read about once from device
//                        memory (opt-in: GPU_MEDIA_NORMALIZE=fused)
//   gm_mask_<t>      3   per-image 256-bin histogram, min/max keys, bad count
//   gm_outlines      4   box outlines burned into a copy, the last box wins
//   gm_png_filter    5   PNG rows: filter byte + filtered bytes, per-row Adler-32
//   gm_png_adler     5   per-image Adler-32 from the per-row ones
//
// <t> is one of u8 i8 u16 i16 u32 i32 u64 i64 f16 f32 f64 (bool is read as u8).
// Launch contract: GM_BLOCK threads per block, any grid size (grid-stride loops).
#include "common.cuh"
#include "normalize.cuh"
#include "masks.cuh"
#include "boxes.cuh"
#include "png.cuh"

#define GM_BLOCK 256

namespace gm {

__device__ __forceinline__ u64 umin64(u64 a, u64 b) { return a < b ? a : b; }
__device__ __forceinline__ u64 umax64(u64 a, u64 b) { return a > b ? a : b; }

// Reduces (kmin, kmax, count) over the block (blockDim.x == GM_BLOCK); the result is
// valid in thread 0. Begins and ends with __syncthreads(), so shared memory written
// before the call is visible to every thread after it, and the scratch can be reused.
__device__ __forceinline__ void block_reduce(u64* kmin, u64* kmax, u64* count) {
    __shared__ u64 s_min[GM_BLOCK / 32], s_max[GM_BLOCK / 32], s_cnt[GM_BLOCK / 32];
    u64 a = *kmin, b = *kmax, n = *count;
    for (int o = 16; o > 0; o >>= 1) {
        a = umin64(a, __shfl_down_sync(0xffffffffu, a, o));
        b = umax64(b, __shfl_down_sync(0xffffffffu, b, o));
        n += __shfl_down_sync(0xffffffffu, n, o);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();  // the previous call's readers are done with the scratch
    if (lane == 0) {
        s_min[warp] = a;
        s_max[warp] = b;
        s_cnt[warp] = n;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < GM_BLOCK / 32; ++i) {
            a = umin64(a, s_min[i]);
            b = umax64(b, s_max[i]);
            n += s_cnt[i];
        }
        *kmin = a;
        *kmax = b;
        *count = n;
    }
    __syncthreads();
}

// ---- docs/SPEC.md 2: per-image ranges ----------------------------------------------------------
// x: (n, h, w, c) with element strides sn, sh, sw, sc; `dense` when each image's
// elements fill one contiguous run starting at x + i*sn (in any axis order: min/max do
// not care), which skips the index arithmetic. Each block reduces tiles of `tile`
// elements of one image and folds them into keys[2*i] (min) and keys[2*i+1] (max) with
// atomics; the caller initializes keys to key_min_init / key_max_init of T's kind.
template <typename T>
__device__ void range_impl(const T* __restrict__ x, i64 n, i64 h, i64 w, i64 c, i64 sn, i64 sh,
                           i64 sw, i64 sc, int dense, i64 tile, u64* __restrict__ keys) {
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    const i64 per = h * w * c;
    const i64 total = tile_count(n, per, tile);
    for (i64 t = blockIdx.x; t < total; t += gridDim.x) {  // block-uniform loop
        i64 img, start, end;
        tile_bounds(t, per, tile, &img, &start, &end);
        const T* base = x + img * sn;
        u64 kmin = init_min, kmax = init_max, unused = 0;
        for (i64 e = start + threadIdx.x; e < end; e += GM_BLOCK) {
            const i64 off = dense ? e : image_offset(e, w, c, sh, sw, sc);
            u64 k;
            if (range_key(base[off], &k)) {
                kmin = umin64(kmin, k);
                kmax = umax64(kmax, k);
            }
        }
        block_reduce(&kmin, &kmax, &unused);
        if (threadIdx.x == 0) {
            if (kmin != init_min) atomicMin(keys + 2 * img, kmin);
            if (kmax != init_max) atomicMax(keys + 2 * img + 1, kmax);
        }
    }
}

// ---- docs/SPEC.md 2: the conversion pass (one thread per output pixel) --------------------------
template <typename T>
__device__ void convert_impl(const T* __restrict__ x, u8* __restrict__ out, i64 n, i64 h, i64 w,
                             i64 c, i64 sn, i64 sh, i64 sw, i64 sc, const u8* __restrict__ codes) {
    const i64 pixels = n * h * w;
    const i64 stride = (i64)gridDim.x * GM_BLOCK;
    for (i64 p = (i64)blockIdx.x * GM_BLOCK + threadIdx.x; p < pixels; p += stride)
        convert_pixel(x, out, p, h, w, c, sn, sh, sw, sc, codes);
}

// ---- docs/SPEC.md 2: ranges and conversion fused (the schedule: fused_ticket in normalize.cuh) -----
// state: keys[2*i] (min), keys[2*i+1] (max) as range_impl (initialized by the caller),
// then done[i] (range tickets of image i finished) and one ticket counter, zeroed by the
// caller; state = keys (2n) | done (n) | counter (1). codes[i] gets image i's branch code.
// Each block takes tickets from the counter until none is left. A range ticket folds its
// tile's keys into the image's with atomics, then (after a fence) counts itself done; a
// convert ticket's thread 0 waits until its image's `tiles` range tickets are done (they
// precede it: see fused_ticket), fences, reads the keys and shares the code.
__device__ __forceinline__ u64 load_volatile(const u64* p) { return *(const volatile u64*)p; }
#define GM_FUSED_MAX_POLLS (1ull << 24)  // at >= ~0.3 us a poll (an L2 round trip): seconds

template <typename T>
__device__ void fused_impl(const T* __restrict__ x, u8* __restrict__ out, i64 n, i64 h, i64 w, i64 c, i64 sn,
                           i64 sh, i64 sw, i64 sc, int dense, i64 tile_px, i64 lag, u64* state, u8* codes) {
    __shared__ i64 s_ticket;
    __shared__ int s_code;
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    u64* keys = state;
    u64* done = state + 2 * n;
    u64* counter = state + 3 * n;
    const i64 hw = h * w, tiles = (hw + tile_px - 1) / tile_px, total = fused_tickets(n, tiles);
    for (;;) {
        if (threadIdx.x == 0) s_ticket = (i64)atomicAdd(counter, 1ull);
        __syncthreads();
        const i64 t = s_ticket;
        if (t >= total) break;  // the same in every thread of the block
        int phase;
        i64 img, k;
        fused_ticket(t, n, tiles, lag, &phase, &img, &k);
        const i64 p0 = k * tile_px, p1 = p0 + tile_px < hw ? p0 + tile_px : hw;
        if (phase == FUSED_RANGE) {
            u64 kmin = init_min, kmax = init_max, unused = 0;
            fused_range_thread(x + img * sn, p0 * c, p1 * c, w, c, sh, sw, sc, dense, (int)threadIdx.x, GM_BLOCK,
                               &kmin, &kmax);
            block_reduce(&kmin, &kmax, &unused);
            if (threadIdx.x == 0) {
                if (kmin != init_min) atomicMin(keys + 2 * img, kmin);
                if (kmax != init_max) atomicMax(keys + 2 * img + 1, kmax);
                __threadfence();  // the keys before the count
                atomicAdd(done + img, 1ull);
            }
        } else {
            if (threadIdx.x == 0) {
                // A healthy wait is over within microseconds (the last range tiles of the
                // image, already running); one that cannot end (a broken schedule) traps, so
                // the launch fails with an error instead of hanging the process.
                for (u64 polls = 0; load_volatile(done + img) < (u64)tiles; ++polls) {
                    if (polls == GM_FUSED_MAX_POLLS) __trap();
                    __nanosleep(128);
                }
                __threadfence();  // the count before the keys
                const u8 code = branch_code_from_keys(kind, load_volatile(keys + 2 * img),
                                                      load_volatile(keys + 2 * img + 1));
                codes[img] = code;  // every convert ticket of the image writes the same value
                s_code = code;
            }
            __syncthreads();
            fused_convert_thread(x, out, img, p0, p1, h, w, c, sn, sh, sw, sc, codes, s_code, (int)threadIdx.x,
                                 GM_BLOCK);
        }
        __syncthreads();  // every thread has read s_ticket and s_code before thread 0 rewrites them
    }
}

// ---- docs/SPEC.md 3: mask statistics -----------------------------------------------------------
// m: (n, h, w) with element strides sn, sh, sw (`dense` as in range_impl). Per image i:
// hist[256*i + v] += pixels of value v (integral v in [0, 255]); keys[2*i], keys[2*i+1]
// the min/max keys over finite values (initialized by the caller); bad[i] += count of
// non-finite or fractional values. A block histograms one tile in shared memory, then
// adds its non-zero bins to the image's global bins.
template <typename T>
__device__ void mask_impl(const T* __restrict__ m, i64 n, i64 h, i64 w, i64 sn, i64 sh, i64 sw,
                          int dense, i64 tile, u64* __restrict__ hist, u64* __restrict__ keys,
                          u64* __restrict__ bad) {
    __shared__ u32 s_hist[256];
    const char kind = key_kind(T());
    const u64 init_min = key_min_init(kind), init_max = key_max_init(kind);
    const i64 per = h * w;
    const i64 total = tile_count(n, per, tile);
    for (i64 t = blockIdx.x; t < total; t += gridDim.x) {  // block-uniform loop
        i64 img, start, end;
        tile_bounds(t, per, tile, &img, &start, &end);
        const T* base = m + img * sn;
        for (int b = threadIdx.x; b < 256; b += GM_BLOCK) s_hist[b] = 0;
        __syncthreads();
        u64 kmin = init_min, kmax = init_max, nbad = 0;
        for (i64 e = start + threadIdx.x; e < end; e += GM_BLOCK) {
            const T v = base[dense ? e : image_offset(e, w, 1, sh, sw, 0)];
            const int cls = mask_class(v);
            if (cls >= 0) atomicAdd(s_hist + cls, 1u);
            else if (cls == MASK_BAD) ++nbad;
            u64 k;
            if (range_key(v, &k)) {
                kmin = umin64(kmin, k);
                kmax = umax64(kmax, k);
            }
        }
        block_reduce(&kmin, &kmax, &nbad);  // its __syncthreads() publish s_hist
        for (int b = threadIdx.x; b < 256; b += GM_BLOCK) {
            const u32 cnt = s_hist[b];
            if (cnt) atomicAdd(hist + 256 * img + b, (u64)cnt);
        }
        if (threadIdx.x == 0) {
            if (kmin != init_min) atomicMin(keys + 2 * img, kmin);
            if (kmax != init_max) atomicMax(keys + 2 * img + 1, kmax);
            if (nbad) atomicAdd(bad + img, nbad);
        }
        __syncthreads();  // every thread has read s_hist before the next tile clears it
    }
}

}  // namespace gm

// ---- entry points ----------------------------------------------------------------------
// Argument types, for the launcher: T*, unsigned char*, unsigned long long* are device
// pointers (CuPy arrays); every `long long` is an int64 scalar, every `int` an int32.
#define GM_TYPED_KERNELS(SUFFIX, T)                                                                  \
    extern "C" __global__ void __launch_bounds__(GM_BLOCK) gm_range_##SUFFIX(                        \
        const T* x, long long n, long long h, long long w, long long c, long long sn, long long sh,  \
        long long sw, long long sc, int dense, long long tile, unsigned long long* keys) {           \
        gm::range_impl<T>(x, n, h, w, c, sn, sh, sw, sc, dense, tile, keys);                        \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(GM_BLOCK) gm_convert_##SUFFIX(                      \
        const T* x, unsigned char* out, long long n, long long h, long long w, long long c,          \
        long long sn, long long sh, long long sw, long long sc, const unsigned char* codes) {        \
        gm::convert_impl<T>(x, out, n, h, w, c, sn, sh, sw, sc, codes);                             \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(GM_BLOCK) gm_normalize_##SUFFIX(                    \
        const T* x, unsigned char* out, long long n, long long h, long long w, long long c,          \
        long long sn, long long sh, long long sw, long long sc, int dense, long long tile_px,        \
        long long lag, unsigned long long* state, unsigned char* codes) {                            \
        gm::fused_impl<T>(x, out, n, h, w, c, sn, sh, sw, sc, dense, tile_px, lag, state, codes);   \
    }                                                                                                \
    extern "C" __global__ void __launch_bounds__(GM_BLOCK) gm_mask_##SUFFIX(                         \
        const T* m, long long n, long long h, long long w, long long sn, long long sh, long long sw, \
        int dense, long long tile, unsigned long long* hist, unsigned long long* keys,               \
        unsigned long long* bad) {                                                                   \
        gm::mask_impl<T>(m, n, h, w, sn, sh, sw, dense, tile, hist, keys, bad);                     \
    }

GM_TYPED_KERNELS(u8, gm::u8)
GM_TYPED_KERNELS(i8, gm::i8)
GM_TYPED_KERNELS(u16, gm::u16)
GM_TYPED_KERNELS(i16, gm::i16)
GM_TYPED_KERNELS(u32, gm::u32)
GM_TYPED_KERNELS(i32, gm::i32)
GM_TYPED_KERNELS(u64, gm::u64)
GM_TYPED_KERNELS(i64, gm::i64)
GM_TYPED_KERNELS(f16, gm::half_t)
GM_TYPED_KERNELS(f32, float)
GM_TYPED_KERNELS(f64, double)

// docs/SPEC.md 2: codes[i] = branch code of image i from keys[2*i] (min), keys[2*i+1] (max); kind
// is 'f' (floats), 'i' (signed integers) or 'u' (unsigned integers, bool), as an int.
extern "C" __global__ void __launch_bounds__(GM_BLOCK)
    gm_codes(const unsigned long long* keys, unsigned char* codes, long long n, int kind) {
    const long long stride = (long long)gridDim.x * GM_BLOCK;
    for (long long i = (long long)blockIdx.x * GM_BLOCK + threadIdx.x; i < n; i += stride)
        codes[i] = gm::branch_code_from_keys((char)kind, keys[2 * i], keys[2 * i + 1]);
}

// docs/SPEC.md 4: out (n, h, w, c_out) from img (n, h, w, c_in), both uint8 contiguous; see
// gm::outline_pixel (boxes.cuh) for rects, colors, offsets. One thread per pixel.
extern "C" __global__ void __launch_bounds__(GM_BLOCK)
    gm_outlines(const unsigned char* __restrict__ img, unsigned char* __restrict__ out, long long n,
                long long h, long long w, long long c_in, const long long* __restrict__ rects,
                const unsigned char* __restrict__ colors, const long long* __restrict__ offsets,
                long long thickness) {
    const long long pixels = n * h * w;
    const long long stride = (long long)gridDim.x * GM_BLOCK;
    for (long long p = (long long)blockIdx.x * GM_BLOCK + threadIdx.x; p < pixels; p += stride)
        gm::outline_pixel(img, out, p, h, w, c_in, rects, colors, offsets, thickness);
}

// docs/SPEC.md 5, PNG: one warp per row. img (n, h, w, c) uint8 contiguous -> out: image i's h
// rows of 1 + w*c bytes from out + i*stride (stride >= h*(1 + w*c)), each row's filter type (libpng's least sum of absolute values, png.cuh) and its
// filtered bytes, i.e. the zlib stream's uncompressed data; row_adler[i*h + y] the
// Adler-32 of that output row (1 + w*c bytes, from the initial 1). Lanes stride over
// the row (coalesced), score the five filters, agree on one by shuffles, then write.
extern "C" __global__ void __launch_bounds__(GM_BLOCK)
    gm_png_filter(const unsigned char* __restrict__ img, unsigned char* __restrict__ out,
                  unsigned int* __restrict__ row_adler, long long n, long long h, long long w, long long c,
                  long long stride) {
    const long long rowbytes = w * c, len = 1 + rowbytes, rows = n * h;
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (GM_BLOCK / 32);
    for (long long r = ((long long)blockIdx.x * GM_BLOCK + threadIdx.x) >> 5; r < rows; r += warps) {
        const long long y = r % h, i = r / h;  // row y of image i
        const unsigned char* row = img + r * rowbytes;
        const unsigned char* prev = y ? row - rowbytes : nullptr;
        unsigned int sad[gm::PNG_FILTERS] = {0, 0, 0, 0, 0};
        for (long long i = lane; i < rowbytes; i += 32) gm::png_score_byte(row, prev, i, (int)c, sad);
        for (int f = 0; f < gm::PNG_FILTERS; ++f)
            for (int o = 16; o > 0; o >>= 1) sad[f] += __shfl_xor_sync(0xffffffffu, sad[f], o);
        const int f = gm::png_pick_filter(sad);  // the same in every lane
        unsigned char* dst = out + i * stride + y * len;
        unsigned long long sa = 0, sb = 0;
        if (lane == 0) {
            dst[0] = (unsigned char)f;
            gm::adler_add(&sa, &sb, (unsigned char)f, 0, len);
        }
        for (long long i = lane; i < rowbytes; i += 32) {
            int a, b, cc;
            gm::png_neighbours(row, prev, i, (int)c, &a, &b, &cc);
            const unsigned char v = gm::png_filter_byte(f, row[i], a, b, cc);
            dst[1 + i] = v;
            gm::adler_add(&sa, &sb, v, 1 + i, len);
        }
        unsigned int ma = gm::adler_part_mod(sa), mb = gm::adler_part_mod(sb);
        for (int o = 16; o > 0; o >>= 1) {
            ma = gm::adler_mod_add(ma, __shfl_xor_sync(0xffffffffu, ma, o));
            mb = gm::adler_mod_add(mb, __shfl_xor_sync(0xffffffffu, mb, o));
        }
        if (lane == 0) row_adler[r] = gm::adler_from_sums(ma, mb, len);
    }
}

// docs/SPEC.md 5, PNG: adler[i] = Adler-32 of image i's h rows of `len` bytes, joined in order
// from row_adler (gm_png_filter's). One thread per image.
extern "C" __global__ void __launch_bounds__(GM_BLOCK)
    gm_png_adler(const unsigned int* __restrict__ row_adler, unsigned int* __restrict__ adler, long long n,
                 long long h, long long len) {
    const long long stride = (long long)gridDim.x * GM_BLOCK;
    for (long long i = (long long)blockIdx.x * GM_BLOCK + threadIdx.x; i < n; i += stride)
        adler[i] = gm::adler32_join(row_adler + i * h, h, len);
}
