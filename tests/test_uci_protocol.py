"""The published UCI protocol on arrays (cydrop/apps/uci_protocol.py): its
results, its repeats, its workers and its refusals."""
import math

import numpy as np
import pytest

from cydrop.apps.uci_protocol import run_protocol


def _regression(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, np.sin(X[:, 0]) + 0.1 * rng.standard_normal(n)


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


def test_protocol_takes_every_64_bit_seed_and_refuses_a_larger_one():
    X, y = _regression(20)
    splits = [(np.arange(15), np.arange(15, 20))] * 2   # split 1's networks: seed + 1000 + candidate
    grid = dict(dropout_rates=[0.1], taus=[1.0], epochs=1, mc_samples=2, n_hidden=4)
    assert run_protocol(X, y, splits, seed=2**64 - 1, **grid)["n_splits"] == 2
    with pytest.raises(ValueError, match=r"seed must be <= 18446744073709551615"):
        run_protocol(X, y, splits, seed=2**64, **grid)


def test_protocol_starts_no_more_workers_than_trainings(monkeypatch):
    from cydrop.apps import uci_protocol

    started = []
    real = uci_protocol.workers
    monkeypatch.setattr(uci_protocol, "workers", lambda n_jobs: started.append(n_jobs) or real(1))
    X, y = _regression(20)
    splits = [(np.arange(15), np.arange(15, 20))] * 2
    grid = dict(dropout_rates=[0.1, 0.2], taus=[1.0], epochs=1, mc_samples=2, n_hidden=4, n_jobs=100000)
    run_protocol(X, y, splits, **grid)                          # 2 candidates x 2 splits
    run_protocol(X, y, splits, learn=True, grid=False, repeats=3, **grid)  # 2 splits x 3 repeats
    assert started == [4, 6]


def test_protocol_in_worker_processes_equals_one_process():
    """Every network has its own seed: results do not depend on n_jobs."""
    pytest.importorskip("joblib")
    X, y = _regression(60)
    splits = [(np.arange(50), np.arange(50, 60)), (np.arange(10, 60), np.arange(10))]
    args = dict(dropout_rates=[0.05, 0.1], taus=[5.0], epochs=5, mc_samples=20, n_hidden=8)
    one, two = run_protocol(X, y, splits, n_jobs=1, **args), run_protocol(X, y, splits, n_jobs=2, **args)
    assert [row["rmse"] for row in one["splits"]] == [row["rmse"] for row in two["splits"]]
    assert one["test_ll"] == two["test_ll"]


# -- the learned column ----------------------------------------------------------------

LEARN = dict(dropout_rates=[0.05, 0.1], taus=[5.0, 50.0], epochs=30, mc_samples=20, n_hidden=16)


def _two_splits(n=120):
    perm = np.random.default_rng(1).permutation(n)
    return [(perm[:100], perm[100:]), (perm[20:], perm[:20])]


def test_learned_column_has_the_grid_columns_keys_and_the_keep_prob_per_layer():
    X, y = _regression(120)
    res = run_protocol(X, y, _two_splits(), learn=True, **LEARN)
    learn = res["learn"]
    assert {"rmse", "rmse_se", "rmse_standard", "rmse_standard_se", "test_ll", "test_ll_se", "seconds",
            "keep_prob", "splits"} == set(learn)
    assert [row["split"] for row in learn["splits"]] == [0, 1]
    for row in learn["splits"]:
        assert set(row) == {"split", "keep_prob", "tau_fitted", "best_epoch", "rmse", "rmse_standard", "test_ll"}
        assert len(row["keep_prob"]) == 2 and all(0 < v < 1 for v in row["keep_prob"])
        # the weights kept are read every LEARN_EVAL_EVERY epochs (and after the last)
        assert 1 <= row["best_epoch"] <= LEARN["epochs"]
        assert row["tau_fitted"] > 0 and row["rmse"] > 0 and np.isfinite(row["test_ll"])
    np.testing.assert_allclose(learn["keep_prob"], np.mean([row["keep_prob"] for row in learn["splits"]], axis=0))
    rmse = [row["rmse"] for row in learn["splits"]]
    assert math.isclose(learn["rmse"], np.mean(rmse)) and math.isclose(learn["rmse_se"], np.std(rmse) / math.sqrt(2))
    # the grid's column is the run without the learned one, and alone the learned column is the same
    without = run_protocol(X, y, _two_splits(), **LEARN)
    assert [row["rmse"] for row in res["splits"]] == [row["rmse"] for row in without["splits"]]
    alone = run_protocol(X, y, _two_splits(), learn=True, grid=False, **LEARN)
    assert "rmse" not in alone and alone["learn"]["splits"] == learn["splits"]


def test_learned_column_never_reads_the_test_targets():
    """The learned network, its keep_prob and tau are chosen on the fit and
    validation rows: permuting the test rows' targets changes the test
    scores only."""
    X, y = _regression(120)
    splits = _two_splits()
    res = run_protocol(X, y, splits, learn=True, grid=False, **LEARN)["learn"]["splits"]
    for k, (_, test) in enumerate(splits):
        shuffled = y.copy()
        shuffled[test] = y[test][np.random.default_rng(k).permutation(len(test))]
        # split k's test rows train the other split: only split k's choices must stay
        other = run_protocol(X, shuffled, splits, learn=True, grid=False, **LEARN)["learn"]["splits"][k]
        assert other["keep_prob"] == res[k]["keep_prob"] and other["tau_fitted"] == res[k]["tau_fitted"]
        assert other["best_epoch"] == res[k]["best_epoch"]
        assert other["test_ll"] != res[k]["test_ll"]   # the test rows were scored, with their new targets


def test_learned_column_with_repeats_keeps_each_repeat():
    X, y = _regression(120)
    learn = run_protocol(X, y, _two_splits(), learn=True, grid=False, repeats=2, **LEARN)["learn"]
    assert [(row["repeat"], row["split"]) for row in learn["splits"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert len(learn["rmse_repeats"]) == 2 and learn["rmse_repeats"][0] != learn["rmse_repeats"][1]


def test_protocol_refuses_to_run_no_column():
    X, y = _regression(20)
    with pytest.raises(ValueError, match="grid=False needs learn=True"):
        run_protocol(X, y, [(np.arange(15), np.arange(15, 20))], dropout_rates=[0.1], taus=[1.0], epochs=1,
                     mc_samples=2, grid=False)


def test_learned_tau_is_the_maximum_likelihood_precision():
    """With a single pass the log-likelihood in tau peaks at 1 / mean squared
    residual; the coarse-then-fine fit lands within its fine step of it."""
    from cydrop.apps.uci_protocol import _fit_learned_tau
    rng = np.random.default_rng(0)
    y = rng.standard_normal(400) * 7.0
    for noise in (0.05, 1.0, 20.0):
        samples = (y + noise * rng.standard_normal(400))[None, :]
        best = 1 / np.mean((y - samples[0]) ** 2)
        tau = _fit_learned_tau(y, samples, float(y.var()))
        assert abs(math.log(tau / best)) < 0.06
