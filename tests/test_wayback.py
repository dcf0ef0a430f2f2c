"""``civharm archive`` end to end against a Save Page Now stand-in on 127.0.0.1.

The stand-in answers ``POST /save``, ``GET /save/status/<job>`` and ``GET /web/<stamp>id_/<url>``
as the Wayback Machine's API does, with scripted failures. Pages are invented text.
"""
from __future__ import annotations

import csv
import datetime as dt
import http.server
import io
import json
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from civharm import history, pages, wayback
from civharm.cli import main
from civharm.package import load_package

STAMP = "20260101120000"
HTML = ("<html><body><article><h1>Invented page</h1><p>On 14 March 2024 one driver died and three people were hurt "
        "when rockets hit a street in the city centre, the paper learned from residents who saw it.</p></article></body></html>").encode()


class SavePageNowStandIn(http.server.BaseHTTPRequestHandler):
    """``script`` lists the answers to give in turn: (status, JSON body, headers); then the defaults."""

    def _answer(self, status: int, body: bytes, kind: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _scripted(self, key: str, default):
        server = self.server
        server.calls.append((self.command, self.path))
        queue = server.script.get(key, [])
        status, payload, headers = queue.pop(0) if queue else default
        self._answer(status, json.dumps(payload).encode(), headers=headers)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        self.server.submitted.append(self.rfile.read(length).decode())
        self._scripted("save", (200, {"url": "x", "job_id": "spn2-job-1"}, {}))

    def do_GET(self):  # noqa: N802
        if self.path.startswith("/save/status/"):
            self._scripted("status", (200, {"status": "success", "timestamp": STAMP, "original_url": self.server.original}, {}))
        elif self.path.startswith(f"/web/{STAMP}id_/"):
            self.server.calls.append((self.command, self.path))
            self._answer(200, HTML, "text/html; charset=utf-8")
        else:
            self._answer(404, b"{}")

    def log_message(self, *args):
        pass


@contextmanager
def stand_in(script: dict | None = None, original: str = ""):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SavePageNowStandIn)
    server.script, server.calls, server.submitted, server.original = script or {}, [], [], original
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "data").iterdir())}


def rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


FAST = dict(poll=0.01, backoff=0.01, max_wait=0.05, retries=3, deadline=0.5, timeout=5)


def run(package: Path, base: str, tmp_path: Path, **settings):
    return wayback.archive(load_package(package), wayback.Settings(base_url=base, **{**FAST, **settings}),
                           pages.Fetcher(tmp_path / "cache"), dt.date(2026, 12, 1), missing=False)


def test_archive_records_the_capture_and_logs_every_field(valid_package, tmp_path):
    url = rows(valid_package / "data" / "reports.csv")[0]["url"]
    before = load_package(valid_package)
    with stand_in({"status": [(200, {"status": "pending"}, {})]}, original=url) as (base, server):
        result = CliRunner().invoke(main, ["archive", str(valid_package), "--base-url", base, "--today", "2026-12-01",
                                           "--cache-dir", str(tmp_path / "cache")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert server.submitted == [f"url={url.replace(':', '%3A').replace('/', '%2F').replace(',', '%2C')}&skip_first_archive=1"]
    written = rows(valid_package / "data" / "reports.csv")
    expected_hash = pages.fingerprint(pages.main_text(HTML, "text/html", "test"))
    for row in written:  # both reports of valid-minimal are on the one page
        assert (row["archive_url"], row["archived_at"], row["text_sha256"]) == (f"{base}/web/{STAMP}/{url}", "2026-01-01T12:00:00Z", expected_hash)
        assert (row["record_version"], row["last_updated"]) == ("2", "2026-12-01")
    log = rows(valid_package / "data" / "changes.csv")
    assert sorted((c["record_id"], c["field"], c["record_version"]) for c in log) == sorted(
        (r["report_id"], name, "2") for r in written for name in wayback.FIELDS)
    assert history.check(before, load_package(valid_package)) == []  # versioned and logged as the history gate wants
    assert "1 pages captured; 2 reports updated" in result.output
    again = CliRunner().invoke(main, ["archive", str(valid_package), "--missing", "--base-url", base])
    assert again.exit_code == 0 and "0 pages captured; 0 reports updated; nothing to change" in again.output


def test_429_is_waited_out_then_the_capture_succeeds(valid_package, tmp_path):
    url = rows(valid_package / "data" / "reports.csv")[0]["url"]
    script = {"save": [(429, {"message": "slow down"}, {"Retry-After": "0"}), (503, {}, {})]}
    with stand_in(script, original=url) as (base, server):
        result = run(valid_package, base, tmp_path)
    assert [c for c in server.calls if c[0] == "POST"] == [("POST", "/save")] * 3
    assert len(result.captures) == 1 and result.reports_changed == 2


@pytest.mark.parametrize("script, message", [
    ({"save": [(503, {}, {})] * 10}, "still failing after 4 attempts (HTTP 503"),
    ({"status": [(200, {"status": "pending"}, {})] * 10_000}, "did not complete within 0.5 s"),
    ({"status": [(200, {"status": "error", "message": "the site refused the capture"}, {})]}, "the capture failed: the site refused the capture"),
    ({"save": [(400, {"message": "bad"}, {})]}, "answered HTTP 400"),
    ({"save": [(200, ["not", "an", "object"], {})]}, "not a JSON object"),
    ({"status": [(200, {"status": "success", "timestamp": "../../x"}, {})]}, "without a valid timestamp"),
    ({"status": [(200, {"status": "success", "timestamp": "20260101120001"}, {})]}, "the capture was made but cannot be read"),
])
def test_a_failure_leaves_data_byte_identical(valid_package, tmp_path, script, message):
    before = snapshot(valid_package)
    with stand_in(script) as (base, _):
        with pytest.raises(wayback.CivharmError, match="nothing written") as caught:
            run(valid_package, base, tmp_path)
    assert message in str(caught.value)
    assert snapshot(valid_package) == before


def test_the_cli_reports_a_failure_in_one_line_and_writes_nothing(valid_package, tmp_path):
    before = snapshot(valid_package)
    with stand_in({"status": [(200, {"status": "pending"}, {})] * 100}) as (base, _):
        result = CliRunner().invoke(main, ["archive", str(valid_package), "--base-url", base, "--deadline", "1",
                                           "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith("Error: ") and "did not complete within 1 s; nothing written" in result.output
    assert "Traceback" not in result.output
    assert snapshot(valid_package) == before


def test_a_failure_on_the_second_page_writes_nothing_of_the_first(valid_package, tmp_path):
    """Pages are captured one after another; the first one's results are not written when a later one fails."""
    from conftest import set_cell

    set_cell(valid_package / "data" / "reports.csv", 3, "url", "https://example.org/news/invented-second-page")
    before = snapshot(valid_package)
    script = {"status": [(200, {"status": "success", "timestamp": STAMP}, {}),
                         (200, {"status": "error", "message": "the second site refused"}, {})]}
    with stand_in(script) as (base, server):
        with pytest.raises(wayback.CivharmError, match="the second site refused; nothing written"):
            run(valid_package, base, tmp_path)
    assert [c for c in server.calls if c[0] == "POST"] == [("POST", "/save")] * 2
    assert any(path.startswith(f"/web/{STAMP}id_/") for _, path in server.calls)  # the first page was captured and read
    assert snapshot(valid_package) == before


def test_an_archive_that_cannot_be_reached_writes_nothing(valid_package, tmp_path):
    with stand_in() as (base, _):
        pass  # the server is stopped: its port refuses connections
    before = snapshot(valid_package)
    with pytest.raises(wayback.CivharmError, match="still failing after 4 attempts \\(cannot connect: .*\\); nothing written"):
        run(valid_package, base, tmp_path)
    assert snapshot(valid_package) == before


def test_verify_sources_reads_the_capture_archive_wrote_and_finds_its_fingerprint(valid_package, tmp_path):
    """archive, then verify-sources --fetch: the archived capture is read (not the live page) and its text still has its hash."""
    url = rows(valid_package / "data" / "reports.csv")[0]["url"]
    with stand_in(original=url) as (base, server):
        run(valid_package, base, tmp_path)
        server.calls.clear()
        result = CliRunner().invoke(main, ["verify-sources", str(valid_package), "--fetch", "--cache-dir", str(tmp_path / "fresh"),
                                           "--format", "json"], catch_exceptions=False)
    assert server.calls == [("GET", f"/web/{STAMP}id_/{url}")]
    found = [(f["line"], f["field"], f["rule_id"]) for f in json.loads(result.output)["findings"]]
    # line 2's figures are on the invented page; line 3's (another event on the same page) are not; no text-changed warning
    assert found == [(3, "civilians_injured", "evidence/figure-not-on-page"), (3, "civilians_killed", "evidence/figure-not-on-page")]
