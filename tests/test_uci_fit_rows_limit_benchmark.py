"""benchmarks/uci_fit_rows_limit.py: the grid's choice trained on the fit rows
only, beside the protocol's retrain on all training rows and the learned
column. The trainings are stubbed (the real run is minutes); this checks the
wiring the figures depend on: which candidate each split retrains, on which
rows, with which seed, and how the table judges the bounds.

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
        return {"split": args[5], "rmse": 0.5, "test_ll": -0.5, "keep_prob": [0.9, 0.8]}

    monkeypatch.setattr(uci_protocol, "candidate_task", candidate_task)
    monkeypatch.setattr(uci_protocol, "train_and_sample", train_and_sample)
    monkeypatch.setattr(uci_protocol, "learn_task", learn_task)
    out = bench.run_dataset(ds, cfg, map)

    seed = uci_protocol._network_seed
    expected = []
    for k in (0, 1):
        rate, tau, epochs = cfg["grid"][best[k]]
        expected += [(20, rate, tau, seed(7, 0, k, uci_protocol._RETRAIN)),   # all 20 training rows
                     (16, rate, tau, seed(7, 0, k, best[k]))]                  # the fit rows, the grid phase's network
    assert trained == expected
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


def test_the_table_judges_each_bound(bench):
    published = {"rmse": 1.0, "rmse_se": 0.1, "test_ll": -1.0, "test_ll_se": 0.1}
    columns = {"grid, all rows": {"rmse": 1.1, "rmse_se": 0.0, "test_ll": -1.1, "test_ll_se": 0.0},
               "grid, fit rows": {"rmse": 1.2, "rmse_se": 0.0, "test_ll": -1.2, "test_ll_se": 0.0}}
    lines = bench.table([{"name": "toy", "published": published, "columns": columns}])
    assert "| toy | grid, all rows | 1.100 ± 0.000 | yes (≤ 1.100) | -1.100 ± 0.000 | yes (≥ -1.100) |" in lines
    assert "| toy | grid, fit rows | 1.200 ± 0.000 | no (≤ 1.100) | -1.200 ± 0.000 | no (≥ -1.100) |" in lines


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
    assert result["summary"][2].startswith("| dataset | column |") and len(result["summary"]) == 4 + 3
