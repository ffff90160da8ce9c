"""Every public name of cydrop has the docstring its API page needs.

The API reference (docs/api) is generated from these docstrings, one page
per name in each public module's ``__all__``: each page must say what the
name takes (Parameters), gives (Returns, or Yields), refuses (Raises) and
how it is used (Examples). numpydoc writes a section as a title underlined
with dashes, which is all this test reads.
"""
import importlib
import inspect
import re

import pytest

PUBLIC_MODULES = ["cydrop", "cydrop.optim", "cydrop.sklearn", "cydrop.torch", "cydrop.torch.functional",
                  "cydrop.uncertainty"]
# exported today but not library API (the docs leave it out; docs/_ext/cydrop_docs.py)
NOT_LIBRARY_API = {"cydrop.uncertainty.run_protocol"}
# classes that users receive but never build: their constructor's arguments are internal
BUILT_BY_CYDROP = {"cydrop.DenseCache"}

_SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]+)\n\s*-{3,}\s*$", re.M)


def sections(obj):
    return set(_SECTION.findall(inspect.getdoc(obj) or ""))


def _takes_arguments(function):
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True
    return any(name not in ("self", "cls") for name in parameters)


def public_names():
    names = []
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # sklearn or torch not installed: their modules are skipped below
            names.append(pytest.param(module_name, None, marks=pytest.mark.skip(f"{module_name} not importable")))
            continue
        for attr in module.__all__:
            value = getattr(module, attr)
            qualified = f"{module_name}.{attr}"
            if inspect.ismodule(value) or qualified in NOT_LIBRARY_API:
                continue
            names.append(pytest.param(module_name, attr, id=qualified))
    return names


def required_sections(qualified, value):
    required = {"Examples"}
    if inspect.isclass(value):
        if qualified not in BUILT_BY_CYDROP and _takes_arguments(value.__init__):
            required.add("Parameters")
            # scikit-learn's estimators only store their parameters in __init__
            # and check them in fit (whose docstring has Raises)
            if not hasattr(value, "get_params"):
                required.add("Raises")
    else:
        required.add("Yields" if inspect.isgeneratorfunction(inspect.unwrap(value)) else "Returns")
        if _takes_arguments(value):
            required |= {"Parameters", "Raises"}
    return required


@pytest.mark.parametrize("module_name, attr", public_names())
def test_public_name_has_parameters_returns_raises_examples(module_name, attr):
    value = getattr(importlib.import_module(module_name), attr)
    qualified = f"{module_name}.{attr}"
    missing = required_sections(qualified, value) - sections(value)
    assert not missing, f"{qualified}'s docstring has no {', '.join(sorted(missing))} section"


def test_the_check_reads_numpydoc_sections():
    def documented(x):
        """Summary.

        Parameters
        ----------
        x : int

        Returns
        -------
        int
        """

    def undocumented(x):
        """Summary only."""

    assert sections(documented) == {"Parameters", "Returns"}
    assert required_sections("f", undocumented) - sections(undocumented) == {"Parameters", "Returns", "Raises",
                                                                              "Examples"}
