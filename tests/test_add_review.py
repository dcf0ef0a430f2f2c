"""The review flow of civharm add (issue 14 §1): attach first, else one decision per pair with a reason.

Driven from a submission file (each candidate's decision in the file) and, as a contributor
would, in a terminal (a pseudo-terminal: the command cannot tell it from a person's).
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from civharm.cli import main
from civharm.package import load_package
from conftest import DATA_TODAY, REPO, build_package, child_environment

TYOTKINO_ID = "inc_01M8BY5YP18XB0CWW6XRD1PWN8"
INCIDENT = {"date_start": "2024-03-12", "date_end": "2024-03-12", "date_precision": "day", "date_basis": "stated",
            "country_code": "RU", "subdivision_code": "RU-KRS", "subdivision_name": "Kurskaya oblast'",
            "locality_en": "Tetkino", "location_precision": "area", "means_of_harm": "ground_fighting",
            "perpetrator_alleged": "unknown", "attribution_basis": "not_attributed", "confidence": "low",
            "summary": "Invented: the Tyotkino fighting entered again under another spelling."}
REPORT = {"source_id": "themoscowtimes", "url": "https://example.org/invented-page", "title": "Invented title", "language": "en",
          "published_date": "2024-03-14", "published_precision": "day", "accessed_date": "2026-11-26",
          "claimant": "Invented claimant", "claimant_type": "regional_authority", "as_of": "2024-03-14",
          "responsibility_claimed": "unknown", "civilians_killed": 1, "civilians_killed_qualifier": "exact"}
NOTE = "Invented: the pages of both name other streets."


@pytest.fixture
def real(tmp_path):
    return build_package(tmp_path / "real", REPO / "data")


def snapshot(root):
    return {p.name: p.read_bytes() for p in sorted((root / "data").glob("*.csv"))}


def submit(tmp_path, root, **extra):
    path = tmp_path / "submission.json"
    path.write_text(json.dumps({"incident": INCIDENT, "report": REPORT, **extra}, indent=1), encoding="utf-8")
    return path, CliRunner().invoke(main, ["add", str(path), "--package", str(root), "--today", DATA_TODAY], catch_exceptions=False)


def line_of(path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text in line)


# --- from a file: the decision per pair is in the file ----------------------------------------

def test_attach_to_puts_the_report_on_the_candidate_and_makes_no_incident(real, tmp_path):
    incidents = len(load_package(real)["incidents"].frame)
    _, result = submit(tmp_path, real, attach_to=TYOTKINO_ID)
    assert result.exit_code == 0, result.output
    package = load_package(real)
    reports = package["reports"].frame.set_index("report_id")
    assert reports.at[result.stdout.strip(), "incident_id"] == TYOTKINO_ID
    assert len(package["incidents"].frame) == incidents
    assert package["duplicate_decisions"].frame.empty


def test_distinct_from_records_one_decision_for_the_pair_with_its_reason_note_and_fingerprint(real, tmp_path):
    from civharm.validate import Options, run
    import datetime as dt

    _, result = submit(tmp_path, real, distinct_from=[{"incident": TYOTKINO_ID, "reason": "different_site", "note": NOTE}])
    assert result.exit_code == 0, result.output
    decisions = load_package(real)["duplicate_decisions"].frame
    assert len(decisions) == 1
    row = decisions.iloc[0]
    assert (row["decision"], row["reason"], row["note"]) == ("distinct", "different_site", NOTE)
    assert re.fullmatch(r"[0-9a-f]{16}", row["fingerprint"])
    assert TYOTKINO_ID in (row["incident_a"], row["incident_b"])
    assert run(real, Options(today=dt.date.fromisoformat(DATA_TODAY))).exit_code() == 0


def test_a_distinct_decision_without_a_reason_is_refused_where_it_is_written(real, tmp_path):
    before = snapshot(real)
    path, result = submit(tmp_path, real, distinct_from=[{"incident": TYOTKINO_ID, "note": NOTE}])
    assert result.exit_code == 2
    line = line_of(path, f'"incident": "{TYOTKINO_ID}"') - 1  # the entry's mapping opens on the line before
    assert result.output == (f"Error: {path}:{line}: distinct_from[0]: reason: no reason given; say what tells the two apart: "
                             "one of different_site, different_time_of_day, different_means, different_victims\n")
    assert snapshot(real) == before


@pytest.mark.parametrize("reason", ["checked", "recorded_apart_by_source"])  # the second is an importer's, not a person's
def test_a_reason_outside_the_vocabulary_is_refused(real, tmp_path, reason):
    _, result = submit(tmp_path, real, distinct_from=[{"incident": TYOTKINO_ID, "reason": reason, "note": NOTE}])
    assert result.exit_code == 2 and f"{reason!r} is not a reason" in result.output


def test_no_decision_covers_several_pairs_or_a_pair_that_is_no_candidate(real, tmp_path):
    """The blanket flag is gone, and a decision names one candidate: another incident, or one named twice, is refused."""
    before = snapshot(real)
    blanket = CliRunner().invoke(main, ["add", "x.yaml", "--package", str(real), "--yes", "--distinct-note", "Checked all of them."])
    assert blanket.exit_code == 2 and "No such option" in blanket.output
    other = load_package(real)["incidents"].frame["incident_id"].loc[lambda s: s != TYOTKINO_ID].iloc[0]
    _, result = submit(tmp_path, real, distinct_from=[{"incident": other, "reason": "different_site", "note": NOTE}])
    assert result.exit_code == 2
    assert f"{other} is not a duplicate candidate of this statement (candidates: {TYOTKINO_ID})" in result.output
    twice = [{"incident": TYOTKINO_ID, "reason": "different_site", "note": NOTE}] * 2
    _, result = submit(tmp_path, real, distinct_from=twice)
    assert result.exit_code == 2 and f"{TYOTKINO_ID} is decided twice" in result.output
    _, result = submit(tmp_path, real, attach_to=TYOTKINO_ID, distinct_from=twice[:1])
    assert result.exit_code == 2 and "attach_to" in result.output and "both given" in result.output
    assert snapshot(real) == before


def test_supersedes_marks_the_earlier_report_and_logs_it(tmp_path):
    root = build_package(tmp_path / "minimal")
    earlier = "rep_01M8BXYJ9P0XGT2FTQ1QYM61M7"  # valid-minimal's report on its first incident
    path = tmp_path / "update.json"
    report = dict(REPORT, source_id="dailywrap", claimant="Daily Wrap (unattributed figures)", claimant_type="media_outlet",
                  civilians_killed=None, civilians_killed_qualifier=None, all_killed=2, all_killed_qualifier="exact")
    path.write_text(json.dumps({"incident": "inc_01M8BXYJ9JXC1F8JK54GB4ADWP", "supersedes": [earlier],
                                "report": {k: v for k, v in report.items() if v is not None}}), encoding="utf-8")
    result = CliRunner().invoke(main, ["add", str(path), "--package", str(root), "--today", DATA_TODAY], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    package = load_package(root)
    new = result.stdout.strip()
    old = package["reports"].frame.set_index("report_id").loc[earlier]
    assert old["superseded_by"] == new and old["record_version"] == "2"
    changes = package["changes"].frame
    logged = changes[(changes["record_id"] == earlier) & (changes["field"] == "superseded_by")]
    assert logged["new_value"].tolist() == [new] and logged["record_version"].tolist() == ["2"]


def test_the_python_api_refuses_a_new_incident_left_undecided_and_records_each_pair(real):
    """``civharm add`` is a thin layer: the same decisions through ``contribute`` (issue 16)."""
    import datetime as dt

    from civharm import contribute, submission
    from civharm.findings import CivharmError

    package = load_package(real)
    day = dt.date.fromisoformat(DATA_TODAY)
    built = contribute.plan(package, submission.Submission.from_mapping({"incident": INCIDENT, "report": REPORT}, "api"), day)
    assert [built.other(c) for c in built.candidates] == [TYOTKINO_ID]
    with pytest.raises(CivharmError, match=f"no decision for candidate\\(s\\) {TYOTKINO_ID}: attach the statement"):
        contribute.decide(package, built, [], day)
    submission = submission.Submission.from_mapping(
        {"incident": INCIDENT, "report": REPORT, "distinct_from": [{"incident": TYOTKINO_ID, "reason": "different_means", "note": NOTE}]}, "api")
    built = contribute.plan(package, submission, day)
    contribute.decide(package, built, submission.distinct_from, day)
    written = built.files[real / "data" / "duplicate_decisions.csv"].splitlines()
    assert len(written) == 2 and ",distinct,different_means," in written[1]


# --- in a terminal: the questions start from the page -----------------------------------------

class Terminal:
    """``civharm add`` on a pseudo-terminal, answered line by line after the expected question."""

    def __init__(self, root):
        self.master, slave = pty.openpty()
        code = "import sys; from civharm.cli import main; sys.argv[0] = 'civharm'; main()"
        self.process = subprocess.Popen([sys.executable, "-c", code, "add", "--package", str(root), "--today", DATA_TODAY],
                                        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                                        env=child_environment(COLUMNS="200", TERM="dumb"))
        os.close(slave)
        self.seen = ""
        self.at = 0

    def expect(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen[self.at:]:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.master], [], [], left)[0]:
                raise AssertionError(f"no {text!r} within {timeout} s; the terminal shows:\n{self.seen[-3000:]}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the other side closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"the command ended before {text!r}; the terminal shows:\n{self.seen[-3000:]}")
            self.seen += chunk.decode("utf-8", "replace").replace("\r\n", "\n")
        start = self.at
        self.at = self.seen.index(text, self.at) + len(text)
        return self.seen[start:self.at]

    def answer(self, question: str, text: str = "") -> str:
        shown = self.expect(question)
        os.write(self.master, text.encode("utf-8") + b"\n")
        return shown

    def finish(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    self.seen += os.read(self.master, 65536).decode("utf-8", "replace").replace("\r\n", "\n")
                except OSError:
                    break
        code = self.process.wait(timeout=max(1, deadline - time.monotonic()))
        os.close(self.master)
        return code


def _up_to_the_candidates(term: Terminal) -> str:
    """Answer as a newcomer would, from the page to the classification; returns what the terminal showed."""
    shown = term.answer("URL of the page", "https://www.themoscowtimes.com/2024/03/12/invented-test-page")
    shown += term.answer("Is that the publisher?", "")
    shown += term.answer("title of the page", "Invented test title")
    shown += term.answer("language of the page", "")
    shown += term.answer("published_date", "2024-03-12")
    shown += term.answer("accessed_date", "")
    shown += term.answer("country_code of the place", "RU")
    shown += term.answer("place (town or village", "Tetkino")
    shown += term.answer("in the page's language", "")
    shown += term.answer("which one", "")
    shown += term.answer("subdivision_code", "")
    shown += term.answer("site_type", "")
    shown += term.answer("date (YYYY-MM-DD, YYYY-MM", "12 March")
    shown += term.answer("date (YYYY-MM-DD, YYYY-MM", "")
    shown += term.answer("date_basis", "")
    shown += term.answer("time_of_day", "")
    shown += term.answer("civilians killed:", "one or two")
    shown += term.answer("civilians killed:", "at least 1")
    for label in ("civilians injured", "children killed", "children injured", "people killed", "people injured"):
        shown += term.answer(label, "")
    shown += term.answer("claimant (who gives", "Invented claimant")
    shown += term.answer("claimant_type", "regional_authority")
    shown += term.answer("as_of", "")
    shown += term.answer("responsibility_claimed", "")
    shown += term.answer("notes", "")
    shown += term.answer("means_of_harm", "ground_fighting")
    shown += term.answer("perpetrator_alleged", "")
    shown += term.answer("attribution_basis", "")
    shown += term.answer("confidence", "")
    shown += term.answer("summary (what happened", "short")
    shown += term.answer("summary (what happened", "Invented: fighting at the border village.")
    return shown


def test_in_a_terminal_the_statement_is_attached_to_the_candidate_offered_first(real):
    term = Terminal(real)
    shown = _up_to_the_candidates(term)
    assert "Existing incident ID" not in shown  # a newcomer is never asked for an ID first
    assert "Publisher: The Moscow Times (themoscowtimes), a known source." in shown
    assert "(GeoNames 483166), subdivision RU-KRS" in shown, shown  # the gazetteer, with the subdivision to confirm
    assert "'12 March' is not YYYY-MM-DD, YYYY-MM, YYYY or a range" in shown  # a refusal says why
    assert "'one or two': give the number as the page words it" in shown
    assert "a summary has at least 10 characters" in shown
    review = term.answer("choice [1]", "")
    assert f"[1] {TYOTKINO_ID}: match probability" in review and "this statement" in review
    assert f"  1  incident {TYOTKINO_ID}: attach the report to it (the same event)" in review
    assert review.index("attach the report") < review.index("a new incident, distinct from")
    term.answer("Does the page report damage", "")
    term.answer("Write?", "")
    assert term.finish() == 0, term.seen[-3000:]
    package = load_package(real)
    reports = package["reports"].frame
    added = reports[reports["url"] == "https://www.themoscowtimes.com/2024/03/12/invented-test-page"]
    assert added["incident_id"].tolist() == [TYOTKINO_ID]
    assert (added["civilians_killed"].tolist(), added["civilians_killed_qualifier"].tolist()) == (["1"], ["at_least"])
    assert package["duplicate_decisions"].frame.empty


def test_in_a_terminal_a_new_incident_is_told_apart_from_the_candidate_with_a_reason(real):
    term = Terminal(real)
    _up_to_the_candidates(term)
    term.answer("choice [1]", "n")
    term.answer(f"reason for {TYOTKINO_ID}:", "because")
    shown = term.answer(f"reason for {TYOTKINO_ID}:", "different_site")
    assert "'because' is not a reason: one of different_site" in shown
    term.answer(f"note for {TYOTKINO_ID}", NOTE)
    term.answer("Does the page report damage", "")
    term.answer("Write?", "")
    assert term.finish() == 0, term.seen[-3000:]
    decisions = load_package(real)["duplicate_decisions"].frame
    assert decisions[["decision", "reason", "note"]].values.tolist() == [["distinct", "different_site", NOTE]]
    incidents = load_package(real)["incidents"].frame.set_index("incident_id")
    new = (set(decisions[["incident_a", "incident_b"]].iloc[0]) - {TYOTKINO_ID}).pop()
    row = incidents.loc[new]
    assert (row["date_start"], row["date_end"], row["date_precision"]) == ("2024-03-12", "2024-03-12", "day")  # date_end defaults
    assert (row["geonames_id"], row["subdivision_code"], row["location_precision"]) == ("483166", "RU-KRS", "locality")


def test_in_a_terminal_a_statement_attached_to_an_incident_is_asked_whether_it_updates_the_same_originators_report(tmp_path, monkeypatch):
    from civharm import cli

    root = build_package(tmp_path / "minimal")
    earlier = "rep_01M8BXYJ9P0XGT2FTQ1QYM61M7"  # Daily Wrap on valid-minimal's Belgorod incident of 14 March 2024
    monkeypatch.setattr(cli, "stdin_is_terminal", lambda: True)
    answers = ["https://dailywrap.uk/invented-update-page", "", "Invented update", "", "2024-03-15", "",  # the page
               "RU", "Belgorod", "", "", "", "",  # the place: the first GeoNames match, its subdivision, no site
               "2024-03-14", "", "",  # the date
               "", "", "", "", "2", "",  # the figures: 2 killed, civilian or not said
               "Daily Wrap (unattributed figures)", "media_outlet", "", "", "",
               "rocket_mlrs", "", "", "", "Invented: a later toll of the rocket fire.",
               "",  # attach to the candidate offered first
               "y",  # it updates the earlier report of the same originator
               "", ""]  # no damage; write
    result = CliRunner().invoke(main, ["add", "--package", str(root), "--today", DATA_TODAY], input="\n".join(answers) + "\n",
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"Report {earlier} of the same originator (Daily Wrap (unattributed figures))" in result.output
    new = result.stdout.strip().splitlines()[-1]
    reports = load_package(root)["reports"].frame.set_index("report_id")
    assert reports.at[new, "incident_id"] == "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"
    assert reports.at[earlier, "superseded_by"] == new
