"""The import graph: what `import cydrop` pulls in, and the one-way arrow
from the applications (cydrop.apps) to the library.

Each check runs in a fresh interpreter, since this process has long imported
everything the other tests use."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import cydrop

# heavy or optional packages that `import cydrop` must leave alone: SciPy's
# linalg is imported on the first call that uses its BLAS, the others only by
# the applications and the optional modules
NOT_IMPORTED = ["scipy.linalg", "sklearn", "dask", "distributed", "tqdm", "matplotlib", "mnist1d",
                "torch", "pandas", "cydrop.apps", "cydrop.sklearn"]


def run_python(code):
    """Run ``code`` in a fresh interpreter that imports this cydrop; return its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(cydrop.__file__)), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_cydrop_leaves_heavy_packages_out():
    loaded = json.loads(run_python(f"""
        import json, sys
        import cydrop
        print(json.dumps([name for name in {NOT_IMPORTED!r} if name in sys.modules]))
    """))
    assert loaded == []


def test_blas_is_loaded_on_first_use():
    # the deterministic dense layer runs SciPy's BLAS; it must find it
    # although `import cydrop` did not import it
    out = json.loads(run_python("""
        import json, sys
        import numpy as np
        import cydrop
        before = "scipy.linalg" in sys.modules
        cydrop.set_deterministic(True)
        results = {}
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(0)
            x, W = rng.standard_normal((300, 200)).astype(dtype), rng.standard_normal((200, 150)).astype(dtype)
            b, g = rng.standard_normal(150).astype(dtype), rng.standard_normal((300, 150)).astype(dtype)
            out, cache = cydrop.dense_forward(x, W, b, 1.0, activation="linear")
            dx, dW, db = cydrop.dense_backward(g, cache)
            x64, W64, g64 = x.astype(float), W.astype(float), g.astype(float)
            errors = [np.abs(got - want).max() / np.abs(want).max() for got, want in
                      [(out, x64 @ W64 + b), (dx, g64 @ W64.T), (dW, x64.T @ g64), (db, g64.sum(0))]]
            results[np.dtype(dtype).name] = [float(e) for e in errors]
        print(json.dumps({"before": before, "after": "scipy.linalg" in sys.modules, "errors": results}))
    """))
    assert out["before"] is False and out["after"] is True
    assert max(out["errors"]["float32"]) < 1e-5
    assert max(out["errors"]["float64"]) < 1e-12


def test_library_never_imports_the_applications():
    # every module of cydrop outside cydrop.apps (and __main__, the command's
    # entry point); a module whose optional dependency is missing is left out
    out = json.loads(run_python("""
        import importlib, json, pkgutil, sys
        import cydrop
        imported, missing = [], {}
        # not pkgutil.walk_packages: it imports every package it walks into
        todo = [cydrop]
        while todo:
            package = todo.pop()
            for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
                if info.name in ("cydrop.__main__", "cydrop.apps"):
                    continue
                try:
                    module = importlib.import_module(info.name)
                except ModuleNotFoundError as exc:
                    if exc.name is None or exc.name.split(".")[0] == "cydrop":
                        raise
                    missing[info.name] = exc.name
                    continue
                imported.append(info.name)
                if info.ispkg:
                    todo.append(module)
        apps = sorted(m for m in sys.modules if m == "cydrop.apps" or m.startswith("cydrop.apps."))
        print(json.dumps({"imported": imported, "missing": missing, "apps": apps}))
    """))
    assert out["apps"] == []
    # the walk found the library (a broken walk must not pass as "no apps imported")
    assert {"cydrop.ops", "cydrop.dense", "cydrop.mlp", "cydrop._generator"} <= set(out["imported"])


def test_every_package_of_the_source_tree_is_in_the_built_distribution():
    """A wheel holds the packages pyproject.toml names: a subpackage left out
    makes `import cydrop` fail in every non-editable install."""
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "pyproject.toml")):
        pytest.skip("needs the source tree (pyproject.toml beside tests/)")
    on_disk = {os.path.relpath(folder, root).replace(os.sep, ".")
               for folder, _, files in os.walk(os.path.join(root, "cydrop")) if "__init__.py" in files}
    config = pyprojecttoml.read_configuration(os.path.join(root, "pyproject.toml"), expand=True)
    assert on_disk - set(config["tool"]["setuptools"]["packages"]) == set()
