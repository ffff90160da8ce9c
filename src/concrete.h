/*
 * Concrete dropout (Gal, Hron & Kendall, NeurIPS 2017): the relaxed
 * Bernoulli drop indicator of each element, drawn from cydrop's
 * counter-based generator and applied in one pass, forward and backward.
 *
 * Why C: as in rng.h and optim.h, the loop needs explicit SIMD (GNU vector
 * extensions) and runtime CPU dispatch (dispatch.h); and its log and exp
 * are written here instead of taken from libm, so that a seed gives the
 * same bits on every machine (libm's results differ between glibc versions
 * and vector libraries). Only +, -, *, /, square roots, integer and bit
 * operations are used, which IEEE 754 rounds identically at every vector
 * width; setup.py compiles with -ffp-contract=off so no clone fuses
 * a * b + c.
 *
 * Contract, element e of a pass that starts at generator block block0:
 *
 *   U_e  the 32-bit uniform of lane l = e % 64 of block B = block0 + e / 64:
 *        the low half of stream word R(key, B * 32 + l / 2) for even l, its
 *        high half for odd l (R as in rng.h): the block's 32 words read as
 *        64 little-endian uint32. A block of 64 elements owns 32 stream
 *        words, as a Bernoulli mask block does.
 *   u_e  = (U_e + 1/2) / 2^32, in (0, 1), never 0 or 1.
 *   l_e  = log(u_e) - log(1 - u_e), the logistic noise, in [-22.9, 22.9].
 *   z_e  = sigmoid((a + l_e) / t), the relaxed drop indicator, with
 *        a = p_logit = log(p / (1 - p)), p the drop probability, t the
 *        temperature; w_e = 1 - z_e = sigmoid(-(a + l_e) / t).
 *   y_e  = x_e * (w_e * scale),  scale = 1 / (1 - p) = 1 + exp(a).
 *
 * and the backward pass, for the gradient dy of the output:
 *
 *   dx_e = dy_e * (w_e * scale)
 *   dL/da = sum_e dy_e * y_e * (p - z_e / t)
 *
 * since dz/da = z (1 - z) / t and d(1 - p)/da = -p (1 - p), so
 * dy_e/da = x_e [(1 - z) p (1 - p) - z (1 - z) / t] / (1 - p)^2
 *         = y_e (p - z_e / t).
 *
 * The reference code adds eps = 1e-7 inside each log (log(p + eps), ...);
 * here p enters through its logit a directly and u is never 0 or 1, so no
 * eps is needed and none is added.
 *
 * Arithmetic: each array type computes in its own precision (float or
 * double); the scalars arrive in double and are rounded to that type once.
 * In base 2, with m = min(U, 2^32 - 1 - U) (so that num = m + 1/2 is exact
 * in double) and den = 2^32 - num, r = (1 - u) / u is den / num (u <= 1/2)
 * or num / den, and
 *   2^-y = 2^(-a log2(e) / t) r^(1/t),   z = 1 / (1 + 2^-y),  w = 2^-y z,
 * y = s log2(e), s = (a + l) / t. Two paths compute 2^-y:
 *
 *   the power path, when 1/t is a whole or half-whole number n + h/2 <= 16.5
 *   (t = 0.1 and 2/3, the reference's, 1, 0.5, 0.25, 2, ...): no log or
 *   exp at all. r = 2^er rm (exponent fields; rm in (1/2, 2), one
 *   division), rm^n by squaring (and one square root when h = 1), the powers
 *   of 2 and 2^(-a log2(e) / t) = c 2^-shift (c in (1/2, 1], once per pass)
 *   added to the exponent field;
 *
 *   the series path otherwise: x = log2(num / den) = e + log2(fn / fd) from
 *   the exponent fields and the mantissas fn, fd in [1, 2) (integer
 *   arithmetic, which also brings |log2(fn / fd)| within 0.59 by doubling fn
 *   or fd), log2(fn / fd) = v sum_k L_k v^2k, v = (fn - fd) / (fn + fd),
 *   |v| <= 0.2005 (the series of 2 atanh(v) / ln 2); y = (a log2(e) -+ x) / t
 *   (times 1/t); 2^-|y| = 2^k 2^r, k = round(-|y|), r in [-1/2, 1/2],
 *   2^r = sum_k (r ln 2)^k / k!; d = 1 / (1 + 2^-|y|) is z where y >= 0
 *   and w where y < 0, the other 2^-|y| d. The series are cut where their
 *   remainder is below 1e-8 (float) or 1e-17 (double) of the sum.
 *
 * Either way neither z nor w overflows and both keep their relative
 * precision near 0; values below 2^-125 (float) or 2^-1021 (double) are
 * taken as 0: results are never subnormal.
 *
 * Accuracy against float64 libm (tests/test_concrete.py, 500,000 draws at
 * twelve (a, t) on both paths, from (-50, 0.1) to (80, 0.5), and the
 * extremes of U):
 *   |w - w_exact| <= 3 (w z (|a| + max(1, |l|)) / t + w) eps + 2^-124 (float)
 *   or 2^-1020 (double), and the same for z, eps the type's epsilon
 *   (measured on 2 million draws: 1.6 on the power path, 2.6 on the series
 *   path, instead of 3). The first term is what rounding a and l to the
 *   type costs through the condition number of the logistic function, the
 *   second an ulp: as accurate as the formula evaluated exactly on a and l
 *   rounded to the type.
 *
 * Passes run over whole 64-element blocks in 128-byte SIMD vectors (32
 * floats or 16 doubles); a last partial block runs the same code on a
 * zero-padded copy, so every element is computed alike wherever it lies.
 * The sum of the backward pass is accumulated in double, lane by lane, in
 * an order fixed by the element positions alone (then the 16 lanes in a
 * fixed tree): the same bits whatever the CPU's vector width.
 */
#ifndef CYDROP_CONCRETE_H
#define CYDROP_CONCRETE_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "dispatch.h"   /* CYD_DISPATCH */
#include "rng.h"        /* CYD_GAMMA, CYD_WORDS_PER_BLOCK, cyd_u64x8 */

#if !defined(__GNUC__)
#  error "concrete.h needs the GNU C vector extensions (GCC or Clang)"
#endif

/* The scalars of one concrete pass (cyd_concrete_init fills them). */
typedef struct {
    uint64_t key;            /* stream key (rng.h) */
    double p_logit;          /* a = log(p / (1 - p)) */
    double inv_temperature;  /* 1 / t */
    double p;                /* sigmoid(a), the drop probability */
    double scale;            /* 1 / (1 - p) = 1 + exp(a) */
    /* the power path (1/t = pow_n + pow_half / 2, pow_n <= 64; pow_n < 0: the
     * series path): 2^-B = pow_scale * 2^-pow_shift, B = a log2(e) / t */
    int pow_n, pow_half;
    int32_t pow_shift;       /* floor(B), B clamped to +-2^20 */
    double pow_scale;        /* 2^-(B - floor(B)), in (1/2, 1] */
} cyd_concrete;

/* 128-byte vectors: GCC lowers each operation to 2 (AVX-512), 4 (AVX2) or 8
 * (SSE2) instructions on independent registers, which the CPU overlaps;
 * one chain of this long dependent computation per register would leave
 * it waiting on latencies. */
typedef float cyd_f32x32 __attribute__((vector_size(128)));
typedef int32_t cyd_i32x32 __attribute__((vector_size(128)));
typedef uint32_t cyd_u32x32 __attribute__((vector_size(128)));
typedef float cyd_f32x16 __attribute__((vector_size(64)));
typedef int32_t cyd_i32x16 __attribute__((vector_size(64)));
typedef double cyd_f64x16 __attribute__((vector_size(128)));
typedef int64_t cyd_i64x16 __attribute__((vector_size(128)));
typedef uint64_t cyd_u64x16 __attribute__((vector_size(128)));

#define CYD_CONCRETE_BLOCK 64

/* The lane layout reads the 32 words of a block as 64 little-endian halves. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#  error "concrete.h assumes a little-endian CPU"
#endif

/* Helpers are inlined into each dispatched clone of the passes, which then
 * compiles them for its own instruction set (vectors go in and out through
 * pointers: by value, their ABI would differ between the clones).
 *
 * Only operations that GCC lowers lane-parallel at every level (SSE2, AVX2,
 * AVX-512) are used on the vectors: no vector comparisons and no
 * 64-bit arithmetic shifts, which GCC splits into scalar code where the
 * CPU has no instruction of that width. A lane mask "a < b" is made from
 * the sign bit of a - b instead (exact: a - b has the sign of the true
 * difference and is 0 only when a == b). */
#define CYD_INLINE static inline __attribute__((always_inline))

/* U[l], l < 64: the 32-bit uniforms of block `block`: the block's 32 stream
 * words (rng.h) read as 64 uint32, so lane l is the low half of word l / 2
 * for even l and its high half for odd l. */
CYD_INLINE void cyd_block_uniforms(uint64_t key, uint64_t block, uint32_t U[CYD_CONCRETE_BLOCK])
{
    const cyd_u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    int j;
    for (j = 0; j < 4; j++) {
        cyd_u64x8 z = key + (block * CYD_WORDS_PER_BLOCK + (uint64_t)(8 * j) + lane) * CYD_GAMMA;
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        z = z ^ (z >> 31);
        memcpy(U + 16 * j, &z, sizeof z);
    }
}

/* Series coefficients of the series path, each the correctly rounded value
 * (computed with 300-bit mpmath): L_k = 2 log2(e) / (2k + 1), so that
 * log2((1 + v) / (1 - v)) = v sum_k L_k v^2k; E_k = ln(2)^k / k!, so that
 * 2^r = sum_k E_k r^k. */

/* ------------------------------------------------------------------ float */

#define CYD_LOG2E 0x1.71547652b82fep+0   /* log2(e), double */
#define CYD_SIGN_F ((int32_t)0x80000000)

/* 2^-x for x >= 0 (x's sign bit clear): 2^k 2^r, k = round(-x), r = -x - k
 * in [-1/2, 1/2] (exact); 0 above x = 125, where results would turn
 * subnormal. */
CYD_INLINE void cyd_exp2_neg_f32(const cyd_f32x32 *x_in, cyd_f32x32 *result)
{
    const float magic = 12582912.0f;          /* 1.5 * 2^23 */
    const int32_t max_bits = 0x42fa0000;      /* 125.0f: bit order is value order for x >= 0 */
    cyd_f32x32 x = *x_in, t, r, p;
    const cyd_i32x32 over = (max_bits - (cyd_i32x32)x) >> 31;   /* x > 125 */
    x = (cyd_f32x32)((((cyd_i32x32)x & ~over) | (max_bits & over)) ^ CYD_SIGN_F);   /* -x */
    t = x + magic;                            /* magic + k: its bits differ from magic's by k */
    r = x - (t - magic);
    /* 2^r = sum E_k r^k, to r^7, remainder < 5.2e-9 of the sum */
    p = r * 0x1.ffcbfcp-17f + 0x1.430912p-13f;
    p = p * r + 0x1.5d87fep-10f;
    p = p * r + 0x1.3b2ab6p-7f;
    p = p * r + 0x1.c6b08ep-5f;
    p = p * r + 0x1.ebfbe0p-3f;
    p = p * r + 0x1.62e430p-1f;
    p = p * r + 1.0f;
    /* times 2^k: k added to the exponent field (p in [0.7, 1.5], k >= -125:
     * the result stays normal, so this is the exact product) */
    *result = (cyd_f32x32)(((cyd_i32x32)p + (cyd_i32x32)((cyd_u32x32)((cyd_i32x32)t - (cyd_i32x32)((cyd_f32x32){0} + magic)) << 23))
                           & ~over);
}

/* (w, z) of the 32 lanes U[0..31] (see the contract):
 * y = (a log2 e + log2(u / (1 - u))) / t, z = 1 / (1 + 2^-y), w = 1 - z. */
CYD_INLINE void cyd_noise_f32(const uint32_t *U, float a_log2e, float inv_t,
                              cyd_f32x32 *w, cyd_f32x32 *z)
{
    const int32_t mant = 0x007fffff, unit = 0x00800000, half = 0x00400000;
    cyd_i32x32 u, flip, m, nb, db, ei, diff, mask;
    cyd_f32x32 num, den, fn, fd, v, v2, q, y, x, G, d, small;
    memcpy(&u, U, sizeof u);
    /* log2(u / (1 - u)) = +-log2(num / den), num = 1/2 + min(U, 2^32 - 1 - U) */
    flip = u >> 31;                           /* -1 where u > 1/2 */
    m = u ^ flip;                             /* in [0, 2^31) */
    num = __builtin_convertvector(m, cyd_f32x32) + 0.5f;
    den = 4294967296.0f - num;
    /* num / den = 2^ei fn / fd, fn and fd in [1, 2), in integer arithmetic
     * on the bits: ei from the exponent fields, fn and fd the mantissas. */
    nb = (cyd_i32x32)num;
    db = (cyd_i32x32)den;
    ei = (nb >> 23) - (db >> 23);
    nb &= mant;
    db &= mant;
    /* Bring log2(fn / fd) within +-0.59 (|v| <= 0.2005 below) by doubling
     * fd where mantissa(fn) - mantissa(fd) > 1/2 and fn where it is < -1/2
     * (adding 1 to the exponent field), moving the factor 2 into ei. The
     * mantissa difference is within 0.0861 of log2(fn / fd). */
    diff = nb - db;
    mask = (half - diff) >> 31;               /* diff > 1/2 */
    db += unit & mask;
    ei -= mask;
    mask = (diff + half) >> 31;               /* diff < -1/2 */
    nb += unit & mask;
    ei += mask;
    fn = (cyd_f32x32)(nb + 0x3f800000);         /* + not |: nb may hold the unit */
    fd = (cyd_f32x32)(db + 0x3f800000);
    /* log2(fn / fd) = v sum L_k v^2k, v = (fn - fd) / (fn + fd) (fn - fd is
     * exact: within a factor 2); to v^9, remainder < 9.4e-9 of the sum */
    v = (fn - fd) / (fn + fd);
    v2 = v * v;
    q = v2 * 0x1.484b14p-2f + 0x1.a61762p-2f;
    q = q * v2 + 0x1.2776c6p-1f;
    q = q * v2 + 0x1.ec709ep-1f;
    q = q * v2 + 0x1.715476p+1f;
    x = __builtin_convertvector(ei, cyd_f32x32) + v * q;
    x = (cyd_f32x32)((cyd_i32x32)x ^ (flip & CYD_SIGN_F));
    y = (a_log2e + x) * inv_t;
    x = (cyd_f32x32)((cyd_i32x32)y & ~CYD_SIGN_F);   /* |y| */
    cyd_exp2_neg_f32(&x, &G);                        /* 2^-|y| */
    /* z = 1 / (1 + 2^-y): d = 1 / (1 + G) is z where y >= 0, w where y < 0 */
    d = 1.0f / (1.0f + G);
    small = G * d;
    mask = (cyd_i32x32)y >> 31;               /* y < 0 (-0 included: then d = small) */
    *z = (cyd_f32x32)(((cyd_i32x32)small & mask) | ((cyd_i32x32)d & ~mask));
    *w = (cyd_f32x32)(((cyd_i32x32)d & mask) | ((cyd_i32x32)small & ~mask));
}

/* (w, z) of the 32 lanes U[0..31] on the power path, 1/t = n + half / 2:
 * 2^-y = 2^-B r^(1/t), r = (1 - u) / u, B = a log2(e) / t, and
 * z = 1 / (1 + 2^-y), w = 2^-y z. r = 2^er rm, rm = fd / fn or fn / fd in
 * (1/2, 2) (one division), so r^(1/t) = 2^(er / t) rm^n (sqrt(rm)); the
 * powers of 2 and 2^-B = c 2^-shift are added to the exponent field at the
 * end, and 2^-y below 2^-125 or above 2^125 is taken as 0 or infinite
 * (z = 1, w = 0 or z = 0, w = 1, as the series path's flush). */
CYD_INLINE void cyd_noise_pow_f32(const uint32_t *U, int n, int half, float c, int32_t shift,
                                  cyd_f32x32 *w, cyd_f32x32 *z)
{
    const int32_t mant = 0x007fffff;
    const cyd_f32x32 one = (cyd_f32x32){0} + 1.0f;
    cyd_i32x32 u, flip, m, nb, db, nm, dm, er, k, et, under, over;
    cyd_f32x32 num, r, b, P, q, Q, d;
    int j;
    memcpy(&u, U, sizeof u);
    flip = u >> 31;                           /* u > 1/2: r = num / den, else den / num */
    m = u ^ flip;
    num = __builtin_convertvector(m, cyd_f32x32) + 0.5f;
    nb = (cyd_i32x32)num;
    db = (cyd_i32x32)(4294967296.0f - num);
    er = (db >> 23) - (nb >> 23);
    er = (er ^ flip) - flip;
    nm = (nb & mant) | 0x3f800000;
    dm = (db & mant) | 0x3f800000;
    r = (cyd_f32x32)((dm & ~flip) | (nm & flip)) / (cyd_f32x32)((nm & ~flip) | (dm & flip));
    /* P = r^n = prod over the bits j of n of r^(2^j), n <= 64, in
     * straight-line code (a branch would make GCC keep these 128-byte
     * vectors in memory): each factor is r^(2^j) or 1, chosen by a mask */
    b = r;
    P = (cyd_f32x32)(((cyd_i32x32)b & -(n & 1)) | ((cyd_i32x32)one & ~-(n & 1)));
    for (j = 1; j <= 4; j++) {
        int32_t bit = -((n >> j) & 1);
        b = b * b;
        P = P * (cyd_f32x32)(((cyd_i32x32)b & bit) | ((cyd_i32x32)one & ~bit));
    }
    k = er * n - shift;
    if (half) {                               /* sqrt(2^er rm) = 2^floor(er / 2) sqrt(rm 2^(er mod 2)) */
        cyd_f32x32 h = r + (cyd_f32x32)((cyd_i32x32)r & -(er & 1));
        int l;
        for (l = 0; l < 32; l++)
            h[l] = __builtin_sqrtf(h[l]);
        P = P * h;
        k += er >> 1;
    }
    q = P * c;                                /* in (2^-66, 2^66): normal */
    et = ((cyd_i32x32)q >> 23) + k;           /* the exponent field of 2^k q */
    under = (et - 2) >> 31;
    over = (252 - et) >> 31;
    Q = (cyd_f32x32)((((cyd_i32x32)q + (cyd_i32x32)((cyd_u32x32)k << 23)) & ~(under | over)) |
                     (over & 0x7f800000));
    d = 1.0f / (1.0f + Q);
    *z = d;
    *w = (cyd_f32x32)(((cyd_i32x32)(Q * d) & ~over) | ((cyd_i32x32)one & over));
}

/* acc[0..1] += g, lane by lane, in double. */
CYD_INLINE void cyd_accumulate_f32(cyd_f64x16 acc[2], const cyd_f32x32 *g)
{
    cyd_f32x16 lo, hi;
    memcpy(&lo, g, sizeof lo);
    memcpy(&hi, (const char *)g + sizeof lo, sizeof hi);
    acc[0] += __builtin_convertvector(lo, cyd_f64x16);
    acc[1] += __builtin_convertvector(hi, cyd_f64x16);
}

/* ----------------------------------------------------------------- double */

#define CYD_SIGN_D ((int64_t)0x8000000000000000ULL)

/* a lane mask: all ones where the int64 x < 0 (a logical shift and a
 * negation: AVX2 has no 64-bit arithmetic shift) */
#define CYD_NEGATIVE_I64(x) ((cyd_i64x16)((cyd_u64x16){0} - ((cyd_u64x16)(x) >> 63)))

/* 2^-x for x >= 0, as cyd_exp2_neg_f32; 0 above x = 1021. */
CYD_INLINE void cyd_exp2_neg_f64(const cyd_f64x16 *x_in, cyd_f64x16 *result)
{
    const double magic = 6755399441055744.0;  /* 1.5 * 2^52 */
    const int64_t max_bits = 0x408fe80000000000;   /* 1021.0 */
    cyd_f64x16 x = *x_in, t, r, p;
    const cyd_i64x16 over = CYD_NEGATIVE_I64(max_bits - (cyd_i64x16)x);
    x = (cyd_f64x16)((((cyd_i64x16)x & ~over) | (max_bits & over)) ^ CYD_SIGN_D);
    t = x + magic;
    r = x - (t - magic);
    /* to r^13, remainder < 4.2e-18 */
    p = r * 0x1.816193166d0f9p-40 + 0x1.c3bd650fc2986p-36;
    p = p * r + 0x1.e8cac7351bb25p-32;
    p = p * r + 0x1.e4cf5158b8ecap-28;
    p = p * r + 0x1.b5253d395e7c4p-24;
    p = p * r + 0x1.62c0223a5c824p-20;
    p = p * r + 0x1.ffcbfc588b0c7p-17;
    p = p * r + 0x1.430912f86c787p-13;
    p = p * r + 0x1.5d87fe78a6731p-10;
    p = p * r + 0x1.3b2ab6fba4e77p-7;
    p = p * r + 0x1.c6b08d704a0c0p-5;
    p = p * r + 0x1.ebfbdff82c58fp-3;
    p = p * r + 0x1.62e42fefa39efp-1;
    p = p * r + 1.0;
    *result = (cyd_f64x16)(((cyd_i64x16)p + (cyd_i64x16)((cyd_u64x16)((cyd_i64x16)t - (cyd_i64x16)((cyd_f64x16){0} + magic)) << 52))
                           & ~over);
}

/* (w, z) of the 16 lanes U[0..15], as cyd_noise_f32. */
CYD_INLINE void cyd_noise_f64(const uint32_t *U, double a_log2e, double inv_t,
                              cyd_f64x16 *w, cyd_f64x16 *z)
{
    const int64_t mant = 0x000fffffffffffff, unit = 0x0010000000000000, half = 0x0008000000000000;
    const double magic = 6755399441055744.0;  /* 1.5 * 2^52: reads a small int64 as a double */
    cyd_i32x16 u, flip;
    cyd_i64x16 nb, db, ei, diff, mask;
    cyd_f64x16 num, den, fn, fd, v, v2, q, y, x, G, d, small;
    memcpy(&u, U, sizeof u);
    flip = u >> 31;
    num = __builtin_convertvector(u ^ flip, cyd_f64x16) + 0.5;  /* exact */
    den = 4294967296.0 - num;                                   /* exact */
    nb = (cyd_i64x16)num;
    db = (cyd_i64x16)den;
    ei = (cyd_i64x16)((cyd_u64x16)nb >> 52) - (cyd_i64x16)((cyd_u64x16)db >> 52);
    nb &= mant;
    db &= mant;
    diff = nb - db;
    mask = CYD_NEGATIVE_I64(half - diff);
    db += unit & mask;
    ei -= mask;
    mask = CYD_NEGATIVE_I64(diff + half);
    nb += unit & mask;
    ei += mask;
    fn = (cyd_f64x16)(nb + 0x3ff0000000000000);
    fd = (cyd_f64x16)(db + 0x3ff0000000000000);
    /* to v^23, remainder < 6.8e-19 of the sum */
    v = (fn - fd) / (fn + fd);
    v2 = v * v;
    q = v2 * 0x1.00ecd7e080215p-3 + 0x1.1964ec6fc9491p-3;
    q = q * v2 + 0x1.3703c1f4d0ffep-3;
    q = q * v2 + 0x1.5b9ac9b743f0dp-3;
    q = q * v2 + 0x1.89f3b1694cffep-3;
    q = q * v2 + 0x1.c68f568d31760p-3;
    q = q * v2 + 0x1.0c9a84994022dp-2;
    q = q * v2 + 0x1.484b13d7c02a9p-2;
    q = q * v2 + 0x1.a61762a7aded9p-2;
    q = q * v2 + 0x1.2776c50ef9bfep-1;
    q = q * v2 + 0x1.ec709dc3a03fdp-1;
    q = q * v2 + 0x1.71547652b82fep+1;
    x = ((cyd_f64x16)(ei + (cyd_i64x16)((cyd_f64x16){0} + magic)) - magic) + v * q;
    x = (cyd_f64x16)((cyd_i64x16)x ^ (__builtin_convertvector(flip, cyd_i64x16) & CYD_SIGN_D));
    y = (a_log2e + x) * inv_t;
    x = (cyd_f64x16)((cyd_i64x16)y & ~CYD_SIGN_D);
    cyd_exp2_neg_f64(&x, &G);
    d = 1.0 / (1.0 + G);
    small = G * d;
    mask = CYD_NEGATIVE_I64((cyd_i64x16)y);
    *z = (cyd_f64x16)(((cyd_i64x16)small & mask) | ((cyd_i64x16)d & ~mask));
    *w = (cyd_f64x16)(((cyd_i64x16)d & mask) | ((cyd_i64x16)small & ~mask));
}

/* (w, z) of the 16 lanes U[0..15] on the power path, as cyd_noise_pow_f32
 * (0 or infinity past 2^-1021 and 2^1021); exponents are carried in
 * doubles, exact, since AVX2 has no 64-bit multiply or arithmetic shift. */
CYD_INLINE void cyd_noise_pow_f64(const uint32_t *U, int n, int half, double c, int32_t shift,
                                  cyd_f64x16 *w, cyd_f64x16 *z)
{
    const int64_t mant = 0x000fffffffffffff;
    const double magic = 6755399441055744.0;  /* 1.5 * 2^52: reads a small int64 as a double */
    const cyd_f64x16 one = (cyd_f64x16){0} + 1.0;
    cyd_i32x16 u, flip32;
    cyd_i64x16 flip, nb, db, nm, dm, erb, k, et, under, over;
    cyd_f64x16 num, r, b, P, q, Q, d, er, kd;
    int j;
    memcpy(&u, U, sizeof u);
    flip32 = u >> 31;
    flip = __builtin_convertvector(flip32, cyd_i64x16);
    num = __builtin_convertvector(u ^ flip32, cyd_f64x16) + 0.5;
    nb = (cyd_i64x16)num;
    db = (cyd_i64x16)(4294967296.0 - num);
    erb = (cyd_i64x16)((cyd_u64x16)db >> 52) - (cyd_i64x16)((cyd_u64x16)nb >> 52);
    erb = (erb ^ flip) - flip;
    er = (cyd_f64x16)(erb + (cyd_i64x16)((cyd_f64x16){0} + magic)) - magic;
    nm = (nb & mant) | 0x3ff0000000000000;
    dm = (db & mant) | 0x3ff0000000000000;
    r = (cyd_f64x16)((dm & ~flip) | (nm & flip)) / (cyd_f64x16)((nm & ~flip) | (dm & flip));
    b = r;
    P = (cyd_f64x16)(((cyd_i64x16)b & -(int64_t)(n & 1)) | ((cyd_i64x16)one & ~-(int64_t)(n & 1)));
    for (j = 1; j <= 4; j++) {
        int64_t bit = -(int64_t)((n >> j) & 1);
        b = b * b;
        P = P * (cyd_f64x16)(((cyd_i64x16)b & bit) | ((cyd_i64x16)one & ~bit));
    }
    kd = er * (double)n - (double)shift;
    if (half) {
        cyd_i64x16 odd = erb & 1;
        cyd_f64x16 h = r + (cyd_f64x16)((cyd_i64x16)r & -odd);
        int l;
        for (l = 0; l < 16; l++)
            h[l] = __builtin_sqrt(h[l]);
        P = P * h;
        kd += (er - (cyd_f64x16)(odd + (cyd_i64x16)((cyd_f64x16){0} + magic)) + magic) * 0.5;
    }
    q = P * c;
    k = (cyd_i64x16)(kd + magic) - (cyd_i64x16)((cyd_f64x16){0} + magic);
    et = (cyd_i64x16)((cyd_u64x16)q >> 52) + k;
    under = CYD_NEGATIVE_I64(et - 2);
    over = CYD_NEGATIVE_I64(2044 - et);
    Q = (cyd_f64x16)((((cyd_i64x16)q + (cyd_i64x16)((cyd_u64x16)k << 52)) & ~(under | over)) |
                     (over & 0x7ff0000000000000));
    d = 1.0 / (1.0 + Q);
    *z = d;
    *w = (cyd_f64x16)(((cyd_i64x16)(Q * d) & ~over) | ((cyd_i64x16)one & over));
}

CYD_INLINE void cyd_accumulate_f64(cyd_f64x16 acc[2], const cyd_f64x16 *g)
{
    acc[0] += *g;
}

/* ------------------------------------------------------------ the scalars */

/* c := the scalars of a pass with this key, p_logit and temperature:
 * p = sigmoid(a) and scale = 1 / (1 - p) from G = exp(-|a|) = 2^(-|a| log2 e)
 * (cyd_exp2_neg_f64, so that they too are the same on every machine). */
static inline void cyd_concrete_init(cyd_concrete *c, uint64_t key, double p_logit, double temperature)
{
    cyd_f64x16 x = (cyd_f64x16){0} + (p_logit < 0 ? -p_logit : p_logit) * CYD_LOG2E, G;
    double g;
    cyd_exp2_neg_f64(&x, &G);
    g = G[0];
    double inv_t = 1.0 / temperature, B;
    c->key = key;
    c->p_logit = p_logit;
    c->inv_temperature = inv_t;
    c->pow_n = -1;
    c->pow_half = 0;
    c->pow_shift = 0;
    c->pow_scale = 1.0;
    if (inv_t >= 0.5 && inv_t <= 16.5 && inv_t + inv_t == (double)(int)(inv_t + inv_t)) {
        c->pow_n = (int)inv_t;
        c->pow_half = (int)(inv_t + inv_t) & 1;
        B = p_logit * CYD_LOG2E * inv_t;
        B = B < -1048576.0 ? -1048576.0 : (B > 1048576.0 ? 1048576.0 : B);
        c->pow_shift = (int32_t)B - (B < (double)(int32_t)B);        /* floor */
        x = (cyd_f64x16){0} + (B - (double)c->pow_shift);
        cyd_exp2_neg_f64(&x, &G);
        c->pow_scale = G[0];
    }
    if (p_logit > 0) {            /* p = 1 / (1 + e^-a), 1 - p = e^-a / (1 + e^-a) */
        c->p = 1.0 / (1.0 + g);
        c->scale = (1.0 + g) / g;
    } else {                      /* p = e^a / (1 + e^a), 1 - p = 1 / (1 + e^a) */
        c->p = g / (1.0 + g);
        c->scale = 1.0 + g;
    }
}

/* The passes, once per type (concrete_loops.h). */
enum { CYD_NOISE_PASS, CYD_FORWARD_PASS, CYD_BACKWARD_PASS };

#define CYD_T float
#define CYD_V cyd_f32x32
#define CYD_LANES 32
#define CYD_NOISE cyd_noise_f32
#define CYD_NOISE_POW cyd_noise_pow_f32
#define CYD_ACCUMULATE cyd_accumulate_f32
#define CYD_NAME(name) name##_float
#include "concrete_loops.h"

#define CYD_T double
#define CYD_V cyd_f64x16
#define CYD_LANES 16
#define CYD_NOISE cyd_noise_f64
#define CYD_NOISE_POW cyd_noise_pow_f64
#define CYD_ACCUMULATE cyd_accumulate_f64
#define CYD_NAME(name) name##_double
#include "concrete_loops.h"

#endif /* CYDROP_CONCRETE_H */
