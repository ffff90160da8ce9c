"""The docstring examples of the package run in the README's test command
(pyproject.toml: --doctest-modules, testpaths; the root conftest.py)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(os.path.join(ROOT, "pyproject.toml")) and os.path.isfile(os.path.join(ROOT, "conftest.py"))),
    reason="needs the source tree (pyproject.toml and conftest.py beside tests/)")


def run_pytest(args, block=None):
    """pytest in a fresh interpreter from the source tree's root, optionally
    with ``import block`` made to fail as if it were not installed."""
    code = textwrap.dedent(f"""
        import sys
        if {block!r} is not None:
            sys.modules[{block!r}] = None
        import pytest
        sys.exit(pytest.main({args!r}))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_pytest_from_the_root_collects_doctests_tests_and_benchmarks():
    code, out = run_pytest(["--collect-only", "-q", "-p", "no:cacheprovider"])
    # 0: also no collection error, such as tests/conftest.py and
    # benchmarks/conftest.py colliding as doctest modules
    assert code == 0, out
    items = [line for line in out.splitlines() if "::" in line]
    assert "cydrop/ops.py::cydrop.ops.dropout" in items
    assert "cydrop/_generator.py::cydrop._generator.Generator" in items
    assert any(item.startswith("tests/test_dropout.py::") for item in items)
    assert any(item.startswith("benchmarks/bench_dropout.py::") for item in items)
    # the gallery runs in the docs build, never as tests or doctests
    assert not any(item.startswith(("examples/", "docs/")) for item in items)


def test_a_module_whose_optional_dependency_is_missing_is_skipped():
    code, out = run_pytest(["-q", "-rs", "-p", "no:cacheprovider", "cydrop/sklearn.py", "cydrop/ops.py"],
                           block="sklearn")
    assert code == 0, out
    # ops.py's examples pass (however many it has), sklearn.py is skipped
    assert re.search(r"\b\d+ passed, 1 skipped\b", out) and "failed" not in out
    assert "cydrop/sklearn.py needs sklearn, which is not installed" in out
