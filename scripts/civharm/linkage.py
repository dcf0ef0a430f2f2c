"""The near-duplicate model: Fellegi–Sunter match weights, declared once, as data.

Two incidents are compared on eight kinds of evidence (place, date, means of harm, figures,
shared report URLs, shared originators, site, time of day). Each comparison puts the pair in
one *level*; each level has an m probability (that a pair of reports of one event falls in
it) and a u probability (that a pair of different events of one country, dated within weeks
of each other, does). The level's weight is log2(m / u): positive evidence for one event,
negative for two. A pair's match weight is ``PRIOR`` plus the weights of its levels, and its
match probability 1 / (1 + 2^-weight). A *null* level (a side does not say) has no m or u
and weighs 0: missing evidence moves nothing.

The m and u values are judgement, not training: this project has no labelled volume to
estimate them from (Splink's EM training needs thousands of unlabelled pairs per block and
labels to check it; we have tens). They were set from what each level means (u from how
often unrelated incidents share it, e.g. a date interval of w days meets an unrelated one in
about w of 60 days) and checked against the linkage evaluation (``benchmarks/linkage.py``).
The codebook prints this table; ``duplicates.scoring_sql`` turns it into one SQL expression
that both the gate and each finding's explanation read.
"""
from __future__ import annotations

import math
import re

import pandas as pd
from unidecode import unidecode
from dataclasses import dataclass

WINDOW_DAYS = 2  # blocking pairs incidents whose date intervals lie at most this many days apart
NARROW_DAYS = 8  # intervals at most this long that overlap are about as good as days a few apart
LARGE_PLACE = 300_000  # GeoNames population from which a shared place is a city that many incidents share
FIGURE_RATIO, FIGURE_SLACK = 4, 4  # tolls are far apart when the larger exceeds RATIO × smaller + SLACK
NEAR_KM, FAR_KM = 10, 50
NAME_SIMILARITY = 80  # per cent (Levenshtein) at which two locality names count as alike
PRIOR_PROBABILITY = 1 / 630  # that two incidents of one country, dated within the window, are one event
THRESHOLD = 0.5  # match probability from which a pair must be reviewed

# Means of harm as a small hierarchy: value → family → group. Family and group names follow the
# ACLED codebook's sub-event types ("Shelling/artillery/missile attack", "Air/drone strike",
# "Remote explosive/landmine/IED", "Armed clash") and their event types ("Explosions/Remote
# violence", "Battles"). Debris of an intercepted missile or drone belongs to both families its
# source could come from. `other` and `unknown` belong to none: they say nothing.
MEANS_FAMILIES = {
    "indirect_fire": ("explosions", ("missile", "rocket_mlrs", "artillery", "falling_debris")),
    "air_or_drone_strike": ("explosions", ("drone", "aerial_bomb", "falling_debris")),
    "mine_or_explosive_remnant": ("explosions", ("mine_uxo",)),
    "armed_clash": ("battles", ("ground_fighting",)),
}
# The values come from the families, not from a second copy of the schema's vocabulary
# (schema/incidents.json, means_of_harm): a value in no family (`other`, `unknown`, or one added
# to the schema later) says nothing about whether two incidents are one event.
MEANS = tuple(dict.fromkeys(value for _, members in MEANS_FAMILIES.values() for value in members))
GROUPS = tuple(dict.fromkeys(group for group, _ in MEANS_FAMILIES.values()))


def _bits(names) -> int:
    return sum(1 << i for i, name in enumerate(names))


MEANS_BITS = {name: 1 << i for i, name in enumerate(MEANS)}
KNOWN_MEANS = sum(MEANS_BITS.values())
FAMILY_BITS = {value: sum(1 << i for i, (_, members) in enumerate(MEANS_FAMILIES.values()) if value in members) for value in MEANS}
GROUP_BITS = {value: sum(1 << GROUPS.index(group) for group, members in MEANS_FAMILIES.values() if value in members) for value in MEANS}


def means_bits(value: str) -> tuple[int, int, int]:
    """(means, families, groups) of a `;`-separated means_of_harm value, as bit sets."""
    parts = [p for p in value.split(";") if p in MEANS_BITS]
    means = families = groups = 0
    for part in parts:
        means |= MEANS_BITS[part]
        families |= FAMILY_BITS[part]
        groups |= GROUP_BITS[part]
    return means, families, groups


# Words that make a place name a district's: "Kharkiv district", "Kharkivskyi raion", "Bucha hromada".
# Districts of Ukraine and Russia mostly bear their centre's name, in the adjective form after
# "raion"/"rayon"; a district so named is evidence for its centre, not proof (`area_names_locality`).
DISTRICT_WORDS = frozenset({"district", "raion", "rayon", "hromada", "municipality", "community", "okrug", "urban", "rural",
                            "settlement", "territorial", "city", "oblast", "region"})
ADJECTIVE_ENDINGS = ("skyi", "skyy", "skiy", "skii", "sky", "ska", "ski", "skoi", "skoy", "ckyi", "cky")


def district_centre(area: str) -> str:
    """The normalised name of the place a district is named after ('Kharkivskyi raion' → 'kharkiv'), or ''."""
    words = re.findall(r"[a-z0-9]+", unidecode(area).lower()) if isinstance(area, str) else []
    kept = [w for w in words if w not in DISTRICT_WORDS]
    if not kept or len(kept) == len(words):
        return ""  # no district word: a bare name is the locality's business, not a district's
    last = kept[-1]
    for ending in ADJECTIVE_ENDINGS:
        if last.endswith(ending) and len(last) > len(ending) + 2:
            kept[-1] = last[: -len(ending)]
            break
    return "".join(kept)


PARTS_OF_DAY = {"night": (0, 359), "morning": (360, 719), "afternoon": (720, 1079), "evening": (1080, 1439)}
CLOCK_SLACK = 90  # minutes either side of a stated clock time


def time_window(value) -> tuple[float, float]:
    """The minutes of the day a time_of_day value allows, or (nan, nan) when it says nothing."""
    if not isinstance(value, str) or not value:
        return math.nan, math.nan
    if value in PARTS_OF_DAY:
        return PARTS_OF_DAY[value]
    try:
        hours, minutes = (int(p) for p in value.split(":"))
    except ValueError:
        return math.nan, math.nan  # a malformed value is a structure error, reported there
    clock = hours * 60 + minutes
    return max(0, clock - CLOCK_SLACK), min(1439, clock + CLOCK_SLACK)


@dataclass(frozen=True)
class Level:
    """One level of a comparison: its SQL condition (None: every pair left), m and u (None: a null level)."""

    id: str
    sql: str | None
    m: float | None
    u: float | None
    text: str

    @property
    def weight(self) -> float:
        return 0.0 if self.m is None else math.log2(self.m / self.u)


@dataclass(frozen=True)
class Comparison:
    name: str
    text: str
    levels: tuple[Level, ...]

    def level(self, level_id: str) -> Level:
        return next(level for level in self.levels if level.id == level_id)


def _figure_sql(kind: str) -> str:
    """SQL columns <kind>_cmp, <kind>_equal, <kind>_far over x/y.<kind>_lo and _hi (a toll's lowest and highest figure)."""
    lo_x, lo_y, hi_x, hi_y = f"x.{kind}_lo", f"y.{kind}_lo", f"x.{kind}_hi", f"y.{kind}_hi"
    small_hi = f"CASE WHEN {lo_x} <= {lo_y} THEN {hi_x} ELSE {hi_y} END"
    return (f"({lo_x} IS NOT NULL AND {lo_y} IS NOT NULL) AS {kind}_cmp, coalesce({lo_x} = {lo_y}, false) AS {kind}_equal, "
            f"coalesce(greatest({lo_x}, {lo_y}) > {FIGURE_RATIO} * least({lo_x}, {lo_y}) + {FIGURE_SLACK} "
            f"AND NOT coalesce({small_hi} >= greatest({lo_x}, {lo_y}), false), false) AS {kind}_far")


FIGURE_SQL = ", ".join([_figure_sql(kind) for kind in ("killed", "injured")] + ["coalesce(x.killed_lo, 0) + coalesce(x.injured_lo, 0) > 0 AS harmed"])

MODEL = (
    Comparison("place", "Locality: GeoNames place, names, distance, subdivision.", (
        Level("same_small_place", f"shared_place AND coalesce(population, 0) < {LARGE_PLACE}", 0.30, 0.0012,
              "the same GeoNames place, under {population_words} inhabitants or unknown: few incidents share it"),
        Level("same_large_place", "shared_place", 0.45, 0.02, f"the same GeoNames place of {LARGE_PLACE:,} inhabitants or more"),
        Level("far_apart", f"km > {FAR_KM}", 0.01, 0.50, f"points more than {FAR_KM} km apart"),
        Level("alike_names", f"similarity >= {NAME_SIMILARITY}", 0.05, 0.002, f"locality names at least {NAME_SIMILARITY}% alike (Levenshtein)"),
        Level("near", f"km <= {NEAR_KM}", 0.03, 0.006, f"points within {NEAR_KM} km"),
        Level("area_names_locality", "centre_named",
              0.03, 0.006, "one side names only a district named after the other's locality"),
        Level("same_area", "unnamed AND x_area <> '' AND x_area = y_area", 0.04, 0.01, "one side names no locality; the same district (area)"),
        Level("different_area", "unnamed AND x_area <> '' AND y_area <> ''", 0.005, 0.08, "one side names no locality; different districts (areas)"),
        Level("unnamed_same_subdivision", "unnamed AND same_subdivision", 0.07, 0.024, "one side names no locality; same subdivision"),
        Level("too_coarse", "unnamed", 0.005, 0.10, "one side names no locality, and a subdivision is missing"),
        Level("different", None, 0.01, 0.2508, "different localities"),
    )),
    Comparison("date", "Date intervals (date_start..date_end), by how they meet and how wide they are.", (
        Level("same_day", "wide = 1 AND gap = 0", 0.41, 0.0117, "the same day"),
        Level("one_day", "wide = 1 AND gap = 1", 0.25, 0.023, "days one apart"),
        Level("two_days", "wide = 1 AND gap = 2", 0.035, 0.023, "days two apart"),
        Level("within_week", f"gap <= 0 AND wide <= {NARROW_DAYS}", 0.10, 0.012, f"intervals of at most {NARROW_DAYS} days overlap"),
        Level("within_month", "gap <= 0 AND wide <= 31", 0.15, 0.077, "intervals of at most 31 days overlap"),
        Level("wide_overlap", "gap <= 0", 0.03, 0.03, "intervals overlap, one longer than 31 days"),
        Level("close", f"gap <= {WINDOW_DAYS}", 0.015, 0.05, f"a coarse interval ends at most {WINDOW_DAYS} days from the other"),
        Level("apart", None, 0.01, 0.7733, "intervals farther apart"),
    )),
    Comparison("means", "Means of harm, through the hierarchy (value, family, group).", (
        Level("same_means", f"(x_means & y_means & {KNOWN_MEANS}) <> 0", 0.68, 0.30, "a means of harm in common"),
        Level("unknown", f"(x_means & {KNOWN_MEANS}) = 0 OR (y_means & {KNOWN_MEANS}) = 0", None, None, "a side's means unknown"),
        Level("same_family", "(x_families & y_families) <> 0", 0.20, 0.25, "different means of one family"),
        Level("same_group", "(x_groups & y_groups) <> 0", 0.10, 0.25, "different families of one group"),
        Level("different", None, 0.02, 0.20, "different groups"),
    )),
    Comparison("figures", "Killed and injured (any status), as ranges: a rising toll is compatible, a far larger one is not.", (
        Level("far", "killed_far OR injured_far", 0.05, 0.30, f"a toll more than {FIGURE_RATIO}× the other + {FIGURE_SLACK}"),
        Level("equal_both", "killed_equal AND injured_equal AND harmed", 0.20, 0.067, "the same killed and injured, not both zero"),
        Level("equal", "(killed_cmp OR injured_cmp) AND (killed_equal OR NOT killed_cmp) AND (injured_equal OR NOT injured_cmp)", 0.25, 0.11,
              "the same lowest figures where both give one"),
        Level("compatible", "killed_cmp OR injured_cmp", 0.50, 0.523, "different but compatible figures (a toll can rise)"),
        Level("unknown", None, None, None, "no figure on both sides"),
    )),
    Comparison("urls", "Report URLs shared by the two incidents' active reports; a page that names two places names two incidents.", (
        Level("shared_same_place", f"shared_urls > 0 AND (shared_place OR centre_named OR similarity >= {NAME_SIMILARITY})", 0.13, 0.03, "a page in common, the same place"),
        Level("shared_unnamed", "shared_urls > 0 AND unnamed", 0.01, 0.01, "a page in common, one side naming no locality (one event, or a round-up of several)"),
        Level("shared_other_place", "shared_urls > 0", 0.01, 0.04, "a page in common that names the two places apart"),
        Level("not_shared", "reported", 0.85, 0.92, "no page in common"),
        Level("unknown", None, None, None, "a side has no reports"),
    )),
    Comparison("originators", "Originators (claimant, or the outlet copied) shared by the two incidents' active reports.", (
        Level("shared", "shared_originators > 0", 0.55, 0.34, "an originator in common"),
        Level("not_shared", "reported", 0.45, 0.66, "no originator in common"),
        Level("unknown", None, None, None, "a side has no reports"),
    )),
    Comparison("site", "Site within the place (site_type; `other` says nothing).", (
        Level("same", "x_site <> '' AND x_site = y_site", 0.96, 0.20, "the same kind of site"),
        Level("different", "x_site <> '' AND y_site <> ''", 0.04, 0.80, "different kinds of site"),
        Level("unknown", None, None, None, "a side's site not recorded"),
    )),
    Comparison("time", "Time of day, compared on the same day only.", (
        Level("same", "same_day AND x_t0 IS NOT NULL AND y_t0 IS NOT NULL AND x_t0 <= y_t1 AND y_t0 <= x_t1", 0.92, 0.30, "times of day that meet"),
        Level("different", "same_day AND x_t0 IS NOT NULL AND y_t0 IS NOT NULL", 0.08, 0.70, "times of day that do not meet"),
        Level("unknown", None, None, None, "not both timed on one day"),
    )),
)
COMPARISONS = {comparison.name: comparison for comparison in MODEL}
PRIOR = math.log2(PRIOR_PROBABILITY / (1 - PRIOR_PROBABILITY))
THRESHOLD_WEIGHT = math.log2(THRESHOLD / (1 - THRESHOLD))


def probability(weight: float) -> float:
    """Match probability of a match weight."""
    return 1 / (1 + 2 ** -weight)


def level_sql(comparison: Comparison) -> str:
    """CASE expression giving the index of the pair's level (0-based, first condition that holds)."""
    whens = " ".join(f"WHEN {level.sql} THEN {i}" for i, level in enumerate(comparison.levels) if level.sql is not None)
    return f"CASE {whens} ELSE {len(comparison.levels) - 1} END"


def weight_sql(comparison: Comparison, column: str) -> str:
    """The weight of the level index in ``column``, from the declared table."""
    weights = ", ".join(f"{level.weight!r}" for level in comparison.levels)
    return f"[{weights}][{column} + 1]"


def best(comparison: str, allowed: tuple[str, ...] | None = None) -> float:
    """The highest weight a comparison can add, over all its levels or the ``allowed`` ones."""
    return max(level.weight for level in COMPARISONS[comparison].levels if allowed is None or level.id in allowed)


def codebook_text() -> str:
    """The model as the codebook prints it: every level with m, u and weight, and the means hierarchy."""
    out = ["How `duplicates/near-duplicate` scores a pair of active incidents (Fellegi–Sunter; "
           "see `scripts/civharm/linkage.py` for why the values are what they are). "
           f"A pair's match weight is the prior {PRIOR:+.2f} (one pair in {round(1 / PRIOR_PROBABILITY):,} of one country and "
           f"date window is one event) plus one weight per comparison; a pair whose match probability reaches {THRESHOLD} "
           f"(weight {THRESHOLD_WEIGHT:+.2f}) must be reviewed. Each finding lists the weights that moved it.", "",
           "| comparison | level | when | m | u | weight |", "|---|---|---|---|---|---|"]
    for comparison in MODEL:
        for level in comparison.levels:
            m, u = ("", "") if level.m is None else (f"{level.m:g}", f"{level.u:g}")
            text = level.text.replace("{population_words}", f"{LARGE_PLACE:,}")
            out.append(f"| {comparison.name} | `{level.id}` | {text} | {m} | {u} | {level.weight:+.2f} |")
    out += ["", "Means of harm are compared through this hierarchy (names after the ACLED codebook's event and sub-event types):", "",
            "| group | family | values |", "|---|---|---|"]
    out += [f"| {group} | {family} | {', '.join(f'`{v}`' for v in members)} |" for family, (group, members) in MEANS_FAMILIES.items()]
    return "\n".join(out)


def _text(value) -> str:
    return "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)


def _dates(row) -> str:
    start, end = row["date_start"], row["date_end"]
    return f"{start:%Y-%m-%d}" if start == end else f"{start:%Y-%m-%d}..{end:%Y-%m-%d}"


def _figures(row) -> str:
    parts = []
    for kind in ("killed", "injured"):
        lows = [row.get(f"{who}_{kind}_min") for who in ("civilians", "children", "all")]
        lows = [int(v) for v in lows if _text(v) != ""]
        parts.append(f"{kind} {max(lows)}" if lows else f"{kind} ?")
    return ", ".join(parts)


def _family(x, y) -> str:
    shared = means_bits(_text(x["means_of_harm"]))[1] & means_bits(_text(y["means_of_harm"]))[1]
    return ", ".join(name for i, name in enumerate(MEANS_FAMILIES) if shared >> i & 1)


def _place(row, x, y, level: Level) -> str:
    if level.id in ("same_small_place", "same_large_place"):
        population = f", {int(row['population']):,} inhabitants" if _text(row.get("population")) != "" else ""
        if _text(x["geonames_id"]) != "" and _text(x["geonames_id"]) == _text(y["geonames_id"]):
            return f"same GeoNames place {int(row['gid'])} ({_text(x['locality_en'])}{population})"
        return f"'{_text(x['locality_en'])}' and '{_text(y['locality_en'])}' are names of the same GeoNames place {int(row['gid'])}{population}"
    if level.id in ("far_apart", "near"):
        return f"{row['km']:.0f} km apart"
    if level.id == "alike_names":
        return f"'{_text(x['locality_en'])}' and '{_text(y['locality_en'])}' {row['similarity']:.0f}% alike"
    if level.id == "different":
        return f"'{_text(x['locality_en'])}' vs '{_text(y['locality_en'])}'"
    if level.id == "area_names_locality":
        return f"'{_text(x['area']) or _text(x['locality_en'])}' and '{_text(y['area']) or _text(y['locality_en'])}': {level.text}"
    return f"{level.text} ({_text(x['subdivision_code']) or '?'} / {_text(y['subdivision_code']) or '?'})"


def _words(comparison: str, level: Level, row, x, y) -> str:
    """The evidence of one comparison for one pair, in words (the level is decided by SQL, not here)."""
    if comparison == "place":
        return _place(row, x, y, level)
    if comparison == "date":
        return f"{_dates(x)} vs {_dates(y)}: {level.text}"
    if comparison == "means":
        detail = f" ({_family(x, y)})" if level.id == "same_family" else ""
        return f"{_text(x['means_of_harm'])} vs {_text(y['means_of_harm'])}: {level.text}{detail}"
    if comparison == "figures":
        return f"{_figures(x)} vs {_figures(y)}: {level.text}"
    if comparison == "urls":
        return f"{int(row['shared_urls'])} page(s) in common" + {"shared_same_place": "", "shared_unnamed": ", one side naming no locality"}.get(level.id, ", naming two places") if level.id.startswith("shared") else level.text
    if comparison == "originators":
        return f"{int(row['shared_originators'])} originator(s) in common" if level.id == "shared" else level.text
    if comparison == "site":
        return f"{_text(x.get('site_type'))} vs {_text(y.get('site_type'))}"
    return f"{_text(x.get('time_of_day'))} vs {_text(y.get('time_of_day'))}"


def explain(row: dict, x, y) -> tuple[str, ...]:
    """Each comparison that moved a scored pair's weight: 'place +8.6 (same GeoNames place …)', in model order."""
    out = []
    for comparison in MODEL:
        level = comparison.levels[int(row[f"{comparison.name}_level"])]
        if level.m is not None:
            out.append(f"{comparison.name} {level.weight:+.1f} ({_words(comparison.name, level, row, x, y)})")
    return tuple(out)
