"""Fused parameter updates: SGD, classical momentum, Adam, max-norm.

``cydrop.optim`` validates every argument and words its errors (aliasing,
scalar ranges: lr > 0, 0 <= beta < 1, t >= 1, ...). Each entry point here
still checks what its nogil loop relies on: the element-wise ones take 1-D
C-contiguous views (``arr.reshape(-1)``) of arrays of one dtype (the typed
memoryviews refuse anything else, and read-only arrays where they write) and
check that every array has param's length, so no caller (the public
functions, the MLP) can make a kernel write out of bounds; ``max_norm``
takes a 2-D C-contiguous writable W (n_in, n_out).

Each element-wise kernel is one pass: every element of param (and of its
state) is read once and written once. All run on the calling thread: the
parameter arrays are small next to the GEMMs that produced their gradients,
and waking an OpenMP team would cost more than the pass.

Arithmetic is in the arrays' dtype; the scalars arrive as doubles and are
rounded to that dtype once, at the top of each kernel, after any arithmetic
on them (1 - beta, Adam's bias corrections) has been done in double.
"""
from cython cimport floating
from libc.math cimport pow, sqrt
from libc.stdlib cimport free, malloc


cdef extern from "optim.h" nogil:
    # param := param - step m / (sqrt(v) + eps_hat) after the moment updates
    # with g := grad + l2 param (one pass; the adam_kernel contract below)
    void cyd_adam_float(float *param, const float *grad, float *m, float *v, size_t n,
                        float step, float eps_hat, float b1, float c1, float b2, float c2,
                        float l2)
    void cyd_adam_double(double *param, const double *grad, double *m, double *v, size_t n,
                         double step, double eps_hat, double b1, double c1, double b2,
                         double c2, double l2)


cdef void sgd_kernel(floating *param, const floating *grad, Py_ssize_t n,
                     double lr, double l2) noexcept nogil:
    """param := param - lr * (grad + l2 * param)."""
    cdef floating lr_ = <floating>lr, l2_ = <floating>l2
    cdef Py_ssize_t i
    for i in range(n):
        param[i] -= lr_ * (grad[i] + l2_ * param[i])


cdef void momentum_kernel(floating *param, const floating *grad, floating *velocity,
                          Py_ssize_t n, double lr, double momentum,
                          double l2) noexcept nogil:
    """velocity := momentum * velocity - lr * (grad + l2 * param);
    param := param + velocity."""
    cdef floating lr_ = <floating>lr, mu = <floating>momentum, l2_ = <floating>l2
    cdef floating vel
    cdef Py_ssize_t i
    for i in range(n):
        # the L2 term uses param before this step's update
        vel = mu * velocity[i] - lr_ * (grad[i] + l2_ * param[i])
        velocity[i] = vel
        param[i] += vel


cdef void adam_kernel(floating *param, const floating *grad, floating *m, floating *v,
                      Py_ssize_t n, long long t, double lr, double beta1, double beta2,
                      double eps, double l2) noexcept nogil:
    """g := grad + l2 * param; m := b1 m + (1 - b1) g; v := b2 v + (1 - b2) g^2;
    param := param - lr * m_hat / (sqrt(v_hat) + eps), m_hat = m / (1 - b1^t),
    v_hat = v / (1 - b2^t) (Kingma & Ba 2015, Algorithm 1, t >= 1)."""
    # Bias corrections once per call, in double, folded into the step and
    # epsilon (the paper's section 2 rewriting, exact in real arithmetic):
    #   lr * m_hat / (sqrt(v_hat) + eps)
    #     = [lr sqrt(1 - b2^t) / (1 - b1^t)] * m / (sqrt(v) + [eps sqrt(1 - b2^t)])
    # so the loop needs no per-element division by the corrections.
    cdef double bias1 = 1.0 - pow(beta1, <double>t)
    cdef double bias2 = 1.0 - pow(beta2, <double>t)
    cdef floating step = <floating>(lr * sqrt(bias2) / bias1)
    cdef floating eps_hat = <floating>(eps * sqrt(bias2))
    cdef floating b1 = <floating>beta1, c1 = <floating>(1.0 - beta1)
    cdef floating b2 = <floating>beta2, c2 = <floating>(1.0 - beta2)
    cdef floating l2_ = <floating>l2
    # the loop itself is in C for runtime CPU dispatch (optim.h says why)
    if floating is float:
        cyd_adam_float(param, grad, m, v, n, step, eps_hat, b1, c1, b2, c2, l2_)
    else:
        cyd_adam_double(param, grad, m, v, n, step, eps_hat, b1, c1, b2, c2, l2_)


cdef void max_norm_kernel(floating *W, Py_ssize_t n_in, Py_ssize_t n_out, double c,
                          double *scale) noexcept nogil:
    """For each column j of W (n_in, n_out): if ||W[:, j]||_2 > c,
    W[:, j] := W[:, j] * c / ||W[:, j]||_2 (Srivastava et al. 2014, max-norm on
    each unit's incoming weights). scale is scratch of n_out doubles."""
    cdef Py_ssize_t i, j, n_capped = 0
    cdef floating *row
    cdef floating w
    cdef double norm
    # pass 1: squared column norms, row by row so that memory is read in
    # order; accumulated in double (a float32 sum of squares loses digits
    # and overflows past 1.8e19)
    for j in range(n_out):
        scale[j] = 0
    for i in range(n_in):
        row = W + i * n_out
        for j in range(n_out):
            w = row[j]
            scale[j] += <double>w * <double>w
    for j in range(n_out):
        norm = sqrt(scale[j])
        if norm > c:      # false for NaN: a NaN column is left alone
            scale[j] = c / norm
            n_capped += 1
        else:
            scale[j] = 1  # x * 1 is x exactly: uncapped columns keep their bits
    if n_capped == 0:
        return
    # pass 2: scale, row by row
    for i in range(n_in):
        row = W + i * n_out
        for j in range(n_out):
            row[j] = <floating>(row[j] * scale[j])


cdef int check_length(Py_ssize_t n, Py_ssize_t n_param, str name) except -1:
    if n != n_param:
        raise ValueError(f"{name} has {n} elements, param has {n_param}")
    return 0


def sgd(floating[::1] param, const floating[::1] grad, double lr, double l2):
    """param := param - lr * (grad + l2 * param)."""
    check_length(grad.shape[0], param.shape[0], "grad")
    if param.shape[0] == 0:
        return
    with nogil:
        sgd_kernel(&param[0], &grad[0], param.shape[0], lr, l2)


def momentum(floating[::1] param, const floating[::1] grad, floating[::1] velocity,
             double lr, double momentum, double l2):
    """velocity := momentum * velocity - lr * (grad + l2 * param); param += velocity."""
    check_length(grad.shape[0], param.shape[0], "grad")
    check_length(velocity.shape[0], param.shape[0], "velocity")
    if param.shape[0] == 0:
        return
    with nogil:
        momentum_kernel(&param[0], &grad[0], &velocity[0], param.shape[0], lr, momentum, l2)


def adam(floating[::1] param, const floating[::1] grad, floating[::1] m, floating[::1] v,
         long long t, double lr, double beta1, double beta2, double eps, double l2):
    """One bias-corrected Adam step t >= 1 on param, m and v (see adam_kernel)."""
    check_length(grad.shape[0], param.shape[0], "grad")
    check_length(m.shape[0], param.shape[0], "m")
    check_length(v.shape[0], param.shape[0], "v")
    if param.shape[0] == 0:
        return
    with nogil:
        adam_kernel(&param[0], &grad[0], &m[0], &v[0], param.shape[0], t, lr,
                    beta1, beta2, eps, l2)


def max_norm(floating[:, ::1] W, double max_norm):
    """Columns of W (n_in, n_out) with L2 norm > max_norm scaled to max_norm."""
    cdef Py_ssize_t n_in = W.shape[0], n_out = W.shape[1]
    cdef double *scale
    if n_in == 0 or n_out == 0:
        return
    scale = <double *>malloc(n_out * sizeof(double))
    if scale == NULL:
        raise MemoryError(f"max_norm: cannot allocate {n_out} doubles of scratch")
    try:
        with nogil:
            max_norm_kernel(&W[0, 0], n_in, n_out, max_norm, scale)
    finally:
        free(scale)
