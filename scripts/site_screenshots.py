"""Screenshots of the civharm site for the README, and the headless-Chromium driver the site's tests use.

    PYTHONPATH=scripts python scripts/site_screenshots.py        # rewrite docs/screenshot-*.png
    PYTHONPATH=scripts python scripts/site_screenshots.py --check  # exit 1 when one is stale

It runs ``civharm serve`` on a free loopback port and Debian's ``chromium`` at 1400×1000.
Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): six
protocol methods, no extra package. (Playwright would do it, but its wheel is 54 MB with its own
Node runtime and is built against its own Chromium builds, while CI installs Debian's.)

Each PNG carries ``civharm:data``, the sha256 of what the page shows (the site's templates and
plugin, the Datasette metadata, and the rows the page reads from the release database, without
the build date), so a
test can tell that a screenshot no longer shows the data without running a browser, as it does
for docs/chart.png.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 1400, 1000
DATA_KEY = "civharm:data"
# The incident shown: several claimants, a corrected record, a range with an open top.
INCIDENT = "inc_01M8BY4Z1QKGH4MQDMDY28VR3P"
SHOTS = {"docs/screenshot-home.png": "/", "docs/screenshot-incidents.png": "/civharm/incidents_browse",
         "docs/screenshot-incident.png": f"/civharm/incidents/{INCIDENT}"}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--remote-debugging-pipe",
         # loopback only: the map's tiles (OpenStreetMap) fail at once, so pages and pictures never depend on the network
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium tab, driven over the DevTools protocol on file descriptors 3 and 4."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire():  # the child's fd 3 reads commands, fd 4 writes replies
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wire,
                                        pass_fds=(3, 4))  # kept open after wire() put the pipes there
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.timeout, self._id, self._buffer, self.events = timeout, 0, b"", []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1,
                                                          "mobile": False}, session=True)

    def _read(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("Chromium stopped answering")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        command = {"id": self._id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(command).encode() + b"\0")
        while True:
            message = self._read()
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def open(self, url: str, ready: str = "true") -> None:
        """Load ``url`` and wait until its document is parsed and the JavaScript expression ``ready`` is true.

        Not the load event: that waits for every image, map tiles included.
        """
        self.call("Page.navigate", {"url": url}, session=True)
        check = f"location.href === {json.dumps(url)} && document.readyState !== 'loading' && !!({ready})"
        deadline = time.monotonic() + self.timeout
        while not self.evaluate(check):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url}: not ready ({ready})")
            time.sleep(0.2)
        self.events.clear()

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except RuntimeError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``civharm serve PACKAGE`` on a free loopback port, stopped by ``stop``."""

    def __init__(self, package: Path, civharm: str | None = None, timeout: float = 120):
        self.port = free_port()
        command = civharm or str(Path(sys.executable).with_name("civharm"))
        self.process = subprocess.Popen([command, "serve", str(package), "--port", str(self.port)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.base + "/", timeout=2).read()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"civharm serve did not start: {self.process.stderr.read().decode()[-2000:]}")
                time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- what each screenshot shows ----------------------------------------------------------------

MAP_DRAWN = "document.querySelectorAll('.leaflet-marker-icon').length > 0"
READY = {"docs/screenshot-incidents.png": MAP_DRAWN}
QUERIES = {
    "docs/screenshot-home.png": ["SELECT key, value FROM _package WHERE key NOT IN ('created', 'provenance') ORDER BY key",
                                 "SELECT status, count(*) FROM incidents GROUP BY status ORDER BY status",
                                 "SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM sources), (SELECT count(*) FROM changes)"],
    "docs/screenshot-incidents.png": ["SELECT * FROM incidents_browse"],
    "docs/screenshot-incident.png": ["SELECT * FROM incidents WHERE incident_id = :id",
                                     "SELECT * FROM reports WHERE incident_id = :id ORDER BY report_id",
                                     "SELECT * FROM changes WHERE record_id = :id OR record_id IN "
                                     "(SELECT report_id FROM reports WHERE incident_id = :id) ORDER BY change_id"],
}


def data_hashes(package: Path) -> dict[str, str]:
    """sha256 per screenshot of the site files, the Datasette metadata and the rows its page reads from the database."""
    from civharm import browse, serve
    from civharm.package import load_package

    site = hashlib.sha256()
    for relative, data in browse.site_files():
        site.update(relative.encode() + b"\0" + data)
    loaded = load_package(package)
    site.update(json.dumps(serve.metadata(loaded), sort_keys=True, ensure_ascii=False).encode())  # titles, column help
    with tempfile.TemporaryDirectory(prefix="civharm-shots-") as folder:
        path = serve.prepare_database(loaded, Path(folder) / "civharm.db")
        db = sqlite3.connect(path)
        try:
            out = {}
            for shot, queries in QUERIES.items():
                digest = hashlib.sha256(site.digest())
                for sql in queries:
                    rows = db.execute(sql, {"id": INCIDENT} if ":id" in sql else {}).fetchall()
                    digest.update(json.dumps(rows, ensure_ascii=False, default=str).encode())
                out[shot] = digest.hexdigest()
            return out
        finally:
            db.close()


def embedded(png: bytes) -> str | None:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return (getattr(image, "text", {}) or {}).get(DATA_KEY)


def stale(package: Path = REPO) -> list[str]:
    """The committed screenshots that no longer show the data (missing ones included)."""
    hashes = data_hashes(package)
    return [shot for shot, digest in hashes.items()
            if not (REPO / shot).exists() or embedded((REPO / shot).read_bytes()) != digest]


def with_key(png: bytes, digest: str) -> bytes:
    info = PngInfo()
    info.add_text(DATA_KEY, digest)
    out = io.BytesIO()
    with Image.open(io.BytesIO(png)) as image:
        image.convert("RGB").save(out, format="png", pnginfo=info, optimize=True)
    return out.getvalue()


def take(package: Path = REPO, out: Path = REPO) -> list[Path]:
    executable = chromium()
    if executable is None:
        raise SystemExit("chromium is not installed (Debian: apt-get install chromium)")
    hashes = data_hashes(package)
    server = Server(package)
    written = []
    try:
        with tempfile.TemporaryDirectory(prefix="civharm-chromium-") as profile:
            browser = Browser(executable, Path(profile))
            try:
                for shot, path in SHOTS.items():
                    browser.open(server.base + path, READY.get(shot, "true"))
                    time.sleep(1)  # let the map's marker animation settle
                    target = out / shot
                    target.write_bytes(with_key(browser.screenshot(), hashes[shot]))
                    written.append(target)
            finally:
                browser.close()
    finally:
        server.stop()
    return written


def main(argv: list[str]) -> int:
    if "--check" in argv:
        old = stale()
        for shot in old:
            print(f"{shot}: out of date; run `python scripts/site_screenshots.py`", file=sys.stderr)
        return 1 if old else 0
    for path in take():
        print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
