"""Charts: civilians killed and injured per month (min–max band), overall and per country and
subdivision, and incidents by means of harm, as PNG files.

Why they are drawn this way:

- **Recorded, not a total.** Every chart says it counts active incidents of this dataset only,
  names the version and the licence, and never fills a gap: a month where no incident gives a
  figure has no bar (not a zero bar).
- **Ranges stay ranges.** A month's band runs from the sum of the stated minimums to the sum of
  the stated maximums. An incident whose maximum is open ("at least 10") has no upper bound,
  so its minimum stands in at the top and the caption counts such incidents: the top of the
  band is then not an upper bound. One with only a maximum ("up to 5") adds to the top only.
  Nothing is imputed.
- **Never spread.** An incident belongs to a month only when its whole date range lies in that
  month (day or month precision). Anything dated more coarsely (a year) is counted apart, in its
  own bar at the right, never divided over months.
- **Each source side by side.** ``incident-<id>.png`` draws, for one incident, every claimant's
  figures at the day each statement refers to (as-of, else publication), with the incident's
  computed range across them: the range is the statements' lowest to highest current figure,
  and the picture shows where it comes from. Undated statements are counted in the caption.
- **Coverage, not completeness.** ``coverage.png`` sets each official total in force beside the
  share of it that this dataset's incidents over the same period and area account for (min–max,
  as ``civharm coverage`` computes it), with the numbers written out; incidents whose coarse dates
  straddle a period are counted apart and named on the row, never in the share.
- **Checkable.** Each PNG carries ``civharm:data``, the sha256 of the numbers and words it
  draws; a test recomputes it from ``data/`` and fails when the committed README chart no
  longer matches. The bytes are reproducible for a given matplotlib and Pillow: fixed size,
  dpi, style and fonts, no timestamp or software stamp.

Why it is over 500 lines: three charts (the monthly band, per country, coverage) each need
their numbers, their words and their drawing, and all three share the fixed style and the
``civharm:data`` stamp that makes them checkable; split, each piece would import the others.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
import textwrap

import matplotlib
import pandas as pd
import PIL
import pycountry
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter
from PIL import Image

from . import coverage
from .figures import active
from .package import Package

DRAWN = ("civilians_killed", "civilians_injured")
LABELS = {"civilians_killed": "Civilians killed", "civilians_injured": "Civilians injured"}
# (sum of minimums, band up to the sum of maximums) per figure
COLOURS = {"civilians_killed": ("#99000d", "#fc9272"), "civilians_injured": ("#08519c", "#9ecae1")}
UNKNOWN_MARKER = {"linestyle": "none", "marker": "o", "markersize": 5, "markerfacecolor": "none",
                  "markeredgecolor": "#555555"}
MEANS_LABELS = {"rocket_mlrs": "rocket (MLRS)", "mine_uxo": "mine or UXO"}
NOT_A_TOTAL = "recorded in this dataset, not a total"
DATA_KEY = "civharm:data"
RENDERER_KEY = "civharm:renderer"
DPI = 100
WIDTH = 10.0  # inches
CAPTION_CHARACTERS = 195
LEGEND_HEIGHT = 0.3  # inches
CACHE_SIZE = 32
ANNOTATE_UP_TO = 36  # months; beyond that, numbers above bars overlap
README_CHART = "monthly.png"
TIMELINE_FIGURES = {"civilians_killed": "Civilians killed", "civilians_injured": "Civilians injured",
                    "children_killed": "Children killed", "children_injured": "Children injured",
                    "all_killed": "Killed (civilian status not separated)", "all_injured": "Injured (civilian status not separated)"}
QUALIFIER_MARKS = {"exact": "o", "about": "D", "at_least": "^", "more_than": "^", "up_to": "v"}
# Okabe–Ito: colour-blind-safe, one colour per claimant in order of first statement
CLAIMANT_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
COVERAGE_CHART = "coverage.png"
COVERAGE_COLOURS = ("#4d4d4d", "#bdbdbd")  # share at the sum of minimums, band up to the sum of maximums


# --- the numbers ---------------------------------------------------------------------------

def month_of(start, end, precision) -> str | None:
    """``YYYY-MM`` when the incident's whole date range lies in one calendar month, else None."""
    if precision not in ("day", "month", "range") or pd.isna(start) or pd.isna(end):
        return None
    if (start.year, start.month) != (end.year, end.month):
        return None
    return f"{start.year:04d}-{start.month:02d}"


def _month_range(first: str, last: str) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def band(pairs: list[tuple[int | None, int | None]]) -> dict:
    """Sum of stated minimums (``low``) and of upper bounds, the minimum standing in where none (``high``).

    ``pairs`` are the (min, max) of some incidents. Both sums are None when no incident gives the
    figure: unknown, never 0.
    """
    given = [(low, high) for low, high in pairs if low is not None or high is not None]
    return {"incidents": len(pairs), "given": len(given),
            "low": sum(low or 0 for low, _ in given) if given else None,
            "high": sum(high if high is not None else low for low, high in given) if given else None,
            "open_max": sum(1 for low, high in given if high is None),
            "no_min": sum(1 for low, high in given if low is None)}


def _pairs(incidents: pd.DataFrame, figure: str) -> list[tuple[int | None, int | None]]:
    def plain(value):
        return None if pd.isna(value) else int(value)

    return [(plain(low), plain(high)) for low, high in zip(incidents[f"{figure}_min"], incidents[f"{figure}_max"])]


def active_incidents(package: Package) -> pd.DataFrame:
    """Merged incidents count through the one they were merged into; retracted ones do not count."""
    typed = package["incidents"].typed
    return typed[active(typed)]


def placed_months(incidents: pd.DataFrame) -> pd.Series:
    """The month of each incident, or None when its date is coarser than a month."""
    return pd.Series([month_of(s, e, p) for s, e, p in zip(incidents["date_start"], incidents["date_end"],
                                                         incidents["date_precision"])],
                     index=incidents.index, dtype=object)


def monthly(incidents: pd.DataFrame, months: list[str] | None = None) -> dict:
    """Per figure: one band per month of ``months``, one for incidents not placed in a month, one overall.

    ``months`` defaults to every month from the first to the last placed incident.
    """
    placed = placed_months(incidents).tolist()
    if months is None:
        known = sorted(m for m in placed if m is not None)
        months = _month_range(known[0], known[-1]) if known else []
    series: dict = {"months": months, "incidents": len(placed), "coarse_incidents": placed.count(None)}
    for figure in DRAWN:
        pairs = _pairs(incidents, figure)
        by_month: dict[str | None, list] = {}
        for month, pair in zip(placed, pairs):
            by_month.setdefault(month, []).append(pair)
        series[figure] = {"per_month": [band(by_month.get(m, [])) for m in months],
                          "coarse": band(by_month.get(None, [])), "all": band(pairs)}
    return series


def means_of_harm(incidents: pd.DataFrame, vocabulary: list[str]) -> dict[str, int]:
    """Incidents per means of harm, in vocabulary order; an incident with several counts once under each."""
    counts = dict.fromkeys(vocabulary, 0)
    for cell in incidents["means_of_harm"].dropna():
        for value in dict.fromkeys(v.strip() for v in str(cell).split(";") if v.strip()):
            counts[value] = counts.get(value, 0) + 1
    return counts


def data_hash(content: dict) -> str:
    """sha256 of everything a chart draws, as canonical JSON."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                          .encode("utf-8")).hexdigest()


# --- words ---------------------------------------------------------------------------------

def _licence(package: Package) -> str:
    return ", ".join(l.get("name", "") for l in package.descriptor.get("licenses", [])) or "no licence stated"


def _country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code) if code else None
    return getattr(country, "common_name", None) or getattr(country, "name", None) or code or "country not stated"


def _head(context: dict) -> str:
    return (f"civharm {context['version']} · data licence {context['licence']} · active incidents only "
            f"({context['active']} of {context['total']} incidents) · {NOT_A_TOTAL}.")


def _monthly_notes(series: dict, scope: str) -> list[str]:
    notes = ["Dark: sum of the stated minimums. Light: band up to the sum of the stated maximums. "
             "No bar: no incident of that month gives the figure (unknown, not zero); "
             "a hollow circle marks months with incidents but no figure."]
    for figure in DRAWN:
        whole, word = series[figure]["all"], LABELS[figure].lower()
        parts = [f"given by {whole['given']} of {whole['incidents']} active incidents"]
        if whole["open_max"]:
            parts.append(f"upper bound not stated for {whole['open_max']} (the band's top uses their minimum, "
                         "so it is not an upper bound; marked +)")
        if whole["no_min"]:
            parts.append(f"lower bound not stated for {whole['no_min']} (they add to the top only)")
        notes.append(f"{word.capitalize()}, {scope}: " + "; ".join(parts) + ".")
    coarse = series["coarse_incidents"]
    if coarse:
        notes.append(f"{coarse} incident(s) dated more coarsely than a month are counted apart in the last bar, "
                     "never spread over months.")
    else:
        notes.append("Every incident is dated to its month or day; none is spread over months.")
    return notes


def _caption(context: dict, notes: list[str]) -> list[str]:
    lines = []
    for paragraph in [_head(context), *notes]:
        lines += textwrap.wrap(paragraph, CAPTION_CHARACTERS)
    return lines


# --- drawing -------------------------------------------------------------------------------

def _renderer() -> str:
    return f"matplotlib {matplotlib.__version__}; pillow {PIL.__version__}"


def _png(figure: Figure, content: dict) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=DPI, metadata={
        "Software": None, "Creation Time": None, "Title": content["title"],
        DATA_KEY: data_hash(content), RENDERER_KEY: _renderer()})
    return buffer.getvalue()


def _figure(rows: int, columns: int, panel_height: float, caption: list[str], title: str, legend: bool = False):
    """A figure of fixed size with room below the panels for the legend, then the caption."""
    legend_height = LEGEND_HEIGHT if legend else 0.0
    caption_height = 0.2 + 0.145 * len(caption) + legend_height
    height = 1.0 + panel_height * rows + caption_height
    figure = Figure(figsize=(WIDTH, height), dpi=DPI, layout="constrained")
    figure.get_layout_engine().set(rect=(0, caption_height / height, 1, 1 - caption_height / height))
    figure.suptitle(title, fontsize=13, fontweight="bold")
    figure.text(0.01, 0.012, "\n".join(caption), fontsize=7.5, va="bottom", ha="left", color="#333333",
                linespacing=1.35)
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    if legend:
        _legend(figure, anchor=caption_height / height)
    return figure, axes


def _draw_months(ax, months: list[str], figure_series: dict, figure: str, coarse_slot: bool, ylabel: str) -> None:
    dark, light = COLOURS[figure]
    bands = figure_series["per_month"] + ([figure_series["coarse"]] if coarse_slot else [])
    positions = list(range(len(months))) + ([len(months) + 1] if coarse_slot else [])
    drawn = [(x, b) for x, b in zip(positions, bands) if b["low"] is not None]
    unknown = [x for x, b in zip(positions, bands) if b["low"] is None and b["incidents"]]
    ax.bar([x for x, _ in drawn], [b["low"] for _, b in drawn], width=0.8, color=dark)
    ax.bar([x for x, _ in drawn], [b["high"] - b["low"] for _, b in drawn], bottom=[b["low"] for _, b in drawn],
           width=0.8, color=light)
    if unknown:  # an empty unclipped line upsets constrained layout
        ax.plot(unknown, [0] * len(unknown), **UNKNOWN_MARKER, clip_on=False)
    if not positions:
        ax.text(0.5, 0.5, "No active incident dated to a month", transform=ax.transAxes, ha="center",
                va="center", fontsize=9, color="#555555")
    if len(positions) <= ANNOTATE_UP_TO + 1:
        for x, b in drawn:
            text = (str(b["low"]) if b["low"] == b["high"] else f"{b['low']}–{b['high']}") + ("+" if b["open_max"] else "")
            ax.annotate(text, (x, b["high"]), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7)
    if coarse_slot:
        ax.axvline(len(months), color="#999999", linewidth=0.8, linestyle="--")
    top = max([b["high"] for _, b in drawn], default=0)
    ax.set_ylim(0, max(1, top) * 1.2)
    ax.set_xlim(-0.7, (positions[-1] if positions else 0) + 0.7)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _legend(figure: Figure, anchor: float) -> None:
    """One legend for all panels, between them and the caption."""
    handles, labels = [], []
    for name in DRAWN:
        dark, light = COLOURS[name]
        word = LABELS[name].split()[-1]
        handles += [Patch(color=dark), Patch(color=light)]
        labels += [f"{word}: sum of minimums", f"{word}: up to sum of maximums"]
    handles.append(Line2D([], [], **UNKNOWN_MARKER))
    labels.append("incidents, figure not given")
    figure.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, anchor), ncols=5, fontsize=7.5,
                  frameon=False, borderaxespad=0.2)


def _month_ticks(ax, months: list[str], coarse_slot: bool, most: int) -> None:
    step = max(1, math.ceil(len(months) / most))
    ticks = [i for i in range(len(months)) if i % step == 0]
    labels = [months[i] for i in ticks]
    if coarse_slot:
        ticks.append(len(months) + 1)
        labels.append("coarser\nthan a month")
    ax.set_xticks(ticks, labels, fontsize=7.5)
    ax.set_xlabel("Month of the incident", fontsize=9)


def _draw_monthly(content: dict) -> bytes:
    """One row per panel, killed and injured stacked (one panel) or side by side (several)."""
    panels, coarse_slot = content["panels"], content["coarse_slot"]
    months = panels[0][1]["months"]
    if len(panels) == 1:
        figure, axes = _figure(2, 1, 2.4, content["caption"], content["title"], legend=True)
        cells = [(axes[0][0], panels[0], DRAWN[0], LABELS[DRAWN[0]]), (axes[1][0], panels[0], DRAWN[1], LABELS[DRAWN[1]])]
    else:
        figure, axes = _figure(len(panels), 2, 1.7, content["caption"], content["title"], legend=True)
        cells = [(axes[r][c], panel, name, LABELS[name].split()[-1])
                 for r, panel in enumerate(panels) for c, name in enumerate(DRAWN)]
    for ax, (label, series), name, ylabel in cells:
        _draw_months(ax, months, series[name], name, coarse_slot, ylabel)
        if len(panels) > 1:
            ax.set_title(f"{label}: {LABELS[name].lower()}", fontsize=9, loc="left")
    for ax in axes[-1]:
        _month_ticks(ax, months, coarse_slot, 14 if len(panels) == 1 else 6)
    return _png(figure, content)


def _draw_means(content: dict) -> bytes:
    counts = content["counts"]
    labels = list(counts)[::-1]
    figure, axes = _figure(1, 1, 0.3 * len(labels) + 0.6, content["caption"], content["title"])
    ax = axes[0][0]
    values = [counts[label] for label in labels]
    ax.barh(range(len(labels)), values, color="#4d4d4d", height=0.7)
    for y, value in enumerate(values):
        ax.annotate(str(value), (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), [MEANS_LABELS.get(label, label.replace("_", " ")) for label in labels],
                  fontsize=8.5)
    ax.set_xlim(0, max(values + [1]) * 1.15)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("Active incidents", fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return _png(figure, content)


def _draw_timeline(content: dict) -> bytes:
    """One panel per figure: the range as a grey band, each claimant's statements as dots joined in time order."""
    panels = content["panels"] or [["No figures stated", {"range": [None, None], "series": []}]]
    # Fixed margins, not constrained layout: one chart per incident, so drawing time counts.
    caption_height, panel_height, head = 0.2 + 0.145 * len(content["caption"]), 1.5, 0.75
    height = head + (panel_height + 0.35) * len(panels) + 0.3 + caption_height
    figure = Figure(figsize=(WIDTH, height), dpi=DPI)
    figure.subplots_adjust(left=0.06, right=0.72, top=1 - head / height, bottom=(caption_height + 0.3) / height,
                           hspace=0.35 / panel_height + 0.15)
    figure.suptitle(content["title"], fontsize=12, fontweight="bold", x=0.01, ha="left", y=1 - 0.2 / height)
    figure.text(0.01, 0.012, "\n".join(content["caption"]), fontsize=7.5, va="bottom", ha="left", color="#333333",
                linespacing=1.35)
    axes = figure.subplots(len(panels), 1, squeeze=False, sharex=True)
    colours = {c: CLAIMANT_COLOURS[i % len(CLAIMANT_COLOURS)] for i, c in enumerate(content["claimants"])}
    days = sorted({p[0] for _, panel in panels for _, points in panel["series"] for p in points})
    ordinal = {d: pd.Timestamp(d).toordinal() for d in days}
    first, last = (min(ordinal.values()), max(ordinal.values())) if days else (0, 0)
    pad = max(1, (last - first) * 0.08)
    for ax, (label, panel) in zip([row[0] for row in axes], panels):
        low, high = panel["range"]
        values = [p[1] for _, points in panel["series"] for p in points] + [b for b in (low, high) if b is not None]
        top = max(values + [1]) * 1.25
        if low is not None or high is not None:
            bottom, upper = (low if low is not None else 0), (high if high is not None else top)
            ax.axhspan(bottom, upper, color="#bbbbbb", alpha=0.45, linewidth=0)
            if bottom == upper:  # a single value: the band is a line
                ax.axhline(bottom, color="#bbbbbb", alpha=0.8, linewidth=4, zorder=0)
            if high is None:
                ax.axhline(top, color="#888888", linestyle="--", linewidth=0.8)
        offsets = len(panel["series"])
        for index, (claimant, points) in enumerate(panel["series"]):
            shift = (index - (offsets - 1) / 2) * (last - first + 2 * pad) * 0.012
            xs = [ordinal[p[0]] + shift for p in points]
            ax.plot(xs, [p[1] for p in points], color=colours[claimant], linewidth=1.2)
            groups: dict[tuple[str, bool], list] = {}
            for x, (_, value, qualifier, current) in zip(xs, points):
                groups.setdefault((QUALIFIER_MARKS.get(qualifier, "o"), current), []).append((x, value))
            for (marker, current), where in sorted(groups.items()):
                ax.plot([w[0] for w in where], [w[1] for w in where], linestyle="none", marker=marker, markersize=6,
                        markeredgecolor=colours[claimant], markerfacecolor=colours[claimant] if current else "white")
        ax.set_ylim(0, top)
        ax.set_xlim(first - pad, last + pad)
        ax.set_title(f"{label}: range {_range_words(low, high)}", fontsize=9, loc="left")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    shown = days if len(days) <= 6 else [days[round(i * (len(days) - 1) / 5)] for i in range(6)]
    axes[-1][0].set_xticks([ordinal[d] for d in shown], shown, fontsize=7.5)
    handles = [Line2D([], [], color=colour, marker="o", linewidth=1.2) for colour in colours.values()]
    if handles:  # beside the panels, so it never covers a statement
        figure.legend(handles, [textwrap.shorten(c, 45) for c in colours], loc="upper left", fontsize=7, frameon=False,
                      bbox_to_anchor=(0.73, 1 - head / height), title="Claimants", title_fontsize=7.5)
    return _png(figure, content)


def _range_words(low, high) -> str:
    if low is None and high is None:
        return "unknown"
    if high is None:
        return f"{low}+ (no upper bound)"
    if low is None:
        return f"up to {high}"
    return str(low) if low == high else f"{low}–{high}"


def _draw_coverage(content: dict) -> bytes:
    """One row per official figure: the share of it this dataset records, min–max, the numbers written beside."""
    rows = content["rows"]
    figure, axes = _figure(1, 1, 0.26 * max(len(rows), 1) + 0.5, content["caption"], content["title"])
    ax = axes[0][0]
    dark, light = COVERAGE_COLOURS
    top = 0.01
    for y, row in enumerate(reversed(rows)):
        low, high = row["share_min"], row["share_max"]
        if low is not None:
            ax.barh(y, low, color=dark, height=0.6)
            end = high if high is not None else low
            if end > low:
                ax.barh(y, end - low, left=low, color=light, height=0.6)
            top = max(top, end)
        ax.annotate(row["text"], (low or 0, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    if not rows:
        ax.text(0.5, 0.5, "No official total in force", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="#555555")
    ax.set_yticks(range(len(rows)), [row["label"] for row in reversed(rows)], fontsize=7)
    ax.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    ax.set_xlim(0, top * 1.6)  # room for the numbers written beside the longest bar
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("Share of the official figure recorded in this dataset", fontsize=8.5)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return _png(figure, content)


_DRAWN: dict[str, bytes] = {}


def draw(content: dict) -> bytes:
    """The PNG of one chart's content, in matplotlib's default style whatever the local matplotlibrc says.

    The picture depends on nothing but ``content``, so a second call with the same content (the
    next build of unchanged data) reuses the bytes instead of drawing again.
    """
    key = data_hash(content)
    if key not in _DRAWN:
        with matplotlib.rc_context():
            matplotlib.rcdefaults()
            matplotlib.rcParams["font.family"] = "DejaVu Sans"
            draw_kind = {"monthly": _draw_monthly, "means": _draw_means, "timeline": _draw_timeline,
                         "coverage": _draw_coverage}
            data = draw_kind[content["kind"]](content)
        if len(_DRAWN) >= CACHE_SIZE:
            _DRAWN.pop(next(iter(_DRAWN)))
        _DRAWN[key] = data
    return _DRAWN[key]


# --- entry points --------------------------------------------------------------------------

def _context(package: Package, version: str, incidents: pd.DataFrame) -> dict:
    return {"version": version, "licence": _licence(package), "active": int(len(incidents)),
            "total": int(len(package["incidents"].frame))}


def _file_part(code: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]", "_", code) if code else "no-country"


def _monthly_content(panels: list[tuple[str, dict]], context: dict, title: str, coarse_slot: bool) -> dict:
    label = panels[0][0]
    notes = _monthly_notes(panels[0][1], label[:1].lower() + label[1:])
    return {"kind": "monthly", "title": title, "caption": _caption(context, notes), "coarse_slot": coarse_slot,
            "panels": [[label, series] for label, series in panels]}


def contents(package: Package, version: str | None = None) -> dict[str, dict]:
    """What every chart draws, by file name, in a fixed order: the numbers, the title and the caption.

    Cheap (no drawing): its sha256 is the ``civharm:data`` a chart carries.
    """
    version = package.descriptor.get("version", "") if version is None else version
    incidents = active_incidents(package)
    context = _context(package, version, incidents)
    overall = monthly(incidents)
    months, coarse_slot = overall["months"], overall["coarse_incidents"] > 0
    out = {README_CHART: _monthly_content([("All countries", overall)], context,
                                          "Civilians killed and injured per month, all countries", coarse_slot)}
    countries = incidents["country_code"].fillna("")
    for code in sorted(set(countries)):
        here = incidents[countries == code]
        panels = [(f"All of {_country_name(code)}", monthly(here, months))]
        subdivisions = here["subdivision_code"].fillna("")
        for sub in sorted(set(subdivisions), key=lambda s: (s == "", s)):
            rows = here[subdivisions == sub]
            names = sorted(set(rows["subdivision_name"].dropna()))
            label = f"{sub} {names[0]}" if sub and names else (sub or "Subdivision not named")
            panels.append((label, monthly(rows, months)))
        title = f"Civilians killed and injured per month in {_country_name(code)}, by subdivision"
        out[f"monthly-{_file_part(code)}.png"] = _monthly_content(panels, context, title, coarse_slot)
    vocabulary = list(package["incidents"].field("means_of_harm").get("civharm:definitions", {}))
    several = int(incidents["means_of_harm"].dropna().str.contains(";").sum())
    notes = ["Number of active incidents whose means of harm include each value (from the sources; "
             "values as defined in the codebook)."]
    if several:
        notes.append(f"{several} incident(s) name several means and count once under each, so the bars add up to "
                     f"more than {context['active']}.")
    out["means-of-harm.png"] = {"kind": "means", "title": "Incidents by means of harm",
                                "caption": _caption(context, notes), "counts": means_of_harm(incidents, vocabulary)}
    if "reports" in package.resources:
        reports = package["reports"].typed
        for _, incident in incidents.sort_values("incident_id").iterrows():
            out[f"incident-{_file_part(str(incident['incident_id']))}.png"] = timeline(package, incident, reports, context)
    if "aggregates" in package.resources:
        out[COVERAGE_CHART] = coverage_content(package, context)
    return out


def _statement_day(as_of, published) -> str | None:
    """The day a statement refers to: its as-of (a month or year as its first day), else its publication day."""
    if isinstance(as_of, str) and re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?.*", as_of):
        return (as_of[:10] + "-01-01"[len(as_of[:10]) - 4:]) if len(as_of[:10]) < 10 else as_of[:10]
    return None if pd.isna(published) else f"{published:%Y-%m-%d}"


def timeline(package: Package, incident: pd.Series, reports: pd.DataFrame, context: dict) -> dict:
    """What ``incident-<id>.png`` draws: per figure, each claimant's statements over time and the incident's range."""
    def plain(value):
        return None if pd.isna(value) else int(value)

    mine = reports[(reports["incident_id"] == incident["incident_id"]) & active(reports)]
    claimants = list(dict.fromkeys(str(c) if pd.notna(c) else "(claimant not named)" for c in mine["claimant"]))
    panels, undated = [], 0
    for figure, label in TIMELINE_FIGURES.items():
        low, high = plain(incident[f"{figure}_min"]), plain(incident[f"{figure}_max"])
        series = {}
        for _, report in mine.iterrows():
            value = plain(report[figure])
            if value is None:
                continue
            day = _statement_day(report["as_of"], report["published_date"])
            if day is None:
                undated += 1
                continue
            claimant = str(report["claimant"]) if pd.notna(report["claimant"]) else "(claimant not named)"
            qualifier = report[f"{figure}_qualifier"] if pd.notna(report[f"{figure}_qualifier"]) else "exact"
            series.setdefault(claimant, []).append([day, value, str(qualifier), bool(pd.isna(report["superseded_by"]))])
        if series or low is not None or high is not None:
            panels.append([label, {"range": [low, high], "series": [[c, sorted(series[c])] for c in claimants if c in series]}])
    place = next((str(incident[f]) for f in ("locality_en", "subdivision_name", "country_code") if pd.notna(incident[f])), "")
    notes = ["Each dot is one statement's figure at the day it refers to (as-of, else publication): filled when exact and current, "
             "hollow when superseded; triangles up mean \"at least\"/\"more than\", down \"up to\", diamonds \"about\". "
             "Grey band: the incident's computed range (dashed top: no upper bound stated)."]
    if undated:
        notes.append(f"{undated} figure(s) of statements without a date are not drawn.")
    if not panels:
        notes.append("No statement gives a figure: the figures are unknown.")
    return {"kind": "timeline", "title": f"{place}, {incident['date_start']:%Y-%m-%d}: each claimant's figures ({incident['incident_id']})",
            "caption": _caption(context, notes), "claimants": claimants, "panels": panels}


def _short(claimant: str) -> str:
    """A claimant's abbreviation when it ends with one in brackets, else its words before a comma or colon (at most 36 characters)."""
    match = re.search(r"\(([^()]{2,12})\)$", claimant)
    if match:
        return match.group(1)
    head = re.split(r"[,:]", claimant, maxsplit=1)[0].strip() or claimant
    return head if len(head) <= 36 else head[:35] + "…"


def _coverage_row(row: coverage.Comparison) -> dict:
    low, high = row.ratio
    if row.ours_min is None:
        ours = f"not recorded apart (official {row.official})"
    else:
        span = f"{row.ours_min:,}" if row.ours_max == row.ours_min else f"{row.ours_min:,}–{row.ours_max:,}" \
            if row.ours_max is not None else f"{row.ours_min:,}–(open)"
        ours = f"{span} of {row.official} in {row.incidents} incident(s)"
    if row.coarse:
        ours += f"; {row.coarse} coarse-dated apart"
    return {"label": f"{row.area} · {row.period} · {_short(row.claimant)} · {row.population.replace('_', ' ')} {row.figure}",
            "share_min": low, "share_max": high, "text": ours, "aggregate_id": row.aggregate_id}


def coverage_content(package: Package, context: dict) -> dict:
    """What ``coverage.png`` draws: each official figure in force beside the share of it this dataset records."""
    rows = coverage.compare(package)
    notes = ["Each row: one official figure in force (the latest statement of a running total) beside the sum of "
             "this dataset's active incidents of the same area whose dates lie within its period, as a share of "
             "the official figure. Dark: sum of the stated minimums; light: band up to the sum of the stated "
             "maximums; no band where some incident states no maximum (written '(open)'). Run `civharm coverage` "
             "for each row's caveats."]
    coarse = sum(1 for row in rows if row.coarse)
    if coarse:
        notes.append(f"On {coarse} row(s) incidents with coarse dates straddle the period's bounds: they are counted "
                     "apart (named on the row), never in the share.")
    lower = sum(1 for row in rows if row.official.startswith(("at least", "more than")))
    if lower:
        notes.append(f"{lower} official figure(s) are lower bounds ('at least', 'more than'): the true share is at most "
                     "what is drawn.")
    missing = sum(1 for row in rows if row.ours_min is None)
    if missing:
        notes.append(f"{missing} figure(s) count people the dataset does not record apart (women, medical personnel, "
                     "journalists, civil defence): no share is drawn.")
    return {"kind": "coverage", "title": "Official totals and what this dataset records of them",
            "caption": _caption(context, notes), "rows": [_coverage_row(row) for row in rows]}


def render(package: Package, version: str | None = None) -> dict[str, bytes]:
    """Every chart as {file name: PNG bytes}, in a fixed order."""
    return {name: draw(content) for name, content in contents(package, version).items()}


def readme_chart(package: Package) -> bytes:
    """The chart docs/chart.png shows: killed and injured per month, all countries."""
    return draw(contents(package)[README_CHART])


def embedded(png: bytes) -> dict[str, str]:
    """The text chunks of a PNG (``civharm:data``, ``civharm:renderer``, ``Title``)."""
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return dict(getattr(image, "text", {}) or {})


def is_current(committed: bytes | None, fresh: bytes) -> bool:
    """Whether a committed chart still shows the data of ``fresh``.

    Same numbers and words (``civharm:data``) are required; the bytes must also match when the
    committed file was drawn by this matplotlib and Pillow, since then they can match.
    """
    if committed is None:
        return False
    try:
        old, new = embedded(committed), embedded(fresh)
    except (OSError, ValueError, SyntaxError):
        return False
    if old.get(DATA_KEY) != new.get(DATA_KEY):
        return False
    return old.get(RENDERER_KEY) != new.get(RENDERER_KEY) or committed == fresh
