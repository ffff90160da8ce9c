/*
 * Counter-based Bernoulli mask bits for cydrop.
 *
 * Why C and not Cython: this hot loop needs explicit SIMD (GNU vector
 * extensions) and runtime CPU dispatch (GCC/Clang `target_clones`, see
 * dispatch.h), neither of which Cython can express. Only it and Adam's
 * step (optim.h) are in C; everything else lives in Cython.
 *
 * Generator: SplitMix64 (Steele, Lea & Flood, "Fast splittable pseudorandom
 * number generators", OOPSLA 2014), which passes TestU01's BigCrush. It is
 * counter-based by construction: word n of the stream keyed by `key` is
 *
 *     R(key, n) = mix64(key + n * GAMMA)
 *
 * so any word can be computed without the ones before it. That makes a mask
 * bit a pure function of (key, position): identical for any thread count,
 * any chunking, any machine.
 *
 * Mask layout: element e of a draw lives in 64-element block B = e / 64 at bit
 * e % 64 of that block's uint64 word. Block B owns the 32 stream words
 * n = B * 32 + j, j = 0..31.
 *
 * Bernoulli bits, bit-sliced (64 lanes at once): element e is kept iff its
 * 32-bit uniform U_e < T, with T = round(keep_prob * 2^32), where bit
 * (31 - j) of U_e (most significant first) is bit (e % 64) of R(key, B*32+j).
 * Comparing U and T from the most significant bit down, a lane is decided at
 * the first bit where they differ: kept if U's bit is 0 and T's is 1, dropped
 * if U's bit is 1 and T's is 0. Half the undecided lanes are decided by each
 * word, so a block needs about 7 words (bits per element) on average instead
 * of 32, and no words at all past T's lowest set bit (U >= T there).
 * P(keep) = T / 2^32 exactly, within 2^-33 of keep_prob.
 */
#ifndef CYDROP_RNG_H
#define CYDROP_RNG_H

#include <stdint.h>
#include <stddef.h>

#include "dispatch.h"   /* CYD_DISPATCH */

#define CYD_GAMMA UINT64_C(0x9e3779b97f4a7c15)
#define CYD_WORDS_PER_BLOCK 32

/* CYD_LANE_BIT[l] = 1 << l. Testing mask bits against this table (rather
 * than shifting by the lane index) lets compilers vectorize the apply loops
 * even at the SSE2 baseline, which has no per-lane variable shift. */
static const uint32_t CYD_LANE_BIT[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

/* SplitMix64 finaliser (Stafford's Mix13 variant), a bijection on 64 bits. */
static inline uint64_t cyd_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* key := mix64(seed + GAMMA): the first SplitMix64 output for `seed`, so that
 * neighbouring seeds start far apart on the Weyl sequence. */
static inline uint64_t cyd_key_from_seed(uint64_t seed)
{
    return cyd_mix64(seed + CYD_GAMMA);
}

/* Number of stream words a block may need for threshold T: T's bits from
 * bit 31 down to its lowest set bit. 0 when T is 0 or 2^32 (nothing to draw). */
static inline int cyd_threshold_bits(uint64_t threshold)
{
    int nbits = 32;
    if (threshold == 0 || threshold >= (UINT64_C(1) << 32))
        return 0;
    while (!(threshold & 1)) {
        threshold >>= 1;
        nbits--;
    }
    return nbits;
}

/* word := Bernoulli(T / 2^32) bits of block B, one lane at a time.
 * The reference form of the algorithm; also handles the tail blocks. */
static inline uint64_t cyd_block_word(uint64_t key, uint64_t block, uint64_t threshold, int nbits)
{
    uint64_t keep = 0, undecided = ~UINT64_C(0);
    int j;
    if (threshold >= (UINT64_C(1) << 32))
        return ~UINT64_C(0);
    for (j = 0; j < nbits && undecided; j++) {
        uint64_t r = cyd_mix64(key + (block * CYD_WORDS_PER_BLOCK + (uint64_t)j) * CYD_GAMMA);
        if ((threshold >> (31 - j)) & 1) {
            keep |= undecided & ~r;   /* U bit 0 < T bit 1: kept */
            undecided &= r;
        } else {
            undecided &= ~r;          /* U bit 1 > T bit 0: dropped */
        }
    }
    return keep;
}

#if defined(__GNUC__)
typedef uint64_t cyd_u64x8 __attribute__((vector_size(64)));
#endif

/* words[i] := Bernoulli(T / 2^32) bits of block (block0 + i), i < n_blocks.
 * Eight blocks per step in SIMD lanes; a step ends when all 8 x 64 lanes are
 * decided. The per-block result is identical to cyd_block_word. */
CYD_DISPATCH
static void cyd_bernoulli_words(uint64_t key, uint64_t block0, uint64_t threshold,
                                size_t n_blocks, uint64_t *words)
{
    size_t i = 0;
    int nbits = cyd_threshold_bits(threshold);
#if defined(__GNUC__)
    if (nbits > 0) {
        const cyd_u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
        for (; i + 8 <= n_blocks; i += 8) {
            cyd_u64x8 keep = {0, 0, 0, 0, 0, 0, 0, 0};
            cyd_u64x8 undecided = ~keep;
            /* stream word index of (block, j) is block * 32 + j */
            cyd_u64x8 first = (block0 + i + lane) * CYD_WORDS_PER_BLOCK;
            int j;
            for (j = 0; j < nbits; j++) {
                /* t_mask is all ones where T's bit is 1, zero where it is 0 */
                uint64_t t_mask = -((threshold >> (31 - j)) & 1);
                cyd_u64x8 z = key + (first + (uint64_t)j) * CYD_GAMMA;
                z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
                z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
                z = z ^ (z >> 31);
                keep |= undecided & ~z & t_mask;
                undecided &= z ^ ~t_mask;   /* keep lanes where U bit == T bit */
                if (!(undecided[0] | undecided[1] | undecided[2] | undecided[3] |
                      undecided[4] | undecided[5] | undecided[6] | undecided[7]))
                    break;
            }
            {
                int l;
                for (l = 0; l < 8; l++)
                    words[i + l] = keep[l];
            }
        }
    }
#endif
    for (; i < n_blocks; i++)
        words[i] = cyd_block_word(key, block0 + i, threshold, nbits);
}

#endif /* CYDROP_RNG_H */
