"""Fused parameter updates: SGD, classical and Nesterov momentum, Adam, max-norm.

``cydrop.optim`` validates every argument and words its errors (aliasing,
scalar ranges: lr > 0, 0 <= beta < 1, t >= 1, ...). Each entry point here
still checks what its nogil loop relies on: the element-wise ones take 1-D
C-contiguous views (``arr.reshape(-1)``) of arrays of one dtype (the typed
memoryviews refuse anything else, and read-only arrays where they write) and
check that every array has param's length, so no caller (the public
functions, the MLP) can make a kernel write out of bounds; ``max_norm``
takes a 2-D C-contiguous writable W (n_in, n_out).

Each element-wise kernel is one pass: every element of param (and of its
state) is read once and written once. Called from here, all run on the
calling thread: a lone update is short next to waking a thread. The
compiled MLP epoch runs Adam and max-norm on the pool, whose worker its
GEMMs have just woken (optim.pxd).

Arithmetic is in the arrays' dtype; the scalars arrive as doubles and are
rounded to that dtype once, at the top of each kernel, after any arithmetic
on them (1 - beta, Adam's bias corrections) has been done in double.
"""
from cython cimport floating
from libc.stdlib cimport free, malloc

from optim cimport adam_kernel, max_norm_kernel, momentum_kernel, sgd_kernel


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
             double lr, double momentum, double l2, bint nesterov=False):
    """velocity := momentum * velocity - lr * (grad + l2 * param); param += velocity
    (with nesterov: param += momentum * velocity - lr * (grad + l2 * param))."""
    check_length(grad.shape[0], param.shape[0], "grad")
    check_length(velocity.shape[0], param.shape[0], "velocity")
    if param.shape[0] == 0:
        return
    with nogil:
        momentum_kernel(&param[0], &grad[0], &velocity[0], param.shape[0], lr, momentum, l2, nesterov)


def adam(floating[::1] param, const floating[::1] grad, floating[::1] m, floating[::1] v,
         long long t, double lr, double beta1, double beta2, double eps, double l2, bint eps_hat=False):
    """One bias-corrected Adam step t >= 1 on param, m and v (see adam_kernel)."""
    check_length(grad.shape[0], param.shape[0], "grad")
    check_length(m.shape[0], param.shape[0], "m")
    check_length(v.shape[0], param.shape[0], "v")
    if param.shape[0] == 0:
        return
    with nogil:
        adam_kernel(&param[0], &grad[0], &m[0], &v[0], param.shape[0], t, lr,
                    beta1, beta2, eps, l2, eps_hat, 1)


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
            max_norm_kernel(&W[0, 0], n_in, n_out, max_norm, scale, 1)
    finally:
        free(scale)
