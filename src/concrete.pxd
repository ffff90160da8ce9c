# Concrete dropout kernels: cimported (inlined) by _concrete.pyx, and by any
# module that fuses the pass into its own (a dense layer's input, a compiled
# training epoch). No Python objects; every function is noexcept nogil and
# works on raw pointers already validated by the caller.
#
# The math and its contract (which generator words an element's noise comes
# from, how it is rounded, how accurate it is) are in concrete.h. A pass
# over n noise values from generator block block0 uses blocks block0 ..
# block0 + ceil(n / 64) - 1, as a Bernoulli mask of n elements does
# (cydrop.Generator._reserve(n) reserves exactly these).
#
# Two layouts:
#   element-wise  one noise value per element (concrete_forward/backward);
#   runs          one noise value per run of `run` consecutive elements:
#                 whole channels of an (N, C, ...) array, run = prod(...)
#                 (concrete_forward_runs/backward_runs).
from cython cimport floating
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from dropout cimport BLOCK, CHUNK, WAKE_CHUNKS, team_size
from pool cimport run_items


cdef extern from "concrete.h" nogil:
    ctypedef struct cyd_concrete:
        uint64_t key
        double p_logit           # a = log(p / (1 - p)), p the drop probability
        double inv_temperature   # 1 / t
        double p                 # sigmoid(a)
        double scale             # 1 / (1 - p) = 1 + exp(a)
        int pow_n                # the power path (concrete.h): 1/t = pow_n + pow_half / 2,
        int pow_half             # or pow_n = -1: the series path
        int32_t pow_shift
        double pow_scale
    # c := the scalars of a pass: p, scale and the power path's from concrete.h's own exp2
    # (set every field through this: the passes read them all)
    void cyd_concrete_init(cyd_concrete *c, uint64_t key, double p_logit, double temperature)
    # w[e] := 1 - z[e], z[e] := the relaxed drop indicator, e < n (either may be NULL)
    void cyd_concrete_noise_float(const cyd_concrete *c, uint64_t block0, size_t n, float *w, float *z)
    void cyd_concrete_noise_double(const cyd_concrete *c, uint64_t block0, size_t n, double *w, double *z)
    # the same for given uniforms U[e] (tests)
    void cyd_concrete_noise_of_uniforms_float(const cyd_concrete *c, const uint32_t *U, size_t n,
                                              float *w, float *z)
    void cyd_concrete_noise_of_uniforms_double(const cyd_concrete *c, const uint32_t *U, size_t n,
                                               double *w, double *z)
    # y[e] := x[e] * (w[e] * scale), e < n
    void cyd_concrete_forward_float(const cyd_concrete *c, uint64_t block0, size_t n,
                                    const float *x, float *y)
    void cyd_concrete_forward_double(const cyd_concrete *c, uint64_t block0, size_t n,
                                     const double *x, double *y)
    # dx[e] := dy[e] * (w[e] * scale) (if dx), y[e] := the forward output (if y);
    # returns sum_e dy[e] y[e] (p - z[e] / t)
    double cyd_concrete_backward_float(const cyd_concrete *c, uint64_t block0, size_t n,
                                       const float *dy, const float *x, float *dx, float *y)
    double cyd_concrete_backward_double(const cyd_concrete *c, uint64_t block0, size_t n,
                                        const double *dy, const double *x, double *dx, double *y)


# ------------------------------------------------------------ the scalars

cdef extern from "<float.h>" nogil:
    double FLT_MAX
    double DBL_MAX

cdef enum:
    CONCRETE_OK = 0
    CONCRETE_BAD_P_LOGIT = 1       # not finite, or 1 / (1 - p) overflows the type
    CONCRETE_BAD_TEMPERATURE = 2   # not finite and > 0, or 1 / t overflows the type


cdef inline int concrete_setup(cyd_concrete *c, uint64_t key, double p_logit, double temperature,
                               bint single) noexcept nogil:
    """c := the scalars of a pass over float (single) or double arrays, if
    the kernels' arithmetic holds for them; returns CONCRETE_OK, or which
    argument breaks it (then c is not to be used). A caller that learns
    p_logit checks every step: a p_logit pushed past about 88 makes
    1 / (1 - p) overflow float."""
    cdef double limit = FLT_MAX if single else DBL_MAX
    if not (p_logit - p_logit == 0):                            # NaN or infinite
        return CONCRETE_BAD_P_LOGIT
    if not (temperature > 0 and temperature <= DBL_MAX and 1.0 / temperature <= limit):
        return CONCRETE_BAD_TEMPERATURE
    cyd_concrete_init(c, key, p_logit, temperature)
    if not c.scale <= limit:
        return CONCRETE_BAD_P_LOGIT
    return CONCRETE_OK


# ------------------------------------------------------------ chunk bodies
#
# Each covers the n elements of one chunk, from block block0 (a chunk starts
# on a block). The scheduling loops below call them; a fused caller may call
# them from its own loop.

cdef inline void concrete_noise(const cyd_concrete *c, uint64_t block0, Py_ssize_t n,
                                floating *w, floating *z) noexcept nogil:
    """w[e] := 1 - z[e], z[e] := the drop indicator of noise value e < n (either may be NULL)."""
    if floating is float:
        cyd_concrete_noise_float(c, block0, n, w, z)
    else:
        cyd_concrete_noise_double(c, block0, n, w, z)


cdef inline void concrete_forward_chunk(const cyd_concrete *c, uint64_t block0, Py_ssize_t n,
                                        const floating *x, floating *y) noexcept nogil:
    """y[e] := x[e] * (w[e] * scale), e < n. y may be x."""
    if floating is float:
        cyd_concrete_forward_float(c, block0, n, x, y)
    else:
        cyd_concrete_forward_double(c, block0, n, x, y)


cdef inline double concrete_backward_chunk(const cyd_concrete *c, uint64_t block0, Py_ssize_t n,
                                           const floating *dy, const floating *x, floating *dx,
                                           floating *y) noexcept nogil:
    """dx[e] := dy[e] * (w[e] * scale) unless dx is NULL; y[e] := x[e] * (w[e] * scale)
    unless y is NULL; returns sum_e dy[e] y[e] (p - z[e] / t) in double. dx may
    be dy, y may be x."""
    if floating is float:
        return cyd_concrete_backward_float(c, block0, n, dy, x, dx, y)
    else:
        return cyd_concrete_backward_double(c, block0, n, dy, x, dx, y)


# ------------------------------------------------------- scheduling loops
#
# A parallel pass runs on cydrop's pool (pool.pxd): its items are chunks of
# CHUNK elements (element-wise) or groups of noise values covering about a
# chunk (runs), described by a ConcreteJob, one body per pass and dtype.
# Every sum is made per item and the items' sums added in item order after
# the pass, so a result is the same bits for any thread count.

ctypedef struct ConcreteJob:
    const cyd_concrete *c
    uint64_t block0
    Py_ssize_t n            # elements (element-wise) or noise values (runs)
    Py_ssize_t run          # runs: elements per noise value
    Py_ssize_t per_item     # runs: noise values per item
    const void *x
    const void *dy
    void *y                 # may be NULL in backward passes
    void *dx                # may be NULL
    const void *w           # runs: w[i] of each noise value
    double *sums            # backward: each chunk's sum (element-wise), each h[i] (runs)


cdef inline Py_ssize_t concrete_n_chunks(Py_ssize_t n) noexcept nogil:
    """Chunks of a pass over n elements: ceil(n / 4096)."""
    return (n + CHUNK - 1) // CHUNK


cdef inline void forward_item(const ConcreteJob *job, Py_ssize_t ci, const floating *x,
                              floating *y) noexcept nogil:
    cdef Py_ssize_t start = ci * CHUNK
    concrete_forward_chunk(job.c, job.block0 + <uint64_t>(start // BLOCK), min(<Py_ssize_t>CHUNK, job.n - start),
                           x + start, y + start)


cdef inline void forward_body_float(void *ctx, Py_ssize_t ci) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    forward_item(job, ci, <const float *>job.x, <float *>job.y)


cdef inline void forward_body_double(void *ctx, Py_ssize_t ci) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    forward_item(job, ci, <const double *>job.x, <double *>job.y)


cdef inline void backward_item(const ConcreteJob *job, Py_ssize_t ci, const floating *dy, const floating *x,
                               floating *dx, floating *y) noexcept nogil:
    cdef Py_ssize_t start = ci * CHUNK
    job.sums[ci] = concrete_backward_chunk(job.c, job.block0 + <uint64_t>(start // BLOCK),
                                           min(<Py_ssize_t>CHUNK, job.n - start), dy + start, x + start,
                                           NULL if dx == NULL else dx + start, NULL if y == NULL else y + start)


cdef inline void backward_body_float(void *ctx, Py_ssize_t ci) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    backward_item(job, ci, <const float *>job.dy, <const float *>job.x, <float *>job.dx, <float *>job.y)


cdef inline void backward_body_double(void *ctx, Py_ssize_t ci) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    backward_item(job, ci, <const double *>job.dy, <const double *>job.x, <double *>job.dx, <double *>job.y)


cdef inline void concrete_forward(const cyd_concrete *c, uint64_t block0, Py_ssize_t n,
                                  const floating *x, floating *y, int n_threads) noexcept nogil:
    """y := x * (w * scale), one noise value per element, in chunks of 4096
    elements over n_threads (dropout.pxd's team rule: small arrays run on
    the calling thread). The noise of an element depends on its position
    only, so the split over threads cannot change y."""
    cdef Py_ssize_t n_chunks = concrete_n_chunks(n)
    cdef int team = team_size(n_chunks, n_threads)
    cdef ConcreteJob job
    if team <= 1:
        concrete_forward_chunk(c, block0, n, x, y)
        return
    job.c, job.block0, job.n, job.x, job.y = c, block0, n, x, y
    run_items(forward_body_float if floating is float else forward_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)


cdef inline int concrete_backward(const cyd_concrete *c, uint64_t block0, Py_ssize_t n,
                                  const floating *dy, const floating *x, floating *dx, floating *y,
                                  double *grad_p_logit, int n_threads) noexcept nogil:
    """dx := dy * (w * scale) (unless dx is NULL), y := the forward output
    (unless y is NULL) and grad_p_logit[0] := sum dy * y * (p - z / t), one
    noise value per element, in chunks of 4096 elements over n_threads.

    The sum is the same bits for any thread count: each chunk's part is
    summed alone (concrete.h fixes its order), and the parts are added in
    chunk order after the pass. Returns 0, or -1 when the n_chunks doubles
    of partial sums cannot be allocated (then nothing was written)."""
    cdef Py_ssize_t n_chunks = concrete_n_chunks(n)
    cdef Py_ssize_t ci
    cdef int team = team_size(n_chunks, n_threads)
    cdef double total = 0.0
    cdef ConcreteJob job
    job.sums = <double *>malloc(max(n_chunks, 1) * sizeof(double))
    if job.sums == NULL:
        return -1
    job.c, job.block0, job.n, job.dy, job.x, job.dx, job.y = c, block0, n, dy, x, dx, y
    run_items(backward_body_float if floating is float else backward_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)
    for ci in range(n_chunks):
        total += job.sums[ci]
    free(job.sums)
    grad_p_logit[0] = total
    return 0


# ------------------------------------------------------------------- runs

cdef inline void scale_run(const floating *x, floating factor, Py_ssize_t run,
                           floating *y) noexcept nogil:
    """y[j] := x[j] * factor, j < run. y may be x."""
    cdef Py_ssize_t j
    for j in range(run):
        y[j] = x[j] * factor


cdef inline double backward_run(const floating *dy, const floating *x, floating factor,
                                Py_ssize_t run, floating *dx, floating *y) noexcept nogil:
    """For j < run: y_j = x[j] * factor (written if y), dx[j] := dy[j] * factor
    (if dx); returns sum_j dy[j] y_j in double, over four partial sums
    (j mod 4) added in a fixed order."""
    cdef Py_ssize_t j, j4 = run - run % 4
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    # the sum first: y may be x and dx may be dy (in place)
    for j in range(0, j4, 4):
        s0 += <double>(dy[j] * (x[j] * factor))
        s1 += <double>(dy[j + 1] * (x[j + 1] * factor))
        s2 += <double>(dy[j + 2] * (x[j + 2] * factor))
        s3 += <double>(dy[j + 3] * (x[j + 3] * factor))
    for j in range(j4, run):
        s0 += <double>(dy[j] * (x[j] * factor))
    if y != NULL:
        scale_run(x, factor, run, y)
    if dx != NULL:
        scale_run(dy, factor, run, dx)
    return (s0 + s1) + (s2 + s3)


cdef inline Py_ssize_t runs_per_item(Py_ssize_t run) noexcept nogil:
    """Noise values per item of a runs pass: about a chunk of elements."""
    return max(<Py_ssize_t>1, CHUNK // max(run, <Py_ssize_t>1))


cdef inline void forward_runs_item(const ConcreteJob *job, Py_ssize_t item, const floating *x,
                                   floating *y) noexcept nogil:
    cdef const floating *w = <const floating *>job.w
    cdef floating scale = <floating>job.c.scale
    cdef Py_ssize_t i, run = job.run
    for i in range(item * job.per_item, min((item + 1) * job.per_item, job.n)):
        scale_run(x + i * run, w[i] * scale, run, y + i * run)


cdef inline void forward_runs_body_float(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    forward_runs_item(job, item, <const float *>job.x, <float *>job.y)


cdef inline void forward_runs_body_double(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    forward_runs_item(job, item, <const double *>job.x, <double *>job.y)


cdef inline void backward_runs_item(const ConcreteJob *job, Py_ssize_t item, const floating *dy,
                                    const floating *x, floating *dx, floating *y) noexcept nogil:
    cdef const floating *w = <const floating *>job.w
    cdef floating scale = <floating>job.c.scale
    cdef Py_ssize_t i, run = job.run
    for i in range(item * job.per_item, min((item + 1) * job.per_item, job.n)):
        job.sums[i] = backward_run(dy + i * run, x + i * run, w[i] * scale, run,
                                   NULL if dx == NULL else dx + i * run, NULL if y == NULL else y + i * run)


cdef inline void backward_runs_body_float(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    backward_runs_item(job, item, <const float *>job.dy, <const float *>job.x, <float *>job.dx, <float *>job.y)


cdef inline void backward_runs_body_double(void *ctx, Py_ssize_t item) noexcept nogil:
    cdef ConcreteJob *job = <ConcreteJob *>ctx
    backward_runs_item(job, item, <const double *>job.dy, <const double *>job.x, <double *>job.dx,
                       <double *>job.y)


cdef inline void concrete_forward_runs(const cyd_concrete *c, uint64_t block0, Py_ssize_t n_noise,
                                       Py_ssize_t run, const floating *x, floating *y, floating *w,
                                       int n_threads) noexcept nogil:
    """y[i * run + j] := x[i * run + j] * (w[i] * scale), i < n_noise, j < run:
    one noise value per run of `run` elements. w is scratch of n_noise
    values (left holding the w[i])."""
    cdef Py_ssize_t n_chunks = concrete_n_chunks(n_noise * run)
    cdef ConcreteJob job
    concrete_noise(c, block0, n_noise, w, <floating *>NULL)
    job.c, job.n, job.run, job.per_item, job.x, job.y, job.w = c, n_noise, run, runs_per_item(run), x, y, w
    run_items(forward_runs_body_float if floating is float else forward_runs_body_double, &job,
              (n_noise + job.per_item - 1) // job.per_item, team_size(n_chunks, n_threads),
              n_chunks >= WAKE_CHUNKS)


cdef inline void concrete_backward_runs(const cyd_concrete *c, uint64_t block0, Py_ssize_t n_noise,
                                        Py_ssize_t run, const floating *dy, const floating *x,
                                        floating *dx, floating *y, floating *w, floating *z,
                                        double *h, double *grad_p_logit,
                                        int n_threads) noexcept nogil:
    """concrete_backward with one noise value per run of `run` elements:
    dx (unless NULL) := dy * (w[i] * scale), y (unless NULL) := the forward
    output, grad_p_logit[0] := sum_i (p - z[i] / t) h[i] with
    h[i] = sum over run i of dy * y. w, z (n_noise values) and h (n_noise
    doubles) are scratch. Each h[i] is summed by one thread in a fixed
    order and the h[i] are added in order: the same bits for any thread count."""
    cdef floating p = <floating>c.p, inv_t = <floating>c.inv_temperature
    cdef double total = 0.0
    cdef Py_ssize_t i
    cdef Py_ssize_t n_chunks = concrete_n_chunks(n_noise * run)
    cdef ConcreteJob job
    concrete_noise(c, block0, n_noise, w, z)
    job.c, job.n, job.run, job.per_item = c, n_noise, run, runs_per_item(run)
    job.dy, job.x, job.dx, job.y, job.w, job.sums = dy, x, dx, y, w, h
    run_items(backward_runs_body_float if floating is float else backward_runs_body_double, &job,
              (n_noise + job.per_item - 1) // job.per_item, team_size(n_chunks, n_threads),
              n_chunks >= WAKE_CHUNKS)
    for i in range(n_noise):
        total += <double>(p - z[i] * inv_t) * h[i]
    grad_p_logit[0] = total
