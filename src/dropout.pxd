# Element-wise dropout kernels on packed masks: cimported (inlined) by
# _dropout.pyx and _dense.pyx. No Python objects; every function is
# noexcept nogil and works on raw pointers already validated by the caller.
#
# Mask layout (see rng.h): element e is bit (e % 64) of words[e // 64].
#
# Parallel passes run on cydrop's pool (pool.pxd): a pass is cut into items
# (CHUNK elements, or rows of a broadcast apply), each done by a body that
# a *Job struct describes, one body per dtype calling the fused kernel.
from cython cimport floating
from libc.stdint cimport uint32_t, uint64_t

from pool cimport run_items
from rng cimport CYD_LANE_BIT, cyd_bernoulli_words

# Elements per chunk of parallel work: 64 blocks = 4096 elements (16 KiB of
# float32), so the chunk just drawn is still in L1/L2 when it is applied; a
# thread claims one chunk at a time, so a worker the scheduler takes off its
# core holds up at most one chunk.
cdef enum:
    BLOCK = 64
    CHUNK_BLOCKS = 64
    CHUNK = BLOCK * CHUNK_BLOCKS
    # Arrays of at most this many chunks (32k elements, torch's own grain
    # size for element-wise ops) run on the calling thread: waking threads
    # would cost more than the work. Above it a second thread pays for
    # itself (benchmarks/bench_dropout.py, forward-threads groups).
    SERIAL_CHUNKS = 8
    # Passes of fewer chunks (256k elements, about a tenth of a millisecond
    # on one thread) take only pool workers that are awake (pool.pxd).
    WAKE_CHUNKS = 64


cdef inline int team_size(Py_ssize_t n_chunks, int n_threads) noexcept nogil:
    """Threads for a pass over n_chunks chunks: at most one per SERIAL_CHUNKS
    chunks (torch's rule, one thread per grain) and at most n_threads; 1 or
    less means the calling thread."""
    return <int>min(<Py_ssize_t>n_threads, (n_chunks + SERIAL_CHUNKS - 1) // SERIAL_CHUNKS)


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


ctypedef struct DrawJob:
    # draw_and_apply over all n elements, CHUNK at a time
    const void *x
    void *y
    uint64_t *words
    Py_ssize_t n
    uint64_t key, block0, threshold
    double scale


cdef inline void draw_chunk(const floating *x, floating *y, const DrawJob *job,
                            Py_ssize_t c) noexcept nogil:
    """draw_and_apply on chunk c of a DrawJob."""
    cdef Py_ssize_t start = c * CHUNK
    draw_and_apply(x, y, job.words, start, min(<Py_ssize_t>CHUNK, job.n - start),
                   job.key, job.block0, job.threshold, <floating>job.scale)


cdef inline void draw_body_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef DrawJob *job = <DrawJob *>ctx
    draw_chunk(<const float *>job.x, <float *>job.y, job, c)


cdef inline void draw_body_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef DrawJob *job = <DrawJob *>ctx
    draw_chunk(<const double *>job.x, <double *>job.y, job, c)


cdef inline void draw_and_apply_parallel(const floating *x, floating *y, uint64_t *words,
                                         Py_ssize_t n, uint64_t key, uint64_t block0,
                                         uint64_t threshold, floating scale,
                                         int n_threads) noexcept nogil:
    """words := Bernoulli bits of blocks block0 ...; y := x * D * scale, for
    all n elements, in chunks over n_threads."""
    cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
    cdef int team = team_size(n_chunks, n_threads)
    cdef DrawJob job
    if team <= 1:
        draw_and_apply(x, y, words, 0, n, key, block0, threshold, scale)
        return
    # The bits of a block depend only on its position, so which thread draws
    # which chunk cannot change the result.
    job.x, job.y, job.words, job.n = x, y, words, n
    job.key, job.block0, job.threshold, job.scale = key, block0, threshold, scale
    run_items(draw_body_float if floating is float else draw_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)


ctypedef struct ApplyJob:
    # apply_mask over all n elements, CHUNK at a time
    const void *x
    const uint64_t *words
    void *y
    Py_ssize_t n
    double scale


cdef inline void apply_chunk(const floating *x, floating *y, const ApplyJob *job,
                             Py_ssize_t c) noexcept nogil:
    """apply_mask on chunk c of an ApplyJob."""
    cdef Py_ssize_t start = c * CHUNK
    apply_mask(x + start, job.words + start // BLOCK, <floating>job.scale,
               min(<Py_ssize_t>CHUNK, job.n - start), y + start)


cdef inline void apply_body_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef ApplyJob *job = <ApplyJob *>ctx
    apply_chunk(<const float *>job.x, <float *>job.y, job, c)


cdef inline void apply_body_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef ApplyJob *job = <ApplyJob *>ctx
    apply_chunk(<const double *>job.x, <double *>job.y, job, c)


cdef inline void apply_mask_parallel(const floating *x, const uint64_t *words, floating scale,
                                     Py_ssize_t n, floating *y, int n_threads) noexcept nogil:
    """y := x * D * scale for all n elements, in chunks over n_threads."""
    cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
    cdef int team = team_size(n_chunks, n_threads)
    cdef ApplyJob job
    if team <= 1:
        apply_mask(x, words, scale, n, y)
        return
    job.x, job.words, job.y, job.n, job.scale = x, words, y, n, scale
    run_items(apply_body_float if floating is float else apply_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)


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


ctypedef struct BroadcastJob:
    # apply_broadcast_row over n_rows rows, rows_per_item at a time
    const void *x
    void *y
    const uint64_t *words
    const Py_ssize_t *sizes
    const Py_ssize_t *x_strides
    const Py_ssize_t *m_strides
    int ndim
    double scale
    Py_ssize_t n_rows, rows_per_item


cdef inline void broadcast_rows(const floating *x, floating *y, const BroadcastJob *job,
                                Py_ssize_t item) noexcept nogil:
    """apply_broadcast_row on the rows of item `item` of a BroadcastJob."""
    cdef Py_ssize_t r
    for r in range(item * job.rows_per_item, min((item + 1) * job.rows_per_item, job.n_rows)):
        apply_broadcast_row(x, job.words, job.sizes, job.x_strides, job.m_strides, job.ndim, r,
                            <floating>job.scale, y)


cdef inline void broadcast_body_float(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef BroadcastJob *job = <BroadcastJob *>ctx
    broadcast_rows(<const float *>job.x, <float *>job.y, job, item)


cdef inline void broadcast_body_double(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef BroadcastJob *job = <BroadcastJob *>ctx
    broadcast_rows(<const double *>job.x, <double *>job.y, job, item)


cdef inline void apply_broadcast_parallel(const floating *x, const uint64_t *words,
                                          const Py_ssize_t *sizes, const Py_ssize_t *x_strides,
                                          const Py_ssize_t *m_strides, int ndim,
                                          floating scale, floating *y,
                                          int n_threads) noexcept nogil:
    """y := x * D[m(.)] * scale over the collapsed shape `sizes` (see
    apply_broadcast_row), rows spread over n_threads when the array is large."""
    cdef Py_ssize_t n_rows = 1, r, k
    cdef Py_ssize_t row = sizes[ndim - 1]
    cdef BroadcastJob job
    for k in range(ndim - 1):
        n_rows *= sizes[k]
    # the team of the contiguous passes for an array of this size
    cdef int team = team_size((n_rows * row + CHUNK - 1) // CHUNK, n_threads)
    if team <= 1 or n_rows < 2:
        for r in range(n_rows):
            apply_broadcast_row(x, words, sizes, x_strides, m_strides, ndim, r, scale, y)
        return
    # each row is written by one thread and its bits depend only on position,
    # so the split over threads cannot change the result; an item is about a
    # chunk's worth of whole rows
    job.x, job.y, job.words, job.ndim, job.scale = x, y, words, ndim, scale
    job.sizes, job.x_strides, job.m_strides = sizes, x_strides, m_strides
    job.n_rows, job.rows_per_item = n_rows, max(1, CHUNK // max(row, 1))
    run_items(broadcast_body_float if floating is float else broadcast_body_double, &job,
              (n_rows + job.rows_per_item - 1) // job.rows_per_item, team,
              n_rows * row >= WAKE_CHUNKS * CHUNK)
