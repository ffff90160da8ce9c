"""Sphinx configuration of cydrop's documentation site.

Build it from the repository root (the command the README gives and CI runs)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

``-W`` turns every warning into an error and ``nitpicky`` (below) makes every
cross-reference one that must resolve, so a renamed function or a stale
reference breaks the build. The gallery (``examples/plot_*.py``) runs while
the docs build; ``CYDROP_GALLERY_QUICK=1`` makes the examples shrink their
epochs and data (CI sets it), and the published figures come from a build
without it.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

import cydrop  # noqa: E402  (after the path set-up: the build documents the installed cydrop)

project = "cydrop"
author = "the cydrop developers"
copyright = "the cydrop developers, BSD-3-Clause"
version = release = cydrop.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "cydrop_docs",  # _ext/cydrop_docs.py: which members are public, and the results pages
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.md5", "auto_examples/*.json", "auto_examples/*.codeobj.json"]
root_doc = "index"
# ``x`` in the prose is code, as in NumPy's and scikit-learn's docs
default_role = "literal"
# curly quotes, but ``--option`` stays two hyphens (no en dashes)
smartquotes_action = "qe"

# ---------------------------------------------------------------- cross-references
# Every reference must resolve. cydrop's docs link nothing outside themselves:
# intersphinx would need the inventories of NumPy, SciPy, Python, scikit-learn
# and PyTorch, which are downloaded from their sites, and the docs must build
# offline on a fresh machine. Names of those libraries are written as literals
# (``numpy.matmul``), not as references, so nothing needs ignoring: there is
# no nitpick_ignore. A reference to a name outside cydrop is an error to fix
# in the text (write it as a literal), never one to silence.
nitpicky = True

# ---------------------------------------------------------------- API reference
# The module pages list what each module's __all__ names (api/index.rst and
# _templates/autosummary/module.rst), so a name added to __all__ gets its page
# on the next build without touching the docs.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_inherit_docstrings = False  # a member without its own docstring is not documented
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
autoclass_content = "class"  # the class docstring holds the constructor's parameters (numpydoc)
numpydoc_show_class_members = False  # the class template lists the members
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# ---------------------------------------------------------------- gallery
QUICK = os.environ.get("CYDROP_GALLERY_QUICK", "") not in ("", "0")
sphinx_gallery_conf = {
    "examples_dirs": os.path.join("..", "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # every example runs, and draws its figure while the docs build
    "within_subsection_order": "FileNameSortKey",  # plot_01_..., plot_02_...: the order of the lecture
    "doc_module": ("cydrop",),
    "backreferences_dir": os.path.join("api", "generated", "backreferences"),
    "abort_on_example_error": True,  # a failing example fails the build
    "download_all_examples": False,
    "min_reported_time": 1,
    "show_memory": False,
    "remove_config_comments": True,
}

# sphinx-gallery reruns only the examples whose source changed; a build in the
# other mode (quick or full) must rerun them all, or it would publish the
# other mode's figures. The mode of the last build is kept beside the gallery.
_MODE = "quick" if QUICK else "full"
_MODE_FILE = os.path.join(HERE, sphinx_gallery_conf["gallery_dirs"], ".gallery-mode")
try:
    with open(_MODE_FILE) as f:
        sphinx_gallery_conf["run_stale_examples"] = f.read().strip() != _MODE
except FileNotFoundError:
    pass  # a first build runs every example anyway


def _record_gallery_mode(app, exception):
    if exception is None and os.path.isdir(os.path.dirname(_MODE_FILE)):
        with open(_MODE_FILE, "w") as f:
            f.write(_MODE + "\n")


def setup(app):
    app.connect("build-finished", _record_gallery_mode)


html_theme = "pydata_sphinx_theme"
html_title = f"cydrop {release}"
html_static_path = ["_static"]
html_css_files = ["cydrop.css"]
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},
}
if QUICK:
    # the examples' text describes the full run, which a quick build's numbers may contradict
    html_theme_options["announcement"] = (
        "A quick build (CYDROP_GALLERY_QUICK=1): the gallery ran on shrunken data, networks and epochs, so "
        "its printed numbers and figures are not those its text describes; a build without it gives them.")
html_sidebars = {"index": [], "quickstart": []}
html_show_sourcelink = False
html_last_updated_fmt = None  # no dates on the pages: results carry their own
