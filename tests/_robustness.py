"""The counts of the break-it suite, written to ``benchmarks/results/robustness.md``.

``tests/conftest.py`` collects the outcome of every test it runs; at the end of the session
(the controller process under pytest-xdist) :func:`write_report` counts, per suite, the cases
tried (the parametrised cases of ``tests/test_breakit_cli.py`` / ``tests/test_breakit_api.py``)
and handled (the case's test passed).  A suite is counted only when every one of its cases ran,
so a partial run (``-k``, one file) keeps the other suite's last counts; the file holds no times
or dates and is rewritten (atomically) only when its content changes, so reruns do not churn it.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict

HERE = Path(__file__).resolve().parent
REPORT = HERE.parent / "benchmarks" / "results" / "robustness.md"
SUITES = OrderedDict([
    ("CLI", ("test_breakit_cli", "every sub-command: exit code 2, one line on stderr "
                                 "naming what was wrong, no file created, changed or removed")),
    ("API", ("test_breakit_api", "ValueError/TypeError (FileNotFoundError for a missing file) naming what was wrong "
                                 "and what was expected; behaviours once silently wrong (exact data, batches, seeds, "
                                 "grids) checked")),
])
_MARK = "<!-- robustness-counts: "


def _module(name):
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(name)


def _group(suite: str, case) -> str:
    if suite == "API":
        return case.group
    argv = case.argv if not callable(case.argv) else ["?"]
    return argv[0] if argv and argv[0] in ("generate", "train", "invert", "benchmark", "demo") else "dispatcher"


def _what(suite: str, case) -> str:
    if suite == "API":
        return case.what
    argv = case.argv if not callable(case.argv) else ["(built per workspace)"]
    return "`pdeinv " + " ".join(a for a in argv if a != "--quiet") + "`"


def _old_counts() -> Dict[str, dict]:
    try:
        text = REPORT.read_text()
    except OSError:
        return {}
    for line in text.splitlines():
        if line.startswith(_MARK):
            try:
                return json.loads(line[len(_MARK):].rsplit("-->", 1)[0])
            except ValueError:
                return {}
    return {}


def render(counts: Dict[str, dict]) -> str:
    lines = ["# Robustness: the break-it suite", "",
             "Bad inputs tried against pdeinv and how many were handled (a clear error, nothing changed on disk; or",
             "the once-silently-wrong behaviour now right).  Written by the test suite (`tests/conftest.py`,",
             "`tests/_robustness.py`) from `tests/test_breakit_cli.py` and `tests/test_breakit_api.py`; do not edit.",
             "", "| suite | cases tried | handled | share | what handled means |", "|---|---:|---:|---:|---|"]
    for suite, (_, meaning) in SUITES.items():
        c = counts.get(suite)
        if not c:
            lines.append(f"| {suite} | – | – | – | {meaning} |")
            continue
        share = 100.0 * c["handled"] / c["tried"] if c["tried"] else 0.0
        lines.append(f"| {suite} | {c['tried']} | {c['handled']} | {share:.0f} % | {meaning} |")
    for suite in SUITES:
        c = counts.get(suite)
        if not c:
            continue
        lines += ["", f"## {suite}: by group", "", "| group | tried | handled |", "|---|---:|---:|"]
        for g, (t, h) in c["groups"].items():
            lines.append(f"| {g} | {t} | {h} |")
        if c.get("not_handled"):
            lines += ["", "Not handled: " + ", ".join(f"`{i}`" for i in c["not_handled"])]
        lines += ["", f"<details><summary>{suite} cases</summary>", "", "| case | input |", "|---|---|"]
        for cid, what in c["cases"]:
            lines.append(f"| `{cid}` | {what.replace('|', '&#124;')} |")
        lines += ["", "</details>"]
    lines += ["", _MARK + json.dumps(counts, sort_keys=True) + " -->", ""]
    return "\n".join(lines)


def counts_from(outcomes: Dict[str, str]) -> Dict[str, dict]:
    """Per suite whose cases all ran: tried, handled, per-group counts and the case list."""
    out = {}
    for suite, (modname, _) in SUITES.items():
        mod = _module(modname)
        ids = mod.case_nodeids()
        if not ids or not all(i in outcomes for i in ids):
            continue
        groups: Dict[str, list] = OrderedDict()
        handled, bad, cases = 0, [], []
        for case, nodeid in zip(mod.CASES, ids):
            ok = outcomes[nodeid] == "passed"
            g = groups.setdefault(_group(suite, case), [0, 0])
            g[0] += 1
            g[1] += int(ok)
            handled += int(ok)
            if not ok:
                bad.append(case.id)
            cases.append([case.id, _what(suite, case)])
        out[suite] = {"tried": len(ids), "handled": handled, "groups": groups, "not_handled": bad, "cases": cases}
    return out


def write_report(outcomes: Dict[str, str]) -> bool:
    """Write the report when at least one suite ran whole; True if the file changed."""
    new = counts_from(outcomes)
    if not new:
        return False
    counts = {**_old_counts(), **new}
    text = render(counts)
    try:
        if REPORT.read_text() == text:
            return False
    except OSError:
        pass
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=REPORT.parent, prefix=".robustness.md.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        mask = os.umask(0o022)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, REPORT)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True
