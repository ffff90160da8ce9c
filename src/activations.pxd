# Element-wise activation kernels of a dense layer, forward (bias + act) and
# backward (act' and the bias gradient): cimported (inlined) by _dense.pyx and
# _fused_net.pyx. No Python objects; every function is noexcept nogil on raw
# pointers the caller validated.
from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf

# Activation codes, written only here: _dense.pyx exposes them to Python
# as ``_dense.Activation``, from which cydrop.dense builds its name table.
cdef enum Activation:
    LINEAR = 0
    RELU = 1
    TANH = 2
    SIGMOID = 3


cdef inline floating sigmoid(floating v) noexcept nogil:
    """1 / (1 + e^-v), in a form that never overflows."""
    cdef floating e
    if floating is float:
        e = expf(-v if v >= 0 else v)
    else:
        e = exp(-v if v >= 0 else v)
    return 1 / (1 + e) if v >= 0 else e / (1 + e)


cdef inline void bias_activation_block(floating *z, const floating *b, Py_ssize_t batch,
                                Py_ssize_t width, Py_ssize_t ldz, int activation) noexcept nogil:
    """z[i, j] := act(z[i, j] + b[j]) in place for j < width, rows ldz apart;
    b may be NULL (no bias)."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef floating *row
    for i in range(batch):
        row = z + i * ldz
        if b != NULL:
            for j in range(width):
                row[j] += b[j]
        # one loop per activation so that each vectorizes on its own
        if activation == RELU:
            for j in range(width):
                v = row[j]
                row[j] = 0 if v < 0 else v   # NaN stays NaN
        elif activation == TANH:
            for j in range(width):
                if floating is float:
                    row[j] = tanhf(row[j])
                else:
                    row[j] = tanh(row[j])
        elif activation == SIGMOID:
            for j in range(width):
                row[j] = sigmoid(row[j])


cdef inline void activation_grad_block(const floating *grad_out, const floating *a, floating *dz,
                                floating *db, Py_ssize_t batch, Py_ssize_t width,
                                Py_ssize_t ld, int activation) noexcept nogil:
    """dz := grad_out * act'(z) for j < width, rows ld apart, with act' written
    in terms of the output a (relu: [a > 0], tanh: 1 - a^2, sigmoid: a (1 - a));
    db[j] := sum_i dz[i, j] (in row order) when db is not NULL."""
    cdef Py_ssize_t i, j
    cdef floating v
    cdef const floating *g
    cdef const floating *ar
    cdef floating *d
    if db != NULL:
        for j in range(width):
            db[j] = 0
    for i in range(batch):
        g = grad_out + i * ld
        ar = a + i * ld
        d = dz + i * ld
        if activation == RELU:
            for j in range(width):
                # load before selecting: a load inside the branch keeps GCC
                # from turning it into a vector blend (random branches cost
                # 4x the whole pass)
                v = g[j]
                d[j] = v if ar[j] > 0 else 0
        elif activation == TANH:
            for j in range(width):
                d[j] = g[j] * (1 - ar[j] * ar[j])
        elif activation == SIGMOID:
            for j in range(width):
                d[j] = g[j] * (ar[j] * (1 - ar[j]))
        else:
            for j in range(width):
                d[j] = g[j]
        if db != NULL:
            for j in range(width):
                db[j] += d[j]
