"""``cydrop search`` with its defaults on MNIST-1D: does the keep_prob search find the right answer?

The README's claims for it, checked on one full run of the command as a user
runs it (4000 samples, 40-256-256-10, keep_prob 1.0, 0.8, 0.5 and
0.8,0.5,0.5, 3-fold CV, every fit until converged):

- a dropout candidate ranks first;
- its CV accuracy beats keep_prob 1.0 by at least 5 points;
- the refitted best scores at least 0.72 on the 1000 test samples.

The run takes a minute or more on 2 cores, so it is not part of the README's
test command: run it with ``CYDROP_SLOW=1``::

    CYDROP_SLOW=1 python -m pytest benchmarks/bench_search.py --benchmark-only -s

The search's wall time is recorded (pytest-benchmark, one round) beside the
settings, never asserted.
"""
import json
import os

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("mnist1d")

from cydrop.apps.cli import main  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("CYDROP_SLOW") != "1",
                                reason="the full default search takes a minute or more: set CYDROP_SLOW=1")


def test_default_search_ranks_dropout_first(benchmark, tmp_path):
    out = tmp_path / "search.json"
    benchmark.group = "search-mnist1d"
    code = benchmark.pedantic(main, args=(["search", "--json", str(out)],), rounds=1, iterations=1)
    assert code == 0
    data = json.loads(out.read_text())
    results = {row["keep_prob"]: row for row in data["results"]}
    first = data["results"][0]
    benchmark.extra_info.update(search_s=data["search_s"], best=data["best"],
                                cv_accuracy={k: round(r["mean_cv_accuracy"], 4) for k, r in results.items()})
    assert first["keep_prob"] != "1", data["results"]
    assert first["mean_cv_accuracy"] >= results["1"]["mean_cv_accuracy"] + 0.05, data["results"]
    assert data["best"]["keep_prob"] == first["keep_prob"]
    assert data["best"]["test_accuracy"] >= 0.72, data["best"]
