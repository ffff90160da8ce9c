"""The scripts of benchmarks/ as modules, for the tests of their code paths.

benchmarks/ is not a package: a script is imported from its path, with
benchmarks/ on sys.path while it loads (its ``from _common import ...``)."""
import importlib.util
import os
import sys

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def load(name):
    """benchmarks/<name>.py, imported as a module called <name>."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, BENCHMARKS)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(BENCHMARKS)
    return module
