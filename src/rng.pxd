# C-level declarations of the counter-based Bernoulli generator (rng.h).
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "rng.h" nogil:
    const uint32_t CYD_LANE_BIT[32]   # CYD_LANE_BIT[l] = 1 << l
    uint64_t cyd_key_from_seed(uint64_t seed)
    # words[i] := Bernoulli(threshold / 2^32) bits of block (block0 + i)
    void cyd_bernoulli_words(uint64_t key, uint64_t block0, uint64_t threshold,
                             size_t n_blocks, uint64_t *words)


cdef inline Py_ssize_t n_words(Py_ssize_t n_elements) noexcept nogil:
    """Words of a packed mask of n_elements elements, and the generator blocks
    a draw of them takes: ceil(n / 64) (one 64-element block per word)."""
    return (n_elements + 63) // 64
