"""The README is a landing page: short, the two commands first, nothing dated,
and the docs command it gives is the one CI runs."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
INSTALL_AND_DEMO = 'python -m pip install -e ".[demo]" && cydrop demo'
INSTALL_AND_TEST = 'python -m pip install -e ".[test]" && python -m pytest --benchmark-disable'
DOCS_COMMAND = "python -m sphinx -W --keep-going -b html docs docs/_build/html"


def code_blocks(text):
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def test_readme_is_at_most_200_lines():
    assert len(README.splitlines()) <= 200


def test_readme_starts_with_the_install_and_demo_and_test_commands():
    first = code_blocks(README)[0].splitlines()
    assert first[0].startswith(INSTALL_AND_DEMO) and first[1].startswith(INSTALL_AND_TEST)
    assert README.index("```") < README.index("\n## ")  # before any section


def test_readme_has_no_dates():
    assert not re.search(r"\b\d{4}-\d{2}-\d{2}\b", README)


def test_every_headline_figure_has_its_command():
    rows = [line for line in README.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert len(rows) > 1
    for row in rows[1:]:
        command = row.rstrip(" |").rsplit("|", 1)[1].strip()
        assert command.startswith(("`cydrop ", "`python -m cydrop ", "`python benchmarks/")), row


def test_ci_builds_the_docs_with_the_readme_commands():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert DOCS_COMMAND in README and 'python -m pip install -e ".[docs]"' in README
    assert 'python -m pip install -e ".[docs]"' in ci
    assert f"CYDROP_GALLERY_QUICK=1 {DOCS_COMMAND}" in ci
    assert "CYDROP_GALLERY_QUICK=1" in README


def test_pytest_collects_neither_the_gallery_nor_the_docs_configuration():
    tomllib = pytest.importorskip("tomllib")
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert not {"examples", "docs"} & set(options["testpaths"])
    patterns = [re.compile(p.replace(".", r"\.").replace("*", ".*") + "$") for p in options["python_files"]]
    for name in ["conf.py"] + [p.name for p in (ROOT / "examples").glob("*.py")]:
        assert not any(p.match(name) for p in patterns), name
