"""Compiled entry points of the element-wise dropout kernels.

``cydrop.ops`` validates every argument and words its errors; each entry
point here still checks the O(1) facts its nogil code relies on (the lengths
of every buffer it touches), so that no caller (the NumPy API, the MLP, the
PyTorch ops) can make a kernel read or write out of bounds. ``words`` is a
packed mask, element e at bit e % 64 of word e // 64.

``forward`` and ``apply`` are called once per layer and training step by
``cydrop.torch``, where every Python-level operation costs several times
more between the GEMMs than alone: they take C-contiguous NumPy arrays of
any shape, check them through the C API instead of acquiring typed
memoryviews, and make their outputs when given None (no ``ravel``,
``empty_like`` or ``empty`` calls in the caller). The other entry points take
1-D C-contiguous views.
"""
cimport numpy as cnp
from cython cimport floating
from libc.stdint cimport uint64_t

cimport dropout
from arrays cimport array_data, empty_like, float_type, size
from dropout cimport apply_broadcast_parallel, apply_mask_parallel, draw_and_apply_parallel
from pool cimport load_pool
from rng cimport cyd_key_from_seed, n_words

cnp.import_array()
load_pool()

# NumPy's limit on dimensions: the collapsed shape of a broadcast apply fits.
cdef enum:
    MAX_DIMS = 64

# Passes over more elements than this may run on several threads (dropout.pxd
# team_size; the concrete passes share the rule): for Python callers that
# choose a route only for calls that have one to choose.
PARALLEL_ELEMENTS = dropout.SERIAL_CHUNKS * dropout.CHUNK


cdef int check_lengths(Py_ssize_t n_x, Py_ssize_t n_y, Py_ssize_t n_words_given,
                       Py_ssize_t n_mask) except -1:
    """y as long as x; words long enough for a mask of n_mask elements."""
    if n_y != n_x:
        raise ValueError(f"y has {n_y} elements, x has {n_x}")
    if n_words_given < n_words(n_mask):
        raise ValueError(f"words has {n_words_given} words, a mask of {n_mask} elements needs {n_words(n_mask)}")
    return 0


def key_from_seed(uint64_t seed):
    """Stream key of a 64-bit seed: mix64(seed + GAMMA) (rng.h)."""
    return cyd_key_from_seed(seed)


def draw_words(uint64_t key, uint64_t block0, uint64_t threshold, uint64_t[::1] words,
               Py_ssize_t n_elements):
    """words := the packed mask of n_elements elements drawn from block block0
    (padding bits clear); words holds ceil(n_elements / 64) words."""
    if n_elements < 0:
        raise ValueError(f"n_elements must be >= 0, got {n_elements}")
    check_lengths(0, 0, words.shape[0], n_elements)
    if n_elements == 0:
        return
    with nogil:
        dropout.draw_words(key, block0, threshold, n_elements, &words[0])


def forward(x, y, words, uint64_t key, uint64_t block0, uint64_t threshold, double scale,
            int n_threads):
    """(y, words): words := Bernoulli(threshold / 2^32) bits of blocks block0
    ...; y := x * D * scale. x: a C-contiguous float32/float64 array of any
    shape. y (x's dtype and size) and words (uint64, at least ceil(x.size / 64))
    are written, or made when None (y of x's shape)."""
    cdef int t = float_type(x, "x")
    cdef Py_ssize_t n = size(x)
    cdef cnp.npy_intp n_w = n_words(n)
    if y is None:
        y = empty_like(x)
    if words is None:
        words = cnp.PyArray_EMPTY(1, &n_w, cnp.NPY_UINT64, 0)
    cdef const void *x_data = array_data(x, "x", t, False)
    cdef void *y_data = array_data(y, "y", t, True)
    cdef uint64_t *w = <uint64_t *>array_data(words, "words", cnp.NPY_UINT64, True)
    check_lengths(n, size(y), size(words), n)
    if n:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                draw_and_apply_parallel(<const float *>x_data, <float *>y_data, w, n, key, block0,
                                        threshold, <float>scale, n_threads)
            else:
                draw_and_apply_parallel(<const double *>x_data, <double *>y_data, w, n, key, block0,
                                        threshold, scale, n_threads)
    return y, words


def apply(x, words, double scale, y, int n_threads):
    """y := x * D * scale, D the packed mask ``words``; returns y. Arrays as
    in ``forward`` (y made when None)."""
    cdef int t = float_type(x, "x")
    cdef Py_ssize_t n = size(x)
    if y is None:
        y = empty_like(x)
    cdef const void *x_data = array_data(x, "x", t, False)
    cdef void *y_data = array_data(y, "y", t, True)
    cdef const uint64_t *w = <uint64_t *>array_data(words, "words", cnp.NPY_UINT64, False)
    check_lengths(n, size(y), size(words), n)
    if n:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                apply_mask_parallel(<const float *>x_data, w, <float>scale, n, <float *>y_data, n_threads)
            else:
                apply_mask_parallel(<const double *>x_data, w, scale, n, <double *>y_data, n_threads)
    return y


def apply_broadcast(const floating[::1] x, const uint64_t[::1] words, tuple shape,
                    tuple mask_shape, double scale, floating[::1] y, int n_threads):
    """y := x * D * scale where x has C-order shape ``shape`` and the mask D
    has ``mask_shape``, broadcast over the axes where mask_shape is 1 (Keras's
    noise_shape): element i of x uses mask bit m(i), its index with the
    broadcast axes set to 0."""
    cdef Py_ssize_t sizes[MAX_DIMS]
    cdef Py_ssize_t x_strides[MAX_DIMS]
    cdef Py_ssize_t m_strides[MAX_DIMS]
    cdef bint broadcast[MAX_DIMS]   # axis k of the collapsed shape is broadcast
    cdef Py_ssize_t n_x = 1, n_mask = 1, x_stride = 1, m_stride = 1
    cdef int ndim = 0, k
    if len(shape) != len(mask_shape) or len(shape) > MAX_DIMS:
        raise ValueError(f"mask_shape {mask_shape} must have the {len(shape)} dimensions of shape {shape}")
    # Collapse runs of axes of one kind (following the mask, or broadcast)
    # into one axis each; axes of size 1 belong to neither. What remains
    # alternates kinds, so the last axis is a long contiguous run.
    for d, m in zip(shape, mask_shape):
        if d < 0 or m not in (1, d):
            raise ValueError(f"mask_shape {mask_shape} must equal shape {shape} or be 1 on each axis")
        n_x *= d
        n_mask *= m
        if d == 1:
            continue
        if ndim and broadcast[ndim - 1] == (m == 1):
            sizes[ndim - 1] *= d
        else:
            broadcast[ndim] = m == 1
            sizes[ndim] = d
            ndim += 1
    check_lengths(x.shape[0], y.shape[0], words.shape[0], n_mask)
    if x.shape[0] != n_x:
        raise ValueError(f"x has {x.shape[0]} elements, shape {shape} has {n_x}")
    if n_x == 0:
        return
    if ndim == 0:
        sizes[0], broadcast[0], ndim = 1, False, 1
    for k in range(ndim - 1, -1, -1):
        x_strides[k] = x_stride
        x_stride *= sizes[k]
        if broadcast[k]:
            m_strides[k] = 0
        else:
            m_strides[k] = m_stride
            m_stride *= sizes[k]
    with nogil:
        apply_broadcast_parallel(&x[0], &words[0], sizes, x_strides, m_strides, ndim,
                                 <floating>scale, &y[0], n_threads)
