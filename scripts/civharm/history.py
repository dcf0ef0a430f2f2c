"""The history gate: findings for every way a version rewrites the history recorded in a base version.

Records are never deleted, IDs never change or move, a changed row raises record_version and
last_updated and is logged in the append-only corrections log, and released keys stay. What
makes a row the same record is ``civharm.identity``; the rows compared come from
``civharm.diff``; the base version is read by ``civharm.versions``.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from .diff import BOOKKEEPING, KEY_JOIN, LEVEL_OF, LOG_TABLE, Rows, schema_changes, table_rows, tables
from .findings import Finding, Rule, Severity, declare, json_pointer, quote
from .identity import PAIRS_COMPARED, SAME_RECORD, changed_identity, dropped_keys, repeats, taken_over, unique_keys
from .package import Package, Resource, parse_date, schema_location
from .versions import read_version


RULES = declare(
    Rule("history/deleted-row", Severity.ERROR, "No row of the base version is deleted.",
                "Published records are cited; a record found wrong is retracted or merged and stays in the data."),
    Rule("history/id-changed", Severity.ERROR, "IDs are never changed or reused: an ID keeps the record it names (see Record identity).",
                "An ID names one record forever; a changed or reused ID silently re-points every citation of it."),
    Rule("history/unversioned-change", Severity.ERROR, "A changed row raises record_version and last_updated and is logged.",
                "Every correction must be visible: the version and date show that a record changed, the log says how and why."),
    Rule("history/corrections-log-edited", Severity.ERROR, "The corrections log is append-only.",
                "A log that can be rewritten proves nothing; a wrong entry is corrected by a new entry."),
    Rule("history/key-dropped", Severity.ERROR, "A released table keeps its keys: primary key, unique and required constraints, foreign keys.",
                "IDs, citations and joins rely on them; a schema without them would let the next version repeat an ID or leave a "
                "reference dangling and still pass validation."),
    Rule("history/duplicate-key", Severity.ERROR, "Rows keep to the keys of the released schema, even where the new schema dropped them.",
                "A released ID or unique value names one row; the released schema, not an edited one, says which values must stay unique."),
    Rule("history/log-old-value", Severity.ERROR, "A corrections-log entry's old_value is what the field held before that change: "
                "the base version's value, or the new_value of the field's entry before it.",
                "An entry that misstates the old value rewrites history: a figure changed from 25 to 250 and logged as "
                "250 → 250 would look as if it had always been 250."),
    Rule("history/field-dropped", Severity.ERROR, "A field that holds values in the base version stays in its table.",
                "Dropping a field (from the schema and the CSV file) erases every value in it, and a dropped record_version "
                "would switch off the version check; a field is dropped only in a major release, with a changelog note."),
    Rule("history/unreadable-table", Severity.ERROR, "A table whose rows cannot be read is not compared as if it were empty.",
                "Read the wrong way, a table would look as if all its rows were deleted, or none changed; its history is checked once it can be read."),
)


class LogEntry(NamedTuple):
    """One corrections-log row about one field of one record."""

    version: int
    old: str
    new: str
    line: int
    released: bool  # the base version's log holds this very row
    day: str = ""  # change_date as written


def _log_entries(base: Package, head: Package) -> dict[tuple[str, str, str], list[LogEntry]]:
    """Corrections-log entries of ``head`` by (table, record_id, field).

    A row repeating another row whole (the structure stage reports the repeated key) counts once.
    """
    log, released = table_rows(head.get(LOG_TABLE)), table_rows(base.get(LOG_TABLE))
    entries: dict[tuple[str, str, str], list[LogEntry]] = {}
    if log is None:
        return entries
    columns = released.header if released else []
    in_base = {_cells(row, columns) for row in [*released.rows.values(), *(r for _, _, r in released.extra)]} if released else set()
    for key, line, row in [(k, log.lines[k], r) for k, r in log.rows.items()] + log.extra:
        version = _version(row.get("record_version", ""))
        if version is None or line != log.lines[key] and row == log.rows[key]:
            continue
        entries.setdefault((row.get("table", ""), row.get("record_id", ""), row.get("field", "")), []).append(
            LogEntry(version, row.get("old_value", ""), row.get("new_value", ""), line, _cells(row, columns) in in_base,
                     row.get("change_date", "")))
    return entries


def _cells(row: dict[str, str], columns: list[str]) -> tuple[str, ...]:
    """A log row by the base log's columns (a column added since does not make a released row new)."""
    return tuple(row.get(c, "") for c in columns)


def _version(text: str) -> int | None:
    """A record_version cell as a number: ASCII digits only (``int`` would also read '١', and fail on '²')."""
    return int(text) if re.fullmatch("[0-9]{1,18}", text) else None


def _content_fields(old: Rows, new: Rows) -> list[str]:
    return [c for c in old.header if c in new.header and c not in old.key_fields and c not in BOOKKEEPING]


def _matched_renames(old: Rows, new: Rows, deleted: list[str], added: list[str]) -> dict[str, str]:
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


def _reused(old: Rows, new: Rows, fields: list[str]) -> list[tuple[str, int]]:
    """(key, line) of rows repeating a base ID; the row most like the base's keeps the ID."""
    out = []
    for key in dict.fromkeys(k for k, _, _ in new.extra if k in old.rows):
        rows = [(new.lines[key], new.rows[key])] + [(line, row) for k, line, row in new.extra if k == key]
        same = [sum(row.get(f, "") == old.rows[key].get(f, "") for f in fields) for _, row in rows]
        keep = same.index(max(same))
        new.lines[key], new.rows[key] = rows[keep]
        out += [(key, line) for index, (line, _) in enumerate(rows) if index != keep]
    return out


def _unversioned(name: str, old: Rows, new: Rows, key: str, changed: list[str], log, log_path: str) -> tuple[list[Finding], list[Finding]]:
    """Findings for one changed record: (a missing version bump, new date or log entry; log entries that misstate an old value)."""
    before, after = old.rows[key], new.rows[key]
    line, out, misstated = new.lines[key], [], []
    rule = "history/unversioned-change"
    listed = ", ".join(changed)
    old_v, new_v = _version(before.get("record_version", "")), _version(after.get("record_version", ""))
    versions: range | set = set()
    if "record_version" in new.header and old_v is not None:
        if new_v is None or new_v <= old_v:
            out.append(RULES[rule].finding(new.path, line, "record_version",
                                f"record {key} changed ({listed}) but record_version is {quote(after.get('record_version', ''), 40)} "
                                f"(base: {old_v}); raise it by one"))
            versions = {new_v} if new_v is not None else set()
        else:
            versions = range(old_v + 1, new_v + 1)
    raised = isinstance(versions, range)  # record_version went up: the log rows of those versions date the change
    logged_days = {e.day for f in changed for e in log.get((name, key, f), []) if raised and not e.released and e.version in versions}
    if "last_updated" in new.header and not _day_of_change(after.get("last_updated", ""), before.get("last_updated", ""), logged_days):
        out.append(RULES[rule].finding(new.path, line, "last_updated",
                            f"record {key} changed ({listed}) but last_updated is {after.get('last_updated') or 'empty'} "
                            f"(base: {before.get('last_updated') or 'empty'}); set it to the day of the change (YYYY-MM-DD)"))
    target = str(max(new_v, old_v + 1)) if new_v is not None and old_v is not None else "<new record_version>"
    for name_of_field in changed:
        value = after.get(name_of_field, "")
        entries = [e for e in log.get((name, key, name_of_field), []) if not versions or e.version in versions]
        latest = max(entries, key=lambda e: (e.version, e.line), default=None)  # highest version, then the log's later line (never the larger value)
        if latest is None:
            out.append(RULES[rule].finding(new.path, line, name_of_field,
                                f"changed from {before.get(name_of_field, '')!r} to {value!r} with no entry in {log_path} "
                                f"(table {name}, record_id {key}, field {name_of_field}, new_value {value!r}, record_version {target})"))
        elif latest.new != value:
            out.append(RULES[rule].finding(new.path, line, name_of_field,
                                f"holds {value!r} but its entry in {log_path} (line {latest.line}) says new_value {latest.new!r}"))
        misstated += _misstated(name, key, name_of_field, before.get(name_of_field, ""), entries, log_path)
    return out, misstated


def _misstated(name: str, key: str, field: str, base_value: str, entries: list[LogEntry], log_path: str) -> list[Finding]:
    """The entries of one change of a field, in order, whose old_value is not what the field held before them.

    The first new entry starts from the base version's value, each later one from the new_value
    of the entry before it, so a field corrected twice (versions 2 and 3) is a chain; the last
    entry's new_value is the field's value now (``_unversioned`` checks that).
    """
    out, value, source = [], base_value, "the base version has"
    for entry in sorted((e for e in entries if not e.released), key=lambda e: (e.version, e.line)):
        if entry.old != value:
            out.append(RULES["history/log-old-value"].finding(log_path, entry.line, "old_value",
                                f"old_value {quote(entry.old)} is not what {field} of {name} record {key} held before this change: "
                                f"{source} {quote(value)}; old_value must be {quote(value)}"))
        value, source = entry.new, f"its entry on line {entry.line} left"
    return out


def _day_of_change(new: str, old: str, logged_days: set[str]) -> bool:
    """Whether last_updated ``new`` can be the day of the change: after the base's ``old`` (an unreadable base date: any
    date is), or that same day when the change's log rows are dated it too (a record corrected twice in one day)."""
    new_day, old_day = parse_date(new), parse_date(old)
    return new_day is not None and (old_day is None or new_day > old_day or (new_day == old_day and new in logged_days))


def _log_edits(old: Rows, new: Rows | None) -> list[Finding]:
    rule = "history/corrections-log-edited"
    out = []
    for key, row in old.rows.items():
        if new is None or key not in new.rows:
            out.append(RULES[rule].finding((new or old).path, None, old.key_fields[0],
                                f"entry {key} (line {old.lines[key]} of the base) was removed; the corrections log is "
                                "append-only: put it back and add a new entry that corrects it"))
            continue
        for column in old.header:
            if row.get(column, "") != new.rows[key].get(column, ""):
                out.append(RULES[rule].finding(new.path, new.lines[key], column,
                                    f"entry {key} was edited ({row.get(column, '')!r} → {new.rows[key].get(column, '')!r}); the "
                                    "corrections log is append-only: restore it and add a new entry that corrects it"))
    return out


def check(base: Package, head: Package) -> list[Finding]:
    """Findings for every way ``head`` rewrites the history recorded in ``base``."""
    log = _log_entries(base, head)
    log_resource = head.get(LOG_TABLE)
    log_path = log_resource.path if log_resource else "the corrections log"
    findings: list[Finding] = []
    for name, old, new, unread in tables(base, head):
        if unread is not None:
            side, why = unread
            resource = head.get(name) or base.get(name)
            findings.append(RULES["history/unreadable-table"].finding(resource.path, None, None,
                                     f"table {name} could not be read in the {'base version' if side == 'base' else 'package'} "
                                     f"({why}), so its rows were not compared with the base; fix that and validate again"))
            continue
        if old is None:
            continue  # a new table: nothing in it existed before
        if new is not None:
            findings += _key_findings(head, base[name], head[name], old)
        if name == LOG_TABLE:  # a dropped log column shows as an edit of every entry
            findings += _log_edits(old, new)
            continue
        if new is None:
            new = Rows(old.path, old.header, old.key_fields, old.has_merge)
        else:
            findings += _dropped_fields(head, base[name], head[name], old, new)
        deleted = [k for k in old.rows if k not in new.rows]
        added = [k for k in new.rows if k not in old.rows]
        key_field = new.key_fields[0]
        renamed = _matched_renames(old, new, deleted, added) if added else {}
        fix = "retract it or merge it (status, status_reason, merged_into)" if old.has_merge else "retract it (status, status_reason)"
        for key in deleted:
            if key in renamed:
                findings.append(RULES["history/id-changed"].finding(new.path, new.lines[renamed[key]], key_field,
                                         f"ID changed from {key} to {renamed[key]} (the record on line {old.lines[key]} of the base); "
                                         f"IDs are permanent: put {key} back"))
            else:
                findings.append(RULES["history/deleted-row"].finding(new.path, None, key_field,
                                         f"record {key} (line {old.lines[key]} of the base) was deleted; records are never deleted: "
                                         f"put the row back and {fix}, with a new record_version and a corrections-log entry"))
        fields = _content_fields(old, new)
        for key, line in _reused(old, new, fields):
            findings.append(RULES["history/id-changed"].finding(new.path, line, key_field,
                                     f"ID {key} reused: it belongs to the record on line {new.lines[key]}; "
                                     "a new record needs a new ID (civharm.ids.new_id)"))
        findings += _changed_records(name, old, new, fields, deleted, log, log_path)
    return findings


def _changed_records(name: str, old: Rows, new: Rows, fields: list[str], deleted: list[str], log, log_path: str) -> list[Finding]:
    """Findings for the base records whose ID is still there: another record under it, or a change not in due form."""
    changed = {k: [f for f in fields if old.rows[k].get(f, "") != new.rows[k].get(f, "")] for k in old.rows if k in new.rows}
    changed = {k: c for k, c in changed.items() if c}
    taken = taken_over(old.rows, new.rows, list(changed), list(changed) + deleted, fields)
    key_field, rule = new.key_fields[0], "history/id-changed"
    out: list[Finding] = []
    for key, changed_fields in changed.items():
        line = new.lines[key]
        if key in taken:
            out.append(RULES[rule].finding(new.path, line, key_field,
                                f"ID {key} now holds the record that {taken[key]} held (line {old.lines[taken[key]]} of the base): "
                                "an ID never moves to another record; put the rows back as they were"))
        elif identity := changed_identity(name, old.rows[key], new.rows[key]):
            out.append(RULES[rule].finding(new.path, line, key_field,
                                f"ID {key} now holds a different record: {identity} changed, and that identifies the record "
                                f"(line {old.lines[key]} of the base); put it back, retract {key} and add the corrected record under a new ID"))
        else:
            problems, misstated = _unversioned(name, old, new, key, changed_fields, log, log_path)
            out += misstated
            filled = [f for f in fields if old.rows[key].get(f, "") or new.rows[key].get(f, "")]
            if problems and len(changed_fields) >= 3 and len(changed_fields) * 2 > len(filled):
                out.append(RULES[rule].finding(new.path, line, key_field,
                                    f"ID {key} now holds a different record ({len(changed_fields)} of {len(filled)} filled fields differ "
                                    f"from line {old.lines[key]} of the base): an ID is never reused; give the new record a "
                                    "new ID and put the old one back"))
            else:
                out += problems
    return out


def _key_findings(head: Package, released: Resource, now: Resource, old: Rows) -> list[Finding]:
    """Keys of the released schema that the new one drops, and the rows that repeat a key it no longer enforces.

    A repeated base ID is ``history/id-changed`` already (``_reused``); other repeats of the
    released primary key, and repeats of a released unique field, are ``history/duplicate-key``.
    """
    file, prefix = schema_location(head, now)
    out = [RULES["history/key-dropped"].finding(file, None, field_name, f"{message}; a released table keeps its keys: restore it",
                    pointer=prefix + pointer) for pointer, field_name, message in dropped_keys(released.schema, now.schema)]
    enforced = unique_keys(now.schema)
    for key in unique_keys(released.schema):
        if key in enforced or not set(key) <= set(now.frame.columns):
            continue
        for index, first, cells in repeats(now.frame, key):
            value = KEY_JOIN.join(cells)
            if list(key) == old.key_fields and value in old.rows:
                continue
            out.append(RULES["history/duplicate-key"].finding(now.path, now.line_of(index), ",".join(key),
                                f"{quote(value)} repeats line {now.line_of(first)}: the released schema keeps {', '.join(key)} unique"))
    return out


def _dropped_fields(head: Package, released: Resource, now: Resource, old: Rows, new: Rows) -> list[Finding]:
    """Columns of the base table that hold values there and are gone from the table now.

    Located at the schema when it dropped the field too (the change ``civharm diff`` lists, with
    the release level it needs), else at the CSV header.
    """
    dropping = {c.dropped: c for c in schema_changes(now.name, released.schema, now.schema) if c.dropped}
    file, prefix = schema_location(head, now)
    names = [f.get("name") if isinstance(f, dict) else None for f in now.schema.get("fields", [])]
    out = []
    for column in (c for c in old.header if c not in new.header):
        filled = sum(1 for row in old.rows.values() if row.get(column, ""))
        if not filled:
            continue
        change = dropping.get(column)
        level = change.level if change else LEVEL_OF["field-removed"]
        what = change.detail if change else f"column `{column}` removed from {new.path}"
        renamed = change is not None and change.was and change.field != column
        effect = (f"so the gate cannot follow its values in {filled} of the base's {len(old.rows)} rows under the new name"
                  if renamed else f"erasing its values in {filled} of the base's {len(old.rows)} rows")
        message = (f"{what}, {effect}; a field is dropped or renamed only in a {level} release (see RELEASING.md): "
                   "put it back, or make that release on purpose")
        rule = RULES["history/field-dropped"]
        if change is None:
            out.append(rule.finding(new.path, 1, column, message))
        else:
            at = json_pointer("fields", names.index(change.field)) if change.was and change.field in names else "/fields"
            out.append(rule.finding(file, None, column, message, pointer=prefix + at))
    return out


def check_against(head: Package, source: str) -> list[Finding]:
    """The history gate of ``civharm validate --base SOURCE``."""
    return check(read_version(head.root, source), head)

