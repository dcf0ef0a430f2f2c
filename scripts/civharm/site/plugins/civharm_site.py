"""The civharm site's Datasette plugin: home page numbers, the incident page's evidence and chart.

Shipped with each release (``civharm-X.Y.Z-site/plugins/``) and used by ``civharm serve``, so
both show the same site. It imports only Datasette and MarkupSafe: a release user needs no
civharm install. Everything it reads is data: it reaches the page through the templates'
autoescaping, SQL takes it only as bound parameters, and a link becomes an ``href`` only when
it is an http(s) address.
"""
from __future__ import annotations

import datetime as dt
import re

from datasette import hookimpl
from datasette.utils import tilde_decode, tilde_encode
from markupsafe import Markup

BROWSE_VIEW = "incidents_browse"
WEB_LINK = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)
FIGURES = [("civilians_killed", "Civilians killed"), ("civilians_injured", "Civilians injured"),
           ("children_killed", "Children killed"), ("children_injured", "Children injured"),
           ("all_killed", "Killed (civilian status not separated)"), ("all_injured", "Injured (civilian status not separated)")]
QUALIFIER_WORDS = {"exact": "", "about": "about ", "at_least": "at least ", "more_than": "more than ", "up_to": "up to "}
# Colour-blind-safe palette (Okabe–Ito), one colour per claimant in order of first statement.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
DODGE = 7  # pixels between claimants' dots on the same day
CHART = {"width": 560, "height": 170, "left": 48, "right": 12, "top": 12, "bottom": 30}


def web_link(value) -> str:
    """``value`` when it is an http(s) address, else "" (a ``javascript:`` link would run)."""
    return value if isinstance(value, str) and WEB_LINK.fullmatch(value) else ""


async def _site_database(datasette):
    """The database built by civharm (it has the ``_package`` table), or None."""
    for name, db in datasette.databases.items():
        if name != "_internal" and await db.table_exists("_package"):
            return db
    return None


async def _rows(db, sql: str, params=()) -> list[dict]:
    return [dict(row) for row in (await db.execute(sql, params)).rows]


async def _home(datasette) -> dict:
    db = await _site_database(datasette)
    if db is None:
        return {"civharm": None}
    package = {row["key"]: row["value"] for row in await _rows(db, "SELECT key, value FROM _package")}
    tables = set(await db.table_names())
    counts = {}
    for table, label in (("incidents", "active incidents"), ("reports", "statements"), ("sources", "publishers"),
                         ("damage", "damage records"), ("aggregates", "official totals"), ("changes", "corrections")):
        if table in tables:
            where = " WHERE status = 'active'" if table not in ("changes",) else ""
            counts[label] = (await db.execute(f"SELECT count(*) FROM [{table}]{where}")).rows[0][0]
    span = None
    if "incidents" in tables:
        row = (await db.execute("SELECT min(date_start), max(date_end), count(DISTINCT country_code) FROM incidents "
                                "WHERE status = 'active'")).rows[0]
        span = {"first": row[0], "last": row[1], "countries": row[2]}
    released = (package.get("created") or "")[:10]
    citation = (f"{package.get('authors') or 'The civharm contributors'} ({released[:4]}). {package.get('title', '')} "
                f"(version {package.get('version', '')}, released {released}) [Data set]. {package.get('licence', '')}.")
    return {"civharm": {"database": db.name, "version": package.get("version", ""), "released": released,
                        "counts": counts, "span": span, "citation": citation, "tables": tables,
                        "provenance": package.get("provenance", "")}}


def _day(value) -> dt.date | None:
    """The first day a date-like cell names (YYYY-MM-DD…, YYYY-MM, YYYY), or None.

    Not the calendar's first or last day (0001-01-01, 9999-12-31): a chart pads a day on either
    side, which Python's dates cannot hold. Such a cell (invalid data) stays text in the table.
    """
    if not isinstance(value, str):
        return None
    for size, pad in ((10, ""), (7, "-01"), (4, "-01-01")):
        try:
            day = dt.date.fromisoformat(value[:size] + pad)
        except ValueError:
            continue
        return day if dt.date.min < day < dt.date.max else None
    return None


def figure_text(value, qualifier) -> str:
    return "" if value is None else f"{QUALIFIER_WORDS.get(qualifier or 'exact', (qualifier or '') + ' ')}{value:,}"


def range_text(low, high) -> str:
    if low is None and high is None:
        return "unknown"
    if high is None:
        return f"{low:,}+"
    if low is None:
        return f"up to {high:,}"
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def chart(figure: str, label: str, incident: dict, reports: list[dict], colours: dict) -> dict | None:
    """Geometry of one small chart: each claimant's figures over time and the incident's range across it.

    Numbers and the cells' own text only; the template draws them as SVG with autoescaping.
    Statements without a date are left out of the chart (the table lists them).
    """
    points = []
    for report in reports:
        value, day = report.get(figure), _day(report.get("as_of")) or _day(report.get("published_date"))
        if value is None or day is None or report.get("status") != "active":
            continue
        points.append((day, value, report))
    low, high = incident.get(f"{figure}_min"), incident.get(f"{figure}_max")
    if not points and low is None and high is None:
        return None
    w, h = CHART["width"], CHART["height"]
    x0, x1, y0, y1 = CHART["left"], w - CHART["right"], h - CHART["bottom"], CHART["top"]
    days = sorted({p[0] for p in points})
    first, last = (days[0], days[-1]) if days else (None, None)
    if first is None or first == last:
        middle = first or dt.date(2000, 1, 1)
        first, last = middle - dt.timedelta(days=1), middle + dt.timedelta(days=1)
    top = max([v for _, v, _ in points] + [b for b in (low, high) if b is not None] + [1])
    top = top * 1.15

    def x(day):
        return round(x0 + (day - first).days / max((last - first).days, 1) * (x1 - x0), 1)

    def y(value):
        return round(y0 - value / top * (y0 - y1), 1)

    band = None
    if low is not None or high is not None:
        band_low, band_high = (low if low is not None else 0), (high if high is not None else top)
        band = {"x": x0, "width": x1 - x0, "y": y(band_high), "height": max(round(y(band_low) - y(band_high), 1), 2),
                "label": f"incident's range: {range_text(low, high)}", "open": high is None, "label_y": max(y(band_high) + 11, y1 + 11)}
    series = {}
    claimants = sorted({report.get("claimant") or "(claimant not named)" for _, _, report in points}, key=list(colours).index)
    for day, value, report in sorted(points, key=lambda p: (p[0], p[2]["report_id"])):
        claimant = report.get("claimant") or "(claimant not named)"
        entry = series.setdefault(claimant, {"claimant": claimant, "colour": colours[claimant], "points": []})
        qualifier = report.get(f"{figure}_qualifier")
        # claimants side by side at the same day, so one dot never hides another
        dodge = (claimants.index(claimant) - (len(claimants) - 1) / 2) * DODGE
        entry["points"].append({"x": round(x(day) + dodge, 1), "y": y(value), "open": qualifier not in (None, "exact"),
                                "current": not report.get("superseded_by"),
                                "title": f"{claimant}, {day.isoformat()}: {figure_text(value, qualifier)}"
                                         f"{' (superseded)' if report.get('superseded_by') else ''}"})
    for entry in series.values():
        entry["path"] = " ".join(f"{'M' if i == 0 else 'L'}{p['x']},{p['y']}" for i, p in enumerate(entry["points"]))
    ticks = [{"y": y(v), "label": f"{v:,}"} for v in sorted({0, int(top / 1.15)})]
    dates = [{"x": x(d), "label": d.isoformat()} for d in (days if len(days) <= 4 else [days[0], days[-1]])]
    return {"figure": figure, "label": label, "width": w, "height": h, "x0": x0, "x1": x1, "y0": y0, "y1": y1,
            "band": band, "series": list(series.values()), "yticks": ticks, "xticks": dates, "undated": len(
                [r for r in reports if r.get(figure) is not None and r.get("status") == "active"]) - len(points)}


async def _incident(datasette, database: str, request) -> dict:
    db = datasette.get_database(database)
    if not await db.table_exists("reports"):
        return {"evidence": None}
    incident_id = tilde_decode(request.url_vars.get("pks", ""))
    found = await _rows(db, "SELECT * FROM incidents WHERE incident_id = ?", [incident_id])
    if not found:
        return {"evidence": None}
    incident = found[0]
    tables = set(await db.table_names())
    publisher = "(SELECT name FROM sources WHERE sources.source_id = reports.source_id)" if "sources" in tables else "source_id"
    reports = await _rows(db, f"SELECT *, {publisher} AS publisher FROM reports WHERE incident_id = ? "
                              "ORDER BY COALESCE(as_of, published_date), report_id", [incident_id])
    colours = {}
    for report in reports:
        colours.setdefault(report.get("claimant") or "(claimant not named)", PALETTE[len(colours) % len(PALETTE)])
    for report in reports:
        report["figures"] = [(label, figure_text(report.get(f), report.get(f"{f}_qualifier")))
                             for f, label in FIGURES if report.get(f) is not None]
        report["state"] = ("retracted" if report.get("status") != "active" else
                           "superseded" if report.get("superseded_by") else "current")
        report["page"], report["archive"] = web_link(report.get("url")), web_link(report.get("archive_url"))
        report["colour"] = colours[report.get("claimant") or "(claimant not named)"]
    ids = [incident_id] + [r["report_id"] for r in reports]
    damage = []
    if "damage" in tables:
        marks = ", ".join("?" for _ in reports) or "NULL"
        damage = await _rows(db, f"SELECT * FROM damage WHERE report_id IN ({marks}) ORDER BY damage_id", [r["report_id"] for r in reports])
        for row in damage:
            row["count_text"] = figure_text(row.get("count"), row.get("count_qualifier")) or "not stated"
        ids += [d["damage_id"] for d in damage]
    changes = []
    if "changes" in tables:
        marks = ", ".join("?" for _ in ids)
        changes = await _rows(db, f"SELECT * FROM changes WHERE record_id IN ({marks}) ORDER BY change_date, change_id", ids)
    figures = [{"label": label, "range": range_text(incident.get(f"{f}_min"), incident.get(f"{f}_max"))}
               for f, label in FIGURES if incident.get(f"{f}_min") is not None or incident.get(f"{f}_max") is not None]
    charts = [c for c in (chart(f, label, incident, reports, colours) for f, label in FIGURES) if c]
    return {"evidence": {"incident": incident, "reports": reports, "damage": damage, "changes": changes, "figures": figures,
                         "charts": charts, "disputed": incident.get("perpetrator_alleged") == "disputed",
                         "list_url": datasette.urls.table(database, BROWSE_VIEW)}}


@hookimpl
def extra_template_vars(template, database, table, request, datasette):
    if template == "index.html":
        return lambda: _home(datasette)
    if template == "row.html" and table == "incidents" and request is not None:
        return lambda: _incident(datasette, database, request)
    return {}


@hookimpl
def render_cell(value, column, table, database, datasette):
    """Incident IDs in the list link to the incident's page."""
    if table == BROWSE_VIEW and column == "incident_id" and isinstance(value, str):
        href = datasette.urls.table(database, "incidents") + "/" + tilde_encode(value)
        return Markup('<a href="{}">{}</a>').format(href, value)
    return None
