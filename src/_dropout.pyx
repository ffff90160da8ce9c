"""Compiled entry points of the element-wise dropout kernels.

Called only from ``cydrop.ops`` after validation: arguments are 1-D
C-contiguous views of the caller's arrays, ``x`` and ``y`` of one dtype and
length ``n > 0``, ``words`` of length ``ceil(n / 64)``.
"""
from cython cimport floating
from libc.stdint cimport uint64_t

cimport dropout
from dropout cimport apply_mask_parallel, draw_and_apply_parallel
from rng cimport cyd_key_from_seed


def key_from_seed(uint64_t seed):
    """Stream key of a 64-bit seed: mix64(seed + GAMMA) (rng.h)."""
    return cyd_key_from_seed(seed)


def draw_words(uint64_t key, uint64_t block0, uint64_t threshold, uint64_t[::1] words,
               Py_ssize_t n_elements):
    """words := the packed mask of n_elements elements drawn from block block0
    (padding bits clear); words holds ceil(n_elements / 64) words."""
    if n_elements == 0:
        return
    with nogil:
        dropout.draw_words(key, block0, threshold, n_elements, &words[0])


def forward(const floating[::1] x, floating[::1] y, uint64_t[::1] words,
            uint64_t key, uint64_t block0, uint64_t threshold, double scale,
            int n_threads):
    """words := Bernoulli(threshold / 2^32) bits of blocks block0 ...;
    y := x * D * scale."""
    with nogil:
        draw_and_apply_parallel(&x[0], &y[0], &words[0], x.shape[0], key, block0,
                                threshold, <floating>scale, n_threads)


def apply(const floating[::1] x, const uint64_t[::1] words, double scale,
          floating[::1] y, int n_threads):
    """y := x * D * scale, D the packed mask ``words``."""
    with nogil:
        apply_mask_parallel(&x[0], &words[0], <floating>scale, x.shape[0], &y[0], n_threads)
