"""The row-level diff between two versions of the package, and its rendering (Markdown, JSON).

Rows of both versions are matched by the base version's primary key (a composite key is
written as its values joined by ``+``), cells compared as the strings in the file. Each
difference carries the Semantic Versioning level it needs (``required_bump``; the table is in
RELEASING.md). Versions are read by ``civharm.versions``; the history gate, which judges
whether a change was made in due form, is ``civharm.history``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .findings import CivharmError
from .identity import declared_key
from .package import Package, Resource, load_package
from .versions import read_version

LOG_TABLE = "changes"  # the append-only corrections log
BOOKKEEPING = ("record_version", "last_updated")
KEY_JOIN = "+"
LEVELS = ("none", "patch", "minor", "major")
LABEL_FIELDS = ("summary", "title", "name", "note", "notes", "reason", "object_type")


@dataclass(frozen=True)
class Bump:
    """One row of the bump rule: a kind of difference and the smallest release level it needs."""

    change: str  # a SchemaChange kind (field-added split by required), or a record change kind
    level: str
    text: str  # as RELEASING.md words it


# The bump rule, declared once: required_bump reads it, RELEASING.md's table is generated from it (cog),
# and tests/test_history.py checks each row with a difference of that kind.
BUMPS = (
    Bump("field-removed", "major", "a removed field"),
    Bump("field-renamed", "major", "a renamed field"),
    Bump("type-changed", "major", "a retyped field"),
    Bump("constraint-tightened", "major", "a tightened constraint (new `required`/`unique`, higher minimum, lower maximum, "
                                          "fewer allowed values, a changed pattern)"),
    Bump("field-added-required", "major", "a new required field"),
    Bump("table-removed", "major", "a removed table"),
    Bump("primaryKey-changed", "major", "a changed primary key"),
    Bump("foreignKeys-added", "major", "a new foreign key"),
    Bump("missingValues-changed", "major", "changed missing values"),
    Bump("fields-reordered", "major", "a changed column order"),
    Bump("deleted", "major", "a deleted record"),
    Bump("added", "minor", "new records (any table but the corrections log)"),
    Bump("retracted", "minor", "retractions"),
    Bump("merged", "minor", "merges"),
    Bump("restored", "minor", "restored records"),
    Bump("field-added-optional", "minor", "new optional fields"),
    Bump("table-added", "minor", "new tables"),
    Bump("constraint-loosened", "minor", "loosened constraints"),
    Bump("foreignKeys-dropped", "minor", "a dropped foreign key"),
    Bump("changed", "patch", "corrections (changed cells of existing records)"),
    Bump("log-added", "patch", "new corrections-log entries"),
    Bump("field-documented", "patch", "a reworded field description or title"),
    Bump("table-documented", "patch", "a reworded table description"),
)
LEVEL_OF = {bump.change: bump.level for bump in BUMPS}


def bump_table() -> str:
    """RELEASING.md's table of the bump rule, from ``BUMPS``."""
    rows = ["| the diff contains | smallest bump |", "|---|---|"]
    for level in ("major", "minor", "patch"):
        rows.append(f"| {'; '.join(b.text for b in BUMPS if b.level == level)} | {level} |")
    rows.append("| nothing | refused: there is nothing to release |")
    return "\n".join(rows) + "\n"


# --- rows of one table ------------------------------------------------------------------------


@dataclass
class Rows:
    path: str
    header: list[str]
    key_fields: list[str]
    has_merge: bool
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    extra: list[tuple[str, int, dict[str, str]]] = field(default_factory=list)  # rows repeating a key


def table_rows(resource: Resource | None, key_fields: list[str] | None = None) -> Rows | None:
    """The table's rows by key: ``key_fields`` (the base version's), else its own primary key or first column."""
    if resource is None or resource.raw is None or resource.unread is not None:
        return None
    header = [str(c) for c in resource.frame.columns]
    key_fields = key_fields or declared_key(resource.schema) or header[:1]
    if not key_fields or not set(key_fields) <= set(header):
        return None  # a structural error; frictionless reports it
    names = {f.get("name") for f in resource.schema.get("fields", []) if isinstance(f, dict)}
    out = Rows(resource.path, header, key_fields, "merged_into" in names)
    for index, record in enumerate(resource.frame.to_dict("records")):
        row = {k: ("" if pd.isna(v) else str(v)) for k, v in record.items()}
        key = KEY_JOIN.join(row[k] for k in key_fields)
        if key in out.rows:
            out.extra.append((key, resource.line_of(index), row))
        else:
            out.rows[key], out.lines[key] = row, resource.line_of(index)
    return out


def tables(base: Package, head: Package):
    """(name, base rows, head rows, None) for every table in either version, head's order first.

    A table that one version lists but whose rows cannot be read comes as (name, None, None,
    (version, why)): its rows are not compared, since every row would otherwise look deleted
    (or none changed), and each caller says so. Rows of both versions are keyed by the base
    version's primary key.
    """
    names = list(head.resources) + [n for n in base.resources if n not in head.resources]
    for name in names:
        old = table_rows(base.get(name))
        new = table_rows(head.get(name), old.key_fields if old else None)
        unread = [(side, why_unread(package.get(name))) for side, package, rows in (("base", base, old), ("head", head, new))
                  if rows is None and package.get(name) is not None]
        yield (name, old, new, None) if not unread else (name, None, None, unread[0])


def why_unread(resource: Resource) -> str:
    """Why ``table_rows`` could not read a table: its loading finding, or a primary key missing from its header."""
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
    was: str | None = None  # a renamed field's old name

    @property
    def dropped(self) -> str | None:
        """The field of the older schema this change takes away (removed or renamed), else None."""
        return self.was or self.field if self.kind in ("field-removed", "field-renamed") else None


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
    for name, old, new, unread in tables(base, head):
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
        return [SchemaChange(table, None, "table-added", f"new table `{table}`", LEVEL_OF["table-added"])]
    if new is None:
        return [SchemaChange(table, None, "table-removed", f"table `{table}` removed", LEVEL_OF["table-removed"])]
    out: list[SchemaChange] = []
    old_fields = {f["name"]: f for f in old.get("fields", []) if isinstance(f, dict) and "name" in f}
    new_fields = {f["name"]: f for f in new.get("fields", []) if isinstance(f, dict) and "name" in f}
    removed = [n for n in old_fields if n not in new_fields]
    added = [n for n in new_fields if n not in old_fields]
    if len(removed) == 1 and len(added) == 1 and list(old_fields).index(removed[0]) == list(new_fields).index(added[0]):
        out.append(SchemaChange(table, added[0], "field-renamed", f"field `{removed[0]}` renamed to `{added[0]}`", LEVEL_OF["field-renamed"],
                                removed[0]))
        removed, added = [], []
    out += [SchemaChange(table, n, "field-removed", f"field `{n}` removed", LEVEL_OF["field-removed"]) for n in removed]
    for name in added:
        required = new_fields[name].get("constraints", {}).get("required")
        out.append(SchemaChange(table, name, "field-added", f"new {'required' if required else 'optional'} field `{name}`",
                                LEVEL_OF["field-added-required" if required else "field-added-optional"]))
    for name in (n for n in new_fields if n in old_fields):
        a, b = old_fields[name], new_fields[name]
        if a.get("type", "string") != b.get("type", "string"):
            out.append(SchemaChange(table, name, "type-changed", f"`{name}` type {a.get('type', 'string')} → {b.get('type', 'string')}", LEVEL_OF["type-changed"]))
        ca, cb = a.get("constraints", {}), b.get("constraints", {})
        for key in sorted(set(ca) | set(cb)):
            if ca.get(key) != cb.get(key):
                kind = "constraint-tightened" if _tighter(key, ca.get(key), cb.get(key), a, b) else "constraint-loosened"
                out.append(SchemaChange(table, name, kind, f"`{name}` {key}: {json.dumps(ca.get(key), ensure_ascii=False)} → "
                                        f"{json.dumps(cb.get(key), ensure_ascii=False)}", LEVEL_OF[kind]))
        rest_a = {k: v for k, v in a.items() if k not in ("type", "constraints")}
        rest_b = {k: v for k, v in b.items() if k not in ("type", "constraints")}
        if rest_a != rest_b:
            keys = sorted(k for k in set(rest_a) | set(rest_b) if rest_a.get(k) != rest_b.get(k))
            out.append(SchemaChange(table, name, "field-documented", f"`{name}` {', '.join(keys)} edited", LEVEL_OF["field-documented"]))
    for key in ("primaryKey", "foreignKeys", "missingValues"):
        if old.get(key) != new.get(key):
            bump = f"{key}-changed"
            if key == "foreignKeys":  # a new foreign key may reject rows; a dropped one cannot
                new_keys = [fk for fk in new.get(key) or [] if fk not in (old.get(key) or [])]
                bump = "foreignKeys-added" if new_keys else "foreignKeys-dropped"
            out.append(SchemaChange(table, None, f"{key}-changed", f"{key} {json.dumps(old.get(key))} → {json.dumps(new.get(key))}",
                                    LEVEL_OF[bump]))
    if [n for n in old_fields if n in new_fields] != [n for n in new_fields if n in old_fields]:
        out.append(SchemaChange(table, None, "fields-reordered", "columns reordered", LEVEL_OF["fields-reordered"]))
    if old.get("description") != new.get("description"):
        out.append(SchemaChange(table, None, "table-documented", "table description edited", LEVEL_OF["table-documented"]))
    return out


def bump_reasons(diff: Diff) -> dict[str, list[str]]:
    """Why each release level is needed: ``{"major": [...], "minor": [...], "patch": [...]}``."""
    reasons: dict[str, list[str]] = {"major": [], "minor": [], "patch": []}
    for change in diff.schema:
        reasons[change.level].append(f"{change.table}: {change.detail}")
    for table, kinds in diff.counts().items():
        for kind, count in kinds.items():
            reasons[LEVEL_OF["log-added" if kind == "added" and table == LOG_TABLE else kind]].append(f"{table}: {count} {kind}")
    return reasons


def required_bump(diff: Diff) -> str:
    """The smallest Semantic Versioning level the diff allows: none, patch, minor or major."""
    reasons = bump_reasons(diff)
    return next((level for level in ("major", "minor", "patch") if reasons[level]), "none")



# --- rendering a diff -------------------------------------------------------------------------

KIND_TITLES = (("added", "Added"), ("retracted", "Retracted"), ("merged", "Merged"), ("restored", "Restored"),
               ("changed", "Changed"), ("deleted", "Deleted"))


def format_value(value: str) -> str:
    """A cell for Markdown: on one line, at most 120 characters, in code quotes; ``(empty)`` for nothing."""
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


def record_line(change: RecordChange, located: bool = True) -> str:
    """One Markdown list item for a changed record: its ID, where it is, and why it changed."""
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
                out.append(record_line(change))
                if kind not in ("added", "deleted"):
                    out += [f"  - `{f.field}`: {format_value(f.old)} → {format_value(f.new)}" for f in change.fields]
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

