"""The cydrop command: demo and kernels, options and errors."""
import os
import subprocess
import sys

import pytest

from cydrop.apps.cli import main


def test_kernels_check_passes(capsys):
    assert main(["kernels", "--batch", "32", "--width", "64", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "dropout equals x * D / keep_prob:           yes" in out
    assert "fused dense layer equals NumPy's, fwd+bwd:  yes" in out


def test_demo_runs_and_writes_the_plot(tmp_path, capsys):
    pytest.importorskip("mnist1d", reason="the demo needs mnist1d (pip install 'cydrop[demo]')")
    pytest.importorskip("matplotlib", reason="the plot needs matplotlib")
    png = tmp_path / "curves.png"
    assert main(["demo", "--epochs", "2", "--quiet", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "no dropout" in out and "dropout 0.5" in out and "test acc" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, message", [
    (["demo", "--keep-prob", "0"], "keep_prob"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["demo", "--out", "/nonexistent-folder/x.png"], "--out"),
    (["kernels", "--batch", "0"], "--batch"),
])
def test_bad_options_give_a_clear_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unknown_option_is_refused():
    res = subprocess.run([sys.executable, "-m", "cydrop", "demo", "--bogus"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ))
    assert res.returncode == 2 and "--bogus" in res.stderr
