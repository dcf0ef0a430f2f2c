"""``civharm add``: add one report (and its incident, source and damage) as a single change.

The contributor writes what the page says; this module fills in what can be derived (IDs,
status, record version, dates of the change, the incident's figures by the figure rule),
shows duplicate candidates for a new incident, validates the whole package as it would
be, and only then writes every file at once. Nothing is written when any step fails.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import duplicates, figures
from .atomic import FaultHook, os_error, write_files
from .diff import KEY_JOIN
from .findings import CivharmError, Finding, quote
from .ids import new_id
from .limits import read_bounded
from .package import MAX_CELL_CHARS, Package
from .validate import Options, run

AUTO_FIELDS = {"status", "record_version", "last_updated"}


@dataclass
class Submission:
    """What the contributor supplies; ``incident`` is an existing ID or the fields of a new incident."""

    report: dict
    incident: str | dict
    damage: list[dict] = field(default_factory=list)
    source: dict | None = None
    attach_to: str | None = None  # the duplicate candidate this statement describes: the report goes there, no new incident
    distinct_from: list["Decision"] = field(default_factory=list)  # one per candidate, when a new incident is made after all
    supersedes: list[str] = field(default_factory=list)  # earlier reports of the same originator this statement updates

    @classmethod
    def from_mapping(cls, data: object, where: str) -> "Submission":
        if not isinstance(data, dict):
            raise CivharmError(f"{where}: expected a mapping with 'report' and 'incident'")
        unknown = set(data) - set(KEYS)
        if unknown:
            raise CivharmError(f"{where}: unknown key(s): {', '.join(sorted(unknown))} (allowed: {', '.join(KEYS)})")
        if not isinstance(data.get("report"), dict):
            raise CivharmError(f"{where}: 'report' must be a mapping of report fields")
        incident = data.get("incident")
        if not isinstance(incident, (str, dict)):
            raise CivharmError(f"{where}: 'incident' must be an existing incident ID or a mapping of incident fields")
        damage = data.get("damage") or []
        if not isinstance(damage, list) or not all(isinstance(d, dict) for d in damage):
            raise CivharmError(f"{where}: 'damage' must be a list of mappings")
        source = data.get("source")
        if source is not None and not isinstance(source, dict):
            raise CivharmError(f"{where}: 'source' must be a mapping of source fields")
        attach_to = data.get("attach_to")
        if attach_to is not None and not isinstance(attach_to, str):
            raise CivharmError(f"{where}: 'attach_to' must be the ID of the candidate incident the statement describes")
        supersedes = data.get("supersedes") or []
        supersedes = [supersedes] if isinstance(supersedes, str) else supersedes
        if not isinstance(supersedes, list) or not all(isinstance(r, str) for r in supersedes):
            raise CivharmError(f"{where}: 'supersedes' must be a report ID or a list of report IDs")
        decisions = data.get("distinct_from") or []
        if not isinstance(decisions, list) or not all(isinstance(d, dict) and set(d) <= {"incident", "reason", "note"}
                                                      and all(isinstance(v, str) for v in d.values()) for d in decisions):
            raise CivharmError(f"{where}: 'distinct_from' must be a list of {{incident, reason, note}}, one per candidate")
        return cls(report=data["report"], incident=incident, damage=damage, source=source, attach_to=attach_to,
                   distinct_from=[Decision(d.get("incident", ""), d.get("reason", ""), d.get("note", ""), f"{where}: distinct_from[{i}]")
                                  for i, d in enumerate(decisions)], supersedes=supersedes)


@dataclass(frozen=True)
class Decision:
    """One pair told apart: the candidate incident, what tells them apart (a reason of the vocabulary) and a note."""

    incident: str
    reason: str
    note: str
    where: str = ""  # file:line of the decision in a submission, for messages


# --- reading a submission file: bounded, strictly typed -------------------------------------

MAX_SUBMISSION_BYTES = 1 << 20  # a submission is a few fields; a larger file is refused, not read to its end
MAX_DEPTH = 3  # the file's mapping → damage's list → one damage row; anything deeper is no submission
TABLES = {"report": "reports", "incident": "incidents", "source": "sources", "damage": "damage"}
DECISION_KEYS = ("attach_to", "distinct_from", "supersedes")  # what the contributor decided about candidates and earlier reports
KEYS = (*TABLES, *DECISION_KEYS)
NULLS = frozenset({"", "~", "null", "Null", "NULL"})  # an unquoted empty value: the cell stays empty
# How a value of each Table Schema type is written: the field's type decides, never YAML's guess
# (so 010 is not 8, 1:30 not 90, and a date-time title stays the text it is).
SPELLINGS = {
    "integer": (re.compile(r"-?(0|[1-9][0-9]*)"), True, "a whole number written plainly (digits, no leading zero, no quotes)"),
    "number": (re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?"), True, "a number written plainly (like 50.6034, no quotes)"),
    "date": (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"), False, "a date written YYYY-MM-DD"),
}


@dataclass(frozen=True)
class _Scalar:
    text: str
    plain: bool  # unquoted
    line: int


@dataclass
class _Mapping:
    line: int
    items: dict = field(default_factory=dict)
    key_lines: dict = field(default_factory=dict)
    pending: _Scalar | None = None  # a key waiting for its value


@dataclass
class _Sequence:
    line: int
    items: list = field(default_factory=list)


def _kind(node) -> str:
    return "a mapping" if isinstance(node, _Mapping) else "a list" if isinstance(node, _Sequence) else "text"


def _read_bounded(path: Path) -> str:
    """The file's text, reading at most one byte more than a submission may hold (so /dev/zero ends too)."""
    raw = read_bounded(path, MAX_SUBMISSION_BYTES)
    if raw is None:
        raise CivharmError(f"{path}: larger than {MAX_SUBMISSION_BYTES:,} bytes, the most a submission may hold")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CivharmError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})")


def _attach(parent, node, where: str) -> None:
    if isinstance(parent, _Sequence):
        parent.items.append(node)
    elif parent.pending is None:
        if not isinstance(node, _Scalar):
            raise CivharmError(f"{where}:{node.line}: a key must be a name, not {_kind(node)}")
        if node.text in parent.key_lines:
            raise CivharmError(f"{where}:{node.line}: {node.text!r} is given twice")
        parent.pending = node
    else:
        parent.items[parent.pending.text] = node
        parent.key_lines[parent.pending.text] = parent.pending.line
        parent.pending = None


def _parse(text: str, where: str):
    """The document as plain nodes, built from the YAML parser's events.

    No value is resolved by YAML's rules: every scalar stays the text written, with whether it
    was quoted, and the field it fills decides its type (``_value``). Aliases, anchors and tags
    are refused (so no "billion laughs" expansion), and nesting stops at ``MAX_DEPTH``. The
    parser is libyaml through PyYAML (already a dependency; ruamel.yaml's C mode runs the same
    parser, its pure-Python one is far slower on a large file); events carry each value's line.
    """
    import yaml

    stack: list = []
    root = None
    documents = 0
    try:
        for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent):
                raise CivharmError(f"{where}:{line}: YAML aliases (*{event.anchor}) are not accepted; write the value out")
            if getattr(event, "anchor", None):
                raise CivharmError(f"{where}:{line}: YAML anchors (&{event.anchor}) are not accepted; write each value out")
            if getattr(event, "tag", None):
                raise CivharmError(f"{where}:{line}: YAML tags ({event.tag}) are not accepted; quote a value to make it text")
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise CivharmError(f"{where}:{line}: a second YAML document; a submission is one document")
            elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(stack) == MAX_DEPTH:
                    raise CivharmError(f"{where}:{line}: nested deeper than a submission goes ({MAX_DEPTH} levels)")
                node = _Mapping(line) if isinstance(event, yaml.MappingStartEvent) else _Sequence(line)
                if stack:
                    _attach(stack[-1], node, where)
                stack.append(node)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                root = stack.pop()
            elif isinstance(event, yaml.ScalarEvent):
                node = _Scalar(event.value, not event.style, line)
                if stack:
                    _attach(stack[-1], node, where)
                else:
                    root = node
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark else ""
        raise CivharmError(f"{where}{at}: not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}")
    return root


def _value(node, kind: str, at: str) -> str | None:
    """A field's value as the cell text, if it is written as the field's type says; else a located error."""
    spelling, plain_only, expected = SPELLINGS.get(kind, (None, False, "text"))
    if not isinstance(node, _Scalar):
        raise CivharmError(f"{at}: expected {expected}, got {_kind(node)}")
    if node.plain and node.text in NULLS:
        return None
    if len(node.text) > MAX_CELL_CHARS:
        raise CivharmError(f"{at}: {len(node.text):,} characters; a cell holds at most {MAX_CELL_CHARS:,}")
    if spelling is not None and not (spelling.fullmatch(node.text) and (node.plain or not plain_only)):
        raise CivharmError(f"{at}: expected {expected}, got {'the quoted text ' if not node.plain else ''}{quote(node.text)}")
    if kind == "date":
        try:
            dt.date.fromisoformat(node.text)
        except ValueError:
            raise CivharmError(f"{at}: {quote(node.text)} is not a day of the calendar")
    return node.text


def _fields(node, resource, where: str, key: str) -> dict:
    """A mapping of one table's fields, each value typed by the field's Table Schema type."""
    if not isinstance(node, _Mapping):
        raise CivharmError(f"{where}:{node.line}: {key}: expected a mapping of {resource.name} fields, got {_kind(node)}")
    kinds = {f["name"]: f.get("type", "string") for f in resource.schema.get("fields", [])}
    values = {}
    for name, value in node.items.items():
        at = f"{where}:{node.key_lines[name]}: {key}.{name}"
        if name not in kinds:
            raise CivharmError(f"{at}: not a field of {resource.name} (see docs/codebook.md)")
        values[name] = _value(value, kinds[name], at)
    return values


def read_submission(path: Path, package: Package) -> Submission:
    """Read a YAML or JSON submission (JSON is YAML), each value checked against its field's type."""
    where = str(path)
    tree = _parse(_read_bounded(path), where)
    if not isinstance(tree, _Mapping):
        raise CivharmError(f"{where}: expected a mapping with 'report' and 'incident'")
    for key, line in tree.key_lines.items():
        if key not in KEYS:
            raise CivharmError(f"{where}:{line}: unknown key {key!r} (allowed: {', '.join(KEYS)})")
    missing = [name for name in TABLES.values() if package.get(name) is None or package[name].raw is None]
    if missing:
        raise CivharmError(f"the package lacks readable table(s) {', '.join(missing)}; run civharm validate")
    for key in ("report", "incident"):
        if key not in tree.items:
            raise CivharmError(f"{where}: {key!r} is missing")
    incident = tree.items["incident"]
    if isinstance(incident, _Scalar):
        incident = _value(incident, "string", f"{where}:{tree.key_lines['incident']}: incident")
        if incident is None:
            raise CivharmError(f"{where}:{tree.key_lines['incident']}: incident: give an existing incident ID or the fields of a new incident")
    else:
        incident = _fields(incident, package["incidents"], where, "incident")
    damage = tree.items.get("damage")
    if damage is None or (isinstance(damage, _Scalar) and damage.plain and damage.text in NULLS):
        rows = []
    elif isinstance(damage, _Sequence):
        rows = [_fields(row, package["damage"], where, f"damage[{i}]") for i, row in enumerate(damage.items)]
    else:
        raise CivharmError(f"{where}:{tree.key_lines['damage']}: damage: expected a list of damage rows, got {_kind(damage)}")
    source = tree.items.get("source")
    if source is not None and not (isinstance(source, _Scalar) and source.plain and source.text in NULLS):
        source = _fields(source, package["sources"], where, "source")
    else:
        source = None
    attach_to = tree.items.get("attach_to")
    if attach_to is not None:
        attach_to = _value(attach_to, "string", f"{where}:{tree.key_lines['attach_to']}: attach_to")
    supersedes = _report_ids(tree, where)
    return Submission(report=_fields(tree.items["report"], package["reports"], where, "report"),
                      incident=incident, damage=rows, source=source, attach_to=attach_to,
                      distinct_from=_decisions(tree, where), supersedes=supersedes)


def _report_ids(tree: _Mapping, where: str) -> list[str]:
    """``supersedes:``, one report ID or a list of them; absent or empty: none."""
    key = "supersedes"
    node = tree.items.get(key)
    if node is None:
        return []
    at = f"{where}:{tree.key_lines[key]}: {key}"
    if isinstance(node, _Scalar):
        value = _value(node, "string", at)
        return [value] if value else []
    if not isinstance(node, _Sequence):
        raise CivharmError(f"{at}: expected a list of report IDs, got {_kind(node)}")
    return [v for v in (_value(item, "string", f"{where}:{item.line}: {key}") for item in node.items) if v]


def _decisions(tree: _Mapping, where: str) -> list[Decision]:
    """``distinct_from``: a list of {incident, reason, note}, one per candidate pair (never one note for several)."""
    node = tree.items.get("distinct_from")
    if node is None or (isinstance(node, _Scalar) and node.plain and node.text in NULLS):
        return []
    at = f"{where}:{tree.key_lines['distinct_from']}: distinct_from"
    if not isinstance(node, _Sequence):
        raise CivharmError(f"{at}: expected a list of {{incident, reason, note}}, one per candidate, got {_kind(node)}")
    found = []
    for i, item in enumerate(node.items):
        here = f"{where}:{item.line}: distinct_from[{i}]"
        if not isinstance(item, _Mapping):
            raise CivharmError(f"{here}: expected a mapping with incident, reason and note, got {_kind(item)}")
        unknown = set(item.items) - {"incident", "reason", "note"}
        if unknown:
            raise CivharmError(f"{here}: unknown key(s) {', '.join(sorted(unknown))} (allowed: incident, reason, note)")
        values = {key: _value(item.items[key], "string", f"{where}:{item.key_lines[key]}: distinct_from[{i}].{key}")
                  for key in item.items}
        incident = values.get("incident")
        if not incident:
            raise CivharmError(f"{here}: incident: name the one candidate this decision is about")
        found.append(Decision(incident, values.get("reason") or "", values.get("note") or "", here))
    return found


@dataclass
class Plan:
    """The rows a submission adds or changes, and the files as they would be written."""

    incident_id: str
    report_id: str
    new_incident: bool
    candidates: list[duplicates.Candidate]
    files: dict[Path, str]
    changed_fields: list[str]
    root: Path  # the package folder: every file written lies in it
    tables: dict[str, list[dict]] = field(default_factory=dict, repr=False)  # every row as it would be written

    def other(self, candidate: duplicates.Candidate) -> str:
        """The candidate's incident that is not the new one."""
        return candidate.b if candidate.a == self.incident_id else candidate.a


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def _row(resource, values: dict, today: dt.date) -> dict:
    unknown = set(values) - set(resource.field_names)
    if unknown:
        raise CivharmError(f"{resource.name}: unknown field(s) {', '.join(sorted(unknown))}; see docs/codebook.md")
    row = {name: _text(values.get(name)) for name in resource.field_names}
    if "status" in row and not row["status"]:
        row["status"] = "active"
    if "record_version" in row:
        row["record_version"] = "1"
    if "last_updated" in row:
        row["last_updated"] = today.isoformat()
    return row


def _serialise(header: list[str], rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _records(resource) -> list[dict]:
    if len(resource.frame.columns) < len(resource.header):  # the loader kept only the first columns of a very wide header
        raise CivharmError(f"{resource.path}: the header has {len(resource.header):,} labels, too many to rewrite the file; "
                           "run civharm validate")
    return resource.frame.astype(object).to_dict("records") if not resource.frame.empty else []


def plan(package: Package, submission: Submission, today: dt.date) -> Plan:
    """Work out every row to add or change; touches no file."""
    missing = [name for name in ("incidents", "reports", "damage", "sources", "changes", "duplicate_decisions") if package.get(name) is None or package[name].raw is None or package[name].unread is not None]
    if missing:
        raise CivharmError(f"the package lacks readable table(s) {', '.join(missing)}; run civharm validate")
    tables = {name: _records(package[name]) for name in ("incidents", "reports", "damage", "sources", "changes")}
    report_id = new_id("reports")
    if submission.attach_to is not None:
        if not isinstance(submission.incident, dict):
            raise CivharmError(f"attach_to {submission.attach_to}: the report is already given to incident {submission.incident}; "
                               "attach_to is for a statement entered as a new incident that turns out to describe an existing one")
        if submission.distinct_from:
            raise CivharmError(f"attach_to {submission.attach_to} and distinct_from both given: the statement either describes "
                               "an existing incident (attach_to) or a new one told apart from each candidate (distinct_from)")
        submission = Submission(report=submission.report, incident=submission.attach_to, damage=submission.damage,
                                source=submission.source, supersedes=submission.supersedes)
    new_incident = isinstance(submission.incident, dict)
    if new_incident:
        incident = _row(package["incidents"], {**submission.incident, "incident_id": new_id("incidents")}, today)
        tables["incidents"].append(incident)
        incident_id = incident["incident_id"]
    else:
        incident_id = submission.incident
        if incident_id not in {r["incident_id"] for r in tables["incidents"]}:
            raise CivharmError(f"incident {incident_id} does not exist; give the fields of a new incident instead")
    if submission.source is not None:
        source_id = submission.source.get("source_id")
        if source_id in {r["source_id"] for r in tables["sources"]}:
            raise CivharmError(f"source {source_id!r} exists already; leave 'source' out and use source_id {source_id!r} in the report")
        tables["sources"].append(_row(package["sources"], submission.source, today))
    tables["reports"].append(_row(package["reports"], {**submission.report, "report_id": report_id, "incident_id": incident_id}, today))
    for earlier in submission.supersedes:
        supersede(tables, earlier, report_id, today)
    for damage in submission.damage:
        tables["damage"].append(_row(package["damage"], {**damage, "damage_id": new_id("damage"), "report_id": report_id}, today))
    changed = _apply_figure_rule(package, tables, incident_id, report_id, new_incident, today)
    candidates: list[duplicates.Candidate] = []
    if new_incident:
        typed = _typed_incidents(package, tables["incidents"])
        candidates = [c for c in duplicates.near_duplicates(typed) if incident_id in (c.a, c.b) and c.score >= duplicates.THRESHOLD]
    files = {package.root / package[name].path: _serialise(package[name].header, rows) for name, rows in tables.items()}
    original = {path: path.read_text(encoding="utf-8") for path in files}
    files = {path: text for path, text in files.items() if original[path] != text}
    return Plan(incident_id, report_id, new_incident, candidates, files, changed, package.root, tables)


def compare(built: Plan, other: str, sources: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """The new incident and a candidate side by side: (what, new, candidate) for dates, place, means, figures, sources."""
    rows = {r["incident_id"]: r for r in built.tables["incidents"]}
    new, old = rows[built.incident_id], rows.get(other, {})
    names = sources or {}

    def get(row, *names_):
        return " ".join(_text(row.get(n)) for n in names_ if _text(row.get(n))).strip()

    def dates(row):
        span = _text(row.get("date_start")) if row.get("date_start") == row.get("date_end") else f"{_text(row.get('date_start'))} to {_text(row.get('date_end'))}"
        return f"{span} ({get(row, 'date_precision')}, {get(row, 'date_basis')})" + (f" {row['time_of_day']}" if _text(row.get("time_of_day")) else "")

    def place(row):
        parts = [get(row, "locality_en") or get(row, "area") or "-", get(row, "subdivision_code")]
        if _text(row.get("geonames_id")):
            parts.append(f"GeoNames {row['geonames_id']}")
        if _text(row.get("site_type")):
            parts.append(" ".join(p for p in (row["site_type"], _text(row.get("site_detail"))) if p))
        return ", ".join(p for p in parts if p)

    def toll(row, kind):
        shown = []
        for who in ("civilians", "children", "all"):
            low, high = _text(row.get(f"{who}_{kind}_min")), _text(row.get(f"{who}_{kind}_max"))
            if low or high:
                shown.append(f"{who} {low if low == high else (f'{low} or more' if not high else (low or '?') + '-' + high)}")
        return ", ".join(shown) or "-"

    def pages(incident_id):
        found = [f"{names.get(r['source_id'], r['source_id'])} {r['url']}" for r in built.tables["reports"]
                 if r["incident_id"] == incident_id and r.get("status") == "active"]
        return "; ".join(found) or "-"

    return [("date", dates(new), dates(old)), ("place", place(new), place(old)),
            ("means", get(new, "means_of_harm"), get(old, "means_of_harm")),
            ("killed", toll(new, "killed"), toll(old, "killed")), ("injured", toll(new, "injured"), toll(old, "injured")),
            ("sources", pages(built.incident_id), pages(other))]


def reasons(package: Package) -> dict[str, str]:
    """The reasons a person may give for a distinct decision, with their definitions (schema/duplicate_decisions.json).

    Reasons the schema marks importer-only (an imported dataset's own distinction) are left out:
    a person says what the pages of both show.
    """
    for item in package["duplicate_decisions"].schema.get("fields", []):
        if item.get("name") == "reason":
            importer_only = set(item.get("civharm:importer_only", []))
            return {k: v for k, v in item.get("civharm:definitions", {}).items() if k not in importer_only}
    return {}


def undecided(built: Plan, decisions: list[Decision]) -> list[str]:
    """The candidate incidents the decisions do not tell apart from the new one."""
    named = {d.incident for d in decisions}
    return [built.other(c) for c in built.candidates if built.other(c) not in named]


def decide(package: Package, built: Plan, decisions: list[Decision], today: dt.date) -> None:
    """Record one distinct decision per candidate pair, each with its reason, note and fingerprint.

    Each decision names exactly one candidate; a candidate left without one, a decision for an
    incident that is no candidate, or a reason outside the vocabulary is refused: there is no
    way to record one note for several pairs.
    """
    if not built.new_incident:
        if decisions:
            raise CivharmError(f"{decisions[0].where or 'distinct_from'}: the report goes to an existing incident; no new incident to tell apart")
        return
    others = [built.other(c) for c in built.candidates]
    seen: set[str] = set()
    for decision in decisions:
        at = decision.where or f"distinct_from {decision.incident}"
        if decision.incident not in others:
            raise CivharmError(f"{at}: incident: {decision.incident} is not a duplicate candidate of this statement "
                               f"(candidates: {', '.join(others) or 'none'}); a decision is recorded for a candidate pair only")
        if decision.incident in seen:
            raise CivharmError(f"{at}: incident: {decision.incident} is decided twice")
        seen.add(decision.incident)
        _check_reason_and_note(package, decision.reason, decision.note, at)
    left = undecided(built, decisions)
    if left:
        raise CivharmError(f"no decision for candidate(s) {', '.join(left)}: attach the statement to the incident it describes "
                           "(attach_to), or tell the new incident apart from each candidate (distinct_from)")
    resource = package["duplicate_decisions"]
    basis = duplicates.rests_on(resource.schema)
    incidents = {r["incident_id"]: r for r in built.tables["incidents"]}
    rows = _records(resource)
    for decision in decisions:
        a, b = sorted((built.incident_id, decision.incident))
        rows.append(_row(resource, {"incident_a": a, "incident_b": b, "decision": "distinct", "reason": decision.reason,
                                    "note": decision.note.strip(),
                                    "fingerprint": duplicates.fingerprint(basis[decision.reason], incidents[a], incidents[b])}, today))
    built.files[package.root / resource.path] = _serialise(resource.header, rows)


def _check_reason_and_note(package: Package, reason: str, note: str, at: str) -> None:
    """A person's distinct decision names a reason of the vocabulary and says in a note what tells the two apart."""
    vocabulary = reasons(package)
    minimum = next((f.get("constraints", {}).get("minLength", 1) for f in package["duplicate_decisions"].schema.get("fields", [])
                    if f.get("name") == "note"), 1)
    if reason not in vocabulary:
        given = f"{reason!r} is not a reason" if reason else "no reason given"
        raise CivharmError(f"{at}: reason: {given}; say what tells the two apart: one of {', '.join(vocabulary)}")
    if len(note.strip()) < minimum:
        raise CivharmError(f"{at}: note: say in your words (at least {minimum} characters) what the pages of both say "
                           f"that tells them apart")


@dataclass
class PairDecision:
    """What ``decide_pair`` would write: the decision row (its line in the file) and the files."""

    pair: tuple[str, str]
    line: int
    fingerprint: str
    changed: list[str]  # fields of an existing decision that changed (empty for a new one)
    files: dict[Path, str]
    root: Path


def decide_pair(package: Package, first: str, second: str, reason: str, note: str, today: dt.date) -> PairDecision:
    """Record that two existing incidents, flagged as a near-duplicate pair, are two events: ``civharm decide``.

    The same checks as a decision made in ``add``: both incidents exist and are active, the
    pair is a candidate of the duplicate gate (a decision silences a finding; it is not a note
    on any pair), the reason is one of the vocabulary and the note says why. An existing
    decision for the pair (outdated by an edit, or retracted) is renewed in place, each
    changed field in the corrections log; a merged pair is refused. Touches no file.
    """
    missing = [name for name in ("incidents", "reports", "changes", "duplicate_decisions")
               if package.get(name) is None or package[name].raw is None or package[name].unread is not None]
    if missing:
        raise CivharmError(f"the package lacks readable table(s) {', '.join(missing)}; run civharm validate")
    a, b = sorted((first, second))
    if a == b:
        raise CivharmError(f"{a}: an incident is not a pair with itself; name two incidents")
    incidents = {_cell(r.get("incident_id")): r for r in _records(package["incidents"])}
    resource = package["incidents"]
    for incident in (a, b):
        if incident not in incidents:
            raise CivharmError(f"{resource.path}: no incident {incident}")
        if _cell(incidents[incident].get("status")) != "active":
            raise CivharmError(f"{resource.path}: incident {incident} is {_cell(incidents[incident].get('status')) or 'without status'}, "
                               "not active; only active incidents are compared")
    typed = package["incidents"].typed
    pair = typed[typed["incident_id"].isin([a, b]).to_numpy(dtype=bool)].drop_duplicates("incident_id")
    scored = duplicates.near_duplicates(pair, minimum=0.0, reports=package["reports"].typed)
    score = scored[0].score if scored else 0.0
    if score < duplicates.THRESHOLD:
        raise CivharmError(f"{a} and {b} are not a near-duplicate candidate (match probability {score:.2f}, below "
                           f"{duplicates.THRESHOLD}): there is no finding to decide; a decision is recorded for a candidate pair only")
    _check_reason_and_note(package, reason, note, "decision")
    decisions = package["duplicate_decisions"]
    tables = {"duplicate_decisions": _records(decisions), "changes": _records(package["changes"])}
    fingerprint = duplicates.fingerprint(duplicates.rests_on(decisions.schema)[reason], incidents[a], incidents[b])
    values = {"status": "active", "decision": "distinct", "reason": reason, "note": note.strip(), "fingerprint": fingerprint}
    key = KEY_JOIN.join((a, b))
    rows = tables["duplicate_decisions"]
    index = next((i for i, r in enumerate(rows) if record_key("duplicate_decisions", r) == key), None)
    changed: list[str] = []
    if index is None:
        rows.append(_row(decisions, {"incident_a": a, "incident_b": b, **values}, today))
        index = len(rows) - 1
        line = _serialise(decisions.header, rows[:-1]).count("\n") + 1  # a note may hold line breaks
    else:
        line = decisions.line_of(index)
        existing = rows[index]
        if _cell(existing.get("status")) == "active" and _cell(existing.get("decision")) == "merged":
            raise CivharmError(f"{decisions.path}:{line}: the pair {a}, {b} is decided merged (one event); "
                               "retract that decision first if the two are in fact different events")
        changed = correct(tables, "duplicate_decisions", key, values,
                          f"Distinct decision renewed ({reason}): the pair was checked against its pages again (civharm decide).", today)
        if not changed:
            raise CivharmError(f"{decisions.path}:{line}: the pair {a}, {b} is already decided distinct with this reason, "
                               "note and fingerprint; nothing to change")
    files = {package.root / decisions.path: _serialise(decisions.header, rows)}
    if changed:
        files[package.root / package["changes"].path] = _serialise(package["changes"].header, tables["changes"])
    return PairDecision((a, b), line, fingerprint, changed, files, package.root)


def _typed(package: Package, name: str, rows: list[dict]) -> pd.DataFrame:
    """The typed frame of a table as its rows would be (rows of cell text, as ``_records`` gives)."""
    resource = package[name]
    clone = type(resource)(name=resource.name, path=resource.path, schema=resource.schema, schema_path=resource.schema_path,
                           raw=b"", header=resource.header, frame=pd.DataFrame(rows, columns=resource.header, dtype="string"))
    return clone.typed


def _typed_incidents(package: Package, rows: list[dict]) -> pd.DataFrame:
    return _typed(package, "incidents", rows)


# --- corrections through the log: one API for supersession, recomputation and hand corrections ---

# the fields whose values, joined as the history gate joins a key (diff.KEY_JOIN), make a record's ID in the log
ID_FIELDS = {"incidents": ("incident_id",), "reports": ("report_id",), "damage": ("damage_id",), "sources": ("source_id",),
             "duplicate_decisions": ("incident_a", "incident_b")}


def record_key(table: str, row: dict) -> str:
    """The ID a corrections-log row gives a record of ``table`` (a pair's two incident IDs for a decision)."""
    return KEY_JOIN.join(_cell(row.get(name)) for name in ID_FIELDS[table])


def _cell(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def correct(tables: dict[str, list[dict]], table: str, record_id: str, values: dict[str, str], reason: str,
            today: dt.date, report_id: str = "") -> list[str]:
    """Set fields of one existing record the way the corrections log wants it; returns the fields that changed.

    The record's ``record_version`` goes up by one and ``last_updated`` becomes ``today``; one
    row per changed field is appended to ``tables["changes"]`` with ``reason`` and the report
    that justifies it. Values equal to the stored ones change nothing (no version, no log).
    """
    row = next((r for r in tables[table] if record_key(table, r) == record_id), None)
    if row is None:
        raise CivharmError(f"{table}: no record {record_id}")
    changed = [(name, _cell(row.get(name)), value) for name, value in values.items() if _cell(row.get(name)) != value]
    if not changed:
        return []
    unknown = [name for name, _, _ in changed if name not in row]
    if unknown:
        raise CivharmError(f"{table}: unknown field(s) {', '.join(unknown)}; see docs/codebook.md")
    if not re.fullmatch("[0-9]{1,9}", _cell(row.get("record_version"))):
        raise CivharmError(f"{table}: record {record_id} has no valid record_version; run civharm validate")
    version = str(int(row["record_version"]) + 1)
    for name, old, new in changed:
        row[name] = new
        tables["changes"].append({"change_id": new_id("changes"), "change_date": today.isoformat(), "table": table,
                                  "record_id": record_id, "record_version": version, "field": name, "old_value": old,
                                  "new_value": new, "reason": reason, "report_id": report_id})
    row["record_version"], row["last_updated"] = version, today.isoformat()
    return [name for name, _, _ in changed]


def supersede(tables: dict[str, list[dict]], earlier: str, later: str, today: dt.date, reason: str | None = None) -> None:
    """Mark report ``earlier`` as superseded by ``later`` (a later statement of the same originator), logged.

    Only the link is checked here (both exist, ``earlier`` is not superseded by another); that
    the two share incident and originator and are in order is ``validate``'s to say
    (``links/superseded-by``), as for any hand edit.
    """
    ids = {_cell(r.get("report_id")): r for r in tables["reports"]}
    if later not in ids:
        raise CivharmError(f"report {later} does not exist")
    if earlier not in ids:
        raise CivharmError(f"report {earlier} does not exist; 'supersedes' names existing reports")
    if earlier == later:
        raise CivharmError(f"report {earlier} cannot supersede itself")
    current = _cell(ids[earlier].get("superseded_by"))
    if current and current != later:
        raise CivharmError(f"report {earlier} is already superseded by {current}; supersede {current} instead (the latest of the chain)")
    correct(tables, "reports", earlier, {"superseded_by": later},
            reason or f"Superseded by {later}, a later statement of the same originator (figure rule: the latest statement of an originator that states a figure counts).",
            today, report_id=later)


def supersession_candidates(package: Package, incident_id: str, report: dict) -> list[dict]:
    """The statements a new ``report`` on ``incident_id`` may supersede: for ``add``'s question "does it update one of these?".

    Active, not yet superseded reports of the incident (or of incidents merged into it) by the
    same originator as ``report`` (claimant, or the outlet in its own voice), whose ``as_of``
    does not begin after the new statement's. Each is a row of cell text (``reports.csv``'s
    columns), oldest first. Statements of other originators are never candidates.
    """
    rows = _records(package["reports"])
    incidents = package["incidents"].typed
    if not rows:
        return []
    typed = _typed(package, "reports", [*rows, {**dict.fromkeys(package["reports"].header, ""), **{k: _text(v) for k, v in report.items()},
                                               "report_id": "", "incident_id": incident_id}])
    origin = figures.originators(typed)
    carrier = figures.carrier_ids(typed["incident_id"], incidents)
    start, end = figures.as_of_span(typed["as_of"])
    new = len(rows)
    mine = ((typed["status"] == "active") & typed["superseded_by"].isna() & (origin == origin.iloc[new])
            & (carrier == carrier.iloc[new])).fillna(False).to_numpy(dtype=bool)
    mine[new] = False
    if not pd.isna(end[new]):
        mine &= ~(start > end[new])  # a statement that begins after the new one ends is later, not earlier
    order = sorted(np.flatnonzero(mine), key=lambda i: (_cell(rows[i].get("as_of")), _cell(rows[i].get("report_id"))))
    return [rows[i] for i in order]


@dataclass
class Recomputation:
    """What ``recompute`` would write: each change as (table, record ID, field, old, new), and the files."""

    changes: list[tuple[str, str, str, str, str]]
    files: dict[Path, str]
    root: Path


def recompute(package: Package, today: dt.date, reason: str | None = None) -> Recomputation:
    """Rewrite every active incident's derived fields by the rules, with corrections-log rows; touches no file.

    Derived: the figures (figure rule; not for an incident with ``figures_override_reason``),
    ``perpetrator_alleged`` and ``alleged_parties`` (attribution rule), and ``attribution_basis``
    only where the rule leaves nobody named (then it is ``not_attributed``; who names a party
    is the contributor's to say). Run after a hand edit of reports (a new ``superseded_by``, a
    corrected figure) so the incidents follow.
    """
    from . import attribution

    missing = [name for name in ("incidents", "reports", "changes") if package.get(name) is None or package[name].raw is None or package[name].unread is not None]
    if missing:
        raise CivharmError(f"the package lacks readable table(s) {', '.join(missing)}; run civharm validate")
    tables = {name: _records(package[name]) for name in ("incidents", "reports", "changes")}
    incidents, reports = package["incidents"].typed, package["reports"].typed
    computed = figures.compute_incident_figures(incidents, reports)
    alleged = attribution.compute_incident_attribution(incidents, reports)
    reason = reason or "Derived fields recomputed by the figure and attribution rules (civharm recompute)."
    logged_before = len(tables["changes"])
    for row in tables["incidents"]:
        incident_id = _cell(row.get("incident_id"))
        if _cell(row.get("status")) != "active" or incident_id not in computed.index:
            continue
        values = {}
        if not _cell(row.get("figures_override_reason")):
            values.update({column: _cell(None if pd.isna(v) else int(v)) for column, v in computed.loc[incident_id].items()})
        values.update({column: _cell(alleged.at[incident_id, column]) for column in attribution.FIELDS})
        if values["perpetrator_alleged"] == attribution.UNKNOWN:
            values["attribution_basis"] = attribution.NOT_ATTRIBUTED
        correct(tables, "incidents", incident_id, values, reason, today)
    logged = tables["changes"][logged_before:]
    changes = [("incidents", c["record_id"], c["field"], c["old_value"], c["new_value"]) for c in logged]
    files = {}
    if logged:
        for name in ("incidents", "changes"):
            files[package.root / package[name].path] = _serialise(package[name].header, tables[name])
    return Recomputation(changes, files, package.root)


def write_recomputation(done: Recomputation, fault: FaultHook | None = None) -> None:
    """Write the recomputed incidents and their log rows at once, or nothing."""
    if done.files:
        write_files(done.root, done.files, fault=fault)


def _apply_figure_rule(package, tables, incident_id, report_id, new_incident, today) -> list[str]:
    """Set the incident's figures to the rule's result; log each change of an existing incident."""
    incidents = _typed_incidents(package, tables["incidents"])
    reports_resource = package["reports"]
    clone = type(reports_resource)(name="reports", path=reports_resource.path, schema=reports_resource.schema, schema_path=None,
                                   raw=b"", header=reports_resource.header,
                                   frame=pd.DataFrame(tables["reports"], columns=reports_resource.header, dtype="string"))
    computed = figures.compute_incident_figures(incidents, clone.typed)
    row = next(r for r in tables["incidents"] if r["incident_id"] == incident_id)
    changed = []
    for column in computed.columns:
        value = computed.at[incident_id, column]
        new = "" if pd.isna(value) else str(int(value))
        if row[column] != new and not row.get("figures_override_reason"):
            old = row[column]
            row[column] = new
            changed.append(column)
            if not new_incident:
                tables["changes"].append({"change_id": new_id("changes"), "change_date": today.isoformat(), "table": "incidents",
                                          "record_id": incident_id, "record_version": "", "field": column, "old_value": old,
                                          "new_value": new, "reason": f"Figure rule recomputed after adding report {report_id}.",
                                          "report_id": report_id})
    if changed and not new_incident:
        version = str(int(row["record_version"]) + 1)
        row["record_version"] = version
        row["last_updated"] = today.isoformat()
        for change in tables["changes"]:
            if change["record_id"] == incident_id and change["record_version"] == "":
                change["record_version"] = version
    return changed


def _package_files(package: Package) -> list[str]:
    paths = ["datapackage.json"]
    for resource in package.resources.values():
        paths += [p for p in (resource.path, resource.schema_path) if p]
    return paths


def check(package: Package, built: Plan, today: dt.date) -> list[Finding]:
    """Validate the package as it would be after the change: the errors the change would add."""
    before = {f for f in run(package.root, Options(today=today)).findings if f.severity.value == "error"}
    with tempfile.TemporaryDirectory() as temp:
        copy = Path(temp) / "pkg"
        try:
            for relative in _package_files(package):
                (copy / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(package.root / relative, copy / relative)
            for path, text in built.files.items():
                (copy / path.relative_to(package.root)).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise os_error(exc, f"the copy of the package in {temp} that checks the change") from exc
        after = run(copy, Options(today=today)).findings
    return [f for f in after if f.severity.value == "error" and f not in before]


def commit(built: Plan, fault: FaultHook | None = None) -> None:
    """Write every changed file at once, or none."""
    write_files(built.root, built.files, fault=fault)


