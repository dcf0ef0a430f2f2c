"""The text of a report's page: where it is read from, how it is normalised and fingerprinted.

Where the text comes from, in this order (``read``):

1. the local page store: a folder of ``<n>.txt`` files and a TSV index with columns ``n`` and
   ``url`` (more columns are ignored). A page file's first line is its URL; the ``# key: value``
   lines after it are the store's header, not the page's text: they record what the page shows
   outside the stored excerpt (its title, publisher, and ``pub_date``, the publication date as
   the page gives it, e.g. in its byline). They are kept apart from the text, as ``Page.meta``,
   and ``verify-sources`` accepts ``pub_date`` as evidence of the publication date;
2. the archived capture (``archive_url``), fetched raw (without the archive's banner);
3. the live page (``url``).

2 and 3 touch the network, so only when the caller allows it; every response is kept in an
on-disk cache so a second run reads nothing again. Reads are bounded in size and time. HTML
is reduced to its main text by trafilatura; the text is then normalised once (``normalise``)
and its SHA-256 is the page's fingerprint (``fingerprint``), the value of ``text_sha256``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import tempfile
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .findings import CivharmError

MAX_PAGE_BYTES = 8 << 20  # a news page's HTML is well under this; a bigger answer is not a page
TIMEOUT_SECONDS = 30.0
CHUNK = 1 << 16
USER_AGENT = "civharm-verify-sources (+https://github.com/civharm; checks stated figures against their page)"
HEADER_LINE = re.compile(r"^# (?P<key>[A-Za-z][\w-]{0,40}): (?P<value>.{0,500})$")  # the store's header: "# pub_date: 2024-03-12 14:25"
WAYBACK_CAPTURE = re.compile(r"^(?P<head>https?://[^/]+/web/)(?P<stamp>\d{4,14})(?:[a-z]{2}_)?/(?P<url>.+)$")


def normalise(text: str) -> str:
    """The one normalisation of page text: Unicode NFC, each whitespace run one space, blank lines dropped.

    Declared once, because ``text_sha256`` is the hash of exactly this: the same page read
    twice (or extracted by another trafilatura release that only moves whitespace) must give
    the same fingerprint, and a no-break space between digit groups reads as a plain space.
    """
    lines = (" ".join(line.split()) for line in unicodedata.normalize("NFC", text).splitlines())
    return "\n".join(line for line in lines if line)


def fingerprint(text: str) -> str:
    """SHA-256 (hex) of the normalised text: the value ``text_sha256`` holds."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Page:
    """A page's normalised text and where it was read (``origin`` is shown in messages)."""

    url: str
    text: str
    kind: str  # "store", "archive" or "live"
    origin: str
    meta: dict[str, str] = field(default_factory=dict, compare=False)  # a page store's header (``# key: value``), by lower-case key


class Unavailable(Exception):
    """The page's text cannot be had from this source; the message says why, for the report."""


def _url_key(url: str) -> str:
    """A URL as the index and the data may both write it: scheme and ``www.`` ignored, no trailing slash."""
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    return f"{host}{parts.path.rstrip('/')}" + (f"?{parts.query}" if parts.query else "")


class PageStore:
    """Excerpts of pages kept on disk: ``folder/<n>.txt``, found through the index's ``url`` → ``n``."""

    def __init__(self, folder: Path | None, files: dict[str, Path], single: dict[str, Path] | None = None):
        self.folder, self.files, self.single = folder, files, single or {}

    def with_files(self, pairs) -> "PageStore":
        """This store plus single page files given as (URL, path): whole files of page text, no URL line needed."""
        return PageStore(self.folder, self.files, {**self.single, **{_url_key(url): Path(path) for url, path in pairs}})

    @classmethod
    def open(cls, folder: str | Path | None, index: str | Path | None = None) -> "PageStore":
        """Read the index (default: ``pages_index.tsv`` beside the folder); a bad index stops the run with its place."""
        if folder is None:
            return cls(None, {})
        folder = Path(folder)
        index = Path(index) if index else folder.parent / "pages_index.tsv"
        if not folder.is_dir():
            raise CivharmError(f"{folder}: no page store here (expected a folder of <n>.txt files)")
        try:
            text = index.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CivharmError(f"{index}: cannot read the page index: {exc}")
        rows = csv.reader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, [])
        if "n" not in header or "url" not in header:
            raise CivharmError(f"{index}:1: the page index needs the columns n and url (tab-separated)")
        n_at, url_at = header.index("n"), header.index("url")
        files: dict[str, Path] = {}
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(n_at, url_at):
                raise CivharmError(f"{index}:{line}: n, url: the row has {len(row)} cells, fewer than the header")
            number, url = row[n_at].strip(), row[url_at].strip()
            if not re.fullmatch(r"[0-9]{1,9}", number):  # a number, never a path: the file stays in the folder
                raise CivharmError(f"{index}:{line}: n: {number[:40]!r} is not a page number")
            files.setdefault(_url_key(url), folder / f"{number}.txt")
        return cls(folder, files)

    def get(self, url: str) -> Page:
        single = self.single.get(_url_key(url))
        path = single or self.files.get(_url_key(url))
        if path is None:
            raise Unavailable(f"not in the page store {self.folder}" if self.folder else "no page file given for it")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_PAGE_BYTES + 1)
        except OSError as exc:
            raise Unavailable(f"{path}: cannot read: {exc.strerror or exc}")
        if len(data) > MAX_PAGE_BYTES:
            raise Unavailable(f"{path}: larger than {MAX_PAGE_BYTES >> 20} MiB")
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise Unavailable(f"{path}: not UTF-8 text (byte {exc.start})")
        if single is None and (not lines or _url_key(lines[0]) != _url_key(url)):
            raise Unavailable(f"{path}: its first line is not the page's URL")
        body = lines if single is not None else lines[1:]
        meta: dict[str, str] = {}
        while body and (body[0].startswith("# ") or not body[0].strip()):
            header = HEADER_LINE.match(body[0])
            if header and single is None:  # a single page file is all page text: its "# " lines are not the store's
                meta.setdefault(header["key"].casefold(), header["value"].strip())
            body = body[1:]
        return Page(url, normalise("\n".join(body)), "store", str(path), meta)


def main_text(body: bytes, content_type: str, where: str) -> str:
    """The main text of an HTML page (trafilatura), or a plain-text body as it is."""
    charset = re.search(r"charset=([\w.-]+)", content_type or "")
    if "html" in (content_type or "").lower() or body.lstrip()[:1] == b"<":
        import trafilatura

        text = trafilatura.extract(body, include_comments=False, include_tables=True, favor_recall=True)
        if not text:
            raise Unavailable(f"{where}: no main text could be extracted from the HTML")
        return text
    try:
        return body.decode(charset.group(1) if charset else "utf-8")
    except (LookupError, UnicodeDecodeError):
        raise Unavailable(f"{where}: the body is not text in its declared encoding")


def raw_capture_url(archive_url: str) -> str:
    """A Wayback Machine capture's address for the archived bytes themselves (``id_``: no banner, no rewritten links)."""
    match = WAYBACK_CAPTURE.match(archive_url)
    return f"{match['head']}{match['stamp']}id_/{match['url']}" if match else archive_url


class Fetcher:
    """HTTP(S) GET with a timeout, a size limit and an on-disk cache of successful answers."""

    def __init__(self, cache_dir: str | Path, timeout: float = TIMEOUT_SECONDS, opener=None):
        self.cache_dir, self.timeout = Path(cache_dir), timeout
        self.opener = opener or urllib.request.build_opener()

    def _cached(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode("utf-8")).hexdigest()  # the URL never becomes a path
        return self.cache_dir / f"{key}.body", self.cache_dir / f"{key}.json"

    def get(self, url: str) -> tuple[bytes, str]:
        """The body and content type of ``url``, from the cache when it was fetched before."""
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise Unavailable(f"{url[:80]}: not an http(s) URL")
        body_path, meta_path = self._cached(url)
        if body_path.exists() and meta_path.exists():
            try:
                return body_path.read_bytes(), json.loads(meta_path.read_text(encoding="utf-8"))["content_type"]
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache entry: fetch again
        body, content_type = self._fetch(url)
        self._store(body_path, body)
        self._store(meta_path, json.dumps({"url": url, "content_type": content_type}).encode("utf-8"))
        return body, content_type

    def _fetch(self, url: str) -> tuple[bytes, str]:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        deadline = time.monotonic() + self.timeout
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                chunks, size = [], 0
                while chunk := response.read(CHUNK):
                    size += len(chunk)
                    if size > MAX_PAGE_BYTES:
                        raise Unavailable(f"{url}: larger than {MAX_PAGE_BYTES >> 20} MiB")
                    if time.monotonic() > deadline:
                        raise Unavailable(f"{url}: not read within {self.timeout:g} s")
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise Unavailable(f"{url}: HTTP {exc.code} {exc.reason}")
        except urllib.error.URLError as exc:
            raise Unavailable(f"{url}: cannot connect: {exc.reason}")
        except (TimeoutError, OSError) as exc:
            raise Unavailable(f"{url}: {type(exc).__name__}: {exc}")

    def _store(self, path: Path, data: bytes) -> None:
        """Write a cache file whole or not at all (a temporary file and a rename)."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.cache_dir, prefix=".", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(name, path)

    def page(self, url: str, kind: str, address: str | None = None) -> Page:
        """The page at ``address`` (default ``url``) as normalised main text."""
        address = address or url
        body, content_type = self.get(address)
        return Page(url, normalise(main_text(body, content_type, address)), kind, address)


def read(url: str, archive_url: str | None, store: PageStore | None, fetcher: Fetcher | None) -> Page:
    """The page's text from the first source that has it: store, archived capture, live page.

    Raises ``Unavailable`` naming what was tried and why each failed.
    """
    reasons = []
    if store is not None:
        try:
            return store.get(url)
        except Unavailable as exc:
            reasons.append(str(exc))
    if fetcher is None:
        reasons.append("the archived and live pages were not fetched (pass --fetch)")
        raise Unavailable("; ".join(reasons))
    if archive_url:
        try:
            return fetcher.page(url, "archive", raw_capture_url(archive_url))
        except Unavailable as exc:
            reasons.append(f"archived capture: {exc}")
    try:
        return fetcher.page(url, "live")
    except Unavailable as exc:
        reasons.append(f"live page: {exc}")
    raise Unavailable("; ".join(reasons))
