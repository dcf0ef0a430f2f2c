"""Linkage evaluation of the near-duplicate gate: pair recall, incident recall and false pairs.

    python benchmarks/linkage.py                 # print the table (synthetic set of 300 events, labelled set)
    python benchmarks/linkage.py --write         # and write it to benchmarks/LINKAGE.md
    python benchmarks/linkage.py --events 40     # a smaller synthetic set

Every statement is entered as a new incident, the way a contributor who did not search first
would, and scored with the model of ``civharm.duplicates`` (the same SQL as ``civharm
validate``). Two sets:

- **synthetic**: hard cases from a seeded generator (nothing here comes from data/):
  month-only dates, pages without an incident date (on or before publication), one- and
  two-day gaps, different weapon words of one family, transliterated or unnamed (district
  or region only) places, rising tolls, shared pages and originators, and a second event in
  the same city on the same day at another site and time.
- **labelled**: ``benchmarks/linkage_real.csv``, one row per statement of the stored pages in
  shared/sources/ (facts only: dates, places, GeoNames IDs, figures, means, URLs, who is
  quoted), labelled with the event it describes. Statements whose page gives neither an
  incident date nor a publication date, and city, regional or national totals, are left out.

Targets (issue 14): 100% incident recall, at least 98% pair recall, at most one false pair per
50 incidents.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))

from civharm import duplicates, gazetteer, linkage  # noqa: E402

LABELLED = HERE / "linkage_real.csv"
REPORT = HERE / "LINKAGE.md"
EVENTS = 300
SEED = 14
TARGETS = {"incident_recall": 1.0, "pair_recall": 0.98, "false_per_incident": 1 / 50}

# (country, subdivision, name as GeoNames has it, another spelling a page may use)
PLACES = [("UA", "UA-63", "Kharkiv", "Kharkov"), ("UA", "UA-63", "Kupiansk", "Kupyansk"), ("UA", "UA-63", "Vovchansk", "Volchansk"),
          ("UA", "UA-12", "Dnipro", "Dnepr"), ("UA", "UA-30", "Kyiv", "Kiev"), ("UA", "UA-51", "Odesa", "Odessa"),
          ("UA", "UA-59", "Sumy", "Sumi"), ("UA", "UA-14", "Kramatorsk", "Kramatorsk"), ("UA", "UA-14", "Pokrovsk", "Pokrovsk"),
          ("UA", "UA-74", "Chernihiv", "Chernigov"), ("RU", "RU-BEL", "Belgorod", "Bilhorod"), ("RU", "RU-BEL", "Grayvoron", "Graivoron"),
          ("RU", "RU-KRS", "Kursk", "Kursk"), ("RU", "RU-KRS", "Tyotkino", "Tetkino"), ("RU", "RU-BRY", "Bryansk", "Briansk")]
SITES = ["residential_building", "shopping_centre", "market", "hospital", "school", "station", "administrative_building",
         "industrial", "energy_facility", "street_open_area", "vehicle"]
PARTS = list(linkage.PARTS_OF_DAY)
INCIDENT_TEXT = ["incident_id", "status", "merged_into", "country_code", "subdivision_code", "area", "locality_en", "locality_original",
                 "date_precision", "date_basis", "time_of_day", "site_type", "means_of_harm"]


# subdivisions of the places above: (country, GeoNames admin1 code) → ISO 3166-2 code
ADMIN1 = {("UA", "07"): "UA-63", ("UA", "04"): "UA-12", ("UA", "12"): "UA-30", ("UA", "17"): "UA-51", ("UA", "21"): "UA-59",
          ("UA", "05"): "UA-14", ("UA", "02"): "UA-74", ("RU", "09"): "RU-BEL", ("RU", "41"): "RU-KRS", ("RU", "10"): "RU-BRY"}
MORE_PLACES = 60  # other towns of those subdivisions, so that a city is not the only place hit


def _place(table: pd.DataFrame, gid: int, country: str, subdivision: str, name: str, variant: str) -> dict:
    return {"country": country, "subdivision": subdivision, "name": name, "variant": variant, "gid": gid,
            "lat": float(table.at[gid, "latitude"]), "lon": float(table.at[gid, "longitude"]),
            "weight": float(table.at[gid, "population"]) ** 0.5}  # cities are hit more often than villages


def _places(rng) -> list[dict]:
    """The synthetic world's places: the cities above, and towns of their subdivisions with an unambiguous name."""
    table = gazetteer.places()
    out = []
    for country, subdivision, name, variant in PLACES:
        gid = max(duplicates.place_ids(country, name), key=lambda i: table.at[i, "population"])
        out.append(_place(table, gid, country, subdivision, name, variant))
    taken = {p["gid"] for p in out}
    towns = table[table["population"].between(5000, 200000)].reset_index()
    towns = towns[[(c, a) in ADMIN1 for c, a in zip(towns["countrycode"], towns["admin1code"])]].sort_values("geonameid")
    for row in towns.sample(frac=1, random_state=rng.randrange(2**31)).itertuples(index=False):
        if len(out) >= len(PLACES) + MORE_PLACES:
            break
        if row.geonameid in taken or duplicates.place_ids(row.countrycode, row.name) != {row.geonameid}:
            continue
        out.append(_place(table, row.geonameid, row.countrycode, ADMIN1[(row.countrycode, row.admin1code)], row.name, row.name))
    return out


def _toll(rng) -> tuple[int, int]:
    """A true toll (killed, injured): mostly small, with a long tail."""
    killed = min(int(rng.paretovariate(1.1)) - 1, 60)
    return killed, min(killed * rng.randint(1, 4) + int(rng.paretovariate(1.0)) - 1, 200)


HARD = ("month", "published", "one_day", "two_days", "other_word", "unknown_means", "variant", "district", "region")


class _World:
    """Events and the statements that report them, each statement entered as a new incident."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.places = _places(self.rng)
        self.rows: list[dict] = []
        self.reports: list[dict] = []

    def event(self, label: str, place: dict, day: dt.date, statements: int, means: str, where: tuple[str, str],
              site_known: float, time_known: float) -> None:
        """One event: a first statement as complete as a page gets, then each later one with one hard case.

        Later statements quote the same official or speak in the outlet's own voice, repeat the
        site and time when they know them, and give a toll that rises over the statements.
        """
        rng = self.rng
        (site, part), toll = where, _toll(rng)
        originator = f"Head of the {place['subdivision']} administration"
        pages: list[str] = []
        for k in range(statements):
            hard = rng.choice(HARD) if k else ""
            row = {"event": label, "hard": hard, "incident_id": f"inc_{len(self.rows):05d}", "status": "active", "country_code": place["country"],
                   "subdivision_code": place["subdivision"], **self._place(place, hard), **self._date(day, hard),
                   "means_of_harm": self._means(means, hard), "site_type": site if rng.random() < site_known else "",
                   "time_of_day": self._time(part) if rng.random() < time_known else ""}
            rising = min(1.0, 0.5 + 0.25 * k)
            for kind, truth in zip(("killed", "injured"), toll):
                if rng.random() < 0.8:
                    row[f"all_{kind}_min"] = row[f"all_{kind}_max"] = round(truth * rising)
            self.rows.append(row)
            url = rng.choice(pages) if pages and rng.random() < 0.1 else f"https://outlet{rng.randrange(40)}.example.org/{label}/{k}"
            pages.append(url)
            official = rng.random() < 0.7
            self.reports.append({"report_id": f"rep_{len(self.reports):05d}", "status": "active", "incident_id": row["incident_id"],
                                 "url": url, "source_id": url.split("/")[2], "republished_from": None,
                                 "claimant": originator if official else "own reporting",
                                 "claimant_type": "regional_authority" if official else "media_outlet"})

    def _place(self, place: dict, hard: str) -> dict:
        """As a page names the place: with its GeoNames ID, another spelling only, or its district or region only."""
        if hard == "variant":
            return {"locality_en": place["variant"]}
        if hard in ("district", "region"):
            return {"area": f"{place['name']} district"} if hard == "district" else {}
        return {"locality_en": place["name"], "geonames_id": place["gid"], "latitude": place["lat"], "longitude": place["lon"]}

    def _date(self, day: dt.date, hard: str) -> dict:
        """As a page dates the event: the day, a day or two late, the month only, or on or before its publication."""
        if hard == "month":
            first = day.replace(day=1)
            last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
            return {"date_start": first, "date_end": last, "date_precision": "month", "date_basis": "stated"}
        if hard == "published":
            published = day + dt.timedelta(days=self.rng.randint(0, 3))
            return {"date_start": published - dt.timedelta(days=7), "date_end": published, "date_precision": "range",
                    "date_basis": "on_or_before_publication"}
        stated = day + dt.timedelta(days={"one_day": 1, "two_days": 2}.get(hard, 0))
        return {"date_start": stated, "date_end": stated, "date_precision": "day", "date_basis": "stated"}

    def _means(self, means: str, hard: str) -> str:
        """The event's means, another word of its family, or unknown."""
        if hard == "other_word":
            family = next(members for _, members in linkage.MEANS_FAMILIES.values() if means in members)
            return self.rng.choice([m for m in family if m != means] or [means])
        return "unknown" if hard == "unknown_means" else means

    def _time(self, part: str) -> str:
        if self.rng.random() < 0.5:
            return part
        first, last = linkage.PARTS_OF_DAY[part]
        minute = self.rng.randint(first + 30, last - 30)
        return f"{minute // 60:02d}:{minute % 60:02d}"


def _vocabulary(field: str) -> list[str]:
    """The values of an incidents field, in the schema's order."""
    schema = json.loads((HERE.parent / "schema" / "incidents.json").read_text(encoding="utf-8"))
    return list(next(f for f in schema["fields"] if f["name"] == field)["civharm:definitions"])


def synthetic(events: int = EVENTS, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Incidents (with their event label) and reports of ``events`` seeded events over two years.

    Places are drawn by the square root of their population. A third of the events have a
    second event in the same place on the same day (its own site, time, means and toll); the
    statements of both then say where, as pages do when a city is hit twice in a day, and
    mostly when.
    """
    world = _World(seed)
    rng = world.rng
    first = dt.date(2024, 1, 1)
    means = [m for m in _vocabulary("means_of_harm") if linkage.FAMILY_BITS.get(m) and m != "falling_debris"]
    for n in range(events):
        place = rng.choices(world.places, [p["weight"] for p in world.places])[0]
        day = first + dt.timedelta(days=rng.randrange(730))
        twice = rng.random() < 1 / 3  # two events in one city on one day, at two sites and times
        known = (1.0, 0.7) if twice else (0.5, 0.3)
        sites, parts = rng.sample(SITES, 2), rng.sample(PARTS, 2)
        world.event(f"e{n:04d}", place, day, rng.choices([1, 2, 3, 4, 6], [0.3, 0.3, 0.2, 0.1, 0.1])[0], rng.choice(means),
                    (sites[0], parts[0]), *known)
        if twice:
            world.event(f"e{n:04d}b", place, day, rng.choice([1, 2, 3]), rng.choice(means), (sites[1], parts[1]), *known)
    return _typed(pd.DataFrame(world.rows)), pd.DataFrame(world.reports)


def labelled(path: Path = LABELLED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labelled set: one incident and one report per statement of ``linkage_real.csv``."""
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    incidents = pd.DataFrame([{"event": r["event"], "incident_id": r["statement"], "status": "active",
                               **{k: r[k] or None for k in ("country_code", "subdivision_code", "area", "locality_en", "geonames_id", "latitude",
                                                            "longitude", "date_precision", "date_basis", "time_of_day", "site_type", "means_of_harm")},
                               "date_start": dt.date.fromisoformat(r["date_start"]), "date_end": dt.date.fromisoformat(r["date_end"]),
                               "all_killed_min": r["killed_min"] or None, "all_killed_max": r["killed_max"] or None,
                               "all_injured_min": r["injured_min"] or None, "all_injured_max": r["injured_max"] or None} for r in rows])
    reports = pd.DataFrame([{"report_id": f"rep_{r['statement']}", "status": "active", "incident_id": r["statement"], "url": r["url"],
                             "source_id": r["source_id"], "republished_from": None, "claimant": r["claimant"],
                             "claimant_type": r["claimant_type"]} for r in rows])
    return _typed(incidents), reports


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns typed as ``civharm`` loads them."""
    for column in INCIDENT_TEXT:
        frame[column] = (frame[column] if column in frame else pd.Series(None, index=frame.index)).replace("", None).astype("string")
    for column in ("date_start", "date_end"):
        frame[column] = pd.to_datetime(frame[column])
    for column in ("geonames_id", "all_killed_min", "all_killed_max", "all_injured_min", "all_injured_max"):
        frame[column] = pd.to_numeric(frame[column] if column in frame else None).astype("Int64")
    for column in ("latitude", "longitude"):
        frame[column] = pd.to_numeric(frame[column] if column in frame else None).astype("Float64")
    return frame


def evaluate(incidents: pd.DataFrame, reports: pd.DataFrame, weights: np.ndarray | None = None) -> dict:
    """Pair recall, incident recall and false pairs of the gate on labelled incidents (or of other ``weights``, see ``fit``)."""
    label = dict(zip(incidents["incident_id"], incidents["event"]))
    members: dict[str, list[str]] = {}
    for incident, event in label.items():
        members.setdefault(event, []).append(incident)
    truth = {tuple(sorted(p)) for ids in members.values() for p in combinations(ids, 2)}
    unlabelled = incidents.drop(columns=["event", "hard"], errors="ignore")
    if weights is None:
        flagged = {(c.a, c.b): c for c in duplicates.near_duplicates(unlabelled, reports=reports)}
    else:
        pairs = duplicates.scored_pairs(unlabelled, 0.0, prune=False, reports=reports)
        score = 1 / (1 + np.exp(-_indicators(pairs) @ weights))
        flagged = {(a, b): None for a, b, p in zip(pairs["a"], pairs["b"], score) if p >= linkage.THRESHOLD}
    hits = truth & set(flagged)
    linked = {i for pair in hits for i in pair}
    clustered = {tuple(sorted(p)) for group in _chains(set(flagged)) for p in combinations(group, 2)}
    twinned = {i for ids in members.values() if len(ids) > 1 for i in ids}
    false = sorted(set(flagged) - truth)
    hard = dict(zip(incidents["incident_id"], incidents["hard"])) if "hard" in incidents else {}
    by_case: dict[str, list[int]] = {}  # hard case of a pair (its statements' cases, the first statement's is "full"): [found, pairs]
    for pair in truth:
        case = "+".join(sorted((hard.get(i) or "full") for i in pair))
        counts = by_case.setdefault(case, [0, 0])
        counts[0] += pair in hits
        counts[1] += 1
    return {"by_case": by_case, "statements": len(label), "events": len(members), "twinned": len(twinned), "pairs": len(truth), "hits": len(hits),
            "pair_recall": len(hits) / len(truth) if truth else 1.0,
            "chained_recall": len(clustered & truth) / len(truth) if truth else 1.0, "chained_false": len(clustered - truth),
            "incident_recall": len(linked & twinned) / len(twinned) if twinned else 1.0,
            "false": len(false), "allowed": len(label) * TARGETS["false_per_incident"],
            "missed": sorted(truth - hits), "false_pairs": [flagged[p] for p in false]}


def _chains(pairs: set) -> list[set]:
    """Groups of statements joined by flagged pairs (connected components), true or false: what a reviewer who merges
    every flagged pair ends with. Every pair inside a group counts, as found when it is one event, as false when not."""
    group: dict[str, set] = {}
    for a, b in pairs:
        joined = group.get(a, {a}) | group.get(b, {b})
        for member in joined:
            group[member] = joined
    return list({id(g): g for g in group.values()}.values())


def _meets(result: dict, clusters: bool = False) -> bool:
    """The targets, on flagged pairs or (``clusters``) on the pairs inside the groups they join."""
    recall, false = (result["chained_recall"], result["chained_false"]) if clusters else (result["pair_recall"], result["false"])
    return result["incident_recall"] >= TARGETS["incident_recall"] and recall >= TARGETS["pair_recall"] and false <= result["allowed"]


LISTED = 12  # missed and false pairs listed per set


def _more(items: list) -> list[str]:
    return [f"- … and {len(items) - LISTED} more"] if len(items) > LISTED else []


def table(results: dict[str, dict]) -> str:
    """The evaluation as Markdown: one row per set, then each missed and each false pair."""
    out = ["| set | statements (incidents) | events | same-event pairs | pairs flagged | pair recall | incident recall | false pairs "
           "| allowed (1 per 50) | meets targets | pair recall in clusters | false pairs in clusters | meets targets in clusters |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        out.append(f"| {name} | {r['statements']} | {r['events']} | {r['pairs']} | {r['hits']} | {100 * r['pair_recall']:.1f}% "
                   f"| {100 * r['incident_recall']:.1f}% | {r['false']} | {r['allowed']:.1f} | {'yes' if _meets(r) else 'no'} "
                   f"| {100 * r['chained_recall']:.1f}% | {r['chained_false']} | {'yes' if _meets(r, clusters=True) else 'no'} |")
    for name, r in results.items():
        if r["missed"] or r["false_pairs"]:
            out += ["", f"{name}:"]
            out += [f"- missed {a}–{b}" for a, b in r["missed"][:LISTED]] + _more(r["missed"])
            out += [f"- false {c.a}–{c.b}: probability {c.score:.2f} ({'; '.join(c.reasons)})" for c in r["false_pairs"][:LISTED]]
            out += _more(r["false_pairs"])
    return "\n".join(out) + "\n"


def by_case(result: dict) -> str:
    """Pair recall of the synthetic set per kind of pair: the hard cases of its two statements ("full": a first, complete one)."""
    rows = sorted(result["by_case"].items(), key=lambda item: (item[1][0] / item[1][1], item[0]))
    out = ["| statements' cases | same-event pairs | found | recall |", "|---|---|---|---|"]
    out += [f"| {case} | {total} | {found} | {100 * found / total:.0f}% |" for case, (found, total) in rows]
    return "\n".join(out) + "\n"


# --- the same model form with weights fitted to the generator: what the synthetic set can grade ---

FIT_SEEDS = (1, 2, 3, 4, 5)  # synthetic sets to fit on; the evaluated one (SEED) is not among them


def _indicators(pairs: pd.DataFrame) -> np.ndarray:
    """One column per level that carries a weight (and a constant): the pair's levels as the model scores them."""
    columns = [np.ones(len(pairs))]
    for comparison in linkage.MODEL:
        columns += [(pairs[f"{comparison.name}_level"] == i).to_numpy(dtype=float)
                    for i, level in enumerate(comparison.levels) if level.m is not None]
    return np.column_stack(columns)


def fit(seeds=FIT_SEEDS, events: int = EVENTS, ridge: float = 1.0) -> np.ndarray:
    """Natural-log weights of the model's levels fitted by logistic regression (Newton steps, a small ridge) on every
    blocked pair of the synthetic sets of ``seeds``, labelled by event: supervised Fellegi–Sunter, trained on the generator."""
    xs, ys = [], []
    for seed in seeds:
        incidents, reports = synthetic(events, seed)
        pairs = duplicates.scored_pairs(incidents.drop(columns=["event", "hard"]), 0.0, prune=False, reports=reports)
        label = dict(zip(incidents["incident_id"], incidents["event"]))
        xs.append(_indicators(pairs))
        ys.append(np.array([label[a] == label[b] for a, b in zip(pairs["a"], pairs["b"])], dtype=float))
    x, y = np.vstack(xs), np.concatenate(ys)
    weights = np.zeros(x.shape[1])
    for _ in range(40):
        p = 1 / (1 + np.exp(-x @ weights))
        gradient = x.T @ (p - y) + ridge * weights
        hessian = (x.T * (p * (1 - p))) @ x + ridge * np.eye(len(weights))
        weights -= np.linalg.solve(hessian, gradient)
    return weights


def fitted_section(events: int = EVENTS) -> str:
    """The targets met by weights fitted to the generator, on the synthetic set and on the labelled one."""
    weights = fit(events=events)
    results = {f"synthetic ({events} events, seed {SEED})": evaluate(*synthetic(events), weights=weights),
               "labelled (shared/sources)": evaluate(*labelled(), weights=weights)}
    rows = ["| set | pair recall | incident recall | false pairs | allowed (1 per 50) | meets targets |", "|---|---|---|---|---|---|"]
    rows += [f"| {name} | {100 * r['pair_recall']:.1f}% | {100 * r['incident_recall']:.1f}% | {r['false']} | {r['allowed']:.1f} "
             f"| {'yes' if _meets(r) else 'no'} |" for name, r in results.items()]
    return ("\n## Weights fitted to the generator\n\n"
            f"The same levels, weighted by a logistic regression on every blocked pair of the synthetic sets of seeds "
            f"{', '.join(map(str, FIT_SEEDS))} (not {SEED}), labelled by event, with the gate's threshold. Not adopted: the "
            "generator's hard set becomes separable once the weights learn what the generator never does (two "
            "statements of one event never name means of two families or two kinds of site), and real reporting does "
            "it (the labelled Tyotkino statements name ground fighting and artillery); on the labelled set these weights "
            "flag pairs of different events that the declared model leaves apart.\n\n" + "\n".join(rows) + "\n")


WHY_NOT_SPLINK = """
## Why the model is not Splink

Splink 5.0.0 installs from PyPI here (it needs DuckDB, pyarrow and sqlglot) and would give the
same Fellegi–Sunter form. The model stays in `scripts/civharm/linkage.py` because what Splink
adds is what this project cannot use yet: its EM and random-sampling training need many
unlabelled pairs and labels to check them (the labelled set has tens of pairs), so the m and u
values would be declared by hand in Splink too. What it cannot express without custom SQL is
most of the model: date intervals scored by overlap, means of harm through a hierarchy (bit
sets), pages and originators shared across the two incidents' reports (a join on the reports
table, not a column comparison), names looked up in the GeoNames extract, and the keyed
blocking whose bounds (`duplicates.UNKEYED_BOUNDS`) prove that no pair at the threshold is left
out, which keeps `civharm validate` within its bar at 1,000,000 reports. The score is written
once, as data (`linkage.MODEL`): one SQL expression computes every pair's levels and weight,
and each finding lists the weight of each comparison that moved it.
"""


def document(events: int = EVENTS) -> str:
    synthetic_result = evaluate(*synthetic(events))
    results = {f"synthetic ({events} events, seed {SEED})": synthetic_result, "labelled (shared/sources)": evaluate(*labelled())}
    return ("<!-- Generated by `python benchmarks/linkage.py --write`. Do not edit by hand. -->\n# Linkage evaluation\n\n"
            "The near-duplicate gate (`duplicates/near-duplicate`) on every statement entered as a new incident; "
            "see `benchmarks/linkage.py` for the two sets and `docs/codebook.md` for the model. Targets: 100% incident "
            "recall, at least 98% pair recall, at most one false pair per 50 incidents. *In clusters* counts every pair "
            "of statements joined by flagged pairs (connected components of the findings, true and false), as a reviewer "
            "who merges each flagged pair would join them: a pair of one event is found, a pair of two events is false.\n\n" + table(results) + "\n## Synthetic pairs by hard case\n\n"
            "Each later statement of an event carries one hard case (see `_World`); a pair is named by its two statements' "
            "cases. Pairs of two hard statements (a district-only page against a month-only one) carry little evidence "
            "of their own.\n\n" + by_case(synthetic_result) + fitted_section(events) + WHY_NOT_SPLINK)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="synthetic events (default %(default)s)")
    parser.add_argument("--write", action="store_true", help=f"also write {REPORT.name}")
    args = parser.parse_args(argv)
    text = document(args.events)
    print(text, end="")
    if args.write:
        REPORT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
