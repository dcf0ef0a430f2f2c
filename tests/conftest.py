"""Shared test helpers: build packages from the repo's schema plus fixture data and edits."""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
VALID_MINIMAL = FIXTURES / "packages" / "valid-minimal"
TODAY = "2026-11-26"


def newest_change_day(data_dir: Path = REPO / "data") -> str:
    """The newest last_updated or change_date in a data folder, or TODAY when that is later.

    Tests that validate the real data, or change it as a later correction would, count from
    this day: a fixed day would put every correction made after it in the future.
    """
    days = [TODAY]
    for path in sorted(data_dir.glob("*.csv")):
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
            days += [row[name] for name in ("last_updated", "change_date") if row.get(name)]
    return max(days)


DATA_TODAY = newest_change_day()


def build_package(target: Path, data_dir: Path = VALID_MINIMAL / "data") -> Path:
    """The repo's descriptor and schemas with the given data folder: a package to mutate."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "datapackage.json", target / "datapackage.json")
    shutil.copytree(REPO / "schema", target / "schema", dirs_exist_ok=True)
    shutil.copytree(data_dir, target / "data", dirs_exist_ok=True)
    return target


def set_cell(path: Path, line: int, field: str, value: str) -> None:
    """Set one cell, addressed by physical line (header = 1) and column name."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    column = rows[0].index(field)
    rows[line - 1][column] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")


def apply_edit(root: Path, edit: dict) -> None:
    """One declarative edit from a fixture's case.json."""
    path = root / edit["file"]
    kind = edit.get("kind", "cell")
    if kind == "cell":
        set_cell(path, edit["line"], edit["field"], edit["value"])
    elif kind == "replace":
        data = path.read_bytes()
        old, new = edit["old"].encode("utf-8"), edit["new"].encode("utf-8")
        assert old in data, f"{edit['old']!r} not in {edit['file']}"
        path.write_bytes(data.replace(old, new, edit.get("count", 1)))
    elif kind == "append":
        with path.open("ab") as out:
            out.write(edit["text"].encode("utf-8"))
    elif kind == "duplicate-line":
        lines = path.read_bytes().split(b"\n")
        lines.insert(edit["line"], lines[edit["line"] - 1])
        path.write_bytes(b"\n".join(lines))
    elif kind == "delete":
        path.unlink()
    elif kind == "write":
        path.write_bytes(edit["text"].encode("utf-8") if "text" in edit else bytes.fromhex(edit["hex"]))
    elif kind == "json":
        data = json.loads(path.read_text(encoding="utf-8"))
        node = data
        *parents, last = edit["pointer"].strip("/").split("/")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key = int(last) if isinstance(node, list) else last
        if "value" in edit:
            node[key] = edit["value"]
        else:
            del node[key]
        path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    elif kind == "repeat":  # generated text too long for case.json: `text` ("{i}" counts 0, 1, …) `times` times before `before`
        data = path.read_text(encoding="utf-8")
        assert edit["before"] in data, f"{edit['before']!r} not in {edit['file']}"
        inserted = "".join(edit["text"].replace("{i}", str(i)) for i in range(edit["times"]))
        path.write_text(data.replace(edit["before"], inserted + edit["before"], 1), encoding="utf-8")
    elif kind == "symlink":  # `file` becomes a symbolic link to `target` (relative to the link's folder)
        path.unlink(missing_ok=True)
        path.symlink_to(edit["target"])
    else:
        raise ValueError(kind)


def case_dirs(kind: str) -> list[Path]:
    return sorted(p for p in (FIXTURES / kind).rglob("case.json"))


def materialise(case_file: Path, tmp_path: Path) -> tuple[Path, dict]:
    case = json.loads(case_file.read_text(encoding="utf-8"))
    root = build_package(tmp_path / "pkg")
    for edit in case.get("edits", []):
        apply_edit(root, edit)
    return root, case


def child_environment(**extra: str) -> dict:
    """This process's environment for a child process: the code under test first, as this process has it."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO / "scripts")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


@pytest.fixture
def valid_package(tmp_path) -> Path:
    return build_package(tmp_path / "pkg")


class Outcomes:
    """``function(input)`` for every input, computed ahead in forked workers where possible.

    Validation costs about a CPU-second per package; the rule and malformed-package suites
    compute all their packages up front on every core instead of one after another.
    """

    def __init__(self, function, inputs: list, timeout: float):
        self.function, self.timeout = function, timeout
        self.pending, self.done, self.pool = {}, {}, None
        workers = min(4, os.cpu_count() or 1)
        if len(inputs) < 2 or workers < 2 or sys.platform != "linux":
            return  # computed on demand in this process
        self.done[inputs[0]] = function(inputs[0])  # warms imports and caches before forking
        self.pool = multiprocessing.get_context("fork").Pool(workers)
        self.pending = {item: self.pool.apply_async(function, (item,)) for item in inputs[1:]}

    def __getitem__(self, item) -> dict:
        if item not in self.done:
            pending = self.pending.pop(item, None)
            self.done[item] = pending.get(self.timeout) if pending is not None else self.function(item)
        return self.done[item]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


class TimedOut(BaseException):
    """Raised by the alarm; a BaseException so the CLI's last-resort handler cannot swallow it."""


@contextmanager
def time_limit(seconds: int):
    """Stop the block with ``TimedOut`` after ``seconds``: a run that never ends fails instead of hanging the suite."""
    def expire(signum, frame):
        raise TimedOut(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _thirdparty() -> Path:
    """The real third-party files (shared/thirdparty/): beside the clone in CI, in /work/shared on a workstation."""
    for candidate in (REPO.parent / "shared" / "thirdparty", Path("/work/shared/thirdparty")):
        if candidate.is_dir():
            return candidate
    return REPO.parent / "shared" / "thirdparty"  # missing: the tests that read it fail with its path


THIRDPARTY = _thirdparty()


@contextmanager
def loopback(handler):
    """An HTTP server on 127.0.0.1 (the port chosen by the OS) answering with ``handler`` on a
    thread for the block, then stopped: yields (base URL, server). The tests' only network."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
