"""The cydrop command: demo and kernels, options and errors."""
import argparse
import os
import re
import subprocess
import sys

import pytest

import cydrop
from cydrop.apps import demo
from cydrop.apps.cli import build_parser, main


def test_kernels_check_passes(capsys):
    assert main(["kernels", "--batch", "32", "--width", "64", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "dropout equals x * D / keep_prob:           yes" in out
    assert "fused dense layer equals NumPy's, fwd+bwd:  yes" in out


def test_demo_runs_and_writes_the_plot_into_a_folder(tmp_path, capsys):
    pytest.importorskip("mnist1d", reason="the demo needs mnist1d (pip install 'cydrop[demo]')")
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    assert main(["demo", "--epochs", "2", "--learn-epochs", "2", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "no dropout" in out and "dropout 0.5" in out and "test acc" in out
    row = next(line for line in out.splitlines() if line.startswith("learned keep_prob "))
    learned = [float(p) for p in row.split()[2].split(",")]  # the table's keep_prob column: what it learned
    assert len(learned) == 3 and all(0 < p <= 1 for p in learned)
    per_layer = re.search(r"learned keep_prob per layer \(from 0\.5\): input (\S+), "
                          r"hidden 1 \(512 units\) (\S+), hidden 2 \(512 units\) (\S+)\n", out)
    assert per_layer, out
    printed = [float(p) for p in per_layer.groups()]
    assert learned == pytest.approx(printed, abs=0.005)  # the same values, to the table's 2 decimals
    # the statement is the one rule_of_thumb makes of the printed values
    assert demo.rule_of_thumb(printed)[1].split(":")[0] in out
    png = tmp_path / "cydrop-demo.png"
    assert f"curves written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("keep_prob", ["1e-300", "1e-9", "0.999999"])
@pytest.mark.filterwarnings("error")   # nor does NumPy warn of the overflowing 1 / keep_prob
def test_kernels_check_holds_at_extreme_keep_prob(keep_prob, capsys):
    assert main(["kernels", "--batch", "8", "--width", "64", "--repeats", "1", "--keep-prob", keep_prob]) == 0
    assert len(re.findall(r":\s+yes\n", capsys.readouterr().out)) == 2


@pytest.fixture
def no_training(monkeypatch):
    """Make the demo's training fail the test: a refused call must not get there."""
    def train_networks(*args, **kwargs):
        raise AssertionError("the demo started training")

    monkeypatch.setattr(demo, "train_networks", train_networks)


@pytest.mark.parametrize("given, expected", [
    ("curves", "curves.png"),
    ("curves.pdf", "curves.pdf"),
    ("curves.SVG", "curves.SVG"),
    ("run.1/curves", "run.1/curves.png"),
    (".", os.path.join(".", "cydrop-demo.png")),
    ("run.1", os.path.join("run.1", "cydrop-demo.png")),
    ("new/", None),  # a folder that does not exist
])
def test_demo_out_names_the_file_it_writes(given, expected, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="--out is checked against matplotlib's formats")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.1").mkdir()
    if expected is None:
        with pytest.raises(ValueError, match="--out .*does not exist"):
            demo.output_path(given)
    else:
        assert demo.output_path(given) == expected


@pytest.mark.parametrize("name", ["curves.docx", "curves.", "curves.png.bak"])
def test_demo_refuses_an_unsupported_extension_before_training(name, tmp_path, capsys, no_training):
    pytest.importorskip("mnist1d", reason="the demo checks first that its dependencies are there")
    pytest.importorskip("matplotlib", reason="--out is checked against matplotlib's formats")
    assert main(["demo", "--out", str(tmp_path / name)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # not even the banner
    assert "--out" in captured.err and "matplotlib cannot write" in captured.err and ".png" in captured.err


@pytest.mark.parametrize("argv, message", [
    (["demo", "--keep-prob", "0"], "--keep-prob must be in (0, 1]"),
    (["demo", "--keep-prob", "nan"], "--keep-prob must be in (0, 1]"),
    (["demo", "--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["demo", "--seed", "-1"], "--seed must be in [0, 2**64), got -1"),
    (["demo", "--seed", str(2**64)], "--seed must be in [0, 2**64)"),
    (["kernels", "--batch", "0"], "--batch must be >= 1"),
    (["kernels", "--width", "-3"], "--width must be >= 1"),
    (["kernels", "--repeats", "0"], "--repeats must be >= 1"),
    (["kernels", "--keep-prob", "2"], "--keep-prob must be in (0, 1]"),
    (["kernels", "--seed", "-1"], "--seed must be in [0, 2**64)"),
])
def test_bad_options_are_refused_before_any_work(argv, message, capsys, no_training):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no banner, no data, no training
    assert captured.err.startswith(f"cydrop {argv[0]}: ") and message in captured.err


def test_demo_out_in_a_missing_folder_is_refused_before_any_work(capsys, no_training):
    pytest.importorskip("mnist1d", reason="the demo checks first that its dependencies are there")
    pytest.importorskip("matplotlib", reason="--out is checked against matplotlib's formats")
    assert main(["demo", "--out", "/nonexistent-folder/x.png"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--out '/nonexistent-folder/x.png': folder '/nonexistent-folder' does not exist" in captured.err


def _without(monkeypatch, package):
    """Make ``import package`` fail as if it were not installed; forget mnist1d,
    so that the demo imports it again (and with it matplotlib)."""
    for name in list(sys.modules):
        if name == "mnist1d" or name.startswith("mnist1d."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)


@pytest.mark.parametrize("no_plot", [False, True])
def test_demo_without_matplotlib_names_matplotlib(no_plot, monkeypatch, capsys, no_training):
    pytest.importorskip("mnist1d", reason="this checks the message when mnist1d is there")
    _without(monkeypatch, "matplotlib")
    assert main(["demo", "--epochs", "1", *(["--no-plot"] if no_plot else [])]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "the demo needs matplotlib" in captured.err and "mnist1d package" not in captured.err


def test_demo_without_mnist1d_names_mnist1d(monkeypatch, capsys, no_training):
    _without(monkeypatch, "mnist1d")
    assert main(["demo", "--no-plot"]) == 2
    assert "the demo needs the mnist1d package" in capsys.readouterr().err


def _parsers():
    parser = build_parser()
    return [("cydrop", parser)] + [(f"cydrop {name}", p) for name, p in _subparsers(parser)]


def _subparsers(parser):
    return [(name, p) for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            for name, p in a.choices.items()]


def test_every_command_is_covered():
    # the help tests below run over every command _parsers() finds
    assert {name for name, _ in _parsers()} >= {"cydrop", "cydrop demo", "cydrop kernels", "cydrop bench",
                                                "cydrop search"}


@pytest.mark.parametrize("prog, parser", _parsers(), ids=[name for name, _ in _parsers()])
def test_every_option_has_help_and_shows_its_default(prog, parser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{prog} {action.option_strings} has no help text"
        shown = " ".join(formatter._expand_help(action).split())
        if action.default is None or action.nargs == 0:
            continue  # a flag, or an option whose help says what happens without it
        if isinstance(action.default, list):
            forms = {" ".join(action.default)}
        elif isinstance(action.default, float):
            forms = {str(action.default), f"{action.default:g}"}
        else:
            forms = {str(action.default)}
        assert "default" in shown and any(f in shown for f in forms), f"{prog} {action.option_strings}: {shown!r}"


MARKUP = re.compile(r"``|:(func|class|meth|mod|attr|obj|data):`|%%")


@pytest.mark.parametrize("prog, parser", _parsers(), ids=[name for name, _ in _parsers()])
def test_help_has_no_docstring_markup_or_unformatted_escapes(prog, parser):
    text = parser.format_help()
    assert prog in text
    assert not MARKUP.search(text), text


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"cydrop {cydrop.__version__}\n"


def test_unknown_option_is_refused():
    res = subprocess.run([sys.executable, "-m", "cydrop", "demo", "--bogus"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert res.returncode == 2 and "--bogus" in res.stderr


def test_output_path_check(tmp_path):
    from cydrop.apps._options import check_output_path

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for path, message in [(tmp_path, "--x '{}' is a folder, expected a file path"),
                          (tmp_path / "missing" / "out.json", "folder '{}' does not exist"),
                          (a_file / "out.json", "folder '{}' is a file, not a folder")]:
        shown = path if path == tmp_path else path.parent
        with pytest.raises(ValueError) as exc:
            check_output_path(str(path), "--x")
        assert str(exc.value).startswith(f"--x '{path}'") and message.format(shown) in str(exc.value)
    check_output_path(str(tmp_path / "new.json"), "--x")
    check_output_path(str(a_file), "--x")  # an existing file is overwritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing created


def test_demo_check_prints_the_report_and_plots_j(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mnist1d", reason="the demo needs mnist1d")
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    from cydrop.apps import demo as mnist_demo

    monkeypatch.setattr(mnist_demo, "CHECK_ROWS", 100)  # the recipe's passes on a smaller sample
    png = tmp_path / "j.png"
    assert main(["demo", "--check", "--check-iterations", "5", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "5 iterations of full-batch gradient descent" in out and "fell on every iteration" in out
    assert "gradient check: relative difference" in out and "(right)" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["demo", "--check", "--check-iterations", "0"]) == 2


def test_output_path_is_proven_writable_by_creating_it(tmp_path):
    """os.access says yes to root for a path no one can create (sysfs): the
    check creates the file, and removes it again if it was not there."""
    from cydrop.apps._options import check_output_path

    if os.path.isdir("/sys/kernel"):
        with pytest.raises(ValueError, match="--x '/sys/kernel/x.json' cannot be written"):
            check_output_path("/sys/kernel/x.json", "--x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK) or os.geteuid() != 0:   # root may write anyway
            with pytest.raises(ValueError, match="cannot be written"):
                check_output_path(str(locked / "x.json"), "--x")
    finally:
        locked.chmod(0o700)
    existing = tmp_path / "kept.json"
    existing.write_text("old")
    assert check_output_path(str(existing), "--x") == str(existing)
    assert existing.read_text() == "old"   # not truncated by the check


@pytest.mark.parametrize("name, expected", [("fig", "fig.png"), ("fig.svg", "fig.svg")])
def test_plot_path_gets_the_extension_matplotlib_will_write(name, expected, tmp_path):
    pytest.importorskip("matplotlib")
    from cydrop.apps._options import check_output_path

    assert check_output_path(str(tmp_path / name), "--plot", plot=True) == str(tmp_path / expected)
    with pytest.raises(ValueError, match="matplotlib cannot write '.xyz' files"):
        check_output_path(str(tmp_path / "fig.xyz"), "--plot", plot=True)


def _no_work(monkeypatch):
    """Fail the test if a command starts its work: every refusal here comes first."""
    from cydrop.apps import uci_protocol
    from cydrop.apps.bench import timer

    def work(*args, **kwargs):
        raise AssertionError("the command started its work")

    monkeypatch.setattr(uci_protocol, "run_protocol", work)
    monkeypatch.setattr(timer, "time_group", work)
    monkeypatch.setattr("cydrop.apps.bench.command.time_group", work)


@pytest.mark.parametrize("command", [["uci", "yacht", "--splits", "1"], ["bench", "--only", "dropout-forward"],
                                     ["search", "--n-train", "200"]])
@pytest.mark.parametrize("option, target, message", [
    ("--json", "{tmp}", "is a folder"),
    ("--plot", "{tmp}", "is a folder"),
    ("--plot", "{tmp}/fig.xyz", "matplotlib cannot write '.xyz' files"),
    ("--json", "{tmp}/missing/x.json", "does not exist"),
])
def test_every_command_checks_its_output_paths_before_any_work(command, option, target, message, tmp_path,
                                                               monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    if command[0] == "search":
        pytest.importorskip("sklearn")
        pytest.importorskip("mnist1d")
    _no_work(monkeypatch)
    assert main([*command, option, target.format(tmp=tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and option in captured.err and message in captured.err
    assert list(tmp_path.iterdir()) == []   # nothing written


def test_an_error_of_the_work_itself_is_not_a_usage_error(monkeypatch):
    """cli reports the library's usage errors with exit code 2; a ValueError
    raised by the work keeps its traceback."""
    from cydrop.apps import uci_protocol

    def broken(*args, **kwargs):
        raise ValueError("a bug deep inside")

    monkeypatch.setattr(uci_protocol, "run_protocol", broken)
    with pytest.raises(ValueError, match="a bug deep inside"):
        main(["uci", "yacht", "--splits", "1", "--quiet"])


@pytest.mark.parametrize("argv, message", [
    (["kernels", "--epoch"], "--epoch"),        # --epochs is another command's option
    (["kernels", "--json-out"], "--json-out"),
    (["demo", "--repeat"], "--repeat"),
    (["demo", "--bogus"], "--bogus"),
    (["demo", "--epohcs", "3"], "--epohcs (did you mean --epochs?) 3"),
    (["kernels", "--widht=8"], "--widht=8 (did you mean --width?)"),
    (["bench", "--fulll"], "--fulll (did you mean --full?)"),
    (["search", "--hiden", "8"], "--hiden (did you mean --hidden?) 8"),
])
def test_an_unknown_option_is_refused_by_its_command_with_its_own_hint(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"usage: cydrop {argv[0]} ")   # the command's usage, not the top level's
    assert lines[-1] == f"cydrop {argv[0]}: error: unrecognized arguments: {message}"


@pytest.mark.parametrize("argv, message", [
    (["uci", "yacht", "--splits", "1", "--epochs", "2", "--mc-samples", "5", "--extended-epochs", "3"],
     "--extended-epochs needs --extended"),
    (["uci", "yacht", "--splits", "1", "--learn-only", "--extended"], "--extended needs the grid"),
    (["uci", "yacht", "--splits", "1", "--learn-only", "--plot", "{tmp}/u.png"], "--plot needs the grid"),
    (["search", "--n-train", "200", "--timeout", "5"], "--timeout needs --scheduler"),
    (["demo", "--check-iterations", "5"], "--check-iterations needs --check"),
    (["demo", "--no-plot", "--out", "{tmp}/x.png"], "--out needs the plot, not --no-plot"),
    (["demo", "--check", "--epochs", "3"], "--epochs needs the training, not --check"),
    (["demo", "--check", "--learn-epochs", "0"], "--learn-epochs needs the training, not --check"),
    (["demo", "--check", "--quiet"], "--quiet needs the training, not --check"),
])
def test_an_option_without_effect_in_the_chosen_mode_is_refused(argv, message, tmp_path, monkeypatch, capsys,
                                                                no_training):
    _no_work(monkeypatch)
    monkeypatch.setattr(demo, "check_network", lambda *args, **kwargs: pytest.fail("the check started"))
    sklearn = pytest.importorskip("sklearn.model_selection") if argv[0] == "search" else None
    if sklearn is not None:
        monkeypatch.setattr(sklearn.GridSearchCV, "fit", lambda *args, **kwargs: pytest.fail("the search started"))
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"cydrop {argv[0]}: {message}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("batch, width", [("100000000000", "100000"), (str(10**19), "1")])
def test_sizes_that_cannot_be_allocated_are_refused_in_one_line(batch, width, capsys):
    assert main(["kernels", "--batch", batch, "--width", width, "--repeats", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""   # refused before the banner
    (line,) = captured.err.splitlines()
    assert line.startswith(f"cydrop kernels: --batch {batch} and --width {width}: ") and "memory" in line


def test_a_closed_pipe_ends_the_command_quietly():
    """`cydrop kernels | head` once the reader has gone: no traceback, exit 1
    as the Python docs recommend for EPIPE (signal module, note on SIGPIPE)."""
    proc = subprocess.Popen([sys.executable, "-m", "cydrop", "kernels", "--batch", "1", "--width", "1",
                             "--repeats", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    proc.stdout.close()   # the reader goes before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1
    assert err == b""


def test_an_allocation_that_fails_anyway_is_a_one_line_error(monkeypatch, capsys):
    """Where the OS does not tell its memory, the size check lets 35 PiB
    through; NumPy's MemoryError becomes the one-line error."""
    from cydrop.apps import cli

    monkeypatch.setattr(cli, "_physical_memory", lambda: None)
    assert main(["kernels", "--batch", "100000000000", "--width", "100000", "--repeats", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("cydrop kernels: --batch 100000000000 and --width 100000: out of memory (")


def test_a_broken_pipe_that_is_not_stdout_keeps_its_traceback(monkeypatch, capfd):
    """A BrokenPipeError from a worker's pipe or a socket is an error of the
    work, not the reader of our output going away: it is not hidden."""
    from cydrop.apps import cli

    def lost_worker(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli, "kernels", lost_worker)
    with pytest.raises(BrokenPipeError):
        main(["kernels"])
