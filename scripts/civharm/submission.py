"""What a contributor submits to ``civharm add``: the file read as hostile input, bounded and strictly typed.

A submission names the report, the incident (an existing ID or a new one's fields), and what
the contributor decided about duplicate candidates and earlier reports. Reading it is one job:
sizes, depth and kinds are checked before any value reaches a table, and every refusal names
the file and line.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from .findings import CivharmError, quote
from .limits import read_bounded
from .package import MAX_CELL_CHARS, Package




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


