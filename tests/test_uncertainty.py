"""cydrop.uncertainty: the predictive log-likelihood, MC dropout spread,
return_std of the regressor, and the protocol on arrays."""
import math

import numpy as np
import pytest

import cydrop
from cydrop.uncertainty import (predictive_log_likelihood, run_protocol, tau_from_weight_decay,
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
    assert math.isclose(predictive_log_likelihood(y, (mean, std), tau), expected, rel_tol=1e-12)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(3), np.zeros((5, 4)), 1.0), r"samples must have shape \(T >= 1, 3\)"),
    ((np.zeros(3), np.zeros((0, 3)), 1.0), "samples must have shape"),
    ((np.zeros(3), np.zeros((5, 3)), 0.0), "tau must be a finite number > 0"),
    ((np.zeros(3), np.zeros((5, 3)), float("nan")), "tau must be"),
    ((np.zeros(3), np.full((5, 3), np.nan), 1.0), "NaN or inf"),
    ((np.zeros(0), np.zeros((5, 0)), 1.0), "y must be 1-D"),
    ((np.zeros(3), (np.zeros(3), -np.ones(3)), 1.0), "std >= 0"),
])
def test_log_likelihood_refuses_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        predictive_log_likelihood(*args)


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


def test_protocol_on_arrays_small():
    X, y = _regression(120)
    rng = np.random.default_rng(1)
    splits = []
    for _ in range(2):
        perm = rng.permutation(120)
        splits.append((perm[:100], perm[100:]))
    res = run_protocol(X, y, splits, dropout_rates=[0.05, 0.1], taus=[5.0, 50.0], epochs=20, mc_samples=50,
                       n_hidden=16, extended=True)
    assert res["n_splits"] == 2 and len(res["splits"]) == 2
    for row in res["splits"]:
        assert row["dropout_rate"] in (0.05, 0.1) and row["tau_train"] in (5.0, 50.0)
        assert row["rmse"] > 0 and np.isfinite(row["test_ll"]) and np.isfinite(row["test_ll_extended"])
        # the published column keeps the published schedule; the extended one may take the longer
        assert row["epochs"] == 20 and row["extended_epochs"] in (20, 50)
        assert row["tau_fitted"] > 0
    rmse = [row["rmse"] for row in res["splits"]]
    assert math.isclose(res["rmse"], np.mean(rmse))
    assert math.isclose(res["rmse_se"], np.std(rmse) / math.sqrt(2))


def test_protocol_repeats_average_each_split_and_keep_each_repeat():
    X, y = _regression(120)
    perm = np.random.default_rng(1).permutation(120)
    splits = [(perm[:100], perm[100:]), (perm[20:], perm[:20])]
    args = dict(dropout_rates=[0.05, 0.1], taus=[5.0, 50.0], epochs=20, mc_samples=50, n_hidden=16)
    once = run_protocol(X, y, splits, **args)
    res = run_protocol(X, y, splits, repeats=3, **args)
    assert res["repeats"] == 3 and res["n_splits"] == 2 and len(res["splits"]) == 6
    assert [(row["repeat"], row["split"]) for row in res["splits"]] == [(r, k) for r in range(3) for k in range(2)]
    rmse = np.array([row["rmse"] for row in res["splits"]]).reshape(3, 2)
    # repeat 0 is the single run, network for network
    np.testing.assert_allclose(rmse[0], [row["rmse"] for row in once["splits"]], rtol=1e-12)
    # the other repeats train networks of other seeds
    assert len(set(rmse[:, 0])) == 3
    per_split = rmse.mean(axis=0)
    assert math.isclose(res["rmse"], per_split.mean())
    assert math.isclose(res["rmse_se"], np.std(per_split) / math.sqrt(2))
    np.testing.assert_allclose(res["rmse_repeats"], rmse.mean(axis=1), rtol=1e-12)
    assert len(res["test_ll_repeats"]) == 3
    with pytest.raises(ValueError, match="repeats"):
        run_protocol(X, y, splits, repeats=0, **args)


@pytest.mark.parametrize("kwargs, match", [
    (dict(dropout_rates=[], taus=[1.0]), "dropout_rates is empty"),
    (dict(dropout_rates=[0.1], taus=[]), "taus is empty"),
    (dict(dropout_rates=[1.0], taus=[1.0]), r"dropout_rates must be in \[0, 1\)"),
    (dict(dropout_rates=[0.1], taus=[-1.0]), "taus must be a finite number > 0"),
])
def test_protocol_refuses_bad_grid(kwargs, match):
    X, y = _regression(20)
    with pytest.raises(ValueError, match=match):
        run_protocol(X, y, [(np.arange(15), np.arange(15, 20))], epochs=1, mc_samples=2, **kwargs)


def test_protocol_refuses_bad_splits():
    X, y = _regression(20)
    grid = dict(dropout_rates=[0.1], taus=[1.0], epochs=1, mc_samples=2)
    with pytest.raises(ValueError, match=r"split 0: test rows must be in \[0, 20\)"):
        run_protocol(X, y, [(np.arange(15), np.array([20]))], **grid)
    with pytest.raises(ValueError, match="split 0: train rows must be a non-empty"):
        run_protocol(X, y, [(np.array([], dtype=int), np.arange(3))], **grid)
    with pytest.raises(ValueError, match="splits is empty"):
        run_protocol(X, y, [], **grid)
