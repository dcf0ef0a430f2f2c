"""Changes to existing records through the corrections log: supersession, recomputation, hand corrections.

Every change of a stored record raises its ``record_version`` and writes one log row per field,
with the reason and the statement that justifies it; ``civharm add``, ``recompute`` and
``decide`` all go through ``correct``. The helpers at the top read and write tables as rows of
cell text, the form the CSV files have.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import figures
from .atomic import FaultHook, write_files
from .diff import KEY_JOIN
from .findings import CivharmError
from .ids import new_id
from .package import Package


def to_cell(value) -> str:
    """A value a contributor gave (text, number, date, bool) as the CSV cell text it is written as."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def fresh_row(resource, values: dict, today: dt.date) -> dict:
    """A new row of ``resource``: the given fields as cell text, status active, record_version 1, last_updated today."""
    unknown = set(values) - set(resource.field_names)
    if unknown:
        raise CivharmError(f"{resource.name}: unknown field(s) {', '.join(sorted(unknown))}; see docs/codebook.md")
    row = {name: to_cell(values.get(name)) for name in resource.field_names}
    if "status" in row and not row["status"]:
        row["status"] = "active"
    if "record_version" in row:
        row["record_version"] = "1"
    if "last_updated" in row:
        row["last_updated"] = today.isoformat()
    return row


def serialise(header: list[str], rows: list[dict]) -> str:
    """A table's CSV text, header first, in the files' dialect (comma, LF)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def records(resource) -> list[dict]:
    """The table's rows as they are in the file (cell text, missing as NA), for rewriting it."""
    if len(resource.frame.columns) < len(resource.header):  # the loader kept only the first columns of a very wide header
        raise CivharmError(f"{resource.path}: the header has {len(resource.header):,} labels, too many to rewrite the file; "
                           "run civharm validate")
    return resource.frame.astype(object).to_dict("records") if not resource.frame.empty else []


def typed_rows(package: Package, name: str, rows: list[dict]) -> pd.DataFrame:
    """The typed frame of a table as its rows would be (rows of cell text, as ``records`` gives)."""
    resource = package[name]
    clone = type(resource)(name=resource.name, path=resource.path, schema=resource.schema, schema_path=resource.schema_path,
                           raw=b"", header=resource.header, frame=pd.DataFrame(rows, columns=resource.header, dtype="string"))
    return clone.typed


# the fields whose values, joined as the history gate joins a key (diff.KEY_JOIN), make a record's ID in the log
ID_FIELDS = {"incidents": ("incident_id",), "reports": ("report_id",), "damage": ("damage_id",), "sources": ("source_id",),
             "duplicate_decisions": ("incident_a", "incident_b")}


def record_key(table: str, row: dict) -> str:
    """The ID a corrections-log row gives a record of ``table`` (a pair's two incident IDs for a decision)."""
    return KEY_JOIN.join(cell_of(row.get(name)) for name in ID_FIELDS[table])


def cell_of(value) -> str:
    """A loaded cell as text: missing (None, NA) is the empty cell."""
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
    changed = [(name, cell_of(row.get(name)), value) for name, value in values.items() if cell_of(row.get(name)) != value]
    if not changed:
        return []
    unknown = [name for name, _, _ in changed if name not in row]
    if unknown:
        raise CivharmError(f"{table}: unknown field(s) {', '.join(unknown)}; see docs/codebook.md")
    if not re.fullmatch("[0-9]{1,9}", cell_of(row.get("record_version"))):
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
    ids = {cell_of(r.get("report_id")): r for r in tables["reports"]}
    if later not in ids:
        raise CivharmError(f"report {later} does not exist")
    if earlier not in ids:
        raise CivharmError(f"report {earlier} does not exist; 'supersedes' names existing reports")
    if earlier == later:
        raise CivharmError(f"report {earlier} cannot supersede itself")
    current = cell_of(ids[earlier].get("superseded_by"))
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
    rows = records(package["reports"])
    incidents = package["incidents"].typed
    if not rows:
        return []
    typed = typed_rows(package, "reports", [*rows, {**dict.fromkeys(package["reports"].header, ""), **{k: to_cell(v) for k, v in report.items()},
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
    order = sorted(np.flatnonzero(mine), key=lambda i: (cell_of(rows[i].get("as_of")), cell_of(rows[i].get("report_id"))))
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
    tables = {name: records(package[name]) for name in ("incidents", "reports", "changes")}
    incidents, reports = package["incidents"].typed, package["reports"].typed
    computed = figures.compute_incident_figures(incidents, reports)
    alleged = attribution.compute_incident_attribution(incidents, reports)
    reason = reason or "Derived fields recomputed by the figure and attribution rules (civharm recompute)."
    logged_before = len(tables["changes"])
    for row in tables["incidents"]:
        incident_id = cell_of(row.get("incident_id"))
        if cell_of(row.get("status")) != "active" or incident_id not in computed.index:
            continue
        values = {}
        if not cell_of(row.get("figures_override_reason")):
            values.update({column: cell_of(None if pd.isna(v) else int(v)) for column, v in computed.loc[incident_id].items()})
        values.update({column: cell_of(alleged.at[incident_id, column]) for column in attribution.FIELDS})
        if values["perpetrator_alleged"] == attribution.UNKNOWN:
            values["attribution_basis"] = attribution.NOT_ATTRIBUTED
        correct(tables, "incidents", incident_id, values, reason, today)
    logged = tables["changes"][logged_before:]
    changes = [("incidents", c["record_id"], c["field"], c["old_value"], c["new_value"]) for c in logged]
    files = {}
    if logged:
        for name in ("incidents", "changes"):
            files[package.root / package[name].path] = serialise(package[name].header, tables[name])
    return Recomputation(changes, files, package.root)


def write_recomputation(done: Recomputation, fault: FaultHook | None = None) -> None:
    """Write the recomputed incidents and their log rows at once, or nothing."""
    if done.files:
        write_files(done.root, done.files, fault=fault)


def apply_figure_rule(package, tables, incident_id, report_id, new_incident, today) -> list[str]:
    """Set the incident's figures to the rule's result; log each change of an existing incident."""
    incidents = typed_rows(package, "incidents", tables["incidents"])
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


