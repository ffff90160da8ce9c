# Fused parameter-update kernels (SGD, momentum, Adam, max-norm) on raw
# pointers: cimported (inlined) by _optim.pyx, behind cydrop.optim's checks,
# and by _fused_net.pyx, whose compiled training epoch updates every layer.
# No Python objects; every function is noexcept nogil. The contracts of the
# arguments are in _optim.pyx's module docstring.
#
# Adam and max-norm take n_threads: the compiled epoch runs them on the pool
# (its worker is awake from the GEMMs just before). On the calling thread
# alone a 512x512 layer's Adam step and max-norm take about 0.1 ms each
# (benchmarks/bench_optim.py), at every batch of the demo network, whose
# two-thread batch takes about 1.5 ms (cydrop bench's mlp-epoch group, an
# epoch of 40 batches).
# The items are fixed by the shapes (Adam: chunks of CHUNK elements;
# max-norm: blocks of MAX_NORM_COLUMNS columns), and neither pass mixes
# elements across items, so the result is the same bits on any thread count.
from cython cimport floating
from libc.math cimport INFINITY, fabs, pow, sqrt

from dropout cimport CHUNK, WAKE_CHUNKS, team_size
from pool cimport run_items


cdef extern from "optim.h" nogil:
    # param := param - step m / (sqrt(v) + eps_hat) after the moment updates
    # with g := grad + l2 param (one pass; the adam_kernel contract below)
    void cyd_adam_float(float *param, const float *grad, float *m, float *v, size_t n,
                        float step, float eps_hat, float b1, float c1, float b2, float c2,
                        float l2)
    void cyd_adam_double(double *param, const double *grad, double *m, double *v, size_t n,
                         double step, double eps_hat, double b1, double c1, double b2,
                         double c2, double l2)


cdef inline void sgd_kernel(floating *param, const floating *grad, Py_ssize_t n,
                     double lr, double l2) noexcept nogil:
    """param := param - lr * (grad + l2 * param)."""
    cdef floating lr_ = <floating>lr, l2_ = <floating>l2
    cdef Py_ssize_t i
    for i in range(n):
        param[i] -= lr_ * (grad[i] + l2_ * param[i])


cdef inline void momentum_kernel(floating *param, const floating *grad, floating *velocity,
                          Py_ssize_t n, double lr, double momentum,
                          double l2, bint nesterov) noexcept nogil:
    """g := grad + l2 * param; velocity := momentum * velocity - lr * g;
    param := param + velocity, or with nesterov
    param := param + momentum * velocity - lr * g (Sutskever et al. 2013's
    rewriting, as scikit-learn's SGDOptimizer)."""
    cdef floating lr_ = <floating>lr, mu = <floating>momentum, l2_ = <floating>l2
    cdef floating g, vel
    cdef Py_ssize_t i
    for i in range(n):
        # the L2 term uses param before this step's update
        g = grad[i] + l2_ * param[i]
        vel = mu * velocity[i] - lr_ * g
        velocity[i] = vel
        if nesterov:
            param[i] += mu * vel - lr_ * g
        else:
            param[i] += vel


ctypedef struct AdamJob:
    # cyd_adam_float/double's arguments, CHUNK elements an item; the scalars
    # already rounded to the arrays' type (a double holds a float exactly)
    void *param
    const void *grad
    void *m
    void *v
    Py_ssize_t n
    double step, eps_hat, b1, c1, b2, c2, l2


cdef inline void adam_body_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef AdamJob *job = <AdamJob *>ctx
    cdef Py_ssize_t start = c * CHUNK
    cyd_adam_float(<float *>job.param + start, <const float *>job.grad + start, <float *>job.m + start,
                   <float *>job.v + start, <size_t>min(<Py_ssize_t>CHUNK, job.n - start), <float>job.step,
                   <float>job.eps_hat, <float>job.b1, <float>job.c1, <float>job.b2, <float>job.c2, <float>job.l2)


cdef inline void adam_body_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef AdamJob *job = <AdamJob *>ctx
    cdef Py_ssize_t start = c * CHUNK
    cyd_adam_double(<double *>job.param + start, <const double *>job.grad + start, <double *>job.m + start,
                    <double *>job.v + start, <size_t>min(<Py_ssize_t>CHUNK, job.n - start), job.step,
                    job.eps_hat, job.b1, job.c1, job.b2, job.c2, job.l2)


cdef inline void adam_kernel(floating *param, const floating *grad, floating *m, floating *v,
                      Py_ssize_t n, long long t, double lr, double beta1, double beta2,
                      double eps, double l2, bint eps_hat, int n_threads) noexcept nogil:
    """g := grad + l2 * param; m := b1 m + (1 - b1) g; v := b2 v + (1 - b2) g^2;
    param := param - lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t) (Kingma & Ba 2015, Algorithm 1, t >= 1). With
    eps_hat, eps is the paper's section 2 epsilon hat, added to sqrt(v):
    param := param - [lr sqrt(1 - b2^t) / (1 - b1^t)] * m / (sqrt(v) + eps)
    (scikit-learn's and Keras's Adam)."""
    # Bias corrections once per call, in double, folded into the step and
    # epsilon (the paper's section 2 rewriting, exact in real arithmetic):
    #   lr * m_hat / (sqrt(v_hat) + eps)
    #     = [lr sqrt(1 - b2^t) / (1 - b1^t)] * m / (sqrt(v) + [eps sqrt(1 - b2^t)])
    # so the loop needs no per-element division by the corrections.
    cdef double bias1 = 1.0 - pow(beta1, <double>t)
    cdef double bias2 = 1.0 - pow(beta2, <double>t)
    cdef floating step = <floating>(lr * sqrt(bias2) / bias1)
    cdef floating eps_sqrt_v = <floating>(eps if eps_hat else eps * sqrt(bias2))
    cdef floating b1 = <floating>beta1, c1 = <floating>(1.0 - beta1)
    cdef floating b2 = <floating>beta2, c2 = <floating>(1.0 - beta2)
    cdef floating l2_ = <floating>l2
    cdef Py_ssize_t n_chunks = (n + CHUNK - 1) // CHUNK
    cdef int team = team_size(n_chunks, n_threads)
    cdef AdamJob job
    # the loop itself is in C for runtime CPU dispatch (optim.h says why);
    # an element's arithmetic is its own, so chunks give the whole pass's bits
    if team <= 1:
        if floating is float:
            cyd_adam_float(param, grad, m, v, n, step, eps_sqrt_v, b1, c1, b2, c2, l2_)
        else:
            cyd_adam_double(param, grad, m, v, n, step, eps_sqrt_v, b1, c1, b2, c2, l2_)
        return
    job.param, job.grad, job.m, job.v, job.n = param, grad, m, v, n
    job.step, job.eps_hat, job.b1, job.c1, job.b2, job.c2, job.l2 = step, eps_sqrt_v, b1, c1, b2, c2, l2_
    run_items(adam_body_float if floating is float else adam_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)


cdef enum:
    # max-norm's items: blocks of this many columns, each row's part of a
    # block 512 contiguous bytes of float32
    MAX_NORM_COLUMNS = 128


cdef inline double overflowed_column_scale(const floating *W, Py_ssize_t n_in, Py_ssize_t n_out,
                                          Py_ssize_t j, double c) noexcept nogil:
    """The factor of max_norm_columns for a column j whose sum of squares
    overflowed to inf: ``c / ||W[:, j]||_2`` (1 when that norm is <= c),
    the norm taken as ``a * sqrt(sum((w / a)^2))``, a = max |w|, whose
    squares stay in range. A column holding inf (a = inf) gives 0, as before."""
    cdef Py_ssize_t i
    cdef double a = 0, ratio = 0, w
    for i in range(n_in):
        a = max(a, fabs(<double>W[i * n_out + j]))
    if not a < INFINITY:
        return 0
    for i in range(n_in):
        w = W[i * n_out + j] / a
        ratio += w * w
    ratio = sqrt(ratio)   # ||W[:, j]|| / a, in [1, sqrt(n_in)]
    # norm > c, compared as ratio > c / a: a * ratio may itself pass DBL_MAX
    return (c / a) / ratio if ratio > c / a else 1


cdef inline void max_norm_columns(floating *W, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t j0,
                                  Py_ssize_t j1, double c, double *scale) noexcept nogil:
    """max_norm_kernel on columns j0 <= j < j1 of W (n_in, n_out), scale[j0:j1] its scratch."""
    cdef Py_ssize_t i, j, n_capped = 0
    cdef floating *row
    cdef floating w
    cdef double norm
    # pass 1: squared column norms, row by row so that memory is read in
    # order; accumulated in double (a float32 sum of squares loses digits
    # and overflows past 1.8e19)
    for j in range(j0, j1):
        scale[j] = 0
    for i in range(n_in):
        row = W + i * n_out
        for j in range(j0, j1):
            w = row[j]
            scale[j] += <double>w * <double>w
    for j in range(j0, j1):
        norm = sqrt(scale[j])
        if norm == INFINITY:
            # float64 weights past 1e154 overflow the squares: scale them first
            scale[j] = overflowed_column_scale(W, n_in, n_out, j, c)
            n_capped += scale[j] != 1
        elif norm > c:    # false for NaN: a NaN column is left alone
            scale[j] = c / norm
            n_capped += 1
        else:
            scale[j] = 1  # x * 1 is x exactly: uncapped columns keep their bits
    if n_capped == 0:
        return
    # pass 2: scale, row by row
    for i in range(n_in):
        row = W + i * n_out
        for j in range(j0, j1):
            row[j] = <floating>(row[j] * scale[j])


ctypedef struct MaxNormJob:
    void *W
    Py_ssize_t n_in, n_out
    double c
    double *scale


cdef inline void max_norm_block(floating *W, const MaxNormJob *job, Py_ssize_t b) noexcept nogil:
    """max_norm_columns on block b of MAX_NORM_COLUMNS columns of a MaxNormJob."""
    cdef Py_ssize_t j0 = b * MAX_NORM_COLUMNS
    max_norm_columns(W, job.n_in, job.n_out, j0, min(j0 + MAX_NORM_COLUMNS, job.n_out), job.c, job.scale)


cdef inline void max_norm_body_float(void *ctx, Py_ssize_t b) noexcept nogil:
    cdef MaxNormJob *job = <MaxNormJob *>ctx
    max_norm_block(<float *>job.W, job, b)


cdef inline void max_norm_body_double(void *ctx, Py_ssize_t b) noexcept nogil:
    cdef MaxNormJob *job = <MaxNormJob *>ctx
    max_norm_block(<double *>job.W, job, b)


cdef inline void max_norm_kernel(floating *W, Py_ssize_t n_in, Py_ssize_t n_out, double c,
                                 double *scale, int n_threads) noexcept nogil:
    """For each column j of W (n_in, n_out): if ||W[:, j]||_2 > c,
    W[:, j] := W[:, j] * c / ||W[:, j]||_2 (Srivastava et al. 2014, max-norm on
    each unit's incoming weights). scale is scratch of n_out doubles. A
    column's arithmetic is its own, so blocks of columns give the whole
    pass's bits."""
    cdef Py_ssize_t n_blocks = (n_out + MAX_NORM_COLUMNS - 1) // MAX_NORM_COLUMNS
    cdef Py_ssize_t n_chunks = (n_in * n_out + CHUNK - 1) // CHUNK
    cdef int team = <int>min(<Py_ssize_t>team_size(n_chunks, n_threads), n_blocks)
    cdef MaxNormJob job
    if team <= 1:
        max_norm_columns(W, n_in, n_out, 0, n_out, c, scale)
        return
    job.W, job.n_in, job.n_out, job.c, job.scale = W, n_in, n_out, c, scale
    run_items(max_norm_body_float if floating is float else max_norm_body_double, &job, n_blocks, team,
              n_chunks >= WAKE_CHUNKS)
