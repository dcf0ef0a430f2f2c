"""Compare two versions of the package: the history gate and the row-level diff.

A version is read from a git ref (``git show REF:path``, nothing is checked out), a release
zip, a folder, or a release version listed in ``releases.json``, into a temporary folder and
parsed by ``civharm.package`` exactly like the working copy. Rows of both versions are matched
by the base version's primary key (a composite key is written as its values joined by ``+``),
cells compared as the strings in the file; what makes a row the same record is
``civharm.identity``. The dataset's version lives in datapackage.json, CITATION.cff,
CHANGELOG.md and releases.json; ``civharm release`` writes all four at once
(``civharm.releases``, RELEASING.md).
"""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd

from .archive import unpack
from .findings import CivharmError, Finding, RuleDoc, Severity, quote
from .identity import PAIRS_COMPARED, SAME_RECORD, changed_identity, declared_key, dropped_keys, repeats, taken_over, unique_keys
from .package import DESCRIPTOR, Package, Resource, load_package, parse_date

RELEASES_FILE = "releases.json"
LOG_TABLE = "changes"  # the append-only corrections log
BOOKKEEPING = ("record_version", "last_updated")
KEY_JOIN = "+"
LEVELS = ("none", "patch", "minor", "major")
SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
LABEL_FIELDS = ("summary", "title", "name", "note", "notes", "reason", "object_type")


RULES = {r.id: r for r in (
    RuleDoc("history/deleted-row", Severity.ERROR, "No row of the base version is deleted.",
                "Published records are cited; a record found wrong is retracted or merged and stays in the data."),
    RuleDoc("history/id-changed", Severity.ERROR, "IDs are never changed or reused: an ID keeps the record it names (see Record identity).",
                "An ID names one record forever; a changed or reused ID silently re-points every citation of it."),
    RuleDoc("history/unversioned-change", Severity.ERROR, "A changed row raises record_version and last_updated and is logged.",
                "Every correction must be visible: the version and date show that a record changed, the log says how and why."),
    RuleDoc("history/corrections-log-edited", Severity.ERROR, "The corrections log is append-only.",
                "A log that can be rewritten proves nothing; a wrong entry is corrected by a new entry."),
    RuleDoc("history/key-dropped", Severity.ERROR, "A released table keeps its keys: primary key, unique and required constraints, foreign keys.",
                "IDs, citations and joins rely on them; a schema without them would let the next version repeat an ID or leave a "
                "reference dangling and still pass validation."),
    RuleDoc("history/duplicate-key", Severity.ERROR, "Rows keep to the keys of the released schema, even where the new schema dropped them.",
                "A released ID or unique value names one row; the released schema, not an edited one, says which values must stay unique."),
    RuleDoc("history/unreadable-table", Severity.ERROR, "A table whose rows cannot be read is not compared as if it were empty.",
                "Read the wrong way, a table would look as if all its rows were deleted, or none changed; its history is checked once it can be read."),
)}


def _finding(rule_id: str, file: str, line: int | None, field_name: str | None, message: str, pointer: str | None = None) -> Finding:
    return Finding(file, line, field_name, rule_id, message, RULES[rule_id].severity, pointer)


# --- reading a version ------------------------------------------------------------------------


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise CivharmError("git is not installed; pass a release zip or a folder instead of a git ref")


def _is_repository(root: Path) -> bool:
    return _git(root, "rev-parse", "--is-inside-work-tree").returncode == 0


def resolve_commit(root: Path, ref: str) -> str:
    """The full commit ID a git ref names, or CivharmError (not a repository, unknown ref)."""
    if not _is_repository(root):
        raise CivharmError(f"{ref}: {root} is not inside a git repository; pass a release zip or a folder instead")
    result = _git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if result.returncode != 0:
        raise CivharmError(f"{ref}: unknown git ref in {root} (a branch, tag or commit; fetch it first if it is remote)")
    return result.stdout.decode().strip()


def _safe_relative(path: object) -> str | None:
    if not isinstance(path, str) or not path or path.startswith(("/", "\\")) or "://" in path:
        return None
    parts = PurePosixPath(path.replace("\\", "/")).parts
    return None if ".." in parts else "/".join(parts)


def _export_git(root: Path, ref: str, into: Path) -> Path:
    """Write the descriptor, schemas and data files of ``ref`` into ``into``."""
    commit = resolve_commit(root, ref)

    def show(relative: str) -> bytes | None:
        result = _git(root, "show", f"{commit}:./{relative}")
        return result.stdout if result.returncode == 0 else None

    descriptor = show(DESCRIPTOR)
    if descriptor is None:
        raise CivharmError(f"{ref}: no {DESCRIPTOR} in {root} at that commit")
    (into / DESCRIPTOR).write_bytes(descriptor)
    try:
        resources = json.loads(descriptor).get("resources", [])
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise CivharmError(f"{ref}: {DESCRIPTOR} at that commit is not a JSON object")
    for spec in resources if isinstance(resources, list) else []:
        for key in ("path", "schema"):
            relative = _safe_relative(spec.get(key)) if isinstance(spec, dict) else None
            content = show(relative) if relative else None
            if content is not None:
                (into / relative).parent.mkdir(parents=True, exist_ok=True)
                (into / relative).write_bytes(content)
    return into


def empty_package() -> Package:
    """The version before the first release: no tables, no rows."""
    return Package(root=Path("."), descriptor={"resources": []}, resources={}, findings=[])


def read_version(root: str | Path, source: str) -> Package:
    """Load a version named by a release zip, a folder, a version in releases.json, or a git ref."""
    root = _root_of(root)
    path = Path(source)
    if path.is_dir() and (path / DESCRIPTOR).is_file() or path.is_file() and path.name == DESCRIPTOR:
        return load_package(path)
    if source.lower().endswith(".zip") and not path.is_file():
        raise CivharmError(f"{source}: file not found")
    listed = {entry["version"]: entry for entry in read_releases(root)}
    with tempfile.TemporaryDirectory(prefix="civharm-version-") as folder:
        if source.lower().endswith(".zip"):
            exported = unpack(path, Path(folder), display=source)  # within civharm.limits
        else:
            exported = _export_git(root, release_ref(root, listed[source]) if source in listed else source, Path(folder))
        try:
            return load_package(exported)
        except CivharmError as exc:  # name the version, not the temporary folder
            raise CivharmError(f"{source}: {str(exc).replace(str(exported) + '/', '')}")


def _root_of(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() or path.suffix == ".json" else path


# --- rows of one table ------------------------------------------------------------------------


@dataclass
class _Rows:
    path: str
    header: list[str]
    key_fields: list[str]
    has_merge: bool
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    extra: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)  # rows repeating a key


def _rows(resource: Resource | None, key_fields: list[str] | None = None) -> _Rows | None:
    """The table's rows by key: ``key_fields`` (the base version's), else its own primary key or first column."""
    if resource is None or resource.raw is None or resource.unread is not None:
        return None
    header = [str(c) for c in resource.frame.columns]
    key_fields = key_fields or declared_key(resource.schema) or header[:1]
    if not key_fields or not set(key_fields) <= set(header):
        return None  # a structural error; frictionless reports it
    names = {f.get("name") for f in resource.schema.get("fields", []) if isinstance(f, dict)}
    out = _Rows(resource.path, header, key_fields, "merged_into" in names)
    for index, record in enumerate(resource.frame.to_dict("records")):
        row = {k: ("" if pd.isna(v) else str(v)) for k, v in record.items()}
        key = KEY_JOIN.join(row[k] for k in key_fields)
        if key in out.rows:
            out.extra.append((key, resource.line_of(index), row))
        else:
            out.rows[key], out.lines[key] = row, resource.line_of(index)
    return out


def _tables(base: Package, head: Package):
    """(name, base rows, head rows, None) for every table in either version, head's order first.

    A table that one version lists but whose rows cannot be read comes as (name, None, None,
    (version, why)): its rows are not compared, since every row would otherwise look deleted
    (or none changed), and each caller says so. Rows of both versions are keyed by the base
    version's primary key.
    """
    names = list(head.resources) + [n for n in base.resources if n not in head.resources]
    for name in names:
        old = _rows(base.get(name))
        new = _rows(head.get(name), old.key_fields if old else None)
        unread = [(side, _why_unread(package.get(name))) for side, package, rows in (("base", base, old), ("head", head, new))
                  if rows is None and package.get(name) is not None]
        yield (name, old, new, None) if not unread else (name, None, None, unread[0])


def _why_unread(resource: Resource) -> str:
    """Why ``_rows`` could not read a table: its loading finding, or a primary key missing from its header."""
    return resource.unread or f"{resource.path}:1: its primary key columns are not all in its header"


# --- the diff ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str


@dataclass(frozen=True)
class RecordChange:
    """One record that differs: added, retracted, merged, restored, changed or deleted."""

    table: str
    file: str
    record_id: str
    kind: str
    line: int | None  # in the newer version
    fields: tuple[FieldChange, ...] = ()
    label: str = ""

    def new_value(self, name: str) -> str | None:
        return next((c.new for c in self.fields if c.field == name), None)


@dataclass(frozen=True)
class SchemaChange:
    table: str
    field: str | None
    kind: str
    detail: str
    level: str  # the release level it needs: major, minor or patch


@dataclass
class Diff:
    base: str
    head: str
    records: list[RecordChange]
    schema: list[SchemaChange]
    sizes: dict[str, int]  # rows per table in the newer version

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for change in self.records:
            table = out.setdefault(change.table, {})
            table[change.kind] = table.get(change.kind, 0) + 1
        return out

    def totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for change in self.records:
            totals[change.kind] = totals.get(change.kind, 0) + 1
        return totals


def _label(row: dict[str, str]) -> str:
    text = next((row[f] for f in LABEL_FIELDS if row.get(f)), "")
    return text if len(text) <= 90 else text[:89].rstrip() + "…"


def _kind(old: dict[str, str], new: dict[str, str]) -> str:
    before, after = old.get("status", ""), new.get("status", "")
    if before != after and after in ("retracted", "merged"):
        return after
    if before != after and after == "active":
        return "restored"
    return "changed"


def compare(base: Package, head: Package, base_label: str = "base", head_label: str = "head") -> Diff:
    """Every record and schema difference from ``base`` to ``head``."""
    records: list[RecordChange] = []
    schema: list[SchemaChange] = []
    sizes: dict[str, int] = {}
    for name in list(head.resources) + [n for n in base.resources if n not in head.resources]:
        old_res, new_res = base.get(name), head.get(name)
        schema += schema_changes(name, old_res.schema if old_res else None, new_res.schema if new_res else None)
    labels = {"base": base_label, "head": head_label}
    for name, old, new, unread in _tables(base, head):
        if unread is not None:
            side, why = unread
            raise CivharmError(f"cannot compare table {name}: its rows could not be read in {labels[side]} ({why}); "
                               "run `civharm validate` on it")
        old_rows, new_rows = (old.rows if old else {}), (new.rows if new else {})
        sizes[name] = len(new_rows) + len(new.extra) if new else 0
        columns = (new.header if new else []) + [c for c in (old.header if old else []) if not new or c not in new.header]
        for key, row in new_rows.items():
            line = new.lines[key]
            if key not in old_rows:
                records.append(RecordChange(name, new.path, key, "added", line, label=_label(row)))
                continue
            before = old_rows[key]
            fields = tuple(FieldChange(c, before.get(c, ""), row.get(c, "")) for c in columns if before.get(c, "") != row.get(c, ""))
            if fields:
                records.append(RecordChange(name, new.path, key, _kind(before, row), line, fields, _label(row)))
        for key, row in old_rows.items():
            if key not in new_rows:
                records.append(RecordChange(name, (new or old).path, key, "deleted", None, label=_label(row)))
    return Diff(base_label, head_label, records, schema, sizes)


def _tighter(key: str, old, new, old_field: dict, new_field: dict) -> bool:
    """Whether a constraint change can reject data the old constraint accepted."""
    try:
        if key in ("required", "unique"):
            return bool(new) and not bool(old)
        if key in ("minimum", "minLength", "exclusiveMinimum"):
            return new is not None and (old is None or new > old)
        if key in ("maximum", "maxLength", "exclusiveMaximum"):
            return new is not None and (old is None or new < old)
        if key == "enum":
            return new is not None and (old is None or not set(new) >= set(old))
        if key == "pattern" and "civharm:definitions" in old_field and "civharm:definitions" in new_field:
            return not set(new_field["civharm:definitions"]) >= set(old_field["civharm:definitions"])
        return new is not None  # a changed pattern (or unknown constraint) may reject old values
    except TypeError:
        return True


def schema_changes(table: str, old: dict | None, new: dict | None) -> list[SchemaChange]:
    """Schema differences of one table, each with the release level it needs."""
    if old is None and new is None:
        return []
    if old is None:
        return [SchemaChange(table, None, "table-added", f"new table `{table}`", "minor")]
    if new is None:
        return [SchemaChange(table, None, "table-removed", f"table `{table}` removed", "major")]
    out: list[SchemaChange] = []
    old_fields = {f["name"]: f for f in old.get("fields", []) if isinstance(f, dict) and "name" in f}
    new_fields = {f["name"]: f for f in new.get("fields", []) if isinstance(f, dict) and "name" in f}
    removed = [n for n in old_fields if n not in new_fields]
    added = [n for n in new_fields if n not in old_fields]
    if len(removed) == 1 and len(added) == 1 and list(old_fields).index(removed[0]) == list(new_fields).index(added[0]):
        out.append(SchemaChange(table, added[0], "field-renamed", f"field `{removed[0]}` renamed to `{added[0]}`", "major"))
        removed, added = [], []
    out += [SchemaChange(table, n, "field-removed", f"field `{n}` removed", "major") for n in removed]
    for name in added:
        required = new_fields[name].get("constraints", {}).get("required")
        out.append(SchemaChange(table, name, "field-added", f"new {'required' if required else 'optional'} field `{name}`",
                                "major" if required else "minor"))
    for name in (n for n in new_fields if n in old_fields):
        a, b = old_fields[name], new_fields[name]
        if a.get("type", "string") != b.get("type", "string"):
            out.append(SchemaChange(table, name, "type-changed", f"`{name}` type {a.get('type', 'string')} → {b.get('type', 'string')}", "major"))
        ca, cb = a.get("constraints", {}), b.get("constraints", {})
        for key in sorted(set(ca) | set(cb)):
            if ca.get(key) != cb.get(key):
                tight = _tighter(key, ca.get(key), cb.get(key), a, b)
                out.append(SchemaChange(table, name, "constraint-tightened" if tight else "constraint-loosened",
                                        f"`{name}` {key}: {json.dumps(ca.get(key), ensure_ascii=False)} → "
                                        f"{json.dumps(cb.get(key), ensure_ascii=False)}", "major" if tight else "minor"))
        rest_a = {k: v for k, v in a.items() if k not in ("type", "constraints")}
        rest_b = {k: v for k, v in b.items() if k not in ("type", "constraints")}
        if rest_a != rest_b:
            keys = sorted(k for k in set(rest_a) | set(rest_b) if rest_a.get(k) != rest_b.get(k))
            out.append(SchemaChange(table, name, "field-documented", f"`{name}` {', '.join(keys)} edited", "patch"))
    for key, level in (("primaryKey", "major"), ("foreignKeys", None), ("missingValues", "major")):
        if old.get(key) != new.get(key):
            if level is None:  # a new foreign key may reject rows; a dropped one cannot
                gone = [fk for fk in new.get(key) or [] if fk not in (old.get(key) or [])]
                level = "major" if gone else "minor"
            out.append(SchemaChange(table, None, f"{key}-changed", f"{key} {json.dumps(old.get(key))} → {json.dumps(new.get(key))}", level))
    if [n for n in old_fields if n in new_fields] != [n for n in new_fields if n in old_fields]:
        out.append(SchemaChange(table, None, "fields-reordered", "columns reordered", "major"))
    if old.get("description") != new.get("description"):
        out.append(SchemaChange(table, None, "table-documented", "table description edited", "patch"))
    return out


def bump_reasons(diff: Diff) -> dict[str, list[str]]:
    """Why each release level is needed: ``{"major": [...], "minor": [...], "patch": [...]}``."""
    reasons: dict[str, list[str]] = {"major": [], "minor": [], "patch": []}
    for change in diff.schema:
        reasons[change.level].append(f"{change.table}: {change.detail}")
    for table, kinds in diff.counts().items():
        for kind, count in kinds.items():
            if kind == "deleted":
                level = "major"
            elif kind == "added" and table != LOG_TABLE or kind in ("retracted", "merged", "restored"):
                level = "minor"
            else:
                level = "patch"
            reasons[level].append(f"{table}: {count} {kind}")
    return reasons


def required_bump(diff: Diff) -> str:
    """The smallest Semantic Versioning level the diff allows: none, patch, minor or major."""
    reasons = bump_reasons(diff)
    return next((level for level in ("major", "minor", "patch") if reasons[level]), "none")


# --- the history gate -------------------------------------------------------------------------


def _log_entries(head: Package) -> dict[tuple[str, str, str], list[tuple[int, str, int]]]:
    """Corrections-log entries by (table, record_id, field): [(record_version, new_value, line)]."""
    log = _rows(head.get(LOG_TABLE))
    entries: dict[tuple[str, str, str], list[tuple[int, str, int]]] = {}
    if log is None:
        return entries
    for key, row, line in [(k, r, log.lines[k]) for k, r in log.rows.items()] + log.extra:
        version = _version(row.get("record_version", ""))
        if version is not None:
            entries.setdefault((row.get("table", ""), row.get("record_id", ""), row.get("field", "")), []).append(
                (version, row.get("new_value", ""), line))
    return entries


def _version(text: str) -> int | None:
    """A record_version cell as a number: ASCII digits only (``int`` would also read '١', and fail on '²')."""
    return int(text) if re.fullmatch("[0-9]{1,18}", text) else None


def _content_fields(old: _Rows, new: _Rows) -> list[str]:
    return [c for c in old.header if c in new.header and c not in old.key_fields and c not in BOOKKEEPING]


def _matched_renames(old: _Rows, new: _Rows, deleted: list[str], added: list[str]) -> dict[str, str]:
    """Deleted keys whose row reappears under a new key: {old key: new key}."""
    fields = _content_fields(old, new)

    def signature(row: dict[str, str]) -> tuple[str, ...]:
        return tuple(row.get(f, "") for f in fields)

    by_content: dict[tuple[str, ...], str] = {}
    for key in added:
        by_content.setdefault(signature(new.rows[key]), key)
    matched: dict[str, str] = {}
    for key in deleted:
        twin = by_content.pop(signature(old.rows[key]), None)
        if twin is not None:
            matched[key] = twin
    left_old = [k for k in deleted if k not in matched]
    left_new = [k for k in added if k not in matched.values()]
    if fields and len(left_old) * len(left_new) <= PAIRS_COMPARED:
        for key in left_old:
            scores = [(sum(old.rows[key][f] == new.rows[n].get(f, "") for f in fields) / len(fields), n) for n in left_new]
            best = max(scores, default=(0, None))
            if best[0] >= SAME_RECORD:
                matched[key] = best[1]
                left_new.remove(best[1])
    return matched


def _reused(old: _Rows, new: _Rows, fields: list[str]) -> list[tuple[str, int]]:
    """(key, line) of rows repeating a base ID; the row most like the base's keeps the ID."""
    out = []
    for key in dict.fromkeys(k for k, _, _ in new.extra if k in old.rows):
        rows = [(new.lines[key], new.rows[key])] + [(line, row) for k, line, row in new.extra if k == key]
        same = [sum(row.get(f, "") == old.rows[key].get(f, "") for f in fields) for _, row in rows]
        keep = same.index(max(same))
        new.lines[key], new.rows[key] = rows[keep]
        out += [(key, line) for index, (line, _) in enumerate(rows) if index != keep]
    return out


def _unversioned(name: str, old: _Rows, new: _Rows, key: str, changed: list[str], log, log_path: str) -> list[Finding]:
    """Findings for one changed record that lacks a version bump, a new date or log entries."""
    before, after = old.rows[key], new.rows[key]
    line, out = new.lines[key], []
    rule = "history/unversioned-change"
    listed = ", ".join(changed)
    old_v, new_v = _version(before.get("record_version", "")), _version(after.get("record_version", ""))
    versions: range | set = set()
    if "record_version" in new.header and old_v is not None:
        if new_v is None or new_v <= old_v:
            out.append(_finding(rule, new.path, line, "record_version",
                                f"record {key} changed ({listed}) but record_version is {quote(after.get('record_version', ''), 40)} "
                                f"(base: {old_v}); raise it by one"))
            versions = {new_v} if new_v is not None else set()
        else:
            versions = range(old_v + 1, new_v + 1)
    if "last_updated" in new.header and not _later(after.get("last_updated", ""), before.get("last_updated", "")):
        out.append(_finding(rule, new.path, line, "last_updated",
                            f"record {key} changed ({listed}) but last_updated is {after.get('last_updated') or 'empty'} "
                            f"(base: {before.get('last_updated') or 'empty'}); set it to the day of the change (YYYY-MM-DD)"))
    target = str(max(new_v, old_v + 1)) if new_v is not None and old_v is not None else "<new record_version>"
    for name_of_field in changed:
        value = after.get(name_of_field, "")
        entries = [e for e in log.get((name, key, name_of_field), []) if not versions or e[0] in versions]
        latest = max(entries, key=lambda e: (e[0], e[2]), default=None)  # highest version, then the log's later line (never the larger value)
        if latest is None:
            out.append(_finding(rule, new.path, line, name_of_field,
                                f"changed from {before.get(name_of_field, '')!r} to {value!r} with no entry in {log_path} "
                                f"(table {name}, record_id {key}, field {name_of_field}, new_value {value!r}, record_version {target})"))
        elif latest[1] != value:
            out.append(_finding(rule, new.path, line, name_of_field,
                                f"holds {value!r} but its entry in {log_path} (line {latest[2]}) says new_value {latest[1]!r}"))
    return out


def _later(new: str, old: str) -> bool:
    """Whether ``new`` is a date after ``old``, both read by ``parse_date`` (an unreadable base date: any date is)."""
    new_day, old_day = parse_date(new), parse_date(old)
    return new_day is not None and (old_day is None or new_day > old_day)


def _log_edits(old: _Rows, new: _Rows | None) -> list[Finding]:
    rule = "history/corrections-log-edited"
    out = []
    for key, row in old.rows.items():
        if new is None or key not in new.rows:
            out.append(_finding(rule, (new or old).path, None, old.key_fields[0],
                                f"entry {key} (line {old.lines[key]} of the base) was removed; the corrections log is "
                                "append-only: put it back and add a new entry that corrects it"))
            continue
        for column in old.header:
            if row.get(column, "") != new.rows[key].get(column, ""):
                out.append(_finding(rule, new.path, new.lines[key], column,
                                    f"entry {key} was edited ({row.get(column, '')!r} → {new.rows[key].get(column, '')!r}); the "
                                    "corrections log is append-only: restore it and add a new entry that corrects it"))
    return out


def check(base: Package, head: Package) -> list[Finding]:
    """Findings for every way ``head`` rewrites the history recorded in ``base``."""
    log = _log_entries(head)
    log_resource = head.get(LOG_TABLE)
    log_path = log_resource.path if log_resource else "the corrections log"
    findings: list[Finding] = []
    for name, old, new, unread in _tables(base, head):
        if unread is not None:
            side, why = unread
            resource = head.get(name) or base.get(name)
            findings.append(_finding("history/unreadable-table", resource.path, None, None,
                                     f"table {name} could not be read in the {'base version' if side == 'base' else 'package'} "
                                     f"({why}), so its rows were not compared with the base; fix that and validate again"))
            continue
        if old is None:
            continue  # a new table: nothing in it existed before
        if new is not None:
            findings += _key_findings(head, base[name], head[name], old)
        if name == LOG_TABLE:
            findings += _log_edits(old, new)
            continue
        if new is None:
            new = _Rows(old.path, old.header, old.key_fields, old.has_merge)
        deleted = [k for k in old.rows if k not in new.rows]
        added = [k for k in new.rows if k not in old.rows]
        key_field = new.key_fields[0]
        renamed = _matched_renames(old, new, deleted, added) if added else {}
        fix = "retract it or merge it (status, status_reason, merged_into)" if old.has_merge else "retract it (status, status_reason)"
        for key in deleted:
            if key in renamed:
                findings.append(_finding("history/id-changed", new.path, new.lines[renamed[key]], key_field,
                                         f"ID changed from {key} to {renamed[key]} (the record on line {old.lines[key]} of the base); "
                                         f"IDs are permanent: put {key} back"))
            else:
                findings.append(_finding("history/deleted-row", new.path, None, key_field,
                                         f"record {key} (line {old.lines[key]} of the base) was deleted; records are never deleted: "
                                         f"put the row back and {fix}, with a new record_version and a corrections-log entry"))
        fields = _content_fields(old, new)
        for key, line in _reused(old, new, fields):
            findings.append(_finding("history/id-changed", new.path, line, key_field,
                                     f"ID {key} reused: it belongs to the record on line {new.lines[key]}; "
                                     "a new record needs a new ID (civharm.ids.new_id)"))
        findings += _changed_records(name, old, new, fields, deleted, log, log_path)
    return findings


def _changed_records(name: str, old: _Rows, new: _Rows, fields: list[str], deleted: list[str], log, log_path: str) -> list[Finding]:
    """Findings for the base records whose ID is still there: another record under it, or a change not in due form."""
    changed = {k: [f for f in fields if old.rows[k].get(f, "") != new.rows[k].get(f, "")] for k in old.rows if k in new.rows}
    changed = {k: c for k, c in changed.items() if c}
    taken = taken_over(old.rows, new.rows, list(changed), list(changed) + deleted, fields)
    key_field, rule = new.key_fields[0], "history/id-changed"
    out: list[Finding] = []
    for key, changed_fields in changed.items():
        line = new.lines[key]
        if key in taken:
            out.append(_finding(rule, new.path, line, key_field,
                                f"ID {key} now holds the record that {taken[key]} held (line {old.lines[taken[key]]} of the base): "
                                "an ID never moves to another record; put the rows back as they were"))
        elif identity := changed_identity(name, old.rows[key], new.rows[key]):
            out.append(_finding(rule, new.path, line, key_field,
                                f"ID {key} now holds a different record: {identity} changed, and that identifies the record "
                                f"(line {old.lines[key]} of the base); put it back, retract {key} and add the corrected record under a new ID"))
        else:
            problems = _unversioned(name, old, new, key, changed_fields, log, log_path)
            filled = [f for f in fields if old.rows[key].get(f, "") or new.rows[key].get(f, "")]
            if problems and len(changed_fields) >= 3 and len(changed_fields) * 2 > len(filled):
                out.append(_finding(rule, new.path, line, key_field,
                                    f"ID {key} now holds a different record ({len(changed_fields)} of {len(filled)} filled fields differ "
                                    f"from line {old.lines[key]} of the base): an ID is never reused; give the new record a "
                                    "new ID and put the old one back"))
            else:
                out += problems
    return out


def _key_findings(head: Package, released: Resource, now: Resource, old: _Rows) -> list[Finding]:
    """Keys of the released schema that the new one drops, and the rows that repeat a key it no longer enforces.

    A repeated base ID is ``history/id-changed`` already (``_reused``); other repeats of the
    released primary key, and repeats of a released unique field, are ``history/duplicate-key``.
    """
    file, prefix = _schema_location(head, now)
    out = [_finding("history/key-dropped", file, None, field_name, f"{message}; a released table keeps its keys: restore it",
                    pointer=prefix + pointer) for pointer, field_name, message in dropped_keys(released.schema, now.schema)]
    enforced = unique_keys(now.schema)
    for key in unique_keys(released.schema):
        if key in enforced or not set(key) <= set(now.frame.columns):
            continue
        for index, first, cells in repeats(now.frame, key):
            value = KEY_JOIN.join(cells)
            if list(key) == old.key_fields and value in old.rows:
                continue
            out.append(_finding("history/duplicate-key", now.path, now.line_of(index), ",".join(key),
                                f"{quote(value)} repeats line {now.line_of(first)}: the released schema keeps {', '.join(key)} unique"))
    return out


def _schema_location(head: Package, resource: Resource) -> tuple[str, str]:
    """(file, JSON pointer prefix) of a resource's schema: its own file, or its place in datapackage.json."""
    if resource.schema_path:
        return resource.schema_path, ""
    names = [spec.get("name") if isinstance(spec, dict) else None for spec in head.descriptor.get("resources", [])]
    return DESCRIPTOR, f"/resources/{names.index(resource.name)}/schema" if resource.name in names else ""


def check_against(head: Package, source: str) -> list[Finding]:
    """The history gate of ``civharm validate --base SOURCE``."""
    return check(read_version(head.root, source), head)


# --- rendering a diff -------------------------------------------------------------------------

KIND_TITLES = (("added", "Added"), ("retracted", "Retracted"), ("merged", "Merged"), ("restored", "Restored"),
               ("changed", "Changed"), ("deleted", "Deleted"))


def _code(value: str) -> str:
    if value == "":
        return "(empty)"
    value = value.replace("\n", " ").replace("|", "\\|")
    value = value if len(value) <= 120 else value[:119] + "…"
    return f"`{value}`" if "`" not in value else f"``{value}``"


def summary_sentence(diff: Diff) -> str:
    totals = diff.totals()
    parts = [f"{totals[k]} {k}" for k, _ in KIND_TITLES if totals.get(k)]
    schema = f"{len(diff.schema)} schema change{'s' if len(diff.schema) != 1 else ''}"
    return (", ".join(parts) or "no record changes") + f"; {schema}"


def _record_line(change: RecordChange, located: bool = True) -> str:
    where = f" ({change.file}:{change.line})" if change.line and located else ""
    text = f"- `{change.record_id}`{where}"
    if change.kind == "merged":
        text += f" → merged into `{change.new_value('merged_into')}`"
    if change.kind in ("retracted", "merged", "restored") and change.new_value("status_reason"):
        text += f": {change.new_value('status_reason')}"
    elif change.kind in ("added", "deleted") and change.label:
        text += f": {change.label}"
    return text


def to_markdown(diff: Diff) -> str:
    """A changelog for people: counts, schema changes, then records per table and kind."""
    out = [f"# Changes from {diff.base} to {diff.head}", "", summary_sentence(diff) + ".", ""]
    if diff.schema:
        out += ["## Schema", ""]
        out += [f"- `{c.table}`: {c.detail} ({c.level})" for c in diff.schema] + [""]
    by_table: dict[str, list[RecordChange]] = {}
    for change in diff.records:
        by_table.setdefault(change.table, []).append(change)
    for table, changes in by_table.items():
        out += [f"## {table} ({changes[0].file})", ""]
        for kind, title in KIND_TITLES:
            chosen = [c for c in changes if c.kind == kind]
            if not chosen:
                continue
            out += [f"### {title} ({len(chosen)})", ""]
            for change in chosen:
                out.append(_record_line(change))
                if kind not in ("added", "deleted"):
                    out += [f"  - `{f.field}`: {_code(f.old)} → {_code(f.new)}" for f in change.fields]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def as_dict(diff: Diff) -> dict:
    return {
        "version": 1,
        "base": diff.base,
        "head": diff.head,
        "bump": required_bump(diff),
        "counts": diff.counts(),
        "schema": [{"table": c.table, "field": c.field, "kind": c.kind, "detail": c.detail, "level": c.level} for c in diff.schema],
        "records": [{"table": c.table, "file": c.file, "record_id": c.record_id, "kind": c.kind, "line": c.line,
                     "changes": [{"field": f.field, "old": f.old, "new": f.new} for f in c.fields]} for c in diff.records],
    }


def to_json(diff: Diff) -> str:
    """The machine shape: ``{version, base, head, bump, counts, schema: [...], records: [...]}``."""
    return json.dumps(as_dict(diff), ensure_ascii=False, indent=2) + "\n"


def compare_sources(root: str | Path, old: str, new: str | None = None) -> Diff:
    """The diff between two named versions; ``new=None`` is the working copy at ``root``."""
    head = load_package(root) if new is None else read_version(root, new)
    return compare(read_version(root, old), head, old, new or "working copy")


# --- releases ---------------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, int, int]:
    match = SEMVER.fullmatch(text or "")
    if not match:
        raise CivharmError(f"{text!r} is not a release version (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
    return int(match[1]), int(match[2]), int(match[3])


def read_releases(root: str | Path) -> list[dict]:
    """The releases recorded in releases.json, oldest first ([] when there is none yet)."""
    path = _root_of(root) / RELEASES_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CivharmError(f"{path}: not valid JSON ({exc})")
    listed = data.get("releases") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not all(isinstance(e, dict) and SEMVER.fullmatch(str(e.get("version"))) for e in listed):
        raise CivharmError(f"{path}: must hold {{\"releases\": [{{\"version\": \"X.Y.Z\", …}}, …]}}")
    return listed


def release_ref(root: Path, entry: dict) -> str:
    """The commit of a recorded release: its tag, or else the commit that added it to releases.json."""
    version = entry["version"]
    tag = entry.get("tag") or f"v{version}"
    if _is_repository(root) and _git(root, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}").returncode == 0:
        return tag
    if _is_repository(root):
        log = _git(root, "log", "--format=%H", "--reverse", "-S", f'"version": "{version}"', "--", RELEASES_FILE)
        commits = log.stdout.decode().split()
        if log.returncode == 0 and commits:
            return commits[0]
    raise CivharmError(f"release {version} is in {RELEASES_FILE} but neither tag {tag} nor a commit adding it was found "
                       "(fetch tags and full history, or pass --base with the release zip)")


def last_release_source(root: str | Path) -> str | None:
    """The git ref of the last recorded release, or None before the first release."""
    releases = read_releases(root)
    return release_ref(_root_of(root), releases[-1]) if releases else None
