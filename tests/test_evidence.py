"""``civharm verify-sources``: figures, qualifiers, claimants and dates checked against page texts.

Every page here is an invented text written for these tests (no real page is copied).
"""
from __future__ import annotations

import datetime as dt
import http.server
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm import evidence, pages
from civharm.cli import main
from conftest import loopback, set_cell

URL = "https://dailywrap.uk/russian-guerrillas-strike-military-targets-in-belgorod-and-kursk,7005851269351041a"
OTHER_URL = "https://example.org/news/2023/12/30/elsewhere"
# Line 2 of valid-minimal: all_killed 1 exact, all_injured 3 exact, 14 March 2024 (day), the outlet's own voice.
GOOD_PAGE = ("Night of shelling in the border city\n14 March 2024\n"
             "One driver died in his car and three people were hurt when rockets fell on a street, the paper learned.")
OTHER_PAGE = "Recap, 30 December 2023: 25 civilians died and more than 100 were hurt in the city centre."


def store(tmp_path: Path, texts: dict[str, str], header: str = "") -> Path:
    """A page store of these URL → text pages (each with the store's ``header`` lines); returns the folder (index beside it)."""
    folder = tmp_path / "pages"
    folder.mkdir(parents=True)
    lines = ["n\turl\ttitle"]
    for number, (url, text) in enumerate(texts.items(), start=1):
        (folder / f"{number}.txt").write_text(f"{url}\n# title: a note of the store, not the page\n{header}\n{text}\n", encoding="utf-8")
        lines.append(f"{number}\t{url}\tinvented")
    (tmp_path / "pages_index.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def verify(package: Path, folder: Path, *extra: str):
    return CliRunner().invoke(main, ["verify-sources", str(package), "--pages", str(folder), *extra], catch_exceptions=False)


def findings(package: Path, folder: Path) -> list[tuple]:
    result = verify(package, folder, "--format", "json")
    assert result.exit_code in (0, 1), result.output
    return [(f["file"], f["line"], f["field"], f["rule_id"]) for f in json.loads(result.output)["findings"]]


def reports(package: Path) -> Path:
    return package / "data" / "reports.csv"


@pytest.fixture
def package(valid_package):
    set_cell(reports(valid_package), 3, "url", OTHER_URL)
    set_cell(reports(valid_package), 3, "published_date", "2023-12-30")
    return valid_package


def test_rows_that_agree_with_their_pages_give_no_finding(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE, OTHER_URL: OTHER_PAGE})
    result = verify(package, folder)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "valid: 2 reports; 0 errors, 0 warnings"


def test_a_wrong_figure_is_located_and_its_page_words_stay_out_of_json(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE.replace("three people", "four people"), OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "all_injured", "evidence/figure-not-on-page")]
    result = verify(package, folder, "--format", "json")
    assert "four people" not in result.output and "driver" not in result.output


def test_at_least_stored_as_exact_is_a_finding_with_the_page_words_on_the_terminal(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE.replace("three people", "at least 3 people"), OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "all_injured_qualifier", "evidence/qualifier-disagrees")]
    text = verify(package, folder, "--context").output
    assert "the row says exactly 3, but the page puts a qualifier (at_least) before 3" in text
    assert any(line.startswith("      page: ") and "his car and at least 3 people were hurt" in line for line in text.splitlines())
    assert "page:" not in verify(package, folder, "--no-context").output


def test_a_qualified_row_needs_its_qualifier_on_the_page(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE, OTHER_URL: OTHER_PAGE.replace("more than 100", "100")})
    assert findings(package, folder) == [("data/reports.csv", 3, "civilians_injured_qualifier", "evidence/qualifier-disagrees")]


def test_about_one_is_not_an_approximation(package, tmp_path):
    page = GOOD_PAGE.replace("One driver died", "The agency had news about one death")
    assert findings(package, store(tmp_path, {URL: page, OTHER_URL: OTHER_PAGE})) == []


def test_a_claimant_the_page_does_not_name(package, tmp_path):
    set_cell(reports(package), 2, "claimant", "Governor of the region Ivan Petrenko (Telegram)")
    set_cell(reports(package), 2, "claimant_type", "regional_authority")
    folder = store(tmp_path, {URL: GOOD_PAGE, OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "claimant", "evidence/claimant-not-on-page")]
    transliterated = store(tmp_path / "b", {URL: GOOD_PAGE + " Gouverneur Iwan Petrenkow sagte das.", OTHER_URL: OTHER_PAGE})
    assert findings(package, transliterated) == []


def test_a_publication_date_the_page_does_not_give(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE.replace("14 March 2024", "a Thursday"), OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "published_date", "evidence/date-not-on-page")]


@pytest.mark.parametrize("header, found", [
    ("# pub_date: 2024-03-14 12:42\n", []),  # the store records the page's own date: evidence
    ("# pub_date: 2024-03-14 (from URL)\n", []),
    ("# pub_date: 2024-03\n", [("data/reports.csv", 2, "published_date", "evidence/date-not-on-page")]),  # too coarse for a day
    ("# pub_date: 2024-03-15\n", [("data/reports.csv", 2, "published_date", "evidence/date-not-on-page")]),
    ("# pub_date: not in excerpt\n", [("data/reports.csv", 2, "published_date", "evidence/date-not-on-page")]),
    ("# note: 2024-03-14\n", [("data/reports.csv", 2, "published_date", "evidence/date-not-on-page")]),  # only pub_date counts
])
def test_the_page_stores_pub_date_header_is_evidence_of_the_publication_date(package, tmp_path, header, found):
    page = GOOD_PAGE.replace("14 March 2024", "a Thursday")
    assert findings(package, store(tmp_path, {URL: page, OTHER_URL: OTHER_PAGE}, header)) == found


def test_the_store_header_stays_out_of_the_text_and_a_single_page_file_has_no_header(tmp_path):
    folder = store(tmp_path, {URL: "Invented text, 3 hurt."}, "# pub_date: 2024-03-14 12:42\n# Publisher: Invented Daily\n")
    page = pages.PageStore.open(folder).get(URL)
    assert page.text == "Invented text, 3 hurt."
    assert page.meta == {"title": "a note of the store, not the page", "pub_date": "2024-03-14 12:42", "publisher": "Invented Daily"}
    saved = tmp_path / "saved.txt"
    saved.write_text("# pub_date: 2024-03-14\nInvented text.\n", encoding="utf-8")
    single = pages.PageStore.open(None).with_files([(URL, saved)]).get(URL)
    assert single.meta == {} and single.text == "Invented text."


def test_date_in_header_keeps_to_the_rows_precision():
    day = dt.date(2024, 3, 14)
    assert evidence.date_in_header(day, "day", {"pub_date": "2024-03-14 09:11"})
    assert evidence.date_in_header(day, "month", {"pub_date": "2024-03-02"}) and evidence.date_in_header(day, "year", {"pub_date": "2024"})
    assert not evidence.date_in_header(day, "day", {"pub_date": "2024-03"})
    assert not evidence.date_in_header(day, "day", {"pub_date": "2024-03-140"}) and not evidence.date_in_header(day, "day", {})


@pytest.mark.parametrize("claimant, url_host, found", [
    ("Unsigned post on example.org (no source named)", "example.org", []),  # the page is the claimant's own post
    ("Unsigned post on www.example.org", "example.org", []),
    ("A user of Invented Forum", "example.org", []),  # the source's name
    ("Unsigned post on example.net", "example.org", [("data/reports.csv", 3, "claimant", "evidence/claimant-not-on-page")]),
    ("Mayor Olena Invented (post on example.org)", "example.org", [("data/reports.csv", 3, "claimant", "evidence/claimant-not-on-page")]),
])
def test_a_claimant_who_is_the_pages_publisher_needs_no_name_on_it(package, tmp_path, claimant, url_host, found):
    forum = f"https://{url_host}/post/1"
    set_cell(reports(package), 3, "url", forum)
    set_cell(reports(package), 3, "source_id", "forum")
    set_cell(reports(package), 3, "claimant", claimant)
    set_cell(reports(package), 3, "claimant_type", "other")
    with (package / "data" / "sources.csv").open("a", encoding="utf-8") as out:
        out.write("forum,active,1,2026-11-26,Invented Forum,social_media,,example.org,Invented for a test.\n")
    assert findings(package, store(tmp_path, {URL: GOOD_PAGE, forum: OTHER_PAGE})) == found


@pytest.mark.parametrize("lang, killed, injured, sentence", [
    ("en", 21, 3, "Twenty-one people died and three were hurt, 14 March 2024."),
    ("de", 2, 1, "Am 14. März 2024 starben zwei Menschen, einer wurde verletzt."),
    ("de", 1, 120, "Am 14. März 2024 kam eine Frau ums Leben, hundertzwanzig wurden verletzt."),
    ("ru", 3, 2, "14 марта 2024 года погибли трое, ранения получили двое."),
    ("ru", 2, 5, "14 марта 2024 года погибли два человека, пострадали пятеро."),
    ("ru", 21, 2, "14 марта 2024 года число погибших достигло двадцати одного, госпитализированы двух человек."),
    ("uk", 7, 2, "14 березня 2024 року загинули семеро людей, поранено двох."),
    ("uk", 5, 3, "14 березня 2024 року загинули п'ять людей, серед поранених троє."),
    ("it", 1, 3, "Il 14 marzo 2024 è morta una donna e tre persone sono rimaste ferite."),
    ("it", 21, 4, "Il 14 marzo 2024 ventun morti e quattro feriti."),
])
def test_number_words_of_the_pages_language(package, tmp_path, lang, killed, injured, sentence):
    set_cell(reports(package), 2, "language", lang)
    set_cell(reports(package), 2, "all_killed", str(killed))
    set_cell(reports(package), 2, "all_injured", str(injured))
    assert findings(package, store(tmp_path, {URL: sentence, OTHER_URL: OTHER_PAGE})) == []
    set_cell(reports(package), 2, "all_killed", str(killed + 40))
    assert findings(package, store(tmp_path / "b", {URL: sentence, OTHER_URL: OTHER_PAGE})) == [
        ("data/reports.csv", 2, "all_killed", "evidence/figure-not-on-page")]


@pytest.mark.parametrize("lang, written, found", [
    ("en", "1,200", True), ("en", "1200", True), ("en", "1.200", False),
    ("de", "1.200", True), ("de", "1,200", False), ("it", "1.200", True),
    ("ru", "1\u202f200", True), ("ru", "1\u00a0200", True), ("uk", "1 200", True), ("ru", "1,200", False),
])
def test_thousands_separators_of_the_pages_language(package, tmp_path, lang, written, found):
    set_cell(reports(package), 2, "language", lang)
    set_cell(reports(package), 2, "all_injured", "1200")
    set_cell(reports(package), 2, "all_killed", "")
    set_cell(reports(package), 2, "all_killed_qualifier", "")
    set_cell(reports(package), 2, "published_precision", "year")
    page = f"2024: {written} hurt."
    expected = [] if found else [("data/reports.csv", 2, "all_injured", "evidence/figure-not-on-page")]
    assert findings(package, store(tmp_path, {URL: page, OTHER_URL: OTHER_PAGE})) == expected


def test_the_derivation_marker_silences_a_sum(package, tmp_path):
    page = "14 March 2024. One person died on the bridge; two more were hurt at the market and one at the station."
    folder = store(tmp_path, {URL: page, OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "all_injured", "evidence/figure-not-on-page")]
    set_cell(reports(package), 2, "figures_derived", "all_injured")
    set_cell(reports(package), 2, "notes", "Injured: the sum of the two places the page lists (two and one).")
    assert findings(package, folder) == []
    set_cell(reports(package), 2, "notes", "")  # a marker without its note: validate's to report (figures/derived-unexplained)
    assert findings(package, folder) == []


def test_a_page_that_cannot_be_had(package, tmp_path):
    folder = store(tmp_path, {OTHER_URL: OTHER_PAGE})
    assert findings(package, folder) == [("data/reports.csv", 2, "url", "evidence/page-unavailable")]
    result = verify(package, folder)
    assert result.exit_code == 1
    assert f"not in the page store {folder}; the archived and live pages were not fetched (pass --fetch)" in result.output


def test_a_page_file_given_on_the_command_line(package, tmp_path):
    folder = store(tmp_path, {OTHER_URL: OTHER_PAGE})
    saved = tmp_path / "saved.txt"
    saved.write_text(GOOD_PAGE, encoding="utf-8")
    assert verify(package, folder, "--page", URL, str(saved)).exit_code == 0


@pytest.mark.parametrize("index, message", [
    ("url\tn\n../../etc/passwd\thttps://x\n", "is not a page number"),
    ("number\taddress\n", "the page index needs the columns n and url"),
])
def test_a_bad_index_stops_with_its_place(package, tmp_path, index, message):
    folder = store(tmp_path, {})
    (tmp_path / "pages_index.tsv").write_text(index.replace("url\tn\n", "n\turl\n"), encoding="utf-8")
    result = verify(package, folder)
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {tmp_path / 'pages_index.tsv'}:") and message in result.output


class _Pages(http.server.BaseHTTPRequestHandler):
    """Serves ``routes`` (path → (status, content type, body)); counts requests."""

    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits.append(self.path)
        status, kind, body = type(self).routes.get(self.path, (404, "text/plain", b"gone"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def serving(routes: dict):
    handler = type("Handler", (_Pages,), {"routes": routes, "hits": []})
    with loopback(handler) as (base, _):
        yield base, handler


HTML = ("<html><head><title>Invented</title></head><body><nav>Home | World | Sport</nav><article><h1>Night of shelling</h1>"
        "<p>14 March 2024. One driver died in his car and three people were hurt when rockets fell on a street, the paper learned "
        "from people who live nearby and saw the aftermath of the attack in the morning.</p></article>"
        "<footer>Contact us</footer></body></html>").encode()


def test_fetch_reads_the_archived_capture_first_then_uses_the_cache(package, tmp_path):
    with serving({}) as (base, handler):
        capture = f"{base}/web/20240315080000/{URL}"
        handler.routes.update({f"/web/20240315080000id_/{URL}": (200, "text/html; charset=utf-8", HTML)})
        set_cell(reports(package), 2, "archive_url", capture)
        set_cell(reports(package), 2, "text_sha256", "0" * 64)
        folder = store(tmp_path, {OTHER_URL: OTHER_PAGE})
        cache = tmp_path / "cache"
        first = verify(package, folder, "--fetch", "--cache-dir", str(cache), "--format", "json")
        assert len(handler.hits) == 1
    got = [(f["line"], f["rule_id"], f["severity"]) for f in json.loads(first.output)["findings"]]
    assert got == [(2, "evidence/text-changed", "warning")]  # figures agree; the recorded fingerprint does not
    again = verify(package, folder, "--fetch", "--cache-dir", str(cache), "--format", "json")  # server gone: the cache answers
    assert json.loads(again.output)["findings"] == json.loads(first.output)["findings"]
    text = pages.normalise(pages.main_text(HTML, "text/html", "test"))
    set_cell(reports(package), 2, "text_sha256", pages.fingerprint(text))
    assert verify(package, folder, "--fetch", "--cache-dir", str(cache)).exit_code == 0


def test_fetch_failure_names_the_page_and_the_reason(package, tmp_path):
    with serving({}) as (base, _):
        live = f"{base}/story/1"
        set_cell(reports(package), 2, "url", live)
        folder = store(tmp_path, {OTHER_URL: OTHER_PAGE})
        result = verify(package, folder, "--fetch", "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 1
    assert f"data/reports.csv:2: url: the page's text cannot be had: not in the page store {folder}; live page: {live}: HTTP 404" in result.output


def test_the_fingerprint_ignores_only_whitespace_and_unicode_composition():
    a = "Zwei\u00a0Tote,  drei   Verletzte\r\n\r\n\ncafe\u0301 1\u202f200\n"
    assert pages.normalise(a) == "Zwei Tote, drei Verletzte\ncafé 1 200"
    assert pages.fingerprint(a) == pages.fingerprint("Zwei Tote, drei Verletzte\ncafé 1 200")
    assert pages.fingerprint(a) != pages.fingerprint("Zwei Tote, vier Verletzte\ncafé 1 200")


def test_the_real_claimants_name_rule():
    assert evidence.claimant_name("Governor of Kursk region Roman Starovoit (Telegram, as reported by AFP)") == "Starovoit"
    assert evidence.claimant_name("Governor of Kharkiv region (not named on the page), on Telegram") == "Kharkiv"
    assert evidence.claimant_name("BBC, as summarised by Newser") == "BBC"
    assert evidence.name_on_page("Gladkov", "Губернатор Гладков сообщил")


def test_hostile_rows_give_findings_or_one_error_line_never_a_traceback(package, tmp_path):
    folder = store(tmp_path, {URL: GOOD_PAGE, OTHER_URL: OTHER_PAGE})
    set_cell(reports(package), 2, "published_date", "2024-13-45")  # validate's to report
    set_cell(reports(package), 2, "all_killed", "9" * 40)
    assert findings(package, folder) == [("data/reports.csv", 2, "all_killed", "evidence/figure-not-on-page")]
    text = reports(package).read_text(encoding="utf-8")
    reports(package).write_text(text.replace(",url,", ",link,", 1), encoding="utf-8")
    result = verify(package, folder)
    assert result.exit_code == 2 and result.output == "Error: data/reports.csv: no column url; run civharm validate\n"
