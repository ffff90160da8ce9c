"""``import cydrop`` never imports torch (it is an optional extra)."""
import subprocess
import sys


def test_import_cydrop_does_not_import_torch():
    code = "import sys, cydrop, cydrop.ops, cydrop.dense, cydrop.mlp; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
