"""``civharm import ucdp-ged``: a UCDP Georeferenced Event Dataset CSV → incidents and reports.

One event becomes one incident and one report whose claimant is UCDP with the dataset's
version. The report's URL is the address the file was published at with an RFC 7111 row
fragment (``#row=N``, the event's line), so each event is its own statement and re-importing
the same file finds it. Mapping, after UCDP's codebook:

- ``best`` (UCDP's best estimate of all deaths) → ``all_killed``; ``deaths_civilians`` (the
  civilians among them) → ``civilians_killed``; qualified ``exact`` when ``low`` = ``best`` =
  ``high``, else ``about``; ``low`` and ``high`` (UCDP's lowest and highest plausible totals)
  go into the report's notes: the figure rule takes one range per statement.
- ``date_prec`` 1 with one day → day precision; otherwise the calendar month, else the
  calendar year, that holds ``date_start``–``date_end`` (widened, never narrowed); an event
  whose dates cross a year boundary is left out and counted.
- ``where_prec`` 1–2: the nearest GeoNames place within ``CLOSE_ENOUGH_KM`` (locality
  precision, the gazetteer's coordinates); else ``adm_2`` (area), ``adm_1`` (subdivision, by
  its ISO 3166-2 name) or the country. UCDP's own coordinates and precision stay in the notes.

The duplicate gate runs on the result: an event that matches an incident already in the
package is reported and not added; pairs among the new events, which UCDP codes as separate
events, are recorded as distinct decisions.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata

import numpy as np

from . import duplicates, gazetteer
from .findings import CivharmError, quote
from .limits import MAX_IMPORTED_FIGURE
from .importing import Attribution, Change, SourceFile, Track, attribute, ensure_source, new_row, no_progress, records, stage, typed

FORMAT = "ucdp-ged"
SOURCE_ID = "ucdp"
COLUMNS = ("id", "type_of_violence", "side_a", "side_b", "where_prec", "where_coordinates", "adm_1", "adm_2", "latitude",
           "longitude", "iso3", "date_prec", "date_start", "date_end", "deaths_civilians", "low", "best", "high")
COUNTS = ("deaths_civilians", "low", "best", "high")
CLOSE_ENOUGH_KM = 5.0  # a GeoNames place this near UCDP's point is taken as the event's locality
DISTANCE_ROWS = 128  # events per block of the distance matrix: 128 × a large country's places stays ~100 MB
VIOLENCE = {"1": "state-based", "2": "non-state", "3": "one-sided"}  # UCDP's type_of_violence
# English names UCDP still uses for subdivisions that ISO 3166-2 has since renamed.
FORMER_NAMES = {"chittagong": "chattogram", "barisal": "barishal"}
SOURCE = {"source_id": SOURCE_ID, "name": "Uppsala Conflict Data Program (UCDP)", "source_type": "aggregator",
          "note": "Research programme at Uppsala University that codes events of organised violence from news and other reports "
                  "into its Georeferenced Event Dataset (GED)."}
ATTRIBUTION = Attribution(
    source={"title": "UCDP Georeferenced Event Dataset (GED), Uppsala Conflict Data Program; cite Sundberg, Ralph, and Erik Melander, "
                     "2013, Introducing the UCDP Georeferenced Event Dataset, Journal of Peace Research 50(4): 523-532; "
                     "imported with `civharm import ucdp-ged`"},
    licence={"name": "cc-by-igo", "title": "Creative Commons Attribution for Intergovernmental Organisations, as HDX declares for UCDP GED"})


def parse(source: SourceFile) -> list[tuple[int, dict]]:
    """(line, row) of every event, checked; HDX's HXL hashtag row under the header is skipped."""
    try:
        text = source.raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CivharmError(f"{source.name}: not UTF-8 text (byte {exc.start}); a {FORMAT} file is UTF-8 CSV")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise CivharmError(f"{source.name}: empty file; a {FORMAT} file has a header row")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise CivharmError(f"{source.name}:1: no column {', '.join(missing)}: not a {FORMAT} file (UCDP GED CSV)")
        events, seen, line = [], {}, reader.line_num + 1
        for cells in reader:
            if len(cells) != len(header):
                raise CivharmError(f"{source.name}:{line}: {len(cells)} cells, the header has {len(header)}")
            row = dict(zip(header, cells))
            if not (line == 2 and all(not c or c.startswith("#") for c in cells)):  # HDX's hashtag row
                _check(source.name, line, row, seen)
                events.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise CivharmError(f"{source.name}:{reader.line_num}: not CSV: {exc}")
    return events


def _check(name: str, line: int, row: dict, seen: dict[str, int]) -> None:
    def fail(field: str, expected: str) -> CivharmError:
        return CivharmError(f"{name}:{line}: {field}: expected {expected}, found {quote(row[field])}")

    if not row["id"].isascii() or not row["id"].isdigit():
        raise fail("id", "UCDP's numeric event ID")
    if row["id"] in seen:
        raise CivharmError(f"{name}:{line}: id: event {row['id']} is listed twice (first on line {seen[row['id']]})")
    seen[row["id"]] = line
    for field in COUNTS:
        if not row[field].isascii() or not row[field].isdigit() or int(row[field]) > MAX_IMPORTED_FIGURE:
            raise fail(field, f"a whole number from 0 to {MAX_IMPORTED_FIGURE:,}")
    best, civilians = int(row["best"]), int(row["deaths_civilians"])  # low and high are not checked: old events have 0 for both
    if civilians > best:
        raise fail("deaths_civilians", f"at most best ({best}): civilians are among the deaths")
    if row["where_prec"] not in {str(n) for n in range(1, 8)}:
        raise fail("where_prec", "1 to 7")
    if row["date_prec"] not in {str(n) for n in range(1, 6)}:
        raise fail("date_prec", "1 to 5")
    for field in ("date_start", "date_end"):
        if _date(row[field]) is None:
            raise fail(field, "a date YYYY-MM-DD")
    if _date(row["date_end"]) < _date(row["date_start"]):
        raise fail("date_end", f"a day on or after date_start {row['date_start']}")
    for field, limit in (("latitude", 90), ("longitude", 180)):
        try:
            value = float(row[field])
        except ValueError:
            raise fail(field, "a number")
        if not -limit <= value <= limit:
            raise fail(field, f"a number from -{limit} to {limit}")


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def _dates(row: dict) -> tuple[str, str, str] | None:
    """(start, end, precision) in the dataset's terms, or None when no calendar year holds the event."""
    start, end = _date(row["date_start"]), _date(row["date_end"])
    if row["date_prec"] == "1" and start == end:
        return start.isoformat(), end.isoformat(), "day"
    if (start.year, start.month) == (end.year, end.month) and row["date_prec"] in ("1", "2", "3", "4"):
        last = (dt.date(end.year + end.month // 12, end.month % 12 + 1, 1) - dt.timedelta(days=1))
        return start.replace(day=1).isoformat(), last.isoformat(), "month"
    if start.year == end.year:
        return f"{start.year}-01-01", f"{start.year}-12-31", "year"
    return None


def _country(iso3: str) -> str:
    import pycountry

    country = pycountry.countries.get(alpha_3=iso3)
    if country is None:
        raise CivharmError(f"iso3: {quote(iso3)} is not an ISO 3166-1 alpha-3 country code")
    return country.alpha_2


def _subdivision(country: str, name: str) -> tuple[str, str] | None:
    """(ISO 3166-2 code, ISO name) of a first-level subdivision named as UCDP names it."""
    import pycountry

    key = gazetteer.normalise_name(name)
    for old, new in FORMER_NAMES.items():
        key = new + key[len(old):] if key.startswith(old) else key
    for subdivision in pycountry.subdivisions.get(country_code=country) or []:
        spelled = {gazetteer.normalise_name(subdivision.name), gazetteer.normalise_name(f"{subdivision.name} {subdivision.type}")}
        if subdivision.parent_code is None and key in spelled:
            return subdivision.code, subdivision.name
    return None


def _nearest_places(country: str, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GeoNames IDs and distances (km) of the place of ``country`` nearest to each (lat, lon)."""
    places = gazetteer.places()
    places = places[(places["countrycode"] == country).to_numpy()]
    if places.empty or not len(points):
        return np.zeros(len(points), dtype=np.int64), np.full(len(points), np.inf)
    lat2, lon2 = np.radians(places["latitude"].to_numpy(dtype=float)), np.radians(places["longitude"].to_numpy(dtype=float))
    ids, km = np.empty(len(points), dtype=np.int64), np.empty(len(points))
    for start in range(0, len(points), DISTANCE_ROWS):  # a block of events × every place of the country at a time
        block = points[start:start + DISTANCE_ROWS]
        lat1, lon1 = np.radians(block[:, :1]), np.radians(block[:, 1:])
        a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
        distance = 2 * 6371.0 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        nearest = distance.argmin(axis=1)
        ids[start:start + len(block)] = places.index.to_numpy()[nearest]
        km[start:start + len(block)] = distance[np.arange(len(block)), nearest]
    return ids, km


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", " ".join(text.split()))


def _place(row: dict, country: str, geonames: int, km: float) -> dict:
    """Where the incident is, at the precision UCDP states (see the module's docstring)."""
    place = {"country_code": country, "location_precision": "country"}
    subdivision = _subdivision(country, row["adm_1"]) if row["adm_1"] else None
    precision = int(row["where_prec"])
    if subdivision and precision <= 4:
        place.update(subdivision_code=subdivision[0], subdivision_name=subdivision[1], location_precision="subdivision")
    if precision <= 3 and row["adm_2"]:
        place.update(area=_nfc(row["adm_2"]), location_precision="area")
    if precision <= 2 and km <= CLOSE_ENOUGH_KM:
        found = gazetteer.places().loc[geonames]
        place.update(locality_en=found["name"], geonames_id=str(geonames), latitude=f"{found['latitude']}",
                     longitude=f"{found['longitude']}", location_precision="locality")
    return place


def _qualifier(row: dict) -> str:
    return "exact" if row["low"] == row["best"] == row["high"] else "about"


def events(source: SourceFile, url: str, version: str, today: dt.date, track: Track = no_progress):
    """(line, UCDP id, incident values, report values) per event; and the events left out, with why."""
    parsed = parse(source)
    points = np.array([[float(r["latitude"]), float(r["longitude"])] for _, r in parsed], dtype=float).reshape(-1, 2)
    countries = {iso3: _country(iso3) for iso3 in {r["iso3"] for _, r in parsed}}
    nearest: dict[int, tuple[int, float]] = {}
    for country in set(countries.values()):
        chosen = [i for i, (_, r) in enumerate(parsed) if countries[r["iso3"]] == country]
        ids, km = _nearest_places(country, points[chosen])
        nearest.update({i: (int(g), float(d)) for i, g, d in zip(chosen, ids, km)})
    out, left_out = [], []
    for position, (line, row) in enumerate(track(parsed, f"reading {source.name}")):
        dates = _dates(row)
        if dates is None:
            left_out.append(f"event {row['id']} (line {line}): its dates {row['date_start']} to {row['date_end']} cross a year boundary")
            continue
        country = countries[row["iso3"]]
        place = _place(row, country, *nearest[position])
        qualifier = _qualifier(row)
        sides = f"{_nfc(row['side_a'])} and {_nfc(row['side_b'])}"
        where = ", ".join(_nfc(p) for p in (row["where_coordinates"], row["adm_2"], row["adm_1"]) if p) or country
        incident = {**place, "date_start": dates[0], "date_end": dates[1], "date_precision": dates[2], "date_basis": "stated",
                    "means_of_harm": "unknown", "perpetrator_alleged": "unknown", "attribution_basis": "not_attributed",
                    "confidence": "medium",
                    "summary": f"UCDP GED event {row['id']}: {VIOLENCE.get(row['type_of_violence'], 'organised')} violence "
                               f"involving {sides} at {where}; UCDP's best estimate is {row['best']} dead, "
                               f"{row['deaths_civilians']} of them civilians."}
        report = {"source_id": SOURCE_ID, "url": f"{url}#row={line}", "title": f"UCDP GED {version}: event {row['id']}",
                  "language": "en", "published_date": "", "published_precision": "not_stated", "accessed_date": today.isoformat(),
                  "claimant": f"Uppsala Conflict Data Program (UCDP), GED {version}", "claimant_type": "other",
                  "as_of": dates[1], "responsibility_claimed": "unknown",
                  "all_killed": row["best"], "all_killed_qualifier": qualifier,
                  "civilians_killed": row["deaths_civilians"], "civilians_killed_qualifier": qualifier,
                  "notes": f"Imported from {source.name} (sha256 {source.sha256}), line {line}, event {row['id']}. "
                           f"UCDP low and high estimates {row['low']} and {row['high']}; UCDP dates {row['date_start']} to "
                           f"{row['date_end']} (date_prec {row['date_prec']}); UCDP point {row['latitude']}, {row['longitude']} "
                           f"(where_prec {row['where_prec']}); sides: {sides}."}
        out.append((line, row["id"], incident, report))
    return out, left_out


def plan(change: Change, source: SourceFile, url: str, version: str, today: dt.date, track: Track = no_progress) -> Change:
    """Add the events the package lacks; report those that duplicate its incidents; skip those it holds."""
    package = change.package
    tables = {name: records(package, name) for name in ("incidents", "reports", "sources", "duplicate_decisions")}
    before = {name: [dict(r) for r in rows] for name, rows in tables.items()}
    held = {r["url"] for r in tables["reports"]}
    found, left_out = events(source, url, version, today, track)
    fresh = []
    for line, event_id, incident_values, report_values in found:
        if report_values["url"] in held:
            change.unchanged += 1
            continue
        incident = new_row(package, "incidents", incident_values, today)
        report = new_row(package, "reports", {**report_values, "incident_id": incident["incident_id"]}, today)
        _figures(incident, report)
        fresh.append((line, event_id, incident, report))
    fresh = _without_duplicates(change, tables, fresh, today)
    for _, _, incident, report in fresh:
        tables["incidents"].append(incident)
        tables["reports"].append(report)
    change.notes += [f"left out {item}" for item in left_out]
    if fresh:
        ensure_source(change, tables["sources"], SOURCE, today)
        attribute(change, ["incidents", "reports"], ATTRIBUTION)
    for name, rows in tables.items():
        stage(change, name, rows, before[name])
    return change


def _figures(incident: dict, report: dict) -> None:
    """The incident's figures by the figure rule from its one report (exact/about N → N–N)."""
    for figure in ("all_killed", "civilians_killed"):
        incident[f"{figure}_min"] = incident[f"{figure}_max"] = report[figure]


def _without_duplicates(change: Change, tables: dict, fresh: list, today: dt.date) -> list:
    """Drop new events that match an incident already there; record pairs among new events as distinct."""
    if not fresh:
        return fresh
    package = change.package
    frame = typed(package, "incidents", tables["incidents"] + [incident for _, _, incident, _ in fresh])
    new_ids = {incident["incident_id"]: (line, event_id) for line, event_id, incident, _ in fresh}
    decided = {tuple(sorted((r["incident_a"], r["incident_b"]))) for r in tables["duplicate_decisions"] if r["status"] == "active"}
    dropped: dict[str, str] = {}  # new incident → why it is not added
    pairs = []
    for candidate in duplicates.near_duplicates(frame):
        if (candidate.a, candidate.b) in decided or tuple(sorted((candidate.a, candidate.b))) in decided:
            continue
        new = [i for i in (candidate.a, candidate.b) if i in new_ids]
        if len(new) == 1:
            other = candidate.b if new[0] == candidate.a else candidate.a
            line, event_id = new_ids[new[0]]
            dropped.setdefault(new[0], f"not added: event {event_id} (line {line}) matches incident {other} "
                                       f"(score {candidate.score:.2f}: {'; '.join(candidate.reasons)})")
        elif len(new) == 2:
            pairs.append(candidate)
    change.notes += [dropped[i] for i in sorted(dropped, key=lambda i: new_ids[i][0])]
    rows = {incident["incident_id"]: incident for _, _, incident, _ in fresh}
    basis = duplicates.rests_on(package["duplicate_decisions"].schema).get("recorded_apart_by_source", [])
    for candidate in pairs:
        if candidate.a in dropped or candidate.b in dropped:
            continue
        a, b = sorted((candidate.a, candidate.b))
        tables["duplicate_decisions"].append(new_row(package, "duplicate_decisions", {
            "incident_a": a, "incident_b": b, "decision": "distinct", "reason": "recorded_apart_by_source",
            "note": f"UCDP GED codes them as separate events ({new_ids[a][1]} and {new_ids[b][1]}).",
            "fingerprint": duplicates.fingerprint(basis, rows[a], rows[b])}, today))
    return [item for item in fresh if item[2]["incident_id"] not in dropped]
