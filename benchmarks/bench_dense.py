"""Fused dense layer forward+backward: cydrop beside bare GEMMs, NumPy and PyTorch.

One pytest-benchmark group per (dtype, batch, n_in[, n_out]), e.g.
``dense-float32-256x1024`` (``n_in = n_out = 1024``) or
``dense-float64-64x784x512``: batch in (64, 256, 1024) by width in
(512, 1024, 4096) for float32, plus 64x784->512 (an MNIST-sized input layer),
256x1024 and 1024x4096 in float64. The NumPy and PyTorch bodies are those of
:mod:`cydrop.apps.bench.baselines`, shared with ``cydrop bench``. Every case runs one layer ``out = relu((x * D / keep_prob) @ W + b)``
forward and backward (``dx``, ``dW``, ``db``) at keep_prob 0.8:

``gemms``              ``x @ W``, ``x.T @ g``, ``g @ W.T`` with NumPy: the three
                       GEMMs every case must do, the floor. Read every ratio
                       against this case.
``cydrop``             ``cydrop.dense_forward(seed=Generator)`` (a fresh mask every
                       call) + ``cydrop.dense_backward``.
``cydrop_regenerate``  the same with ``regenerate=True``: the backward pass draws
                       the mask again instead of keeping ``x_tilde`` and the mask.
``cydrop_keep1``       keep_prob 1: no dropout, no mask work.
``cydrop_deterministic`` ``cydrop.set_deterministic(True)``: GEMMs as fixed blocks
                       on cydrop's OpenMP threads (bit-identical for any thread count).
``numpy``              the course layer: ``D = np.random.rand(*x.shape) < keep_prob``,
                       ``xt = x * D / keep_prob``, ``z = xt @ W + b``, ..., as in
                       :func:`cydrop.apps.bench.baselines.numpy_layer`.
``numpy_rng``          the same with ``rng.random(shape, dtype=x.dtype) < keep_prob``
                       (a modern ``np.random.Generator``, uniforms in float32).
``torch``              ``nn.Dropout(p=0.2)`` -> ``nn.Linear`` -> ReLU in the matching
                       dtype, gradients by ``torch.autograd.grad(out, (x, weight, bias),
                       grad_outputs=g)``: the gradient of ``(out * g).sum()`` without
                       timing an extra multiply and reduction no other case does.

``test_mixed_numpy_loop`` (group ``dense-mixed-loop-256x1024``) times a few
training steps of a two-layer net, 1024 -> 1024 (dropout on the input, ReLU)
-> 10 (softmax), SGD updates included. The hidden layer is cydrop's fused
layer or the NumPy course layer; the output layer is the user's own NumPy
``@`` in both. ``gemms`` is the loop's bare GEMMs. ``cydrop`` runs in the
default mode (its GEMMs on NumPy's BLAS threads, the pool the loop already
uses); ``cydrop_deterministic`` in ``cydrop.set_deterministic(True)`` mode,
whose GEMM blocks run on cydrop's OpenMP threads, so this case shows what
alternating two thread pools costs.

Timing never decides pass/fail; every case checks its result cheaply
(shapes, dtypes, finite values, ReLU, ``db == (g * (out > 0)).sum(0)``, the
fraction of zeros in ``dx`` against keep_prob, and where the mask is known the
first rows/columns of ``out``, ``dx`` and ``dW`` against a float64 reference),
so a broken case fails even under ``--benchmark-disable``.

Width-4096 groups use ``benchmark.pedantic`` with 3 rounds (batch 1024 takes
about a second per call on two cores).

Run::

    python -m pytest benchmarks/bench_dense.py -q --benchmark-disable   # each body once, checks only
    python -m pytest benchmarks/bench_dense.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name -q

Threads: ``gemms``, ``numpy``, the NumPy parts of the loop and cydrop's GEMMs
in its default mode run on NumPy's OpenBLAS threads (see
``threadpoolctl.threadpool_info()``); cydrop's deterministic mode on
``cydrop.get_num_threads()`` OpenMP threads; PyTorch on
``torch.get_num_threads()``. NumPy's element-wise work (mask draw, scaling,
ReLU) is single-threaded. Set ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` for
a one-thread comparison.
"""
import numpy as np
import pytest
from _common import import_torch, numpy_blas_threads

import cydrop
from cydrop.apps.bench import baselines as bl

KEEP_PROB = 0.8
BATCHES = (64, 256, 1024)
WIDTHS = (512, 1024, 4096)
# (dtype, batch, n_in, n_out): square layers for float32, and from small (an
# MNIST-sized input layer, batch 64, 784 -> 512) to large in both dtypes
CASES = [(np.float32, batch, width, width) for batch in BATCHES for width in WIDTHS]
CASES += [(np.float32, 64, 784, 512)]
CASES += [(np.float64, 64, 784, 512), (np.float64, 256, 1024, 1024), (np.float64, 1024, 4096, 4096)]

# Width-4096 cases cost up to ~1 s a call: a fixed 1 warm-up + 3 timed rounds
# instead of pytest-benchmark's calibration (>= 5 rounds and 1 s).
_PEDANTIC_WIDTH = 4096
_PEDANTIC = dict(rounds=3, iterations=1, warmup_rounds=1)

# Checks compare against a float64 reference; tolerances relative to the largest
# reference value of the compared block. cydrop's blocked GEMMs sum in another
# order than NumPy's BLAS, so float32 agrees to a few ulps times sqrt(n_in).
_RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-10}
_CHECK_ROWS = 4      # rows of out/dx and columns of dW compared with the reference
_CHECK_SAMPLE = 8192  # dx elements whose zeros are counted (every dx has >= 64 * 512)

# Benchmarks run once warm before timing: the first touch of fresh output pages
# and the first call of a kernel are not what is being measured.
pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=3)


def _case_id(case):
    dtype, batch, n_in, n_out = case
    return f"{np.dtype(dtype).name}-{batch}x{n_in}" + (f"x{n_out}" if n_out != n_in else "")


case_params = pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])


@pytest.fixture
def layer(make_input, make_weights, case):
    """(x, W, b, g) of a case: input, weights, bias and output gradient, read-only."""
    dtype, batch, n_in, n_out = case
    W, b = make_weights(n_in, n_out, dtype)
    return make_input((batch, n_in), dtype), W, b, make_input((batch, n_out), dtype, "dy")


def _group(benchmark, case, impl, threads, keep_prob=KEEP_PROB):
    """Put the benchmark in its (dtype, batch, width) group and describe it."""
    dtype, batch, n_in, n_out = case
    benchmark.group = f"dense-{_case_id(case)}"
    benchmark.extra_info.update(batch=batch, n_in=n_in, n_out=n_out, dtype=np.dtype(dtype).name,
                                gemm_flops=3 * 2 * batch * n_in * n_out, impl=impl,
                                keep_prob=keep_prob, threads=threads)


def _run(benchmark, case, fn, *args, **kwargs):
    """Time fn(*args, **kwargs): calibrated rounds, or 3 fixed rounds for the widest layers."""
    if case[2] >= _PEDANTIC_WIDTH:  # n_in
        return benchmark.pedantic(fn, args=args, kwargs=kwargs, **_PEDANTIC)
    return benchmark(fn, *args, **kwargs)




# ---------------------------------------------------------------- checks


def _check_layer(x, W, b, g, out, dx, dW, db, keep_prob, kept=None):
    """Cheap checks of one layer's forward and backward results.

    ``kept`` is the input mask as bools (batch, n_in), True = kept, when the
    case exposes it; None when it does not (PyTorch).
    """
    batch, n_in = x.shape
    n_out = W.shape[1]
    for name, arr, shape in (("out", out, (batch, n_out)), ("dx", dx, (batch, n_in)),
                             ("dW", dW, (n_in, n_out)), ("db", db, (n_out,))):
        assert arr.shape == shape, f"{name} shape {arr.shape} != {shape}"
        assert arr.dtype == x.dtype, f"{name} dtype {arr.dtype} != {x.dtype}"
        assert np.isfinite(arr).all(), f"{name} has non-finite values"
    assert (out >= 0).all(), "ReLU output has negative values"
    rtol = _RTOL[x.dtype]

    def close(actual, desired, what):
        np.testing.assert_allclose(actual, desired, rtol=rtol, atol=rtol * np.abs(desired).max(),
                                   err_msg=what)

    # the ReLU gradient as the case's own output defines it
    dz = g.astype(np.float64) * (out > 0)
    close(db, dz.sum(axis=0), "db != (g * (out > 0)).sum(0)")
    # dx = (dz @ W.T) * D / keep_prob: its zeros are the dropped inputs
    zero_frac = (dx.reshape(-1)[:_CHECK_SAMPLE] == 0).mean()
    # binomial sd of the fraction over 8192 elements < 0.006: 0.06 is a 10-sd margin
    assert abs(zero_frac - (1 - keep_prob)) < 0.06, \
        f"dx has {zero_frac:.3f} zeros for keep_prob {keep_prob}"
    if kept is None:
        return
    assert kept.shape == x.shape and kept.dtype == np.bool_
    k = _CHECK_ROWS
    scale = kept / keep_prob
    xt = x.astype(np.float64) * scale
    close(out[:k], np.maximum(xt[:k] @ W + b, 0), "out rows != relu((x * D / keep_prob) @ W + b)")
    assert not dx[:k][~kept[:k]].any(), "dx is non-zero at a dropped input"
    close(dx[:k], (dz[:k] @ W.T) * scale[:k], "dx rows != (dz @ W.T) * D / keep_prob")
    close(dW[:, :k], xt.T @ dz[:, :k], "dW columns != x_tilde.T @ dz")


# ---------------------------------------------------------------- cases


@case_params
def test_gemms(benchmark, layer, case):
    x, W, b, g = layer
    _group(benchmark, case, "x @ W, x.T @ g, g @ W.T (NumPy)", numpy_blas_threads(), keep_prob=None)
    z, dW, dx = _run(benchmark, case, bl.gemms, x, W, g)
    for name, arr, shape in (("x @ W", z, g.shape), ("x.T @ g", dW, W.shape), ("g @ W.T", dx, x.shape)):
        assert arr.shape == shape and arr.dtype == x.dtype, f"{name}: {arr.shape} {arr.dtype}"
        assert np.isfinite(arr).all(), f"{name} has non-finite values"


def _cydrop_layer(x, W, b, g, keep_prob, seed, regenerate):
    out, cache = cydrop.dense_forward(x, W, b, keep_prob, activation="relu", seed=seed,
                                      regenerate=regenerate)
    dx, dW, db = cydrop.dense_backward(g, cache)
    return out, cache, dx, dW, db


def _bench_cydrop(benchmark, layer, case, keep_prob, regenerate, seed):
    x, W, b, g = layer
    gen = cydrop.Generator(seed) if keep_prob < 1 else None
    _group(benchmark, case, f"cydrop.dense_forward(seed=Generator, regenerate={regenerate}) + dense_backward",
           cydrop.get_num_threads(), keep_prob=keep_prob)
    out, cache, dx, dW, db = _run(benchmark, case, _cydrop_layer, x, W, b, g, keep_prob, gen, regenerate)
    assert cache.regenerate == regenerate
    if regenerate:
        assert cache.nbytes == 0, f"a regenerating cache holds {cache.nbytes} bytes"
    elif keep_prob < 1:
        assert cache.nbytes == x.nbytes + -(-x.size // 64) * 8, f"cache holds {cache.nbytes} bytes"
    _check_layer(x, W, b, g, out, dx, dW, db, keep_prob, cache.mask.to_bool())


@case_params
def test_cydrop(benchmark, layer, case):
    _bench_cydrop(benchmark, layer, case, KEEP_PROB, regenerate=False, seed=1)


@case_params
def test_cydrop_regenerate(benchmark, layer, case):
    _bench_cydrop(benchmark, layer, case, KEEP_PROB, regenerate=True, seed=2)


@case_params
def test_cydrop_keep1(benchmark, layer, case):
    _bench_cydrop(benchmark, layer, case, 1.0, regenerate=False, seed=None)


@case_params
def test_cydrop_deterministic(benchmark, layer, case):
    cydrop.set_deterministic(True)
    try:
        _bench_cydrop(benchmark, layer, case, KEEP_PROB, regenerate=False, seed=3)
    finally:
        cydrop.set_deterministic(False)


@case_params
def test_numpy(benchmark, layer, case):
    x, W, b, g = layer
    np.random.seed(3)  # the course's global RNG; benchmarks only, never the library
    _group(benchmark, case, "course layer: np.random.rand < keep_prob, x * D / keep_prob, @, ...",
           numpy_blas_threads())
    out, dx, dW, db, D = _run(benchmark, case, bl.numpy_layer, x, W, b, g, KEEP_PROB)
    _check_layer(x, W, b, g, out, dx, dW, db, KEEP_PROB, D)


@case_params
def test_numpy_rng(benchmark, layer, case):
    x, W, b, g = layer
    rng = np.random.default_rng(5)
    _group(benchmark, case, f"course layer with rng.random(dtype={x.dtype.name}) < keep_prob",
           numpy_blas_threads())
    out, dx, dW, db, D = _run(benchmark, case, bl.numpy_layer, x, W, b, g, KEEP_PROB, rng)
    _check_layer(x, W, b, g, out, dx, dW, db, KEEP_PROB, D)


@case_params
def test_torch(benchmark, layer, case):
    torch = import_torch()
    x, W, b, g = layer
    torch.manual_seed(4)
    model, params = bl.torch_layer_model(torch, W, b, KEEP_PROB)
    x_t, g_t = torch.from_numpy(x.copy()), torch.from_numpy(g.copy())  # copy: torch warns on read-only arrays
    _group(benchmark, case, "nn.Dropout + nn.Linear + nn.ReLU, torch.autograd.grad",
           torch.get_num_threads())
    out, dx, dW_t, db = _run(benchmark, case, bl.torch_layer, torch, model, params, x_t, g_t)
    assert dW_t.shape == (W.shape[1], W.shape[0])
    _check_layer(x, W, b, g, out.detach().numpy(), dx.numpy(), dW_t.numpy().T, db.numpy(), KEEP_PROB)


# ---------------------------------------------------------------- mixed loop

_LOOP_BATCH, _LOOP_WIDTH, _LOOP_CLASSES = 256, 1024, 10
_LOOP_STEPS = 4
_LOOP_LR = 0.01


def _softmax_xent(logits, Y):
    """Mean cross-entropy of softmax(logits) against one-hot Y, and its gradient."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[Y.astype(bool)]).mean()
    return loss, (p - Y) / logits.shape[0]


def _output_layer(h, W2, b2, Y):
    """The user's own output layer, NumPy ``@``: (loss, dh, dW2, db2)."""
    loss, dlogits = _softmax_xent(h @ W2 + b2, Y)
    return loss, dlogits @ W2.T, h.T @ dlogits, dlogits.sum(0)


def _loop_cydrop(x, Y, params, gen):
    W1, b1, W2, b2 = params
    for _ in range(_LOOP_STEPS):
        h, cache = cydrop.dense_forward(x, W1, b1, KEEP_PROB, seed=gen)
        loss, dh, dW2, db2 = _output_layer(h, W2, b2, Y)
        _, dW1, db1 = cydrop.dense_backward(dh, cache, need_dx=False)  # first layer: no dx
        W1 -= _LOOP_LR * dW1
        b1 -= _LOOP_LR * db1
        W2 -= _LOOP_LR * dW2
        b2 -= _LOOP_LR * db2
    return loss


def _loop_numpy(x, Y, params, gen):
    W1, b1, W2, b2 = params
    for _ in range(_LOOP_STEPS):
        D = np.random.rand(*x.shape) < KEEP_PROB
        xt = x * D / KEEP_PROB
        z = xt @ W1 + b1
        h = np.maximum(z, 0)
        loss, dh, dW2, db2 = _output_layer(h, W2, b2, Y)
        dz = dh * (z > 0)
        W1 -= _LOOP_LR * (xt.T @ dz)
        b1 -= _LOOP_LR * dz.sum(0)
        W2 -= _LOOP_LR * dW2
        b2 -= _LOOP_LR * db2
    return loss


def _loop_gemms(x, Y, params, gen):
    W1, _, W2, _ = params
    for _ in range(_LOOP_STEPS):
        h = x @ W1
        dlogits = h @ W2  # stands in for the softmax gradient: same shape
        dh = dlogits @ W2.T
        dW2 = h.T @ dlogits
        dW1 = x.T @ dh
    return np.float64(dW1[0, 0] + dW2[0, 0])


_LOOPS = {
    "gemms": (_loop_gemms, "the loop's 5 GEMMs per step, NumPy @"),
    "cydrop": (_loop_cydrop, "cydrop dense_forward/backward + NumPy output layer"),
    "numpy": (_loop_numpy, "course layer + NumPy output layer"),
    "cydrop_deterministic": (_loop_cydrop, "cydrop loop in set_deterministic(True) mode"),
}


@pytest.mark.parametrize("impl", list(_LOOPS))
def test_mixed_numpy_loop(benchmark, make_input, make_weights, impl):
    """A few SGD steps with the hidden layer by ``impl`` and the output layer by NumPy.

    The weights are the test's own copies, updated in place round after round
    (training on one fixed batch), so the loss stays finite and the timing does
    not depend on how far training has gone.
    """
    fn, desc = _LOOPS[impl]
    dtype = np.float32
    x = make_input((_LOOP_BATCH, _LOOP_WIDTH), dtype)
    W1, b1 = make_weights(_LOOP_WIDTH, _LOOP_WIDTH, dtype)
    W2, b2 = make_weights(_LOOP_WIDTH, _LOOP_CLASSES, dtype)
    params = [W1.copy(), b1.copy(), W2.copy(), b2.copy()]
    labels = np.random.default_rng(7).integers(0, _LOOP_CLASSES, _LOOP_BATCH)
    Y = np.eye(_LOOP_CLASSES, dtype=dtype)[labels]
    np.random.seed(8)
    benchmark.group = f"dense-mixed-loop-{_LOOP_BATCH}x{_LOOP_WIDTH}"
    benchmark.extra_info.update(batch=_LOOP_BATCH, n_in=_LOOP_WIDTH, n_hidden=_LOOP_WIDTH,
                                n_classes=_LOOP_CLASSES, steps=_LOOP_STEPS, dtype="float32",
                                keep_prob=KEEP_PROB, impl=desc,
                                cydrop_threads=cydrop.get_num_threads(),
                                numpy_blas_threads=numpy_blas_threads())
    if impl == "cydrop_deterministic":
        cydrop.set_deterministic(True)
        try:
            loss = benchmark(fn, x, Y, params, cydrop.Generator(9))
        finally:
            cydrop.set_deterministic(False)
    else:
        loss = benchmark(fn, x, Y, params, cydrop.Generator(9))
    assert np.isfinite(loss), f"loss {loss}"
    for new, old in zip(params, (W1, b1, W2, b2)):
        assert new.dtype == dtype and new.shape == old.shape and np.isfinite(new).all()
    if impl != "gemms":
        assert 0 < loss < 10, f"loss {loss}"  # ln(10) = 2.3 at start, falling as it fits the batch
        assert not np.array_equal(params[0], W1), "W1 was never updated"
