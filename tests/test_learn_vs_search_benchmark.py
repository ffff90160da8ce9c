"""benchmarks/learn_vs_search.py, the learned keep_prob against ``cydrop search``:
its code path with the search stubbed and the learned fit at 2 epochs (the
real run is minutes: see its docstring).

Not a timed test, and it judges no floor: it checks that the runs are
interleaved, and that the summary is the runs' medians, ranges and ratios,
written with the meta every result file needs."""
import json

import pytest

import bench_scripts

pytest.importorskip("mnist1d", reason="the benchmark trains on MNIST-1D")


@pytest.fixture
def bench():
    return bench_scripts.load("learn_vs_search")


def test_runs_interleave_and_the_summary_is_their_medians_and_ratio(bench, tmp_path, capsys, monkeypatch):
    order = []
    search_seconds = iter([30.0, 10.0, 20.0])
    learn_seconds = iter([3.0, 4.0, 8.0])
    real_learn = bench.learn_once

    def search_once():
        order.append("search")
        return next(search_seconds), 0.7, "0.5"

    def learn_once(data, seed, epochs):
        order.append("learn")
        _, accuracy, keep_prob = real_learn(data, seed, epochs)  # the real fit, 2 epochs
        return next(learn_seconds), accuracy, keep_prob

    monkeypatch.setattr(bench, "search_once", search_once)
    monkeypatch.setattr(bench, "learn_once", learn_once)
    path = tmp_path / "result.json"
    assert bench.main(["--runs", "3", "--epochs", "2", "--json", str(path)]) == 0
    assert order == ["search", "learn"] * 3
    result = json.loads(path.read_text())
    assert result["meta"]["command"] == f"python benchmarks/learn_vs_search.py --runs 3 --epochs 2 --json {path}"
    summary = result["summary"]
    assert summary["search_s"] == {"median": 20.0, "min": 10.0, "max": 30.0, "n": 3}
    assert summary["learn_s"] == {"median": 4.0, "min": 3.0, "max": 8.0, "n": 3}
    assert summary["ratio_of_medians"] == pytest.approx(0.2)
    assert summary["ratio_per_pair"] == {"median": pytest.approx(0.4), "min": pytest.approx(0.1),
                                         "max": pytest.approx(0.4), "n": 3}
    learned = [run for run in result["runs"] if run["kind"] == "learn"]
    assert [run["seed"] for run in learned] == [0, 1, 2]
    accuracies = [run["test_accuracy"] for run in learned]
    assert summary["learn_fits_at_floor"] == sum(a >= 0.72 for a in accuracies)
    assert all(len(run["keep_prob"]) == 3 for run in learned)
    assert "ratio of medians 0.200" in capsys.readouterr().out
