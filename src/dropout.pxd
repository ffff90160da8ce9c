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
    # Arrays of at most this many chunks (32k elements, torch's own grain
    # size for element-wise ops) run on the calling thread: waking threads
    # would cost more than the work. Above it a second thread pays for
    # itself (benchmarks/bench_dropout.py, forward-threads groups).
    SERIAL_CHUNKS = 8
    # Chunks a thread takes at a time at most (64k elements).
    PARALLEL_GRAB = 16


cdef inline int team_size(Py_ssize_t n_chunks, int n_threads) noexcept nogil:
    """Threads for a pass over n_chunks chunks: at most one per SERIAL_CHUNKS
    chunks (torch's rule, one thread per grain) and at most n_threads; 1 or
    less means the calling thread."""
    return <int>min(<Py_ssize_t>n_threads, (n_chunks + SERIAL_CHUNKS - 1) // SERIAL_CHUNKS)


cdef inline Py_ssize_t grab_size(Py_ssize_t n_chunks, int team) noexcept nogil:
    """Chunks a thread takes at a time: PARALLEL_GRAB, or an equal share of
    the team's when that is fewer, so that a mid-sized array is split over
    every thread of the team."""
    return min(<Py_ssize_t>PARALLEL_GRAB, (n_chunks + team - 1) // team)


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
    cdef int team = team_size(n_chunks, n_threads)
    cdef Py_ssize_t grab
    if team <= 1:
        draw_and_apply(x, y, words, 0, n, key, block0, threshold, scale)
        return
    grab = grab_size(n_chunks, team)
    # The bits of a block depend only on its position, so how the chunks are
    # split over threads cannot change the result. Dynamic scheduling: a
    # thread the OS preempts holds up at most one grab of 16 chunks (64k
    # elements) instead of half the array.
    for c in prange(n_chunks, schedule="dynamic", chunksize=grab, num_threads=team):
        draw_and_apply(x, y, words, c * chunk, min(chunk, n - c * chunk),
                       key, block0, threshold, scale)


cdef inline void apply_mask_parallel(const floating *x, const uint64_t *words, floating scale,
                                     Py_ssize_t n, floating *y, int n_threads) noexcept nogil:
    """y := x * D * scale for all n elements, in chunks over n_threads."""
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c, start
    cdef int team = team_size(n_chunks, n_threads)
    cdef Py_ssize_t grab
    if team <= 1:
        apply_mask(x, words, scale, n, y)
        return
    grab = grab_size(n_chunks, team)
    for c in prange(n_chunks, schedule="dynamic", chunksize=grab, num_threads=team):
        start = c * chunk
        apply_mask(x + start, words + start // BLOCK, scale, min(chunk, n - start), y + start)


cdef inline void apply_mask_at(const floating *x, const uint64_t *words, Py_ssize_t bit0,
                               floating scale, Py_ssize_t n, floating *y) noexcept nogil:
    """y[e] := x[e] * (D[bit0 + e] * scale), e < n: apply_mask from an arbitrary
    bit of the mask (a row of a broadcast mask rarely starts on a word)."""
    cdef Py_ssize_t h, l, p, base, q, r
    cdef uint32_t half
    cdef Py_ssize_t n_halves = n // 32
    if bit0 % BLOCK == 0:
        apply_mask(x, words + bit0 // BLOCK, scale, n, y)
        return
    for h in range(n_halves):
        # the 32 bits from p on, taken from one word or straddling two
        p = bit0 + h * 32
        q = p >> 6
        r = p & 63
        if r <= 32:
            half = <uint32_t>(words[q] >> r)
        else:
            half = <uint32_t>((words[q] >> r) | (words[q + 1] << (64 - r)))
        base = h * 32
        for l in range(32):
            y[base + l] = x[base + l] * (scale if half & CYD_LANE_BIT[l] else 0)
    for l in range(n_halves * 32, n):
        p = bit0 + l
        y[l] = x[l] * (scale if (words[p >> 6] >> (p & 63)) & 1 else 0)


cdef inline void apply_broadcast_row(const floating *x, const uint64_t *words,
                                     const Py_ssize_t *sizes, const Py_ssize_t *x_strides,
                                     const Py_ssize_t *m_strides, int ndim, Py_ssize_t row,
                                     floating scale, floating *y) noexcept nogil:
    """Row `row` (C order over sizes[0 .. ndim-2]) of a broadcast apply:
    y[i] := x[i] * (D[m(i)] * scale) along the last axis, where m(i) is the
    mask position sum_k i_k * m_strides[k] (m_strides[k] == 0 on a broadcast
    axis). The last axis either follows the mask (m_stride 1) or is broadcast
    (m_stride 0: the whole row is scaled by one bit)."""
    cdef Py_ssize_t k, i, rest = row, x_off = 0, m_off = 0
    cdef Py_ssize_t n = sizes[ndim - 1]
    cdef floating s
    for k in range(ndim - 2, -1, -1):
        i = rest % sizes[k]
        rest = rest // sizes[k]
        x_off += i * x_strides[k]
        m_off += i * m_strides[k]
    if m_strides[ndim - 1] == 0:
        s = scale if (words[m_off >> 6] >> (m_off & 63)) & 1 else 0
        for i in range(n):
            y[x_off + i] = x[x_off + i] * s
    else:
        apply_mask_at(x + x_off, words, m_off, scale, n, y + x_off)


cdef inline void apply_broadcast_parallel(const floating *x, const uint64_t *words,
                                          const Py_ssize_t *sizes, const Py_ssize_t *x_strides,
                                          const Py_ssize_t *m_strides, int ndim,
                                          floating scale, floating *y,
                                          int n_threads) noexcept nogil:
    """y := x * D[m(.)] * scale over the collapsed shape `sizes` (see
    apply_broadcast_row), rows spread over n_threads when the array is large."""
    cdef Py_ssize_t n_rows = 1, r, k
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    for k in range(ndim - 1):
        n_rows *= sizes[k]
    # the team of the contiguous passes for an array of this size
    cdef int team = team_size((n_rows * sizes[ndim - 1] + chunk - 1) // chunk, n_threads)
    if team <= 1 or n_rows < 2:
        for r in range(n_rows):
            apply_broadcast_row(x, words, sizes, x_strides, m_strides, ndim, r, scale, y)
        return
    # each row is written by one thread and its bits depend only on position,
    # so the split over threads cannot change the result
    for r in prange(n_rows, schedule="static", num_threads=team):
        apply_broadcast_row(x, words, sizes, x_strides, m_strides, ndim, r, scale, y)
