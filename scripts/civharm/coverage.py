"""How much of an official total the dataset's incidents account for (``civharm coverage``).

For each total in force (aggregates.csv: active, not superseded), the active incidents of the
same area whose dates lie within the total's period are summed, min–max, beside the official
figure and the ratio. This is what the dataset records, not a total: an incident list holds the
events someone wrote up, and a monitor's total counts everything it verified. Incidents whose
coarse dates (a month, a year) straddle the period's bounds may or may not belong: they are
counted apart, never in the sum.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .package import Package

NOT_A_TOTAL = "recorded in this dataset, not a total"
FIGURES = ("killed", "injured")
# population of a total → the incident figure that counts the same people (None: the dataset does not record it)
POPULATION_FIGURE = {"civilians": "civilians", "children": "children", "all": "all", "women": None,
                     "medical_personnel": None, "journalists": None, "civil_defence": None}
QUALIFIER_WORDS = {"exact": "", "about": "about ", "at_least": "at least ", "more_than": "more than ", "up_to": "up to "}
SERIES = ("claimant", "country_code", "subdivision_code", "area", "locality_en", "population", "period_start")


@dataclass(frozen=True)
class Comparison:
    """One official figure beside the sum of the dataset's incidents over the same period and area."""

    aggregate_id: str
    claimant: str
    area: str
    population: str
    period: str
    figure: str
    official: str
    official_value: int
    ours_min: int | None  # None: the dataset does not record this population
    ours_max: int | None  # None: open (some incident states no upper bound) or not recorded
    incidents: int  # incidents in the sum
    coarse: int  # incidents with coarse dates straddling the period, counted apart
    caveats: tuple[str, ...]

    @property
    def ratio(self) -> tuple[float | None, float | None]:
        """ours / official at the low and high ends (None where a bound is open or unknown)."""
        if self.ours_min is None or not self.official_value:
            return None, None
        high = None if self.ours_max is None else self.ours_max / self.official_value
        return self.ours_min / self.official_value, high


def compare(package: Package, every_date: bool = False) -> list[Comparison]:
    """Every total in force beside the incidents' sum; running totals only at their latest date unless ``every_date``."""
    aggregates, incidents = _table(package, "aggregates"), _table(package, "incidents")
    totals = aggregates[((aggregates["status"] == "active") & aggregates["superseded_by"].isna()).fillna(False).to_numpy(dtype=bool)]
    if not every_date:
        totals = _latest(totals)
    active = incidents[(incidents["status"] == "active").fillna(False).to_numpy(dtype=bool)]
    out = []
    for _, total in totals.iterrows():
        inside, coarse = _in_scope(active, total)
        for figure in FIGURES:
            if pd.notna(total[figure]):
                out.append(_comparison(total, figure, active[inside], int(coarse.sum())))
    return out


def _table(package: Package, name: str) -> pd.DataFrame:
    from .findings import CivharmError

    resource = package.get(name)
    if resource is None or not resource.usable:
        raise CivharmError(f"the package has no usable {name} table; run civharm validate")
    return resource.typed


def _latest(totals: pd.DataFrame) -> pd.DataFrame:
    """Period totals, and each running total's latest statement (per claimant, area, population and start)."""
    running = (totals["figures_scope"] == "cumulative").fillna(False).to_numpy(dtype=bool)
    keys = totals[list(SERIES)].astype("string").fillna("")
    latest = totals[running].assign(_key=keys[running].agg("\x1f".join, axis=1)).sort_values("period_end", kind="stable")
    latest = latest.drop_duplicates("_key", keep="last").drop(columns="_key")
    return pd.concat([totals[~running], latest]).sort_index()


def _in_scope(incidents: pd.DataFrame, total: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(inside, straddling): incidents of the area within the period, and coarse ones across its bounds."""
    precision = total["location_precision"]
    same_area = incidents["country_code"] == total["country_code"]
    if precision == "subdivision":
        same_area &= incidents["subdivision_code"] == total["subdivision_code"]
    elif precision == "area":
        same_area &= incidents["area"] == total["area"]
    elif precision == "locality":
        same_area &= (incidents["geonames_id"] == total["geonames_id"]) if pd.notna(total["geonames_id"]) else (incidents["locality_en"] == total["locality_en"])
    same_area = same_area.fillna(False)
    start, end = total["period_start"], total["period_end"]
    after_start = incidents["date_start"] >= start if pd.notna(start) else pd.Series(True, index=incidents.index)
    touches_start = incidents["date_end"] >= start if pd.notna(start) else pd.Series(True, index=incidents.index)
    inside = same_area & after_start.fillna(False) & (incidents["date_end"] <= end).fillna(False)
    straddling = same_area & ~inside & (incidents["date_start"] <= end).fillna(False) & touches_start.fillna(False)
    return inside.to_numpy(dtype=bool), straddling


def _comparison(total: pd.Series, figure: str, inside: pd.DataFrame, coarse: int) -> Comparison:
    kind = POPULATION_FIGURE[total["population"]]
    official = int(total[figure])
    caveats = [NOT_A_TOTAL]
    low = high = None
    counted = 0
    if kind is None:
        caveats.append(f"the dataset does not record {total['population'].replace('_', ' ')} apart")
    else:
        low, high, counted, caveats_of_sum = _sum(inside, kind, figure)
        caveats += caveats_of_sum
    if coarse:
        caveats.append(f"{coarse} incident(s) with coarse dates straddle the period: counted apart, not in the sum")
    qualifier = total[f"{figure}_qualifier"]
    if qualifier in ("at_least", "more_than"):
        caveats.append("the official figure is a lower bound, so the ratio is at most what it shows")
    if total["period_end_precision"] != "day":
        caveats.append(f"the as-of day is not stated ({total['period_end_precision']}): incidents up to {total['period_end']:%Y-%m-%d} are counted")
    if total["verification"] == "not_verified":
        caveats.append("the claimant calls its figure preliminary")
    return Comparison(total["aggregate_id"], total["claimant"], _area(total), total["population"], _period(total), figure,
                      f"{QUALIFIER_WORDS.get(qualifier, '')}{official:,}", official, low, high, counted, coarse, tuple(caveats))


def _sum(inside: pd.DataFrame, kind: str, figure: str) -> tuple[int, int | None, int, list[str]]:
    """min–max sum over the incidents; an all-status total takes an incident's civilian figure when it has no other."""
    low, high = inside[f"{kind}_{figure}_min"], inside[f"{kind}_{figure}_max"]
    caveats = []
    if kind == "all":
        low = low.where(low.notna() | high.notna(), inside[f"civilians_{figure}_min"])
        high = high.where(inside[f"{kind}_{figure}_min"].notna() | high.notna(), inside[f"civilians_{figure}_max"])
    given = (low.notna() | high.notna()).to_numpy(dtype=bool)
    silent = int((~given).sum())
    if kind == "civilians":
        other = int((~given & (inside[f"all_{figure}_min"].notna() | inside[f"all_{figure}_max"].notna()).to_numpy(dtype=bool)).sum())
        if other:
            caveats.append(f"{other} incident(s) give only an all-status figure (civilians not separated): not in the sum")
            silent -= other
    if silent:
        caveats.append(f"{silent} incident(s) in scope give no {kind} {figure} figure")
    low, high = low[given], high[given]
    return int(low.fillna(0).sum()), (None if high.isna().any() else int(high.sum())), int(given.sum()), caveats


def _area(total: pd.Series) -> str:
    parts = [total["country_code"]] + [total[f] for f in ("subdivision_code", "area", "locality_en") if pd.notna(total[f])]
    return " ".join(str(p) for p in parts)


def _period(total: pd.Series) -> str:
    end = f"{total['period_end']:%Y-%m-%d}"
    if total["figures_scope"] == "cumulative":
        start = f"since {total['period_start']:%Y-%m-%d} " if pd.notna(total["period_start"]) else ""
        return f"{start}as of {end}"
    return f"{total['period_start']:%Y-%m-%d} to {end}"


def _ratio_text(row: Comparison) -> str:
    low, high = row.ratio
    if low is None:
        return "–"
    return f"{low:.1%}" if high == low else f"{low:.1%}–{high:.1%}" if high is not None else f"≥ {low:.1%}"


def to_text(rows: list[Comparison]) -> str:
    """A table for the terminal: one line per figure, its caveats below it."""
    if not rows:
        return "no totals in force: aggregates.csv holds no active, current row\n"
    lines = [f"Official totals beside the incidents of this dataset ({NOT_A_TOTAL}).", ""]
    for row in rows:
        ours = "not recorded" if row.ours_min is None else f"{row.ours_min:,}–{row.ours_max:,}" if row.ours_max is not None else f"{row.ours_min:,}–(open)"
        lines.append(f"{row.area} | {row.period} | {row.claimant} | {row.population} {row.figure}: official {row.official}; "
                     f"this dataset {ours} ({row.incidents} incident(s)); ratio {_ratio_text(row)}  [{row.aggregate_id}]")
        lines += [f"    - {caveat}" for caveat in row.caveats[1:]]
    return "\n".join(lines) + "\n"
