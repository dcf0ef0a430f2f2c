"""``civharm add``: add one report (and its incident, source and damage) as a single change.

The contributor writes what the page says; this module fills in what can be derived (IDs,
status, record version, dates of the change, the incident's figures by the figure rule),
shows duplicate candidates for a new incident, validates the whole package as it would
be, and only then writes every file at once. Nothing is written when any step fails.
"""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import duplicates
from .atomic import FaultHook, os_error, write_files
from .corrections import apply_figure_rule, cell_of, correct, fresh_row, record_key, records, serialise, supersede, to_cell, typed_rows
from .diff import KEY_JOIN
from .findings import CivharmError, Finding
from .ids import new_id
from .package import BadPath, Package, safe_path, safe_relative
from .submission import Decision, Submission
from .validate import Options, run


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


def plan(package: Package, submission: Submission, today: dt.date) -> Plan:
    """Work out every row to add or change; touches no file."""
    missing = [name for name in ("incidents", "reports", "damage", "sources", "changes", "duplicate_decisions") if package.get(name) is None or package[name].raw is None or package[name].unread is not None]
    if missing:
        raise CivharmError(f"the package lacks readable table(s) {', '.join(missing)}; run civharm validate")
    tables = {name: records(package[name]) for name in ("incidents", "reports", "damage", "sources", "changes")}
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
        incident = fresh_row(package["incidents"], {**submission.incident, "incident_id": new_id("incidents")}, today)
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
        tables["sources"].append(fresh_row(package["sources"], submission.source, today))
    tables["reports"].append(fresh_row(package["reports"], {**submission.report, "report_id": report_id, "incident_id": incident_id}, today))
    for earlier in submission.supersedes:
        supersede(tables, earlier, report_id, today)
    for damage in submission.damage:
        tables["damage"].append(fresh_row(package["damage"], {**damage, "damage_id": new_id("damage"), "report_id": report_id}, today))
    changed = apply_figure_rule(package, tables, incident_id, report_id, new_incident, today)
    candidates: list[duplicates.Candidate] = []
    if new_incident:
        typed = typed_rows(package, "incidents", tables["incidents"])
        candidates = [c for c in duplicates.near_duplicates(typed) if incident_id in (c.a, c.b) and c.score >= duplicates.THRESHOLD]
    files = {package.root / package[name].path: serialise(package[name].header, rows) for name, rows in tables.items()}
    original = {path: path.read_text(encoding="utf-8") for path in files}
    files = {path: text for path, text in files.items() if original[path] != text}
    return Plan(incident_id, report_id, new_incident, candidates, files, changed, package.root, tables)


def compare(built: Plan, other: str, sources: dict[str, str] | None = None) -> list[tuple[str, str, str]]:
    """The new incident and a candidate side by side: (what, new, candidate) for dates, place, means, figures, sources."""
    rows = {r["incident_id"]: r for r in built.tables["incidents"]}
    new, old = rows[built.incident_id], rows.get(other, {})
    names = sources or {}

    def get(row, *names_):
        return " ".join(to_cell(row.get(n)) for n in names_ if to_cell(row.get(n))).strip()

    def dates(row):
        span = to_cell(row.get("date_start")) if row.get("date_start") == row.get("date_end") else f"{to_cell(row.get('date_start'))} to {to_cell(row.get('date_end'))}"
        return f"{span} ({get(row, 'date_precision')}, {get(row, 'date_basis')})" + (f" {row['time_of_day']}" if to_cell(row.get("time_of_day")) else "")

    def place(row):
        parts = [get(row, "locality_en") or get(row, "area") or "-", get(row, "subdivision_code")]
        if to_cell(row.get("geonames_id")):
            parts.append(f"GeoNames {row['geonames_id']}")
        if to_cell(row.get("site_type")):
            parts.append(" ".join(p for p in (row["site_type"], to_cell(row.get("site_detail"))) if p))
        return ", ".join(p for p in parts if p)

    def toll(row, kind):
        shown = []
        for who in ("civilians", "children", "all"):
            low, high = to_cell(row.get(f"{who}_{kind}_min")), to_cell(row.get(f"{who}_{kind}_max"))
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
    rows = records(resource)
    for decision in decisions:
        a, b = sorted((built.incident_id, decision.incident))
        rows.append(fresh_row(resource, {"incident_a": a, "incident_b": b, "decision": "distinct", "reason": decision.reason,
                                    "note": decision.note.strip(),
                                    "fingerprint": duplicates.fingerprint(basis[decision.reason], incidents[a], incidents[b])}, today))
    built.files[package.root / resource.path] = serialise(resource.header, rows)


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
    incidents = {cell_of(r.get("incident_id")): r for r in records(package["incidents"])}
    resource = package["incidents"]
    for incident in (a, b):
        if incident not in incidents:
            raise CivharmError(f"{resource.path}: no incident {incident}")
        if cell_of(incidents[incident].get("status")) != "active":
            raise CivharmError(f"{resource.path}: incident {incident} is {cell_of(incidents[incident].get('status')) or 'without status'}, "
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
    tables = {"duplicate_decisions": records(decisions), "changes": records(package["changes"])}
    fingerprint = duplicates.fingerprint(duplicates.rests_on(decisions.schema)[reason], incidents[a], incidents[b])
    values = {"status": "active", "decision": "distinct", "reason": reason, "note": note.strip(), "fingerprint": fingerprint}
    key = KEY_JOIN.join((a, b))
    rows = tables["duplicate_decisions"]
    index = next((i for i, r in enumerate(rows) if record_key("duplicate_decisions", r) == key), None)
    changed: list[str] = []
    if index is None:
        rows.append(fresh_row(decisions, {"incident_a": a, "incident_b": b, **values}, today))
        index = len(rows) - 1
        line = serialise(decisions.header, rows[:-1]).count("\n") + 1  # a note may hold line breaks
    else:
        line = decisions.line_of(index)
        existing = rows[index]
        if cell_of(existing.get("status")) == "active" and cell_of(existing.get("decision")) == "merged":
            raise CivharmError(f"{decisions.path}:{line}: the pair {a}, {b} is decided merged (one event); "
                               "retract that decision first if the two are in fact different events")
        changed = correct(tables, "duplicate_decisions", key, values,
                          f"Distinct decision renewed ({reason}): the pair was checked against its pages again (civharm decide).", today)
        if not changed:
            raise CivharmError(f"{decisions.path}:{line}: the pair {a}, {b} is already decided distinct with this reason, "
                               "note and fingerprint; nothing to change")
    files = {package.root / decisions.path: serialise(decisions.header, rows)}
    if changed:
        files[package.root / package["changes"].path] = serialise(package["changes"].header, tables["changes"])
    return PairDecision((a, b), line, fingerprint, changed, files, package.root)


def _package_files(package: Package) -> list[str]:
    """The descriptor and each data and schema file it names inside the package, as relative paths. A path the
    package refuses (absolute, a URL, `..`, out through a symlink) is not copied: read in the copy, it is refused
    the same way, and nothing is ever written outside the copy."""
    paths = ["datapackage.json"]
    for resource in package.resources.values():
        for path in (resource.path, resource.schema_path):
            try:
                inside = safe_path(package.root, path) is not None
            except BadPath:
                inside = False
            if inside:
                paths.append(safe_relative(path))
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


