// PNG encoding on the GPU, per row and per byte: the five PNG filters, libpng's choice
// of filter per row, and Adler-32 (the zlib stream's checksum) in parallel pieces.
//
// PNG (ISO/IEC 15948, section 9): each row of an 8-bit image is stored as one filter
// type byte followed by the row's bytes filtered with that type, from x (this byte),
// a (the byte bpp to the left, 0 in the first pixel), b (the byte above, 0 in the first
// row) and c (the byte above a):
//   0 None: x   1 Sub: x - a   2 Up: x - b   3 Average: x - floor((a + b) / 2)
//   4 Paeth: x - paeth(a, b, c)                                  (all modulo 256)
// The filter of a row is the one whose filtered bytes, read as signed (-128..127), have
// the least sum of absolute values; ties go to the lowest type (libpng's heuristic,
// png_write_find_filter in pngwutil.c, which also scores None that way).
//
// Adler-32 (RFC 1950 section 8.2): s1 = 1 + sum of the bytes, s2 = sum of the s1 after
// each byte, both modulo 65521, checksum s2 * 65536 + s1. A piece is summed with the
// reduction deferred for up to 5552 bytes (the most that cannot overflow 32 bits, as
// zlib's NMAX), and pieces are joined with adler32_combine (zlib's rule), so the GPU
// sums an image's filtered bytes in parallel pieces and joins them in order.
//
// Every function is GM_HD: tests/kernels_host_shim.cpp builds them with g++ and checks
// them against NumPy's filters and zlib.adler32.
#pragma once

#include "common.cuh"

namespace gm {

enum { PNG_NONE = 0, PNG_SUB = 1, PNG_UP = 2, PNG_AVERAGE = 3, PNG_PAETH = 4, PNG_FILTERS = 5 };

#define GM_ADLER_MOD 65521u
#define GM_ADLER_NMAX 5552

// The Paeth predictor (PNG section 9.4): the one of a, b, c nearest p = a + b - c, ties
// in the order a, b, c.
GM_HD i32 paeth_predictor(i32 a, i32 b, i32 c) {
    const i32 p = a + b - c;
    const i32 pa = p > a ? p - a : a - p;
    const i32 pb = p > b ? p - b : b - p;
    const i32 pc = p > c ? p - c : c - p;
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

// Filter type `f` of byte x with neighbours a, b, c (each 0..255); the stored byte.
GM_HD u8 png_filter_byte(int f, i32 x, i32 a, i32 b, i32 c) {
    i32 pred = 0;
    if (f == PNG_SUB) pred = a;
    else if (f == PNG_UP) pred = b;
    else if (f == PNG_AVERAGE) pred = (a + b) >> 1;
    else if (f == PNG_PAETH) pred = paeth_predictor(a, b, c);
    return (u8)(x - pred);
}

// |v| of a filtered byte read as signed: 0..128 (libpng's "sum of absolute differences").
GM_HD u32 png_abs_signed(u8 v) { return v < 128u ? (u32)v : 256u - (u32)v; }

// The neighbours of byte i of a row (`prev` is the row above, or null for the first row).
GM_HD void png_neighbours(const u8* row, const u8* prev, i64 i, int bpp, i32* a, i32* b, i32* c) {
    const bool left = i >= bpp;
    *a = left ? row[i - bpp] : 0;
    *b = prev ? prev[i] : 0;
    *c = (left && prev) ? prev[i - bpp] : 0;
}

// The five scores of one byte: sad[f] += |filtered byte| for f = 0..4.
GM_HD void png_score_byte(const u8* row, const u8* prev, i64 i, int bpp, u32* sad) {
    i32 a, b, c;
    png_neighbours(row, prev, i, bpp, &a, &b, &c);
    const i32 x = row[i];
    for (int f = 0; f < PNG_FILTERS; ++f) sad[f] += png_abs_signed(png_filter_byte(f, x, a, b, c));
}

// libpng's choice from the five scores: the least, ties to the lowest filter type.
GM_HD int png_pick_filter(const u32* sad) {
    int best = 0;
    for (int f = 1; f < PNG_FILTERS; ++f)
        if (sad[f] < sad[best]) best = f;
    return best;
}

// One row of `rowbytes` bytes -> out[0] = the chosen filter type, out[1..rowbytes] the
// filtered bytes (serial: the host twin, and the reference of the kernel's warp version).
// A row scores at most 128 * rowbytes per filter: u32 holds rows up to 2^24 bytes.
GM_HD int png_filter_row(const u8* row, const u8* prev, i64 rowbytes, int bpp, u8* out) {
    u32 sad[PNG_FILTERS] = {0, 0, 0, 0, 0};
    for (i64 i = 0; i < rowbytes; ++i) png_score_byte(row, prev, i, bpp, sad);
    const int f = png_pick_filter(sad);
    out[0] = (u8)f;
    for (i64 i = 0; i < rowbytes; ++i) {
        i32 a, b, c;
        png_neighbours(row, prev, i, bpp, &a, &b, &c);
        out[1 + i] = png_filter_byte(f, row[i], a, b, c);
    }
    return f;
}

// ---- Adler-32 -----------------------------------------------------------------------
// Adler-32 of n bytes continuing from `adler` (1 for a new stream), modulo 65521 at
// least every GM_ADLER_NMAX bytes.
GM_HD u32 adler32_update(u32 adler, const u8* p, i64 n) {
    u32 s1 = adler & 0xffffu, s2 = adler >> 16;
    while (n > 0) {
        const i64 k = n < GM_ADLER_NMAX ? n : GM_ADLER_NMAX;
        for (i64 i = 0; i < k; ++i) {
            s1 += p[i];
            s2 += s1;
        }
        s1 %= GM_ADLER_MOD;
        s2 %= GM_ADLER_MOD;
        p += k;
        n -= k;
    }
    return (s2 << 16) | s1;
}

// The Adler-32 of A followed by B from adler(A), adler(B) (each from the initial 1) and
// the length of B (zlib's adler32_combine).
GM_HD u32 adler32_combine(u32 adler1, u32 adler2, i64 len2) {
    const u32 rem = (u32)(len2 % (i64)GM_ADLER_MOD);
    u32 sum1 = adler1 & 0xffffu;
    u32 sum2 = (u32)(((u64)rem * sum1) % GM_ADLER_MOD);
    sum1 += (adler2 & 0xffffu) + GM_ADLER_MOD - 1u;
    sum2 += (adler1 >> 16) + (adler2 >> 16) + GM_ADLER_MOD - rem;
    if (sum1 >= GM_ADLER_MOD) sum1 -= GM_ADLER_MOD;
    if (sum1 >= GM_ADLER_MOD) sum1 -= GM_ADLER_MOD;
    if (sum2 >= (GM_ADLER_MOD << 1)) sum2 -= (GM_ADLER_MOD << 1);
    if (sum2 >= GM_ADLER_MOD) sum2 -= GM_ADLER_MOD;
    return (sum2 << 16) | sum1;
}

// Adler-32 of a piece of `len` bytes summed in any partition (the kernel: the bytes of
// a row spread over the 32 lanes of a warp). Byte v at position j (0-based) of the piece
// adds v to s1's sum and (len - j) * v to s2's: adler_add folds one byte into a part's
// (sa, sb), adler_part_mod reduces a part, and adler_from_sums turns the sums of all
// parts (each < 65521, added modulo 65521) into the piece's Adler-32 from the initial 1:
// s1 = 1 + sa, s2 = len + sb.
GM_HD void adler_add(u64* sa, u64* sb, u8 v, i64 j, i64 len) {
    *sa += v;
    *sb += (u64)(len - j) * v;
}

GM_HD u32 adler_part_mod(u64 s) { return (u32)(s % GM_ADLER_MOD); }

GM_HD u32 adler_mod_add(u32 x, u32 y) {  // x, y < 65521
    const u32 s = x + y;
    return s >= GM_ADLER_MOD ? s - GM_ADLER_MOD : s;
}

GM_HD u32 adler_from_sums(u32 sa, u32 sb, i64 len) {
    const u32 s1 = adler_mod_add(1u, sa);
    const u32 s2 = adler_mod_add((u32)(len % (i64)GM_ADLER_MOD), sb);
    return (s2 << 16) | s1;
}

// Adler-32 of `count` consecutive pieces of `len` bytes each, from their own Adler-32s
// (the rows of one image -> the image's zlib checksum).
GM_HD u32 adler32_join(const u32* parts, i64 count, i64 len) {
    u32 adler = 1u;
    for (i64 k = 0; k < count; ++k) adler = adler32_combine(adler, parts[k], len);
    return adler;
}

}  // namespace gm
