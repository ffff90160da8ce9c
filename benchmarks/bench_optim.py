"""Fused optimizer updates beside the same update written in NumPy.

Groups ``optim-<rule>-float32-512x512`` (a 512x512 weight matrix, 262k
parameters): ``copy`` (``param.copy()``, one read and one write: the floor),
``cydrop`` (``cydrop.optim.*_update``, one fused pass) and ``numpy`` (the
update as a NumPy user writes it, one temporary per operation); the rules
are Adam, SGD and max-norm (its column norms, then the columns scaled).

Group ``optim-adam-idle-float32-512x512``: cydrop's Adam step for weights
whose gradient is 0 (units that dropout or ReLU keep silent), their first
moments ``normal`` (1e-3) or decayed to ``subnormal`` (1e-39, below
float32's smallest normal number, where x86 arithmetic slows down): what
subnormal moments cost a step.

Run::

    python -m pytest benchmarks/bench_optim.py --benchmark-only
"""
import numpy as np
import pytest

from cydrop import optim

SHAPE = (512, 512)
LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
MAX_NORM = 3.0   # the first call caps every column (norms about 22.6), later ones find none to cap


@pytest.fixture
def state():
    rng = np.random.default_rng(0)
    param = rng.standard_normal(SHAPE, dtype=np.float32)
    grad = rng.standard_normal(SHAPE, dtype=np.float32)
    return param, grad, np.zeros_like(param), np.zeros_like(param)


def _numpy_adam(param, grad, m, v, t):
    m *= B1
    m += (1 - B1) * grad
    v *= B2
    v += (1 - B2) * grad * grad
    m_hat = m / (1 - B1 ** t)
    v_hat = v / (1 - B2 ** t)
    param -= LR * m_hat / (np.sqrt(v_hat) + EPS)


def _numpy_sgd(param, grad):
    param -= LR * grad


def _numpy_max_norm(param):
    param *= np.minimum(1.0, MAX_NORM / np.linalg.norm(param, axis=0))


CASES = {
    ("adam", "cydrop"): lambda p, g, m, v: optim.adam_update(p, g, m, v, 1, LR, B1, B2, EPS),
    ("adam", "numpy"): lambda p, g, m, v: _numpy_adam(p, g, m, v, 1),
    ("adam", "copy"): lambda p, g, m, v: p.copy(),
    ("sgd", "cydrop"): lambda p, g, m, v: optim.sgd_update(p, g, LR),
    ("sgd", "numpy"): lambda p, g, m, v: _numpy_sgd(p, g),
    ("sgd", "copy"): lambda p, g, m, v: p.copy(),
    ("max_norm", "cydrop"): lambda p, g, m, v: optim.max_norm_(p, MAX_NORM),
    ("max_norm", "numpy"): lambda p, g, m, v: _numpy_max_norm(p),
    ("max_norm", "copy"): lambda p, g, m, v: p.copy(),
}


@pytest.mark.parametrize("rule, impl", list(CASES), ids=[f"{r}-{i}" for r, i in CASES])
def test_update(benchmark, state, rule, impl):
    param, grad, m, v = state
    fresh = [a.copy() for a in state]
    benchmark.group = f"optim-{rule}-float32-{SHAPE[0]}x{SHAPE[1]}"
    benchmark(CASES[rule, impl], param, grad, m, v)
    assert np.isfinite(param).all()
    if impl != "copy":
        # one step from the fresh state equals the float64 NumPy update
        ref = [a.astype(np.float64) for a in fresh]
        {"adam": lambda: _numpy_adam(*ref, 1), "sgd": lambda: _numpy_sgd(*ref[:2]),
         "max_norm": lambda: _numpy_max_norm(ref[0])}[rule]()
        CASES[rule, impl](*fresh)
        np.testing.assert_allclose(fresh[0], ref[0], rtol=1e-6, atol=1e-6)


IDLE_MOMENTS = {"normal": 1e-3, "subnormal": 1e-39}


@pytest.mark.parametrize("moments", list(IDLE_MOMENTS))
def test_adam_with_idle_weights(benchmark, state, moments):
    param, _, m, v = state
    grad = np.zeros_like(param)
    v.fill(1e-6)
    m0 = np.float32(IDLE_MOMENTS[moments])

    def step():
        m.fill(m0)   # every round from the same moments (the fill is a copy's cost, in both cases)
        optim.adam_update(param, grad, m, v, 100, LR, B1, B2, EPS)

    benchmark.group = f"optim-adam-idle-float32-{SHAPE[0]}x{SHAPE[1]}"
    before = param.copy()
    benchmark(step)
    # with no gradient, m decays by B1, and a positive m moves every weight down
    np.testing.assert_allclose(m, B1 * float(m0), rtol=1e-5, atol=0)
    assert np.isfinite(param).all() and np.all(param <= before)
