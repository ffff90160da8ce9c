"""benchmarks/scheduler_turns.py: the turns read from a spinning thread's
gaps, the bound they imply, and the wiring, with the spin, the calls' times
and the busy processes stubbed (the real run needs the machine to itself).

Not a timed test, and it judges no floor."""
import contextlib

import numpy as np
import pytest

import cydrop

import bench_scripts


@pytest.fixture
def bench():
    return bench_scripts.load("scheduler_turns")


def test_lost_turns_are_the_gaps_and_the_runs_between_them(bench):
    ms = 1_000_000
    # gaps (lost turns) of 4, 3 and 5 ms; the thread ran 2 and 6 ms between them
    off, on = bench.lost_turns([0, 4 * ms, 6 * ms, 9 * ms, 15 * ms, 20 * ms])
    np.testing.assert_allclose(off, [4, 3, 5])
    np.testing.assert_allclose(on, [2, 6])


def test_the_bound_needs_one_call_in_ten_to_meet_a_lost_turn(bench):
    # turns of 4 ms run, 4 ms lost: a 0.4 ms call meets one in 10% of calls
    assert bench.p90_bound(0.4, 1.0, 4.0, 4.0) is None
    # one call in ten starts with 0.5-0.9 ms of its turn left: each costs at least 0.5 + 4 ms
    assert bench.p90_bound(0.9, 1.8, 4.0, 4.0) == pytest.approx(4.5 / 1.8)


def test_the_spin_records_a_gap_when_the_clock_jumps(bench, monkeypatch):
    ticks = iter([0, 10, 20, 20 + 2 * bench.GAP_NS, 30 + 2 * bench.GAP_NS, 10**12])
    monkeypatch.setattr(bench.time, "perf_counter_ns", lambda: next(ticks))
    assert bench.spin(1.0) == [20, 20 + 2 * bench.GAP_NS, 30 + 2 * bench.GAP_NS, 10**12]


def test_the_report(bench, monkeypatch, capsys):
    ms = 1_000_000
    monkeypatch.setattr(bench, "n_cores", lambda: 2)
    monkeypatch.setattr(bench, "busy_processes", lambda n: contextlib.nullcontext())
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    monkeypatch.setattr(bench, "kernel_hz", lambda: 250)
    # turns of 4 ms lost after 4 ms run
    monkeypatch.setattr(bench, "spin", lambda s: [4 * ms, 8 * ms, 12 * ms, 16 * ms, 20 * ms, 24 * ms])
    monkeypatch.setattr(bench, "quiet_medians", lambda calls, cores: {"short": (0.1, 0.05), "pass": (1.8, 0.9),
                                                                      "long": (90.0, 50.0)})
    bench.main(["--repeat", "2", "--calls", "5"])
    out = capsys.readouterr().out
    assert "kernel tick: 4 ms (CONFIG_HZ=250)" in out
    assert out.count("3 turns lost, each 4.00 ms") == 2
    lines = {row.split()[0]: row for row in out.splitlines() if row.startswith(("short", "pass", "long"))}
    assert lines["short"].endswith("p90 at least -")
    assert lines["pass"].endswith("p90 at least 2.50x (out of reach)")
    assert lines["long"].endswith("p90 at least 0.60x")


def test_the_quiet_medians_time_each_load_groups_cydrop_call(bench, monkeypatch):
    threads_seen = []

    def time_calls(fn, calls):
        threads_seen.append(cydrop.get_num_threads())
        return [1e-3 if cydrop.get_num_threads() == 1 else 0.5e-3] * calls

    monkeypatch.setattr(bench, "_time_calls", time_calls)
    monkeypatch.setattr(bench, "import_torch", lambda: (None, "no torch here"))
    before = cydrop.get_num_threads()
    medians = bench.quiet_medians(3, 2)
    assert cydrop.get_num_threads() == before
    assert len(medians) == 5 and all(m == (1.0, 0.5) for m in medians.values())
    assert threads_seen == [1, 2] * 5
    assert any("MLP training epoch" in name for name in medians)
