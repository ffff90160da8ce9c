"""benchmarks/learned_epoch_cost.py runs and prints one line per network, the
fixed network's ratio to itself 1 (a smoke run of two short rounds: the real
run is a benchmark, never a timed test)."""
import bench_scripts


def test_prints_each_network_and_its_ratio_to_the_fixed_one(capsys):
    bench = bench_scripts.load("learned_epoch_cost")
    bench.main(["--rounds", "2", "--epochs", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = {name: next(line for line in lines if line.startswith(name)) for name in bench.NETWORKS}
    assert rows["fixed"].endswith("1.000 [1.000-1.000]")
    assert len(lines) == 1 + len(bench.NETWORKS)
