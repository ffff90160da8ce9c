"""Concrete dropout (cydrop.concrete and its kernels, src/concrete.h).

The kernels are checked against an independent NumPy reference
(reference_concrete.py: its own extraction of the uniforms from the
generator's words, float64 libm for the noise), the gradients against
central differences in float64 with the noise fixed, the threads against
each other bit for bit, and the arguments for their refusals.
"""
import hashlib
import math
import pickle

import numpy as np
import pytest
from scipy.special import expit

import cydrop
from cydrop import _concrete
from cydrop._generator import reserve
from reference import key_from_seed
from reference_concrete import (concrete_logistic, concrete_noise, concrete_uniforms, reference_backward,
                                reference_forward)

DTYPES = [np.float32, np.float64]
KEY, BLOCK0 = 0x0123456789ABCDEF, 5
# (p_logit, temperature): the reference's dense and channel settings and
# extremes, on both of concrete.h's paths: the power path where 1 / t is a
# whole or half-whole number up to 16.5 (0.1, 2/3, 1, 0.5, 1/16, 2), the
# series path otherwise (0.01, 10, 0.3, 0.07)
SETTINGS = [(-2.197, 0.1), (0.0, 0.1), (3.0, 2 / 3), (-10.0, 1.0), (-50.0, 0.1), (80.0, 0.5), (1.5, 1 / 16),
            (-3.0, 2.0), (5.0, 0.01), (1.0, 10.0), (-2.197, 0.3), (0.5, 0.07)]
# below these the kernels give 0 (concrete.h: results are never subnormal)
FLUSH = {np.dtype(np.float32): 2.0 ** -124, np.dtype(np.float64): 2.0 ** -1020}


def noise_error_ratio(got, ref, other, p_logit, temperature, logistic, dtype):
    """max |got - ref| / bound, bound = ref (1 - ref) (|a| + max(1, |l|)) eps / t + ref eps + flush:
    the error that rounding a and l to the dtype costs through the logistic
    function's condition number, one ulp, and the flush to 0."""
    dtype = np.dtype(dtype)
    eps = np.finfo(dtype).eps
    condition = (abs(p_logit) + np.maximum(1.0, np.abs(logistic))) / temperature
    bound = ref * other * condition * eps + ref * eps + FLUSH[dtype]
    return float(np.max(np.abs(got.astype(np.float64) - ref) / bound))


# ---------------------------------------------------------------- the noise


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p_logit, temperature", SETTINGS)
def test_noise_matches_float64_libm_within_its_conditioning(dtype, p_logit, temperature):
    """concrete.h's accuracy claim, on 500k draws: |w - w_exact| and
    |z - z_exact| within 3 (w z (|a| + max(1, |l|)) / t + w) eps (measured
    on 2 million: 1.6 on the power path, 2.6 on the series path)."""
    n = 500_000
    w, z = _concrete.noise(KEY, BLOCK0, n, p_logit, temperature, np.dtype(dtype).name)
    assert w.dtype == z.dtype == dtype
    w_ref, z_ref, logistic = concrete_noise(KEY, BLOCK0, n, p_logit, temperature)
    assert noise_error_ratio(w, w_ref, z_ref, p_logit, temperature, logistic, dtype) < 3
    assert noise_error_ratio(z, z_ref, w_ref, p_logit, temperature, logistic, dtype) < 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_at_the_extremes_of_the_uniform(dtype):
    """U near 0 (u -> 0), near 2^31 (u -> 1/2, logit -> 0) and near 2^32 - 1 (u -> 1)."""
    U = np.concatenate([np.arange(0, 3000), 2 ** 31 + np.arange(-3000, 3000), 2 ** 32 - 1 - np.arange(3000),
                        2 ** np.arange(32) - 1, 2 ** np.arange(32)]).astype(np.uint64)
    logistic = concrete_logistic(U)
    assert logistic.min() < -22 and logistic.max() > 22 and np.abs(logistic).min() < 1e-9
    for p_logit, temperature in SETTINGS:
        w, z = _concrete.noise_of_uniforms(U.astype(np.uint32), p_logit, temperature, np.dtype(dtype).name)
        s = (p_logit + logistic) / temperature
        w_ref, z_ref = expit(-s), expit(s)
        assert noise_error_ratio(w, w_ref, z_ref, p_logit, temperature, logistic, dtype) < 3
        assert noise_error_ratio(z, z_ref, w_ref, p_logit, temperature, logistic, dtype) < 3


def test_uniforms_take_the_halves_of_the_stream_words_in_order():
    """The layout, against the reference's arithmetic extraction: at a
    temperature so low that z is the hard indicator u > 1 - p, p = 1/2
    (p_logit 0) gives z > 1/2 exactly where U >= 2^31, the top bit of U."""
    n = 64 * 7 + 13
    _, z = _concrete.noise(KEY, BLOCK0, n, 0.0, 1e-6, "float64")
    U = concrete_uniforms(KEY, BLOCK0, n)
    np.testing.assert_array_equal(z > 0.5, U >= 2 ** 31)


@pytest.mark.parametrize("p_logit", [-2.197, 0.0, 1.5])
@pytest.mark.parametrize("temperature", [0.1, 2 / 3])
def test_relaxed_indicator_has_the_binary_concrete_distribution(p_logit, temperature):
    """P(z <= c) = sigmoid(t logit(c) - p_logit) (Maddison et al. 2017), so
    P(z > 1/2) = p whatever t: checked at 5 levels on 10^6 draws within 5
    binomial standard deviations."""
    n = 1_000_000
    _, z = _concrete.noise(KEY, 77, n, p_logit, temperature, "float64")
    for c in (0.01, 0.2, 0.5, 0.8, 0.99):
        expected = expit(temperature * math.log(c / (1 - c)) - p_logit)
        assert abs(np.mean(z <= c) - expected) < 5 * math.sqrt(expected * (1 - expected) / n)


@pytest.mark.parametrize("temperature, mean_scale", [(0.1, 0.99869), (2 / 3, 0.94968)])
def test_mean_scale_of_the_relaxed_mask(temperature, mean_scale):
    """E[(1 - z) / (1 - p)] is not 1 for t > 0: at p = 0.1 it is 0.99869 for
    t = 0.1 but 0.94968 for t = 2/3 (by quadrature over the logistic
    density: the figures the docs quote for eval mode, where the modules are
    the identity). The kernels' mean over 10^6 draws agrees within 5 sd."""
    p_logit = math.log(0.1 / 0.9)
    logistic = np.linspace(-40, 40, 400_001)
    density = expit(logistic) * expit(-logistic)
    exact = np.trapezoid(expit(-(p_logit + logistic) / temperature) * density, logistic) / 0.9
    assert abs(exact - mean_scale) < 1e-5
    w, _ = _concrete.noise(KEY, 11, 1_000_000, p_logit, temperature, "float64")
    factor = w / 0.9
    assert abs(factor.mean() - exact) < 5 * factor.std() / 1000


def test_noise_bits_are_the_same_on_every_machine():
    """The noise is a pure function of (key, position, p_logit, t, dtype)
    computed with +, -, *, /, square roots and bit operations only: these
    digests (of the power path at t = 0.1, the power and square-root path at
    t = 2/3 and the series path at t = 0.3) were recorded once and must come
    out of every CPU, vector width and build. A change of the noise's
    definition changes them: a new stream, to be announced as such."""
    digests = []
    for dtype in ("float32", "float64"):
        h = hashlib.sha256()
        for temperature in (0.1, 2 / 3, 0.3):
            w, z = _concrete.noise(KEY, BLOCK0, 10_000, -2.197, temperature, dtype)
            h.update(w.tobytes() + z.tobytes())
        digests.append(h.hexdigest()[:16])
    assert digests == EXPECTED_NOISE_DIGESTS


# recorded with x86-64 baseline (SSE2), AVX2, AVX-512 and -O0 builds of
# concrete.h (GCC 12), which agree bit for bit
EXPECTED_NOISE_DIGESTS = ["c54518a2996a899f", "4a1c2301622fe8e9"]


# ---------------------------------------------------------------- the passes


def _data(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 63, 64, 65, 4096 * 3 + 17, 70_001])
def test_forward_is_x_times_w_times_scale(dtype, n):
    """y == x * (w * scale) bit for bit, w from the kernels' own noise (so
    whole blocks and the zero-padded last block compute alike), and y within
    the noise's accuracy of the float64 reference."""
    x = _data(n, dtype, 1)
    p_logit, temperature = -1.3, 0.1
    y = _concrete.forward(x, None, KEY, BLOCK0, p_logit, temperature, 1, 1)
    w, _ = _concrete.noise(KEY, BLOCK0, n, p_logit, temperature, np.dtype(dtype).name)
    scale = dtype(_concrete.scalars(p_logit, temperature)[1])
    np.testing.assert_array_equal(y, x * (w * scale))
    w_ref, z_ref, logistic = concrete_noise(KEY, BLOCK0, n, p_logit, temperature)
    y_ref = reference_forward(x, w_ref, p_logit)
    eps = np.finfo(dtype).eps
    bound = np.abs(y_ref) * (z_ref * (abs(p_logit) + np.maximum(1, np.abs(logistic))) / temperature + 4) * 3 * eps
    assert np.all(np.abs(y - y_ref) <= bound + FLUSH[np.dtype(dtype)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [5, 64, 4096 * 9 + 3])
def test_backward_matches_the_reference(dtype, n):
    x, dy = _data(n, dtype, 2), _data(n, dtype, 3)
    p_logit, temperature = 0.4, 2 / 3
    dx, y, grad = _concrete.backward(dy, x, None, None, KEY, BLOCK0, p_logit, temperature, 1, True, True, 1)
    w, z = _concrete.noise(KEY, BLOCK0, n, p_logit, temperature, np.dtype(dtype).name)
    scale = dtype(_concrete.scalars(p_logit, temperature)[1])
    np.testing.assert_array_equal(dx, dy * (w * scale))
    np.testing.assert_array_equal(y, _concrete.forward(x, None, KEY, BLOCK0, p_logit, temperature, 1, 1))
    w_ref, z_ref, _ = concrete_noise(KEY, BLOCK0, n, p_logit, temperature)
    dx_ref, grad_ref = reference_backward(dy, x, w_ref, z_ref, p_logit, temperature)
    rtol = {np.float32: 1e-5, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(dx, dx_ref, rtol=rtol, atol=0)
    scale_of_sum = np.sum(np.abs(dy.astype(float) * x.astype(float))) / temperature
    assert abs(grad - grad_ref) <= rtol * scale_of_sum


def _loss_and_grads(x, dy, p_logit, temperature, run=1):
    """L = sum dy * y with the noise fixed at (KEY, BLOCK0), and the kernels' (dL/dx, dL/dp_logit)."""
    y = _concrete.forward(x, None, KEY, BLOCK0, p_logit, temperature, run, 1)
    dx, _, grad = _concrete.backward(dy, x, None, None, KEY, BLOCK0, p_logit, temperature, run, True, False, 1)
    return float(np.sum(dy * y)), dx, grad


def _relative_error(a, b):
    return abs(a - b) / max(abs(a), abs(b))


@pytest.mark.parametrize("p_logit, temperature", [(-2.197, 0.1), (0.3, 2 / 3), (2.0, 1.5)])
@pytest.mark.parametrize("run", [1, 7])
def test_gradients_match_central_differences_in_float64(p_logit, temperature, run):
    """dL/dp_logit and dL/dx of L = sum dy * y, the noise fixed: relative
    error below 1e-7 (Richardson-extrapolated central differences)."""
    x, dy = _data(7 * 300, np.float64, 4), _data(7 * 300, np.float64, 5)
    _, dx, grad = _loss_and_grads(x, dy, p_logit, temperature, run)

    def central(f, h):
        return (f(h) - f(-h)) / (2 * h)

    def richardson(f, h):
        return (4 * central(f, h / 2) - central(f, h)) / 3

    def loss_at_p_logit(h):
        return _loss_and_grads(x, dy, p_logit + h, temperature, run)[0]
    assert _relative_error(richardson(loss_at_p_logit, 1e-3 * temperature), grad) < 1e-7
    for i in (0, 1, 299, 1000, 2099):
        def loss_at_x(h):
            x2 = x.copy()
            x2[i] += h
            return _loss_and_grads(x2, dy, p_logit, temperature, run)[0]
        assert _relative_error(richardson(loss_at_x, 1e-3), dx[i]) < 1e-7


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("run", [1, 33])
def test_same_output_and_gradient_on_1_2_and_3_threads(dtype, run, reset_threads):
    """Large enough (> 8 chunks of 4096) for the parallel paths: y, dx, the
    recomputed y and the p_logit gradient are the same bits for 1, 2 and 3 threads."""
    n = 33 * 10_007
    x, dy = _data(n, dtype, 6), _data(n, dtype, 7)
    results = []
    for threads in (1, 2, 3):
        y = _concrete.forward(x, None, KEY, BLOCK0, -1.0, 0.1, run, threads)
        dx, y2, grad = _concrete.backward(dy, x, None, None, KEY, BLOCK0, -1.0, 0.1, run, True, True, threads)
        results.append((y, dx, y2, grad))
    for y, dx, y2, grad in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])
        np.testing.assert_array_equal(y2, results[0][2])
        assert grad == results[0][3]
    np.testing.assert_array_equal(results[0][0], results[0][2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_runs_share_one_noise_value(dtype):
    """run > 1: element i * run + j is scaled by noise value i, as an
    element-wise pass over the noise values scales element i."""
    n_noise, run = 131, 9
    x = _data(n_noise * run, dtype, 8)
    y = _concrete.forward(x, None, KEY, BLOCK0, 0.5, 2 / 3, run, 1)
    ones = np.ones(n_noise, dtype)
    factor = _concrete.forward(ones, None, KEY, BLOCK0, 0.5, 2 / 3, 1, 1)   # = w * scale
    np.testing.assert_array_equal(y, x * np.repeat(factor, run))


def test_the_outputs_may_be_the_inputs():
    x, dy = _data(5000, np.float32, 9), _data(5000, np.float32, 10)
    y = _concrete.forward(x, None, KEY, BLOCK0, 0.0, 0.1, 1, 1)
    dx, _, grad = _concrete.backward(dy, x, None, None, KEY, BLOCK0, 0.0, 0.1, 1, True, False, 1)
    x2, dy2 = x.copy(), dy.copy()
    _, y_back, grad2 = _concrete.backward(dy2, x2, dy2, x2, KEY, BLOCK0, 0.0, 0.1, 1, True, True, 1)
    assert y_back is x2 and grad2 == grad
    np.testing.assert_array_equal(x2, y)
    np.testing.assert_array_equal(dy2, dx)
    assert _concrete.forward(x, x, KEY, BLOCK0, 0.0, 0.1, 1, 1) is x
    np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------- the NumPy API


@pytest.mark.parametrize("dtype", DTYPES)
def test_concrete_dropout_draws_from_the_generator_position(dtype):
    x = _data((37, 11), dtype, 11)
    gen = cydrop.Generator(42)
    y, state = cydrop.concrete_dropout(x, -2.0, seed=gen)
    assert gen.state["counter"] == -(-x.size // 64)          # one block per 64 noise values
    assert (state.key, state.block) == (key_from_seed(42), 0)
    np.testing.assert_array_equal(y, _concrete.forward(x, None, state.key, 0, -2.0, 0.1, 1, 1))
    y2, state2 = cydrop.concrete_dropout(x, -2.0, seed=gen)
    assert state2.block == state.block + -(-x.size // 64) and not np.array_equal(y, y2)
    y3, _ = cydrop.concrete_dropout(x, -2.0, seed=42)
    np.testing.assert_array_equal(y3, y)


def test_state_holds_no_mask():
    """0 bytes between forward and backward: the state is the position,
    the shapes and two scalars, nothing proportional to x."""
    x = np.ones((256, 1024), np.float32)
    _, state = cydrop.concrete_dropout(x, 0.0, seed=0)
    assert state.nbytes == 0
    assert not any(isinstance(v, np.ndarray) for v in vars(state).values())
    assert len(pickle.dumps(state)) < 400
    assert state.keep_prob == 0.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_noise_shape_gives_one_value_per_channel(dtype):
    x = _data((3, 4, 5, 6), dtype, 12)
    y, state = cydrop.concrete_dropout(x, -1.0, temperature=2 / 3, seed=3, noise_shape=(3, 4, 1, 1))
    assert state.noise_shape == (3, 4, 1, 1) and reserve(cydrop.Generator(3), 12)[1] == 0
    w, _ = _concrete.noise(state.key, state.block, 12, -1.0, 2 / 3, np.dtype(dtype).name)
    scale = dtype(_concrete.scalars(-1.0, 2 / 3)[1])
    np.testing.assert_array_equal(y, x * (w * scale).reshape(3, 4, 1, 1))
    dx, dp_logit = cydrop.concrete_dropout_backward(np.ones_like(x), x, state)
    np.testing.assert_array_equal(dx, np.broadcast_to((w * scale).reshape(3, 4, 1, 1), x.shape))
    w_ref, z_ref, _ = concrete_noise(state.key, state.block, 12, -1.0, 2 / 3)
    _, grad_ref = reference_backward(np.ones(x.size), x, w_ref, z_ref, -1.0, 2 / 3, run=30)
    assert abs(dp_logit - grad_ref) <= {np.float32: 1e-5, np.float64: 1e-12}[dtype] * np.abs(x).sum() * 1.5


def test_noise_shape_of_x_is_element_wise():
    x = _data((6, 7), np.float64, 13)
    y1, _ = cydrop.concrete_dropout(x, 0.2, seed=5)
    y2, _ = cydrop.concrete_dropout(x, 0.2, seed=5, noise_shape=(6, None))
    np.testing.assert_array_equal(y1, y2)


def test_backward_in_place_and_empty_arrays():
    x, dy = _data((8, 9), np.float64, 14), _data((8, 9), np.float64, 15)
    y, state = cydrop.concrete_dropout(x, 0.1, seed=6)
    dx, g = cydrop.concrete_dropout_backward(dy, x, state)
    dy2 = dy.copy()
    dx2, g2 = cydrop.concrete_dropout_backward(dy2, x, state, out=dy2)
    assert dx2 is dy2 and g2 == g
    np.testing.assert_array_equal(dx2, dx)
    e = np.empty((0, 4), np.float32)
    y, state = cydrop.concrete_dropout(e, 0.0, seed=1)
    assert y.shape == (0, 4) and cydrop.concrete_dropout_backward(e, e, state)[1] == 0.0


def test_non_contiguous_input_is_copied_not_refused():
    x = _data((10, 20), np.float64, 16)
    y1, _ = cydrop.concrete_dropout(x[:, ::2], 0.0, seed=2)
    y2, _ = cydrop.concrete_dropout(np.ascontiguousarray(x[:, ::2]), 0.0, seed=2)
    np.testing.assert_array_equal(y1, y2)


# ---------------------------------------------------------------- the regulariser


def test_regularizer_value_and_gradients():
    """R = wr ||W||^2 / (1 - p) + dr K (p log p + (1 - p) log(1 - p)), and its
    gradients against central differences (relative error below 1e-7)."""
    W = _data((5, 3), np.float64, 17)
    wr, dr = 1e-3, 2e-2
    for p_logit in (-3.0, 0.0, 0.7, 6.0):
        value, dp_logit, dW = cydrop.concrete_regularizer(p_logit, W, weight_regularizer=wr, dropout_regularizer=dr)
        p = 1 / (1 + math.exp(-p_logit))
        expected = wr * float(np.sum(W ** 2)) / (1 - p) + dr * 5 * (p * math.log(p) + (1 - p) * math.log(1 - p))
        assert _relative_error(value, expected) < 1e-12

        def r_at(h):
            return cydrop.concrete_regularizer(p_logit + h, W, weight_regularizer=wr, dropout_regularizer=dr)[0]
        h = 1e-5
        assert _relative_error((r_at(h) - r_at(-h)) / (2 * h), dp_logit) < 1e-7
        i, j = 2, 1
        W2 = W.copy()
        W2[i, j] += h
        plus = cydrop.concrete_regularizer(p_logit, W2, weight_regularizer=wr, dropout_regularizer=dr)[0]
        W2[i, j] -= 2 * h
        minus = cydrop.concrete_regularizer(p_logit, W2, weight_regularizer=wr, dropout_regularizer=dr)[0]
        assert _relative_error((plus - minus) / (2 * h), dW[i, j]) < 1e-7
    assert cydrop.concrete_regularizer(0.0, np.ones((2, 2), np.float32), weight_regularizer=1.0,
                                       dropout_regularizer=0.0, n_inputs=7)[2].dtype == np.float32


def test_regularizer_weights_and_conversions():
    assert cydrop.concrete_regularizer_weights(0.5, 100, precision=2.0) == (0.25 / 200, 2 / 200)
    assert cydrop.concrete_regularizer_weights(0.5, 100, loss="cross_entropy")[1] == 1 / 100
    for keep_prob in (1e-9, 0.1, 0.5, 0.9, 1 - 1e-9):
        p_logit = cydrop.concrete_p_logit(keep_prob)
        assert abs(cydrop.concrete_keep_prob(p_logit) - keep_prob) < 1e-15
        assert _relative_error(expit(-p_logit), keep_prob) < 1e-12
    assert cydrop.concrete_keep_prob(-800.0) == 1.0 and cydrop.concrete_keep_prob(800.0) == 0.0


# ---------------------------------------------------------------- bad input

BAD_P_LOGITS = [(float("nan"), ValueError), (float("inf"), ValueError), (-float("inf"), ValueError),
                ("0.1", TypeError), (None, TypeError), (True, TypeError), ([0.1], TypeError)]
BAD_TEMPERATURES = [(0.0, ValueError), (-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                    ("0.1", TypeError), (None, TypeError), (False, TypeError)]


@pytest.mark.parametrize("p_logit, error", BAD_P_LOGITS + [(100.0, ValueError)])
def test_bad_p_logit_refused_before_anything_is_drawn(p_logit, error):
    x = np.ones((4, 5), np.float32)    # 100 is too large for float32: 1 / (1 - p) overflows
    gen, out = cydrop.Generator(0), np.zeros_like(x)
    with pytest.raises(error, match="p_logit"):
        cydrop.concrete_dropout(x, p_logit, seed=gen, out=out)
    assert gen.state["counter"] == 0 and not out.any()


def test_large_p_logit_is_fine_in_float64():
    y, _ = cydrop.concrete_dropout(np.ones(100), 100.0, seed=0)
    assert np.isfinite(y).all()


@pytest.mark.parametrize("temperature, error", BAD_TEMPERATURES + [(1e-39, ValueError)])
def test_bad_temperature_refused(temperature, error):
    gen = cydrop.Generator(0)
    with pytest.raises(error, match="temperature"):
        cydrop.concrete_dropout(np.ones(10, np.float32), 0.0, temperature=temperature, seed=gen)
    assert gen.state["counter"] == 0


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(x=np.ones(10, np.int64)), TypeError, "x must have dtype"),
    (dict(x=[1.0, 2.0]), TypeError, "x must be a numpy.ndarray"),
    (dict(out=np.zeros(9, np.float64)), ValueError, "out must have shape"),
    (dict(out=np.zeros(10, np.float32)), TypeError, "out must have dtype"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(seed="1"), TypeError, "seed"),
    (dict(x=np.ones((2, 3)), noise_shape=(1, 3)), ValueError, "noise_shape"),
    (dict(x=np.ones((2, 3)), noise_shape=(2, 2)), ValueError, "noise_shape"),
    (dict(x=np.ones((2, 3)), noise_shape=(2,)), ValueError, "noise_shape"),
])
def test_bad_arguments_named(kwargs, error, match):
    args = dict(x=np.ones(10), seed=0)
    args.update(kwargs)
    x = args.pop("x")
    with pytest.raises(error, match=match):
        cydrop.concrete_dropout(x, 0.0, **args)


def test_read_only_out_refused():
    out = np.zeros(10)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writable"):
        cydrop.concrete_dropout(np.ones(10), 0.0, out=out)


def test_backward_refuses_arrays_unlike_the_forward_call():
    x = np.ones((4, 6))
    _, state = cydrop.concrete_dropout(x, 0.0, seed=0)
    with pytest.raises(TypeError, match="state must be the ConcreteState"):
        cydrop.concrete_dropout_backward(x, x, None)
    with pytest.raises(ValueError, match="dy has shape"):
        cydrop.concrete_dropout_backward(np.ones((6, 4)), x, state)
    with pytest.raises(TypeError, match="x has dtype"):
        cydrop.concrete_dropout_backward(x, x.astype(np.float32), state)
    with pytest.raises(ValueError, match="out may be dy"):
        cydrop.concrete_dropout_backward(x.copy(), x, state, out=x)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(p_logit=float("nan")), ValueError, "p_logit"),
    (dict(W=[[1.0]]), TypeError, "W must be"),
    (dict(W=np.ones(3, np.int32)), TypeError, "W must be"),
    (dict(weight_regularizer=-1.0), ValueError, "weight_regularizer"),
    (dict(dropout_regularizer="x"), TypeError, "dropout_regularizer"),
    (dict(n_inputs=0), ValueError, "n_inputs"),
    (dict(W=np.ones(())), ValueError, "n_inputs"),
])
def test_regularizer_bad_arguments_named(kwargs, error, match):
    args = dict(p_logit=0.0, W=np.ones((2, 2)), weight_regularizer=1.0, dropout_regularizer=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        cydrop.concrete_regularizer(args.pop("p_logit"), args.pop("W"), **args)


@pytest.mark.parametrize("call, error, match", [
    (lambda: cydrop.concrete_regularizer_weights(0.0, 10), ValueError, "length_scale"),
    (lambda: cydrop.concrete_regularizer_weights(1.0, 0), ValueError, "n_samples"),
    (lambda: cydrop.concrete_regularizer_weights(1.0, 10, precision=-1), ValueError, "precision"),
    (lambda: cydrop.concrete_regularizer_weights(1.0, 10, loss="hinge"), ValueError, "loss"),
    (lambda: cydrop.concrete_p_logit(1.0), ValueError, "keep_prob"),
    (lambda: cydrop.concrete_p_logit("0.5"), TypeError, "keep_prob"),
    (lambda: cydrop.concrete_keep_prob(None), TypeError, "p_logit"),
])
def test_helpers_refuse_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# the compiled entry points defend themselves (callers that skip cydrop.concrete's checks)
F = np.float32


@pytest.mark.parametrize("call, error, match", [
    (lambda: _concrete.forward(np.ones(10, F), np.empty(9, F), 1, 0, 0.0, 0.1, 1, 1), ValueError, "y has"),
    (lambda: _concrete.forward(np.ones(10, F), np.empty(10, np.float64), 1, 0, 0.0, 0.1, 1, 1), TypeError, "y must"),
    (lambda: _concrete.forward(np.ones(10, F), None, 1, 0, 0.0, 0.1, 3, 1), ValueError, "run"),
    (lambda: _concrete.forward(np.ones(10, F), None, 1, 0, 0.0, 0.1, 0, 1), ValueError, "run"),
    (lambda: _concrete.forward(np.ones(10, F), None, 1, 2 ** 59, 0.0, 0.1, 1, 1), ValueError, "block0"),
    (lambda: _concrete.forward(np.ones(10, np.int32), None, 1, 0, 0.0, 0.1, 1, 1), TypeError, "x must"),
    (lambda: _concrete.forward(np.ones(10, F), None, 1, 0, float("nan"), 0.1, 1, 1), ValueError, "p_logit"),
    (lambda: _concrete.forward(np.ones(10, F), None, 1, 0, 0.0, 0.0, 1, 1), ValueError, "temperature"),
    (lambda: _concrete.backward(np.ones(9, F), np.ones(10, F), None, None, 1, 0, 0.0, 0.1, 1, True, False, 1),
     ValueError, "dy has"),
    (lambda: _concrete.backward(np.ones(10, F), np.ones(10, F), np.empty(11, F), None, 1, 0, 0.0, 0.1, 1, True,
                                False, 1), ValueError, "dx has"),
    (lambda: _concrete.backward(np.ones(10, F), np.ones(10, F), None, np.empty(9, F), 1, 0, 0.0, 0.1, 1, True,
                                True, 1), ValueError, "y has"),
    (lambda: _concrete.backward(np.ones(10, np.float64), np.ones(10, F), None, None, 1, 0, 0.0, 0.1, 1, True,
                                False, 1), TypeError, "dy must"),
    (lambda: _concrete.noise_of_uniforms(np.ones(3, np.int32), 0.0, 0.1, "float32"), TypeError, "U must"),
    (lambda: _concrete.noise(1, 0, -1, 0.0, 0.1, "float32"), ValueError, "n must"),
])
def test_entry_points_refuse_what_their_kernels_rely_on(call, error, match):
    with pytest.raises(error, match=match):
        call()
