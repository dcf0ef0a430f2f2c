"""``civharm archive``: capture report pages in the Wayback Machine and record where and what was read.

Each distinct page of the active reports (with ``missing``: those without ``archive_url``) is
submitted to Save Page Now (SPN2: ``POST {base}/save``, then ``GET {base}/save/status/<job>``
until the capture is done). Its capture is then read raw, its main text normalised and hashed
(``pages.fingerprint``). ``archive_url``, ``archived_at`` and ``text_sha256`` of every report on
that page are set, each report's ``record_version`` raised and every changed field logged in
the corrections log, and both files are written together (``atomic.write_files``).

Bounds: a 429 or 5xx answer (or a dropped connection) is retried ``retries`` times with
exponential backoff, waiting at most ``max_wait`` seconds even when ``Retry-After`` asks for
more; a capture not done by ``deadline`` seconds after it was submitted fails. Any failure
stops the run before anything is written: data/ stays byte-identical.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import pages
from .atomic import write_files
from .findings import CivharmError
from .ids import new_id
from .package import Package

DEFAULT_BASE_URL = "https://web.archive.org"
BASE_URL_ENV = "CIVHARM_ARCHIVE_URL"
KEYS_ENV = ("CIVHARM_SPN_ACCESS_KEY", "CIVHARM_SPN_SECRET_KEY")  # optional: SPN2 allows more captures with them
FIELDS = ("archive_url", "archived_at", "text_sha256")
MAX_ANSWER_BYTES = 1 << 20
REASON = "Page captured in the Wayback Machine by `civharm archive`; text_sha256 fingerprints the capture's main text."


@dataclass(frozen=True)
class Settings:
    """How patient the client is; tests shrink every number."""

    base_url: str = DEFAULT_BASE_URL
    deadline: float = 300.0  # seconds from submission to a finished capture
    poll: float = 5.0
    retries: int = 5
    backoff: float = 2.0
    max_wait: float = 60.0
    timeout: float = 30.0


@dataclass(frozen=True)
class Capture:
    url: str
    archive_url: str
    archived_at: str  # YYYY-MM-DDTHH:MM:SSZ
    text_sha256: str


class SavePageNow:
    """A Save Page Now client with retries, backoff and a deadline per capture."""

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.settings, self.sleep, self.clock = settings, sleep, clock
        self.base = settings.base_url.rstrip("/")
        if urllib.parse.urlsplit(self.base).scheme not in ("http", "https"):
            raise CivharmError(f"{settings.base_url!r}: the archive's base URL must be http(s)")
        self.opener = urllib.request.build_opener()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": pages.USER_AGENT}
        access, secret = (os.environ.get(name, "") for name in KEYS_ENV)
        if access and secret:
            headers["Authorization"] = f"LOW {access}:{secret}"
        return headers

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        seconds = self.settings.backoff * 2 ** attempt
        if retry_after and retry_after.strip().isdigit():
            seconds = float(retry_after.strip())
        self.sleep(min(seconds, self.settings.max_wait))

    def _call(self, path: str, form: dict | None = None) -> dict:
        """One API call answered with a JSON object; 429, 5xx and network errors are retried with backoff."""
        url = f"{self.base}{path}"
        data = urllib.parse.urlencode(form).encode("ascii") if form is not None else None
        problem, retry_after = "", None  # what the last failed attempt said, read before the next one
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._wait(attempt - 1, retry_after)
            retry_after = None
            try:
                request = urllib.request.Request(url, data=data, headers=self._headers(), method="POST" if form is not None else "GET")
                with self.opener.open(request, timeout=self.settings.timeout) as response:
                    body = response.read(MAX_ANSWER_BYTES + 1)
            except urllib.error.HTTPError as exc:
                if exc.code == 429 or exc.code >= 500:
                    problem, retry_after = f"HTTP {exc.code} {exc.reason}", exc.headers.get("Retry-After")
                    continue
                raise CivharmError(f"{url}: Save Page Now answered HTTP {exc.code} {exc.reason}; nothing written")
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                problem = f"cannot connect: {getattr(exc, 'reason', exc)}"
                continue
            return self._json(url, body)
        raise CivharmError(f"{url}: Save Page Now still failing after {self.settings.retries + 1} attempts ({problem}); nothing written")

    @staticmethod
    def _json(url: str, body: bytes) -> dict:
        if len(body) > MAX_ANSWER_BYTES:
            raise CivharmError(f"{url}: Save Page Now's answer is larger than {MAX_ANSWER_BYTES >> 20} MiB; nothing written")
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise CivharmError(f"{url}: Save Page Now's answer is not JSON; nothing written")
        if not isinstance(answer, dict):
            raise CivharmError(f"{url}: Save Page Now's answer is not a JSON object; nothing written")
        return answer

    def capture(self, url: str) -> tuple[str, str]:
        """Submit ``url`` and wait for its capture: (timestamp YYYYMMDDhhmmss, original URL)."""
        started = self.clock()
        job = self._call("/save", {"url": url, "skip_first_archive": "1"})
        job_id = job.get("job_id")
        if not isinstance(job_id, str) or not job_id or len(job_id) > 200:
            raise CivharmError(f"{url}: Save Page Now refused it: {str(job.get('message') or job)[:200]}; nothing written")
        status_path = f"/save/status/{urllib.parse.quote(job_id, safe='')}"
        while True:
            status = self._call(status_path)
            state = status.get("status")
            if state == "success":
                stamp, original = str(status.get("timestamp", "")), status.get("original_url") or url
                if len(stamp) != 14 or not stamp.isdigit():
                    raise CivharmError(f"{url}: Save Page Now reported a capture without a valid timestamp; nothing written")
                return stamp, str(original)
            if state != "pending":
                raise CivharmError(f"{url}: the capture failed: {str(status.get('message') or status.get('status_ext') or state)[:200]}; nothing written")
            if self.clock() - started + self.settings.poll > self.settings.deadline:
                raise CivharmError(f"{url}: the capture (job {job_id[:60]}) did not complete within {self.settings.deadline:g} s; nothing written")
            self.sleep(self.settings.poll)


def _capture(client: SavePageNow, fetcher: pages.Fetcher, url: str) -> Capture:
    stamp, original = client.capture(url)
    archive_url = f"{client.base}/web/{stamp}/{original}"
    try:
        page = fetcher.page(url, "archive", pages.raw_capture_url(archive_url))
    except pages.Unavailable as exc:
        raise CivharmError(f"{url}: the capture was made but cannot be read: {exc}; nothing written")
    moment = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S").strftime("%Y-%m-%dT%H:%M:%SZ")
    return Capture(url, archive_url, moment, pages.fingerprint(page.text))


@dataclass
class Plan:
    captures: list[Capture] = field(default_factory=list)
    files: dict[Path, str] = field(default_factory=dict)
    reports_changed: int = 0


def _table(package: Package, name: str) -> tuple[Path, list[str], list[list[str]]]:
    resource = package.get(name)
    if resource is None or resource.raw is None:
        raise CivharmError(f"the package has no readable {name} table; run civharm validate")
    path = package.root / resource.path
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    if not rows:
        raise CivharmError(f"{resource.path}: empty; run civharm validate")
    return path, rows[0], rows[1:]


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def plan(package: Package, client: SavePageNow, fetcher: pages.Fetcher, today: dt.date, missing: bool,
         progress: Callable[[str], None] = lambda _: None) -> Plan:
    """Capture the pages and work out both files as they will be written; writes nothing."""
    reports_path, header, rows = _table(package, "reports")
    changes_path, log_header, _ = _table(package, "changes")
    needed = ["report_id", "status", "record_version", "last_updated", "url", *FIELDS]
    absent = [name for name in needed if name not in header]
    if absent:
        raise CivharmError(f"{package['reports'].path}: no column {', '.join(absent)}; run civharm validate")
    at = {name: header.index(name) for name in needed}
    chosen = [row for row in rows if len(row) == len(header) and row[at["status"]] == "active"
              and not (missing and row[at["archive_url"]])]
    result = Plan()
    by_url = {}
    for url in dict.fromkeys(row[at["url"]] for row in chosen):
        progress(f"archiving {url}")
        by_url[url] = _capture(client, fetcher, url)
        result.captures.append(by_url[url])
    log = []
    for row in chosen:
        capture = by_url[row[at["url"]]]
        new = dict(zip(FIELDS, (capture.archive_url, capture.archived_at, capture.text_sha256)))
        changed = [name for name in FIELDS if row[at[name]] != new[name]]
        if not changed:
            continue
        if not row[at["record_version"]].isdigit():
            raise CivharmError(f"{package['reports'].path}: report {row[at['report_id']]} has no valid record_version; run civharm validate")
        version = str(int(row[at["record_version"]]) + 1)
        for name in changed:
            entry = {"change_id": new_id("changes"), "change_date": today.isoformat(), "table": "reports",
                     "record_id": row[at["report_id"]], "record_version": version, "field": name,
                     "old_value": row[at[name]], "new_value": new[name], "reason": REASON, "report_id": ""}
            log.append([entry.get(column, "") for column in log_header])
            row[at[name]] = new[name]
        row[at["record_version"]], row[at["last_updated"]] = version, today.isoformat()
        result.reports_changed += 1
    if log:
        old_log = changes_path.read_text(encoding="utf-8")
        result.files = {reports_path: _csv([header, *rows]),
                        changes_path: old_log + ("" if old_log.endswith("\n") or not old_log else "\n") + _csv(log)}
    return result


def archive(package: Package, settings: Settings, fetcher: pages.Fetcher, today: dt.date, missing: bool,
            progress: Callable[[str], None] = lambda _: None, client: SavePageNow | None = None) -> Plan:
    """Capture, then write reports.csv and the corrections log together, or nothing."""
    result = plan(package, client or SavePageNow(settings), fetcher, today, missing, progress)
    if result.files:
        write_files(package.root, result.files)
    return result
