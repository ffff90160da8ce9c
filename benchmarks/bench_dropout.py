"""Dropout forward/backward: cydrop beside its NumPy and PyTorch baselines.

One pytest-benchmark group per (pass, dtype, shape), e.g.
``forward-float32-1024x4096``, holding:

forward
    ``copy``           ``x.copy()``: one read and one write of x, the floor.
    ``cydrop_gen``     ``cydrop.dropout(x, keep_prob, seed=gen)``, a Generator
                       advanced by each call (a fresh mask every call).
    ``cydrop_out``     the same into a preallocated ``out=``.
    ``numpy_course``   ``D = np.random.rand(*x.shape) < keep_prob; A = x * D / keep_prob``.
    ``numpy_rng``      ``rng.random(shape, dtype=x.dtype) < keep_prob``, then multiply.
    ``torch``          ``torch.ops.aten.native_dropout(t, 1 - keep_prob, True)``.
backward (all cases apply the same mask)
    ``copy``           ``dy.copy()``.
    ``cydrop``         ``cydrop.dropout_backward(dy, mask)``.
    ``numpy``          ``dy * D / keep_prob`` with a bool ``D``.
    ``torch``          ``torch.ops.aten.native_dropout_backward(g, mask, 1 / keep_prob)``.

The NumPy and PyTorch bodies are those of :mod:`cydrop.apps.bench.baselines`,
shared with ``cydrop bench``. keep_prob is 0.8 everywhere, plus 0.5 for the float32 1024x4096 groups.
``test_mask_memory`` records mask bytes per element (not a timing comparison).
``forward-threads-*`` groups time ``cydrop.dropout`` on mid-sized arrays
(above the kernels' 32k-element serial size, below one 64k-element grab per
thread) on one thread and on two.

Timing never decides pass/fail; every case checks its result cheaply (shape,
dtype, dropped elements zero, kept ones scaled, kept fraction plausible), so a
broken case fails even under ``--benchmark-disable``.

Run::

    python -m pytest benchmarks -q --benchmark-disable          # each body once, checks only
    python -m pytest benchmarks --benchmark-only \\
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name -q

Threads: cydrop and PyTorch use several threads on large arrays (see
``cydrop.get_num_threads()``, ``torch.get_num_threads()``); NumPy and
``x.copy()`` use one. Set ``OMP_NUM_THREADS=1`` for a one-thread comparison.
"""
import numpy as np
import pytest
from _common import import_torch

import cydrop
from cydrop.apps.bench import baselines as bl

SHAPES = [(64, 784), (256, 1024), (1024, 4096)]
DTYPES = [np.float32, np.float64]
MAIN = ((1024, 4096), np.float32)

# (shape, dtype, keep_prob): 0.8 everywhere, 0.5 too for the main case
CASES = [(shape, dtype, 0.8) for dtype in DTYPES for shape in SHAPES]
CASES.append((*MAIN, 0.5))

# Sampled elements per sanity check: enough to catch a wrong scale or a mask of
# all-kept/all-dropped, few enough to stay cheap next to the timed work.
_CHECK_SAMPLE = 8192
_RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-14}

# Benchmarks run once warm before timing: the first touch of a fresh output
# page and the first call of a kernel are not what is being measured.
pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=3)


def _shape_id(shape):
    return "x".join(map(str, shape))


def _case_id(case):
    shape, dtype, keep_prob = case
    return f"{np.dtype(dtype).name}-{_shape_id(shape)}-keep{keep_prob}"


def _floor_id(case):
    shape, dtype = case
    return f"{np.dtype(dtype).name}-{_shape_id(shape)}"


FLOORS = [(shape, dtype) for dtype in DTYPES for shape in SHAPES]
case_params = pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
floor_params = pytest.mark.parametrize("case", FLOORS, ids=[_floor_id(c) for c in FLOORS])


def _group(benchmark, pass_name, shape, dtype, **info):
    """Put the benchmark in its (pass, dtype, shape) group and describe it."""
    benchmark.group = f"{pass_name}-{np.dtype(dtype).name}-{_shape_id(shape)}"
    benchmark.extra_info.update(elements=int(np.prod(shape)), dtype=np.dtype(dtype).name, **info)


# ---------------------------------------------------------------- checks


def _check_dropout(y, x, kept, keep_prob):
    """y must equal x * kept / keep_prob (up to rounding) on a sample of elements.

    ``kept`` is the mask as a bool array (or a callable giving its first n
    elements), True = kept.
    """
    y = np.asarray(y)
    assert y.shape == x.shape, f"result shape {y.shape} != input shape {x.shape}"
    assert y.dtype == x.dtype, f"result dtype {y.dtype} != input dtype {x.dtype}"
    n = min(x.size, _CHECK_SAMPLE)
    y_s, x_s = y.reshape(-1)[:n], x.reshape(-1)[:n]
    kept_s = kept(n) if callable(kept) else np.asarray(kept).reshape(-1)[:n]
    assert kept_s.dtype == np.bool_ and kept_s.shape == (n,)
    assert not y_s[~kept_s].any(), "a dropped element is non-zero"
    np.testing.assert_allclose(y_s[kept_s], x_s[kept_s] / keep_prob, rtol=_RTOL[x.dtype])
    # every benchmarked array has >= 8192 elements, so n = 8192 and the binomial sd of
    # the kept fraction is <= 0.5 / sqrt(8192) < 0.006: 0.06 is a 10-sd margin
    frac = kept_s.mean()
    assert abs(frac - keep_prob) < 0.06, f"kept fraction {frac:.3f} for keep_prob {keep_prob}"


def _mask_head(mask):
    """The first n elements of a cydrop.Mask as bools, without unpacking all of it."""
    def head(n):
        n_words = -(-n // 64)
        sub = cydrop.Mask(np.array(mask.words[:n_words]), (n_words * 64,), mask.keep_prob)
        return sub.to_bool()[:n]
    return head


def _check_copy(y, x):
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.array_equal(y.reshape(-1)[:_CHECK_SAMPLE], x.reshape(-1)[:_CHECK_SAMPLE])


# ---------------------------------------------------------------- forward

# Mid-sized arrays, split in equal shares over the threads: the demo network's
# 100x512 activations, 64x784 inputs.
MID_SHAPES = [(100, 512), (64, 784)]


@floor_params
def test_forward_copy(benchmark, make_input, case):
    shape, dtype = case
    x = make_input(shape, dtype)
    _group(benchmark, "forward", shape, dtype, impl="x.copy()", threads=1)
    y = benchmark(x.copy)
    _check_copy(y, x)


@case_params
def test_forward_cydrop_gen(benchmark, make_input, case):
    shape, dtype, keep_prob = case
    x = make_input(shape, dtype)
    gen = cydrop.Generator(1)
    _group(benchmark, "forward", shape, dtype, impl="cydrop.dropout(seed=Generator)",
           keep_prob=keep_prob, threads=cydrop.get_num_threads())
    y, mask = benchmark(cydrop.dropout, x, keep_prob, seed=gen)
    assert isinstance(mask, cydrop.Mask) and mask.shape == x.shape
    _check_dropout(y, x, _mask_head(mask), keep_prob)
    # successive calls on one Generator must draw different masks
    assert cydrop.dropout(x, keep_prob, seed=gen)[1] != mask


@case_params
def test_forward_cydrop_out(benchmark, make_input, case):
    shape, dtype, keep_prob = case
    x = make_input(shape, dtype)
    gen = cydrop.Generator(2)
    out = np.empty_like(x)
    _group(benchmark, "forward", shape, dtype, impl="cydrop.dropout(seed=Generator, out=)",
           keep_prob=keep_prob, threads=cydrop.get_num_threads())
    y, mask = benchmark(cydrop.dropout, x, keep_prob, seed=gen, out=out)
    assert y is out
    _check_dropout(y, x, _mask_head(mask), keep_prob)


@case_params
def test_forward_numpy_course(benchmark, make_input, case):
    shape, dtype, keep_prob = case
    x = make_input(shape, dtype)
    _group(benchmark, "forward", shape, dtype, impl="np.random.rand < keep_prob; x * D / keep_prob",
           keep_prob=keep_prob, threads=1)
    A, D = benchmark(bl.numpy_course_dropout, x, keep_prob)
    _check_dropout(A, x, D, keep_prob)


@case_params
def test_forward_numpy_rng(benchmark, make_input, case):
    shape, dtype, keep_prob = case
    x = make_input(shape, dtype)
    rng = np.random.default_rng(3)
    _group(benchmark, "forward", shape, dtype,
           impl=f"default_rng().random(dtype={np.dtype(dtype).name}) < keep_prob; x * D / keep_prob",
           keep_prob=keep_prob, threads=1)
    A, D = benchmark(bl.numpy_rng_dropout, x, keep_prob, rng)
    _check_dropout(A, x, D, keep_prob)


@case_params
def test_forward_torch(benchmark, make_input, case):
    torch = import_torch()
    shape, dtype, keep_prob = case
    x = make_input(shape, dtype)
    t = torch.from_numpy(x.copy())  # copy: torch warns on read-only arrays
    torch.manual_seed(4)
    _group(benchmark, "forward", shape, dtype, impl="torch.ops.aten.native_dropout",
           keep_prob=keep_prob, threads=torch.get_num_threads())
    y, mask = benchmark(bl.torch_dropout, torch, t, keep_prob)
    assert mask.dtype == torch.bool
    _check_dropout(y.numpy(), x, mask.numpy(), keep_prob)


# ---------------------------------------------------------------- backward


@floor_params
def test_backward_copy(benchmark, make_input, case):
    shape, dtype = case
    dy = make_input(shape, dtype, "dy")
    _group(benchmark, "backward", shape, dtype, impl="dy.copy()", threads=1)
    dx = benchmark(dy.copy)
    _check_copy(dx, dy)


@pytest.fixture
def backward_inputs(make_input, case):
    """(dy, cydrop.Mask, the same mask as bools, keep_prob) for a backward case."""
    shape, dtype, keep_prob = case
    _, mask = cydrop.dropout(make_input(shape, dtype), keep_prob, seed=cydrop.Generator(5))
    return make_input(shape, dtype, "dy"), mask, mask.to_bool(), keep_prob


@case_params
def test_backward_cydrop(benchmark, backward_inputs, case):
    dy, mask, kept, keep_prob = backward_inputs
    _group(benchmark, "backward", dy.shape, dy.dtype, impl="cydrop.dropout_backward",
           keep_prob=keep_prob, threads=cydrop.get_num_threads())
    dx = benchmark(cydrop.dropout_backward, dy, mask)
    _check_dropout(dx, dy, kept, keep_prob)


@case_params
def test_backward_numpy(benchmark, backward_inputs, case):
    dy, _, kept, keep_prob = backward_inputs
    _group(benchmark, "backward", dy.shape, dy.dtype, impl="dy * D / keep_prob (bool D)",
           keep_prob=keep_prob, threads=1)
    dx = benchmark(bl.numpy_dropout_backward, dy, kept, keep_prob)
    _check_dropout(dx, dy, kept, keep_prob)


@case_params
def test_backward_torch(benchmark, backward_inputs, case):
    torch = import_torch()
    dy, _, kept, keep_prob = backward_inputs
    g, mask_t = torch.from_numpy(dy.copy()), torch.from_numpy(kept)
    _group(benchmark, "backward", dy.shape, dy.dtype, impl="torch.ops.aten.native_dropout_backward",
           keep_prob=keep_prob, threads=torch.get_num_threads())
    dx = benchmark(bl.torch_dropout_backward, torch, g, mask_t, keep_prob)
    _check_dropout(dx.numpy(), dy, kept, keep_prob)


# ---------------------------------------------------------------- memory


@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
def test_mask_memory(benchmark, shape):
    """Mask bytes per element: cydrop's packed bits against bool and float masks.

    This is a memory comparison, not a timing one: the single timed round (one
    cydrop mask draw) only carries ``extra_info`` into the report; the numbers
    to read are ``mask_bytes_per_element_*``.
    """
    keep_prob = 0.8
    size = int(np.prod(shape))
    x = np.ones(shape, dtype=np.float32)
    benchmark.group = "memory-mask-bytes-per-element"
    _, mask = benchmark.pedantic(cydrop.dropout, args=(x, keep_prob),
                                 kwargs={"seed": cydrop.Generator(6)}, rounds=1, iterations=1)
    cydrop_bpe = mask.nbytes / size
    try:
        import torch
    except ImportError:
        torch_bpe, torch_source = np.dtype(np.bool_).itemsize, "assumed (torch not importable)"
    else:
        _, mask_t = torch.ops.aten.native_dropout(torch.from_numpy(x), 1.0 - keep_prob, True)
        torch_bpe, torch_source = mask_t.element_size() * mask_t.numel() / size, "measured"
    numpy_float_bpe = np.dtype(np.float64).itemsize  # (np.random.rand(...) < p).astype(float)
    benchmark.extra_info.update(
        elements=size,
        mask_bytes_per_element_cydrop=cydrop_bpe,
        mask_bytes_per_element_torch_bool=torch_bpe,
        torch_mask_source=torch_source,
        mask_bytes_per_element_numpy_float64=numpy_float_bpe,
    )
    assert mask.words is not None  # a real drawn mask, not the all-kept shortcut
    assert cydrop_bpe <= 1 / 8 + 64 / size, f"cydrop mask uses {cydrop_bpe} bytes per element"
    assert cydrop_bpe < torch_bpe < numpy_float_bpe


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shape", MID_SHAPES, ids=_shape_id)
def test_forward_mid_size_on_threads(benchmark, make_input, shape, n_threads):
    x = make_input(shape, np.float32)
    gen = cydrop.Generator(3)
    benchmark.group = f"forward-threads-float32-{_shape_id(shape)}"
    benchmark.extra_info.update(elements=int(np.prod(shape)), impl="cydrop.dropout(seed=Generator)",
                                keep_prob=0.8, threads=n_threads)
    cydrop.set_num_threads(n_threads)
    try:
        y, mask = benchmark(cydrop.dropout, x, 0.8, seed=gen)
    finally:
        cydrop.set_num_threads(None)
    _check_dropout(y, x, _mask_head(mask), 0.8)
