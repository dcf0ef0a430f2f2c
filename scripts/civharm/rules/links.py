"""Rules on links between records (merges, supersession, republication) and on URLs."""
from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..findings import Severity
from ..package import arrow_text
from . import rows_where, rule



def url_problem(url: str) -> str | None:
    """Why a URL is not a plain public http(s) address, or None when it is."""
    if any(ch.isspace() for ch in url):
        return "contains white space"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"cannot be parsed ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https"
    if not parts.hostname or "." not in parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "contains credentials (user:password@)"
    return None


# A URL of this shape is one url_problem accepts (http(s), dotted ASCII host, no port, no credentials,
# no white space): checked as one vectorised match, so url_problem runs only on the rest.
PLAIN_URL = r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+([/?#][\x21-\x7e]*)?$"


@rule("links/bad-url", Severity.ERROR, "URLs are http(s), with a host, no credentials and no white space.",
      "A report must point to a public page anyone can open; credentials in a URL leak secrets.", needs=("reports",))
def bad_url(ctx, rule):
    frame = ctx.table("reports")
    urls = frame["url"]
    # RE2 (pyarrow), whose $ is the end of the text: a trailing line break is not plain
    plain = pc.fill_null(pc.match_substring_regex(pa.array(urls.astype(object), pa.large_string(), from_pandas=True), PLAIN_URL), False)
    plain = pd.Series(plain.to_numpy(zero_copy_only=False), index=urls.index)
    for index in rows_where(frame, urls.notna() & ~plain):
        problem = url_problem(frame.at[index, "url"])
        if problem:
            yield rule.at_row(ctx, "reports", index, "url", f"{frame.at[index, 'url'][:80]!r} {problem}")


@rule("links/merge-target", Severity.ERROR, "A merged incident names an active incident in merged_into (no chains, no cycles); others leave it empty.",
      "A merge into a merged or retracted incident, or a cycle, loses the incident's reports from every count.", needs=("incidents",))
def merge_target(ctx, rule):
    frame = ctx.table("incidents")
    status = frame[["incident_id", "status"]].drop_duplicates("incident_id").set_index("incident_id")["status"]
    merged = frame["status"] == "merged"
    target = frame["merged_into"]
    for index in rows_where(frame, merged & target.isna()):
        yield rule.at_row(ctx, "incidents", index, "merged_into", "a merged incident must name the incident it was merged into")
    for index in rows_where(frame, ~merged & target.notna()):
        yield rule.at_row(ctx, "incidents", index, "merged_into", f"only a merged incident names merged_into (status is {frame.at[index, 'status']})")
    for index in rows_where(frame, merged & target.notna()):
        goal = target[index]
        if goal == frame.at[index, "incident_id"]:
            yield rule.at_row(ctx, "incidents", index, "merged_into", "an incident cannot be merged into itself")
        elif goal in status.index and status[goal] != "active":
            yield rule.at_row(ctx, "incidents", index, "merged_into", f"{goal} is {status[goal]}, not active: merge into the incident it was merged into (no chains)")


@rule("links/status-reason", Severity.ERROR, "A merged or retracted incident says why in status_reason.",
      "Readers must be able to see why a record stopped counting.", needs=("incidents",))
def status_reason(ctx, rule):
    frame = ctx.table("incidents")
    for index in rows_where(frame, frame["status"].isin(["merged", "retracted"]) & frame["status_reason"].isna()):
        yield rule.at_row(ctx, "incidents", index, "status_reason", f"a {frame.at[index, 'status']} incident needs a reason")


@rule("links/no-current-report", Severity.ERROR, "An active incident has at least one current report.",
      "Every incident must be traceable to a statement in force; an incident without one is unsourced.", needs=("incidents", "reports"))
def no_current_report(ctx, rule):
    incidents = ctx.table("incidents")
    carried = pa.array(ctx.current_reports()["carrier_id"].dropna().unique(), type=pa.large_string())
    has_report = pd.Series(pc.is_in(arrow_text(incidents["incident_id"]), value_set=carried).to_numpy(zero_copy_only=False), index=incidents.index)
    for index in rows_where(incidents, pd.Series(ctx.active_incidents(), index=incidents.index) & ~has_report):
        yield rule.at_row(ctx, "incidents", index, "incident_id", f"{incidents.at[index, 'incident_id']} is active but has no current (active, not superseded) report")


@rule("links/superseded-by", Severity.ERROR,
      "superseded_by names a statement of the same incident and the same originator that is not earlier, and supersession has no cycles.",
      "Superseding a statement with one about another incident, by another originator, or an older one, silently drops a figure.", needs=("reports", "incidents"))
def superseded_by(ctx, rule):
    reports, incidents = ctx.table("reports"), ctx.table("incidents")
    from ..figures import as_of_span, carrier_of, originators

    carrier = carrier_of(incidents)
    superseding = reports["superseded_by"].dropna()
    # only reports in a supersession are looked up: those that name a successor, and the successors
    involved = reports["report_id"].isin(set(superseding) | set(reports.loc[superseding.index, "report_id"].dropna()))
    columns = ["report_id", "incident_id", "as_of", "superseded_by", "source_id", "republished_from", "claimant", "claimant_type"]
    by_id = reports.loc[involved.to_numpy(dtype=bool), columns].drop_duplicates("report_id").set_index("report_id")
    start, end = (pd.Series(span, index=by_id.index) for span in as_of_span(by_id["as_of"]))
    origin = originators(by_id)
    for index in rows_where(reports, reports["superseded_by"].notna()):
        this, later = reports.at[index, "report_id"], reports.at[index, "superseded_by"]
        if later == this:
            yield rule.at_row(ctx, "reports", index, "superseded_by", "a statement cannot supersede itself")
            continue
        if later not in by_id.index:
            continue  # the foreign key reports it
        mine, theirs = reports.at[index, "incident_id"], by_id.at[later, "incident_id"]
        if carrier.get(mine, mine) != carrier.get(theirs, theirs):
            yield rule.at_row(ctx, "reports", index, "superseded_by", f"{later} is about incident {theirs}, not {mine}")
        elif this in by_id.index and pd.notna(end.get(later)) and pd.notna(start.get(this)) and end[later] < start[this]:
            yield rule.at_row(ctx, "reports", index, "superseded_by", f"{later} is as of {by_id.at[later, 'as_of']}, earlier than this statement ({reports.at[index, 'as_of']})")
        elif this in by_id.index and pd.notna(origin.get(this)) and pd.notna(origin.get(later)) and origin[this] != origin[later]:
            yield rule.at_row(ctx, "reports", index, "superseded_by",
                              f"{later} is by another originator ({_originator(by_id, later)}, not {_originator(by_id, this)}); "
                              "statements of different originators stand side by side: leave superseded_by empty")
        seen, step = {this}, later
        while step in by_id.index and pd.notna(by_id.at[step, "superseded_by"]):
            step = by_id.at[step, "superseded_by"]
            if step in seen:
                yield rule.at_row(ctx, "reports", index, "superseded_by", "supersession forms a cycle")
                break
            seen.add(step)


def _originator(by_id: pd.DataFrame, report_id: str) -> str:
    """An originator as a reader recognises it: the claimant's words, or the outlet speaking in its own voice."""
    row = by_id.loc[report_id]
    if row["claimant_type"] == "media_outlet":
        outlet = row["republished_from"] if pd.notna(row["republished_from"]) else row["source_id"]
        return f"the outlet {outlet!r} in its own voice"
    return f"claimant {str(row['claimant'])[:80]!r}"


@rule("links/not-superseded", Severity.ERROR,
      "A statement with a later statement of the same originator on the same incident names a successor in superseded_by.",
      "A rising toll by one claimant is one figure that changed, not two sources that disagree; left unlinked, the old figure widens the range.", needs=("reports", "incidents"))
def not_superseded(ctx, rule):
    reports, active = ctx.table("reports"), ctx.active_reports()
    if active.empty:
        return
    from ..figures import as_of_span, originators

    read = reports[["source_id", "republished_from", "claimant", "claimant_type", "as_of", "superseded_by"]].take(active["row"].to_numpy())
    carrier, origin = pd.factorize(active["carrier_id"])[0], pd.factorize(originators(read))[0]  # -1: missing
    key = np.where((carrier >= 0) & (origin >= 0), carrier.astype(np.int64) * (int(origin.max()) + 2) + origin, -1)
    _, inverse, sizes = np.unique(key, return_inverse=True, return_counts=True)
    shared = (key >= 0) & (sizes[inverse] > 1)  # only an originator with several statements on one incident can lack a link
    if not shared.any():
        return
    read = read[shared]
    start, end = as_of_span(read["as_of"])
    frame = pd.DataFrame({"group": key[shared], "start": start, "end": end,
                          "open": read["superseded_by"].isna().to_numpy(dtype=bool)}, index=read.index)
    latest = frame.groupby("group")["start"].transform("max")  # the latest-beginning statement of the originator
    candidates = frame[frame["open"] & latest.notna() & frame["end"].notna() & (latest > frame["end"])]
    involved = frame[frame["group"].isin(candidates["group"]).to_numpy(dtype=bool)]
    found = []
    for _, group in involved.groupby("group", sort=False):
        for index in group.index[group.index.isin(candidates.index)]:
            later = group[group["start"] > group.at[index, "end"]]
            found.append((index, reports.loc[later.index, "report_id"].astype(str).tolist()))
    for index, names in sorted(found):
        yield rule.at_row(ctx, "reports", index, "superseded_by",
                          f"{len(names)} later statement(s) of the same originator on this incident ({', '.join(names[:3])}{', …' if len(names) > 3 else ''}); "
                          "name the one that follows this statement in superseded_by")


@rule("links/republished-from-self", Severity.ERROR, "republished_from names another source than source_id.",
      "A page cannot copy itself; the field exists to count copied reports once.", needs=("reports",))
def republished_from_self(ctx, rule):
    frame = ctx.table("reports")
    for index in rows_where(frame, frame["republished_from"] == frame["source_id"]):
        yield rule.at_row(ctx, "reports", index, "republished_from", f"{frame.at[index, 'source_id']} cannot republish itself")
