"""cydrop.uncertainty: the predictive log-likelihood, MC dropout spread,
return_std of the regressor, and the protocol on arrays."""
import math

import numpy as np
import pytest

import cydrop
from cydrop.uncertainty import (predictive_log_likelihood, tau_from_weight_decay,
                                weight_decay_from_tau)


def _direct_ll(y, samples, tau):
    """log( mean_t N(y; y_t, 1/tau) ), written out with plain exp and log."""
    density = np.sqrt(tau / (2 * np.pi)) * np.exp(-0.5 * tau * (y[None, :] - samples) ** 2)
    return np.log(density.mean(axis=0))


@pytest.mark.parametrize("tau", [0.1, 1.0, 7.5])
def test_log_likelihood_equals_direct_numpy(tau):
    rng = np.random.default_rng(0)
    y = rng.standard_normal(40)
    samples = y + rng.standard_normal((300, 40)) * 0.5
    expected = _direct_ll(y, samples, tau)
    np.testing.assert_allclose(predictive_log_likelihood(y, samples, tau, average=False), expected, rtol=1e-12)
    assert math.isclose(predictive_log_likelihood(y, samples, tau), expected.mean(), rel_tol=1e-12)
    # (T, n, 1) samples and (n, 1) targets, as predict_proba returns them
    assert math.isclose(predictive_log_likelihood(y[:, None], samples[:, :, None], tau), expected.mean(),
                        rel_tol=1e-12)


def test_log_likelihood_is_stable_far_from_every_pass():
    """Where every density underflows to 0 (log 0 = -inf directly), logsumexp
    gives the finite value: the nearest pass dominates."""
    y = np.array([0.0])
    samples = np.array([[100.0], [101.0]])
    tau = 10.0
    with np.errstate(divide="ignore"):
        assert np.isneginf(_direct_ll(y, samples, tau)[0])
    expected = -0.5 * tau * 100.0 ** 2 - math.log(2) - 0.5 * math.log(2 * math.pi) + 0.5 * math.log(tau)
    assert math.isclose(predictive_log_likelihood(y, samples, tau), expected, rel_tol=1e-9)


def test_log_likelihood_of_stats_is_the_gaussian():
    y, mean, std, tau = np.array([0.5, -1.0]), np.array([0.0, 0.0]), np.array([1.0, 2.0]), 4.0
    var = std ** 2 + 1 / tau
    expected = np.mean(-0.5 * np.log(2 * np.pi * var) - 0.5 * (y - mean) ** 2 / var)
    assert math.isclose(predictive_log_likelihood(y, mean=mean, std=std, tau=tau), expected, rel_tol=1e-12)


def test_log_likelihood_moments_must_be_one_value_per_row():
    y = np.array([0.5, -1.0, 2.0, 0.0])
    mean, std = np.array([0.0, 0.5, 1.0, 1.5]), np.array([1.0, 2.0, 0.5, 1.0])
    expected = predictive_log_likelihood(y, mean=mean, std=std, tau=4.0)
    # a column (n, 1), as y may be, is the same rows
    assert predictive_log_likelihood(y, mean=mean[:, None], std=std[:, None], tau=4.0) == expected
    for shape in [(2, 2), (1, 4), (4, 1, 1)]:   # n values, but not one per row
        with pytest.raises(ValueError, match="mean and std must have y's shape"):
            predictive_log_likelihood(y, mean=mean.reshape(shape), std=std, tau=4.0)
        with pytest.raises(ValueError, match="mean and std must have y's shape"):
            predictive_log_likelihood(y, mean=mean, std=std.reshape(shape), tau=4.0)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(3), np.zeros((5, 4)), 1.0), r"samples must have shape \(T >= 1, 3\)"),
    ((np.zeros(3), np.zeros((0, 3)), 1.0), "samples must have shape"),
    ((np.zeros(3), np.zeros((5, 3)), 0.0), "tau must be a finite number > 0"),
    ((np.zeros(3), np.zeros((5, 3)), float("nan")), "tau must be"),
    ((np.zeros(3), np.full((5, 3), np.nan), 1.0), "NaN or inf"),
    ((np.zeros(0), np.zeros((5, 0)), 1.0), "y must be 1-D"),
])
def test_log_likelihood_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        predictive_log_likelihood(*args)


def test_log_likelihood_takes_moments_only_by_keyword():
    """[mean, std] used to be read as T = 2 samples: a list or tuple is refused."""
    y, mean, std = np.zeros(3), np.ones(3), np.ones(3)
    for ambiguous in ([mean, std], (mean, std)):
        with pytest.raises(TypeError, match="samples must be a numpy.ndarray"):
            predictive_log_likelihood(y, ambiguous, 1.0)
    with pytest.raises(ValueError, match="std >= 0"):
        predictive_log_likelihood(y, mean=mean, std=-std, tau=1.0)
    with pytest.raises(TypeError, match="either samples or mean= and std="):
        predictive_log_likelihood(y, np.ones((2, 3)), 1.0, mean=mean, std=std)
    with pytest.raises(TypeError, match="mean and std go together"):
        predictive_log_likelihood(y, mean=mean, tau=1.0)


@pytest.mark.parametrize("call, match", [
    (lambda f, g: f(0.5, 0.9, 0, 128), "n_samples must be >= 1"),
    (lambda f, g: f(0.5, -1.0, 100, 128), "keep_prob must be in"),
    (lambda f, g: f(0.5, 0.9, 100, 0), "batch_size must be >= 1"),
    (lambda f, g: f("0.5", 0.9, 100, 128), "tau must be a finite number > 0"),
    (lambda f, g: f(0.5, 0.9, 100, 128, lengthscale=0.0), "lengthscale must be a finite number > 0"),
    (lambda f, g: g(1e-3, 0.9, 0, 128), "n_samples must be >= 1"),
    (lambda f, g: g(1e-3, 2.0, 100, 128), "keep_prob must be in"),
    (lambda f, g: g("x", 0.9, 100, 128), "l2 must be a finite number > 0"),
    (lambda f, g: g(1e-3, 0.9, 100, 2.5), "batch_size must be an integer"),
])
def test_tau_relations_refuse_bad_arguments_by_name(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(weight_decay_from_tau, tau_from_weight_decay)


def test_weight_decay_relation_round_trips():
    l2 = weight_decay_from_tau(0.05, 0.95, 741, 128)
    # lambda = l^2 p / (2 N tau), times the batch (README of the data)
    assert math.isclose(l2, 1e-4 * 0.95 / (2 * 741 * 0.05) * 128)
    assert math.isclose(tau_from_weight_decay(l2, 0.95, 741, 128), 0.05)


def _regression(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, np.sin(X[:, 0]) + 0.1 * rng.standard_normal(n)


def test_mc_std_is_zero_without_dropout_and_grows_with_the_rate():
    X, y = _regression()
    spreads = []
    for keep in (1.0, 0.9, 0.7, 0.5):
        net = cydrop.MLP([4, 50, 1], keep_prob=[keep, keep], output="linear", dtype="float64", seed=0)
        net.fit(X, y, epochs=30, batch_size=32, progress=False)
        mean, std = net.predict_proba(X[:50], mc_samples=400)
        assert mean.shape == std.shape == (50, 1)
        spreads.append(float(std.mean()))
    assert spreads[0] == 0.0
    assert spreads[1] > 0 and spreads[1] < spreads[2] < spreads[3]


def test_mc_samples_agree_with_mean_and_std():
    X, y = _regression()
    net = cydrop.MLP([4, 30, 1], keep_prob=0.8, output="linear", dtype="float64", seed=0)
    net.fit(X, y, epochs=5, batch_size=32, progress=False)
    mean, std, samples = net.predict_proba(X, mc_samples=64, return_samples=True)
    assert samples.shape == (64, 200, 1)
    np.testing.assert_allclose(mean, samples.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(std, samples.std(axis=0), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="return_samples=True needs mc_samples"):
        net.predict_proba(X, return_samples=True)


@pytest.mark.filterwarnings("ignore:Maximum iterations")
def test_regressor_return_std_shapes_and_noise():
    pytest.importorskip("sklearn")
    from cydrop.sklearn import DropoutMLPClassifier, DropoutMLPRegressor

    X, y = _regression()
    reg = DropoutMLPRegressor((20,), keep_prob=0.8, max_iter=5, random_state=0, dtype="float64").fit(X, y)
    mean, std = reg.predict(X[:7], return_std=True, tau=4.0, mc_samples=50)
    assert mean.shape == std.shape == (7,) and mean.dtype == std.dtype == np.float64
    assert (std >= 0.5).all()   # at least the noise sqrt(1 / tau)
    assert reg.predict(X[:7]).shape == (7,)
    # tau by default from the weight-decay relation (alpha 1e-4, N 200, batch 200, p 0.8)
    _, std_default = reg.predict(X[:7], return_std=True, mc_samples=50)
    tau_default = tau_from_weight_decay(1e-4, 0.8, 200, 200)
    assert (std_default >= math.sqrt(1 / tau_default)).all()
    with pytest.raises(ValueError, match="needs tau"):
        DropoutMLPRegressor((20,), alpha=0.0, max_iter=2).fit(X, y).predict(X[:7], return_std=True)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        reg.predict(X[:7], return_std=True, tau=-1.0)
    reg2 = DropoutMLPRegressor((20,), keep_prob=0.8, max_iter=5, random_state=0).fit(X, np.c_[y, y])
    mean2, std2 = reg2.predict(X[:7], return_std=True, tau=4.0, mc_samples=20)
    assert mean2.shape == std2.shape == (7, 2)
    clf = DropoutMLPClassifier((8,), max_iter=2, random_state=0).fit(X, y > 0)
    with pytest.raises(TypeError):
        clf.predict(X, return_std=True)
