"""Fuzz: hostile edits of a valid package never crash ``civharm validate``.

Issue 13: "a property-based fuzz test mutates cells, headers and descriptors of a valid
package for a bounded time in CI and asserts: no traceback, exit 0/1/2 only, bounded
memory". Each example copies ``valid-minimal``, applies one mutation drawn by hypothesis
and runs ``civharm validate --format json`` in this process:

- the command ends on its own within ``EXAMPLE_SECONDS`` (an alarm, not a timing assertion);
- it exits 0 or 1 with a JSON report whose findings all have the documented keys, or 2 with
  one ``Error: `` line; never a traceback, never "internal error";
- the process's peak resident memory stays under ``PEAK_MEMORY_BYTES``.

``CIVHARM_FUZZ_EXAMPLES`` raises the number of examples per mutation kind (default 20, about
a CPU-second each) for a longer local run.
"""
from __future__ import annotations

import csv
import io
import json
import os
import resource
import tempfile
from pathlib import Path

from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from civharm.cli import main
from conftest import TODAY, build_package, time_limit

EXAMPLES = int(os.environ.get("CIVHARM_FUZZ_EXAMPLES", "20"))
EXAMPLE_SECONDS = 60
PEAK_MEMORY_BYTES = 3 << 30
FINDING_KEYS = {"rule_id", "severity", "file", "line", "pointer", "field", "message"}
TABLES = ["incidents", "reports", "damage", "sources", "changes", "duplicate_decisions"]
# No shrinking: it can take minutes on a slow example, and the failing input is printed as drawn.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Cell values that have broken parsers before, mixed with anything hypothesis makes.
NASTY_CELLS = ["", " ", "-", "=1+1", "@SUM(A1)", "+2", "0x10", "1_0", "١٢", "１２", "9" * 30, "-0", "1e309", "nan",
               "2024-3-14", "2024-02-30", "\u202egpj.exe", "\ufffe", "\x00", '"', 'a"b', "\r", "\n\n", "{{ 7*7 }}",
               "<script>alert(1)</script>", "../../etc/passwd", "é" * 1000]
cells = st.one_of(st.sampled_from(NASTY_CELLS), st.text(max_size=200),
                  st.integers(min_value=-(10**30), max_value=10**30).map(str))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40), st.sampled_from(NASTY_CELLS)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)


def csv_path(root: Path, table: str) -> Path:
    return root / "data" / f"{table}.csv"


def quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


def mutate_cell(root: Path, table: str, line: int, column: int, value: str) -> None:
    """Replace one cell, quoted as a CSV writer would (so the value itself is what is tested)."""
    path = csv_path(root, table)
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    row = rows[line % len(rows)]
    if row:
        row[column % len(row)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def mutate_bytes(root: Path, table: str, position: int, inserted: bytes, removed: int) -> None:
    """Insert raw bytes (and drop some) anywhere in a CSV file: quotes, line ends, broken UTF-8."""
    path = csv_path(root, table)
    data = path.read_bytes()
    at = position % (len(data) + 1)
    path.write_bytes(data[:at] + inserted + data[at + removed:])


def mutate_json(path: Path, choices: list[int], value) -> None:
    """Walk into the JSON document by ``choices`` (an index into each container's keys) and replace, add or delete."""
    document = json.loads(path.read_text(encoding="utf-8"))
    node, parent, key = document, None, None
    for choice in choices:
        if isinstance(node, dict) and node:
            keys = list(node)
            parent, key, node = node, keys[choice % len(keys)], node[keys[choice % len(keys)]]
        elif isinstance(node, list) and node:
            parent, key, node = node, choice % len(node), node[choice % len(node)]
        else:
            break
    if parent is None:
        document = value
    elif value == "__delete__":
        del parent[key]
    else:
        parent[key] = value
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")


def validate(root: Path) -> None:
    """Run validate on ``root`` and check every promise of the module docstring."""
    with time_limit(EXAMPLE_SECONDS):
        result = CliRunner().invoke(main, ["validate", str(root), "--format", "json", "--today", TODAY], catch_exceptions=False)
    output = result.output
    assert "Traceback" not in output, output[-2000:]
    assert "internal error" not in output, output[-2000:]
    assert result.exit_code in (0, 1, 2), output[-2000:]
    if result.exit_code == 2:
        assert output.startswith("Error: ") and output.count("\n") == 1, output[-2000:]
    else:
        report = json.loads(result.stdout)
        for finding in report["findings"]:
            assert set(finding) >= FINDING_KEYS, finding
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert peak < PEAK_MEMORY_BYTES, f"peak memory {peak >> 20} MiB"


def mutated_and_validated(mutate) -> None:
    """A fresh copy of the minimal package, changed by ``mutate(root)``, then ``validate``d."""
    with tempfile.TemporaryDirectory() as tmp:
        root = build_package(Path(tmp) / "pkg")
        mutate(root)
        validate(root)


def mutate_header(root: Path, table: str, column: int, action: str, label: str) -> None:
    path = csv_path(root, table)
    header, _, body = path.read_text(encoding="utf-8").partition("\n")
    labels = header.split(",")
    at = column % len(labels)
    if action == "rename":
        labels[at] = quote(label)
    elif action == "drop":
        del labels[at]
    elif action == "add":
        labels.insert(at, quote(label))
    else:
        labels.insert(at, labels[at])
    path.write_text(",".join(labels) + "\n" + body, encoding="utf-8")


@FUZZ
@given(table=st.sampled_from(TABLES), line=st.integers(0, 50), column=st.integers(0, 60), value=cells)
def test_a_mutated_cell_is_reported_not_crashed_on(table, line, column, value):
    mutated_and_validated(lambda root: mutate_cell(root, table, line, column, value))


@FUZZ
@given(table=st.sampled_from(TABLES), position=st.integers(0, 10**6),
       inserted=st.one_of(st.binary(max_size=20), st.sampled_from([b'"', b",", b"\n", b"\r\n", b"\n\n", b"\xff\xfe", b"\x00", b';'])),
       removed=st.integers(0, 5))
def test_mutated_bytes_are_reported_not_crashed_on(table, position, inserted, removed):
    mutated_and_validated(lambda root: mutate_bytes(root, table, position, inserted, removed))


@FUZZ
@given(table=st.sampled_from(TABLES), column=st.integers(0, 60), action=st.sampled_from(["rename", "drop", "add", "repeat"]),
       label=st.one_of(st.text(max_size=30), st.sampled_from(["incident_id", "", " ", "status", "count"])))
def test_a_mutated_header_is_reported_not_crashed_on(table, column, action, label):
    mutated_and_validated(lambda root: mutate_header(root, table, column, action, label))


@FUZZ
@given(target=st.sampled_from(["datapackage.json"] + [f"schema/{t}.json" for t in TABLES]),
       choices=st.lists(st.integers(0, 40), max_size=6),
       value=st.one_of(json_values, st.just("__delete__")))
def test_a_mutated_descriptor_or_schema_is_reported_not_crashed_on(target, choices, value):
    mutated_and_validated(lambda root: mutate_json(root / target, choices, value))
