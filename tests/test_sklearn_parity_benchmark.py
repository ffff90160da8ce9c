"""benchmarks/sklearn_parity.py, the comparison with scikit-learn's MLP: its
code path on the smallest settings (the full run is minutes: see its docstring).

Not a timed test, and it judges no floor: one seed at two epochs says nothing
about training; it checks that the report is built, printed and written as the
script says, and that each difference is the two columns' difference."""
import json

import pytest

import bench_scripts

pytest.importorskip("sklearn")
pytest.importorskip("dask_ml")


@pytest.fixture(scope="module")
def parity():
    return bench_scripts.load("sklearn_parity")


def test_every_dataset_loads_split_and_standardised(parity):
    tasks = set()
    for name, ds in parity.DATASETS.items():
        X_train, X_test, y_train, y_test = parity.split(name)
        assert len(X_train) > len(X_test) > 0 and X_train.shape[1] == X_test.shape[1]
        assert abs(X_train.mean(axis=0)).max() < 1e-9
        if ds.task == "regression":
            assert abs(y_train.mean()) < 1e-9 and abs(y_train.std() - 1) < 1e-9
        tasks.add(ds.task)
    assert tasks == {"binary", "multiclass", "regression"} and len(parity.DATASETS) >= 5


def test_report_printed_and_written(parity, tmp_path, capsys):
    path = tmp_path / "parity.json"
    argv = ["--datasets", "iris", "diabetes", "--json", str(path)]
    # the smallest settings: one seed, two epochs
    real_run = parity.run
    parity.run = lambda names, max_iters, seeds, incremental: real_run(names, (2,), 1, incremental)
    try:
        assert parity.main(argv) == 0
    finally:
        parity.run = real_run
    out = capsys.readouterr().out
    assert "iris" in out and "diabetes" in out and "Incremental" in out and "all within the floor" in out
    report = json.loads(path.read_text())
    assert [(r["dataset"], r["max_iter"], r["seeds"]) for r in report["rows"]] == [("iris", 2, 1), ("diabetes", 2, 1)]
    for row in report["rows"]:
        for part in ("train", "test"):
            sk, cy = (row["scores"][lib][part][0] for lib in ("sklearn", "cydrop"))
            assert row[f"sklearn_{part}"] == sk and row[f"diff_{part}"] == cy - sk
        assert row["within_floor"] == (abs(row["diff_train"]) <= 0.02 and abs(row["diff_test"]) <= 0.02)
    inc = report["incremental"]
    assert set(inc["scores"]) == {"sklearn", "cydrop", "cydrop_keep_prob_0.8"}
    assert all(0 <= inc[f"{lib}_seed0"] <= 1 for lib in inc["scores"])
    assert report["within_floor"] == (all(r["within_floor"] for r in report["rows"]) and inc["within_floor"])


def test_unwritable_json_path_fails_before_the_work(parity, tmp_path):
    called = []
    real_run = parity.run
    parity.run = lambda *args, **kwargs: called.append(1)
    try:
        with pytest.raises(OSError):
            parity.main(["--json", str(tmp_path / "missing-dir" / "parity.json")])
    finally:
        parity.run = real_run
    assert called == []
