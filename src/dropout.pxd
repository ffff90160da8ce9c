# Element-wise dropout kernels on packed masks: cimported (inlined) by
# _dropout.pyx and _dense.pyx. No Python objects; every function is
# noexcept nogil and works on raw pointers already validated by the caller.
#
# Mask layout (see rng.h): element e is bit (e % 64) of words[e // 64].
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

from rng cimport CYD_LANE_BIT, cyd_bernoulli_words

# Elements per chunk of parallel work: 64 blocks = 4096 elements (16 KiB of
# float32), so the chunk just drawn is still in L1/L2 when it is applied.
cdef enum:
    BLOCK = 64
    CHUNK_BLOCKS = 64
    # Chunks a thread takes at a time (64k elements). Arrays of at most one
    # grab run on the calling thread: waking threads would cost more.
    PARALLEL_GRAB = 16


cdef inline void apply_mask(const floating *x, const uint64_t *words, floating scale,
                            Py_ssize_t n, floating *y) noexcept nogil:
    """y[e] := x[e] * (D[e] * scale), e < n. y may be x (in place)."""
    cdef Py_ssize_t h, l, e, base
    cdef uint32_t half
    cdef Py_ssize_t n_halves = n // 32
    # Branch-free: a select between two constants then one multiply per
    # element, 32 lanes per mask half-word, bits tested against a table so
    # that GCC vectorizes it at any ISA level. Multiplying (not selecting 0) keeps NaN/inf in dropped units
    # exactly as the formula x * D / keep_prob does.
    for h in range(n_halves):
        half = <uint32_t>(words[h >> 1] >> (32 * (h & 1)))
        base = h * 32
        for l in range(32):
            y[base + l] = x[base + l] * (scale if half & CYD_LANE_BIT[l] else 0)
    for e in range(n_halves * 32, n):
        y[e] = x[e] * (scale if (words[e >> 6] >> (e & 63)) & 1 else 0)


cdef inline void draw_words(uint64_t key, uint64_t block0, uint64_t threshold,
                             Py_ssize_t n_elements, uint64_t *words) noexcept nogil:
    """words := Bernoulli(threshold / 2^32) bits of n_elements elements from
    block block0 on, the padding bits past the last element cleared so that a
    packed mask has one canonical form (count_kept, equality, to_bool)."""
    cdef Py_ssize_t n_blocks = (n_elements + BLOCK - 1) // BLOCK
    cyd_bernoulli_words(key, block0, threshold, n_blocks, words)
    if n_elements % BLOCK:
        words[n_blocks - 1] &= ((<uint64_t>1) << (n_elements % BLOCK)) - 1


cdef inline void draw_and_apply(const floating *x, floating *y, uint64_t *words,
                                Py_ssize_t start, Py_ssize_t n_elements,
                                uint64_t key, uint64_t block0, uint64_t threshold,
                                floating scale) noexcept nogil:
    """For elements start .. start + n_elements (start a multiple of 64):
    words[blocks] := Bernoulli bits of blocks block0 + start / 64 ...;
    y := x * D * scale. Draw then apply while the chunk is hot in cache."""
    cdef Py_ssize_t b = start // BLOCK
    draw_words(key, block0 + b, threshold, n_elements, words + b)
    apply_mask(x + start, words + b, scale, n_elements, y + start)


cdef inline void draw_and_apply_parallel(const floating *x, floating *y, uint64_t *words,
                                         Py_ssize_t n, uint64_t key, uint64_t block0,
                                         uint64_t threshold, floating scale,
                                         int n_threads) noexcept nogil:
    """words := Bernoulli bits of blocks block0 ...; y := x * D * scale, for
    all n elements, in chunks over n_threads."""
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    if n_threads <= 1 or n_chunks <= PARALLEL_GRAB:
        draw_and_apply(x, y, words, 0, n, key, block0, threshold, scale)
        return
    # The bits of a block depend only on its position, so how the chunks are
    # split over threads cannot change the result. Dynamic scheduling: a
    # thread the OS preempts holds up at most one grab of 16 chunks (64k
    # elements) instead of half the array.
    for c in prange(n_chunks, schedule="dynamic", chunksize=PARALLEL_GRAB, num_threads=n_threads):
        draw_and_apply(x, y, words, c * chunk, min(chunk, n - c * chunk),
                       key, block0, threshold, scale)


cdef inline void apply_mask_parallel(const floating *x, const uint64_t *words, floating scale,
                                     Py_ssize_t n, floating *y, int n_threads) noexcept nogil:
    """y := x * D * scale for all n elements, in chunks over n_threads."""
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c, start
    if n_threads <= 1 or n_chunks <= PARALLEL_GRAB:
        apply_mask(x, words, scale, n, y)
        return
    for c in prange(n_chunks, schedule="dynamic", chunksize=PARALLEL_GRAB, num_threads=n_threads):
        start = c * chunk
        apply_mask(x + start, words + start // BLOCK, scale, min(chunk, n - start), y + start)
