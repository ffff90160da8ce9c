"""Compiled entry points of the concrete dropout kernels (concrete.pxd).

``cydrop.concrete`` validates every argument and words its errors; each
entry point here still checks what its nogil code relies on, so that no
caller (the NumPy API, the PyTorch ops) can make a kernel read or write out
of bounds or compute with scalars that break its arithmetic: the arrays'
types, contiguity, sizes and writability; ``run`` dividing the size;
``p_logit`` finite, with ``1 / (1 - p) = 1 + exp(p_logit)`` finite in the
arrays' type; ``temperature`` positive with ``1 / temperature`` finite in
that type; the generator blocks of the pass below 2^59.

The arrays are C-contiguous NumPy arrays of any shape (cydrop.torch passes
its tensors' views as they are), checked through NumPy's C API. ``run`` is
the number of consecutive elements that share one noise value: 1 for
element-wise concrete dropout, prod(shape[2:]) for whole channels of an
(N, C, ...) array. A pass over n elements draws n / run noise values from
blocks block0 .. block0 + ceil(n / run / 64) - 1.
"""
cimport numpy as cnp
from libc.math cimport isfinite
from libc.stdint cimport uint32_t, uint64_t

from arrays cimport array_data, empty_like, float_type, out_data, size
from concrete cimport (CONCRETE_BAD_P_LOGIT, CONCRETE_BAD_TEMPERATURE, concrete_backward, concrete_backward_runs,
                       concrete_forward, concrete_forward_runs, concrete_noise, concrete_setup, cyd_concrete,
                       cyd_concrete_noise_of_uniforms_double, cyd_concrete_noise_of_uniforms_float)
from pool cimport load_pool

cnp.import_array()
load_pool()

# Block counters stay below 2^59 so that stream word indices (block * 32 + j)
# never wrap around 2^64 (as cydrop.Generator's).
cdef uint64_t MAX_BLOCKS = (<uint64_t>1) << 59


cdef object empty_1d(Py_ssize_t n, int typenum):
    cdef cnp.npy_intp dim = n
    return cnp.PyArray_EMPTY(1, &dim, typenum, 0)


cdef int setup(cyd_concrete *c, uint64_t key, uint64_t block0, double p_logit, double temperature,
               Py_ssize_t n_noise, int typenum) except -1:
    """c := the scalars of a pass of n_noise noise values over arrays of
    type typenum, after checking that its arithmetic holds there."""
    cdef str type_name = "float32" if typenum == cnp.NPY_FLOAT32 else "float64"
    cdef int status = concrete_setup(c, key, p_logit, temperature, typenum == cnp.NPY_FLOAT32)
    if status == CONCRETE_BAD_TEMPERATURE:
        if isfinite(temperature) and temperature > 0:
            raise ValueError(f"temperature={temperature!r} is too small for {type_name}: 1 / temperature overflows")
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if status == CONCRETE_BAD_P_LOGIT:
        if isfinite(p_logit):
            raise ValueError(f"p_logit={p_logit!r} is too large for {type_name}: "
                             f"1 / (1 - p) = 1 + exp(p_logit) overflows")
        raise ValueError(f"p_logit must be finite, got {p_logit!r}")
    if block0 > MAX_BLOCKS - <uint64_t>((n_noise + 63) // 64):
        raise ValueError(f"block0={block0} leaves no room for {n_noise} noise values below block 2^59")
    return 0


cdef Py_ssize_t check_run(Py_ssize_t n, Py_ssize_t run) except -1:
    """The number of noise values, n / run, after checking run."""
    if run < 1 or n % run:
        raise ValueError(f"run must be >= 1 and divide the {n} elements, got {run}")
    return n // run


def forward(x, y, uint64_t key, uint64_t block0, double p_logit, double temperature,
            Py_ssize_t run, int n_threads):
    """y := x * (w * scale), one noise value per run of ``run`` elements;
    returns y. x: a C-contiguous float32/float64 array of any shape; y of
    its dtype and size (may be x), or None to make one of x's shape."""
    cdef int t = float_type(x, "x")
    cdef Py_ssize_t n = size(x)
    cdef Py_ssize_t n_noise = check_run(n, run)
    cdef cyd_concrete c
    setup(&c, key, block0, p_logit, temperature, n_noise, t)
    if y is None:
        y = empty_like(x)
    cdef const void *x_data = array_data(x, "x", t, False)
    cdef void *y_data = out_data(y, "y", t, n)
    cdef object w = None
    cdef void *w_data = NULL
    if run > 1 and n:
        w = empty_1d(n_noise, t)
        w_data = cnp.PyArray_DATA(<cnp.ndarray>w)
    if n:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                if run == 1:
                    concrete_forward(&c, block0, n, <const float *>x_data, <float *>y_data, n_threads)
                else:
                    concrete_forward_runs(&c, block0, n_noise, run, <const float *>x_data, <float *>y_data,
                                          <float *>w_data, n_threads)
            else:
                if run == 1:
                    concrete_forward(&c, block0, n, <const double *>x_data, <double *>y_data, n_threads)
                else:
                    concrete_forward_runs(&c, block0, n_noise, run, <const double *>x_data, <double *>y_data,
                                          <double *>w_data, n_threads)
    return y


def backward(dy, x, dx, y, uint64_t key, uint64_t block0, double p_logit, double temperature,
             Py_ssize_t run, bint need_dx, bint need_y, int n_threads):
    """(dx, y, grad_p_logit) of the pass ``forward`` made with these
    arguments, for the output gradient dy (x's dtype and size):
    dx := dy * (w * scale) if need_dx (into dx, which may be dy, or a new
    array of dy's shape when None), y := the forward output again if need_y
    (into y, which may be x, or a new array), and
    grad_p_logit = sum dy * y * (p - z / t), a float. An output not asked
    for is None."""
    cdef int t = float_type(x, "x")
    cdef Py_ssize_t n = size(x)
    cdef Py_ssize_t n_noise = check_run(n, run)
    cdef cyd_concrete c
    cdef double grad = 0.0
    cdef int status = 0
    setup(&c, key, block0, p_logit, temperature, n_noise, t)
    cdef const void *dy_data = array_data(dy, "dy", t, False)
    cdef const void *x_data = array_data(x, "x", t, False)
    if size(dy) != n:
        raise ValueError(f"dy has {size(dy)} elements, x has {n}")
    cdef void *dx_data = NULL
    cdef void *y_data = NULL
    if need_dx:
        if dx is None:
            dx = empty_like(dy)
        dx_data = out_data(dx, "dx", t, n)
    else:
        dx = None
    if need_y:
        if y is None:
            y = empty_like(x)
        y_data = out_data(y, "y", t, n)
    else:
        y = None
    cdef object w = None, z = None, h = None
    cdef void *w_data = NULL
    cdef void *z_data = NULL
    cdef double *h_data = NULL
    if run > 1 and n:
        w, z, h = empty_1d(n_noise, t), empty_1d(n_noise, t), empty_1d(n_noise, cnp.NPY_FLOAT64)
        w_data = cnp.PyArray_DATA(<cnp.ndarray>w)
        z_data = cnp.PyArray_DATA(<cnp.ndarray>z)
        h_data = <double *>cnp.PyArray_DATA(<cnp.ndarray>h)
    if n:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                if run == 1:
                    status = concrete_backward(&c, block0, n, <const float *>dy_data, <const float *>x_data,
                                               <float *>dx_data, <float *>y_data, &grad, n_threads)
                else:
                    concrete_backward_runs(&c, block0, n_noise, run, <const float *>dy_data,
                                           <const float *>x_data, <float *>dx_data, <float *>y_data,
                                           <float *>w_data, <float *>z_data, h_data, &grad, n_threads)
            else:
                if run == 1:
                    status = concrete_backward(&c, block0, n, <const double *>dy_data, <const double *>x_data,
                                               <double *>dx_data, <double *>y_data, &grad, n_threads)
                else:
                    concrete_backward_runs(&c, block0, n_noise, run, <const double *>dy_data,
                                           <const double *>x_data, <double *>dx_data, <double *>y_data,
                                           <double *>w_data, <double *>z_data, h_data, &grad, n_threads)
        if status:
            raise MemoryError("concrete dropout backward: cannot allocate its partial sums")
    return dx, y, grad


def noise(uint64_t key, uint64_t block0, Py_ssize_t n, double p_logit, double temperature, dtype):
    """(w, z): 1 - z and the relaxed drop indicator z of n noise values from
    block block0, as 1-D arrays of dtype float32 or float64: the values a
    pass draws (for tests and inspection)."""
    cdef int t = cnp.NPY_FLOAT32 if dtype == "float32" else (cnp.NPY_FLOAT64 if dtype == "float64" else -1)
    if t < 0:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cdef cyd_concrete c
    setup(&c, key, block0, p_logit, temperature, n, t)
    w, z = empty_1d(n, t), empty_1d(n, t)
    cdef void *w_data = cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef void *z_data = cnp.PyArray_DATA(<cnp.ndarray>z)
    if n:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                concrete_noise(&c, block0, n, <float *>w_data, <float *>z_data)
            else:
                concrete_noise(&c, block0, n, <double *>w_data, <double *>z_data)
    return w, z


def noise_of_uniforms(U, double p_logit, double temperature, dtype):
    """(w, z) of the given 32-bit uniforms U (a C-contiguous uint32 array),
    computed as the passes compute them from the generator's: for tests of
    U's extremes (0, 2^31 - 1, 2^31, 2^32 - 1), which no test can draw."""
    cdef int t = cnp.NPY_FLOAT32 if dtype == "float32" else (cnp.NPY_FLOAT64 if dtype == "float64" else -1)
    if t < 0:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    cdef const uint32_t *u = <const uint32_t *>array_data(U, "U", cnp.NPY_UINT32, False)
    cdef Py_ssize_t n = size(U)
    cdef cyd_concrete c
    setup(&c, 0, 0, p_logit, temperature, 0, t)
    w, z = empty_1d(n, t), empty_1d(n, t)
    cdef void *w_data = cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef void *z_data = cnp.PyArray_DATA(<cnp.ndarray>z)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            cyd_concrete_noise_of_uniforms_float(&c, u, n, <float *>w_data, <float *>z_data)
        else:
            cyd_concrete_noise_of_uniforms_double(&c, u, n, <double *>w_data, <double *>z_data)
    return w, z


def scalars(double p_logit, double temperature, dtype="float64"):
    """(p, scale, inv_temperature) of a pass over arrays of ``dtype``
    ('float32' or 'float64'), in double, as the kernels form them:
    p = sigmoid(p_logit), scale = 1 / (1 - p), from concrete.h's own exp.
    ValueError where the kernels would refuse these scalars."""
    cdef int t = cnp.NPY_FLOAT32 if dtype == "float32" else (cnp.NPY_FLOAT64 if dtype == "float64" else -1)
    if t < 0:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    cdef cyd_concrete c
    setup(&c, 0, 0, p_logit, temperature, 0, t)
    return c.p, c.scale, c.inv_temperature
