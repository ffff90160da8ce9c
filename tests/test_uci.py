"""``cydrop uci``: a fast run on a shipped dataset, and bad --data-dir input."""
import json
import os
import shutil

import pytest

from cydrop.apps.cli import main
from cydrop.apps.uci import SHIPPED_DIR, load_dataset

FAST = ["--splits", "1", "--epochs", "3", "--mc-samples", "5", "--quiet"]


def test_shipped_datasets_load_with_published_figures():
    for name, rows in (("concrete", 1030), ("energy", 768), ("wine-quality-red", 1599), ("yacht", 308)):
        ds = load_dataset(os.path.join(SHIPPED_DIR, name), 20)
        assert ds["X"].shape[0] == rows and len(ds["splits"]) == 20 and ds["epochs"] == 4000
        assert ds["published"]["rmse"] > 0 and ds["published"]["test_ll"] < 0
    assert os.path.isfile(os.path.join(SHIPPED_DIR, "README.md"))   # the attribution


def test_uci_one_split_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "yacht" in printed and "0.67 ± 0.05" in printed   # the published MC RMSE beside cydrop's
    entry = json.loads(out.read_text())["datasets"][0]
    for key in ("name", "rmse", "rmse_se", "test_ll", "test_ll_se", "splits", "seconds"):
        assert key in entry
    assert entry["name"] == "yacht" and entry["splits"] == 1 and entry["rmse_se"] == 0.0


def test_uci_json_records_the_command_date_and_machine(tmp_path):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--json", str(out)]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["command"].startswith("cydrop uci yacht --splits 1 --epochs 3 --mc-samples 5 --seed 0 --repeats 1")
    assert meta["command"].endswith("--json uci.json")
    assert len(meta["date"]) == 10 and meta["date"][4] == meta["date"][7] == "-"
    assert "logical CPUs" in meta["machine"]


def test_uci_extended_column(tmp_path, capsys):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--extended", "--extended-epochs", "4", "--json", str(out)]) == 0
    entry = json.loads(out.read_text())["datasets"][0]
    assert set(entry["extended"]) == {"rmse_extended", "rmse_extended_se", "test_ll_extended", "test_ll_extended_se"}
    assert entry["per_split"][0]["extended_epochs"] in (3, 4)
    assert main(["uci", "yacht", *FAST, "--extended", "--extended-epochs", "0"]) == 2
    assert "--extended-epochs" in capsys.readouterr().err


def test_uci_repeats(tmp_path, capsys):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--repeats", "2", "--json", str(out)]) == 0
    assert "each repeat: MC RMSE" in capsys.readouterr().out
    entry = json.loads(out.read_text())["datasets"][0]
    assert entry["repeats"] == 2 and len(entry["per_split"]) == 2
    assert len(entry["per_repeat"]["rmse_repeats"]) == 2
    assert main(["uci", "yacht", *FAST, "--repeats", "0"]) == 2
    assert "--repeats" in capsys.readouterr().err


def test_uci_plot(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "uci.png"
    assert main(["uci", "yacht", *FAST, "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000


@pytest.fixture
def dataset(tmp_path):
    """A copy of the shipped yacht folder, to be damaged, inside a data dir."""
    folder = tmp_path / "data" / "yacht"
    shutil.copytree(os.path.join(SHIPPED_DIR, "yacht"), folder)
    return folder


def _run_bad(folder, capsys):
    code = main(["uci", "--data-dir", str(folder.parent), *FAST])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("damage, file, message", [
    (lambda f: os.remove(f / "data.txt"), "data.txt", "missing"),
    (lambda f: os.remove(f / "index_test_0.txt"), "index_test_0.txt", "missing"),
    (lambda f: (f / "index_train_0.txt").write_text("0\n1\n5000\n"), "index_train_0.txt", "out of range"),
    (lambda f: (f / "index_features.txt").write_text("0 1 99\n"), "index_features.txt", "out of range"),
    (lambda f: (f / "data.txt").write_text("1 2 3 4 5 6 x\n"), "data.txt", "not numeric"),
    (lambda f: (f / "index_test_0.txt").write_text(""), "index_test_0.txt", "names no rows"),
    (lambda f: (f / "tau_values.txt").write_text("\n"), "tau_values.txt", "empty grid"),
    (lambda f: (f / "dropout_rates.txt").write_text(""), "dropout_rates.txt", "empty grid"),
    (lambda f: (f / "index_train_0.txt").write_text("0.5\n"), "index_train_0.txt", "integers"),
])
def test_bad_data_dir_names_the_file(dataset, capsys, damage, file, message):
    damage(dataset)
    code, err = _run_bad(dataset, capsys)
    assert code == 2
    assert file in err and message in err


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    assert main(["uci", "nosuch", *FAST]) == 2
    assert "nosuch" in capsys.readouterr().err
    assert main(["uci", "yacht", "--splits", "21", "--quiet"]) == 2
    assert "n_splits.txt" in capsys.readouterr().err
    assert main(["uci", "yacht", *FAST, "--json", str(tmp_path / "no" / "x.json")]) == 2
    assert "--json" in capsys.readouterr().err
    assert main(["uci", "yacht", "--splits", "0"]) == 2
    assert "--splits" in capsys.readouterr().err
    assert main(["uci", "--data-dir", str(tmp_path / "absent"), *FAST]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_seed_past_64_bits_is_refused_before_any_work(capsys):
    assert main(["uci", "yacht", *FAST, "--seed", str(2**64)]) == 2
    captured = capsys.readouterr()
    assert "--seed must be <= 18446744073709551615" in captured.err and captured.out == ""


def test_uci_learn_column_in_the_table_and_the_json(tmp_path, capsys):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--learn", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RMSE (learn)" in printed and "learned keep_prob per layer" in printed
    data = json.loads(out.read_text())
    assert data["meta"]["command"].endswith("--learn --json uci.json")
    entry = data["datasets"][0]
    grid_keys = {"rmse", "rmse_se", "test_ll", "test_ll_se", "seconds", "rmse_standard", "rmse_standard_se"}
    assert grid_keys <= set(entry)
    assert set(entry["learn"]) == grid_keys | {"keep_prob", "per_split"}
    assert len(entry["learn"]["keep_prob"]) == 2 and len(entry["learn"]["per_split"]) == 1


def test_uci_learn_only_runs_no_grid(tmp_path, capsys):
    out = tmp_path / "uci.json"
    assert main(["uci", "yacht", *FAST, "--learn-only", "--json", str(out)]) == 0
    assert "RMSE (learn)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["meta"]["command"].endswith(" --learn-only --json uci.json")
    entry = data["datasets"][0]
    assert "rmse" not in entry and entry["learn"]["rmse"] > 0


@pytest.mark.parametrize("extra", [["--extended"], ["--plot", "uci.png"]])
def test_uci_learn_only_refuses_grid_options(tmp_path, capsys, extra):
    if extra[0] == "--plot":
        extra = ["--plot", str(tmp_path / "uci.png")]
    assert main(["uci", "yacht", *FAST, "--learn-only", *extra]) == 2
    assert f"{extra[0]} needs the grid, which --learn-only does not run" in capsys.readouterr().err


def test_a_folder_that_is_not_a_dataset_is_left_out_of_all_of_them(dataset, capsys):
    (dataset.parent / "notes").mkdir()
    (dataset.parent / "notes" / "todo.txt").write_text("not a dataset\n")
    assert main(["uci", "--data-dir", str(dataset.parent), *FAST]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cydrop uci: 1 dataset(s)") and "notes" not in out
    # a named one is listed among the datasets there are, and only those
    assert main(["uci", "--data-dir", str(dataset.parent), "nosuch", *FAST]) == 2
    assert capsys.readouterr().err.rstrip().endswith("no such dataset folder (available: yacht)")


def test_a_data_dir_that_is_one_dataset_takes_its_own_name(dataset, capsys):
    assert main(["uci", "--data-dir", str(dataset), "yacht", *FAST]) == 0
    assert capsys.readouterr().out.startswith("cydrop uci: 1 dataset(s)")
    assert main(["uci", "--data-dir", str(dataset), "energy", *FAST]) == 2
    err = capsys.readouterr().err
    assert "is the dataset folder of yacht" in err and "energy" in err


def test_a_dataset_named_twice_runs_once_and_one_table_is_printed(capsys):
    assert main(["uci", "yacht", "yacht", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("cydrop uci: 1 dataset(s)")
    assert len([line for line in lines if line.startswith("yacht ")]) == 1   # the table's row, once


def test_learn_only_names_no_grid(capsys):
    assert main(["uci", "yacht", *FAST, "--learn-only"]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("yacht:")]
    assert "grid" not in line and "3 epochs" in line
