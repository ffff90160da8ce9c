"""Sphinx extension of cydrop's docs: which members are public, and the results pages.

- ``autodoc-skip-member``: a class page shows the members of the class and of
  its private bases in cydrop (``_BaseDropoutMLP.fit``), never those inherited
  from an engine class (``cydrop._network.Network``) or from another library
  (scikit-learn's ``BaseEstimator``, torch's ``nn.Module``); names that are
  not library API are left out of the module pages.
- ``.. cydrop-result:: FOLDER/PATTERN``: the latest result file of
  ``benchmarks/results/`` matching the pattern (see ``results.py``).
- ``.. cydrop-uci-table::``: the UCI table built from the JSON files of
  ``benchmarks/results/uci/``.
"""
import functools
import importlib
import sys

from results import ResultDirective, UciTableDirective

# The modules whose __all__ is cydrop's public API (api/index.rst documents them).
PUBLIC_MODULES = ("cydrop", "cydrop.optim", "cydrop.sklearn", "cydrop.torch", "cydrop.torch.functional",
                  "cydrop.uncertainty")

# Exported by a module today, but not library API: the experiment protocol
# belongs with the applications (``cydrop uci``) and is documented there.
NOT_LIBRARY_API = {"cydrop.uncertainty.run_protocol"}


@functools.cache
def _public_classes():
    classes = set()
    for name in PUBLIC_MODULES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            value = getattr(module, attr, None)
            if isinstance(value, type):
                classes.add(value)
    return classes


def _owner(member):
    """The class that defines ``member`` (a function, property or classmethod), or None."""
    function = getattr(member, "fget", None) or getattr(member, "__func__", None) or member
    module = sys.modules.get(getattr(function, "__module__", None) or "")
    parts = getattr(function, "__qualname__", "").split(".")[:-1]
    owner = module
    for part in parts:
        owner = getattr(owner, part, None)
    return owner if isinstance(owner, type) else None


def skip_member(app, what, name, obj, skip, options):
    function = getattr(obj, "fget", None) or getattr(obj, "__func__", None) or obj
    if f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}" in NOT_LIBRARY_API:
        return True
    if what != "class" or skip:
        return None
    function_module = getattr(function, "__module__", None) or ""
    if function_module.split(".")[0] != "cydrop":
        return True  # inherited from another library (torch's nn.Module, scikit-learn's BaseEstimator)
    owner = _owner(obj)
    if owner is None:
        return None
    public = owner in _public_classes() or (
        owner.__name__.startswith("_") and owner.__module__.split(".")[0] == "cydrop")
    return None if public else True


def setup(app):
    app.connect("autodoc-skip-member", skip_member)
    app.add_directive("cydrop-result", ResultDirective)
    app.add_directive("cydrop-uci-table", UciTableDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
