"""keep_prob search on a real Dask cluster, and the ``cydrop search`` command."""
import concurrent.futures
import csv
import json
import logging
import os
import statistics
import subprocess
import sys

import joblib
import numpy as np
import pytest
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from cydrop.apps.cli import main
from cydrop.sklearn import DropoutMLPClassifier

HANG_GUARD_S = 180  # a stuck cluster fails the test instead of stalling the suite; not a speed test


def within(seconds, fn, *args):
    """fn(*args) on a helper thread; fail (rather than hang) if it has not returned after ``seconds``."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(fn, *args).result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        pytest.fail(f"no result after {seconds} s: the cluster or the search hangs")
    finally:
        pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def cluster():
    # processes=True: workers are separate interpreters that must import
    # cydrop and unpickle the estimators themselves, as on a real cluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)


def _search(n_jobs):
    X, y = make_classification(n_samples=240, n_features=12, n_informative=6, n_classes=3, random_state=0)
    estimator = DropoutMLPClassifier((16,), max_iter=15, learning_rate_init=0.01, dtype="float64",
                                     n_iter_no_change=np.inf, random_state=0)
    grid = {"keep_prob": [1.0, 0.7, 0.4, (0.8, 0.5)]}
    return GridSearchCV(estimator, grid, cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=n_jobs).fit(X, y)


def _search_on_dask(address):
    with Client(address, timeout=30) as client, joblib.parallel_backend("dask"):
        search = _search(-1)
        # nothing but the search's fits imports cydrop.sklearn on a worker
        ran_there = client.run(lambda: "cydrop.sklearn" in sys.modules)
    return search, ran_there


def test_grid_search_on_dask_matches_the_local_run(cluster):
    local = _search(2)
    remote, ran_there = within(HANG_GUARD_S, _search_on_dask, cluster.scheduler_address)
    assert len(ran_there) == 2 and all(ran_there.values()), ran_there
    assert remote.best_params_ == local.best_params_
    assert remote.cv_results_["params"] == local.cv_results_["params"]
    # float64, one BLAS thread per worker: the same scores, fold by fold
    for k in range(3):
        np.testing.assert_allclose(remote.cv_results_[f"split{k}_test_score"],
                                   local.cv_results_[f"split{k}_test_score"], rtol=0, atol=1e-12)


# ------------------------------------------------------------ cydrop search

TINY = ["--hidden", "16", "--max-epochs", "4", "--patience", "1", "--n-train", "300", "--cv", "2", "--seed", "1"]


def _read_outputs(tmp_path, name):
    with open(tmp_path / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / f"{name}.json") as f:
        data = json.load(f)
    return rows, data


def test_search_command_writes_a_consistent_ranked_table(tmp_path, capsys):
    argv = ["search", *TINY, "--keep-prob", "1.0", "0.5", "0.9,0.6", "--n-jobs", "2",
            "--csv", str(tmp_path / "r.csv"), "--json", str(tmp_path / "r.json")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows, data = _read_outputs(tmp_path, "r")
    assert sorted(row["keep_prob"] for row in rows) == ["0.5", "0.9,0.6", "1"]
    for row, jrow in zip(rows, data["results"]):
        splits = [float(row["split0_accuracy"]), float(row["split1_accuracy"])]
        assert all(0 <= s <= 1 for s in splits)
        assert float(row["mean_cv_accuracy"]) == pytest.approx(statistics.mean(splits), abs=1e-12)
        assert float(row["std_cv_accuracy"]) == pytest.approx(statistics.pstdev(splits), abs=1e-12)
        assert float(row["mean_fit_s"]) > 0
        assert jrow["keep_prob"] == row["keep_prob"] and jrow["mean_cv_accuracy"] == float(row["mean_cv_accuracy"])
        # the printed table holds the same line
        line = [row["rank"], row["keep_prob"], f"{float(row['mean_cv_accuracy']):.3f}", "±",
                f"{float(row['std_cv_accuracy']):.3f}", f"{float(row['mean_best_epoch']):.0f}",
                f"{float(row['mean_fit_s']):.1f}"]
        assert line in [printed.split() for printed in out.splitlines()], out
        assert 1 <= float(row["mean_best_epoch"]) <= 4  # --max-epochs is a cap
    means = [float(row["mean_cv_accuracy"]) for row in rows]
    assert means == sorted(means, reverse=True) and rows[0]["rank"] == "1"
    assert data["best"]["keep_prob"] == rows[0]["keep_prob"] and 0 <= data["best"]["test_accuracy"] <= 1
    assert data["best"]["refit_epochs"] == round(float(rows[0]["mean_best_epoch"]))
    assert data["settings"]["n_train"] == 300 and data["settings"]["scheduler"] is None


def test_search_fits_stop_on_the_held_out_loss_and_the_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    argv = ["search", "--hidden", "64", "--max-epochs", "400", "--patience", "2", "--n-train", "300", "--cv", "2",
            "--keep-prob", "1.0", "--n-jobs", "1", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.png")]
    assert main(argv) == 0
    with open(tmp_path / "r.json") as f:
        rows = json.load(f)["results"]
    # a fit's best epoch is where its held-out loss was lowest, before the cap
    assert 1 <= rows[0]["mean_best_epoch"] < 400
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_starts_no_more_processes_than_fits(monkeypatch):
    import sklearn.model_selection

    started = []

    class Recording(GridSearchCV):
        def fit(self, X, y=None, **params):
            started.append(self.n_jobs)
            self.n_jobs = 1   # the fits themselves in this process
            return super().fit(X, y, **params)

    monkeypatch.setattr(sklearn.model_selection, "GridSearchCV", Recording)
    assert main(["search", *TINY, "--keep-prob", "1.0", "0.5", "--n-jobs", "100000"]) == 0
    assert started == [4]   # 2 candidates x 2 folds


def test_a_small_n_train_warns_once(capfd):
    """A small --n-train clips the batch size once, here, not once per fold
    and fit. A fold of 150 samples trains on 90 after its hold-out: one warning."""
    assert main(["search", "--hidden", "8", "--max-epochs", "2", "--n-train", "150", "--cv", "3", "--n-jobs", "2",
                 "--keep-prob", "1.0", "0.5"]) == 0
    err = capfd.readouterr().err
    assert err.count("batch size 90 instead of 100") == 1, err
    assert "larger than the" not in err  # no per-fit clipping warning from the workers


def test_search_command_on_dask_gives_the_local_table(cluster, tmp_path, capsys):
    common = ["search", *TINY, "--keep-prob", "1.0", "0.6"]
    # local processes, one BLAS thread each like the Dask workers: the same arithmetic
    assert main([*common, "--n-jobs", "2", "--json", str(tmp_path / "local.json")]) == 0
    argv = [*common, "--scheduler", cluster.scheduler_address, "--timeout", "30",
            "--json", str(tmp_path / "dask.json")]
    assert within(HANG_GUARD_S, main, argv) == 0
    assert f"Dask scheduler {cluster.scheduler_address} (2 workers)" in capsys.readouterr().out
    with open(tmp_path / "local.json") as f:
        local = json.load(f)
    with open(tmp_path / "dask.json") as f:
        remote = json.load(f)
    assert remote["settings"]["scheduler"] == cluster.scheduler_address
    assert remote["best"]["keep_prob"] == local["best"]["keep_prob"]
    strip = ("mean_fit_s", "std_fit_s")
    assert ([{k: v for k, v in row.items() if k not in strip} for row in remote["results"]]
            == [{k: v for k, v in row.items() if k not in strip} for row in local["results"]])


def test_unreachable_scheduler_fails_cleanly():
    # port 1 on loopback: nothing listens there; the subprocess timeout only guards against a hang
    res = subprocess.run([sys.executable, "-m", "cydrop", "search", "--scheduler", "tcp://127.0.0.1:1",
                          "--timeout", "2"], capture_output=True, text=True, timeout=90, env=dict(os.environ))
    assert res.returncode == 2
    assert "cannot reach the Dask scheduler at 'tcp://127.0.0.1:1' within 2 s" in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_scheduler_without_workers_fails_cleanly(capsys):
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0", silence_logs=logging.ERROR) as empty:
        code = within(HANG_GUARD_S, main, ["search", "--scheduler", empty.scheduler_address, "--timeout", "1"])
    assert code == 2
    assert "has no workers (waited 1 s)" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--keep-prob", "1.5"], "--keep-prob '1.5'"),
    (["--keep-prob", "half"], "--keep-prob 'half'"),
    (["--keep-prob", "0.8,0.5"], "needs 3 entries"),          # default --hidden 256,256: 3 dense layers
    (["--keep-prob", "0.8,0,0.5"], "--keep-prob '0.8,0,0.5'"),
    (["--hidden", "64,0"], "--hidden"),
    (["--cv", "1"], "--cv"),
    (["--max-epochs", "0"], "--max-epochs"),
    (["--patience", "0"], "--patience"),
    (["--plot", "/nonexistent-folder/p.png"], "--plot"),
    (["--n-train", "5000"], "--n-train"),
    (["--n-train", "30"], "use --n-train >= 137"),  # 137 - ceil(137/3) = 91 rows, ceil(9.1) = 10 held out
    (["--n-jobs", "0"], "--n-jobs"),
    (["--scheduler", "tcp://127.0.0.1:1", "--timeout", "0"], "--timeout must be"),
    (["--csv", "/nonexistent-folder/r.csv"], "--csv"),
    (["--scheduler", "no-port-here"], "--scheduler 'no-port-here'"),
    (["--seed", "-1"], "--seed must be in [0, 2**32)"),
    (["--seed", str(2**32)], "--seed must be in [0, 2**32)"),   # scikit-learn's random_state takes 32 bits
])
def test_bad_options_fail_before_the_search(options, message, capsys):
    assert main(["search", *options]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""  # refused before the search started


def test_json_path_that_is_a_folder_is_refused(tmp_path, capsys):
    assert main(["search", "--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("n_train, cv", [(200, 30), (100, 200)])
def test_cv_above_the_smallest_class_is_refused_before_any_fit(n_train, cv, capsys, monkeypatch):
    """Stratified k-fold needs a member of every class in every fold: more
    folds than the smallest class has members is a usage error naming --cv."""
    from cydrop.apps.demo import load_mnist1d

    def no_fit(*args, **kwargs):
        raise AssertionError("the search started")

    monkeypatch.setattr(GridSearchCV, "fit", no_fit)
    smallest = int(np.unique(load_mnist1d()[1][:n_train], return_counts=True)[1].min())
    assert cv > smallest   # the case is the one it means to be
    assert main(["search", "--keep-prob", "1.0", "--hidden", "8", "--max-epochs", "1", "--n-train", str(n_train),
                 "--cv", str(cv), "--n-jobs", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"cydrop search: --cv {cv}: ") and f"--cv <= {smallest}" in line


@pytest.mark.parametrize("hidden, per_layer", [("8", (0.8, 0.5)), ("256,256", (0.8, 0.5, 0.5)),
                                                ("16,16,16", (0.8, 0.5, 0.5, 0.5))])
def test_default_keep_prob_candidates_follow_hidden(hidden, per_layer, monkeypatch):
    """Without --keep-prob the grid holds 1.0, 0.8, 0.5 and one per-layer
    candidate (inputs 0.8, every hidden layer 0.5) as long as --hidden says."""
    class Searched(Exception):
        pass

    def record(search, *args, **kwargs):
        raise Searched(search.param_grid)

    monkeypatch.setattr(GridSearchCV, "fit", record)
    with pytest.raises(Searched) as searched:
        main(["search", "--hidden", hidden, "--max-epochs", "1", "--n-train", "200", "--cv", "2", "--n-jobs", "1"])
    assert searched.value.args[0] == {"keep_prob": [1.0, 0.8, 0.5, per_layer]}
