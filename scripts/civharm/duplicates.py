"""The duplicate gate: repeated rows and statements, and near-duplicate incidents.

Near-duplicates are found in two steps so the search stays sub-quadratic:

1. **Blocking** (DuckDB): every active incident is expanded to the days of its date
   interval (one side widened by ``WINDOW_DAYS``), and incidents of one country whose days
   meet, whose subdivisions agree (equal, or missing on one side) and who share a key become
   candidate pairs. The keys are what a pair needs to reach the threshold at all (see
   ``blocking_sql`` and ``KEYED``): a GeoNames place, alike locality names, a grid cell within
   10 km, a report URL, or for an incident without a locality name its district, or its
   subdivision with a family of means of harm, a kind of site or a time of day. Coarse
   dates are intervals, so an event of "March 2024" meets one of 14 March; joins on keys
   and days stay near-linear where a range join, or a join on days alone, does not.
2. **Scoring** each candidate with the Fellegi–Sunter model declared in ``linkage``: place,
   date overlap, means of harm (through its hierarchy), figures, shared pages and
   originators, site and time of day. One SQL query computes every pair's levels and
   weights; a finding's explanation reads those levels, it does not score again.

A pair recorded in ``data/duplicate_decisions.csv`` is silenced; any other candidate at or
above ``THRESHOLD`` fails validation with the instruction to resolve it.

Why it is over 500 lines: the gate is one stage of validation whose parts read the same
frames (repeated rows, repeated statements, near-duplicate incidents, and the decisions that
silence them), and the blocking SQL is long because each key it joins on is proven necessary
(``KEYED``). The model it scores with is ``linkage``; the decisions are written by
``contribute`` (``add``, ``decide``).
"""
from __future__ import annotations

import math
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import pandas as pd
from rapidfuzz.distance import Levenshtein

from . import gazetteer, linkage
from .findings import Finding, Rule, Severity, declare
from .gazetteer import normalise_name
from .linkage import MODEL, NAME_SIMILARITY, NEAR_KM, THRESHOLD, WINDOW_DAYS
from .package import MAX_SPAN_DAYS, Package, among

RULES = declare(
    Rule("duplicates/exact-row", Severity.ERROR, "No row repeats another row of the same table apart from its ID.",
        "A record entered twice under two IDs counts its dead twice."),
    Rule("duplicates/same-statement", Severity.ERROR, "The same statement (URL, claimant, as-of moment) is entered once per incident.",
        "Two rows for one statement double its weight in the figure rule and in corroboration."),
    Rule("duplicates/same-figures-other-incident", Severity.WARNING, "Two statements of one source with the same date and figures sit on different incidents (same-URL pairs excepted).",
        "Usually one statement attached to two incidents, which counts its victims twice."),
    Rule("duplicates/near-duplicate", Severity.ERROR, "No unreviewed pair of active incidents looks like the same event (match probability at or above the threshold of the near-duplicate model).",
        "The same strike entered twice from two reports is the commonest double count; a person must decide each pair."),
    Rule("duplicates/decision-not-done", Severity.ERROR, "A 'merged' decision matches an incident merged into the other.",
        "A decision that says merged while both incidents are active silences a real double count."),
    Rule("duplicates/decision-without-reason", Severity.ERROR, "A 'distinct' decision gives a reason from the vocabulary (what tells the two events apart).",
        "A note alone can be waved through for every candidate at once; a reason names the evidence, and decision-outdated holds the decision to it."),
    Rule("duplicates/decision-outdated", Severity.ERROR, "A 'distinct' decision's fingerprint matches the fields its reason rests on, in both incidents as they are now.",
        "A pair told apart by its sites is no longer told apart once either site is corrected; the pair must be checked again."),
)


def place_ids(country: str, *names) -> frozenset[int]:
    found: set[int] = set()
    table = gazetteer.names(country) if isinstance(country, str) else {}
    for name in names:
        if isinstance(name, str) and name:
            found |= table.get(normalise_name(name), frozenset())
    return frozenset(found)


def _same(a, b) -> bool:
    return bool(pd.notna(a) and pd.notna(b) and a == b)


@dataclass(frozen=True)
class Candidate:
    a: str
    b: str
    score: float  # match probability
    reasons: tuple[str, ...]  # each comparison that moved the weight, with its weight
    weight: float = 0.0


def _per_distinct(values: pd.Series, function) -> np.ndarray:
    """``function`` of each value, computed once per distinct value (names and means repeat a lot)."""
    codes, uniques = pd.factorize(values.astype(object).where(values.notna(), ""))
    return np.array([function(u) for u in uniques], dtype=object)[codes] if len(uniques) else np.array([], dtype=object)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or missing values where the frame lacks it (an older or partial table)."""
    return frame[name] if name in frame.columns else pd.Series(pd.NA, index=frame.index, dtype=object)


def _toll(active: pd.DataFrame, kind: str) -> tuple[pd.arrays.FloatingArray, pd.arrays.FloatingArray]:
    """An incident's lowest and highest figure of people ``kind`` (killed, injured), over civilians, children and all."""
    lows = pd.concat([_column(active, f"{who}_{kind}_min").astype("Float64") for who in ("civilians", "children", "all")], axis=1)
    highs = pd.concat([_column(active, f"{who}_{kind}_max").astype("Float64") for who in ("civilians", "all")], axis=1)
    return lows.max(axis=1).array, highs.max(axis=1).array


def _incident_frame(incidents: pd.DataFrame, urls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Active, dated incidents as plain columns DuckDB can join and score."""
    mask = ((incidents["status"] == "active") & incidents["date_start"].notna() & incidents["date_end"].notna()).fillna(False)
    read = [c for c in incidents.columns if c in {
        "incident_id", "date_start", "date_end", "country_code", "subdivision_code", "geonames_id", "latitude", "longitude",
        "locality_en", "locality_original", "area", "means_of_harm", "site_type", "time_of_day"} or c.endswith(("_killed_min", "_killed_max", "_injured_min", "_injured_max"))]
    active = incidents.loc[mask.to_numpy(dtype=bool), read].drop_duplicates("incident_id")  # these columns only: memory

    def text(column):  # Arrow-backed like the loaded cells: no Python string per cell
        return pd.Series(_column(active, column).fillna("").array, dtype=pd.StringDtype("pyarrow")).array

    def number(column):
        return active[column].astype("Float64").to_numpy(dtype=float, na_value=float("nan"))

    start, end = active["date_start"].to_numpy(), active["date_end"].to_numpy()
    bits = _per_distinct(active["means_of_harm"], linkage.means_bits)
    times = _per_distinct(_column(active, "time_of_day"), linkage.time_window)
    killed, injured = _toll(active, "killed"), _toll(active, "injured")
    frame = pd.DataFrame({
        "id": text("incident_id"), "country": text("country_code"), "subdivision": text("subdivision_code"),
        "start": start, "end": end,
        "geonames": number("geonames_id"), "lat": number("latitude"), "lon": number("longitude"),
        "name": _per_distinct(active["locality_en"], lambda v: normalise_name(v) if v else ""),
        "en": text("locality_en"), "original": text("locality_original"),
        "area": _per_distinct(_column(active, "area"), lambda v: normalise_name(v) if v else ""),
        "centre": _per_distinct(_column(active, "area"), lambda v: linkage.district_centre(v) if v else ""),
        "means": np.array([b[0] for b in bits], dtype="int64"), "families": np.array([b[1] for b in bits], dtype="int64"),
        "groups": np.array([b[2] for b in bits], dtype="int64"),
        "site": pd.Series(text("site_type")).replace("other", "").array,  # `other` says nothing about the site
        "t0": pd.array([t[0] for t in times], dtype="Float64"), "t1": pd.array([t[1] for t in times], dtype="Float64"),
        "killed_lo": killed[0], "killed_hi": killed[1], "injured_lo": injured[0], "injured_hi": injured[1],
    })
    frame["t0"], frame["t1"] = frame["t0"].where(frame["t0"].notna()), frame["t1"].where(frame["t1"].notna())  # NaN → NULL
    frame["reported"] = False if urls is None else among(frame["id"], urls["id"])
    return frame



def _report_keys(reports: pd.DataFrame | None, incidents: pd.DataFrame, what: str) -> pd.DataFrame:
    """(id, key): each incident carrying an active report, with the report's URL or originator (``what``)."""
    from .figures import carrier_ids
    from .figures import originators

    if reports is None or reports.empty:
        return pd.DataFrame({"id": pd.Series([], dtype=object), "key": pd.Series([], dtype=object)})
    read = ["incident_id", "url"] if what == "url" else ["incident_id", "source_id", "republished_from", "claimant", "claimant_type"]
    active = reports.loc[(reports["status"] == "active").fillna(False).to_numpy(dtype=bool), read]  # these columns only: memory
    key = active["url"] if what == "url" else originators(active)
    carriers = carrier_ids(active["incident_id"], incidents) if "merged_into" in incidents.columns else active["incident_id"]
    found = pd.DataFrame({"id": carriers.array, "key": key.array}).dropna()
    return found.drop_duplicates()


def _place_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """(incident, GeoNames ID) for every GeoNames place an incident's locality names can mean.

    Names are looked up once per distinct (country, English name, original name), not per incident.
    """
    named = frame.loc[(frame["en"] != "") | (frame["original"] != ""), ["country", "en", "original"]]
    distinct = named.drop_duplicates()
    distinct["gid"] = [sorted(place_ids(c, e, o)) if c else [] for c, e, o in distinct.itertuples(index=False)]
    found = named.reset_index(names="row").merge(distinct.explode("gid").dropna(), on=["country", "en", "original"])[["row", "gid"]]
    own = pd.DataFrame({"row": np.arange(len(frame)), "gid": frame["geonames"]}).dropna()
    # deduplicated on the incident's row number, not its ID: integers hash cheaper than text (benchmarks/README.md)
    keys = pd.concat([found, own]).astype({"row": "int64", "gid": "int64"}).drop_duplicates()
    return pd.DataFrame({"id": frame["id"].array.take(keys["row"].to_numpy()), "gid": keys["gid"].to_numpy()})


def _populations(keys: pd.DataFrame) -> pd.DataFrame:
    """(gid, population) of the GeoNames places the incidents may be in; a place not in the extract has none."""
    places = gazetteer.places()
    gids = pd.Index(keys["gid"].unique())
    known = gids[gids.isin(places.index)]
    return pd.DataFrame({"gid": known.to_numpy(dtype="int64"), "population": places.loc[known, "population"].to_numpy(dtype="int64")})


def _bound(place, dates=None, means=None, site=None, time=None) -> float:
    """The highest match weight a pair can reach with this place level and these levels (a set each, None: any), sharing no page."""
    return (linkage.PRIOR + linkage.best("place", (place,) if isinstance(place, str) else place) + linkage.best("date", dates) + linkage.best("means", means)
            + linkage.best("figures") + linkage.best("originators") + linkage.best("site", site) + linkage.best("time", time)
            + linkage.best("urls", ("not_shared", "unknown")))


# A pair is generated only if it shares a key; the model must not be able to reach the threshold
# without one. Keyed are: a GeoNames place, alike names, points within NEAR_KM, a shared page,
# a district (area) for an unnamed side, and for an unnamed side its subdivision with a family
# of means of harm, a kind of site, or a time of day on both sides. Left out are pairs of
# different named places, pairs with an unnamed side and a missing subdivision, and unnamed
# pairs that share none of those. tests/test_duplicates.py checks against the unkeyed blocking that
# nothing at or above the threshold is lost.
NO_COMMON_FAMILY = ("unknown", "same_group", "different")
UNNAMED = ("unnamed_same_subdivision", "different_area")  # an unnamed side without the same district: keyed by that
UNKEYED_BOUNDS = {
    "different places": _bound("different"),
    "an unnamed side, no subdivision": _bound("too_coarse"),
    "an unnamed side, no family of means, site or timing in common": _bound(
        UNNAMED, means=NO_COMMON_FAMILY, site=("different", "unknown"), time=("unknown",)),
}
KEYED = all(bound < linkage.THRESHOLD_WEIGHT for bound in UNKEYED_BOUNDS.values())

# At most MAX_SPAN_DAYS days of an interval: a valid one whole, a longer one (dates/span-too-long) cut
# there, so what it costs is bounded whatever the data say.
_EXPAND = """unnest(generate_series(CAST("start" AS DATE) - INTERVAL {pad} DAY,
    least(CAST("end" AS DATE), CAST("start" AS DATE) + INTERVAL {last} DAY) + INTERVAL {pad} DAY, INTERVAL 1 DAY))"""
WIDENED, EXACT = _EXPAND.format(pad=WINDOW_DAYS, last=MAX_SPAN_DAYS - 1), _EXPAND.format(pad=0, last=MAX_SPAN_DAYS - 1)
# each incident of a subdivision once per family of means of harm it names, once for its site, once if timed
SUBDIVISION_KEYS = f"""(SELECT id, country, subdivision, name, 'f' || unnest(list_filter(range({len(linkage.MEANS_FAMILIES)}),
        lambda b: (families >> b) & 1 = 1)) AS tag FROM incidents WHERE subdivision <> ''
    UNION ALL SELECT id, country, subdivision, name, 's' || site FROM incidents WHERE subdivision <> '' AND site <> ''
    UNION ALL SELECT id, country, subdivision, name, 't' FROM incidents WHERE subdivision <> '' AND t0 IS NOT NULL) {{side}}"""
EARTH_KM = 6371.0
CELL = 0.2  # degrees per grid cell: wider than a point's 10 km reach both ways in latitude, so it spans 2 rows of cells, not 3 (a smaller join)
LON_CELLS = round(360 / CELL)  # cells around a parallel: the column number wraps at the antimeridian
# the same country, compatible subdivisions, intervals at most WINDOW_DAYS apart
MEET = f"""x.country = y.country AND (x.subdivision = y.subdivision OR x.subdivision = '' OR y.subdivision = '')
    AND date_diff('day', least(x."end", y."end"), greatest(x."start", y."start")) <= {WINDOW_DAYS}"""


def blocking_sql(prune: bool = True) -> str:
    """SQL for the candidate pairs (a, b), a < b, of the registered ``incidents``, ``keys``, ``alike`` and ``urls`` tables.

    Every incident is expanded to the days of its interval; the ``x`` side adds the window on
    one side only, so two incidents meet iff their intervals are within the window. Pairs share
    a country, and a subdivision unless one side has none. Without ``prune`` that is all
    (the reference). With it (the default), a pair must also meet on a key (see ``KEYED``).
    Keys are joined as 64-bit hashes: a collision can only add a pair to score, never drop one.
    """
    if not (prune and KEYED):
        return f"""
    WITH widened AS (SELECT id, country, subdivision, {WIDENED} AS day FROM incidents),
    exact AS (SELECT id, country, subdivision, {EXACT} AS day FROM incidents)
    SELECT DISTINCT least(x.id, y.id) AS a, greatest(x.id, y.id) AS b
    FROM widened x JOIN exact y ON x.country = y.country AND x.day = y.day AND x.id <> y.id
    WHERE x.subdivision = y.subdivision OR x.subdivision = '' OR y.subdivision = ''
"""
    reach = math.degrees(NEAR_KM * 1.001 / EARTH_KM)  # latitude degrees within NEAR_KM, with a margin for rounding
    lon_reach = f"""CASE WHEN abs(lat) + {reach} >= 89.9 THEN 180.0 ELSE least(180.0, degrees(2 * asin(least(1.0,
        sin({NEAR_KM * 1.001 / EARTH_KM / 2}) / sqrt(cos(radians(abs(lat))) * cos(radians(abs(lat) + {reach}))))))) END"""
    wrap = f"(({{}}) % {LON_CELLS} + {LON_CELLS}) % {LON_CELLS}"
    return f"""
    WITH xdays AS MATERIALIZED (SELECT id, country, subdivision, {WIDENED} AS day FROM incidents),
    ydays AS MATERIALIZED (SELECT id, country, subdivision, {EXACT} AS day FROM incidents),
    cells AS MATERIALIZED (
        SELECT id, row * {LON_CELLS} + {wrap.format("col")} AS cell FROM (
            SELECT id, unnest(generate_series(CAST(floor((lat - {reach}) / {CELL}) AS BIGINT), CAST(floor((lat + {reach}) / {CELL}) AS BIGINT))) AS row,
                   unnest(generate_series(CAST(floor((lon - lon_reach) / {CELL}) AS BIGINT), CAST(floor((lon + lon_reach) / {CELL}) AS BIGINT))) AS col
            FROM (SELECT id, lat, lon, {lon_reach} AS lon_reach FROM incidents WHERE abs(lat) <= 90 AND abs(lon) <= 180))  -- NaN and out-of-range points (structural errors) never compare as near
    ),
    -- each side as (key, day, id); x's days carry the window
    x_keys AS (
        SELECT hash('g', k.gid) AS key, d.* FROM keys k JOIN xdays d ON d.id = k.id  -- a GeoNames place both may be
        UNION ALL SELECT hash('n', s.other), d.* FROM incidents x JOIN alike s ON s.name = x.name JOIN xdays d ON d.id = x.id  -- alike names
        UNION ALL SELECT hash('c', c.cell), d.* FROM cells c JOIN xdays d ON d.id = c.id  -- a cell within NEAR_KM
        UNION ALL SELECT hash('a', x.area), d.* FROM incidents x JOIN xdays d ON d.id = x.id WHERE x.name = '' AND x.area <> ''  -- unnamed: its district
        UNION ALL SELECT hash('n', x.centre), d.* FROM incidents x JOIN xdays d ON d.id = x.id WHERE x.name = '' AND x.centre <> ''  -- unnamed: the place its district is named after
        UNION ALL SELECT hash('s', x.country, x.subdivision, x.tag), d.* FROM {SUBDIVISION_KEYS.format(side="x")} JOIN xdays d ON d.id = x.id
            WHERE x.name = ''  -- unnamed: its subdivision and a family of means, a site or timing in common
    ),
    y_keys AS (
        SELECT hash('g', k.gid) AS key, d.* FROM keys k JOIN ydays d ON d.id = k.id
        UNION ALL SELECT hash('n', y.name), d.* FROM incidents y JOIN ydays d ON d.id = y.id WHERE y.name <> ''
        UNION ALL SELECT hash('a', y.area), d.* FROM incidents y JOIN ydays d ON d.id = y.id WHERE y.area <> ''
        UNION ALL SELECT hash('c', CAST(floor(y.lat / {CELL}) AS BIGINT) * {LON_CELLS} + {wrap.format(f"CAST(floor(y.lon / {CELL}) AS BIGINT)")}), d.*
            FROM incidents y JOIN ydays d ON d.id = y.id WHERE abs(y.lat) <= 90 AND abs(y.lon) <= 180
        UNION ALL SELECT hash('s', y.country, y.subdivision, y.tag), d.* FROM {SUBDIVISION_KEYS.format(side="y")} JOIN ydays d ON d.id = y.id
    ),
    keyed AS (
        SELECT least(x.id, y.id) AS a, greatest(x.id, y.id) AS b
        FROM x_keys x JOIN y_keys y ON y.key = x.key AND y.day = x.day AND y.country = x.country
        WHERE x.id <> y.id AND (x.subdivision = y.subdivision OR x.subdivision = '' OR y.subdivision = '')
    ),
    -- a page in common: bounded by how many incidents one page names. Each side is joined to its
    -- incident in its own step: given both at once, the planner may pair a country's incidents first.
    page_pairs AS MATERIALIZED (SELECT u.id AS a, v.id AS b FROM urls u JOIN urls v ON v.key = u.key AND v.id <> u.id),
    page_x AS MATERIALIZED (SELECT p.b, x.* FROM page_pairs p JOIN incidents x ON x.id = p.a),
    paged AS (
        SELECT least(x.id, y.id) AS a, greatest(x.id, y.id) AS b FROM page_x x JOIN incidents y ON y.id = x.b
        WHERE {MEET}
    )
    SELECT DISTINCT a, b FROM (SELECT * FROM keyed UNION ALL SELECT * FROM paged)
"""


def alike_names(frame: pd.DataFrame) -> pd.DataFrame:
    """(name, other): normalised locality names of one country at least NAME_SIMILARITY % alike, each name with itself too.

    Compared among distinct names, which are bounded by a country's places, not by the
    number of incidents.
    """
    from rapidfuzz import process

    found = [pd.DataFrame({"name": pd.Series([], dtype=object), "other": pd.Series([], dtype=object)})]
    named = frame[frame["name"] != ""]
    for _, names in named.groupby("country")["name"]:
        unique = np.array(sorted(set(names)), dtype=object)
        for start in range(0, len(unique), 1000):
            scores = process.cdist(unique[start:start + 1000], unique, scorer=Levenshtein.normalized_similarity,
                                   score_cutoff=NAME_SIMILARITY / 100 - 1e-9, workers=-1)
            rows, columns = np.nonzero(scores)
            found.append(pd.DataFrame({"name": unique[start + rows], "other": unique[columns]}))
    return pd.concat(found, ignore_index=True)


def _shared(table: str, name: str) -> str:
    """SQL: per candidate pair, how many keys of ``table`` (id, key) both incidents have.

    The first side's keys are materialised per pair before the second side is joined on (id,
    key): left to itself, the planner may join the table to itself on the key first, and one
    busy outlet (10⁵ incidents in its own voice) makes that 10¹⁰ rows.
    """
    return f"""{name}_a AS MATERIALIZED (SELECT p.a, p.b, u.key FROM pairs p JOIN {table} u ON u.id = p.a),
    {name} AS (SELECT s.a, s.b, count(DISTINCT s.key) AS n FROM {name}_a s JOIN {table} v ON v.id = s.b AND v.key = s.key GROUP BY s.a, s.b)"""


def scoring_sql(prune: bool = True) -> str:
    """SQL scoring every candidate pair: each comparison's level (``<name>_level``), the match weight and probability.

    The levels and weights come from ``linkage.MODEL``; explanations read these columns.
    """
    levels = ", ".join(f"{linkage.level_sql(c)} AS {c.name}_level" for c in MODEL)
    weight = " + ".join([repr(linkage.PRIOR)] + [linkage.weight_sql(c, f"{c.name}_level") for c in MODEL])
    return f"""
    WITH pairs AS MATERIALIZED ({blocking_sql(prune)}),
    place_a AS MATERIALIZED (SELECT p.a, p.b, ka.gid FROM pairs p JOIN keys ka ON ka.id = p.a),  -- as in _shared: per pair first
    shared AS (
        SELECT s.a, s.b, min(s.gid) AS gid, max(pl.population) AS population FROM place_a s
        JOIN keys kb ON kb.id = s.b AND kb.gid = s.gid LEFT JOIN places pl ON pl.gid = s.gid
        GROUP BY s.a, s.b
    ),
    {_shared("urls", "paged")},
    {_shared("originators", "voiced")},
    measured AS (
        SELECT p.a, p.b, s.a IS NOT NULL AS shared_place, s.gid, s.population,
            CASE WHEN isnan(x.lat) OR isnan(y.lat) THEN NULL ELSE
                {EARTH_KM} * 2 * asin(sqrt(pow(sin(radians(y.lat - x.lat) / 2), 2)
                    + cos(radians(x.lat)) * cos(radians(y.lat)) * pow(sin(radians(y.lon - x.lon) / 2), 2))) END AS km,
            CASE WHEN x.name <> '' AND y.name <> '' THEN
                100.0 * (1 - levenshtein(x.name, y.name) / greatest(length(x.name), length(y.name))) END AS similarity,
            x.name = '' OR y.name = '' AS unnamed,
            (x.name = '' AND x.centre <> '' AND x.centre = y.name) OR (y.name = '' AND y.centre <> '' AND y.centre = x.name) AS centre_named, x.area AS x_area, y.area AS y_area, x.subdivision <> '' AND x.subdivision = y.subdivision AS same_subdivision,
            date_diff('day', least(x."end", y."end"), greatest(x."start", y."start")) AS gap,
            greatest(date_diff('day', x."start", x."end"), date_diff('day', y."start", y."end")) + 1 AS wide,
            x.means AS x_means, y.means AS y_means, x.families AS x_families, y.families AS y_families,
            x.groups AS x_groups, y.groups AS y_groups, {linkage.FIGURE_SQL},
            coalesce(u.n, 0) AS shared_urls, coalesce(o.n, 0) AS shared_originators, x.reported AND y.reported AS reported,
            x.site AS x_site, y.site AS y_site, x.t0 AS x_t0, x.t1 AS x_t1, y.t0 AS y_t0, y.t1 AS y_t1
        FROM pairs p JOIN incidents x ON x.id = p.a JOIN incidents y ON y.id = p.b
        LEFT JOIN shared s ON s.a = p.a AND s.b = p.b LEFT JOIN paged u ON u.a = p.a AND u.b = p.b
        LEFT JOIN voiced o ON o.a = p.a AND o.b = p.b
    ),
    levelled AS (
        SELECT a, b, gid, population, km, similarity, shared_urls, shared_originators, {levels}
        FROM (SELECT *, wide = 1 AND gap = 0 AS same_day FROM measured)
    )
    SELECT *, 1 / (1 + pow(2, -weight)) AS score FROM (SELECT *, {weight} AS weight FROM levelled)
"""


# DuckDB spills the blocking join to a temporary folder beyond this, instead of growing the run's
# peak memory (benchmarks/README.md, "Timing notes").
DUCKDB_MEMORY = "400MB"


@contextmanager
def _connect():
    import duckdb  # here, not at the top: on a large package only the second process needs it

    with tempfile.TemporaryDirectory(prefix="civharm-duckdb-") as spill, duckdb.connect() as connection:
        connection.execute("SET enable_progress_bar = false")  # it would print into --format json output
        connection.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
        connection.execute("SET temp_directory = '{}'".format(spill.replace("'", "''")))
        yield connection


def _prepared(connection, incidents: pd.DataFrame, reports: pd.DataFrame | None) -> int:
    """Register the tables the blocking and scoring SQL read; the number of incidents to compare."""
    urls = _report_keys(reports, incidents, "url")
    frame = _incident_frame(incidents, urls if reports is not None else None)
    keys = _place_keys(frame)
    connection.register("incidents", frame)
    connection.register("keys", keys)
    connection.register("places", _populations(keys))
    connection.register("alike", alike_names(frame))
    connection.register("urls", urls)
    connection.register("originators", _report_keys(reports, incidents, "originator"))
    return len(frame)


def candidate_pairs(incidents: pd.DataFrame, prune: bool = True, reports: pd.DataFrame | None = None) -> pd.DataFrame:
    """Blocking: pairs of active incidents sharing a country, dates within the window, a compatible subdivision and a key."""
    with _connect() as connection:
        if _prepared(connection, incidents, reports) < 2:
            return pd.DataFrame(columns=["a", "b"])
        return connection.execute(blocking_sql(prune) + " ORDER BY a, b").df()


def scored_pairs(incidents: pd.DataFrame, minimum: float = 0.0, prune: bool = True, reports: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every candidate pair with its levels, weight and match probability (``score``), computed in DuckDB.

    Pairs below ``minimum`` are dropped; ``prune=False`` scores the pairs that cannot reach the threshold too (for tests).
    """
    with _connect() as connection:
        if _prepared(connection, incidents, reports) < 2:
            return pd.DataFrame(columns=["a", "b", "weight", "score"])
        return connection.execute(f"SELECT * FROM ({scoring_sql(prune)}) WHERE score >= ? ORDER BY a, b", [minimum]).df()


def near_duplicates(incidents: pd.DataFrame, minimum: float = THRESHOLD, reports: pd.DataFrame | None = None) -> list[Candidate]:
    """Pairs scoring at least ``minimum``: scored in DuckDB, then put in words from their levels."""
    pairs = scored_pairs(incidents, minimum, reports=reports)
    paired = incidents[incidents["incident_id"].isin(set(pairs["a"]) | set(pairs["b"])).to_numpy(dtype=bool)]
    by_id = paired.drop_duplicates("incident_id").set_index("incident_id", drop=False)
    return [Candidate(row["a"], row["b"], float(row["score"]), linkage.explain(row, by_id.loc[row["a"]], by_id.loc[row["b"]]), float(row["weight"]))
            for row in pairs.to_dict("records")]

def repeated_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` that equal another row in all ``columns`` (missing equals missing), in order.

    Narrowed column by column, the most varied first (judged on a sample): a row repeated in
    all columns is repeated in each, and after one or two columns few rows are left, so the
    full comparison runs on those only instead of on every row of a large table.
    """
    sample = frame[columns].head(SAMPLE_ROWS)
    varied = sorted(columns, key=lambda c: -sample[c].nunique(dropna=False))
    kept = np.arange(len(frame))  # positions still in the running; one column is read at a time
    for column in varied:
        if not len(kept):
            break
        cells = frame[column] if len(kept) == len(frame) else frame[column].take(kept)
        kept = kept[cells.duplicated(keep=False).to_numpy(dtype=bool)]
    rows = frame.take(kept)
    return rows[rows.duplicated(subset=columns, keep=False).to_numpy(dtype=bool)]


SAMPLE_ROWS = 1000


def _content_duplicates(resource) -> list[Finding]:
    frame = resource.frame
    if frame.empty:
        return []
    key = resource.schema.get("primaryKey", [])
    # the schema's fields, not the header's labels: a header of 20,000 extra labels grouped them all
    content = [c for c in resource.field_names if c not in key and c not in ("record_version", "last_updated")]
    if not content or len(key) != 1:
        return []
    findings = []
    for _, group in repeated_rows(frame, content).groupby(content, sort=False, dropna=False):
        first = group.index[0]
        for index in group.index[1:]:
            findings.append(RULES["duplicates/exact-row"].finding(resource.path, resource.line_of(index), key[0],
                                     f"{frame.at[index, key[0]]} repeats {frame.at[first, key[0]]} (line {resource.line_of(first)}) in every field but the ID"))
    return findings


def check(package: Package) -> list[Finding]:
    """Every duplicate finding for the package.

    The near-duplicate search runs first: it needs the most memory, and the heap is smallest
    before the other checks have left their freed blocks in it.
    """
    findings: list[Finding] = []
    incidents_res, reports_res = package.get("incidents"), package.get("reports")
    both = incidents_res is not None and reports_res is not None and incidents_res.usable and reports_res.usable
    if both:
        findings += _near_duplicate_findings(package, incidents_res, incidents_res.typed, reports_res.typed)
    for name in ("incidents", "reports", "damage", "sources"):
        resource = package.get(name)
        if resource is not None and resource.usable:
            findings += _content_duplicates(resource)
    if both:
        findings += _same_statement(reports_res, reports_res.typed, incidents_res.typed)
        findings += _same_figures(reports_res, reports_res.typed)
    return findings


def _same_statement(resource, reports: pd.DataFrame, incidents: pd.DataFrame) -> list[Finding]:
    from .figures import carrier_ids

    # A statement repeats only where its URL and as_of do: those rows first, among all rows (no
    # copy of a million cells to select the active ones), then again among the active ones.
    repeated = repeated_rows(reports[["status", "incident_id", "url", "claimant", "as_of"]], ["url", "as_of"])
    active = repeated_rows(repeated.loc[(repeated["status"] == "active").fillna(False).to_numpy(dtype=bool)], ["url", "as_of"])
    keyed = pd.DataFrame({"carrier": carrier_ids(active["incident_id"], incidents), "url": active["url"],
                          "claimant": active["claimant"].str.casefold().str.strip(), "as_of": active["as_of"]})
    findings = []
    successor = reports["superseded_by"]
    for _, group in keyed[keyed.duplicated(keep=False).to_numpy(dtype=bool)].groupby(list(keyed.columns), sort=False):
        first = group.index[0]
        for index in group.index[1:]:
            if _same(reports.at[index, "report_id"], successor[first]) or _same(reports.at[first, "report_id"], successor[index]):
                continue  # an update that supersedes the other row is a different statement by declaration
            findings.append(RULES["duplicates/same-statement"].finding(resource.path, resource.line_of(index), "report_id",
                                     f"{reports.at[index, 'report_id']} repeats the statement of {reports.at[first, 'report_id']} (line {resource.line_of(first)}): same URL, claimant and as_of on one incident"))
    return findings


def _same_figures(resource, reports: pd.DataFrame) -> list[Finding]:
    """One warning per statement that repeats an earlier one's source, day and figures on another incident.

    Each row names the first earlier such statement (with another URL): a busy outlet's day
    yields one warning per repeated row, not one per pair, so the list stays readable.
    Worked out on arrays, group by group (a large package yields very many warnings).
    """
    from .figures import FIGURES

    columns = [c for f in FIGURES for c in (f, f"{f}_qualifier")]
    has_figure = reports[list(FIGURES)].notna().any(axis=1)
    chosen = ((reports["status"] == "active") & has_figure).fillna(False).to_numpy(dtype=bool)
    if not chosen.any():
        return []
    active = reports.loc[chosen, ["source_id", "incident_id", "url", "report_id", "as_of"] + columns]  # these columns only: memory
    keyed = active.drop(columns="as_of").assign(day=active["as_of"].str.slice(0, 10))
    group = keyed.groupby(["source_id", "day"] + columns, sort=False, dropna=False).ngroup().to_numpy()  # missing = missing, as in a CSV
    incident = pd.factorize(keyed["incident_id"])[0]  # a missing incident or URL is one value of its own, as ""
    lowest, highest = np.full(group.max() + 1, len(keyed)), np.full(group.max() + 1, -1)
    np.minimum.at(lowest, group, incident)
    np.maximum.at(highest, group, incident)
    shared = np.flatnonzero((lowest != highest)[group])  # rows of groups on more than one incident: the only ones that warn
    if not len(shared):
        return []
    order = shared[np.lexsort((keyed.index.to_numpy()[shared], group[shared]))]  # each group's rows in file order
    group, incident = group[order], incident[order]
    rows = keyed[["report_id", "incident_id", "url"]].take(order)
    url = pd.factorize(rows["url"])[0]
    partner = _earlier_on_another_incident(group, incident, url)
    found = np.flatnonzero(partner >= 0)
    found = found[np.argsort(rows.index.to_numpy()[found], kind="stable")]  # in file order: the report's sort then runs through them
    names = rows[["report_id", "incident_id"]].astype(object).fillna("").to_numpy()
    index = rows.index.to_numpy()
    report_ids, incident_ids = names[:, 0].tolist(), names[:, 1].tolist()
    partner_lines = resource.lines_of(index[partner[found]]).tolist()
    messages = [f"{report_ids[row]} has the same source, date and figures as {report_ids[other]} (line {other_line}) "
                f"on incident {incident_ids[other]}; is one statement attached to two incidents?"
                for row, other, other_line in zip(found.tolist(), partner[found].tolist(), partner_lines)]
    rule_id = "duplicates/same-figures-other-incident"
    return list(map(Finding._make, zip(repeat(resource.path), resource.lines_of(index[found]).tolist(), repeat("incident_id"),
                                       repeat(rule_id), messages, repeat(RULES[rule_id].severity), repeat(None))))


def _earlier_on_another_incident(group: np.ndarray, incident: np.ndarray, url: np.ndarray) -> np.ndarray:
    """For each row (sorted by group, then file order), the position of the statement it repeats, or -1.

    That is the group's first row when this row is on another incident, else the first row on
    another incident than the first's, if it came earlier; a partner with this row's URL (the
    same page) gives way to the first earlier row on another incident with another URL.
    """
    n = len(group)
    position = np.arange(n)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    sizes = np.diff(np.r_[starts, n])
    first = np.repeat(starts, sizes)
    differs = incident != incident[first]
    other = np.repeat(np.minimum.reduceat(np.where(differs, position, n), starts), sizes)  # n: none in the group
    partner = np.where(differs, first, np.where(other < position, other, -1))
    for row in np.flatnonzero((partner >= 0) & (url[np.maximum(partner, 0)] == url)):  # rare: look further back
        earlier = np.arange(first[row], row)
        fits = earlier[(incident[earlier] != incident[row]) & (url[earlier] != url[row])]
        partner[row] = fits[0] if len(fits) else -1
    return partner


def rests_on(schema: dict) -> dict[str, list[str]]:
    """Reason → the incident fields it rests on, as declared once in schema/duplicate_decisions.json."""
    for field in schema.get("fields", []):
        if field.get("name") == "reason":
            declared = field.get("civharm:rests_on")
            return declared if isinstance(declared, dict) else {}
    return {}


def _cell_text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def fingerprint(fields: list[str], first: dict, second: dict) -> str:
    """The 16 hex digits a decision stores: SHA-256 of ``fields`` of the pair's incidents (as CSV text), in ID order."""
    import hashlib
    import json

    a, b = sorted((first, second), key=lambda row: _cell_text(row.get("incident_id")))
    cells = [[name, _cell_text(a.get(name)), _cell_text(b.get(name))] for name in fields]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _decision_basis(package: Package, resource, frame: pd.DataFrame) -> list[Finding]:
    """Distinct decisions without a reason, and those whose incidents changed in what the reason rests on."""
    reasons = rests_on(resource.schema)
    definitions = next((f.get("civharm:definitions", {}) for f in resource.schema.get("fields", []) if f.get("name") == "reason"), {})
    if "reason" not in frame.columns or "fingerprint" not in frame.columns:
        return []
    incidents_res = package.get("incidents")
    raw = None
    if incidents_res is not None and incidents_res.usable:
        raw = incidents_res.frame.drop_duplicates("incident_id").set_index("incident_id", drop=False)
    findings = []
    distinct = frame[((frame["status"] == "active") & (frame["decision"] == "distinct")).fillna(False).to_numpy(dtype=bool)]
    for index, row in distinct.iterrows():
        line = resource.line_of(index)
        reason = row["reason"]
        if pd.isna(reason) or reason not in reasons:
            findings.append(RULES["duplicates/decision-without-reason"].finding(resource.path, line, "reason",
                                     f"a distinct decision says what tells {row['incident_a']} and {row['incident_b']} apart: "
                                     f"give one of {', '.join(definitions or reasons)}"))
            continue
        if raw is None or row["incident_a"] not in raw.index or row["incident_b"] not in raw.index:
            continue  # a missing incident is the foreign key's finding
        fields = reasons[reason]
        now = fingerprint(fields, raw.loc[row["incident_a"]].to_dict(), raw.loc[row["incident_b"]].to_dict())
        if pd.isna(row["fingerprint"]):
            findings.append(RULES["duplicates/decision-outdated"].finding(resource.path, line, "fingerprint",
                                     f"no fingerprint: cannot tell whether {', '.join(fields)} of {row['incident_a']} or {row['incident_b']} "
                                     f"changed since the decision; check both against their pages, then write {now}"))
        elif row["fingerprint"] != now:
            findings.append(RULES["duplicates/decision-outdated"].finding(resource.path, line, "fingerprint",
                                     f"the reason {reason} rests on {', '.join(fields)}, and these changed in {row['incident_a']} or "
                                     f"{row['incident_b']} since the decision (fingerprint {row['fingerprint']}, now {now}): check the pair "
                                     f"against their pages again, then update the row (reason, note, fingerprint {now}) or merge the two"))
    return findings


def _decisions(package: Package) -> tuple[dict[tuple[str, str], str], list[Finding]]:
    resource = package.get("duplicate_decisions")
    if resource is None or not resource.usable:
        return {}, []
    frame = resource.typed
    decided: dict[tuple[str, str], str] = {}
    findings = _decision_basis(package, resource, frame)
    incidents = None  # looked up only for a "merged" decision
    for index, row in frame[frame["status"] == "active"].iterrows():
        pair = tuple(sorted((row["incident_a"], row["incident_b"])))
        decided[pair] = row["decision"]
        if row["decision"] == "merged":
            if incidents is None:
                incidents = package["incidents"].typed[["incident_id", "status", "merged_into"]].drop_duplicates("incident_id").set_index("incident_id")
            a, b = pair
            merged = any(pid in incidents.index and incidents.at[pid, "status"] == "merged" and incidents.at[pid, "merged_into"] == other
                         for pid, other in ((a, b), (b, a)))
            if not merged:
                findings.append(RULES["duplicates/decision-not-done"].finding(resource.path, resource.line_of(index), "decision",
                                         f"the decision says merged, but neither {a} nor {b} is merged into the other"))
    return decided, findings


def _near_duplicate_findings(package: Package, resource, incidents: pd.DataFrame, reports: pd.DataFrame) -> list[Finding]:
    decided, findings = _decisions(package)
    candidates = near_duplicates(incidents, reports=reports)
    named = {iid for candidate in candidates for iid in (candidate.a, candidate.b)}
    rows = incidents.index[incidents["incident_id"].isin(named).to_numpy(dtype=bool)]  # lines of these only: 10⁵ incidents
    line_of = {incidents.at[i, "incident_id"]: resource.line_of(i) for i in rows}
    for candidate in candidates:
        if candidate.score < THRESHOLD or (candidate.a, candidate.b) in decided:
            continue
        first, second = sorted((candidate.a, candidate.b), key=lambda i: line_of.get(i, 0))
        findings.append(RULES["duplicates/near-duplicate"].finding(
            resource.path, line_of.get(second), "incident_id",
            f"{second} may be the same event as {first} (line {line_of.get(first)}): match probability {candidate.score:.2f}, "
            f"weight {candidate.weight:+.1f} (prior {linkage.PRIOR:+.1f}; {'; '.join(candidate.reasons)}). "
            f"Check both against their sources, then either attach the later statement to the incident it describes, "
            f"or record in data/duplicate_decisions.csv that this pair is distinct, with a reason, a note and the fingerprint validate then shows "
            f"(`civharm decide` does this for the pair; `civharm add` per candidate), or merge one into the other (status merged, merged_into, a corrections-log entry) and record the decision as merged"))
    return findings
