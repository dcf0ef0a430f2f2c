"""``civharm verify-sources``: every stated figure, qualifier, claimant and date checked against its page.

For each active report the page's text is read (``pages.read``: page store, archived capture,
live page) and the row is compared with it:

- each figure is on the page, as digits (grouped with the thousands separator of the page's
  language, from CLDR through Babel, or ungrouped) or as a number word of that language
  (``number_words``), unless ``figures_derived`` lists it (that the row states such a figure and
  ``notes`` say how it was derived is checked offline by ``civharm validate``, ``figures/derived-*``);
- the qualifier agrees: a row that says ``exact`` must not find the figure only or also with a
  qualifier directly before it ("at least 5"), and a qualified row needs that qualifier before
  the figure somewhere on the page (``QUALIFIERS``);
- the claimant's name (``claimant_name``) is on the page, unless the claimant is the page's own
  publisher (``claimant_is_publisher``: an outlet in its own voice, or a claimant whose name is
  the report's source or the page's host, such as an unsigned post on a forum): the page is then
  the claimant's own statement, and has no name to look for;
- the publication date (``date_on_page``) is on the page, in its URL, or in the page store's
  header line ``pub_date`` (``date_in_header``), which records the date the page shows outside
  the stored excerpt.

Each problem is a Finding under ``evidence/``. The page's words around a figure are never part
of a Finding (messages can be saved as JSON): ``check`` returns them beside the findings, for a
terminal to show.
"""
from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from . import pages as page_text
from .figures import FIGURES
from .findings import CivharmError, Finding, Rule, Severity, declare
from .package import Package

RULES = declare(
    Rule("evidence/page-unavailable", Severity.ERROR, "The report's page text can be read (page store, archived capture, or live page with --fetch).",
            "A figure that cannot be traced to its page cannot be checked, and the dataset promises every figure is."),
    Rule("evidence/figure-not-on-page", Severity.ERROR, "Each stated figure is on the page, as digits or as a number word of the page's language.",
            "A figure not on its page was misread, or derived without saying so (then list it in figures_derived and explain it in notes)."),
    Rule("evidence/qualifier-disagrees", Severity.ERROR, "The qualifier agrees with the page: none before an exact figure, the stated one before a qualified figure.",
            "\"At least 5\" stored as exactly 5 turns an open lower bound into a closed count, and the figure rule then caps the incident's maximum."),
    Rule("evidence/claimant-not-on-page", Severity.ERROR, "The claimant's name is on the page (allowing for transliteration and endings), unless the claimant is the page's own publisher (an outlet in its own voice, or a claimant named as the report's source or the page's host).",
            "A figure credited to someone the page does not name is an attribution the source did not make."),
    Rule("evidence/date-not-on-page", Severity.ERROR, "The publication date, at its stated precision, is on the page, in its URL, or in the page store's pub_date header (the date the page shows outside the stored excerpt).",
            "published_date anchors relative dates (\"on Tuesday\"); a date the page does not give must be marked not_stated."),
    Rule("evidence/text-changed", Severity.WARNING, "The archived or live page's text still has the fingerprint recorded in text_sha256.",
            "Pages are edited after publication (tolls rise, claims are removed); a changed text means the row must be re-read against it."),
    Rule("evidence/language-unsupported", Severity.WARNING, "The page's language has number words and qualifier words known to civharm.",
            "Without them, figures are looked for as digits only and qualifiers are not checked."),
)

# Words that, directly before a figure, qualify it; one list per language, kind as in the
# schema's qualifier vocabulary. Hand-written: no maintained library lists them. Russian and
# Ukrainian "до" ("up to", but also "rose to") is left out: it would read every rising toll as
# a bound.
QUALIFIERS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"at_least": ("at least", "no fewer than", "no less than", "not less than", "a minimum of"),
           "more_than": ("more than", "over", "upwards of", "in excess of", "above"),
           "about": ("about", "around", "approximately", "some", "nearly", "almost", "roughly", "an estimated", "close to"),
           "up_to": ("up to", "as many as")},
    "de": {"at_least": ("mindestens", "wenigstens", "zumindest"),
           "more_than": ("mehr als", "über"),
           "about": ("etwa", "rund", "ungefähr", "circa", "ca.", "knapp", "fast", "nahezu"),
           "up_to": ("bis zu",)},
    "ru": {"at_least": ("не менее", "не меньше", "как минимум", "по меньшей мере", "минимум"),
           "more_than": ("более", "больше", "свыше", "более чем", "больше чем"),
           "about": ("около", "порядка", "примерно", "почти", "приблизительно"),
           "up_to": ("вплоть до",)},
    "uk": {"at_least": ("щонайменше", "щонайменш", "принаймні", "не менше", "не менше ніж", "як мінімум", "мінімум"),
           "more_than": ("понад", "більше", "більше ніж", "більш ніж"),
           "about": ("близько", "приблизно", "майже", "орієнтовно"),
           "up_to": ("аж до",)},
    "it": {"at_least": ("almeno", "non meno di", "come minimo"),
           "more_than": ("più di", "oltre"),
           "about": ("circa", "quasi", "intorno a", "intorno ai", "attorno a", "all'incirca"),
           "up_to": ("fino a", "sino a")},
}
QUALIFIER_WINDOW = 40  # characters before a figure searched for a qualifier phrase

# Russian and Ukrainian count people with collective numerals ("трое погибших"); num2words has
# none, so their stems are listed here (2–10), with the case endings each takes.
COLLECTIVE_STEMS = {
    "ru": {2: "дво", 3: "тро", 4: "четвер", 5: "пятер", 6: "шестер", 7: "семер", 8: "восьмер", 9: "девятер", 10: "десятер"},
    "uk": {2: "дво", 3: "тро", 4: "четвер", 5: "п'ятер", 6: "шестер", 7: "семер", 8: "восьмер", 9: "дев'ятер", 10: "десятер"},
}
COLLECTIVE_ENDINGS = {("ru", True): ("е", "их", "им", "ими"), ("ru", False): ("о", "ых", "ым", "ыми"),
                      ("uk", True): ("є",), ("uk", False): ("о",)}

# Words of a claimant that are offices, not names: the name looked for is the last other word.
OFFICE_WORDS = frozenset("""
    governor head mayor minister ministry deputy acting chief spokesperson spokesman spokeswoman press secretary
    regional region oblast city district municipal military civil state national federal administration office
    council department service services emergency emergencies interior internal affairs defence defense
    president presidential prime general staff armed forces army police prosecutor commissioner ombudsman
    telegram channel the of and on in for
""".split())
APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "`": "'"})


@dataclass(frozen=True)
class Mention:
    """One place the page states a number: where, which value, and the qualifier kind before it."""

    start: int
    end: int
    value: int
    qualifier: str | None


@dataclass
class Result:
    """The findings, and for some of them the page's words around the figure (terminal only)."""

    findings: list[Finding] = field(default_factory=list)
    context: dict[Finding, str] = field(default_factory=dict)
    pages_read: int = 0


# --- numbers -----------------------------------------------------------------------------------


def _num2words(number: int, lang: str, **forms) -> str | None:
    from num2words import num2words

    try:
        return num2words(number, lang=lang, **forms)
    except (NotImplementedError, KeyError, ValueError, TypeError, OverflowError, IndexError):
        return None


@lru_cache(maxsize=4096)
def number_words(number: int, lang: str) -> frozenset[str]:
    """Every word form of ``number`` recognised in ``lang`` (lower case).

    num2words gives the base form in every language it knows. Further forms: English without
    "and" or commas; German "ein/eine/einen/einem/einer/eines" for 1 and "hundert"/"tausend"
    without "ein"; Italian "un/una" for 1 and the elided "-un/-una" of 21, 31, …; Russian in
    all six cases, three genders and animate/inanimate accusative, Ukrainian in all six cases
    and both genders num2words offers (all from num2words), plus the collective numerals 2–10
    (двое, двоих, …; двоє, …), which num2words lacks. Digits count too, ungrouped or grouped
    by the language's thousands separator (1,200 en; 1.200 de, it; 1 200 ru, uk).
    """
    base = _num2words(number, lang)
    if base is None:
        return frozenset()
    forms = {base}
    if lang == "en":
        forms |= {base.replace(",", ""), base.replace(" and ", " ").replace(",", "")}
    elif lang == "de":
        forms |= {re.sub(r"^ein(?=hundert|tausend)", "", base)}
        if number == 1:
            forms |= {"ein", "eine", "einen", "einem", "einer", "eines"}
    elif lang == "it":
        if base.endswith("uno"):
            forms |= {base[:-1], base[:-1] + "a"}
    elif lang == "ru":
        for case in "ngdaip":
            for gender in "mfn":
                for animate in (True, False):
                    forms.add(_num2words(number, lang, case=case, gender=gender, animate=animate) or base)
    elif lang == "uk":
        for case in ("nominative", "genitive", "dative", "accusative", "instrumental", "locative"):
            for gender in ("masculine", "feminine"):
                forms.add(_num2words(number, lang, case=case, gender=gender) or base)
    stem = COLLECTIVE_STEMS.get(lang, {}).get(number)
    if stem:
        forms |= {stem + ending for ending in COLLECTIVE_ENDINGS[(lang, number <= 3)]}
    return frozenset(f.casefold().translate(APOSTROPHES) for f in forms if f)


@lru_cache(maxsize=64)
def _digit_pattern(lang: str) -> re.Pattern:
    """Digits, ungrouped or grouped by threes with the language's thousands separator (CLDR via Babel)."""
    from babel import Locale, UnknownLocaleError, numbers

    try:
        locale = Locale.parse(lang)
        group, decimal = numbers.get_group_symbol(locale), numbers.get_decimal_symbol(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        group, decimal = "", "."
    group = " " if group.isspace() else group  # normalised text has a plain space for a no-break one
    grouped = rf"\d{{1,3}}(?:{re.escape(group)}\d{{3}})+|" if group else ""
    tail = rf"(?!\d|{re.escape(decimal)}\d" + (rf"|{re.escape(group)}\d)" if group else ")")
    # not part of a decimal, a time (07:45), a date (16/03), a zero-padded field (01) or an ordinal (2nd)
    before = rf"(?<![\d:/])(?<!\d{re.escape(decimal)})" + (rf"(?<!\d{re.escape(group)})" if group else "")
    return re.compile(rf"{before}(?!0\d)(?:{grouped}\d+){tail}(?![^\W\d_]|:\d|/\d)")


@lru_cache(maxsize=64)
def _qualifier_pattern(lang: str) -> re.Pattern | None:
    words = QUALIFIERS.get(lang)
    if not words:
        return None
    phrases = sorted((p for kind in words.values() for p in kind), key=len, reverse=True)
    return re.compile(rf"(?:^|\W)({'|'.join(re.escape(p) for p in phrases)})\s*$", re.IGNORECASE)


def _qualifier_kind(lang: str, phrase: str) -> str | None:
    phrase = phrase.casefold()
    return next((kind for kind, words in QUALIFIERS.get(lang, {}).items() if phrase in words), None)


def _qualifier_before(text: str, start: int, lang: str, number: int) -> str | None:
    """The qualifier kind directly before a figure; "about one" is "concerning one", never an approximation."""
    pattern = _qualifier_pattern(lang)
    match = pattern.search(text[max(0, start - QUALIFIER_WINDOW):start]) if pattern else None
    kind = _qualifier_kind(lang, match.group(1)) if match else None
    return None if kind == "about" and number == 1 else kind


class PageNumbers:
    """The numbers a page states, found once per page and language."""

    def __init__(self, text: str, lang: str):
        self.text, self.lang = text.translate(APOSTROPHES), lang
        self.digits = [(m.start(), m.end(), int(re.sub(r"\D", "", m.group()))) for m in _digit_pattern(lang).finditer(self.text)]

    def mentions(self, number: int) -> list[Mention]:
        spans = [(s, e) for s, e, v in self.digits if v == number]
        forms = number_words(number, self.lang)
        if forms:
            alternatives = "|".join(re.escape(f).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]+")
                                    for f in sorted(forms, key=len, reverse=True))
            spans += [m.span() for m in re.finditer(rf"(?<!\w)(?:{alternatives})(?!\w)", self.text, re.IGNORECASE)]
        return [Mention(s, e, number, _qualifier_before(self.text, s, self.lang, number)) for s, e in sorted(spans)]


def context(text: str, start: int, end: int, width: int = 70) -> str:
    """The page's words around a span, on one line (for the terminal only)."""
    left = text.rfind(" ", 0, max(0, start - width)) + 1 if start > width else 0
    right = text.find(" ", end + width)
    snippet = text[left:right if right != -1 else len(text)].replace("\n", " / ")
    return ("…" if left else "") + snippet + ("…" if right != -1 else "")


# --- names and dates ----------------------------------------------------------------------------


def claimant_name(claimant: str) -> str | None:
    """The word of a claimant that the page must name: the last one that is not an office word.

    Only the part before the first parenthesis, comma or "as/citing" counts (the rest is our own
    description). "Governor of Kursk region Roman Starovoit (Telegram)" → "Starovoit";
    "Governor of Kharkiv region (not named on the page)" → "Kharkiv"; "BBC, as …" → "BBC".
    """
    name = re.split(r"[(,;]|\s(?:as|citing|according|via)\s", claimant, maxsplit=1)[0]
    words = [w.strip(".'’-") for w in re.findall(r"[^\W\d_][\w'’.-]*", name)]
    names = [w for w in words if len(w) >= 3 and w[:1].isupper() and w.casefold() not in OFFICE_WORDS]
    return names[-1] if names else None


def claimant_is_publisher(claimant: str, claimant_type: str, url: str, source: dict[str, str]) -> bool:
    """Whether the claimant is the page's own publisher, so the page itself is the claimant's statement.

    True for an outlet in its own voice (``claimant_type`` media_outlet), and for a claimant
    whose name (the part ``claimant_name`` reads) contains the report's source's ``name`` or
    ``domain`` or the page's host, as whole words: "Unsigned post on lemmy.ca" on a lemmy.ca
    page. Such a page has no byline to find; its claim is checked by the figures on it.
    """
    if claimant_type == "media_outlet":
        return True
    head = re.split(r"[(,;]|\s(?:as|citing|according|via)\s", claimant, maxsplit=1)[0].casefold()
    head = re.sub(r"(?<![\w.])www\.", "", head)  # "www.example.org" names the host example.org
    host = urllib.parse.urlsplit(url).hostname or ""
    names = {source.get("name", ""), source.get("domain", ""), host.removeprefix("www.")}
    return any(len(n) >= 3 and re.search(rf"(?<![\w.]){re.escape(n.casefold())}(?![\w]|\.\w)", head) for n in names if n)


def _fold(word: str) -> str:
    from unidecode import unidecode

    return unidecode(word).casefold()


def name_on_page(name: str, text: str) -> bool:
    """Whether the page has ``name``, transliterated or inflected (Гладков, Gladkow, Gladkova for Gladkov)."""
    from rapidfuzz.distance import Levenshtein

    wanted = _fold(name)
    for word in {_fold(w) for w in re.findall(r"[^\W\d_][\w'’-]*", text)}:
        if word == wanted:
            return True
        shorter = min(len(word), len(wanted))
        if shorter >= 4 and word[:max(4, shorter - 2)] == wanted[:max(4, shorter - 2)] and abs(len(word) - len(wanted)) <= 3:
            return True
        if shorter >= 5 and Levenshtein.normalized_similarity(word, wanted) >= 0.8:
            return True
    return False


@lru_cache(maxsize=64)
def _month_names(lang: str) -> tuple[tuple[str, ...], ...]:
    """Month names (wide and abbreviated, formatting and stand-alone forms) of ``lang`` and English, from CLDR."""
    from babel import Locale, UnknownLocaleError

    months: list[set[str]] = [set() for _ in range(12)]
    for code in dict.fromkeys((lang, "en")):
        try:
            locale = Locale.parse(code)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
        for context_name in ("format", "stand-alone"):
            for width in ("wide", "abbreviated"):
                for number, month in locale.months[context_name][width].items():
                    months[number - 1].add(month.rstrip("."))
    return tuple(tuple(sorted(m, key=len, reverse=True)) for m in months)


def date_on_page(day: dt.date, precision: str, lang: str, text: str, url: str) -> bool:
    """Whether the page or its URL gives ``day`` at ``precision`` (day, month or year)."""
    y, m, d = day.year, day.month, day.day
    names = "|".join(re.escape(n) for n in _month_names(lang)[m - 1])
    month = rf"(?:{names})\.?"
    patterns = {
        "year": [rf"(?<!\d){y}(?!\d)"],
        "month": [rf"{month}\s+(?:of\s+)?{y}(?!\d)", rf"(?<!\d){y}[-/.]0?{m}(?!\d)", rf"(?<![\d.])0?{m}[./]{y}(?!\d)"],
        "day": [rf"(?<!\d){y}[-/.]{m:02d}[-/.]{d:02d}(?!\d)", rf"(?<![\d.])0?{d}[./]0?{m}[./]{y}(?!\d)",
                rf"(?<![\d/])0?{m}/0?{d}/{y}(?!\d)",
                rf"(?<!\d)0?{d}(?:st|nd|rd|th)?\.?\s+(?:of\s+)?{month},?\s+{y}(?!\d)",
                rf"{month}\s+0?{d}(?:st|nd|rd|th)?,?\s+{y}(?!\d)"],
    }.get(precision, [])
    haystack = f"{url}\n{text}"
    return any(re.search(p, haystack, re.IGNORECASE) for p in patterns) or _stamped_in_url(day, precision, url)


def date_in_header(day: dt.date, precision: str, meta: dict[str, str]) -> bool:
    """Whether the page store's header (``# pub_date: 2024-03-12 14:25``) gives ``day`` at ``precision``.

    The header leads with an ISO date (YYYY, YYYY-MM or YYYY-MM-DD) when the store knows it;
    anything after it (a time, "(from URL)") is ignored, and a header without a leading date
    ("not in excerpt") is no evidence. A coarser header cannot support a finer date.
    """
    match = re.match(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?![\d-])", meta.get("pub_date", ""))
    if not match:
        return False
    wanted = {"year": (day.year,), "month": (day.year, day.month), "day": (day.year, day.month, day.day)}.get(precision)
    given = tuple(int(part) for part in match.groups() if part is not None)
    return wanted is not None and len(given) >= len(wanted) and given[:len(wanted)] == wanted


def _stamped_in_url(day: dt.date, precision: str, url: str) -> bool:
    """Whether the URL carries a Unix time (10 digits, as news sites number articles) on ``day`` (UTC)."""
    if precision != "day":
        return False
    for digits in re.findall(r"(?<!\d)1\d{9}(?!\d)", url):
        if dt.datetime.fromtimestamp(int(digits), dt.timezone.utc).date() == day:
            return True
    return False


# --- the check ----------------------------------------------------------------------------------


def _cell(row: pd.Series, name: str) -> str:
    value = row.get(name)
    return "" if value is None or pd.isna(value) else str(value)


def _figure_findings(report, row: pd.Series, numbers: PageNumbers, page: page_text.Page, result: Result) -> None:
    derived = set(filter(None, _cell(row, "figures_derived").split(";")))
    for figure in FIGURES:
        value, qualifier = _cell(row, figure), _cell(row, f"{figure}_qualifier") or "exact"
        if figure in derived:  # not on the page in those words; validate's figures/derived-* check the marker and its note
            continue
        if not value.isdigit():
            continue
        mentions = numbers.mentions(int(value))
        if not mentions:
            found = sorted({v for _, _, v in numbers.digits if v < 10_000 and v != int(value)})[:12]
            report(row, "evidence/figure-not-on-page", figure,
                   f"{value} is not on the page ({page.origin}) as digits or as a number word of {numbers.lang!r}; "
                   "if it is derived from the page's words, list it in figures_derived and say how in notes",
                   "numbers on the page: " + (", ".join(map(str, found)) or "none"))
            continue
        qualified = [m for m in mentions if m.qualifier]
        if qualifier == "exact" and qualified and len(qualified) == len(mentions):  # an unqualified mention supports exact, as a matching one supports the others
            first = qualified[0]
            report(row, "evidence/qualifier-disagrees", f"{figure}_qualifier",
                   f"the row says exactly {value}, but the page puts a qualifier ({first.qualifier}) before {value}",
                   context(numbers.text, first.start, first.end))
        elif qualifier != "exact" and not any(m.qualifier == qualifier for m in mentions):
            seen = sorted({m.qualifier for m in qualified})
            first = mentions[0]
            report(row, "evidence/qualifier-disagrees", f"{figure}_qualifier",
                   f"the row says {qualifier} {value}, but the page " +
                   (f"qualifies {value} only as {', '.join(seen)}" if seen else f"gives {value} without a qualifier"),
                   context(numbers.text, first.start, first.end))


def _row_findings(report, row: pd.Series, page: page_text.Page, result: Result, sources: dict[str, dict[str, str]]) -> None:
    lang = _cell(row, "language") or "en"
    if lang not in QUALIFIERS or not number_words(3, lang):
        report(row, "evidence/language-unsupported", "language",
               f"no {'qualifier words' if lang not in QUALIFIERS else 'number words'} for {lang!r}: "
               "figures were looked for as digits" + (" and number words" if number_words(3, lang) else "") + " only")
    _figure_findings(report, row, PageNumbers(page.text, lang), page, result)
    claimant, source = _cell(row, "claimant"), sources.get(_cell(row, "source_id"), {})
    if not claimant_is_publisher(claimant, _cell(row, "claimant_type"), _cell(row, "url"), source):
        name = claimant_name(claimant)
        if name and not name_on_page(name, page.text):
            report(row, "evidence/claimant-not-on-page", "claimant", f"the page ({page.origin}) does not name {name!r}")
    published, precision = _cell(row, "published_date"), _cell(row, "published_precision")
    try:
        day = dt.date.fromisoformat(published) if published and precision in ("day", "month", "year") else None
    except ValueError:
        day = None  # not a date: a structural error that `civharm validate` reports
    if day is not None:
        if not (date_on_page(day, precision, lang, page.text, _cell(row, "url")) or date_in_header(day, precision, page.meta)):
            report(row, "evidence/date-not-on-page", "published_date",
                   f"{published} ({precision}) is neither on the page ({page.origin}) nor in its URL" +
                   (" nor in the page store's pub_date header" if page.kind == "store" else ""))
    recorded = _cell(row, "text_sha256")
    if recorded and page.kind in ("archive", "live") and page_text.fingerprint(page.text) != recorded:
        report(row, "evidence/text-changed", "text_sha256",
               f"the {page.kind} page's text ({page.origin}) no longer has the fingerprint recorded "
               f"{('on ' + _cell(row, 'archived_at')) if _cell(row, 'archived_at') else ''}; re-read the row against it".replace("  ", " "))


def check(package: Package, store: page_text.PageStore | None, fetcher: page_text.Fetcher | None) -> Result:
    """Compare every active report with its page; each page is read once."""
    resource = package["reports"]
    frame = resource.frame
    absent = [name for name in ("status", "url") if name not in frame.columns]
    if absent:
        raise CivharmError(f"{resource.path}: no column {', '.join(absent)}; run civharm validate")
    result = Result()
    sources = {}
    if package.get("sources") is not None and package["sources"].frame is not None:
        frame_sources = package["sources"].frame
        if "source_id" in frame_sources.columns:
            sources = {str(r["source_id"]): {k: str(r[k]) for k in ("name", "domain") if k in r and not pd.isna(r[k])}
                       for r in frame_sources.to_dict("records")}

    def report(row, rule_id, field_name, message, words=None):
        finding = Finding(resource.path, resource.line_of(row.name), field_name, rule_id, message, RULES[rule_id].severity)
        result.findings.append(finding)
        if words:
            result.context[finding] = words

    active = frame[frame["status"] == "active"]
    for (url, archive_url), rows in active.groupby([active["url"], active.get("archive_url", pd.Series("", index=active.index))],
                                                   sort=False, dropna=False):
        try:
            page = page_text.read(url, archive_url or None, store, fetcher)
        except page_text.Unavailable as exc:
            for _, row in rows.iterrows():
                report(row, "evidence/page-unavailable", "url", f"the page's text cannot be had: {exc}")
            continue
        result.pages_read += 1
        for _, row in rows.iterrows():
            _row_findings(report, row, page, result, sources)
    return result
