"""The conversation of ``civharm add``: from what a contributor holds to a reviewed change.

The command line stays thin; this module asks. It starts from what a person has in front of
them: the page (its URL names the publisher among the known sources), the place by name
(looked up in the gazetteer), the date as the page gives it, the figures as the page words
them. It asks only what those answers leave open, offers defaults, and says why a value is
refused. Then it shows the duplicate candidates beside the new statement and offers first to
attach the statement to the incident it describes; a new incident is told apart from each
candidate with a reason of its own. The rows and checks are ``contribute``'s.
"""
from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

import click

from . import contribute, corrections, gazetteer
from .package import Package
from .submission import Decision, Submission, read_submission


def echo(text: str = "") -> None:
    click.echo(text, err=True)


class Refused(click.UsageError):
    """A value refused, with why: click prints it and asks again."""


def ask(label: str, default: str | None = None, check=None, optional: bool = False) -> str:
    """One question; ``check`` turns the answer into the value or raises ``Refused`` with why."""
    def convert(value: str) -> str:
        value = value.strip()
        if value == "":
            if optional:
                return ""
            raise Refused(f"{label} is needed (no default)")
        return check(value) if check else value
    return click.prompt(label, default=default if default is not None else ("" if optional else None),
                        value_proc=convert, show_default=default not in (None, ""), err=True)


def schema_field(package: Package, table: str, name: str) -> dict:
    return next((f for f in package[table].schema.get("fields", []) if f["name"] == name), {})


def picked(definitions: dict[str, str], text: str, what: str) -> str:
    """A vocabulary value given as itself or as its number in the list shown; else refused, saying what is allowed."""
    values = list(definitions)
    if text.isdigit() and 1 <= int(text) <= len(values):
        return values[int(text) - 1]
    if text in definitions:
        return text
    raise Refused(f"{text!r} is not {what} of {', '.join(values)} (or its number)")


def choose(package: Package, table: str, name: str, default: str | None = None, optional: bool = False, several: bool = False) -> str:
    """A value of a field's vocabulary, its definitions shown first; a number picks the n-th value."""
    item = schema_field(package, table, name)
    definitions = item.get("civharm:definitions", {})
    echo(f"\n{name}: {item.get('description', '')}")
    for number, (value, text) in enumerate(definitions.items(), start=1):
        echo(f"  {number:>2}  {value}: {text}")

    def one(text: str) -> str:
        return picked(definitions, text, "one")

    def check(text: str) -> str:
        parts = [p.strip() for p in text.split(";")] if several else [text]
        return ";".join(one(p) for p in parts)

    return ask(name + (" (several: separate with ;)" if several else ""), default, check, optional)


# --- the page -------------------------------------------------------------------------------

def publisher(package: Package, url: str) -> str | None:
    """The source_id of a known source whose domain hosts ``url`` (the longest domain wins)."""
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    frame = package["sources"].frame
    known = [(str(d).lower(), s) for d, s in zip(frame["domain"], frame["source_id"]) if isinstance(d, str) and d]
    fits = [(len(d), s) for d, s in known if host == d or host.endswith("." + d)]
    return max(fits)[1] if fits else None


def _url(text: str) -> str:
    from .rules.links import url_problem

    problem = url_problem(text)
    if problem:
        raise Refused(f"the URL {problem}; give the page's address as the browser shows it")
    return text


def _day(text: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise Refused(f"{text!r} is not a day written YYYY-MM-DD")


def _pattern(pattern: str, what: str):
    def check(text: str) -> str:
        if not re.fullmatch(pattern, text):
            raise Refused(f"{text!r} is not {what}")
        return text
    return check


def ask_source(package: Package, url: str) -> tuple[str, dict | None]:
    found = publisher(package, url)
    frame = package["sources"].frame.set_index("source_id")
    if found is not None:
        echo(f"Publisher: {frame.at[found, 'name']} ({found}), a known source.")
        if click.confirm("Is that the publisher?", default=True, err=True):
            return found, None
    host = (urlsplit(url).hostname or "").lower().removeprefix("www.")
    echo("The publisher is not among the known sources; describe it once.")

    def new_id(text: str) -> str:
        if text in frame.index:
            raise Refused(f"{text!r} is a known source already ({frame.at[text, 'name']})")
        return _pattern(r"[a-z0-9][a-z0-9-]*", "a short ID in lower-case letters, digits and -")(text)

    source_id = ask("source_id", re.sub(r"[^a-z0-9-]", "", host.split(".")[0]) or None, new_id)
    source = {"source_id": source_id, "name": ask("name of the publisher"),
              "source_type": choose(package, "sources", "source_type"),
              "domain": ask("domain", host or None, optional=True),
              "country_code": ask("country_code of the publisher (optional)", optional=True,
                                  check=_pattern(r"[A-Z]{2}", "a two-letter country code like UA"))}
    return source_id, {k: v for k, v in source.items() if v != ""}


# --- the place ------------------------------------------------------------------------------

def _known_subdivisions(package: Package) -> dict[tuple[str, str], str]:
    """(country, GeoNames first-level code) → ISO 3166-2 code, as recorded on the package's own incidents."""
    frame = package["incidents"].frame
    places = gazetteer.places()
    found: dict[tuple[str, str], str] = {}
    for gid, code, country in zip(frame["geonames_id"], frame["subdivision_code"], frame["country_code"]):
        if isinstance(gid, str) and gid.isdigit() and isinstance(code, str) and code and int(gid) in places.index:
            found.setdefault((country, str(places.at[int(gid), "admin1code"])), code)
    return found


def ask_subdivision(country: str, default: str | None) -> dict:
    import pycountry

    listed = {s.code: s.name for s in pycountry.subdivisions.get(country_code=country) or [] if s.parent_code is None}

    def check(text: str) -> str:
        if text.upper() in listed:
            return text.upper()
        raise Refused(f"{text!r} is not an ISO 3166-2 first-level code of {country} (like {next(iter(listed), '?')})")

    code = ask(f"subdivision_code (ISO 3166-2 of {country}; optional)", default, check, optional=True)
    return {"subdivision_code": code, "subdivision_name": listed[code]} if code else {}


def ask_place(package: Package) -> dict:
    countries = package["incidents"].frame["country_code"].dropna()
    country = ask("country_code of the place", countries.mode().iloc[0] if len(countries) else None,
                  _pattern(r"[A-Z]{2}", "a two-letter country code like UA"))
    name = ask("place (town or village, as the page names it; empty if it names none)", optional=True)
    place: dict = {"country_code": country}
    if not name:
        area = ask("area (district) named by the page (optional)", optional=True)
        place.update({"area": area} if area else {})
        place.update(ask_subdivision(country, None))
        place["location_precision"] = "area" if area else ("subdivision" if place.get("subdivision_code") else "country")
        return place
    place["locality_en"] = name
    original = ask("the place's name in the page's language (optional)", optional=True)
    if original:
        place["locality_original"] = original
    ids = sorted(gazetteer.names(country).get(gazetteer.normalise_name(name), frozenset()) | (
        gazetteer.names(country).get(gazetteer.normalise_name(original), frozenset()) if original else frozenset()))
    places = gazetteer.places()
    matches = places.loc[[i for i in ids if i in places.index]].sort_values("population", ascending=False).head(9)
    known = _known_subdivisions(package)
    if len(matches):
        echo(f"GeoNames places of {country} named {name!r}:")
        for number, (gid, row) in enumerate(matches.iterrows(), start=1):
            sub = known.get((country, str(row["admin1code"])), "?")
            echo(f"  {number}  {row['name']} (GeoNames {gid}), subdivision {sub}, {row['latitude']:.5f}, {row['longitude']:.5f}, "
                 f"population {int(row['population']):,}")
        echo("  0  none of these")
        pick = int(ask("which one", "1", _pattern(rf"[0-{len(matches)}]", f"a number from 0 to {len(matches)}")))
    else:
        echo(f"No GeoNames place of {country} is named {name!r}: the place is kept by name, without coordinates.")
        pick = 0
    if pick:
        gid = int(matches.index[pick - 1])
        row = matches.loc[gid]
        place.update(geonames_id=str(gid), latitude=f"{row['latitude']:.5f}", longitude=f"{row['longitude']:.5f}",
                     location_precision="locality")
        place.update(ask_subdivision(country, known.get((country, str(row["admin1code"])))))
    else:
        place.update(ask_subdivision(country, None))
        place["location_precision"] = choose(package, "incidents", "location_precision", "area")
    site = choose(package, "incidents", "site_type", optional=True)
    if site:
        place["site_type"] = site
        detail = ask("site_detail (which building or street, in your words; optional)", optional=True)
        place.update({"site_detail": detail} if detail else {})
    return place


# --- the date and the figures ---------------------------------------------------------------

def _date(text: str) -> tuple[str, str, str]:
    """(start, end, precision) of a day, a month, a year, or a range ``start/end``."""
    try:
        if "/" in text:
            start, end = (dt.date.fromisoformat(p.strip()) for p in text.split("/", 1))
            if end < start:
                raise Refused(f"the range ends ({end}) before it starts ({start})")
            return start.isoformat(), end.isoformat(), "range"
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = dt.date.fromisoformat(text).isoformat()
            return day, day, "day"
        if re.fullmatch(r"\d{4}-\d{2}", text):
            year, month = map(int, text.split("-"))
            last = calendar.monthrange(year, month)[1]
            return f"{text}-01", f"{text}-{last:02d}", "month"
        if re.fullmatch(r"\d{4}", text):
            return f"{text}-01-01", f"{text}-12-31", "year"
    except ValueError:
        pass
    raise Refused(f"{text!r} is not YYYY-MM-DD, YYYY-MM, YYYY or a range YYYY-MM-DD/YYYY-MM-DD; "
                  "give only as much as the page says (a month when it gives no day)")


def ask_date(package: Package, published: str | None) -> dict:
    echo("\nThe incident's date, as precise as the page makes it (a month when the page gives no day).")
    holder: dict = {}

    def check(text: str) -> str:
        holder["value"] = _date(text)
        return text

    ask("date (YYYY-MM-DD, YYYY-MM, YYYY, or a range start/end)", published, check)
    start, end, precision = holder["value"]
    basis = choose(package, "incidents", "date_basis", "stated")
    time = ask("time_of_day (night, morning, afternoon, evening or HH:MM; optional)", optional=True,
               check=_pattern(r"night|morning|afternoon|evening|([01][0-9]|2[0-3]):[0-5][0-9]", "night, morning, afternoon, evening or HH:MM"))
    values = {"date_start": start, "date_end": end, "date_precision": precision, "date_basis": basis}
    return values | ({"time_of_day": time} if time else {})


WORDING = (  # how a page words a figure → the qualifier (reports.*_qualifier)
    (r"(at least|no fewer than|not less than)", "at_least"), (r"(more than|over)", "more_than"),
    (r"(about|around|approximately|some)", "about"), (r"(up to|as many as)", "up_to"), (r"", "exact"),
)


def figure(text: str) -> tuple[str, str]:
    """('3', 'at_least') from 'at least 3'; refused with why when the words are not a figure."""
    lowered = " ".join(text.lower().split())
    for words, qualifier in WORDING:
        found = re.fullmatch(rf"{words}\s*(0|[1-9][0-9]*)" if words else r"(0|[1-9][0-9]*)", lowered)
        if found:
            return found.groups()[-1], qualifier
    raise Refused(f"{text!r}: give the number as the page words it (like 5, at least 5, more than 5, about 5, up to 5); "
                  "leave it empty when the page does not give this figure (never 0 for unknown)")


FIGURE_QUESTIONS = (("civilians_killed", "civilians killed"), ("civilians_injured", "civilians injured"),
                    ("children_killed", "children killed"), ("children_injured", "children injured"),
                    ("all_killed", "people killed, civilian or not said"), ("all_injured", "people injured, civilian or not said"))


def ask_figures() -> dict:
    echo("\nThe figures as the page words them (like 'at least 3'); empty when the page gives none.")
    values: dict = {}
    for name, label in FIGURE_QUESTIONS:
        holder: dict = {}

        def check(text: str) -> str:
            holder["value"] = figure(text)
            return text

        if ask(label, optional=True, check=check):
            values[name], values[f"{name}_qualifier"] = holder["value"]
    return values


# --- the whole statement ---------------------------------------------------------------------

def ask_submission(package: Package, today: dt.date) -> Submission:
    """Ask for a statement, beginning with the page."""
    echo("Start with the page the statement is on.")
    url = ask("URL of the page", check=_url)
    source_id, source = ask_source(package, url)
    report: dict = {"source_id": source_id, "url": url, "title": ask("title of the page (its headline)"),
                    "language": ask("language of the page (two letters)", "en", _pattern(r"[a-z]{2}", "a two-letter language code like en"))}
    published = ask("published_date (YYYY-MM-DD, as the page gives it; optional)", optional=True, check=_day)
    report["published_date"] = published
    report["published_precision"] = "day" if published else choose(package, "reports", "published_precision", "not_stated")
    report["accessed_date"] = ask("accessed_date (the day you read the page)", today.isoformat(), _day)
    incident: dict = ask_place(package) | ask_date(package, published or None)
    report |= ask_figures()
    report["claimant"] = ask("claimant (who gives the figures, as the page names them)")
    report["claimant_type"] = choose(package, "reports", "claimant_type")
    report["as_of"] = ask("as_of (the moment the figures are from: YYYY-MM-DD or YYYY-MM-DDTHH:MM)", published or None,
                          _pattern(r"\d{4}-\d{2}(-\d{2}(T\d{2}:\d{2})?)?", "YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM"))
    report["responsibility_claimed"] = choose(package, "reports", "responsibility_claimed", "unknown")
    notes = ask("notes (in your words; optional)", optional=True)
    report |= {"notes": notes} if notes else {}
    incident["means_of_harm"] = choose(package, "incidents", "means_of_harm", "unknown", several=True)
    incident["perpetrator_alleged"] = choose(package, "incidents", "perpetrator_alleged", "unknown")
    incident["attribution_basis"] = choose(package, "incidents", "attribution_basis", "not_attributed", several=True)
    incident["confidence"] = choose(package, "incidents", "confidence", "low")
    incident["summary"] = ask("summary (what happened, in your words, at least 10 characters)",
                              check=lambda t: t if len(t) >= 10 else (_ for _ in ()).throw(Refused("a summary has at least 10 characters")))
    return Submission(report={k: v for k, v in report.items() if v != ""}, incident=incident, source=source)


# --- the review ---------------------------------------------------------------------------

def show_candidates(package: Package, built: contribute.Plan) -> None:
    names = dict(zip(package["sources"].frame["source_id"], package["sources"].frame["name"]))
    echo(f"\nThe statement may describe an incident already recorded ({len(built.candidates)} candidate(s)):")
    for number, candidate in enumerate(built.candidates, start=1):
        other = built.other(candidate)
        echo(f"\n[{number}] {other}: match probability {candidate.score:.2f} ({'; '.join(candidate.reasons)})")
        rows = contribute.compare(built, other, names)
        width = max(len(new) for _, new, _ in rows)
        echo(f"  {'':8}  {'this statement':{width}}  |  {other}")
        for what, new, old in rows:
            echo(f"  {what:8}  {new:{width}}  |  {old}")


def ask_decisions(package: Package, built: contribute.Plan) -> tuple[str | None, list[Decision]]:
    """Attach to a candidate (offered first), or tell the new incident apart from each candidate."""
    show_candidates(package, built)
    others = [built.other(c) for c in built.candidates]
    echo("\nWhat does the statement describe?")
    for number, other in enumerate(others, start=1):
        echo(f"  {number}  incident {other}: attach the report to it (the same event)")
    echo(f"  n  a new incident, distinct from {'each of these' if len(others) > 1 else others[0]} (you say why for each)")
    pick = ask("choice", "1", _pattern(rf"n|[1-{len(others)}]" if len(others) < 10 else r"n|[1-9][0-9]*", f"a number from 1 to {len(others)}, or n"))
    if pick != "n":
        return others[int(pick) - 1], []
    vocabulary = contribute.reasons(package)
    decisions = []
    for other in others:
        echo(f"\nWhat tells the new incident apart from {other}?")
        for number, (value, text) in enumerate(vocabulary.items(), start=1):
            echo(f"  {number}  {value}: {text}")

        def reason(text: str) -> str:
            return picked(vocabulary, text, "a reason: one")

        chosen = ask(f"reason for {other}", check=reason)
        note = ask(f"note for {other} (what the pages of both say, in your words)",
                   check=lambda t: t if len(t) >= 10 else (_ for _ in ()).throw(Refused("say it in at least 10 characters")))
        decisions.append(Decision(other, chosen, note))
    return None, decisions


def ask_supersedes(package: Package, built: contribute.Plan, report: dict) -> list[str]:
    """Which earlier statements of the same originator on the incident this statement updates, if any."""
    chosen = []
    for row in corrections.supersession_candidates(package, built.incident_id, report):
        figures = ", ".join(f"{name} {row[name]}" for name, _ in FIGURE_QUESTIONS if row.get(name))
        echo(f"\nReport {row['report_id']} of the same originator ({row['claimant']}), as of {row['as_of']}: {figures or 'no figures'}")
        if click.confirm("Does the new statement update it (a later toll from the same originator)?", default=False, err=True):
            chosen.append(row["report_id"])
    return chosen


def ask_damage(package: Package) -> list[dict]:
    rows = []
    while click.confirm("\nDoes the page report damage to buildings or objects" + (" besides those entered" if rows else "") + "?",
                        default=False, err=True):
        row = {"object_type": choose(package, "damage", "object_type"), "damage_level": choose(package, "damage", "damage_level")}
        holder: dict = {}

        def check(text: str) -> str:
            holder["value"] = figure(text)
            return text

        if ask("how many, as the page words it (optional)", optional=True, check=check):
            row["count"], row["count_qualifier"] = holder["value"]
        rows.append(row)
    return rows


def review(package: Package, submission: Submission, today: dt.date, interactive: bool) -> contribute.Plan:
    """Plan the change and settle its candidates: from the file's decisions, else by asking."""
    built = contribute.plan(package, submission, today)
    if built.candidates and submission.attach_to is None and not submission.distinct_from:
        if not interactive:
            show_candidates(package, built)
            lines = "\n".join(f"    - incident: {built.other(c)}\n      reason: <{' | '.join(contribute.reasons(package))}>\n"
                              f"      note: <what the pages of both say that tells them apart>" for c in built.candidates)
            raise click.ClickException(
                "nothing written: check each candidate above against its pages. If the statement describes one of them, add\n"
                f"  attach_to: {built.other(built.candidates[0])}\n"
                "to the file (the report goes to that incident). If it is a new event, tell it apart from each candidate:\n"
                f"  distinct_from:\n{lines}")
        attach_to, decisions = ask_decisions(package, built)
        submission = dataclasses.replace(submission, attach_to=attach_to, distinct_from=decisions)
        built = contribute.plan(package, submission, today)
    if interactive:
        supersedes = submission.supersedes or ([] if built.new_incident else ask_supersedes(package, built, submission.report))
        damage = submission.damage or ask_damage(package)
        if supersedes != submission.supersedes or damage != submission.damage:
            submission = dataclasses.replace(submission, supersedes=supersedes, damage=damage)
            built = contribute.plan(package, submission, today)
    contribute.decide(package, built, submission.distinct_from, today)
    return built


def add(package: Package, file: Path | None, today: dt.date, interactive: bool, supersedes: tuple[str, ...] = ()) -> contribute.Plan | None:
    """The whole of ``civharm add``; returns the plan written, or None when the person said no."""
    if file is None and not interactive:
        raise click.UsageError("give a FILE: without a terminal, civharm add cannot ask for the fields")
    submission = read_submission(file, package) if file is not None else ask_submission(package, today)
    submission.supersedes = [*submission.supersedes, *(s for s in supersedes if s not in submission.supersedes)]
    built = review(package, submission, today, interactive and file is None)
    problems = contribute.check(package, built, today)
    if problems:
        for finding in problems:
            echo(f"  {finding.as_text()}  [{finding.rule_id}]")
        raise click.ClickException(f"nothing written: the change would add {len(problems)} error(s)")
    if interactive and file is None:
        echo(f"\nWill write report {built.report_id} on incident {built.incident_id} "
             f"({'new' if built.new_incident else 'existing'}); files: {', '.join(sorted(p.name for p in built.files))}")
        if not click.confirm("Write?", default=True, err=True):
            echo("nothing written")
            return None
    contribute.commit(built)
    return built
