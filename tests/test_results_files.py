"""Every result file in benchmarks/results/ says what made it: the command,
the date of the run and the machine (the docs' results pages read them)."""
import json
import re
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
MARKDOWN = sorted(p for p in RESULTS.rglob("*.md") if p.name != "README.md")
JSON = sorted(RESULTS.rglob("*.json"))
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(RESULTS)))
def test_markdown_result_names_its_command_date_and_machine(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    fields = dict(re.match(r"^- (\w+): (.*)$", line).groups() for line in lines[1:8]
                  if re.match(r"^- (command|date|machine|software): ", line))
    assert {"command", "date", "machine"} <= set(fields)
    assert DATE.match(fields["date"]) and fields["date"] in path.name


@pytest.mark.parametrize("path", JSON, ids=lambda p: str(p.relative_to(RESULTS)))
def test_json_result_names_its_command_date_and_machine(path):
    meta = json.loads(path.read_text(encoding="utf-8"))["meta"]
    assert meta["command"].startswith(("cydrop ", "python ")) and DATE.match(meta["date"]) and meta["machine"]


def test_there_are_results_to_show():
    assert MARKDOWN and JSON
