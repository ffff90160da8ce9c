"""``cydrop bench``: the report runs, writes what it says, and reports problems clearly.

Timing never decides an outcome here: the tests run one round of the
smallest groups and check the report's structure, its arithmetic, and its
handling of bad options, unwritable paths, a missing PyTorch and a broken
case.
"""
import json
import math
import sys

import numpy as np
import pytest

from cydrop.apps import cli
from cydrop.apps.bench import baselines, cases

# one quick group: 1024x4096 float32 dropout backward (4 cases, about 0.1 s)
FAST = ["bench", "--only", "dropout-backward", "--rounds", "2"]


def test_report_json_and_plot(tmp_path, capsys):
    path_json, path_png = tmp_path / "bench.json", tmp_path / "bench.png"
    path_md = tmp_path / "bench.md"
    code = cli.main([*FAST, "--json", str(path_json), "--plot", str(path_png), "--markdown", str(path_md)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dropout backward float32 1024x4096" in out and "CPU:" in out and "BLAS:" in out
    assert "mask memory, bytes per element: cydrop 0.125" in out
    assert path_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    report = json.loads(path_json.read_text())
    machine = report["machine"]
    assert machine["cydrop_threads"] >= 1 and machine["cpu"] and machine["logical_cpus"] >= 1
    assert any(b["internal_api"] for b in machine["blas"]), "no BLAS library reported"
    (group,) = report["groups"]
    assert group["tag"] == "dropout-backward-float32-1024x4096" and group["metric"] == "GB/s"
    rows = {row["impl"]: row for row in group["rows"]}
    assert {"cydrop", "floor", "numpy_course"} <= set(rows) and "torch" in rows
    cydrop_s = rows["cydrop"]["median_s"]
    for name in ("cydrop", "floor", "numpy_course"):
        row = rows[name]
        assert row["error"] is None and row["rounds"] == 2 and row["median_s"] > 0
        assert math.isclose(row["ratio"], row["median_s"] / cydrop_s, rel_tol=1e-12)
        # throughput is the group's work over the median time
        ns_per_elem, gbps = (float(part.split()[0].replace(",", "")) for part in row["throughput"].split(", "))
        assert math.isclose(ns_per_elem, row["median_s"] / (1024 * 4096) * 1e9, rel_tol=1e-3)  # 4 digits
        assert math.isclose(gbps, group["work"] / row["median_s"] / 1e9, rel_tol=0.06)
    table = path_md.read_text().splitlines()
    (line,) = [t for t in table if t.startswith("| dropout backward")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    # two decimals: within half a unit of the last place
    assert abs(float(cells[2]) - cydrop_s / rows["floor"]["median_s"]) <= 0.0051
    assert abs(float(cells[3]) - rows["numpy_course"]["ratio"]) <= 0.0051
    # cydrop's packed mask: one bit per element
    assert report["mask_bytes_per_element"]["cydrop"] == 0.125
    assert report["mask_bytes_per_element"]["numpy_course"] == 8


@pytest.mark.parametrize("option, where, message", [
    ("--json", "no-such-folder/bench.json", "does not exist"),
    ("--markdown", "no-such-folder/bench.md", "does not exist"),
    ("--plot", ".", "is a folder"),
])
def test_unwritable_outputs_are_refused_before_the_report(option, where, message, tmp_path, capsys):
    path = tmp_path / where
    assert cli.main([*FAST, option, str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # the report did not run
    assert captured.err.startswith(f"cydrop bench: {option} ") and message in captured.err
    assert not (tmp_path / "no-such-folder").exists()


def test_plot_without_matplotlib_is_refused_before_the_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # "import matplotlib" now raises ImportError
    assert cli.main([*FAST, "--plot", str(tmp_path / "bench.png")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--plot needs matplotlib" in captured.err


def test_missing_torch_is_reported_and_the_rest_runs(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now raises ImportError
    code = cli.main(FAST)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "torch         skipped: PyTorch baseline skipped: torch is not importable" in out
    assert "numpy_course" in out and "PyTorch not measured" in out


def test_a_wrong_result_is_reported_not_timed(monkeypatch, capsys):
    # a "baseline" that forgets the mask: its check must fail, the others still run
    monkeypatch.setattr(baselines, "numpy_dropout_backward", lambda dy, D, keep_prob: dy / keep_prob)
    code = cli.main([*FAST, "--no-torch"])
    out = capsys.readouterr().out
    assert code == 1
    assert "numpy_course  FAILED: wrong result" in out
    assert "cydrop " in out and "floor " in out


@pytest.mark.parametrize("argv, message", [
    (["bench", "--fulll"], "did you mean --full"),
    (["bench", "--rounds", "x"], "invalid int value"),
])
def test_bad_options_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["bench", "--threads", "0"], "--threads must be in [1, 4096], got 0"),
    (["bench", "--threads", "5000"], "--threads must be in [1, 4096], got 5000"),
    (["bench", "--rounds", "0"], "--rounds must be >= 1"),
    (["bench", "--load", "--calls", "1"], "--calls must be >= 2, got 1"),
])
def test_bad_values_exit_2_with_a_message(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("full", [False, True])
def test_only_matching_nothing_is_refused_before_the_report(full, capsys):
    assert cli.main(["bench", "--only", "no-such-case", "--no-torch", *(["--full"] if full else [])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("cydrop bench: --only 'no-such-case' matches no group")
    # the message lists the groups there are
    assert all(tag in captured.err for tag, _ in cases.build_groups(full, "no torch"))


def test_threads_option_is_applied_and_restored(capsys):
    import cydrop

    before = cydrop.get_num_threads()
    assert cli.main([*FAST, "--no-torch", "--threads", "1"]) == 0
    assert "cydrop threads: 1" in capsys.readouterr().out
    assert cydrop.get_num_threads() == before


def test_groups_cover_the_issue_grid():
    quick = [tag for tag, _ in cases.build_groups(False, "no torch")]
    full = [tag for tag, _ in cases.build_groups(True, "no torch")]
    for kind in ("dropout-forward", "dropout-backward", "dense", "mlp-epoch", "mc-predict"):
        assert any(t.startswith(kind) for t in quick), kind
    for tag in ("dense-float32-64x784x512", "dense-float64-1024x4096x4096",
                "dropout-forward-float64-64x784", "dropout-backward-float32-1024x4096"):
        assert tag in full


@pytest.mark.parametrize("builder", [
    lambda: cases.dropout_forward((64, 784), np.float64, 0.8, "no torch"),
    lambda: cases.dense_layer(64, 784, 512, np.float32, 0.8, "no torch"),
    lambda: cases.mc_predict("no torch"),
])
def test_every_implementation_passes_its_own_check(builder):
    group = builder()
    assert group.skipped == {"torch": "no torch"}
    for impl in group.impls:
        impl.check(impl.fn())


def test_a_failed_write_is_reported_and_the_other_outputs_written(tmp_path, monkeypatch, capsys):
    from cydrop.apps.bench import report

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "write_json", disk_full)
    path_json, path_md = tmp_path / "bench.json", tmp_path / "bench.md"
    code = cli.main([*FAST, "--no-torch", "--json", str(path_json), "--markdown", str(path_md)])
    captured = capsys.readouterr()
    assert code == 1
    assert "--json" in captured.err and "No space left on device" in captured.err
    assert "| dropout backward" in path_md.read_text()  # the other output was still written
    assert not path_json.exists()


# ---------------------------------------------------------------- --load
def _children():
    """This process's live child processes (Linux), for checking that busy processes end."""
    import os

    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    try:
        with open(path) as f:
            return set(f.read().split())
    except OSError:
        pytest.skip("no /proc children list on this platform")


def test_load_report_json(tmp_path, capsys):
    from cydrop.apps.bench import load

    before = _children()
    path = tmp_path / "load.json"
    code = cli.main(["bench", "--load", "--only", "100x512", "--calls", "4", "--no-torch", "--json", str(path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dropout forward float32 100x512" in out and "loaded p90 / quiet-1 p50" in out
    assert _children() == before, "busy processes left running"
    report = json.loads(path.read_text())
    (group,) = report["load_groups"]
    cores = load.n_cores()
    assert group["cores"] == cores and report["options"]["calls"] == 4
    impls = {impl["name"]: impl for impl in group["impls"]}
    assert set(impls) == {"cydrop", "floor"}
    for impl in impls.values():
        phases = {(p["condition"], p["threads"]): p for p in impl["phases"]}
        assert set(phases) == {("quiet", 1), ("quiet", cores), ("loaded", cores), ("loaded", 1)}
        for p in phases.values():
            assert len(p["times"]) == 4 and p["p50"] == pytest.approx(float(np.percentile(p["times"], 50)))
        assert impl["floor_ratio"] == pytest.approx(phases[("loaded", cores)]["p90"] / phases[("quiet", 1)]["p50"])
        assert impl["alone_ratio"] == pytest.approx(phases[("loaded", cores)]["p90"] / phases[("loaded", 1)]["p90"])


def test_busy_processes_end_on_an_exception():
    from cydrop.apps.bench import load

    before = _children()
    with pytest.raises(KeyboardInterrupt):
        with load.busy_processes(2, seconds=60) as procs:
            assert len(procs) == 2 and all(p.poll() is None for p in procs)
            raise KeyboardInterrupt
    assert all(p.returncode is not None for p in procs)
    assert _children() == before


def test_busy_processes_end_by_themselves():
    # bounded in time even if the benchmark never ends them
    from cydrop.apps.bench import load

    with load.busy_processes(1, seconds=0.2) as (proc,):
        assert proc.wait(timeout=30) == 0


def test_load_groups_cover_the_issue_floors():
    torch = baselines.import_torch()[0] or "no torch"
    tags = [tag for tag, _ in cases.load_builders(torch)]
    for tag in ("load-dropout-forward-1024x4096", "load-dropout-forward-100x512", "load-dropout-backward-1024x4096",
                "load-dense-256x1024x1024", "load-mlp-epoch"):
        assert tag in tags
    if not isinstance(torch, str):
        assert "load-torch-dropout-fwdbwd-1024x4096" in tags


@pytest.mark.parametrize("options, message", [
    (["--load", "--markdown", "{tmp}/bench.md"], "--markdown needs the timed groups, not --load"),
    (["--load", "--plot", "{tmp}/bench.png"], "--plot needs the timed groups, not --load"),
    (["--load", "--threads", "1"], "--threads needs the timed groups, not --load"),
    (["--load", "--full"], "--full needs the timed groups, not --load"),
    (["--load", "--rounds", "3"], "--rounds needs the timed groups, not --load"),
    (["--calls", "5"], "--calls needs --load"),
])
def test_an_option_the_mode_ignores_is_refused_before_any_work(options, message, tmp_path, monkeypatch, capsys):
    from cydrop.apps.bench import command, load

    def work(*args, **kwargs):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(load, "time_load_group", work)
    monkeypatch.setattr(command, "time_group", work)
    assert cli.main(["bench", "--no-torch", *(o.format(tmp=tmp_path) for o in options)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"cydrop bench: {message}")
    assert list(tmp_path.iterdir()) == []
