"""Bounded downloads: sizes, time, redirects, signals and what `--force` may replace.

Every server here is a loopback HTTP server started and stopped by the test; its handlers
send at most a bounded amount and stop when the test ends.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

from civharm import loading
from civharm.findings import CivharmError
from conftest import build_package, loopback
from test_archive_limits import bomb, limits, ratio_error
from test_loading import VERSION, ZIP, ReleaseHandler, assert_nothing_left, invoke, publish, zip_package

SUMS = f"{VERSION}/SHA256SUMS"
ZIP_PATH = f"{VERSION}/{ZIP}"
STOP = threading.Event()  # set when a test ends: every slow handler returns


class Handler(ReleaseHandler):
    """Serves the site folder; a path in ``routes`` is answered by its function instead."""

    routes: dict = {}

    def do_GET(self):
        route = self.routes.get(self.path.lstrip("/"))
        if route is None:
            return super().do_GET()
        try:
            route(self)
        except OSError:  # the client gave up, as it should
            pass
        self.close_connection = True


def endless(handler, chunk=b"0" * 65536, most=64 << 20):
    """A 200 with no length and zeros until the client hangs up (at most 64 MiB)."""
    handler.send_response(200)
    handler.end_headers()
    for _ in range(most // len(chunk)):
        handler.wfile.write(chunk)


def announcing(length):
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(length))
        handler.end_headers()
    return route


def trickle(body: bytes, *, head: int = 0, pause: float = 0.05):
    """Send the first ``head`` bytes of ``body`` at once, then one byte per ``pause`` seconds."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[:head])
        handler.wfile.flush()
        for byte in body[head:]:
            if STOP.wait(pause):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
    return route


def trickled_status(handler):
    """The status line itself, one byte per 0.1 s: only an overall deadline stops this."""
    for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 2000:
        if STOP.wait(0.1):
            return
        handler.wfile.write(bytes([byte]))
        handler.wfile.flush()


def silent(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "100")
    handler.end_headers()
    handler.wfile.flush()
    STOP.wait(10)


def redirect(location):
    def route(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route


@pytest.fixture
def server(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    handler = type("Handler", (Handler,), {"routes": {}, "cut": set()})
    with loopback(partial(handler, directory=str(site))) as (base, _):
        STOP.clear()
        try:
            yield site, base, handler.routes
        finally:
            STOP.set()


@pytest.fixture(autouse=True)
def no_configured_location(monkeypatch, tmp_path):
    monkeypatch.delenv("CIVHARM_RELEASES_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def release_zip(tmp_path) -> bytes:
    return zip_package(build_package(tmp_path / "release-src"), tmp_path / "release.zip").read_bytes()


def test_download_works_where_an_event_loop_already_runs(server, release_zip, tmp_path):
    """As in a Jupyter notebook: the fetch's own event loop runs beside the caller's."""
    site, base, _ = server
    publish(site, release_zip)

    async def notebook_cell():
        return loading.download(VERSION, base, tmp_path / "out")

    assert asyncio.run(notebook_cell()).size == len(release_zip)
    assert (tmp_path / "out" / "datapackage.json").is_file()


# --- sizes over HTTP --------------------------------------------------------------------------


def test_endless_checksums_body_is_refused_at_the_limit(server, tmp_path):
    site, base, routes = server
    routes[SUMS] = endless
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == f"Error: {base}/{SUMS}: refusing the download: the body passed 1 MiB, the limit for SHA256SUMS\n"
    assert_nothing_left(out)


def test_announced_length_over_the_limit_is_refused_before_reading(server, release_zip, tmp_path):
    site, base, routes = server
    publish(site, release_zip)
    routes[ZIP_PATH] = announcing(10_000)
    out = tmp_path / "out"
    with pytest.raises(CivharmError) as caught:
        loading.download(VERSION, base, out / VERSION, limits=limits(zip_bytes=8 << 10))
    assert str(caught.value) == (f"{base}/{ZIP_PATH}: refusing the download: the server announces 10000 bytes, "
                                 "over 8 KiB, the limit for the release zip")
    assert_nothing_left(out)


def test_encoded_body_is_refused(server, tmp_path):
    site, base, routes = server

    def gzipped(handler):
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    routes[SUMS] = gzipped
    result = invoke("download", VERSION, "--base-url", base, "--to", str(tmp_path / "out" / VERSION))
    assert result.exit_code == 2
    assert result.output == f"Error: {base}/{SUMS}: refusing the download: the server sent it gzip-encoded; only plain bytes are read\n"


def test_a_full_disk_while_fetching_is_a_clear_error(server, release_zip):
    site, base, _ = server
    publish(site, release_zip)

    class FullDisk:
        def write(self, chunk):
            raise OSError(28, "No space left on device")

    with pytest.raises(CivharmError) as caught:
        loading._fetch(f"{base}/{SUMS}", FullDisk(), "SHA256SUMS", 1 << 20, limits(), time.monotonic() + 10)
    assert str(caught.value) == f"{base}/{SUMS}: cannot save it beside the target: No space left on device"


# --- zip bombs and unsafe members --------------------------------------------------------------


def test_zip_bomb_download_is_refused_and_nothing_is_left(server, tmp_path):
    site, base, _ = server
    path, info = bomb(tmp_path / "bomb.zip")
    publish(site, path.read_bytes())
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == f"Error: {ratio_error(f'{base}/{ZIP_PATH}', info)}\n"
    assert_nothing_left(out)


# --- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["body", "status line"])
def test_slow_server_hits_the_overall_deadline(route, server, release_zip, tmp_path):
    site, base, routes = server
    publish(site, release_zip)
    sums = (site / SUMS).read_bytes()
    routes[SUMS] = trickle(sums, head=10, pause=0.05) if route == "body" else trickled_status
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(CivharmError) as caught:
        loading.download(VERSION, base, out / VERSION, limits=limits(deadline_seconds=1, read_timeout_seconds=30))
    assert time.monotonic() - started < 5
    assert str(caught.value).startswith(f"{base}/{SUMS}: refusing the download: not finished within the deadline of 1 s (")
    assert str(caught.value).endswith(" bytes received)")
    assert_nothing_left(out)


def test_silent_server_hits_the_read_timeout(server, tmp_path):
    site, base, routes = server
    routes[SUMS] = silent
    out = tmp_path / "out"
    with pytest.raises(CivharmError) as caught:
        loading.download(VERSION, base, out / VERSION, limits=limits(read_timeout_seconds=0.5))
    assert str(caught.value) == f"{base}/{SUMS}: refusing the download: no data for 0.5 s (the limit per read)"
    assert_nothing_left(out)


# --- redirects --------------------------------------------------------------------------------


def test_redirect_to_another_host_is_refused_and_named(server, tmp_path):
    site, base, routes = server
    port = base.rsplit(":", 1)[1]
    routes[SUMS] = redirect(f"http://localhost:{port}/{SUMS}")
    out = tmp_path / "out"
    result = invoke("download", VERSION, "--base-url", base, "--to", str(out / VERSION))
    assert result.exit_code == 2
    assert result.output == (f"Error: {base}/{SUMS}: refusing the download: HTTP 302 redirect to http://localhost:{port}/{SUMS}, "
                             f"outside {base} (redirects are followed only within the same scheme, host and port)\n")
    assert_nothing_left(out)


def test_redirect_within_the_host_is_followed_and_a_loop_is_cut(server, release_zip, tmp_path):
    site, base, routes = server
    publish(site, release_zip)
    (site / "mirror").mkdir()
    (site / VERSION).rename(site / "mirror" / VERSION)
    routes[SUMS] = redirect(f"/mirror/{SUMS}")
    routes[ZIP_PATH] = redirect(f"{base}/mirror/{ZIP_PATH}")
    result = invoke("download", VERSION, "--base-url", base, "--to", str(tmp_path / "first"))
    assert result.exit_code == 0, result.output
    routes[SUMS] = redirect(f"/{SUMS}")
    with pytest.raises(CivharmError) as caught:
        loading.download(VERSION, base, tmp_path / "second", limits=limits(redirects=3))
    assert str(caught.value) == f"{base}/{SUMS}: refusing the download: more than 3 redirects (the limit)"
    assert not (tmp_path / "second").exists()


# --- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_download_leaves_no_temporary_file(signum, server, release_zip, tmp_path):
    site, base, routes = server
    publish(site, release_zip)
    routes[ZIP_PATH] = trickle(release_zip, head=1000, pause=0.05)
    out = tmp_path / "out"
    civharm_command = Path(sys.executable).with_name("civharm")
    process = subprocess.Popen([str(civharm_command), "download", VERSION, "--base-url", base, "--to", str(out / VERSION)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(f".{VERSION}.download.*/{ZIP}")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the zip is being fetched once its file exists
        assert process.poll() is None, "the download ended before it could be stopped"
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    name = signal.Signals(signum).name
    assert (process.returncode, stdout, stderr) == (128 + signum, b"", f"Error: download stopped by {name}; nothing was kept\n".encode())
    assert_nothing_left(out)


# --- --force ----------------------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_force_refuses_a_folder_download_did_not_make_and_keeps_it(server, release_zip, tmp_path):
    site, base, _ = server
    publish(site, release_zip)
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "field-notes.txt").write_text("An invented note that must survive.\n", encoding="utf-8")
    (home / ".profile").write_text("export EDITOR=vi\n", encoding="utf-8")
    before = snapshot(home)
    result = invoke("download", VERSION, "--base-url", base, "--to", str(home), "--force")
    assert result.exit_code == 2
    assert result.output == (f"Error: {home}: is not empty and holds no .civharm-download.json; refusing to replace it "
                             "(--force replaces only an empty folder or one unpacked by `civharm download`, which holds "
                             ".civharm-download.json); choose another --to\n")
    assert snapshot(home) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "release-src", "release.zip", "site"]


def test_force_refuses_a_file_and_a_symbolic_link(server, release_zip, tmp_path):
    site, base, _ = server
    publish(site, release_zip)
    plain = tmp_path / "plain.txt"
    plain.write_text("kept\n", encoding="utf-8")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "site")
    for target, why in ((plain, "is not a folder"), (link, "is a symbolic link")):
        with pytest.raises(CivharmError, match=f"^{target}: {why}; refusing to replace it "):
            loading.download(VERSION, base, target, force=True)
    assert plain.read_text(encoding="utf-8") == "kept\n"
    assert link.is_symlink() and (site / VERSION / ZIP).is_file()


def test_force_replaces_a_folder_download_made_or_an_empty_one(server, release_zip, tmp_path):
    site, base, _ = server
    publish(site, release_zip)
    target = tmp_path / "out" / VERSION
    assert invoke("download", VERSION, "--base-url", base, "--to", str(target)).exit_code == 0
    marker = json.loads((target / ".civharm-download.json").read_text(encoding="utf-8"))
    assert marker == {"version": VERSION, "url": f"{base}/{ZIP_PATH}", "size": len(release_zip),
                      "sha256": hashlib.sha256(release_zip).hexdigest()}
    (target / "data" / "incidents.csv").write_text("edited\n", encoding="utf-8")
    assert invoke("download", VERSION, "--base-url", base, "--to", str(target), "--force").exit_code == 0
    assert (target / "data" / "incidents.csv").read_bytes() != b"edited\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [VERSION]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke("download", VERSION, "--base-url", base, "--to", str(empty), "--force").exit_code == 0
    assert (empty / "datapackage.json").is_file()


@pytest.mark.parametrize("text, problem", [
    ("[" * 100_000 + "]" * 100_000, "1: JSON nested deeper than 64 levels"),
    ('{"civharm:releases": \n', "2: invalid JSON: Expecting value (column 1)"),
], ids=["nested-100000-deep", "not-json"])
def test_an_unreadable_descriptor_where_the_releases_address_is_read_is_named(text, problem, tmp_path, monkeypatch):
    """`civharm download` without a base URL reads the address from the descriptor of the package you are in:
    one nested 100,000 levels deep is refused by the bounded reader (not a RecursionError), located, exit 2."""
    (tmp_path / "datapackage.json").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = invoke("download", VERSION, "--to", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output == (f"Error: {tmp_path / 'datapackage.json'}:{problem}; the releases address (\"civharm:releases\") "
                             "is read from it: fix it, set CIVHARM_RELEASES_URL or pass --base-url\n")
    assert_nothing_left(tmp_path / "out")
