"""Property-based fuzzing of every public function, each target in a child process.

The properties live in ``tests/_fuzz_targets.py`` (see its docstring): hostile
shapes, dtypes, strides, aliasing, keep_prob edge values and NaN/inf data;
every case must either be refused with ValueError/TypeError (nothing written,
nothing drawn) or equal a NumPy reference. A child that dies by a signal
(a crash in compiled code) or fails a property fails its test here, with
the child's output.

CI runs each target's default number of examples (the whole file in well
under a minute on 2 cores); ``CYDROP_FUZZ_EXAMPLES=20000 python -m pytest
tests/test_fuzz.py`` is a long run.
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from _fuzz_targets import TARGETS

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_fuzz_targets.py")
LONG_RUN = "CYDROP_FUZZ_EXAMPLES" in os.environ


def run_target(target):
    """Run one fuzz target in a fresh interpreter; return its counts."""
    proc = subprocess.run([sys.executable, "-X", "faulthandler", SCRIPT, target], capture_output=True,
                          text=True, timeout=None if LONG_RUN else 600)
    if proc.returncode < 0:
        how = f"died by signal {signal.Signals(-proc.returncode).name}"
    else:
        how = f"exited with status {proc.returncode}"
    assert proc.returncode == 0, (f"fuzz target {target!r} {how}\n--- stdout\n{proc.stdout[-3000:]}"
                                  f"\n--- stderr\n{proc.stderr[-6000:]}")
    return json.loads(proc.stdout.splitlines()[0])


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "estimators"])
def test_fuzz(target):
    counts = run_target(target)
    print(counts)
    # the properties ran on both kinds of outcome, and compared results
    assert counts["refused"] > 0 and counts["returned"] > 0 and counts["compared"] > 0, counts


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn not installed")
def test_fuzz_estimators():
    counts = run_target("estimators")
    print(counts)
    assert counts["refused"] > 0 and counts["compared"] > 0, counts
