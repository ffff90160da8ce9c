"""Compiled entry points of the element-wise dropout kernels.

Called only from ``cydrop.ops`` after validation: arguments are 1-D
C-contiguous views of the caller's arrays, ``x`` and ``y`` of one dtype and
length ``n > 0``, ``words`` of length ``ceil(n / 64)``.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint64_t

from dropout cimport BLOCK, CHUNK_BLOCKS, apply_mask, draw_and_apply
from rng cimport cyd_key_from_seed, cyd_bernoulli_words


def key_from_seed(uint64_t seed):
    """Stream key of a 64-bit seed: mix64(seed + GAMMA) (rng.h)."""
    return cyd_key_from_seed(seed)


def bernoulli_words(uint64_t key, uint64_t block0, uint64_t threshold, uint64_t[::1] words):
    """words[i] := Bernoulli(threshold / 2^32) bits of block block0 + i."""
    if words.shape[0] == 0:
        return
    with nogil:
        cyd_bernoulli_words(key, block0, threshold, words.shape[0], &words[0])


def forward(const floating[::1] x, floating[::1] y, uint64_t[::1] words,
            uint64_t key, uint64_t block0, uint64_t threshold, double scale,
            int n_threads):
    """words := Bernoulli(threshold / 2^32) bits of blocks block0 ...;
    y := x * D * scale."""
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c
    cdef floating s = <floating>scale
    with nogil:
        if n_threads <= 1 or n_chunks == 1:
            draw_and_apply(&x[0], &y[0], &words[0], 0, n, key, block0, threshold, s)
        else:
            # the bits of a block depend only on its position, so how the
            # chunks are split over threads cannot change the result. Dynamic
            # scheduling: a thread the OS preempts holds up at most one grab
            # of 16 chunks (64k elements) instead of half the array.
            for c in prange(n_chunks, schedule="dynamic", chunksize=16, num_threads=n_threads):
                draw_and_apply(&x[0], &y[0], &words[0], c * chunk,
                               min(chunk, n - c * chunk), key, block0, threshold, s)


def apply(const floating[::1] x, const uint64_t[::1] words, double scale,
          floating[::1] y, int n_threads):
    """y := x * D * scale, D the packed mask ``words``."""
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t chunk = BLOCK * CHUNK_BLOCKS
    cdef Py_ssize_t n_chunks = (n + chunk - 1) // chunk
    cdef Py_ssize_t c, start
    cdef floating s = <floating>scale
    with nogil:
        if n_threads <= 1 or n_chunks == 1:
            apply_mask(&x[0], &words[0], s, n, &y[0])
        else:
            for c in prange(n_chunks, schedule="dynamic", chunksize=16, num_threads=n_threads):
                start = c * chunk
                apply_mask(&x[start], &words[start // BLOCK], s,
                           min(chunk, n - start), &y[start])
