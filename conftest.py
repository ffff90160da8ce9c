"""Doctests of the package: pyproject.toml turns on ``--doctest-modules``
and this file keeps it to ``cydrop/`` (tests/ and benchmarks/ hold no
examples, and their two conftest.py would collide as doctest modules). A
module whose optional dependency is not installed is reported as skipped, as
tests that need one skip with ``pytest.importorskip``."""
import importlib.util
import os

import pytest
from _pytest.doctest import DoctestModule

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE = os.path.join(_HERE, "cydrop")

# module or package (relative to this folder) -> the optional package it imports when loaded
OPTIONAL = {
    os.path.join("cydrop", "sklearn.py"): "sklearn",
    os.path.join("cydrop", "torch"): "torch",
}


def _importable(package):
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[package] is None (import blocked)
        return False


def _missing_dependency(path):
    """The optional package that the module at ``path`` needs and that is not installed, or None."""
    relative = os.path.relpath(str(path), _HERE)
    for module, package in OPTIONAL.items():
        if (relative == module or relative.startswith(module + os.sep)) and not _importable(package):
            return package
    return None


class _SkippedModule(pytest.Module):
    """Stands in for a module that cannot be imported here: a skip, with the reason."""

    def collect(self):
        relative = os.path.relpath(str(self.path), _HERE)
        pytest.skip(f"{relative} needs {_missing_dependency(self.path)}, which is not installed")


@pytest.hookimpl(hookwrapper=True)  # old-style: also in the pytest 7 the test extra allows
def pytest_collect_file(file_path, parent):
    outcome = yield
    collectors = outcome.get_result()
    if os.path.commonpath([str(file_path), _PACKAGE]) != _PACKAGE:
        outcome.force_result([c for c in collectors if not isinstance(c, DoctestModule)])
    elif file_path.suffix == ".py" and _missing_dependency(file_path) is not None:
        outcome.force_result([_SkippedModule.from_parent(parent, path=file_path)])
