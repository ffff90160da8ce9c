"""benchmarks/load_limit.py: its arithmetic and order, with the calls' times
and the busy processes stubbed (the real run needs the machine to itself).

Not a timed test, and it judges no floor."""
import contextlib

import pytest

import cydrop

import bench_scripts


@pytest.fixture
def bench():
    return bench_scripts.load("load_limit")


def test_each_block_is_its_p90_over_the_quiet_median(bench, monkeypatch, capsys):
    monkeypatch.setattr(bench, "n_cores", lambda: 2)
    monkeypatch.setattr(bench, "busy_processes", lambda n: contextlib.nullcontext())
    threads_seen = []
    # quiet: every call 1 ms; loaded: every block of round r has calls of r + 1 ms
    blocks = iter([[1e-3] * 10] * 5 + [[(b // 5 + 1) * 1e-3] * 10 for b in range(5 * 3)])

    def time_calls(fn, calls):
        threads_seen.append(cydrop.get_num_threads())
        return next(blocks)

    monkeypatch.setattr(bench, "_time_calls", time_calls)
    before = cydrop.get_num_threads()
    bench.main(["--rounds", "3", "--calls", "10"])
    out = capsys.readouterr().out
    assert cydrop.get_num_threads() == before
    # quiet phase on one thread, then rounds alternating the order of the cases
    assert threads_seen[:5] == [1] * 5
    assert threads_seen[5:10] == [1, 1, 2, 4, 2] and threads_seen[10:15] == [2, 4, 2, 1, 1]
    line = next(row for row in out.splitlines() if row.startswith("x.copy()"))
    assert "median 2.00 [1.00-3.00]" in line and "within the floor 1/3" in line
    assert "all: 1.00 2.00 3.00" in line
