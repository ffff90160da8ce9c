"""Concrete dropout: cydrop's one-pass kernels beside their floor and baselines.

One pytest-benchmark group per (pass, dtype, shape), e.g.
``concrete-forward-float32-1024x4096``, p = 0.1 (p_logit = logit(0.1)) and
temperature 0.1, the reference's start:

concrete-forward
    ``copy``     ``x.copy()``: one read and one write of x, the floor.
    ``cydrop``   ``cydrop.concrete_dropout(x, p_logit, seed=gen)``.
    ``numpy``    the formula in NumPy (``rng.random``, log, exp), keeping z.
concrete-backward (dx and dp_logit)
    ``copy``     ``dy.copy()``.
    ``cydrop``   ``cydrop.concrete_dropout_backward(dy, x, state)``: the noise
                 drawn again from the position, nothing kept.
    ``numpy``    the formula from the kept z.
concrete-torch-fwdbwd-float32-1024x4096 (forward, then backward with g, under autograd)
    ``cydrop``   ``cydrop.torch.ConcreteDropout``.
    ``torch``    the reference module's ``_concrete_dropout``
                 (yaringal/ConcreteDropout's PyTorch notebook: rand_like, four
                 logs, sigmoid, multiply, divide).

The bodies are those of :mod:`cydrop.apps.bench.baselines` and
:mod:`cydrop.apps.bench.cases`, shared with ``cydrop bench --only concrete``
(which interleaves the cases and prints ratios to the floor). Every case
checks its result cheaply, so a broken case fails even under
``--benchmark-disable``. Threads: cydrop and torch use theirs
(``cydrop.get_num_threads()``); NumPy and ``x.copy()`` one.

Run::

    python -m pytest benchmarks/bench_concrete.py --benchmark-only \\
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name -q
"""
import math

import numpy as np
import pytest
from _common import import_torch

import cydrop
from cydrop.apps.bench import baselines as bl
from cydrop.apps.bench.cases import CONCRETE_P_LOGIT, CONCRETE_T

SHAPES = [(64, 784), (1024, 4096)]
DTYPES = [np.float32, np.float64]
CASES = [(shape, dtype) for dtype in DTYPES for shape in SHAPES]
_CHECK_SAMPLE = 8192

pytestmark = pytest.mark.benchmark(warmup=True, warmup_iterations=3)
case_params = pytest.mark.parametrize(
    "case", CASES, ids=[f"{np.dtype(d).name}-{'x'.join(map(str, s))}" for s, d in CASES])


def _group(benchmark, pass_name, shape, dtype, **info):
    benchmark.group = f"concrete-{pass_name}-{np.dtype(dtype).name}-{'x'.join(map(str, shape))}"
    benchmark.extra_info.update(elements=int(np.prod(shape)), dtype=np.dtype(dtype).name, **info)


def _check_scaled(y, x):
    """y = x * f with 0 <= f <= 1 / (1 - p), on a sample."""
    y = np.asarray(y).reshape(-1)[:_CHECK_SAMPLE].astype(np.float64)
    xs = np.asarray(x).reshape(-1)[:_CHECK_SAMPLE].astype(np.float64)
    assert np.isfinite(y).all()
    assert (np.abs(y) <= np.abs(xs) * (1 + math.exp(CONCRETE_P_LOGIT) + 1e-5)).all() and (y * xs >= 0).all()


# ---------------------------------------------------------------- forward


@case_params
def test_forward_copy(benchmark, make_input, case):
    shape, dtype = case
    x = make_input(shape, dtype)
    _group(benchmark, "forward", shape, dtype, impl="x.copy()", threads=1)
    assert np.array_equal(benchmark(x.copy), x)


@case_params
def test_forward_cydrop(benchmark, make_input, case):
    shape, dtype = case
    x = make_input(shape, dtype)
    gen = cydrop.Generator(1)
    _group(benchmark, "forward", shape, dtype, impl="cydrop.concrete_dropout(seed=Generator)",
           threads=cydrop.get_num_threads())
    y, state = benchmark(cydrop.concrete_dropout, x, CONCRETE_P_LOGIT, temperature=CONCRETE_T, seed=gen)
    assert state.nbytes == 0
    _check_scaled(y, x)


@case_params
def test_forward_numpy(benchmark, make_input, case):
    shape, dtype = case
    x = make_input(shape, dtype)
    rng = np.random.default_rng(2)
    _group(benchmark, "forward", shape, dtype, impl="the formula in NumPy, z kept", threads=1)
    y, z = benchmark(bl.numpy_concrete, x, CONCRETE_P_LOGIT, CONCRETE_T, rng)
    _check_scaled(y, x)


# ---------------------------------------------------------------- backward


@case_params
def test_backward_copy(benchmark, make_input, case):
    shape, dtype = case
    dy = make_input(shape, dtype, "dy")
    _group(benchmark, "backward", shape, dtype, impl="dy.copy()", threads=1)
    assert np.array_equal(benchmark(dy.copy), dy)


@case_params
def test_backward_cydrop(benchmark, make_input, case):
    shape, dtype = case
    x, dy = make_input(shape, dtype), make_input(shape, dtype, "dy")
    _, state = cydrop.concrete_dropout(x, CONCRETE_P_LOGIT, temperature=CONCRETE_T, seed=3)
    _group(benchmark, "backward", shape, dtype, impl="cydrop.concrete_dropout_backward(dy, x, state)",
           threads=cydrop.get_num_threads())
    dx, dp_logit = benchmark(cydrop.concrete_dropout_backward, dy, x, state)
    assert math.isfinite(dp_logit)
    _check_scaled(dx, dy)


@case_params
def test_backward_numpy(benchmark, make_input, case):
    shape, dtype = case
    x, dy = make_input(shape, dtype), make_input(shape, dtype, "dy")
    _, z = bl.numpy_concrete(x, CONCRETE_P_LOGIT, CONCRETE_T, np.random.default_rng(4))
    _group(benchmark, "backward", shape, dtype, impl="the formula in NumPy from the kept z", threads=1)
    dx, dp_logit = benchmark(bl.numpy_concrete_backward, dy, x, z, CONCRETE_P_LOGIT, CONCRETE_T)
    assert math.isfinite(dp_logit)
    _check_scaled(dx, dy)


# ---------------------------------------------------------------- PyTorch, under autograd

TORCH_SHAPE = (1024, 4096)


def _torch_case(benchmark, torch, forward, param, label):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(TORCH_SHAPE, generator=gen).requires_grad_()
    g = torch.randn(TORCH_SHAPE, generator=gen)
    benchmark.group = f"concrete-torch-fwdbwd-float32-{'x'.join(map(str, TORCH_SHAPE))}"
    benchmark.extra_info.update(impl=label, torch_threads=torch.get_num_threads())

    def run():
        x.grad = param.grad = None
        out = forward(x)
        out.backward(g)
        return out

    out = benchmark(run)
    _check_scaled(out.detach().numpy(), x.detach().numpy())
    assert param.grad is not None and torch.isfinite(param.grad).all()


def test_torch_cydrop(benchmark):
    torch = import_torch()
    import cydrop.torch as ct

    torch.manual_seed(0)
    module = ct.ConcreteDropout(p=0.1, temperature=CONCRETE_T)
    _torch_case(benchmark, torch, module, module.p_logit, "cydrop.torch.ConcreteDropout")


def test_torch_reference(benchmark):
    torch = import_torch()
    p_logit = torch.nn.Parameter(torch.tensor([CONCRETE_P_LOGIT]))
    _torch_case(benchmark, torch, lambda t: bl.torch_reference_concrete(torch, t, p_logit, CONCRETE_T), p_logit,
                "the reference module's _concrete_dropout")
