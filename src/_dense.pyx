"""Fused dense-layer kernels: dropout mask, 1/keep_prob scale, GEMM, bias and
activation in one call forward, and their gradients in one call backward.

``cydrop.dense`` validates every argument and words its errors. Each entry
point here still checks the facts its nogil code relies on (the shapes of
every buffer it reads or writes, the length of the mask words, the mode and
activation codes; the typed memoryviews refuse other dtypes, non-contiguous
arrays, and read-only arrays where they write), so that no caller (the NumPy
API, the MLP) can make a kernel touch memory out of bounds. Row-major,
examples in rows: x (batch, n_in), W (n_in, n_out), b (n_out,),
out (batch, n_out).

Threads (cydrop._threads.gemm_route): with ``blocked`` the GEMMs run as
fixed blocks on cydrop's thread pool (blas.pxd: gemm_blocked), each a
single-threaded BLAS call, so that results do not depend on the thread
count; without it each is one call of the same BLAS routine on the BLAS's
own threads (blas.pxd: gemm_on_route). The element-wise passes run on the
pool in both, cut so that each output element is computed by one thread in a
fixed order.
"""
from cython cimport floating
from libc.stdint cimport uint64_t

from blas cimport NO_TRANS, TRANS, gemm_on_route, load_blas
from pool cimport load_pool, run_items

from activations cimport LINEAR, RELU, SIGMOID, TANH, activation_grad_block, bias_activation_block
from dropout cimport apply_mask_parallel, draw_and_apply_parallel
from rng cimport n_words

import enum


# The activation codes of activations.pxd by name, for Python: cydrop.dense
# builds its name table from this, so the numbers are written only there.
load_pool()

Activation = enum.IntEnum("Activation", {"LINEAR": LINEAR, "RELU": RELU, "TANH": TANH, "SIGMOID": SIGMOID})

# Width of the column blocks of the parallel element-wise passes.
cdef enum:
    COLUMN_BLOCK = 256

# How forward obtains the input mask (its mask_mode argument).
cdef enum:
    NO_MASK = 0   # keep_prob == 1: x is used as is, no mask work
    DRAW = 1      # draw words from (key, block0) and apply: x_tilde := x * D * scale
    APPLY = 2     # apply the given words: x_tilde := x * D * scale

# The same codes by name, for Python (cydrop.dense reads them from here).
MaskMode = enum.IntEnum("MaskMode", {"NO_MASK": NO_MASK, "DRAW": DRAW, "APPLY": APPLY})

# The ILP64 ?gemm of the BLAS NumPy links, registered by set_numpy_gemm: the
# blocks of a blocked GEMM go through it (blas.pxd gemm64), or through
# SciPy's BLAS while it is 0.
cdef size_t numpy_sgemm = 0, numpy_dgemm = 0


def set_numpy_gemm(size_t sgemm, size_t dgemm):
    """Register the addresses of the ILP64 Fortran-style ``sgemm`` and
    ``dgemm`` of the BLAS NumPy links (0: none), as
    ``cydrop._threads.numpy_gemm`` finds them; an address that is not such a
    routine would be called blindly."""
    global numpy_sgemm, numpy_dgemm
    numpy_sgemm, numpy_dgemm = sgemm, dgemm


cdef inline void *block_routine(floating *dtype_of) noexcept nogil:
    """The registered routine of floating's precision (NULL: SciPy's BLAS)."""
    return <void *>(numpy_sgemm if floating is float else numpy_dgemm)


cdef inline int column_threads(Py_ssize_t batch, Py_ssize_t n_out, int n_threads) noexcept nogil:
    """Threads for a pass over (batch, n_out) cut in COLUMN_BLOCK-wide blocks."""
    if batch * n_out <= 65536:
        return 1
    return max(1, min(n_threads, (n_out + COLUMN_BLOCK - 1) // COLUMN_BLOCK))


# The column-block passes below run on cydrop's pool (pool.pxd), one item
# per COLUMN_BLOCK-wide block of columns, described by these structs.
ctypedef struct BiasJob:
    void *z                # (batch, n_out), in place
    const void *b          # (n_out,) or NULL
    Py_ssize_t batch, n_out
    int activation


ctypedef struct GradJob:
    const void *grad_out   # (batch, n_out)
    const void *a          # (batch, n_out)
    void *dz               # (batch, n_out)
    void *db               # (n_out,) or NULL
    Py_ssize_t batch, n_out
    int activation


cdef inline void bias_activation_column(floating *z, const floating *b, const BiasJob *job,
                                        Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j0 = c * COLUMN_BLOCK
    bias_activation_block(z + j0, b + j0 if b != NULL else NULL, job.batch,
                          min(<Py_ssize_t>COLUMN_BLOCK, job.n_out - j0), job.n_out, job.activation)


cdef void bias_activation_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef BiasJob *job = <BiasJob *>ctx
    bias_activation_column(<float *>job.z, <const float *>job.b, job, c)


cdef void bias_activation_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef BiasJob *job = <BiasJob *>ctx
    bias_activation_column(<double *>job.z, <const double *>job.b, job, c)


cdef void bias_activation(floating *z, const floating *b, Py_ssize_t batch,
                          Py_ssize_t n_out, int activation, int n_threads) noexcept nogil:
    """z := act(z + b) in place, z (batch, n_out); b may be NULL."""
    cdef BiasJob job
    job.z, job.b, job.batch, job.n_out, job.activation = z, b, batch, n_out, activation
    # column blocks, so that each thread reads and writes whole cache lines
    run_items(bias_activation_float if floating is float else bias_activation_double, &job,
              (n_out + COLUMN_BLOCK - 1) // COLUMN_BLOCK, column_threads(batch, n_out, n_threads))


cdef inline void activation_grad_column(const floating *grad_out, const floating *a, floating *dz,
                                        floating *db, const GradJob *job, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t j0 = c * COLUMN_BLOCK
    activation_grad_block(grad_out + j0, a + j0, dz + j0, db + j0 if db != NULL else NULL,
                          job.batch, min(<Py_ssize_t>COLUMN_BLOCK, job.n_out - j0), job.n_out,
                          job.activation)


cdef void activation_grad_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef GradJob *job = <GradJob *>ctx
    activation_grad_column(<const float *>job.grad_out, <const float *>job.a, <float *>job.dz,
                           <float *>job.db, job, c)


cdef void activation_grad_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef GradJob *job = <GradJob *>ctx
    activation_grad_column(<const double *>job.grad_out, <const double *>job.a, <double *>job.dz,
                           <double *>job.db, job, c)


cdef void activation_grad(const floating *grad_out, const floating *a, floating *dz,
                          floating *db, Py_ssize_t batch, Py_ssize_t n_out,
                          int activation, int n_threads) noexcept nogil:
    """dz := grad_out * act'(z); db := sum over rows of dz (if db), all (batch, n_out).
    Column blocks: each db[j] is summed by one thread in row order, so the
    result does not depend on the thread count."""
    cdef GradJob job
    job.grad_out, job.a, job.dz, job.db = grad_out, a, dz, db
    job.batch, job.n_out, job.activation = batch, n_out, activation
    run_items(activation_grad_float if floating is float else activation_grad_double, &job,
              (n_out + COLUMN_BLOCK - 1) // COLUMN_BLOCK, column_threads(batch, n_out, n_threads))


cdef int check_shape(str name, object shape, tuple expected) except -1:
    """A buffer's shape (memoryview.shape, padded to 8 entries) against
    the expected (rows, columns) or (length,)."""
    if tuple(shape[:len(expected)]) != expected:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(shape[:len(expected)])}")
    return 0


cdef int check_codes(int mask_mode, int activation) except -1:
    if mask_mode not in (NO_MASK, DRAW, APPLY):
        raise ValueError(f"mask_mode must be a MaskMode ({[int(m) for m in MaskMode]}), got {mask_mode}")
    if activation not in (LINEAR, RELU, TANH, SIGMOID):
        raise ValueError(f"activation code must be one of {[int(a) for a in Activation]}, got {activation}")
    return 0


cdef int check_words(const uint64_t[::1] words, Py_ssize_t n_elements) except -1:
    """words long enough for a packed mask of n_elements elements."""
    if words.shape[0] < n_words(n_elements):
        raise ValueError(f"words has {words.shape[0]} words, x needs {n_words(n_elements)}")
    return 0


cdef void mask_input(const floating *x, floating *x_tilde, uint64_t *words,
                     Py_ssize_t n, int mask_mode, uint64_t key, uint64_t block0,
                     uint64_t threshold, floating scale, int n_threads) noexcept nogil:
    """x_tilde := x * D * scale, D drawn (DRAW) or given (APPLY)."""
    if mask_mode == DRAW:
        draw_and_apply_parallel(x, x_tilde, words, n, key, block0, threshold, scale, n_threads)
    elif mask_mode == APPLY:
        apply_mask_parallel(x, words, scale, n, x_tilde, n_threads)


def forward_into(const floating[:, ::1] x, const floating[:, ::1] W, const floating[::1] b,
                 floating[:, ::1] out, *, int activation, int mask_mode=NO_MASK,
                 floating[:, ::1] x_tilde=None, object words=None, uint64_t key=0, uint64_t block0=0,
                 uint64_t threshold=0, double scale=1.0, int n_threads=1, bint blocked=False):
    """x_tilde := x * D * scale, D drawn at (key, block0) into ``words``
    (mask_mode DRAW) or given as ``words`` (APPLY); then
    out := act(x_tilde @ W + b), x_tilde being x itself for NO_MASK (x_tilde
    is then not needed). b may be None.

    The product is one call of the BLAS on its own threads or, when
    ``blocked``, blocks on n_threads threads of the pool (bit-identical for
    any thread count): blas.pxd gemm_on_route. words (uint64, at least
    ceil(x.size / 64)) are written for DRAW (so must be writable) and read
    for APPLY (a Mask's read-only words)."""
    cdef Py_ssize_t batch = x.shape[0], n_in = x.shape[1]
    cdef Py_ssize_t n_out = W.shape[1]
    cdef const uint64_t[::1] words_read
    cdef uint64_t[::1] words_written
    cdef const floating *src = &x[0, 0] if batch * n_in else NULL
    cdef floating *xt = NULL
    cdef uint64_t *w = NULL
    cdef const floating *bias = NULL
    cdef const floating *W_ptr = &W[0, 0] if n_in * n_out else NULL
    cdef floating *out_ptr = NULL
    check_codes(mask_mode, activation)
    check_shape("W", W.shape, (n_in, n_out))
    check_shape("out", out.shape, (batch, n_out))
    if b is not None:
        check_shape("b", b.shape, (n_out,))
        bias = &b[0] if n_out else NULL
    out_ptr = &out[0, 0] if batch * n_out else NULL
    load_blas()
    if mask_mode != NO_MASK:
        if x_tilde is None or words is None:
            raise ValueError("a mask needs an x_tilde buffer and the words")
        check_shape("x_tilde", x_tilde.shape, (batch, n_in))
        if mask_mode == DRAW:
            words_written = words   # refuses a read-only buffer
            words_read = words_written
        else:
            words_read = words
        check_words(words_read, batch * n_in)
        if src != NULL:
            xt, w = &x_tilde[0, 0], <uint64_t *>&words_read[0]
    with nogil:
        if xt != NULL:
            mask_input(src, xt, w, batch * n_in, mask_mode, key, block0, threshold,
                       <floating>scale, n_threads)
            src = xt
    if out_ptr == NULL:
        return
    with nogil:
        # (batch, n_out) := (batch, n_in) W, W (n_in, n_out)
        gemm_on_route(not blocked, NO_TRANS, NO_TRANS, batch, n_out, n_in, 1, src, max(n_in, 1), W_ptr,
                      n_out, 0, out_ptr, n_out, n_threads, block_routine(out_ptr))
        bias_activation(out_ptr, bias, batch, n_out, activation, n_threads)


def backward_into(const floating[:, ::1] grad_out, const floating[:, ::1] a,
                  const floating[:, ::1] x_tilde, const floating[:, ::1] W,
                  floating[:, ::1] dz, floating[:, ::1] dW, floating[::1] db, floating[:, ::1] dx,
                  *, int activation, object words=None, bint redraw=False,
                  const floating[:, ::1] x=None, uint64_t key=0, uint64_t block0=0,
                  uint64_t threshold=0, double scale=1.0, int n_threads=1, bint blocked=False):
    """Gradients of forward_into, a = its output: dz := grad_out * act'(a);
    dW := x_tilde^T dz; db := sum_rows dz (if db); dx := (dz W^T) * D * scale
    (if dx; D and scale omitted when words is None).

    x_tilde is the forward's (read only, with its mask's words), or, with
    ``redraw``, a writable buffer that receives x * D * scale again, D drawn
    again at (key, block0) into the writable ``words`` buffer, as forward
    drew it (then x is needed). GEMMs as in forward_into."""
    cdef Py_ssize_t batch = grad_out.shape[0], n_out = grad_out.shape[1]
    cdef Py_ssize_t n_in = W.shape[0], j
    cdef tuple w_shape = (n_in, n_out)
    cdef const uint64_t[::1] words_read
    cdef uint64_t[::1] words_written
    cdef floating[:, ::1] x_tilde_written
    cdef uint64_t *w = NULL
    check_codes(NO_MASK, activation)
    check_shape("W", W.shape, w_shape)
    check_shape("a", a.shape, (batch, n_out))
    check_shape("x_tilde", x_tilde.shape, (batch, n_in))
    check_shape("dz", dz.shape, (batch, n_out))
    check_shape("dW", dW.shape, w_shape)
    if db is not None:
        check_shape("db", db.shape, (n_out,))
    if dx is not None:
        check_shape("dx", dx.shape, (batch, n_in))
    if redraw:
        if x is None or words is None:
            raise ValueError("redraw needs x and a words buffer")
        check_shape("x", x.shape, (batch, n_in))
        x_tilde_written = x_tilde.base   # the array itself: refuses a read-only one
        words_written = words
        words_read = words_written
    elif words is not None:
        words_read = words
    if words is not None:
        check_words(words_read, batch * n_in)
        if batch * n_in:
            w = <uint64_t *>&words_read[0]
    cdef const floating *g_ptr = &grad_out[0, 0] if batch * n_out else NULL
    cdef const floating *a_ptr = &a[0, 0] if batch * n_out else NULL
    # written only when redrawn, then through the writable view
    cdef floating *xt = NULL
    if batch * n_in:
        xt = &x_tilde_written[0, 0] if redraw else <floating *>&x_tilde[0, 0]
    cdef const floating *W_ptr = &W[0, 0] if n_in * n_out else NULL
    cdef floating *dz_ptr = &dz[0, 0] if batch * n_out else NULL
    cdef floating *dW_ptr = &dW[0, 0] if n_in * n_out else NULL
    cdef floating *db_ptr = &db[0] if db is not None and n_out else NULL
    cdef floating *dx_ptr = &dx[0, 0] if dx is not None and batch * n_in else NULL
    load_blas()
    with nogil:
        if xt != NULL and redraw:
            mask_input(&x[0, 0], xt, w, batch * n_in, DRAW, key, block0, threshold,
                       <floating>scale, n_threads)
        if dz_ptr != NULL:
            activation_grad(g_ptr, a_ptr, dz_ptr, db_ptr, batch, n_out, activation, n_threads)
        elif db_ptr != NULL:
            for j in range(n_out):
                db_ptr[j] = 0
    with nogil:
        if dW_ptr != NULL:
            # (n_in, n_out) := (batch, n_in)^T (batch, n_out)
            gemm_on_route(not blocked, TRANS, NO_TRANS, n_in, n_out, batch, 1, xt, n_in, dz_ptr, n_out,
                          0, dW_ptr, n_out, n_threads, block_routine(dW_ptr))
        if dx_ptr != NULL:
            # (batch, n_in) := (batch, n_out) W^T, W (n_in, n_out)
            gemm_on_route(not blocked, NO_TRANS, TRANS, batch, n_in, n_out, 1, dz_ptr, max(n_out, 1), W_ptr,
                          max(n_out, 1), 0, dx_ptr, n_in, n_threads, block_routine(dx_ptr))
            if w != NULL:
                apply_mask_parallel(dx_ptr, w, <floating>scale, batch * n_in, dx_ptr, n_threads)
