"""``civharm import tfp-daily``: Tech for Palestine's ``casualties_daily.json`` → aggregates.

Each record is one day's report of running totals for the Gaza Strip. Only the figures the
claimant reported are imported (``REPORTED``); the file's ``ext_`` fields are extrapolations
(gaps filled in by Tech for Palestine) and are never imported, nor are fields outside the
issue's scope (massacres, famine, aid seekers, daily increments). A day whose figures differ
in a later file becomes a revision: a new row, and the old one superseded by it.
"""
from __future__ import annotations

import datetime as dt
import json

from .findings import CivharmError, quote
from .limits import MAX_IMPORTED_FIGURE
from .importing import Attribution, Change, SourceFile, Track, attribute, ensure_source, new_row, no_progress, records, stage, supersede

FORMAT = "tfp-daily"
SOURCE_ID = "techforpalestine"
# field of the file → (population, figure of aggregates.csv)
REPORTED = {
    "killed_cum": ("all", "killed"),
    "injured_cum": ("all", "injured"),
    "killed_children_cum": ("children", "killed"),
    "killed_women_cum": ("women", "killed"),
    "med_killed_cum": ("medical_personnel", "killed"),
    "press_killed_cum": ("journalists", "killed"),
    "civdef_killed_cum": ("civil_defence", "killed"),
}
# report_source → (claimant, claimant_type), as Tech for Palestine's documentation names them.
CLAIMANTS = {
    "mohtel": ("Ministry of Health, Gaza (its Telegram channel)", "national_government"),
    "gmotel": ("Government Media Office, Gaza (its Telegram channel)", "national_government"),
    "missing": ("Not named: the file marks the day's report source as missing", "other"),
}
SOURCE = {"source_id": SOURCE_ID, "name": "Tech for Palestine (palestine-datasets)", "source_type": "aggregator",
          "note": "Volunteer project that compiles the daily casualty reports of the Gaza Ministry of Health and Government "
                  "Media Office into open data files; its ext_ fields are extrapolations, not reports."}
ATTRIBUTION = Attribution(
    source={"title": "Tech for Palestine, palestine-datasets: casualties_daily.json (daily reports of the Gaza Ministry of Health "
                     "and Government Media Office), imported with `civharm import tfp-daily`"},
    licence={"name": "other-pd", "title": "Public-domain dedication of Tech for Palestine's palestine-datasets (rows imported from casualties_daily.json)"})
AREA = {"country_code": "PS", "area": "Gaza Strip", "location_precision": "area"}
SERIES = ("period_end", "population")  # with the source: what one imported total is a statement of


def parse(source: SourceFile) -> list[dict]:
    """The file's records, checked: a list of objects with a real report_date, a known report_source, whole numbers."""
    try:
        data = json.loads(source.raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CivharmError(f"{source.name}: not UTF-8 text (byte {exc.start}); a {FORMAT} file is JSON")
    except json.JSONDecodeError as exc:
        raise CivharmError(f"{source.name}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno}); is the file cut short?")
    except RecursionError:
        raise CivharmError(f"{source.name}: JSON nested too deeply; a {FORMAT} file is a list of flat records")
    if not isinstance(data, list):
        raise CivharmError(f"{source.name}#/: expected a JSON list of daily records, found {type(data).__name__}")
    seen: dict[str, int] = {}
    for index, record in enumerate(data):
        _check_record(source.name, index, record, seen)
    if data and not any(field in record for record in data for field in REPORTED):
        raise CivharmError(f"{source.name}: no record holds any of {', '.join(REPORTED)}: not a {FORMAT} file (casualties_daily.json)")
    return data


def _check_record(name: str, index: int, record: object, seen: dict[str, int]) -> None:
    where = f"{name}#/{index}"
    if not isinstance(record, dict):
        raise CivharmError(f"{where}: expected an object (one day's report), found {type(record).__name__}")
    day = record.get("report_date")
    try:
        parsed = dt.date.fromisoformat(day) if isinstance(day, str) and len(day) == 10 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise CivharmError(f"{where}/report_date: expected a date YYYY-MM-DD, found {quote(day)}")
    if day in seen:
        raise CivharmError(f"{where}/report_date: {day} is reported twice (first at #/{seen[day]})")
    seen[day] = index
    if record.get("report_source") not in CLAIMANTS:
        raise CivharmError(f"{where}/report_source: expected one of {', '.join(CLAIMANTS)}, found {quote(record.get('report_source'))}")
    for field in REPORTED:
        value = record.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_IMPORTED_FIGURE):
            raise CivharmError(f"{where}/{field}: expected a whole number from 0 to {MAX_IMPORTED_FIGURE:,}, found {quote(value)}")


def totals(source: SourceFile, data: list[dict], track: Track = no_progress) -> list[dict]:
    """One aggregates row (without ID) per day and population the file reports, children after their whole."""
    out = []
    for record in track(data, f"reading {source.name}"):
        claimant, claimant_type = CLAIMANTS[record["report_source"]]
        by_population: dict[str, dict] = {}
        for field, (population, figure) in REPORTED.items():
            if record.get(field) is None:
                continue
            row = by_population.setdefault(population, {
                **AREA, "claimant": claimant, "claimant_type": claimant_type, "source_id": SOURCE_ID,
                "published_date": record["report_date"], "published_precision": "day",
                "figures_scope": "cumulative", "period_end": record["report_date"], "period_end_precision": "day",
                "population": population, "verification": "not_stated", "basis": "reported",
                "import_file": source.name, "import_sha256": source.sha256, "fields": []})
            row[figure], row[f"{figure}_qualifier"] = record[field], "exact"
            row["fields"].append(field)
        for row in by_population.values():
            row["import_key"] = f"{record['report_date']}:{'+'.join(row.pop('fields'))}"
            out.append(row)
    return out


def plan(change: Change, source: SourceFile, today: dt.date, track: Track = no_progress) -> Change:
    """Add the file's totals that the package lacks, revise those whose figures changed, skip the rest."""
    package = change.package
    data = parse(source)
    aggregates, sources, log = records(package, "aggregates"), records(package, "sources"), records(package, "changes")
    before = {"aggregates": [dict(r) for r in aggregates], "sources": [dict(r) for r in sources], "changes": [dict(r) for r in log]}
    current = {tuple(r[k] for k in SERIES): r for r in aggregates
               if r["source_id"] == SOURCE_ID and r["import_file"] and r["status"] == "active" and not r["superseded_by"]}
    wholes: dict[str, str] = {}  # report_date → ID of the day's row for all people
    falls = _falls(data)
    for values in totals(source, data, track):
        key = tuple(str(values[k]) for k in SERIES)
        values["revision_note"] = falls.get(key, "")
        existing = current.get(key)
        if existing is not None and _same(existing, values):
            change.unchanged += 1
            if values["population"] == "all":
                wholes[key[0]] = existing["aggregate_id"]
            continue
        if values["population"] != "all":
            values["part_of"] = wholes.get(key[0]) or (current.get((key[0], "all")) or {}).get("aggregate_id", "")
        row = new_row(package, "aggregates", {**values, "accessed_date": today.isoformat()}, today)
        if values["population"] == "all":
            wholes[key[0]] = row["aggregate_id"]
        if existing is not None:
            change.revised.append(f"{existing['aggregate_id']} ({key[0]}, {key[1]}) → {row['aggregate_id']}: {_difference(existing, row)}")
            supersede(existing, existing["aggregate_id"], row["aggregate_id"], "aggregates",
                      f"Revised in {source.name} (sha256 {source.sha256[:12]}): {_difference(existing, row)}.", today, log)
        aggregates.append(row)
    if aggregates != before["aggregates"]:
        ensure_source(change, sources, SOURCE, today)
        attribute(change, ["aggregates"], ATTRIBUTION)
    for table, rows in (("aggregates", aggregates), ("sources", sources), ("changes", log)):
        stage(change, table, rows, before[table])
    return change


FIGURE_FIELDS = ("claimant", "claimant_type", "killed", "killed_qualifier", "injured", "injured_qualifier")


def _same(existing: dict, values: dict) -> bool:
    return all(existing[f] == ("" if values.get(f) is None else str(values.get(f))) for f in FIGURE_FIELDS)


def _difference(old: dict, new: dict) -> str:
    return ", ".join(f"{f} {old[f] or '(empty)'} → {new[f] or '(empty)'}" for f in FIGURE_FIELDS if old[f] != new[f])


def _falls(data: list[dict]) -> dict[tuple[str, str], str]:
    """(day, population) → note, where a running total is lower than the same claimant's previous one in the file.

    The file states no reason for a fall; the figure is kept as published and the note says so
    (``aggregates/cumulative-fell`` asks for it).
    """
    notes: dict[tuple[str, str], str] = {}
    previous: dict[tuple[str, str], tuple[str, int]] = {}  # (claimant, field) → (day, value)
    for record in sorted(data, key=lambda r: r["report_date"]):
        for field, (population, _) in REPORTED.items():
            value = record.get(field)
            if value is None:
                continue
            series = (record["report_source"], field)
            if series in previous and value < previous[series][1]:
                day, earlier = previous[series]
                note = f"{field} falls from {earlier} ({day}) to {value} in the file, which states no reason; the figure is kept as published."
                key = (record["report_date"], population)
                notes[key] = f"{notes[key]} {note}" if key in notes else note
            previous[series] = (record["report_date"], value)
    return notes
