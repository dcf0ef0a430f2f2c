"""Fetch a published release and load any copy of the package as typed pandas tables.

``download`` fetches ``<base>/<VERSION>/SHA256SUMS`` and ``<base>/<VERSION>/civharm-<VERSION>.zip``
(a base holding ``{version}`` names the folder itself, as GitHub's
``…/releases/download/v{version}`` does),
checks the zip's length and checksum, and unpacks it into the cache (or a chosen folder)
through a temporary folder beside the target and one rename: a bad checksum, a cut connection,
an unsafe zip or a limit passed (``civharm.limits``: sizes, deadline, redirects) leaves nothing
behind. The folder gets a ``.civharm-download.json`` marker; ``--force`` replaces only such a
folder or an empty one. The base URL comes from ``--base-url``, the ``CIVHARM_RELEASES_URL``
environment variable (read here only), or the ``civharm:releases`` address in the descriptor of
the package you are in; there is no built-in default.

``load`` turns the repository, a folder, a release zip or a downloaded version into one
DataFrame per table, typed from the schema.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from .archive import CHECKSUMS, unpack
from .atomic import refuse_if_interrupted
from .figures import active, carrier_of
from .findings import CivharmError
from .limits import LIMITS, Limits, parse_json, size_text
from .package import DESCRIPTOR, load_package
from .versions import refuse_committed_journal

RELEASES_URL_ENV = "CIVHARM_RELEASES_URL"
RELEASES_KEY = "civharm:releases"  # in datapackage.json: where `civharm release`'s files are published, set by the maintainers
MARKER = ".civharm-download.json"  # written by download into the folder it unpacked
VERSION_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.+-]*)?")


def release_zip_name(version: str) -> str:
    return f"civharm-{version}.zip"


def cache_dir(version: str | None = None) -> Path:
    """Where downloaded versions live: ``$XDG_CACHE_HOME/civharm`` (default ``~/.cache/civharm``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "civharm"
    return base / version if version else base


def _published_at(start: Path) -> str:
    """The releases address the maintainers set in the nearest descriptor (``civharm:releases``), or ''."""
    for folder in [start, *start.parents]:
        if (folder / DESCRIPTOR).is_file():
            try:
                descriptor = parse_json((folder / DESCRIPTOR).read_text(encoding="utf-8"), str(folder / DESCRIPTOR))
            except (OSError, ValueError):
                return ""
            except CivharmError as exc:  # too deep, a huge number or not JSON: say so, not "no release location"
                raise CivharmError(f"{exc}; the releases address (\"{RELEASES_KEY}\") is read from it: fix it, "
                                   f"set {RELEASES_URL_ENV} or pass --base-url")
            value = descriptor.get(RELEASES_KEY) if isinstance(descriptor, dict) else None
            return value.strip() if isinstance(value, str) and value.strip().startswith(("https://", "http://")) else ""
    return ""


def release_location(base_url: str | None = None) -> str:
    """The base URL of the releases: ``--base-url``, then ``$CIVHARM_RELEASES_URL``, then the address the
    descriptor of the package you are in publishes to (``civharm:releases``); never a guess."""
    base = (base_url or os.environ.get(RELEASES_URL_ENV) or "").strip() or _published_at(Path.cwd())
    if not base:
        raise CivharmError(f"no release location configured: set \"{RELEASES_KEY}\" in {DESCRIPTOR}, "
                           f"set {RELEASES_URL_ENV} or pass --base-url")
    return base.rstrip("/")


def _check_version(version: str) -> None:
    if not VERSION_PATTERN.fullmatch(version) or ".." in version:
        raise CivharmError(f"{version!r} is not a release version (expected e.g. 1.0.0)")


# --- fetching ---------------------------------------------------------------------------------


@dataclass
class _Transfer:
    """One URL being fetched: what it is, its cap, and what has arrived so far (for messages)."""

    url: str
    what: str
    cap: int
    size: int = 0
    expected: int | None = None

    def refuse(self, why: str) -> CivharmError:
        return CivharmError(f"{self.url}: refusing the download: {why}")

    def cut(self) -> CivharmError:
        of = f" of {self.expected}" if self.expected is not None else ""
        return CivharmError(f"{self.url}: connection cut after {self.size}{of} bytes")


def _redirect(transfer: _Transfer, first: httpx.URL, response: httpx.Response) -> httpx.URL:
    """Where a redirect points, if it stays on the scheme, host and port first asked."""
    location = response.headers["location"]  # is_redirect means it is there
    try:
        target = response.url.join(location)
    except httpx.InvalidURL:
        raise transfer.refuse(f"HTTP {response.status_code} redirect to an invalid location {location[:200]!r}")
    origin = f"{first.scheme}://{first.netloc.decode('ascii')}"
    if (target.scheme, target.host, target.port) != (first.scheme, first.host, first.port):
        raise transfer.refuse(f"HTTP {response.status_code} redirect to {str(target)[:300]}, outside {origin} "
                              "(redirects are followed only within the same scheme, host and port)")
    return target


async def _body(transfer: _Transfer, response: httpx.Response, out, digest) -> None:
    """Copy the response body into ``out`` as it arrives, up to the transfer's cap."""
    if response.status_code != 200:
        raise CivharmError(f"{transfer.url}: HTTP {response.status_code} {response.reason_phrase}")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise transfer.refuse(f"the server sent it {encoding}-encoded; only plain bytes are read")
    header = response.headers.get("content-length", "")
    transfer.expected = int(header) if header.isdigit() else None
    limit = f"{size_text(transfer.cap)}, the limit for {transfer.what}"
    if transfer.expected is not None and transfer.expected > transfer.cap:
        raise transfer.refuse(f"the server announces {transfer.expected} bytes, over {limit}")
    async for chunk in response.aiter_raw():  # as it arrives, so a cut says how much came
        transfer.size += len(chunk)
        if transfer.size > transfer.cap:
            raise transfer.refuse(f"the body passed {limit}")
        digest.update(chunk)
        out.write(chunk)
    if transfer.expected is not None and transfer.size != transfer.expected:
        raise transfer.cut()


async def _stream(transfer: _Transfer, out, digest, limits: Limits) -> None:
    """GET the URL without following redirects on its own, then copy the body."""
    first = httpx.URL(transfer.url)
    client = httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(limits.read_timeout_seconds),
                               headers={"Accept-Encoding": "identity"})
    async with client:
        current = first
        for _ in range(limits.redirects + 1):
            async with client.stream("GET", current) as response:
                if not response.is_redirect:
                    return await _body(transfer, response, out, digest)
                current = _redirect(transfer, first, response)
    raise transfer.refuse(f"more than {limits.redirects} redirects (the limit)")


def _run(coroutine) -> None:
    """``asyncio.run``, in a helper thread when this thread already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _fetch(url: str, out, what: str, cap: int, limits: Limits, deadline: float) -> tuple[int, str]:
    """Copy one URL into a binary file object; return (bytes, sha256), or refuse it.

    httpx (already installed with datasette) is used rather than urllib because it follows no
    redirect unless asked, reads the body undecoded and in chunks, and runs under
    ``asyncio.timeout``, whose deadline covers every step (connecting, headers, body): a
    per-read timeout alone lets a server that sends one byte at a time run for hours.
    """
    transfer = _Transfer(url, what, cap)
    digest = hashlib.sha256()

    async def bounded() -> None:
        async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
            await _stream(transfer, out, digest, limits)

    try:
        _run(bounded())
    except TimeoutError:
        raise transfer.refuse(f"not finished within the deadline of {limits.deadline_seconds:g} s "
                              f"({transfer.size} bytes received)")
    except httpx.TimeoutException:
        raise transfer.refuse(f"no data for {limits.read_timeout_seconds:g} s (the limit per read)")
    except httpx.ConnectError as exc:
        raise CivharmError(f"cannot reach {url}: {exc}")
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise transfer.cut() if transfer.expected is not None or transfer.size else CivharmError(f"cannot fetch {url}: {exc}")
    except httpx.UnsupportedProtocol:
        raise CivharmError(f"cannot fetch {url}: only http:// and https:// addresses are read")
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise CivharmError(f"cannot fetch {url}: {exc}")
    except OSError as exc:  # writing: the network's errors are httpx's
        raise CivharmError(f"{url}: cannot save it beside the target: {exc.strerror or exc}")
    return transfer.size, digest.hexdigest()


def parse_checksums(text: str, display: str) -> dict[str, str]:
    """``<sha256>  <name>`` lines (as written by sha256sum, ``*name`` for binary mode) → {name: hex}."""
    sums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.strip())
        if not match:
            raise CivharmError(f"{display}:{number}: not a '<sha256>  <file>' line: {line[:80]!r}")
        sums[match.group(2)] = match.group(1).lower()
    return sums


# --- download ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Downloaded:
    """What ``download`` did: where the package is, and what was checked."""

    version: str
    target: Path
    url: str
    size: int
    sha256: str
    fetched: bool  # False when the target was already there and nothing was fetched


def _make_parent(path: Path) -> list[Path]:
    """Create the missing ancestors of ``path``; return them, deepest first, to undo on failure."""
    created = []
    for ancestor in [path.parent, *path.parent.parents]:
        if ancestor.exists():
            break
        created.append(ancestor)
    path.parent.mkdir(parents=True, exist_ok=True)
    return created


def _not_replaceable(target: Path) -> str | None:
    """Why ``--force`` may not replace the target; None for an empty folder or one download unpacked."""
    if target.is_symlink():
        return "is a symbolic link"
    if not target.is_dir():
        return "is not a folder"
    marker = target / MARKER
    if marker.is_file() and not marker.is_symlink():
        return None
    if next(target.iterdir(), None) is None:
        return None
    return f"is not empty and holds no {MARKER}"


def _already_there(target: Path, force: bool) -> bool:
    """True when the target holds a package and no --force was given; an error when it must not be replaced."""
    if not os.path.lexists(target):
        return False
    if not force and (target / DESCRIPTOR).is_file():
        return True
    why = _not_replaceable(target)
    if why:
        raise CivharmError(f"{target}: {why}; refusing to replace it (--force replaces only an empty folder or one "
                           f"unpacked by `civharm download`, which holds {MARKER}); choose another --to")
    if not force:
        raise CivharmError(f"{target}: exists and holds no {DESCRIPTOR}; pass --force to replace it or choose another --to")
    return False


def _replace_dir(new: Path, target: Path, staging: Path) -> None:
    """Put ``new`` at ``target``; an existing target moves into ``staging`` (removed with it), back on failure."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = staging / "replaced"
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise


def download(version: str, base_url: str | None = None, to: str | Path | None = None, *,
             force: bool = False, limits: Limits = LIMITS) -> Downloaded:
    """Fetch, verify and unpack one release; all or nothing, within ``limits``.

    Any exception, KeyboardInterrupt included, removes the temporary folder beside the target
    (``civharm download`` turns SIGTERM into an exception for the same reason).
    """
    base = release_location(base_url)
    _check_version(version)
    target = Path(to) if to is not None else cache_dir(version)
    name = release_zip_name(version)
    folder = base.replace("{version}", version) if "{version}" in base else f"{base}/{version}"
    url = f"{folder}/{name}"
    sums_url = f"{folder}/{CHECKSUMS}"
    if _already_there(target, force):
        return Downloaded(version, target, url, 0, "", fetched=False)

    deadline = time.monotonic() + limits.deadline_seconds
    created = _make_parent(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.download.", dir=target.parent))
    done = False
    try:
        sums_path = staging / CHECKSUMS
        with sums_path.open("wb") as out:
            _fetch(sums_url, out, CHECKSUMS, limits.checksums_bytes, limits, deadline)
        try:
            sums = parse_checksums(sums_path.read_text(encoding="utf-8"), sums_url)
        except UnicodeDecodeError:
            raise CivharmError(f"{sums_url}: not a text file")
        if name not in sums:
            raise CivharmError(f"{sums_url}: does not list {name}")
        zip_path = staging / name
        with zip_path.open("wb") as out:
            size, digest = _fetch(url, out, "the release zip", limits.zip_bytes, limits, deadline)
        if digest != sums[name]:
            raise CivharmError(f"{url}: checksum mismatch (SHA256SUMS says {sums[name]}, the file has {digest}); nothing was kept")
        unpacked = staging / "unpacked"
        unpacked.mkdir()
        root = unpack(zip_path, unpacked, display=url, limits=limits)
        record = {"version": version, "url": url, "size": size, "sha256": digest}
        (root / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _replace_dir(root, target, staging)
        done = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in [] if done else created:
            try:
                folder.rmdir()
            except OSError:
                break
    return Downloaded(version, target, url, size, digest, fetched=True)


# --- load -------------------------------------------------------------------------------------


def _find_repository(start: Path) -> Path:
    for folder in [start, *start.parents]:
        if (folder / DESCRIPTOR).is_file():
            return folder
    raise CivharmError(f"no {DESCRIPTOR} in {start} or any folder above it; pass a folder, a release zip or a version")


def _typed_tables(path: Path, display: str) -> dict[str, pd.DataFrame]:
    package = load_package(path)
    refuse_committed_journal(package.root)
    refuse_if_interrupted(package.root)  # half-written files are not data to hand out
    if package.findings:
        first = package.findings[0]
        more = f" (and {len(package.findings) - 1} more)" if len(package.findings) > 1 else ""
        raise CivharmError(f"{display}: cannot load: {first.as_text()}{more}; run `civharm validate` for details")
    return {name: resource.typed.reset_index(drop=True) for name, resource in package.resources.items()}


def _active_only(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = dict(tables)
    incidents = tables.get("incidents")
    if incidents is None:
        return out
    kept_incidents = incidents[active(incidents)]
    out["incidents"] = kept_incidents.reset_index(drop=True)
    reports = tables.get("reports")
    if reports is None:
        return out
    carrier = carrier_of(incidents.drop_duplicates("incident_id"))
    carried_by_active = reports["incident_id"].map(carrier).isin(set(kept_incidents["incident_id"].dropna()))
    kept = reports[active(reports) & carried_by_active.fillna(False).to_numpy(dtype=bool)]
    out["reports"] = kept.reset_index(drop=True)
    damage = tables.get("damage")
    if damage is not None:
        keep = active(damage) & damage["report_id"].isin(set(kept["report_id"].dropna())).to_numpy(dtype=bool)
        out["damage"] = damage[keep].reset_index(drop=True)
    return out


def load(path_or_version: str | os.PathLike | None = None, *, active_only: bool = False) -> dict[str, pd.DataFrame]:
    """Load the package as ``{table name: DataFrame}``, typed from the schema.

    ``path_or_version`` is one of:

    - ``None``: the repository you are in (the nearest ``datapackage.json`` at or above the
      current directory);
    - a folder or a ``datapackage.json``;
    - a release zip (``….zip``), read without unpacking it anywhere lasting;
    - a version such as ``"1.0.0"``, fetched before by ``civharm download 1.0.0`` into the cache.

    Types follow the schema: integer → ``Int64`` (nullable), number → ``Float64``,
    date → ``datetime64``, string → ``string``; an empty cell is ``<NA>``, never 0. The data
    is not validated here: run ``civharm validate`` for that.

    ``active_only=True`` keeps the incidents with status ``active``, the active reports
    that count toward one of them, and the active damage rows of those reports. A merged
    incident's reports count toward the incident it was merged into (as in the figure rule,
    ``civharm.figures.carrier_of``), so they are kept when that target is active, with their
    ``incident_id`` unchanged. Superseded reports stay (they are still in force as statements;
    the figure rule skips them). ``sources`` and ``changes`` are returned whole.
    """
    if path_or_version is None:
        tables = _typed_tables(_find_repository(Path.cwd()), DESCRIPTOR)
    else:
        given = str(path_or_version)
        path = Path(path_or_version)
        if path.suffix.lower() == ".zip":
            if not path.is_file():
                raise CivharmError(f"{given}: file not found")
            with tempfile.TemporaryDirectory(prefix="civharm-load-") as folder:
                tables = _typed_tables(unpack(path, Path(folder), display=given), given)  # within civharm.limits
        elif path.exists():
            tables = _typed_tables(path, given)
        elif isinstance(path_or_version, str) and VERSION_PATTERN.fullmatch(given):
            folder = cache_dir(given)
            if not (folder / DESCRIPTOR).is_file():
                raise CivharmError(f"version {given} is not downloaded (looked in {folder}); run `civharm download {given}` first")
            tables = _typed_tables(folder, given)
        else:
            raise CivharmError(f"{given}: no such folder, file or downloaded version")
    return _active_only(tables) if active_only else tables
