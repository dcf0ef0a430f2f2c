"""Structural validation: each Table Schema compiled into vectorised checks over the loaded frames.

Types, required, enum, pattern, length and range constraints, unique fields, primary and
foreign keys run as pyarrow/pandas column operations, so a million rows take seconds where
a row-by-row validator takes minutes. frictionless 5 stays the oracle in three ways:

- a cell the vectorised path cannot decide alone (an unusual spelling of a number, text
  outside printable ASCII under a pattern, any type without a fast path) goes through
  frictionless' own cell reader, once per distinct value;
- a package whose files are irregular (header not matching the schema, ragged rows, a BOM,
  a sniffed dialect other than plain CSV, an invalid descriptor) is validated by frictionless
  itself (``check_with_frictionless``), since those are small broken files, not big ones;
- tests/test_differential.py checks both paths give the same (file, line, field, type).

Each error becomes a Finding whose rule id is ``frictionless/<type>``, placed on the
physical CSV line, and worded the same way on both paths. No finding is ever dropped.
Two checks of our own follow on both paths: a date that frictionless reads but that is not
written YYYY-MM-DD in ASCII digits ('2024-3-14', '٢٠٢٤-03-14') is ``structure/date-format``,
and one outside the days a date may name (``package.EARLIEST_DAY`` to ``LATEST_DAY``:
'0224-03-14') is ``structure/date-out-of-range``.
What frictionless lets through but other readers do not is ``civharm.strictness``.

Why it is over 500 lines: the vectorised path and the frictionless path must word every
error the same way and agree on every line number (tests/test_differential.py); they share
the wording, the schema preparation and the line mapping, and live together so that a
change to one is seen beside the other.
"""
from __future__ import annotations

import csv
import io
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import frictionless
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from frictionless import errors as ferrors
from frictionless import system

from .findings import Finding, Rule, Severity, declare, json_pointer, quote
from .package import (DESCRIPTOR, EARLIEST_DAY, EXTRA_LABELS_KEPT, LATEST_DAY, Package, Resource, arrow_text, date_spelled,
                      is_utf8, outside_days, outside_message, plain_dates, plain_integers)

ERROR_LIMIT = 10_000_000

_CONSTRAINT = re.compile(r'constraint "(?P<name>\w+)" is "(?P<value>.*)"', re.S)
_POSITION = re.compile(r'row at position "?(?P<row>\d+)"?')
_SPEC_KEYS = {"name", "path", "profile", "format", "mediatype", "encoding", "schema", "title", "description",
              "licenses", "sources", "homepage", "keywords"}
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")

# Checks of our own beside the Table Schema (frictionless' errors keep their frictionless/ ids).
RULES = declare(
    Rule("structure/date-format", Severity.ERROR, "A date is written YYYY-MM-DD: four-digit year, two-digit month and day, ASCII digits 0–9.",
            "Stock frictionless also reads '2024-3-14' and other scripts' digits ('٢٠٢٤'); sorting, comparing and other tools "
            "do not, so such a date would be misordered or lost downstream (civharm reads it as no date)."),
    Rule("structure/date-out-of-range", Severity.ERROR, f"A date is a day from {EARLIEST_DAY} to {LATEST_DAY}.",
            "The data set records harm in contemporary armed conflict: an earlier day is a mistyped year (0224 for 2024), a "
            "later one is after any today this tool will see. civharm reads such a date as no date, so no other rule checks it."),
    Rule("structure/number-spelling", Severity.ERROR,
            "Integer and number cells use the ASCII digits 0–9 without '_' separators; integers have at most 18 digits.",
            "frictionless reads cells with Python, which takes '1_0' as 10, '٢' as 2 and integers of any length; spreadsheets, "
            "databases and civharm's own rules do not, so the figure would be lost or read as empty downstream."),
    Rule("structure/text-after-quote", Severity.ERROR, "A quoted cell ends at its closing quote.",
            "Python's and Arrow's CSV readers (so frictionless) glue text after a closing quote onto the cell ('\"abc\"xyz' "
            "reads abcxyz) and strict readers reject the line: the same file would read differently in different tools."),
)

# frictionless' error types that civharm reports, as frictionless/<type>: title and description are
# frictionless' own (its error classes), so the catalogue lists them beside ours. A type not listed
# here that frictionless raises is still reported; the catalogue test then names it.
FRICTIONLESS_TYPES = ("blank-label", "blank-row", "constraint-error", "duplicate-label", "encoding-error", "extra-cell",
                      "extra-label", "foreign-key", "incorrect-label", "missing-cell", "missing-label", "package-error", "primary-key", "source-error",
                      "resource-error", "type-error", "unique-error")
_FRICTIONLESS_ERRORS = {getattr(c, "type", None): c for c in vars(ferrors).values() if isinstance(c, type)}
RULES.update(declare(*(
    Rule(f"frictionless/{kind}", Severity.ERROR, _FRICTIONLESS_ERRORS[kind].description,
         f"Table Schema, checked as frictionless 5 checks it ({_FRICTIONLESS_ERRORS[kind].title}).")
    for kind in FRICTIONLESS_TYPES)))


def _wording(kind: str, title: str, cell, note: str, field: dict | None, line_of=None) -> str:
    """A sentence that quotes the bad value and says what was expected."""
    quoted = quote(cell) if cell not in (None, "") else "an empty cell"
    if kind == "type-error":
        expected = field["type"] if field else note
        hint = " (YYYY-MM-DD)" if expected == "date" else ""
        return f"{quoted} is not a valid {expected}{hint}"
    if kind == "constraint-error":
        match = _CONSTRAINT.search(note)
        name, value = (match["name"], match["value"]) if match else ("", note)
        if name == "required":
            return "a value is required"
        if name == "enum":
            return f"{quoted} is not an allowed value; allowed: {', '.join(map(str, (field or {}).get('constraints', {}).get('enum', [])))}"
        if name == "pattern":
            if field and "civharm:definitions" in field:
                allowed = ", ".join(field["civharm:definitions"])
                return f"{quoted} is not a list of allowed values separated by ';'; allowed: {allowed}"
            return f"{quoted} does not match the pattern {value}"
        if name in ("minimum", "minLength"):
            return f"{quoted} is below the {name} {value}"
        if name in ("maximum", "maxLength"):
            return f"{quoted} is above the {name} {value}"
        return f"{quoted} breaks the constraint {name} = {value}"
    position = _POSITION.search(note)
    if kind in ("unique-error", "primary-key") and position:
        line = line_of(int(position["row"]) - 2) if line_of is not None else position["row"]
        if kind == "primary-key":
            return f"duplicate primary key: the same as on line {line}"
        return f"duplicate value {quoted}: the same as on line {line}"
    if kind == "foreign-key":
        return note[0].upper() + note[1:] if note else "foreign key not found"
    title = title.rstrip(".").lower()
    if cell not in (None, ""):
        return f"{title}: {quoted}" + (f" ({note})" if note else "")
    return f"{title}: {note}" if note else title


def _message(error, resource: Resource | None = None) -> str:
    field = None
    if resource is not None and getattr(error, "field_name", None) in resource.field_names:
        field = resource.field(error.field_name)
    return _wording(error.type, error.title, getattr(error, "cell", None), getattr(error, "note", "") or "",
                    field, resource.line_of if resource is not None else None)


def _loadable(package: Package) -> list[Resource]:
    return [r for r in package.resources.values() if r.raw is not None and r.schema]


def _frictionless_descriptor(package: Package, names: set[str]) -> dict:
    descriptor = dict(package.descriptor)
    descriptor["resources"] = [dict(spec) for spec in package.descriptor["resources"]
                               if isinstance(spec, dict) and spec.get("name") in names]
    for spec in descriptor["resources"]:
        spec["schema"] = _checked_schema(package, package[spec["name"]])
    return descriptor


def _checked_schema(package: Package, resource: Resource) -> dict:
    """The schema without foreign keys into tables the package lists but whose rows were not read.

    That table's own finding says why; checked against it, frictionless would call it missing.
    """
    unread = set(package.resources) - {r.name for r in _loadable(package)}
    keys = resource.schema.get("foreignKeys")
    if not unread or not isinstance(keys, list):
        return resource.schema
    kept = [fk for fk in keys if not (isinstance(fk, dict) and isinstance(fk.get("reference"), dict)
                                       and fk["reference"].get("resource") in unread)]
    return {**resource.schema, "foreignKeys": kept} if len(kept) < len(keys) else resource.schema


def check(package: Package) -> list[Finding]:
    """Validate every readable resource against its Table Schema (vectorised; frictionless for odd files)."""
    loadable = _loadable(package)
    if not loadable:
        return []
    tables = _compile(package, loadable)
    if tables is None:
        findings = check_with_frictionless(package)
        return findings + _date_findings(loadable, findings)
    findings: list[Finding] = []
    keys = {name: table.key_columns() for name, table in tables.items()}
    for table in tables.values():
        findings += table.cell_findings()
        findings += table.unique_findings()
        findings += table.primary_key_findings()
        findings += table.foreign_key_findings(keys)
    return findings + _date_findings(loadable, findings)


def _date_findings(loadable: list[Resource], schema_findings: list[Finding]) -> list[Finding]:
    """structure/date-format for each date cell frictionless reads but that is not written YYYY-MM-DD;
    structure/date-out-of-range for each written so but outside EARLIEST_DAY to LATEST_DAY.

    A cell frictionless rejects already has its type error and gets no second finding.
    """
    rule, outside_rule = RULES["structure/date-format"], RULES["structure/date-out-of-range"]
    mistyped = {(f.file, f.line, f.field) for f in schema_findings if f.rule_id == "frictionless/type-error"}
    findings = []
    for resource in loadable:
        if len(set(resource.header)) != len(resource.header):
            continue  # a repeated column: frictionless reports it, and its cells cannot be told apart
        for spec, column in _date_columns(resource):
            missing = spec.get("missingValues", resource.schema.get("missingValues", [""]))
            missing = [str(v) for v in missing] if isinstance(missing, list) else [""]
            cells = arrow_text(column)
            absent = _mask(pc.is_in(cells, value_set=pa.array(missing, pa.large_string()))) | _mask(pc.is_null(cells))
            spelled = date_spelled(cells)
            odd = ~spelled & ~absent
            for index in np.flatnonzero(odd):
                line = resource.line_of(int(index))
                if (resource.path, line, spec["name"]) not in mistyped:
                    findings.append(Finding(resource.path, line, spec["name"], rule.id,
                                            f"{quote(column.iat[index])} is not written YYYY-MM-DD in ASCII digits (e.g. 2024-03-04)", rule.severity))
            outside = spelled & outside_days(cells)
            for index in np.flatnonzero(outside):
                line = resource.line_of(int(index))
                if (resource.path, line, spec["name"]) not in mistyped:
                    findings.append(Finding(resource.path, line, spec["name"], outside_rule.id, outside_message(column.iat[index]), outside_rule.severity))
    return findings


def _date_columns(resource: Resource):
    """(field, cells) of each date field present in the file."""
    for spec in resource.schema.get("fields", []):
        if isinstance(spec, dict) and spec.get("type") == "date" and spec.get("name") in resource.frame.columns:
            yield spec, resource.frame[spec["name"]]


def check_with_frictionless(package: Package) -> list[Finding]:
    """The oracle: stock frictionless 5 over the same descriptor, error limit raised.

    frictionless gives up on a whole package when one schema is invalid, and stops checking
    a table whose foreign keys point into an unreadable file. So each table is also checked
    on its own (foreign keys left out), and every problem of every table is reported.
    """
    loadable = _loadable(package)
    if not loadable:
        return []
    with _long_rows_cut(package, loadable) as (basepath, cut, labels_left_out):
        findings = _check_with_frictionless(package, loadable, basepath)
    return [_noting_cut_cells(f, cut) for f in findings] + [_labels_left_out(path, *counts) for path, counts in labels_left_out.items()]


LONG_ROW = 100  # surplus cells of one row beyond which frictionless gets the row cut to one surplus cell


@contextmanager
def _long_rows_cut(package: Package, loadable: list[Resource]):
    """Yield (folder for frictionless to read, {(file, line): surplus cells}, {file: (extra labels, labels left out)}).

    frictionless builds one error per surplus cell or extra label and copies the whole row or
    header into each: quadratic, so 20,000 of either take minutes and gigabytes. A row with
    more than LONG_ROW surplus cells is handed over with one; a header with more than
    EXTRA_LABELS_KEPT extra labels with that many, and every row cut to the same width (a
    summary finding then counts the labels left out). This happens in a copy of the data
    files; other files and rows are copied byte for byte.
    """
    copies = {resource.name: _cut_copy(resource) for resource in loadable}
    if all(raw is None for raw, _, _ in copies.values()):
        yield package.root, {}, {}
        return
    cut: dict[tuple[str, int], int] = {}
    labels_left_out: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="civharm-") as folder:
        for resource in loadable:
            raw, rows, labels = copies[resource.name]
            target = Path(folder) / resource.path  # a loadable resource's path is a safe relative one
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(resource.raw if raw is None else raw)
            cut.update(rows)
            if labels:
                labels_left_out[resource.path] = (len(resource.header) - len(resource.field_names), labels)
        yield folder, cut, labels_left_out


def _cut_copy(resource: Resource) -> tuple[bytes | None, dict[tuple[str, int], int], int]:
    """(the file with its long header and long rows cut, or None when nothing is; {(file, line): surplus cells}; labels left out).

    Only records on one physical line are cut: a record over several lines is left whole
    (slow, but its line numbers stay right).
    """
    extra = len(resource.header) - len(resource.field_names)
    long_rows = sorted(i for i, n in resource.surplus.items() if n > LONG_ROW)
    if extra <= EXTRA_LABELS_KEPT and not long_rows:
        return None, {}, 0
    lines = resource.raw.splitlines(keepends=True)
    left_out = extra - EXTRA_LABELS_KEPT if extra > EXTRA_LABELS_KEPT and len(_cells(lines[0])) == len(resource.header) else 0
    if not left_out and not long_rows:
        return None, {}, 0
    width = len(resource.header) - left_out  # the labels frictionless is given
    candidates = range(len(resource.lines)) if left_out else long_rows
    cut: dict[tuple[str, int], int] = {}
    if left_out:
        lines[0] = _joined(_cells(lines[0])[:width], lines[0])
    for index in candidates:
        first = resource.lines[index] - 1
        last = resource.lines[index + 1] - 1 if index + 1 < len(resource.lines) else len(lines)
        if last - first != 1 or lines[first].count(b",") < width:
            continue  # over several lines, or too few commas to have more than ``width`` cells
        cells = _cells(lines[first])
        if len(cells) > len(resource.header):
            cut[(resource.path, resource.lines[index])] = len(cells) - len(resource.header)
            lines[first] = _joined(cells[: width + 1], lines[first])
        elif len(cells) > width:
            lines[first] = _joined(cells[:width], lines[first])
    return b"".join(lines), cut, left_out


def _cells(line: bytes) -> list[str]:
    """The cells of one physical CSV line."""
    text = line.decode("utf-8", errors="replace")
    return next(csv.reader([text.rstrip("\r\n")]), [])


def _joined(cells: list[str], line: bytes) -> bytes:
    """``cells`` written back as one CSV line, with ``line``'s own ending."""
    text = line.decode("utf-8", errors="replace")
    out = io.StringIO()
    csv.writer(out, lineterminator=text[len(text.rstrip("\r\n")):]).writerow(cells)
    return out.getvalue().encode("utf-8")


def _labels_left_out(path: str, extra: int, left_out: int) -> Finding:
    """The summary that stands for the extra labels not listed one by one."""
    return Finding(path, 1, None, "frictionless/extra-label",
                   f"and {left_out:,} more extra labels, not listed one by one (the header has {extra:,} labels beyond the "
                   f"schema's fields; cells missing under them are reported for the first {EXTRA_LABELS_KEPT} only)")


def _noting_cut_cells(finding: Finding, cut: dict[tuple[str, int], int]) -> Finding:
    extra = cut.get((finding.file, finding.line))
    if extra is None or finding.rule_id != "frictionless/extra-cell":
        return finding
    return finding._replace(message=f"{finding.message} (the row has {extra:,} cells more than the header; they are reported once)")


def _check_with_frictionless(package: Package, loadable: list[Resource], basepath) -> list[Finding]:
    findings: list[Finding] = []
    descriptor = _frictionless_descriptor(package, {r.name for r in loadable})
    report = _validate(package, descriptor, basepath)
    # package-level properties frictionless refuses: reported once, at their pointers; the tables are checked without them
    refused = {f.pointer.split("/")[1].replace("~1", "/").replace("~0", "~") for f in report
               if f.pointer and not f.pointer.startswith("/resources/")} if isinstance(report, list) else set()
    if refused:
        findings += report
        report = _validate(package, {k: v for k, v in descriptor.items() if k not in refused}, basepath)
    if isinstance(report, list):
        findings += report
    else:
        findings += _task_findings(package, report)
    for resource in loadable:
        alone = {k: v for k, v in _frictionless_descriptor(package, {resource.name}).items() if k not in refused}
        for spec in alone["resources"]:
            spec["schema"] = {k: v for k, v in spec["schema"].items() if k != "foreignKeys"}
        single = _validate(package, alone, basepath)
        if isinstance(single, list):  # a failure frictionless names no property of: on the table's schema, as before
            findings += [f if f.pointer else Finding(resource.schema_path or DESCRIPTOR, None, None, f.rule_id, f.message, pointer="")
                         for f in single]
        else:
            findings += _task_findings(package, single)
    if any(f.file != DESCRIPTOR or f.pointer for f in findings):  # a package-level failure is explained by the located ones
        findings = [f for f in findings if not (f.file == DESCRIPTOR and f.pointer == "")]
    return list(dict.fromkeys(findings))


def _validate(package: Package, descriptor: dict, basepath):
    """frictionless' report, or the findings of a descriptor it refuses (``_refusal_findings``)."""
    with system.use_context(trusted=False):
        try:
            return frictionless.Package(descriptor, basepath=str(basepath)).validate(limit_errors=ERROR_LIMIT)
        except frictionless.FrictionlessException as exc:
            return _refusal_findings(package, descriptor, exc)


_AT_PROPERTY = re.compile(r"(?P<note>.*) at property '(?P<path>.*)'", re.S)


def _refusal_findings(package: Package, descriptor: dict, exc) -> list[Finding]:
    """Each reason frictionless gives for refusing a descriptor, at datapackage.json and the JSON pointer of the
    property it names ('licenses' of the package; 'title' of the one resource checked alone); a reason that names
    no property found in datapackage.json is one finding at pointer "" (the caller places it)."""
    error, found, unplaced = exc.error, [], False
    for reason in exc.reasons or [error]:
        match = _AT_PROPERTY.fullmatch(reason.note or "")
        base: list = []
        if match and reason.type == "resource-error" and len(descriptor.get("resources", [])) == 1:
            names = [spec.get("name") if isinstance(spec, dict) else None for spec in package.descriptor.get("resources", [])]
            base = ["resources", names.index(descriptor["resources"][0]["name"])]
        parts = _member(package.descriptor, base + match["path"].split("/")) if match and (base or reason.type == "package-error") else None
        if not parts:
            unplaced = True
            continue
        field = next((part for part in reversed(parts) if isinstance(part, str)), None)
        found.append(Finding(DESCRIPTOR, None, field, f"frictionless/{error.type}",
                             _wording(error.type, error.title, None, match["note"], None), pointer=json_pointer(*parts)))
    if unplaced or not found:
        found.append(Finding(DESCRIPTOR, None, None, f"frictionless/{error.type}", _message(error), pointer=""))
    return found


def _member(node, parts: list) -> list | None:
    """``parts`` with list positions as numbers, when they name a member of ``node``; else None."""
    resolved = []
    for part in parts:
        if isinstance(node, list) and str(part).isdigit() and int(part) < len(node):
            part = int(part)
        elif not (isinstance(node, dict) and isinstance(part, str) and part in node):
            return None
        node = node[part]
        resolved.append(part)
    return resolved


def _task_findings(package: Package, report) -> list[Finding]:
    findings: list[Finding] = []
    for task in report.tasks:
        resource = package.get(task.name)
        path = resource.path if resource else task.name
        for error in task.errors:
            row = getattr(error, "row_number", None)
            field = getattr(error, "field_name", None) or ",".join(getattr(error, "field_names", None) or []) or None
            if error.type == "primary-key" and resource is not None:
                field = ",".join(resource.schema.get("primaryKey", [])) or None
            if row is None:
                if error.type in ("schema-error", "field-error"):
                    findings.append(Finding(resource.schema_path or DESCRIPTOR, None, field, f"frictionless/{error.type}", _message(error), pointer=""))
                elif error.type in ("blank-header", "duplicate-label", "extra-label", "missing-label", "incorrect-label", "blank-label"):
                    findings.append(Finding(path, 1, field or getattr(error, "label", None), f"frictionless/{error.type}", _message(error)))
                elif error.type == "resource-error":  # the descriptor is at fault (a foreign key into a missing table)
                    names = [r.get("name") for r in package.descriptor.get("resources", []) if isinstance(r, dict)]
                    pointer = f"/resources/{names.index(task.name)}" if task.name in names else ""
                    findings.append(Finding(DESCRIPTOR, None, field, f"frictionless/{error.type}", _message(error), pointer=pointer))
                else:  # the file as a whole (empty, unreadable, wrong encoding): named, at its first line
                    findings.append(Finding(path, 1, field, f"frictionless/{error.type}", _message(error)))
                continue
            findings.append(Finding(path, resource.line_of(row - 2) if resource else row, field, f"frictionless/{error.type}", _message(error, resource)))
    return findings


# --- compiling: decide whether the vectorised path applies, and prepare each table ------------


def _plain_csv(raw: bytes) -> bool:
    """True when frictionless would read the file as plain comma-separated UTF-8 without a BOM."""
    if raw.startswith(b"\xef\xbb\xbf") or not is_utf8(raw):
        return False
    text = raw[: 1 << 20].decode("utf-8", errors="ignore")  # the cut may split the last character
    sample = "".join(text.splitlines(keepends=True)[:100])
    try:
        dialect = csv.Sniffer().sniff(sample, ",\t;|")
    except csv.Error:
        return True  # frictionless falls back to the excel dialect
    return dialect.delimiter == "," and not dialect.skipinitialspace and dialect.escapechar is None


def _compile(package: Package, loadable: list[Resource]) -> dict[str, "_Table"] | None:
    """One prepared table per resource, or None when frictionless itself must judge the package."""
    names = {r.name for r in loadable}
    specs = {spec.get("name"): spec for spec in package.descriptor.get("resources", []) if isinstance(spec, dict)}
    if any(f.rule_id == "package/unreadable-csv" for f in package.findings):
        return None
    if not frictionless.Package.validate_descriptor(_frictionless_descriptor(package, names)).valid:
        return None
    schemas = {}
    referenced: dict[str, set[str]] = {r.name: set() for r in loadable}  # fields other tables look up
    for resource in loadable:
        spec = specs.get(resource.name, {})
        if set(spec) - _SPEC_KEYS or spec.get("format", "csv") != "csv":
            return None
        if str(spec.get("encoding", "utf-8")).lower().replace("-", "") != "utf8":
            return None
        if resource.ragged or resource.header != resource.field_names or not _plain_csv(resource.raw):
            return None
        schema = frictionless.Schema.from_descriptor(_checked_schema(package, resource))
        if not set(schema.primary_key) <= set(resource.field_names):
            return None
        for fk in schema.foreign_keys:
            target = fk["reference"].get("resource") or resource.name
            if target not in names or not set(fk["fields"]) <= set(resource.field_names):
                return None
            if not set(fk["reference"]["fields"]) <= set(package[target].field_names):
                return None
            if len(fk["fields"]) != len(fk["reference"]["fields"]):
                return None
            referenced[target] |= set(fk["reference"]["fields"])
        schemas[resource.name] = schema
    return {r.name: _Table(r, schemas[r.name], referenced[r.name]) for r in loadable}


def _contiguous(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _occurs_in(key: pa.Array, values: pa.Array) -> np.ndarray:
    """Which cells of ``key`` occur among ``values`` (distinct values, no nulls).

    Arrow's ``is_in`` builds a hash table of its value set: when the key has fewer distinct
    cells than the referenced column (a sparse ``superseded_by``, the damage table's report
    IDs), the distinct keys are hashed and the referenced values probed against them.
    """
    distinct = pc.unique(pc.drop_null(key))
    if len(distinct) < len(values) // 2:
        hits = pc.index_in(values, value_set=distinct)
        values = distinct.take(pc.unique(pc.drop_null(hits)))
    return _mask(pc.is_in(key, value_set=values))


def _plain_integers(values, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cells that are plain integers, their values; 0 elsewhere).

    First one cast of the column, kept when no present cell has a leading zero (hex, which the
    cast reads and frictionless does not, starts with one); else a pattern per cell.
    What is not plain goes to frictionless' reader.
    """
    numbers = plain_integers(pc.if_else(pa.array(~missing), values, "0"))
    if numbers is not None:
        return ~missing, numbers.to_numpy(zero_copy_only=False)
    fast = ~missing & _mask(pc.match_substring_regex(values, r"^-?[0-9]{1,18}$"))
    return fast, pc.cast(pc.if_else(pa.array(fast), values, "0"), pa.int64()).to_numpy(zero_copy_only=False)


def _plain_dates(values, missing: np.ndarray) -> bool:
    """Whether every present cell is a real day written YYYY-MM-DD, as frictionless' strptime reads it,
    from EARLIEST_DAY to LATEST_DAY (a day outside goes to frictionless' reader; ``_date_findings`` reports it).

    Arrow's cast reads exactly that spelling; year 0, which it also reads, strptime does not.
    """
    return plain_dates(pc.if_else(pa.array(~missing), values, "2000-01-01")) is not None


def _mask(array) -> np.ndarray:
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _decimal_key(value) -> str:
    return str(value.normalize()) if isinstance(value, Decimal) else repr(value)


@dataclass
class _Column:
    """What the checks learnt about one field: findings per row, and the value each row holds."""

    errors: list[tuple[int, str, str]]  # (row index, error type, note)
    key: pa.Array | None  # key fields only: typed value as a comparable string (null when empty or mistyped)
    missing: np.ndarray

    @cached_property
    def distinct(self) -> pa.Array:
        """The key's distinct values, nulls left out: hashed once for its uniqueness and for foreign keys into it."""
        return pc.unique(pc.drop_null(self.key))

    def all_distinct(self) -> bool:
        """Whether no key value repeats (the common case, which then needs no search for repeats)."""
        return len(self.distinct) == len(self.key) - self.key.null_count


class _Table:
    """One resource's schema compiled into column operations."""

    def __init__(self, resource: Resource, schema: frictionless.Schema, referenced: set[str]):
        self.resource = resource
        self.schema = schema
        self.key_fields = self._key_fields() | referenced  # only these keep their values (memory)
        self.n = len(resource.frame)
        self.lines = np.asarray(resource.lines[: self.n] if len(resource.lines) >= self.n else range(2, self.n + 2))
        self.columns: dict[str, _Column] = {}
        self.readers = {}
        for field in schema.fields:
            self.columns[field.name] = self._column(field)

    # -- cells ---------------------------------------------------------------------------

    def _reader(self, field):
        if field.name not in self.readers:
            self.readers[field.name] = field.create_cell_reader()
        return self.readers[field.name]

    def _column(self, field) -> _Column:
        values = arrow_text(self.resource.frame[field.name])
        missing_values = field.missing_values if field.has_defined("missing_values") else self.schema.missing_values
        missing = np.zeros(self.n, dtype=bool)
        for spelling in {str(v) for v in missing_values}:  # one or two: a comparison each is cheaper than a hash lookup
            missing |= _mask(pc.equal(values, pa.scalar(spelling, pa.large_string())))
        constraints = dict(field.constraints)
        errors: list[tuple[int, str, str]] = []
        if constraints.get("required"):
            note = f'constraint "required" is "{constraints["required"]}"'
            errors += [(int(i), "constraint-error", note) for i in np.flatnonzero(missing)]
        fast, key = self._fast(field, values, missing, constraints, errors)
        residual = ~missing & ~fast
        if residual.any():
            key = self._slow(field, values, residual, key, errors)
        if field.name in self.key_fields:
            key = pc.if_else(pa.array(missing, pa.bool_()), pa.scalar(None, pa.large_string()), key)
        else:
            key = None
        return _Column(errors, key, missing)

    def _fast(self, field, values, missing, constraints, errors):
        """Vectorised types and constraints for the common spellings; returns (handled rows, keys)."""
        nothing = np.zeros(self.n, dtype=bool)
        null_keys = pa.nulls(self.n, pa.large_string())
        if field.type == "string" and field.format == "default":
            fast = ~missing
            if "pattern" in constraints:
                printable = _mask(pc.ascii_is_printable(values))  # ' ' to '~' only (true when empty)
                try:
                    matched = _mask(pc.match_substring_regex(values, f"^(?:^{constraints['pattern']}$)"))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    printable, matched = nothing, nothing
                fast = fast & printable
                self._flag(errors, fast & ~matched, field, "pattern")
            if "enum" in constraints:
                allowed = [v for v in map(field.create_value_reader(), constraints["enum"]) if isinstance(v, str)]
                self._flag(errors, fast & ~_mask(pc.is_in(values, value_set=pa.array(allowed, pa.large_string()))), field, "enum")
            if "minLength" in constraints or "maxLength" in constraints:
                length = pc.utf8_length(values).to_numpy(zero_copy_only=False)
                if "minLength" in constraints:
                    self._flag(errors, fast & (length < constraints["minLength"]), field, "minLength")
                if "maxLength" in constraints:
                    self._flag(errors, fast & (length > constraints["maxLength"]), field, "maxLength")
            return fast, values
        plain = not any(field.has_defined(p) for p in ("bare_number", "group_char", "decimal_char", "float_number"))
        reader = field.create_value_reader()
        bounds = {name: reader(constraints[name]) for name in _BOUNDS if name in constraints}
        if field.type == "integer" and plain and all(isinstance(b, int) for b in bounds.values()):
            enum = [reader(v) for v in constraints.get("enum", [])]
            if not all(isinstance(v, int) and -(2**63) <= v < 2**63 for v in enum):
                return nothing, null_keys
            fast, numbers = _plain_integers(values, missing)
            self._bounds(errors, fast, numbers, bounds, field)
            if "enum" in constraints:
                self._flag(errors, fast & ~np.isin(numbers, np.array(enum, dtype=np.int64)), field, "enum")
            if field.name not in self.key_fields:
                return fast, null_keys
            prefix, empty = pa.scalar("integer:", pa.large_string()), pa.scalar("", pa.large_string())
            return fast, pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.large_string()), empty)
        is_key = field.name in self.key_fields
        if field.type == "number" and plain and not is_key and "enum" not in constraints \
                and all(isinstance(b, int) and abs(b) < 2**53 for b in bounds.values()):
            # Up to 15 significant digits a decimal maps to a distinct float, so comparing
            # floats with integer bounds gives the same answer as frictionless' Decimal.
            simple = pc.and_(pc.match_substring_regex(values, r"^-?[0-9]+(\.[0-9]+)?$"), pc.less_equal(pc.utf8_length(values), 16))
            fast = ~missing & _mask(simple)
            numbers = pc.cast(pc.if_else(pa.array(fast), values, "0"), pa.float64()).to_numpy()
            self._bounds(errors, fast, numbers, bounds, field)
            return fast, null_keys
        if field.type == "date" and field.format == "default" and not is_key and set(constraints) <= {"required"} \
                and _plain_dates(values, missing):
            return ~missing, null_keys
        return nothing, null_keys

    def _key_fields(self) -> set[str]:
        names = set(self.schema.primary_key)
        names |= {f.name for f in self.schema.fields if f.constraints.get("unique")}
        for fk in self.schema.foreign_keys:
            names |= set(fk["fields"])
        return names

    def _bounds(self, errors, fast, numbers, bounds, field):
        tests = {"minimum": np.less, "maximum": np.greater, "exclusiveMinimum": np.less_equal, "exclusiveMaximum": np.greater_equal}
        for name, bound in bounds.items():
            self._flag(errors, fast & tests[name](numbers, bound), field, name)

    def _flag(self, errors, rows: np.ndarray, field, name: str) -> None:
        note = f'constraint "{name}" is "{field.constraints[name]}"'
        errors += [(int(i), "constraint-error", note) for i in np.flatnonzero(rows)]

    def _slow(self, field, values, residual, key, errors):
        """frictionless' own reader, once per distinct value the fast path left over."""
        rows = np.flatnonzero(residual)
        encoded = pc.dictionary_encode(_contiguous(values.take(pa.array(rows))))
        reader = self._reader(field)
        keys, bad = [], {}
        for code, cell in enumerate(encoded.dictionary.to_pylist()):
            value, notes = reader(cell)
            if notes:
                bad[code] = [("type-error" if name == "type" else "constraint-error", note) for name, note in notes.items()]
            if value is None or (notes and "type" in notes):
                keys.append(None)
            elif field.type == "string":
                keys.append(value)
            elif field.type == "number":
                keys.append(f"number:{_decimal_key(value)}")
            else:
                keys.append(f"{field.type}:{value}")
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        if bad:
            for position in np.flatnonzero(np.isin(codes, list(bad))):
                errors += [(int(rows[position]), kind, note) for kind, note in bad[codes[position]]]
        if field.name not in self.key_fields or (field.type == "string" and key is values):
            return key  # not a key; or a string, whose value is its cell
        slow_keys = pa.array(keys, pa.large_string()).take(encoded.indices)
        return pc.replace_with_mask(_contiguous(key), pa.array(residual), slow_keys)

    def _finding(self, index: int, field: str | None, kind: str, message: str) -> Finding:
        return Finding(self.resource.path, int(self.lines[index]), field, f"frictionless/{kind}", message)

    def _line_of(self, index: int) -> int:
        return int(self.lines[index]) if 0 <= index < self.n else index + 2

    def _blank_rows(self) -> np.ndarray:
        blank = np.ones(self.n, dtype=bool)
        for column in self.columns.values():
            blank &= column.missing
        return blank if self.columns else np.zeros(self.n, dtype=bool)

    def cell_findings(self) -> list[Finding]:
        blank = self._blank_rows()
        frame = self.resource.frame
        findings = []
        for name, column in self.columns.items():
            spec = self.resource.field(name)
            cells = frame[name]
            for index, kind, note in column.errors:
                if blank[index]:
                    continue
                cell = cells.iat[index]
                title = "Type Error" if kind == "type-error" else "Constraint Error"
                findings.append(self._finding(index, name, kind, _wording(kind, title, str(cell), note, spec, self._line_of)))
        title = ferrors.BlankRowError.title
        findings += [self._finding(int(i), None, "blank-row", _wording("blank-row", title, None, "", None)) for i in np.flatnonzero(blank)]
        return findings

    # -- keys ------------------------------------------------------------------------------

    def key_columns(self) -> dict[str, _Column]:
        return {name: column for name, column in self.columns.items() if column.key is not None}

    def _display(self, name: str, index: int) -> str:
        """The cell as frictionless quotes it in a key error: str() of the typed value."""
        value, _ = self._reader(self.schema.get_field(name))(self.resource.frame[name].iat[index])
        return str(value)

    def _repeats(self, frame: pd.DataFrame) -> list[tuple[int, int]]:
        """(row, previous row with the same key) for every repeat, as frictionless reports them."""
        duplicated = frame.duplicated(keep=False).to_numpy()
        if not duplicated.any():
            return []
        subset = frame[duplicated]
        rows = pd.Series(np.flatnonzero(duplicated), index=subset.index)
        previous = rows.groupby([subset[c] for c in subset.columns], sort=False, dropna=False).shift(1)
        found = previous.notna().to_numpy()
        return list(zip(rows.to_numpy()[found].tolist(), previous.to_numpy()[found].astype(int).tolist()))

    def unique_findings(self) -> list[Finding]:
        findings = []
        for field in self.schema.fields:
            if not field.constraints.get("unique") or self.columns[field.name].all_distinct():
                continue
            key = self.columns[field.name].key
            present = ~_mask(pc.is_null(key))
            frame = pd.DataFrame({"k": key.to_pandas(types_mapper=pd.ArrowDtype)})[present]
            frame.index = np.flatnonzero(present)
            for row, previous in self._repeats_at(frame):
                note = f"the same as in the row at position {previous + 2}"
                message = _wording("unique-error", ferrors.UniqueError.title, self._display(field.name, row), note, None, self._line_of)
                findings.append(self._finding(row, field.name, "unique-error", message))
        return findings

    def _repeats_at(self, frame: pd.DataFrame) -> list[tuple[int, int]]:
        """_repeats over a frame indexed by original row, mapped back to those rows."""
        positions = frame.index.to_numpy()
        frame = frame.reset_index(drop=True)
        return [(int(positions[a]), int(positions[b])) for a, b in self._repeats(frame)]

    def primary_key_findings(self) -> list[Finding]:
        names = list(self.schema.primary_key)
        if not names:
            return []
        field = ",".join(names)
        title = ferrors.PrimaryKeyError.title
        all_none = np.logical_and.reduce([_mask(pc.is_null(self.columns[name].key)) for name in names])
        note = 'cells composing the primary keys are all "None"'
        findings = [self._finding(int(i), field, "primary-key", _wording("primary-key", title, None, note, None)) for i in np.flatnonzero(all_none)]
        if len(names) == 1 and self.columns[names[0]].all_distinct():
            return findings  # no repeats to search for: the key columns are not turned into a frame
        frame = pd.DataFrame({name: self.columns[name].key.to_pandas(types_mapper=pd.ArrowDtype) for name in names})
        frame = frame[~all_none]
        frame.index = np.flatnonzero(~all_none)
        for row, previous in self._repeats_at(frame):
            note = f"the same as in the row at position {previous + 2}"
            findings.append(self._finding(row, field, "primary-key", _wording("primary-key", title, None, note, None, self._line_of)))
        return findings

    def foreign_key_findings(self, keys: dict[str, dict[str, _Column]]) -> list[Finding]:
        findings = []
        for fk in self.schema.foreign_keys:
            local, remote = list(fk["fields"]), list(fk["reference"]["fields"])
            source_name = fk["reference"].get("resource") or ""
            source = keys[source_name or self.resource.name]
            if len(local) == 1:
                key = self.columns[local[0]].key
                checked = ~_mask(pc.is_null(key))
                found = _occurs_in(key, source[remote[0]].distinct) if checked.any() else np.zeros(self.n, dtype=bool)
            else:
                sentinel = "\x00None"
                here = pd.DataFrame({i: self.columns[n].key.to_pandas(types_mapper=pd.ArrowDtype) for i, n in enumerate(local)})
                there = pd.DataFrame({i: source[n].key.to_pandas(types_mapper=pd.ArrowDtype) for i, n in enumerate(remote)})
                there = there[~there.isna().all(axis=1)]
                checked = ~here.isna().all(axis=1).to_numpy()
                found = np.asarray(pd.MultiIndex.from_frame(here.astype(object).fillna(sentinel)).isin(
                    pd.MultiIndex.from_frame(there.astype(object).fillna(sentinel))), dtype=bool) if len(there) else np.zeros(self.n, dtype=bool)
            for index in np.flatnonzero(checked & ~found):
                cells = [self._display(n, int(index)) if self.columns[n].key[int(index)].is_valid else "None" for n in local]
                note = 'for "%s": values "%s" not found in the lookup table "%s" as "%s"' % (
                    ", ".join(local), ", ".join(cells), source_name, ", ".join(remote))
                findings.append(self._finding(int(index), ",".join(local), "foreign-key", _wording("foreign-key", "", None, note, None)))
        return findings
