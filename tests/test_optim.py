"""cydrop.optim against plain NumPy references of SGD, classical and Nesterov
momentum, Adam (both places of its epsilon) and max-norm, plus argument checks.

The references are written from the textbook formulas (Adam in its standard
m_hat / v_hat form, not the folded form the kernel uses) and computed in
float64 from the same inputs, so a float32 result is compared with the exact
update within float32 tolerance.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cydrop.optim import adam_update, max_norm_, momentum_update, sgd_update

DTYPES = [np.float32, np.float64]
# 0-d, one element, odd sizes, sizes off multiples of 8/16, 2-D and 3-D params
SHAPES = [(), (1,), (7,), (33,), (1, 1), (3, 5), (17, 65), (2, 3, 4)]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
L2S = [0.0, 0.01]
N_STEPS = 5


def rand(rng, shape, dtype, scale=1.0):
    return np.array(scale * rng.standard_normal(shape), dtype=dtype)  # 0-d stays an array


# -- references ---------------------------------------------------------------

def sgd_ref(param, grad, lr, l2):
    return param - lr * (grad + l2 * param)


def momentum_ref(param, grad, velocity, lr, momentum, l2):
    velocity = momentum * velocity - lr * (grad + l2 * param)
    return param + velocity, velocity


def nesterov_ref(param, grad, velocity, lr, momentum, l2):
    """scikit-learn's SGDOptimizer with nesterov=True: the update is taken
    again from the new velocity."""
    g = grad + l2 * param
    velocity = momentum * velocity - lr * g
    return param + momentum * velocity - lr * g, velocity


def adam_eps_hat_ref(param, grad, m, v, t, lr, beta1, beta2, eps, l2):
    """scikit-learn's AdamOptimizer: eps added to sqrt(v), the rate corrected."""
    g = grad + l2 * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    rate = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return param - rate * m / (np.sqrt(v) + eps), m, v


def adam_ref(param, grad, m, v, t, lr, beta1, beta2, eps, l2):
    g = grad + l2 * param
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def f64(a):
    return np.asarray(a, dtype=np.float64)


# -- updates against the references, several steps ----------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l2", L2S)
def test_sgd_matches_reference(dtype, shape, l2):
    rng = np.random.default_rng(1)
    param = rand(rng, shape, dtype)
    for _ in range(N_STEPS):
        grad = rand(rng, shape, dtype)
        expected = sgd_ref(f64(param), f64(grad), 0.05, l2)
        assert sgd_update(param, grad, 0.05, l2=l2) is None
        assert param.dtype == dtype and param.shape == shape
        np.testing.assert_allclose(param, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l2", L2S)
def test_momentum_matches_reference(dtype, shape, l2):
    rng = np.random.default_rng(2)
    param = rand(rng, shape, dtype)
    velocity = np.zeros(shape, dtype)
    for _ in range(N_STEPS):
        grad = rand(rng, shape, dtype)
        exp_param, exp_vel = momentum_ref(f64(param), f64(grad), f64(velocity), 0.05, 0.9, l2)
        assert momentum_update(param, grad, velocity, 0.05, 0.9, l2=l2) is None
        np.testing.assert_allclose(velocity, exp_vel, **TOL[dtype])
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l2", L2S)
def test_nesterov_momentum_matches_reference(dtype, shape, l2):
    rng = np.random.default_rng(12)
    param = rand(rng, shape, dtype)
    velocity = np.zeros(shape, dtype)
    for _ in range(N_STEPS):
        grad = rand(rng, shape, dtype)
        exp_param, exp_vel = nesterov_ref(f64(param), f64(grad), f64(velocity), 0.05, 0.9, l2)
        assert momentum_update(param, grad, velocity, 0.05, 0.9, l2=l2, nesterov=True) is None
        np.testing.assert_allclose(velocity, exp_vel, **TOL[dtype])
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-8, 1e-2])
def test_adam_eps_hat_adds_eps_to_the_uncorrected_root(dtype, eps):
    rng = np.random.default_rng(13)
    param = rand(rng, (5, 7), dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    hyper = dict(lr=0.01, beta1=0.8, beta2=0.99, eps=eps)
    for t in range(1, N_STEPS + 1):
        grad = rand(rng, param.shape, dtype, scale=0.01)
        exp_param, exp_m, exp_v = adam_eps_hat_ref(f64(param), f64(grad), f64(m), f64(v), t, l2=0.01, **hyper)
        other, _, _ = adam_ref(f64(param), f64(grad), f64(m), f64(v), t, l2=0.01, **hyper)
        adam_update(param, grad, m, v, t, l2=0.01, eps_hat=True, **hyper)
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])
        np.testing.assert_allclose(m, exp_m, **TOL[dtype])
        np.testing.assert_allclose(v, exp_v, **TOL[dtype])
    # with gradients of order eps the two places of eps differ far beyond round-off
    if eps == 1e-2:
        assert np.abs(other - exp_param).max() > 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("l2", L2S)
def test_adam_matches_reference(dtype, shape, l2):
    rng = np.random.default_rng(3)
    param = rand(rng, shape, dtype)
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    hyper = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    for t in range(1, N_STEPS + 1):
        grad = rand(rng, shape, dtype, scale=t)  # a different gradient every step
        exp_param, exp_m, exp_v = adam_ref(f64(param), f64(grad), f64(m), f64(v), t,
                                           l2=l2, **hyper)
        assert adam_update(param, grad, m, v, t, l2=l2, **hyper) is None
        np.testing.assert_allclose(m, exp_m, **TOL[dtype])
        np.testing.assert_allclose(v, exp_v, **TOL[dtype])
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", L2S)
def test_adam_rounds_like_numpy_op_by_op(dtype, l2):
    """Bit for bit the kernel's own arithmetic done one NumPy op at a time in
    the arrays' dtype (bias corrections folded as in _optim.pyx, in double).

    Every op is correctly rounded, so this holds whichever clone the CPU
    dispatch picks (src/dispatch.h), but only if no clone fuses a * b + c into
    an FMA: a build without -ffp-contract=off fails it on AVX2/AVX-512 CPUs.
    4099 elements: whole 16-wide vectors and a tail."""
    rng = np.random.default_rng(11)
    param, m, v = rand(rng, 4099, dtype), rand(rng, 4099, dtype, 0.1), np.abs(rand(rng, 4099, dtype))
    lr, beta1, beta2, eps = 0.01, 0.9, 0.999, 1e-8
    for t in range(1, 4):
        grad = rand(rng, 4099, dtype, scale=t)
        bias1, bias2 = 1.0 - beta1**t, 1.0 - beta2**t
        step, eps_hat = dtype(lr * np.sqrt(bias2) / bias1), dtype(eps * np.sqrt(bias2))
        b1, c1, b2, c2 = dtype(beta1), dtype(1.0 - beta1), dtype(beta2), dtype(1.0 - beta2)
        g = grad + dtype(l2) * param
        exp_m = b1 * m + c1 * g
        exp_v = b2 * v + c2 * (g * g)
        exp_param = param - step * exp_m / (np.sqrt(exp_v) + eps_hat)
        adam_update(param, grad, m, v, t, lr, beta1=beta1, beta2=beta2, eps=eps, l2=l2)
        np.testing.assert_array_equal(m, exp_m)
        np.testing.assert_array_equal(v, exp_v)
        np.testing.assert_array_equal(param, exp_param)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hyper", [
    dict(lr=0.1, beta1=0.0, beta2=0.0, eps=1e-3),     # no averaging: step = lr * g / (|g| + eps)
    dict(lr=1e-3, beta1=0.5, beta2=0.9, eps=1.0),     # eps dominating sqrt(v_hat)
    dict(lr=0.3, beta1=0.99, beta2=0.9999, eps=1e-8), # slow averages: corrections matter most
])
def test_adam_other_hyperparameters(dtype, hyper):
    rng = np.random.default_rng(4)
    param = rand(rng, (5, 7), dtype)
    m, v = np.zeros_like(param), np.zeros_like(param)
    for t in range(1, N_STEPS + 1):
        grad = rand(rng, param.shape, dtype)
        exp_param, exp_m, exp_v = adam_ref(f64(param), f64(grad), f64(m), f64(v), t,
                                           l2=0.0, **hyper)
        adam_update(param, grad, m, v, t, **hyper)
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])
        np.testing.assert_allclose(m, exp_m, **TOL[dtype])
        np.testing.assert_allclose(v, exp_v, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_late_step(dtype):
    """At large t the bias corrections tend to 1 (and b^t underflows to 0)."""
    rng = np.random.default_rng(5)
    param, grad = rand(rng, 9, dtype), rand(rng, 9, dtype)
    m, v = rand(rng, 9, dtype), rand(rng, 9, dtype) ** 2
    for t in (10**6, 2**40):
        p, mm, vv = param.copy(), m.copy(), v.copy()
        exp_param, _, _ = adam_ref(f64(p), f64(grad), f64(mm), f64(vv), t, 1e-3, 0.9, 0.999, 1e-8, 0.0)
        adam_update(p, grad, mm, vv, t)
        np.testing.assert_allclose(p, exp_param, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_alone_decays_weights(dtype):
    """With a zero gradient only the L2 term acts: param *= 1 - lr * l2."""
    param = np.linspace(-2, 2, 11).astype(dtype)
    start = param.copy()
    sgd_update(param, np.zeros_like(param), 0.1, l2=0.5)
    np.testing.assert_allclose(param, f64(start) * 0.95, **TOL[dtype])
    # momentum: the first step from zero velocity is the SGD step
    param, velocity = start.copy(), np.zeros_like(start)
    momentum_update(param, np.zeros_like(param), velocity, 0.1, l2=0.5)
    np.testing.assert_allclose(param, f64(start) * 0.95, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_momentum_zero_is_sgd(dtype):
    rng = np.random.default_rng(6)
    a = rand(rng, 13, dtype)
    b, velocity = a.copy(), np.zeros_like(a)
    for _ in range(3):
        grad = rand(rng, 13, dtype)
        sgd_update(a, grad, 0.1, l2=0.01)
        momentum_update(b, grad, velocity, 0.1, 0.0, l2=0.01)
    np.testing.assert_allclose(a, b, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_read_only_or_strided_accepted(dtype):
    """grad is only read: a read-only grad is used as is, a strided one copied."""
    rng = np.random.default_rng(7)
    param = rand(rng, (4, 6), dtype)
    grad_big = rand(rng, (4, 12), dtype)
    grad = grad_big[:, ::2]
    grad.flags.writeable = False
    expected = sgd_ref(f64(param), f64(grad), 0.1, 0.0)
    sgd_update(param, grad, 0.1)
    np.testing.assert_allclose(param, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_param_is_a_no_op(dtype):
    param = np.zeros((0, 3), dtype)
    sgd_update(param, np.zeros_like(param), 0.1)
    momentum_update(param, np.zeros_like(param), np.zeros_like(param), 0.1)
    adam_update(param, np.zeros_like(param), np.zeros_like(param), np.zeros_like(param), 1)
    max_norm_(param, 1.0)
    max_norm_(np.zeros((3, 0), dtype), 1.0)


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
       seed=st.integers(0, 2**32 - 1),
       l2=st.sampled_from([0.0, 1e-4, 0.5]))
def test_adam_hypothesis_shapes(dtype, shape, seed, l2):
    rng = np.random.default_rng(seed)
    param = rand(rng, shape, dtype)
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    for t in (1, 2, 3):
        grad = rand(rng, shape, dtype)
        exp_param, exp_m, exp_v = adam_ref(f64(param), f64(grad), f64(m), f64(v), t,
                                           0.01, 0.9, 0.999, 1e-8, l2)
        adam_update(param, grad, m, v, t, 0.01, l2=l2)
        np.testing.assert_allclose(param, exp_param, **TOL[dtype])


# -- Adam minimises a quadratic -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_decreases_quadratic_loss(dtype):
    """loss(x) = 1/2 ||A x - b||^2, a badly scaled least-squares problem."""
    rng = np.random.default_rng(8)
    A = (rng.standard_normal((20, 6)) * np.array([1, 2, 5, 0.5, 3, 10])).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    x = np.zeros(6, dtype)
    m, v = np.zeros_like(x), np.zeros_like(x)

    def loss(x):
        r = f64(A) @ f64(x) - f64(b)
        return 0.5 * float(r @ r)

    best = np.linalg.lstsq(f64(A), f64(b), rcond=None)[0]
    losses = [loss(x)]
    for t in range(1, 501):
        grad = A.T @ (A @ x - b)
        adam_update(x, grad, m, v, t, lr=0.05)
        losses.append(loss(x))
    assert losses[-1] < losses[0]
    assert losses[50] < losses[0] and losses[-1] < losses[50]
    # close to the least-squares optimum
    assert losses[-1] - loss(best) < 1e-3 * losses[0]


# -- max-norm -----------------------------------------------------------------

MAX_NORM_SHAPES = [(1, 1), (1, 6), (6, 1), (3, 5), (17, 33), (64, 7)]


def column_norms(W):
    return np.linalg.norm(f64(W), axis=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", MAX_NORM_SHAPES)
def test_max_norm_caps_columns(dtype, shape):
    rng = np.random.default_rng(9)
    c = 1.5
    W = rand(rng, shape, dtype)
    n_in, n_out = shape
    # every other column well above c, the others well below
    big = np.arange(n_out) % 2 == 0
    W *= np.where(big, 4 * c, 0.5 * c) / column_norms(W)
    W = W.astype(dtype)
    before = W.copy()
    assert max_norm_(W, c) is None
    norms = column_norms(W)
    np.testing.assert_allclose(norms[big], c, rtol=TOL[dtype]["rtol"])
    # capped columns keep their direction: W[:, j] = before[:, j] * c / ||before[:, j]||
    expected = f64(before) * np.where(big, c / column_norms(before), 1.0)
    np.testing.assert_allclose(W, expected, **TOL[dtype])
    # the others are untouched bit for bit
    assert W[:, ~big].tobytes() == before[:, ~big].tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm_orientation_is_columns(dtype):
    """Incoming weights of unit j are the column W[:, j] (n_in, n_out), not a row."""
    W = np.array([[3.0, 0.0, 0.0],
                  [4.0, 0.0, 0.0]], dtype=dtype)  # rows have norm 3 and 4, column 0 norm 5
    max_norm_(W, 4.5)
    np.testing.assert_allclose(W, [[2.7, 0, 0], [3.6, 0, 0]], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm_boundary_and_no_op(dtype):
    # a column of norm exactly c is not above c: untouched
    W = np.array([[2.0, 1.0], [0.0, 1.0]], dtype=dtype)
    before = W.copy()
    max_norm_(W, 2.0)
    assert W[:, 0].tobytes() == before[:, 0].tobytes()
    np.testing.assert_allclose(column_norms(W)[1], np.sqrt(2.0), **TOL[dtype])  # below c
    # nothing above c: W unchanged bit for bit
    rng = np.random.default_rng(10)
    W = rand(rng, (9, 11), dtype)
    before = W.copy()
    max_norm_(W, 1e6)
    assert W.tobytes() == before.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_norm_large_values_no_overflow(dtype):
    """Squared norms are summed in float64: float32 columns of norm ~1e20
    (squares past float32's range) are still capped correctly."""
    W = np.full((4, 3), 1e20 if dtype == np.float32 else 1e150, dtype=dtype)
    max_norm_(W, 1.0)
    np.testing.assert_allclose(column_norms(W), 1.0, rtol=TOL[dtype]["rtol"])


def test_max_norm_caps_float64_columns_whose_squares_overflow():
    """Weights past 1e154 square to inf in float64: such a column is still
    capped to norm max_norm in its direction, not zeroed."""
    W = np.array([[1e200, 3.0, 1e308, 1.0],
                  [1e200, 4.0, 1e308, 2.0],
                  [0.0, 0.0, -1e308, 0.0]])
    expected = W / np.array([1e200 * math.sqrt(2), 5.0, 1e308 * math.sqrt(3), math.sqrt(5)])
    max_norm_(W, 1.0)
    np.testing.assert_allclose(W, expected, rtol=1e-15)
    W = np.array([[1e200], [1e200]])
    max_norm_(W, 1e300)   # norm 1.4e200 <= 1e300: the column is left as it was
    assert W.tolist() == [[1e200], [1e200]]


# -- argument checks ----------------------------------------------------------

def arrays(dtype=np.float64, shape=(3, 4)):
    rng = np.random.default_rng(11)
    return {name: rand(rng, shape, dtype) for name in ("param", "grad", "velocity", "m", "v")}


def call_sgd(a, **kw):
    args = dict(param=a["param"], grad=a["grad"], lr=0.1)
    args.update(kw)
    sgd_update(args.pop("param"), args.pop("grad"), args.pop("lr"), **args)


def call_momentum(a, **kw):
    args = dict(param=a["param"], grad=a["grad"], velocity=a["velocity"], lr=0.1)
    args.update(kw)
    momentum_update(args.pop("param"), args.pop("grad"), args.pop("velocity"), args.pop("lr"), **args)


def call_adam(a, **kw):
    args = dict(param=a["param"], grad=a["grad"], m=a["m"], v=a["v"], t=1)
    args.update(kw)
    adam_update(args.pop("param"), args.pop("grad"), args.pop("m"), args.pop("v"), args.pop("t"),
                **args)


CALLS = {"sgd": call_sgd, "momentum": call_momentum, "adam": call_adam}
STATES = {"sgd": (), "momentum": ("velocity",), "adam": ("m", "v")}
ARRAY_ARGS = {name: ("param", "grad") + STATES[name] for name in CALLS}

BAD_POSITIVE = [(0, ValueError), (0.0, ValueError), (-1e-3, ValueError), (float("nan"), ValueError),
                (float("inf"), ValueError), ("0.1", TypeError), (None, TypeError),
                (True, TypeError), (np.bool_(True), TypeError), (1j, TypeError), ([0.1], TypeError)]
BAD_UNIT = [(-0.1, ValueError), (1.0, ValueError), (1, ValueError), (1.5, ValueError),
            (float("nan"), ValueError), (float("inf"), ValueError), ("0.9", TypeError),
            (None, TypeError), (False, TypeError)]
BAD_NONNEG = [(-1e-6, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
              ("0", TypeError), (None, TypeError), (False, TypeError)]
BAD_T = [(0, ValueError), (-1, ValueError), (1.0, TypeError), (1.5, TypeError), ("1", TypeError),
         (None, TypeError), (True, TypeError), (np.bool_(True), TypeError)]

SCALAR_CASES = (
    [(fn, "lr", value, error) for fn in CALLS for value, error in BAD_POSITIVE]
    + [(fn, "l2", value, error) for fn in CALLS for value, error in BAD_NONNEG]
    + [("momentum", "momentum", value, error) for value, error in BAD_UNIT]
    + [("adam", beta, value, error) for beta in ("beta1", "beta2") for value, error in BAD_UNIT]
    + [("adam", "eps", value, error) for value, error in BAD_POSITIVE]
    + [("adam", "t", value, error) for value, error in BAD_T]
    + [(fn, flag, value, TypeError) for fn, flag in (("momentum", "nesterov"), ("adam", "eps_hat"))
       for value in (1, "yes", None)]
)


def assert_untouched(a, snapshot):
    for name in a:
        assert a[name].tobytes() == snapshot[name], f"{name} was modified by a refused call"


@pytest.mark.parametrize("fn, arg, value, error", SCALAR_CASES)
def test_bad_scalar(fn, arg, value, error):
    a = arrays()
    snapshot = {k: x.tobytes() for k, x in a.items()}
    with pytest.raises(error, match=arg):
        CALLS[fn](a, **{arg: value})
    assert_untouched(a, snapshot)


def _other_dtype(x):
    return x.astype(np.float32 if x.dtype == np.float64 else np.float64)


# (label, bad replacement made from the good array, error); shape cases apply
# to grad and the state arrays, whose shape must be param's
BAD_ARRAYS = [
    ("list", lambda x: x.tolist(), TypeError),
    ("None", lambda x: None, TypeError),
    ("int64", lambda x: x.astype(np.int64), TypeError),
    ("float16", lambda x: x.astype(np.float16), TypeError),
    ("complex128", lambda x: x.astype(np.complex128), TypeError),
    ("other-float", _other_dtype, TypeError),
    ("byteswapped", lambda x: x.astype(x.dtype.newbyteorder()), TypeError),
    ("shape", lambda x: x[:, :-1].copy(), ValueError),
    ("same-size-shape", lambda x: x.reshape(-1).copy(), ValueError),
    ("extra-dim", lambda x: x[None].copy(), ValueError),
]
ARRAY_CASES = [
    pytest.param(fn, name, make, error, id=f"{fn}-{name}-{label}")
    for fn in CALLS for name in ARRAY_ARGS[fn] for label, make, error in BAD_ARRAYS
    if not (name == "param" and error is ValueError)  # see the next test
]


@pytest.mark.parametrize("fn, name, make, error", ARRAY_CASES)
def test_bad_array(fn, name, make, error):
    a = arrays()
    bad = make(a[name])
    snapshot = {k: x.tobytes() for k, x in a.items()}
    with pytest.raises(error, match=name):
        CALLS[fn](a, **{name: bad})
    assert_untouched(a, snapshot)


@pytest.mark.parametrize("fn", list(CALLS))
def test_bad_param_shape_names_the_mismatching_argument(fn):
    a = arrays()
    with pytest.raises(ValueError, match="grad must have param's shape"):
        CALLS[fn](a, param=np.zeros((4, 3)))


@pytest.mark.parametrize("fn", list(CALLS))
def test_read_only_refused(fn):
    for name in ("param",) + STATES[fn]:
        a = arrays()
        a[name].flags.writeable = False
        snapshot = {k: x.tobytes() for k, x in a.items()}
        with pytest.raises(ValueError, match=f"{name} must be writable"):
            CALLS[fn](a)
        assert_untouched(a, snapshot)


@pytest.mark.parametrize("fn", list(CALLS))
def test_non_contiguous_updated_array_refused(fn):
    for name in ("param",) + STATES[fn]:
        a = arrays()
        wide = np.zeros((3, 8))
        wide[:, ::2] = a[name]
        with pytest.raises(ValueError, match=f"{name} must be C-contiguous"):
            CALLS[fn](a, **{name: wide[:, ::2]})
        with pytest.raises(ValueError, match=f"{name} must be C-contiguous"):
            CALLS[fn](a, **{name: np.asfortranarray(a[name])})


@pytest.mark.parametrize("fn", list(CALLS))
def test_shared_memory_refused(fn):
    names = ARRAY_ARGS[fn]
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            a = arrays()
            a[second] = a[first]  # the same array twice
            snapshot = {k: x.tobytes() for k, x in a.items()}
            with pytest.raises(ValueError, match=f"{second} shares memory with {first}"):
                CALLS[fn](a)
            assert_untouched(a, snapshot)
    # partial overlap through views of one buffer
    buf = np.zeros(13)
    a = arrays(shape=(12,))
    a["param"], a["grad"] = buf[1:], buf[:-1]
    with pytest.raises(ValueError, match="grad shares memory with param"):
        CALLS[fn](a)


BAD_W = [
    (np.ones((2, 3), dtype=np.int32), TypeError, "W must have dtype"),
    (np.ones((2, 3), dtype=np.float16), TypeError, "W must have dtype"),
    ([[1.0, 2.0]], TypeError, "W must be a numpy.ndarray"),
    (None, TypeError, "W must be a numpy.ndarray"),
    (np.ones((2, 3), dtype=np.dtype(np.float64).newbyteorder()), TypeError, "W must be in native"),
    (np.ones(3), ValueError, "W must be 2-D"),
    (np.ones((2, 3, 4)), ValueError, "W must be 2-D"),
    (np.ones(()), ValueError, "W must be 2-D"),
    (np.ones((3, 2)).T, ValueError, "W must be C-contiguous"),
    (np.ones((2, 6))[:, ::2], ValueError, "W must be C-contiguous"),
]


@pytest.mark.parametrize("W, error, message", BAD_W)
def test_max_norm_bad_W(W, error, message):
    with pytest.raises(error, match=message):
        max_norm_(W, 1.0)


def test_max_norm_read_only_refused():
    W = np.full((2, 3), 10.0)
    W.flags.writeable = False
    with pytest.raises(ValueError, match="W must be writable"):
        max_norm_(W, 1.0)
    assert (W == 10.0).all()


@pytest.mark.parametrize("value, error", BAD_POSITIVE)
def test_max_norm_bad_max_norm(value, error):
    W = np.full((2, 3), 10.0)
    with pytest.raises(error, match="max_norm"):
        max_norm_(W, value)
    assert (W == 10.0).all()


def test_numpy_scalars_accepted():
    a = arrays(np.float32)
    adam_update(a["param"], a["grad"], a["m"], a["v"], np.int64(3), lr=np.float32(0.01),
                beta1=np.float64(0.9), l2=np.float32(0.0))
    momentum_update(a["param"], a["grad"], a["velocity"], np.float64(0.1), np.float32(0.5))
    max_norm_(a["param"], np.float32(1.0))


# -- found by fuzzing (tests/_fuzz_targets.py) --------------------------------

def test_adam_t_beyond_the_kernels_integer_refused():
    # used to raise OverflowError from the compiled call, not naming t
    a = arrays()
    np.abs(a["v"], out=a["v"])  # a second moment
    for t in (2**63, 2**70):
        with pytest.raises(ValueError, match="t must be <="):
            call_adam(a, t=t)
    call_adam(a, t=2**63 - 1)
    assert np.isfinite(a["param"]).all()


@pytest.mark.parametrize("dtype, eps", [(np.float32, 1e-300), (np.float32, 1e-45), (np.float64, 5e-324)])
def test_adam_eps_that_rounds_to_zero_refused(dtype, eps):
    # the kernel folds eps * sqrt(1 - beta2^t) into one dtype constant; were it 0,
    # an element with m = v = 0 (zero gradient so far) became 0 / 0 = NaN
    a = arrays(dtype)
    np.abs(a["v"], out=a["v"])  # a second moment
    a["grad"][0, 0] = a["m"][0, 0] = a["v"][0, 0] = 0
    snapshot = {k: x.tobytes() for k, x in a.items()}
    with pytest.raises(ValueError, match="eps"):
        call_adam(a, eps=eps)
    assert_untouched(a, snapshot)
    call_adam(a, eps=1e-30 if dtype == np.float32 else 1e-300)  # small but representable: fine
    assert np.isfinite(a["param"]).all()


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_unaligned_grad_copied_matrix_param_updated():
    param = np.asmatrix(np.ones((2, 3)))
    grad = np.full((2, 3), 0.5)
    raw = np.zeros(grad.nbytes + 8, np.uint8)
    odd = raw[1:1 + grad.nbytes].view(np.float64).reshape(2, 3)
    odd[...] = grad
    sgd_update(param, odd, lr=0.1)
    np.testing.assert_array_equal(np.asarray(param), np.full((2, 3), 0.95))
