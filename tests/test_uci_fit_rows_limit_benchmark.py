"""benchmarks/uci_fit_rows_limit.py: the grid's choice trained on the fit rows
only, beside the protocol's retrain on all training rows, the learned column
and the learned column trained again on all rows. The trainings are stubbed
(the real run is minutes); this checks the wiring the figures depend on:
which candidate each split retrains, on which rows, with which seed, for
how many epochs, at which tau, and how the table judges the bounds.

Not a timed test, and it judges no floor."""
import json

import numpy as np
import pytest

from cydrop.apps import uci_protocol

import bench_scripts


@pytest.fixture
def bench():
    return bench_scripts.load("uci_fit_rows_limit")


def _dataset():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    splits = [(np.arange(0, 20), np.arange(20, 30)), (np.arange(10, 30), np.arange(0, 10))]
    return dict(name="toy", X=X, y=y, splits=splits, published={"rmse": 1.0, "rmse_se": 0.1, "test_ll": -1.0,
                                                                  "test_ll_se": 0.1})


def test_each_split_retrains_its_choice_on_all_rows_and_on_the_fit_rows(bench, monkeypatch):
    ds = _dataset()
    cfg = uci_protocol.config([0.01, 0.1], [1.0, 2.0], epochs=3, mc_samples=4, n_hidden=5, seed=7)
    best = {0: 2, 1: 1}     # the candidate each split's validation log-likelihood favours

    def candidate_task(args):
        X, y, train, r, k, c, cfg_ = args
        return r, k, c, (1.0 if c == best[k] else 0.0), None

    trained = []

    def train_and_sample(X_tr, y_tr, X_ev, rate, tau, epochs, cfg_, seed):
        trained.append((len(X_tr), rate, tau, seed))
        # every pass predicts the rows' mean: a known RMSE on the test rows
        return np.full((cfg_["mc_samples"], len(X_ev)), float(y_tr.mean())), np.zeros(len(X_ev))

    def learn_task(args):
        k = args[5]
        return {"split": k, "rmse": 0.5, "test_ll": -0.5, "keep_prob": [0.9, 0.8], "best_epoch": 2 + k,
                "tau_fitted": 10.0 + k}

    learned_again = []

    def _train(X_tr, y_tr, keep_prob, l2, epochs, cfg_, seed, target_std=1.0, validation=None):
        learned_again.append((len(X_tr), keep_prob, epochs, seed, target_std, validation))
        return "net", float(y_tr.mean()), {}

    def _sample(net, scale, X_ev, cfg_):
        # every pass predicts the training rows' mean, 1 apart: a known RMSE and log-likelihood
        samples = scale + np.array([[-1.0], [1.0]]) * np.ones(len(X_ev))
        return samples, np.zeros(len(X_ev))

    class Net:
        keep_prob_ = [0.95, 0.85]

    monkeypatch.setattr(uci_protocol, "candidate_task", candidate_task)
    monkeypatch.setattr(uci_protocol, "train_and_sample", train_and_sample)
    monkeypatch.setattr(uci_protocol, "learn_task", learn_task)
    monkeypatch.setattr(uci_protocol, "_train", lambda *a, **kw: (Net(), *_train(*a, **kw)[1:]))
    monkeypatch.setattr(uci_protocol, "_sample", _sample)
    out = bench.run_dataset(ds, cfg, map)

    seed = uci_protocol._network_seed
    chosen = [cfg["grid"][best[k]][:2] for k in (0, 1)]
    # first each split's retrain on all 20 training rows (timed with the grid), then on the 16 fit rows
    # with the grid phase's own network's seed
    assert trained == ([(20, *chosen[k], seed(7, 0, k, uci_protocol._RETRAIN)) for k in (0, 1)]
                       + [(16, *chosen[k], seed(7, 0, k, best[k])) for k in (0, 1)])
    columns = out["columns"]
    assert list(columns) == list(bench.COLUMNS)
    for k, (train, test) in enumerate(ds["splits"]):
        fit = train[:16]
        for name, rows in (("grid, all rows", train), ("grid, fit rows", fit)):
            row = columns[name]["splits"][k]
            assert row["dropout_rate"] == cfg["grid"][best[k]][0]
            rmse = np.sqrt(np.mean((ds["y"][test] - ds["y"][rows].mean()) ** 2))
            assert row["rmse"] == pytest.approx(rmse)
    assert columns["learned"]["rmse"] == pytest.approx(0.5) and columns["learned"]["rmse_se"] == 0.0
    # trained again: all 20 training rows, the learned column's kept epochs, the retrain's seed, the
    # learned column's prior (the target scaled as learn_task scales it), no validation rows
    assert learned_again == [(20, "learn", 2 + k, seed(7, 0, k, uci_protocol._RETRAIN),
                              1 / uci_protocol.LEARN_PRIOR_NOISE, None) for k in (0, 1)]
    for k, (train, test) in enumerate(ds["splits"]):
        row = columns["learned, again on all rows"]["splits"][k]
        assert row["epochs"] == 2 + k and row["tau"] == 10.0 + k and row["keep_prob"] == [0.95, 0.85]
        mean = ds["y"][test] - ds["y"][train].mean()
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean(mean ** 2)))   # the mean of the two passes
        # the mixture of N(mean -+ 1, 1 / tau), tau the learned column's
        tau = 10.0 + k
        pdf = [np.sqrt(tau / (2 * np.pi)) * np.exp(-0.5 * tau * (mean - d) ** 2) for d in (-1.0, 1.0)]
        assert row["test_ll"] == pytest.approx(np.mean(np.log(0.5 * (pdf[0] + pdf[1]))))
    for key in ("grid_seconds", "learned_seconds", "again_seconds"):
        assert out[key] >= 0


def test_the_table_judges_each_bound(bench):
    published = {"rmse": 1.0, "rmse_se": 0.1, "test_ll": -1.0, "test_ll_se": 0.1}
    columns = {"grid, all rows": {"rmse": 1.1, "rmse_se": 0.0, "test_ll": -1.1, "test_ll_se": 0.0},
               "grid, fit rows": {"rmse": 1.2, "rmse_se": 0.0, "test_ll": -1.2, "test_ll_se": 0.0},
               "learned": {"rmse": 0.9, "rmse_se": 0.0, "test_ll": -0.9, "test_ll_se": 0.0},
               "learned, again on all rows": {"rmse": 0.8, "rmse_se": 0.0, "test_ll": -0.8, "test_ll_se": 0.0}}
    lines = bench.table([{"name": "toy", "published": published, "columns": columns, "grid_seconds": 100.0,
                          "learned_seconds": 10.0, "again_seconds": 5.0}])
    assert ("| toy | grid, all rows | 1.100 ± 0.000 | yes (≤ 1.100) | -1.100 ± 0.000 | yes (≥ -1.100) "
            "| 100.0 |") in lines
    assert ("| toy | grid, fit rows | 1.200 ± 0.000 | no (≤ 1.100) | -1.200 ± 0.000 | no (≥ -1.100) "
            "|  |") in lines
    assert ("| toy | learned | 0.900 ± 0.000 | yes (≤ 1.100) | -0.900 ± 0.000 | yes (≥ -1.100) "
            "| 10.0 (0.10) |") in lines
    assert ("| toy | learned, again on all rows | 0.800 ± 0.000 | yes (≤ 1.100) | -0.800 ± 0.000 | yes (≥ -1.100) "
            "| 15.0 (0.15) |") in lines


def test_the_result_file_has_what_the_docs_read(bench, tmp_path, monkeypatch):
    ds = dict(_dataset(), dropout_rates=[0.01], taus=[1.0], epochs=3, n_hidden=5)
    monkeypatch.setattr(bench, "load_dataset", lambda folder, n_splits: ds)
    monkeypatch.setattr(bench, "run_dataset", lambda ds_, cfg, run: {
        "name": ds_["name"], "published": ds_["published"], "grid_seconds": 0.0,
        "columns": {name: {"rmse": 1.0, "rmse_se": 0.0, "test_ll": -1.0, "test_ll_se": 0.0, "splits": []}
                    for name in bench.COLUMNS}})
    path = tmp_path / "limit.json"
    bench.main(["toy", "--splits", "2", "--json", str(path)])
    result = json.loads(path.read_text())
    assert result["meta"]["command"] == f"python benchmarks/uci_fit_rows_limit.py toy --splits 2 --json {path}"
    assert result["title"] == bench.TITLE
    assert result["summary"][2].startswith("| dataset | column |") and len(result["summary"]) == 4 + len(bench.COLUMNS)
