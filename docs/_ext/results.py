"""The docs' results pages read ``benchmarks/results/``, never a copy in the prose.

A result file is Markdown (readable where it lies) in this shape::

    # one line saying what was measured

    - command: `the command that made it`
    - date: YYYY-MM-DD (of the run)
    - machine: the CPU, its logical CPUs, and what else was running

    Body: paragraphs, bullet lists, pipe tables, fenced code.

``.. cydrop-result:: bench/full-*.md`` shows the latest file (by its date)
matching the pattern: its command, date and machine, then its body, converted
to reStructuredText here (a small subset of Markdown is all these files use).
A JSON result (the figures a script wrote for other scripts to read) shows
the same way when the script also wrote a ``title`` and a ``summary`` (Markdown
lines made from the same figures) beside its ``meta``.
``.. cydrop-uci-table::`` builds the UCI table from the JSON files of
``benchmarks/results/uci/`` (each with a ``meta`` entry: command, date,
machine), so no figure of that table is ever typed by hand.
"""
import glob
import json
import os
import re

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

RESULTS = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "results"))
_FIELD = re.compile(r"^- (command|date|machine|software): (.*)$")


def read_result(path):
    """(title, {field: value}, body lines) of a result file."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if not all(key in payload for key in ("meta", "title", "summary")):
            raise ValueError(f"{path}: a JSON result shown in the docs needs 'meta', 'title' and 'summary'")
        meta = payload["meta"]
        return payload["title"], dict(meta, command=f"`{meta['command']}`"), payload["summary"]
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise ValueError(f"{path}: a result file starts with '# title'")
    title, fields, i = lines[0][2:].strip(), {}, 1
    while i < len(lines) and (not lines[i].strip() or _FIELD.match(lines[i])):
        match = _FIELD.match(lines[i])
        if match:
            fields[match.group(1)] = match.group(2).strip()
        i += 1
    for required in ("command", "date", "machine"):
        if required not in fields:
            raise ValueError(f"{path}: no '- {required}: ...' line under the title")
    return title, fields, lines[i:]


def latest(pattern):
    """The path of the newest result file matching pattern (by its date, then its name)."""
    paths = sorted(glob.glob(os.path.join(RESULTS, pattern)))
    if not paths:
        raise ValueError(f"no result file matches benchmarks/results/{pattern}")
    return max(paths, key=lambda path: (read_result(path)[1]["date"], path))


# ---------------------------------------------------------------- Markdown subset -> rst

def _inline(text):
    """Markdown inline code to rst literals; **bold** and *italic* are the same in both."""
    def literal(match):
        before, code, after = match.group(1), match.group(2), match.group(3)
        # rst inline markup must be set off by space or punctuation: an escaped
        # space joins it to a neighbouring letter
        left = "\\ " if before and (before.isalnum() or before in ")]") else ""
        right = "\\ " if after and after.isalnum() else ""
        return f"{before}{left}``{code}``{right}{after}"

    return re.sub(r"(^|.)`([^`]+)`(.|$)", literal, text)


def _table(rows):
    cells = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows]
    header, body = cells[0], [row for row in cells[2:]]  # cells[1] is the --- line
    out = [".. list-table::", "   :header-rows: 1", "   :class: cydrop-results", ""]
    for row in [header] + body:
        for j, cell in enumerate(row):
            text = _inline(cell) or ".."
            if text[0] in "-*+":  # a cell "-" (no figure) is text, not a nested bullet list
                text = "\\" + text
            out.append(f"   {'* -' if j == 0 else '  -'} {text}")
    return out + [""]


def markdown_to_rst(lines):
    """The subset of Markdown the result files use, as rst lines."""
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            language = line[3:].strip() or "text"
            out += [f".. code-block:: {language}", ""]
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                out.append("   " + lines[i])
                i += 1
            out.append("")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            out += _table(rows)
            continue
        elif line.startswith("#"):
            out += ["", f".. rubric:: {_inline(line.lstrip('#').strip())}", ""]
        else:
            out.append(_inline(line))
        i += 1
    return out


class ResultDirective(SphinxDirective):
    """``.. cydrop-result:: PATTERN`` (relative to benchmarks/results/)."""

    required_arguments = 1
    option_spec = {"title": directives.flag}

    def run(self):
        path = latest(self.arguments[0])
        title, fields, body = read_result(path)
        self.env.note_dependency(path)
        relative = os.path.relpath(path, os.path.dirname(RESULTS)).replace(os.sep, "/")
        rst = []
        if "title" in self.options:
            rst += [f".. rubric:: {_inline(title)}", ""]
        rst += [
            f":Command: {_inline(fields['command'])}",
            f":Measured: {fields['date']}, {_inline(fields['machine'])}",
        ]
        if "software" in fields:
            rst.append(f":Software: {_inline(fields['software'])}")
        rst += [f":Result file: ``benchmarks/{relative}``", ""]
        rst += markdown_to_rst(body)
        container = nodes.container(classes=["cydrop-result"])
        self.state.nested_parse(StringList(rst, source=path), self.content_offset, container)
        return [container]


# ---------------------------------------------------------------- the UCI table

def _uci_kinds(entry):
    """The columns an entry of a ``cydrop uci --json`` file fills: "learn"
    (``--learn-only``), "side_by_side" (``--learn``: both protocols in one
    run, whose times compare), and for the grid "extended", "repeats" or
    "one_run". Figures are shown from runs of all 20 splits only."""
    if "learn" in entry and "rmse" in entry:
        return ["side_by_side"]    # the two protocols timed in one run, usually on a few splits
    if entry.get("splits") != 20:
        return []
    kinds = ["learn"] if "learn" in entry else []
    if "rmse" in entry:
        kinds.append("extended" if "extended" in entry else "repeats" if entry.get("repeats", 1) > 1 else "one_run")
    return kinds


def _uci_results():
    """{kind: {dataset: (entry, meta, file)}}: the latest file of each kind
    (_uci_kinds) for each dataset; "side_by_side" keeps a list of them all."""
    found = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "uci", "**", "*.json"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        if "datasets" not in payload:    # not a cydrop uci --json file (e.g. learn/learn-choices.json)
            continue
        meta = payload.get("meta")
        if not meta or not all(key in meta for key in ("command", "date", "machine")):
            raise ValueError(f"{path}: needs a 'meta' entry with command, date and machine")
        for entry in payload["datasets"]:
            for kind in _uci_kinds(entry):
                if kind == "side_by_side":    # every run counts: {dataset: [(entry, meta, file), ...]}
                    found.setdefault(kind, {}).setdefault(entry["name"], []).append((entry, meta, path))
                    continue
                current = found.setdefault(kind, {}).get(entry["name"])
                if current is None or meta["date"] >= current[1]["date"]:
                    found[kind][entry["name"]] = (entry, meta, path)
    return found


def _pm(mean, se, digits=3):
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


class UciTableDirective(SphinxDirective):
    """``.. cydrop-uci-table::`` with ``:table: summary`` (default), ``repeats``
    or ``learn``."""

    option_spec = {"table": lambda arg: directives.choice(arg, ("summary", "repeats", "learn"))}

    def run(self):
        found = _uci_results()
        for kind in found.values():
            for runs in kind.values():
                for _, _, path in (runs if isinstance(runs, list) else [runs]):
                    self.env.note_dependency(path)
        repeats = found.get("repeats", {})
        names = sorted(repeats)
        table = self.options.get("table", "summary")
        if table == "repeats":
            rst, shown = self._repeats_table(repeats, names), {"repeats": repeats}
        elif table == "learn":
            learn = found.get("learn", {})
            rst = self._learn_table(found, sorted(learn))
            shown = {"learn": learn, "side_by_side": found.get("side_by_side", {})}
        else:
            rst, shown = self._summary_table(found, names), found
        commands = {}
        for kind in shown.values():
            for runs in kind.values():
                for _, meta, path in (runs if isinstance(runs, list) else [runs]):
                    commands[meta["command"]] = (meta, os.path.relpath(path, os.path.join(RESULTS, "uci")))
        rst += ["", "Made by (result files in ``benchmarks/results/uci/``):", ""]
        commands = dict(sorted(commands.items(), key=lambda item: item[1][1]))
        for command, (meta, name) in commands.items():
            rst.append(f"- ``{command}`` (``{name}``; {meta['date']}, {meta['machine']})")
        container = nodes.container(classes=["cydrop-result"])
        self.state.nested_parse(StringList(rst, source=RESULTS), self.content_offset, container)
        return [container]

    @staticmethod
    def _summary_table(found, names):
        n = max(entry["repeats"] for entry, _, _ in found["repeats"].values())
        rst = [".. list-table::", "   :header-rows: 1", "   :class: cydrop-results", "",
               "   * - dataset", f"     - MC RMSE, {n} repeats", "     - published",
               f"     - test LL, {n} repeats", "     - published", "     - one run: RMSE, LL",
               "     - extended: RMSE", "     - extended: LL"]
        for name in names:
            entry = found["repeats"][name][0]
            published = entry.get("published") or {}
            one = found.get("one_run", {}).get(name, (None,))[0]
            ext = found.get("extended", {}).get(name, (None,))[0]
            cells = [name, _pm(entry["rmse"], entry["rmse_se"]),
                     _pm(published["rmse"], published["rmse_se"], 2) if published else "-",
                     _pm(entry["test_ll"], entry["test_ll_se"]),
                     _pm(published["test_ll"], published["test_ll_se"], 2) if published else "-",
                     f"{one['rmse']:.3f}, {one['test_ll']:.3f}" if one else "-",
                     _pm(ext["extended"]["rmse_extended"], ext["extended"]["rmse_extended_se"]) if ext else "-",
                     _pm(ext["extended"]["test_ll_extended"], ext["extended"]["test_ll_extended_se"]) if ext else "-"]
            rst += [f"   {'* -' if j == 0 else '  -'} {cell}" for j, cell in enumerate(cells)]
        return rst

    @staticmethod
    def _learn_table(found, names):
        """The learned protocol beside the published grid: figures and
        learned rates over the 20 splits, and its training time over the
        grid's where both ran side by side (one ratio per such run)."""
        rst = [".. list-table::", "   :header-rows: 1", "   :class: cydrop-results", "",
               "   * - dataset", "     - learned: MC RMSE", "     - published grid", "     - learned: test LL",
               "     - published grid", "     - learned keep_prob (input, hidden)",
               "     - time / the grid's, side by side"]
        for name in names:
            entry = found["learn"][name][0]
            learned, published = entry["learn"], entry.get("published") or {}
            cells = [name, _pm(learned["rmse"], learned["rmse_se"]),
                     _pm(published["rmse"], published["rmse_se"], 2) if published else "-",
                     _pm(learned["test_ll"], learned["test_ll_se"]),
                     _pm(published["test_ll"], published["test_ll_se"], 2) if published else "-",
                     ", ".join(f"{k:.3f}" for k in learned["keep_prob"]),
                     ", ".join(f"{run['learn']['seconds'] / run['seconds']:.2f} ({run['splits']} splits)"
                               for run, _, _ in found.get("side_by_side", {}).get(name, [])) or "-"]
            rst += [f"   {'* -' if j == 0 else '  -'} {cell}" for j, cell in enumerate(cells)]
        return rst

    @staticmethod
    def _repeats_table(repeats, names):
        n = max(entry["repeats"] for entry, _, _ in repeats.values())
        rst = [".. list-table::", "   :header-rows: 1", "   :class: cydrop-results", "", "   * - dataset"]
        rst += [f"     - repeat {r}" for r in range(n)]
        for name in names:
            per = repeats[name][0]["per_repeat"]
            cells = [name] + [f"{rmse:.3f}; {ll:.3f}" for rmse, ll in zip(per["rmse_repeats"], per["test_ll_repeats"])]
            rst += [f"   {'* -' if j == 0 else '  -'} {cell}" for j, cell in enumerate(cells)]
        return rst
