"""An MLP in one compiled call: a whole training epoch, all the Monte Carlo
dropout passes of a prediction, a prediction, or one batch's gradients (the
compiled engine of cydrop.MLP, ``cydrop/mlp/engines/compiled.py``).

Why: the reference engine makes a dozen Python calls per layer and step, and
on small layers those calls cost more than the arithmetic. ``Net.train_epoch``
runs, for every mini-batch of an epoch, the forward pass (masks drawn from
the counter-based generator, src/rng.h), the loss, the backward pass and the
optimizer update of every layer, with rows gathered into buffers allocated
once (``Net.__cinit__``); ``Net.mc_passes`` runs T dropout passes with their
running sums.

Same arithmetic as the reference engine (cydrop.mlp.engines.reference on
cydrop.dense and cydrop.mlp.optimizers): the activation kernels
(activations.pxd), the optimizer kernels (optim.pxd) and the mask kernels
(dropout.pxd) are the same inlined functions, the mask passes on cydrop's
pool (``set_threads``). GEMMs go through blas.pxd, cut into blocks on the
pool (``gemm_blocked``, the BLAS kept to one thread by the caller), or whole
on the BLAS's own threads: the BLAS NumPy links (``gemm64``) once its
address is registered (``set_numpy_gemm``) and the Net made with
``numpy_blas``, else SciPy's.

Same masks: for each step, and each layer i whose keep_prob < 1 in layer
order, the reference engine reserves ceil(rows * n_in_i / 64) generator blocks
and draws its mask there. These kernels draw the same blocks in the same
order from the first block of one reservation for the whole call
(``blocks_per_epoch``, ``blocks_per_mc``), so both engines give the same masks.

Every array a kernel touches is checked here before any nogil code runs
(dtype, shape, C order, alignment, writability, row indices in range): no
caller can make them read or write out of bounds. This module imports
nothing from the Python package.
"""
from cython cimport floating
from libc.math cimport INFINITY as INF, exp, expf, fabs, isfinite, log, log1p, sqrt
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

from arrays cimport array_data
from activations cimport LINEAR, SIGMOID, activation_grad_block, bias_activation_block, sigmoid
from blas cimport NO_TRANS, TRANS, Trans, gemm_on_route, load_blas
from concrete cimport CONCRETE_OK, concrete_backward, concrete_forward, concrete_setup, cyd_concrete
from dropout cimport CHUNK, WAKE_CHUNKS, apply_mask_parallel, draw_and_apply_parallel, team_size
from optim cimport adam_kernel, max_norm_kernel, momentum_kernel, sgd_kernel
from pool cimport load_pool, run_items
from rng cimport n_words

cnp.import_array()
load_pool()

# The widest network these kernels take, in layers (the struct below holds
# one Layer per dense layer).
DEF MAX_LAYERS = 8
MAX_DENSE_LAYERS = MAX_LAYERS

# 0.5 * log(2 pi), the constant of a Gaussian log-likelihood
cdef double HALF_LOG_2PI = 0.9189385332046727

# Loss of the output layer (cydrop.MLP's output names map to these).
cpdef enum Output:
    OUT_LINEAR = 0     # identity, squared error / 2
    OUT_SIGMOID = 1    # sigmoid, binary cross-entropy
    OUT_SOFTMAX = 2    # softmax, cross-entropy
    OUT_GAUSSIAN = 3   # means and exp(log-variances), Gaussian negative log-likelihood

cpdef enum Optimizer:
    OPT_NONE = 0       # prediction only: no gradients, no update
    OPT_SGD = 1
    OPT_MOMENTUM = 2
    OPT_ADAM = 3
    OPT_NESTEROV = 4   # momentum with Nesterov's look-ahead (optim.pxd: momentum_kernel)


ctypedef struct Layer:
    Py_ssize_t n_in, n_out
    bint dropout           # keep_prob < 1: a mask on the layer's input
    uint64_t threshold     # round(keep_prob * 2^32), rng.h
    double scale           # 1 / keep_prob
    char *W                # (n_in, n_out) weights
    char *b                # (n_out,) bias
    char *W1               # optimizer state of W (momentum velocity, Adam's m) or NULL
    char *W2               # Adam's v of W or NULL
    char *b1               # the same for b
    char *b2
    char *dW               # (n_in, n_out) gradient scratch
    char *db               # (n_out,) gradient scratch
    char *x_tilde          # (rows, n_in) dropped-out input, or the input itself
    char *a                # (rows, n_out) output
    uint64_t *words        # packed mask of the input, ceil(rows * n_in / 64) words
    # Concrete dropout (a learned keep_prob: src/concrete.pxd) on the input
    bint learned           # the relaxed mask, p = sigmoid(*p_logit)
    char *p_logit          # (1,) the network's parameter, trained in place
    char *a1               # optimizer state of p_logit, like W1 and W2, or NULL
    char *a2
    cyd_concrete conc      # the pass's scalars, set from *p_logit at every batch
    uint64_t block0        # the first generator block of this batch's draw (backward draws it again)
    double da              # dL/dp_logit of the batch
    bint prior             # the prior's terms apply: learned, or p fixed (the checks' network)
    double fixed_p_logit   # the p_logit of the prior when not learned


ctypedef struct NetC:
    int n_layers, activation, output, optimizer
    Py_ssize_t rows        # rows of every buffer (the batch size)
    Layer layers[MAX_LAYERS]
    char *x0               # (rows, n_features) gathered input rows
    char *y                # (rows, n_outputs) gathered targets
    double *w              # (rows,) gathered sample weights
    char *grad             # (rows, widest layer) gradient w.r.t. a layer output
    char *dz               # (rows, widest layer) gradient w.r.t. a pre-activation
    double *norm_scratch   # (widest layer,) for max-norm
    void *gemm_routine     # NumPy's ILP64 ?gemm (blas.pxd: gemm64), or NULL for SciPy's
    int n_threads          # threads of the pool for the GEMM blocks and the mask passes
    bint whole_gemms       # GEMMs whole, on the BLAS's own threads, rather than blocks on the pool
    double lr, momentum, beta1, beta2, eps, l2, max_norm
    bint eps_hat           # Adam's eps added to sqrt(v), not sqrt(v_hat) (optim.pxd: adam_kernel)
    double temperature     # of the learned layers' relaxed masks
    double wr, dr          # the prior's weight and dropout coefficients (cydrop.mlp.network.ConcreteSettings)
    int bad_p_logit        # a learned layer's p_logit left the range its pass computes in: 1 + its index


cdef inline void net_gemm(NetC *net, Trans ta, Trans tb, int m, int n, int k, const floating *A, int lda,
                          const floating *B, int ldb, floating *C, int ldc) noexcept nogil:
    """C := op(A) op(B), row-major, through the Net's BLAS on its route
    (blas.pxd gemm_on_route): in blocks on the pool (one BLAS thread each;
    the blocks depend only on the shapes, so results do not depend on
    n_threads), or whole on the BLAS's own threads."""
    gemm_on_route(net.whole_gemms, ta, tb, m, n, k, <floating>1, A, lda, B, ldb, <floating>0, C, ldc,
                  net.n_threads, net.gemm_routine)


cdef int forward_layers(NetC *net, floating *x0, Py_ssize_t n, uint64_t key, uint64_t *block,
                        int first_layer, int end_layer, bint masks) noexcept nogil:
    """For layers first_layer <= i < end_layer: x_tilde_i := h_i * D_i / keep_prob_i (D_i
    drawn at *block, which advances by the draw; with ``masks`` False, or a
    keep_prob of 1, x_tilde_i := h_i; a learned layer's relaxed mask
    x_tilde_i := h_i * (1 - z) / (1 - p), drawn likewise), a_i := act(x_tilde_i
    W_i + b_i) with h_0 = x0 and h_i = a_{i-1}; the last layer's act is the
    identity (the output's own function is applied by the caller).
    n <= net.rows. Returns -1 (net.bad_p_logit set) if a learned layer's
    p_logit is out of its pass's range, else 0."""
    cdef Layer *ly
    cdef floating *h
    cdef floating *xt
    cdef int i
    cdef bint single = sizeof(floating) == sizeof(float)   # the pass's arithmetic: float or double
    for i in range(first_layer, end_layer):
        ly = &net.layers[i]
        h = x0 if i == 0 else <floating *>net.layers[i - 1].a
        xt = h
        if ly.learned and masks:
            if concrete_setup(&ly.conc, key, <double>(<floating *>ly.p_logit)[0], net.temperature,
                              single) != CONCRETE_OK:
                net.bad_p_logit = i + 1
                return -1
            xt = <floating *>ly.x_tilde
            ly.block0 = block[0]
            concrete_forward(&ly.conc, block[0], n * ly.n_in, h, xt, net.n_threads)
            block[0] += n_words(n * ly.n_in)
        elif ly.dropout and masks:
            xt = <floating *>ly.x_tilde
            draw_and_apply_parallel(h, xt, ly.words, n * ly.n_in, key, block[0], ly.threshold,
                                    <floating>ly.scale, net.n_threads)
            block[0] += n_words(n * ly.n_in)
        # (n, n_out) := (n, n_in) (n_in, n_out)
        net_gemm(net, NO_TRANS, NO_TRANS, <int>n, <int>ly.n_out, <int>ly.n_in, xt, <int>ly.n_in,
                 <floating *>ly.W, <int>ly.n_out, <floating *>ly.a, <int>ly.n_out)
        bias_activation_block(<floating *>ly.a, <floating *>ly.b, n, ly.n_out, ly.n_out,
                              net.activation if i < net.n_layers - 1 else LINEAR)
    return 0


cdef void output_activation(int output, floating *z, Py_ssize_t n, Py_ssize_t width) noexcept nogil:
    """z := the output function of z in place, row by row (cydrop.mlp.losses.activate)."""
    cdef Py_ssize_t r, j
    cdef floating m, s
    cdef floating *row
    if output == OUT_GAUSSIAN:   # the second half of each row: variances from log-variances
        for r in range(n):
            row = z + r * width
            for j in range(width // 2, width):
                if floating is float:
                    row[j] = expf(row[j])
                else:
                    row[j] = exp(row[j])
    elif output == OUT_SIGMOID:
        for r in range(n * width):
            z[r] = sigmoid(z[r])
    elif output == OUT_SOFTMAX:
        for r in range(n):
            row = z + r * width
            m = row[0]
            for j in range(1, width):
                if row[j] > m:
                    m = row[j]
            s = 0
            for j in range(width):
                # shifted so that large logits stay finite
                if floating is float:
                    row[j] = expf(row[j] - m)
                else:
                    row[j] = exp(row[j] - m)
                s += row[j]
            for j in range(width):
                row[j] = row[j] / s


cdef double loss_and_grad(int output, const floating *P, const floating *Y, const double *w,
                          double w_sum, floating *grad, Py_ssize_t n, Py_ssize_t width,
                          double tiny) noexcept nogil:
    """grad := (P - Y) * w_row / w_sum (for each output with its matching
    loss, the gradient of the weighted mean loss w.r.t. the last
    pre-activation; w NULL: all weights 1, w_sum = n); returns the loss of the
    n rows summed with their weights, in double (cydrop.mlp.losses.loss_grad
    and loss)."""
    cdef Py_ssize_t r, j, e
    cdef double total = 0, row, p, y, d
    cdef floating diff, wr
    cdef floating denom = <floating>w_sum
    if output == OUT_GAUSSIAN:
        return gaussian_loss_and_grad(P, Y, w, w_sum, grad, n, width, tiny)
    for r in range(n):
        wr = 1 if w == NULL else <floating>w[r]
        row = 0
        for j in range(width):
            e = r * width + j
            diff = P[e] - Y[e]
            # as cydrop.mlp.losses.loss_grad: times the weight, then divided by their sum
            grad[e] = (diff if w == NULL else diff * wr) / denom
            if output == OUT_LINEAR:
                d = <double>diff
                row += 0.5 * d * d
            else:
                p, y = <double>P[e], <double>Y[e]
                if output == OUT_SOFTMAX:
                    row -= y * log(p if p > tiny else tiny)
                else:
                    row -= y * log(p if p > tiny else tiny) + (1 - y) * log(1 - p if 1 - p > tiny else tiny)
        total += row if w == NULL else row * w[r]
    return total


cdef double gaussian_loss_and_grad(const floating *P, const floating *Y, const double *w, double w_sum,
                                   floating *grad, Py_ssize_t n, Py_ssize_t width, double tiny) noexcept nogil:
    """loss_and_grad for OUT_GAUSSIAN: P's rows hold k = width / 2 means mu,
    then their variances v; Y's first k columns the targets. grad := (mu - y) / v
    for the means and 0.5 (1 - (y - mu)^2 / v) for the log-variances, each
    times w_row / w_sum; the loss of a row is 0.5 ((y - mu)^2 / v + log v +
    log(2 pi)) summed over its targets (cydrop.mlp.losses)."""
    cdef Py_ssize_t r, j, e, k = width // 2
    cdef double total = 0, row, dd, vv
    cdef floating diff, var, g_mean, g_var, wr
    cdef floating denom = <floating>w_sum
    for r in range(n):
        wr = 1 if w == NULL else <floating>w[r]
        row = 0
        for j in range(k):
            e = r * width + j
            diff, var = P[e] - Y[e], P[e + k]
            g_mean = diff / var
            g_var = 0.5 * (1 - diff * diff / var)
            if w != NULL:
                g_mean, g_var = g_mean * wr, g_var * wr
            grad[e], grad[e + k] = g_mean / denom, g_var / denom
            dd, vv = <double>P[e] - <double>Y[e], <double>var
            vv = vv if vv > tiny else tiny
            row += 0.5 * (dd * dd / vv + log(vv)) + HALF_LOG_2PI
        total += row if w == NULL else row * w[r]
    return total


cdef void update(NetC *net, floating *param, const floating *grad, floating *first,
                 floating *second, Py_ssize_t size, long long t, double l2) noexcept nogil:
    """One optimizer step on a parameter array (the step of cydrop.mlp.optimizers' classes)."""
    if net.optimizer == OPT_SGD:
        sgd_kernel(param, grad, size, net.lr, l2)
    elif net.optimizer == OPT_MOMENTUM or net.optimizer == OPT_NESTEROV:
        momentum_kernel(param, grad, first, size, net.lr, net.momentum, l2, net.optimizer == OPT_NESTEROV)
    elif net.optimizer == OPT_ADAM:
        adam_kernel(param, grad, first, second, size, t, net.lr, net.beta1, net.beta2, net.eps, l2, net.eps_hat,
                    net.n_threads)


cdef double forward_backward(NetC *net, floating *x0, const floating *y, const double *w, double w_sum,
                             Py_ssize_t n, Py_ssize_t n_outputs, uint64_t key, uint64_t *block, bint masks,
                             double tiny) noexcept nogil:
    """One batch of n rows (x0, y gathered; w their sample weights or NULL,
    summing to w_sum > 0): forward (with dropout when ``masks``, drawing at
    *block), the output function, and the gradient of the weighted mean loss
    backward into every layer's dW and db: dz := grad * act'; dW := x_tilde^T dz;
    db := sum_rows dz; grad := (dz W^T) * D / keep_prob for the layer below.
    Returns the batch's loss summed over its rows with their weights."""
    cdef Py_ssize_t i
    cdef Layer *ly
    cdef int L = net.n_layers
    cdef floating *g = <floating *>net.grad
    cdef floating *out = <floating *>net.layers[L - 1].a
    cdef floating *h
    cdef double total
    cdef bint relaxed
    if forward_layers(net, x0, n, key, block, 0, L, masks) < 0:
        return INF - INF   # NaN: the caller stops, and reads net.bad_p_logit
    output_activation(net.output, out, n, n_outputs)
    total = loss_and_grad(net.output, out, y, w, w_sum, g, n, n_outputs, tiny)
    for i in range(L - 1, -1, -1):
        ly = &net.layers[i]
        h = x0 if i == 0 else <floating *>net.layers[i - 1].a
        relaxed = ly.learned and masks
        activation_grad_block(g, <floating *>ly.a, <floating *>net.dz, <floating *>ly.db, n,
                              ly.n_out, ly.n_out, net.activation if i < L - 1 else LINEAR)
        net_gemm(net, TRANS, NO_TRANS, <int>ly.n_in, <int>ly.n_out, <int>n,
                 <floating *>ly.x_tilde if (ly.dropout or ly.learned) and masks else h,
                 <int>ly.n_in, <floating *>net.dz, <int>ly.n_out, <floating *>ly.dW, <int>ly.n_out)
        if i > 0 or relaxed:   # the gradient w.r.t. x_tilde: the layer below's, and p_logit's
            net_gemm(net, NO_TRANS, TRANS, <int>n, <int>ly.n_in, <int>ly.n_out, <floating *>net.dz,
                     <int>ly.n_out, <floating *>ly.W, <int>ly.n_out, g, <int>ly.n_in)
            if relaxed:
                # the same noise drawn again: dh := g * (1 - z) / (1 - p) in place
                # (not needed below the first layer) and dL/dp_logit's data term
                concrete_backward(&ly.conc, ly.block0, n * ly.n_in, g, h, g if i > 0 else NULL,
                                  <floating *>NULL, &ly.da, net.n_threads)
            elif ly.dropout and masks:
                apply_mask_parallel(g, ly.words, <floating>ly.scale, n * ly.n_in, g, net.n_threads)
    return total


cdef inline double softplus(double v) noexcept nogil:
    """log(1 + e^v), without overflow at either end."""
    return log1p(exp(-fabs(v))) + (v if v > 0 else 0.0)


cdef void prior_terms(double square_sum, Py_ssize_t n_inputs, double p_logit, double wr, double dr,
                      double *d_p_logit, double *decay) noexcept nogil:
    """The gradients of one layer's prior (cydrop.concrete.prior_terms, whose
    formulas these are): d_p_logit := wr ||W||^2 e^a + dr K p (1 - p) a, and
    decay := 2 wr / (1 - p), the prior's dR/dW = decay * W."""
    cdef double p = exp(-softplus(-p_logit)), keep = exp(-softplus(p_logit)), inv_keep = 1.0 + exp(p_logit)
    d_p_logit[0] = wr * square_sum * (inv_keep - 1.0) + dr * n_inputs * p * keep * p_logit
    decay[0] = 2.0 * wr * inv_keep


cdef double squares_of_chunk(const floating *W, Py_ssize_t n) noexcept nogil:
    """sum W[e]^2 in double, element e added to partial sum e % 8, the 8 then
    added in a fixed tree. Why 8: one running sum is one chain of dependent
    additions (no reordering under the strict IEEE the extensions build
    with), each waiting for the last; 8 chains run side by side."""
    cdef double acc[8]
    cdef Py_ssize_t e, j, n8 = n - n % 8
    for j in range(8):
        acc[j] = 0
    for e in range(0, n8, 8):
        for j in range(8):
            acc[j] += <double>W[e + j] * <double>W[e + j]
    for e in range(n8, n):
        acc[e - n8] += <double>W[e] * <double>W[e]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


ctypedef struct SquaresJob:
    const void *W
    Py_ssize_t n
    double *sums   # one per chunk of CHUNK elements


cdef void squares_chunk(const floating *W, SquaresJob *job, Py_ssize_t c) noexcept nogil:
    """squares_of_chunk on chunk c of a SquaresJob, into its sums[c]."""
    cdef Py_ssize_t start = c * CHUNK
    job.sums[c] = squares_of_chunk(W + start, min(<Py_ssize_t>CHUNK, job.n - start))


cdef void squares_body_float(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef SquaresJob *job = <SquaresJob *>ctx
    squares_chunk(<const float *>job.W, job, c)


cdef void squares_body_double(void *ctx, Py_ssize_t c) noexcept nogil:
    cdef SquaresJob *job = <SquaresJob *>ctx
    squares_chunk(<const double *>job.W, job, c)


cdef double sum_of_squares(const floating *W, Py_ssize_t n, int n_threads) noexcept nogil:
    """||W||^2 in double, at every batch of a learned layer: each chunk of
    CHUNK elements summed alone (squares_of_chunk), the chunks' sums added
    in chunk order, so the same bits on any thread count. On the pool, as
    the updates (optim.pxd), when W is large enough."""
    cdef Py_ssize_t c, n_chunks = (n + CHUNK - 1) // CHUNK
    cdef int team = team_size(n_chunks, n_threads)
    cdef double total = 0
    cdef SquaresJob job
    job.sums = <double *>malloc(n_chunks * sizeof(double)) if team > 1 else NULL
    if job.sums == NULL:   # one thread, or no scratch: the same sums in the same order
        for c in range(n_chunks):
            total += squares_of_chunk(W + c * CHUNK, min(<Py_ssize_t>CHUNK, n - c * CHUNK))
        return total
    job.W, job.n = W, n
    run_items(squares_body_float if floating is float else squares_body_double, &job, n_chunks, team,
              n_chunks >= WAKE_CHUNKS)
    for c in range(n_chunks):
        total += job.sums[c]
    free(job.sums)
    return total


cdef double train_epoch_kernel(NetC *net, const floating *X, const floating *Y,
                               const double *weights, Py_ssize_t n_features, Py_ssize_t n_outputs,
                               const Py_ssize_t *order, Py_ssize_t n_rows, uint64_t key,
                               uint64_t block, long long *t, long long *first_bad_step,
                               double tiny) noexcept nogil:
    """For each mini-batch of net.rows rows of X (rows order[start:start + rows]):
    forward with dropout, J's gradient backward, one update of every layer
    (weights with L2 l2 / batch weight, biases without), then max-norm.
    weights: per-row sample weights, or NULL for all 1; a batch whose weights
    sum to 0 holds no sample and makes no update. Returns the training loss
    summed over the rows with their weights; *t is the optimizer step count,
    *first_bad_step the step (t after it) of the first batch whose loss was
    not finite, if it is still 0 when such a batch comes. A learned layer
    also updates its p_logit, and the prior's terms (net.wr, net.dr) join
    the gradients of its weights and p_logit. A p_logit out of its pass's
    range ends the epoch (NaN, net.bad_p_logit set)."""
    cdef Py_ssize_t start, r, n, i
    cdef double w_sum, batch_loss, decay, d_prior, decay_prior
    cdef floating grad_a
    cdef Layer *ly
    cdef int L = net.n_layers
    cdef double total = 0
    cdef floating *x0 = <floating *>net.x0
    cdef floating *y = <floating *>net.y
    start = 0
    while start < n_rows:
        n = min(net.rows, n_rows - start)
        # gather the batch's rows
        for r in range(n):
            memcpy(x0 + r * n_features, X + order[start + r] * n_features, n_features * sizeof(floating))
            memcpy(y + r * n_outputs, Y + order[start + r] * n_outputs, n_outputs * sizeof(floating))
        w_sum = n
        if weights != NULL:
            w_sum = 0
            for r in range(n):
                net.w[r] = weights[order[start + r]]
                w_sum += net.w[r]
        if w_sum == 0:
            # no sample: no update, but the batch's mask blocks are passed
            # over as if drawn, so that later batches keep their masks
            for i in range(L):
                if net.layers[i].dropout or net.layers[i].learned:
                    block += n_words(n * net.layers[i].n_in)
            start += n
            continue
        batch_loss = forward_backward(net, x0, y, NULL if weights == NULL else net.w, w_sum, n, n_outputs,
                                      key, &block, True, tiny)
        total += batch_loss
        if net.bad_p_logit:
            return total
        t[0] += 1
        if first_bad_step[0] == 0 and not isfinite(batch_loss):
            first_bad_step[0] = t[0]
        for i in range(L):
            ly = &net.layers[i]
            decay = net.l2 / w_sum
            if ly.prior:   # with W before its update, as the reference engine
                prior_terms(sum_of_squares(<floating *>ly.W, ly.n_in * ly.n_out, net.n_threads), ly.n_in,
                            <double>(<floating *>ly.p_logit)[0] if ly.learned else ly.fixed_p_logit,
                            net.wr, net.dr, &d_prior, &decay_prior)
                decay += decay_prior
                if ly.learned:
                    ly.da += d_prior
            update(net, <floating *>ly.W, <floating *>ly.dW, <floating *>ly.W1, <floating *>ly.W2,
                   ly.n_in * ly.n_out, t[0], decay)
            update(net, <floating *>ly.b, <floating *>ly.db, <floating *>ly.b1, <floating *>ly.b2,
                   ly.n_out, t[0], 0.0)   # no penalty on biases
            if ly.learned:
                grad_a = <floating>ly.da
                update(net, <floating *>ly.p_logit, &grad_a, <floating *>ly.a1, <floating *>ly.a2, 1, t[0], 0.0)
        if net.max_norm > 0:
            for i in range(L):
                ly = &net.layers[i]
                max_norm_kernel(<floating *>ly.W, ly.n_in, ly.n_out, net.max_norm, net.norm_scratch, net.n_threads)
        start += n
    return total


cdef void mc_kernel(NetC *net, const floating *X, Py_ssize_t n_rows, Py_ssize_t n_features,
                    Py_ssize_t n_outputs, long long n_passes, uint64_t key, uint64_t block0,
                    double *total, double *total_sq, floating *samples) noexcept nogil:
    """For pass p < n_passes and each chunk of net.rows rows: forward with
    dropout, the output function, total += P, total_sq += P^2 (in double),
    and samples[p, rows, :] := P when samples is not NULL. Pass p's masks
    start at block0 + p * (blocks of one pass), chunk after chunk, layer after
    layer, as n_passes dropout predictions of the reference engine draw them.

    A first layer without input dropout gives the same output in every pass:
    it is computed once per chunk. A learned p_logit out of its pass's range
    stops the passes (net.bad_p_logit set)."""
    cdef Py_ssize_t start, n, e, i
    cdef long long p
    cdef uint64_t done = 0, per_pass = 0, block
    cdef int L = net.n_layers, first
    cdef floating *out = <floating *>net.layers[L - 1].a
    cdef floating *x0
    cdef floating v
    start = 0
    while start < n_rows:
        n = min(net.rows, n_rows - start)
        for i in range(L):
            if net.layers[i].dropout or net.layers[i].learned:
                per_pass += n_words(n * net.layers[i].n_in)
        start += n
    start = 0
    while start < n_rows:
        n = min(net.rows, n_rows - start)
        x0 = <floating *>X + start * n_features
        first = 0
        if L > 1 and not (net.layers[0].dropout or net.layers[0].learned):
            forward_layers(net, x0, n, key, &done, 0, 1, False)
            first = 1
        for p in range(n_passes):
            # `done`: the blocks the chunks before this one draw in a pass
            block = block0 + <uint64_t>p * per_pass + done
            if forward_layers(net, x0, n, key, &block, first, L, True) < 0:
                return
            output_activation(net.output, out, n, n_outputs)
            for e in range(n * n_outputs):
                v = out[e]
                total[start * n_outputs + e] += v
                total_sq[start * n_outputs + e] += <double>v * v
            if samples != NULL:
                memcpy(samples + (p * n_rows + start) * n_outputs, out, n * n_outputs * sizeof(floating))
        for i in range(L):
            if net.layers[i].dropout or net.layers[i].learned:
                done += n_words(n * net.layers[i].n_in)
        start += n


cdef void predict_kernel(NetC *net, const floating *X, Py_ssize_t n_rows, Py_ssize_t n_features,
                         Py_ssize_t n_outputs, floating *P) noexcept nogil:
    """P := the outputs for the n_rows rows of X, dropout off, in chunks of net.rows rows."""
    cdef Py_ssize_t start = 0, n
    cdef uint64_t no_block = 0
    cdef floating *out = <floating *>net.layers[net.n_layers - 1].a
    while start < n_rows:
        n = min(net.rows, n_rows - start)
        # read only: forward_layers takes the input as it takes a layer's output
        forward_layers(net, <floating *>X + start * n_features, n, 0, &no_block, 0, net.n_layers, False)
        output_activation(net.output, out, n, n_outputs)
        memcpy(P + start * n_outputs, out, n * n_outputs * sizeof(floating))
        start += n


# ---------------------------------------------------------------- Python face

# The ILP64 ?gemm of the BLAS NumPy links (blas.pxd: gemm64), by dtype,
# registered by set_numpy_gemm: a Net made with numpy_blas=True calls it.
cdef size_t numpy_sgemm = 0, numpy_dgemm = 0


def set_numpy_gemm(size_t sgemm, size_t dgemm):
    """Register the addresses of the ILP64 Fortran-style ``sgemm`` and
    ``dgemm`` of the BLAS NumPy links (0: none), for Nets made with
    ``numpy_blas=True``. The compiled engine finds them with threadpoolctl
    (``cydrop._threads.numpy_gemm``); an address that is not
    such a routine would be called blindly."""
    global numpy_sgemm, numpy_dgemm
    numpy_sgemm, numpy_dgemm = sgemm, dgemm

cdef char *_data(object arr, str name, object dtype, tuple shape, bint writable) except NULL:
    """The data pointer of arr after checking that the kernels may use it as a
    C-ordered, aligned array of this dtype and shape (written when writable)."""
    cdef char *ptr = <char *>array_data(arr, name, dtype.num, writable)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return ptr


cdef class Net:
    """Buffers and settings of one small MLP for the compiled epoch and MC passes.

    Holds references to the caller's parameter (and optimizer state) arrays,
    which the kernels update in place, and owns every scratch buffer, sized
    once for ``rows`` rows. Each call checks again that the caller's arrays
    are still where and what they were (an array resized in place would
    otherwise be written past its end).

    Parameters
    ----------
    weights, biases : lists of ndarray (n_in, n_out), (n_out,), one float dtype
        Layer i's input is layer i - 1's output.
    keep_prob : sequence of float in (0, 1], one per layer (of its input)
        A learned layer's entry is not read.
    activation : int
        Hidden-layer activation code (cydrop.dense.ACTIVATIONS).
    output : int
        An ``Output`` code.
    rows : int >= 1
        Rows of the buffers: the batch size, or the chunk of MC rows.
    first, second : lists of ndarray like weights + biases + the p_logits, or None
        Optimizer state (momentum's velocity or Adam's m; Adam's v), laid out
        as cydrop.MLP keeps it: the weights' arrays, then the biases', then
        the learned layers' p_logits'.
    optimizer : int
        An ``Optimizer`` code; OPT_NONE for prediction only.
    lr, momentum, beta1, beta2, eps : float
        ``lr`` may be set again between calls (the attribute ``lr``): a
        learning-rate schedule changes it from epoch to epoch.
    eps_hat : bool
        Adam's ``eps`` is added to ``sqrt(v)`` instead of ``sqrt(v_hat)``
        (optim.pxd: adam_kernel).
    l2 : float
        J's L2 coefficient: weights decay by l2 / batch rows, biases not.
    max_norm : float
        Cap of each unit's incoming weight norm after each update; 0 for none.
    numpy_blas : bool
        False: GEMMs through SciPy's BLAS (blas.pxd: gemm). True: through
        the ILP64 ?gemm of the BLAS NumPy links registered with
        :func:`set_numpy_gemm` (blas.pxd: gemm64). Either is kept to one
        thread by the caller while the GEMMs run in blocks on the pool
        (:meth:`set_threads`).
    backward : bool
        Make the gradient buffers, for :meth:`gradients` (a Net that trains
        has them whatever this says).
    p_logits : list of (ndarray (1,) or None), one per layer, or None
        A layer whose keep_prob is learned (Concrete dropout) has its
        p_logit here: its input gets the relaxed mask (in training and MC
        passes), and a Net that trains updates the p_logit in place.
    temperature : float > 0
        Of the relaxed masks.
    prior : (wr, dr) or None
        The prior's coefficients: each learned layer's weights and p_logit
        get the gradients of ``wr ||W||^2 / (1 - p) + dr K (p log p + (1 - p)
        log(1 - p))``.
    fixed_p_logits : list of (float or None), one per layer, or None
        A layer with the prior's weight term at a fixed p (a network whose
        rates were learned, checked with dropout off).
    """
    cdef NetC c
    cdef readonly object dtype
    cdef readonly tuple layer_sizes
    cdef readonly Py_ssize_t rows
    cdef list _caller    # (array, name, shape, data pointer, writable) re-checked per call
    cdef list _own       # scratch arrays the pointers in c point into
    cdef list _dW, _db   # the gradient buffers among them, by layer
    cdef list _p_logits  # the learned layers' p_logit arrays (None for the others), by layer

    def __cinit__(self, list weights, list biases, keep_prob, int activation, int output,
                  Py_ssize_t rows, first=None, second=None, int optimizer=OPT_NONE,
                  double lr=0.0, double momentum=0.0, double beta1=0.9, double beta2=0.999,
                  double eps=1e-8, double l2=0.0, double max_norm=0.0, bint eps_hat=False,
                  bint numpy_blas=False, bint backward=False, p_logits=None, double temperature=0.1,
                  prior=None, fixed_p_logits=None):
        cdef Py_ssize_t L = len(weights), i, widest
        cdef Layer *ly
        if not 1 <= L <= MAX_LAYERS:
            raise ValueError(f"weights must hold 1 to {MAX_LAYERS} layers, got {L}")
        if len(biases) != L or len(keep_prob) != L:
            raise ValueError(f"weights, biases and keep_prob must have one entry per layer ({L}), "
                             f"got {len(biases)} biases and {len(keep_prob)} keep_prob")
        if not 0 <= activation <= 3:
            raise ValueError(f"activation must be a code 0..3 (cydrop.dense.ACTIVATIONS), got {activation}")
        if output not in (OUT_LINEAR, OUT_SIGMOID, OUT_SOFTMAX, OUT_GAUSSIAN):
            raise ValueError(f"output must be an Output code, got {output}")
        if optimizer not in (OPT_NONE, OPT_SGD, OPT_MOMENTUM, OPT_ADAM, OPT_NESTEROV):
            raise ValueError(f"optimizer must be an Optimizer code, got {optimizer}")
        if not isinstance(weights[0], np.ndarray) or weights[0].ndim != 2:
            raise TypeError("weights[0] must be a 2-D numpy.ndarray")
        self.dtype = weights[0].dtype
        if self.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"weights[0] must have dtype float32 or float64, got {self.dtype}")
        sizes = [weights[0].shape[0]]
        for i in range(L):
            if not isinstance(weights[i], np.ndarray) or weights[i].ndim != 2:
                raise TypeError(f"weights[{i}] must be a 2-D numpy.ndarray")
            if weights[i].shape[0] != sizes[i] or weights[i].shape[1] < 1:
                raise ValueError(f"weights[{i}] must have shape ({sizes[i]}, n_out >= 1), got {weights[i].shape}")
            sizes.append(weights[i].shape[1])
        if sizes[0] < 1:
            raise ValueError("weights[0] must have at least one input row")
        self.layer_sizes = tuple(sizes)
        widest = max(sizes)
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        if rows * widest >= 2**31:
            raise ValueError(f"rows * widest layer must be < 2**31 (BLAS dimensions), got {rows} * {widest}")
        self.rows = rows
        p_logits = [None] * L if p_logits is None else list(p_logits)
        fixed_p_logits = [None] * L if fixed_p_logits is None else list(fixed_p_logits)
        if len(p_logits) != L or len(fixed_p_logits) != L:
            raise ValueError(f"p_logits and fixed_p_logits must have one entry per layer ({L})")
        learned = [i for i in range(L) if p_logits[i] is not None]
        if not (temperature > 0 and temperature < INF):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        wr, dr = (0.0, 0.0) if prior is None else prior
        if not (0 <= wr < INF and 0 <= dr < INF):
            raise ValueError(f"prior must be two finite numbers >= 0, got {prior!r}")
        need = {OPT_NONE: 0, OPT_SGD: 0, OPT_MOMENTUM: 1, OPT_NESTEROV: 1, OPT_ADAM: 2}[optimizer]
        n_params = 2 * L + len(learned)
        states = []
        for state, name, needed in ((first, "first", need >= 1), (second, "second", need >= 2)):
            if needed and (not isinstance(state, (list, tuple)) or len(state) != n_params):
                raise ValueError(f"{name} must be a list of {n_params} optimizer state arrays "
                                 f"(weights, biases, then p_logits), got {type(state).__name__}")
            states.append(state if needed else None)
        for name, value, lo, hi in (("lr", lr, 0.0, INF), ("momentum", momentum, 0.0, 1.0),
                                    ("beta1", beta1, 0.0, 1.0), ("beta2", beta2, 0.0, 1.0),
                                    ("eps", eps, 0.0, INF), ("l2", l2, 0.0, INF),
                                    ("max_norm", max_norm, 0.0, INF)):
            if not (lo <= value < hi):   # false for NaN
                raise ValueError(f"{name} must be in [{lo}, {hi}), got {value!r}")
        if optimizer != OPT_NONE and lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")

        self.c.n_layers, self.c.activation, self.c.output, self.c.optimizer = L, activation, output, optimizer
        self.c.rows = rows
        self.c.lr, self.c.momentum, self.c.beta1, self.c.beta2 = lr, momentum, beta1, beta2
        self.c.eps, self.c.l2, self.c.max_norm, self.c.eps_hat = eps, l2, max_norm, eps_hat
        self.c.temperature, self.c.wr, self.c.dr, self.c.bad_p_logit = temperature, wr, dr, 0
        self.c.gemm_routine = NULL
        self.c.n_threads = 1
        self.c.whole_gemms = False
        # SciPy's BLAS now, under the GIL, rather than on the first GEMM,
        # which may run on a worker of the pool
        load_blas()
        if numpy_blas:
            routine = numpy_sgemm if self.dtype == np.float32 else numpy_dgemm
            if routine == 0:
                raise ValueError(f"numpy_blas=True, but no ?gemm of NumPy's BLAS is registered for {self.dtype} "
                                 "(set_numpy_gemm)")
            self.c.gemm_routine = <void *>routine
        self._caller, self._own = [], []
        self._dW, self._db = [], []
        self._p_logits = p_logits
        train = optimizer != OPT_NONE
        grads = train or backward
        for i in range(L):
            ly = &self.c.layers[i]
            ly.n_in, ly.n_out = sizes[i], sizes[i + 1]
            ly.learned = p_logits[i] is not None
            kp = 1.0 if ly.learned else keep_prob[i]
            if not (0.0 < kp <= 1.0):
                raise ValueError(f"keep_prob[{i}] must be in (0, 1], got {kp!r}")
            ly.dropout = kp < 1.0
            ly.p_logit = ly.a1 = ly.a2 = NULL
            ly.da, ly.block0 = 0.0, 0
            ly.prior = prior is not None and (ly.learned or fixed_p_logits[i] is not None)
            ly.fixed_p_logit = 0.0 if fixed_p_logits[i] is None else fixed_p_logits[i]
            if ly.learned:
                k = 2 * L + learned.index(i)
                ly.p_logit = self._take(p_logits[i], f"p_logits[{i}]", (1,), train)
                if states[0] is not None:
                    ly.a1 = self._take(states[0][k], f"first[{k}]", (1,), True)
                if states[1] is not None:
                    ly.a2 = self._take(states[1][k], f"second[{k}]", (1,), True)
            ly.threshold = int(round(kp * 4294967296.0))   # cydrop._validation.threshold_of
            ly.scale = 1.0 / kp
            ly.W = self._take(weights[i], f"weights[{i}]", (ly.n_in, ly.n_out), train)
            ly.b = self._take(biases[i], f"biases[{i}]", (ly.n_out,), train)
            ly.W1 = ly.W2 = ly.b1 = ly.b2 = NULL
            if states[0] is not None:
                ly.W1 = self._take(states[0][i], f"first[{i}]", (ly.n_in, ly.n_out), True)
                ly.b1 = self._take(states[0][L + i], f"first[{L + i}]", (ly.n_out,), True)
            if states[1] is not None:
                ly.W2 = self._take(states[1][i], f"second[{i}]", (ly.n_in, ly.n_out), True)
                ly.b2 = self._take(states[1][L + i], f"second[{L + i}]", (ly.n_out,), True)
            ly.a = self._scratch((rows, ly.n_out))
            ly.dW = self._scratch((ly.n_in, ly.n_out)) if grads else NULL
            ly.db = self._scratch((ly.n_out,)) if grads else NULL
            if grads:   # the two arrays just made (no negative indices: wraparound is off)
                self._dW.append(self._own[len(self._own) - 2])
                self._db.append(self._own[len(self._own) - 1])
            ly.x_tilde = self._scratch((rows, ly.n_in)) if ly.dropout or ly.learned else NULL
            ly.words = NULL
            if ly.dropout:
                words = np.zeros(n_words(rows * ly.n_in), dtype=np.uint64)
                self._own.append(words)
                ly.words = <uint64_t *>cnp.PyArray_DATA(words)
        self.c.x0 = self._scratch((rows, sizes[0]))
        self.c.y = self._scratch((rows, sizes[L]))
        row_weights = np.zeros(rows, dtype=np.float64)
        self._own.append(row_weights)
        self.c.w = <double *>cnp.PyArray_DATA(row_weights)
        self.c.grad = self._scratch((rows, widest))
        self.c.dz = self._scratch((rows, widest))
        norms = np.zeros(widest, dtype=np.float64)
        self._own.append(norms)
        self.c.norm_scratch = <double *>cnp.PyArray_DATA(norms)

    cdef char *_take(self, object arr, str name, tuple shape, bint writable) except NULL:
        cdef char *ptr = _data(arr, name, self.dtype, shape, writable)
        self._caller.append((arr, name, shape, <size_t>ptr, writable))
        return ptr

    cdef char *_scratch(self, tuple shape) except NULL:
        arr = np.zeros(shape, dtype=self.dtype)
        self._own.append(arr)
        return <char *>cnp.PyArray_DATA(arr)

    cdef char *_input(self, object X, Py_ssize_t *n_samples) except NULL:
        """The data of X, an input of the Net's dtype (n_samples, n_features),
        checked after the caller's arrays (``_recheck``); sets n_samples."""
        self._recheck()
        if not isinstance(X, np.ndarray) or X.ndim != 2:
            raise ValueError(f"X must be a 2-D numpy.ndarray (n_samples, {self.layer_sizes[0]})")
        n_samples[0] = X.shape[0]
        return _data(X, "X", self.dtype, (n_samples[0], self.layer_sizes[0]), False)

    cdef int _recheck(self) except -1:
        """The caller's arrays are still the ones the pointers point into."""
        for arr, name, shape, ptr, writable in self._caller:
            if <size_t>_data(arr, name, self.dtype, shape, writable) != ptr:
                raise ValueError(f"{name} was reallocated (resized in place) since the Net was made")
        return 0

    def set_threads(self, int n_threads, bint whole_gemms=False):
        """Threads of cydrop's pool for the next calls (1: the calling thread
        alone): the mask passes, and the GEMMs cut into blocks (blas.pxd:
        gemm_blocked), one BLAS thread each; with ``whole_gemms``, the GEMMs
        whole instead, on the BLAS's own threads."""
        if not 1 <= n_threads <= 4096:
            raise ValueError(f"n_threads must be in [1, 4096], got {n_threads}")
        self.c.n_threads = n_threads
        self.c.whole_gemms = whole_gemms

    @property
    def lr(self):
        """The learning rate of the next update."""
        return self.c.lr

    @lr.setter
    def lr(self, double value):
        if self.c.optimizer != OPT_NONE and not (0.0 < value < INF):   # false for NaN
            raise ValueError(f"lr must be in (0.0, inf), got {value!r}")
        self.c.lr = value

    def _blocks_per_draw(self, Py_ssize_t n):
        """Generator blocks the masks of one forward pass of n rows draw."""
        return sum(n_words(n * self.c.layers[i].n_in) for i in range(self.c.n_layers)
                   if self.c.layers[i].dropout or self.c.layers[i].learned)

    def take_bad_p_logit(self):
        """(layer, p_logit) if the last pass stopped at a learned p_logit out
        of its pass's range, else None; cleared by the call (the caller
        raises: cydrop.mlp.engines.interface.diverged_keep_prob)."""
        i = self.c.bad_p_logit - 1
        self.c.bad_p_logit = 0
        return (i, float(self._p_logits[i][0])) if i >= 0 else None

    def blocks_per_epoch(self, Py_ssize_t n_rows):
        """Generator blocks one train_epoch over n_rows rows draws."""
        full, rest = divmod(n_rows, self.rows)
        return full * self._blocks_per_draw(self.rows) + (self._blocks_per_draw(rest) if rest else 0)

    def blocks_per_mc(self, Py_ssize_t n_rows, long long n_passes):
        """Generator blocks one mc_passes call over n_rows rows draws."""
        return n_passes * self.blocks_per_epoch(n_rows)

    def train_epoch(self, X, Y, order, uint64_t key, uint64_t block0, long long t, sample_weight=None):
        """One epoch: mini-batches of ``rows`` rows of X and Y taken in ``order``.

        Parameters
        ----------
        X : ndarray (n_samples, n_features) of the Net's dtype, C-contiguous
        Y : ndarray (n_samples, n_outputs), the output layer's targets
        sample_weight : ndarray (n_samples,) of float64 >= 0, or None
        order : ndarray (n_rows,) of intp, each in [0, n_samples)
        key, block0 : the generator key and the first block reserved for the
            epoch (``blocks_per_epoch(n_rows)`` blocks)
        t : optimizer steps made before this epoch

        Returns
        -------
        (loss_sum, t, first_bad_step) : the training loss summed over the
        rows with their weights, the step count after the epoch, and the
        step (t after it) of the first batch whose loss was not finite, or 0.
        """
        cdef Py_ssize_t n0 = self.layer_sizes[0], n_out = self.layer_sizes[len(self.layer_sizes) - 1]
        cdef Py_ssize_t n_samples, n_rows, r
        cdef const Py_ssize_t *idx
        cdef char *Xp
        cdef char *Yp
        cdef const double *wp = NULL
        cdef double total, tiny
        cdef long long first_bad_step = 0
        if self.c.optimizer == OPT_NONE:
            raise ValueError("this Net was made for prediction (optimizer OPT_NONE)")
        if t < 0:
            raise ValueError(f"t must be >= 0, got {t}")
        Xp = self._input(X, &n_samples)
        Yp = _data(Y, "Y", self.dtype, (n_samples, n_out), False)
        if sample_weight is not None:
            wp = <const double *>_data(sample_weight, "sample_weight", np.dtype(np.float64), (n_samples,), False)
        if not isinstance(order, np.ndarray) or order.ndim != 1:
            raise ValueError("order must be a 1-D numpy.ndarray of intp")
        n_rows = order.shape[0]
        idx = <const Py_ssize_t *>_data(order, "order", np.dtype(np.intp), (n_rows,), False)
        for r in range(n_rows):
            if not 0 <= idx[r] < n_samples:
                raise ValueError(f"order[{r}] = {idx[r]} is not a row of X (0 <= i < {n_samples})")
        tiny = float(np.finfo(self.dtype).tiny)
        if self.dtype == np.float32:
            with nogil:
                total = train_epoch_kernel(&self.c, <const float *>Xp, <const float *>Yp, wp, n0, n_out,
                                           idx, n_rows, key, block0, &t, &first_bad_step, tiny)
        else:
            with nogil:
                total = train_epoch_kernel(&self.c, <const double *>Xp, <const double *>Yp, wp, n0, n_out,
                                           idx, n_rows, key, block0, &t, &first_bad_step, tiny)
        return total, t, first_bad_step

    def mc_passes(self, X, long long n_passes, uint64_t key, uint64_t block0, total, total_sq,
                  samples=None):
        """n_passes dropout passes over the rows of X, in chunks of ``rows``.

        total, total_sq : float64 (n_samples, n_outputs), added to (sum of P
        and of P^2 over the passes). samples : the Net's dtype (n_passes,
        n_samples, n_outputs), or None. key, block0: the generator key and
        the first of ``blocks_per_mc(n_samples, n_passes)`` reserved blocks.
        """
        cdef Py_ssize_t n0 = self.layer_sizes[0], n_out = self.layer_sizes[len(self.layer_sizes) - 1], n_samples
        cdef char *Xp
        cdef double *tp
        cdef double *tsp
        cdef char *sp = NULL
        if n_passes < 0:
            raise ValueError(f"n_passes must be >= 0, got {n_passes}")
        Xp = self._input(X, &n_samples)
        f64 = np.dtype(np.float64)
        tp = <double *>_data(total, "total", f64, (n_samples, n_out), True)
        tsp = <double *>_data(total_sq, "total_sq", f64, (n_samples, n_out), True)
        if samples is not None:
            sp = _data(samples, "samples", self.dtype, (n_passes, n_samples, n_out), True)
        if n_samples == 0 or n_passes == 0:
            return
        if self.dtype == np.float32:
            with nogil:
                mc_kernel(&self.c, <const float *>Xp, n_samples, n0, n_out, n_passes, key, block0,
                          tp, tsp, <float *>sp)
        else:
            with nogil:
                mc_kernel(&self.c, <const double *>Xp, n_samples, n0, n_out, n_passes, key, block0,
                          tp, tsp, <double *>sp)

    def predict(self, X, P):
        """P := the outputs for the rows of X, dropout off, in chunks of ``rows``.

        X : ndarray (n_samples, n_features) of the Net's dtype; P : ndarray
        (n_samples, n_outputs) of the Net's dtype, written."""
        cdef Py_ssize_t n0 = self.layer_sizes[0], n_out = self.layer_sizes[len(self.layer_sizes) - 1], n_samples
        cdef char *Xp
        cdef char *Pp
        Xp = self._input(X, &n_samples)
        Pp = _data(P, "P", self.dtype, (n_samples, n_out), True)
        if n_samples == 0:
            return
        if self.dtype == np.float32:
            with nogil:
                predict_kernel(&self.c, <const float *>Xp, n_samples, n0, n_out, <float *>Pp)
        else:
            with nogil:
                predict_kernel(&self.c, <const double *>Xp, n_samples, n0, n_out, <double *>Pp)

    def gradients(self, X, Y):
        """``(loss_sum, dW, db)`` of all rows of X, Y as one batch, dropout off:
        the loss summed over the rows and the gradients of the mean loss,
        copies of the layers' gradient buffers (lists by layer). The Net must
        have been made with ``backward`` (or an optimizer) and ``rows`` >=
        the rows of X."""
        cdef Py_ssize_t n0 = self.layer_sizes[0], n_out = self.layer_sizes[len(self.layer_sizes) - 1], n
        cdef char *Xp
        cdef char *Yp
        cdef double total, tiny
        cdef uint64_t no_block = 0
        if not self._dW:
            raise ValueError("this Net has no gradient buffers (make it with backward=True)")
        Xp = self._input(X, &n)
        if not 1 <= n <= self.rows:
            raise ValueError(f"X must have 1 to rows = {self.rows} rows, got {n}")
        Yp = _data(Y, "Y", self.dtype, (n, n_out), False)
        tiny = float(np.finfo(self.dtype).tiny)
        if self.dtype == np.float32:
            with nogil:
                memcpy(self.c.x0, Xp, n * n0 * sizeof(float))
                total = forward_backward(&self.c, <float *>self.c.x0, <const float *>Yp, NULL, n, n, n_out,
                                         0, &no_block, False, tiny)
        else:
            with nogil:
                memcpy(self.c.x0, Xp, n * n0 * sizeof(double))
                total = forward_backward(&self.c, <double *>self.c.x0, <const double *>Yp, NULL, n, n, n_out,
                                         0, &no_block, False, tiny)
        return total, [dW.copy() for dW in self._dW], [db.copy() for db in self._db]
