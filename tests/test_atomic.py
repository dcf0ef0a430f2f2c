"""Writes into a package: one writer at a time (the lock), all or nothing across a crash (the journal).

The crash tests kill a real process with SIGKILL: a child patches ``os.replace``, ``os.link``
and ``os.unlink`` so that its k-th call on a path in the package kills it first, for every k of
a whole write. The next command must leave the package byte-identical to before or after the
write, with no temporary file left.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from filelock import FileLock

from civharm import atomic, load
from civharm.cli import main
from civharm.findings import CivharmError
from conftest import TODAY, build_package, child_environment, set_cell

INCIDENT = "inc_01M8BXYJ9JXC1F8JK54GB4ADWP"  # in valid-minimal
REPORT = {"source_id": "dailywrap", "url": "https://example.org/invented-page", "title": "Invented test title",
          "language": "en", "published_date": "2024-03-14", "published_precision": "day", "accessed_date": "2026-11-26",
          "claimant": "Invented claimant", "claimant_type": "regional_authority", "as_of": "2024-03-14",
          "responsibility_claimed": "unknown", "all_killed": 2, "all_killed_qualifier": "exact"}


def tree(root: Path) -> dict[str, str]:
    """Every file of the package (hidden ones too, but not the lock file) and its sha256."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".civharm.lock"}


def submission(tmp_path: Path, name: str = "submission.json", **changes) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"incident": INCIDENT, "report": dict(REPORT, **changes)}), encoding="utf-8")
    return str(path)


def environment(**extra: str) -> dict:
    return child_environment(CIVHARM_TODAY=TODAY, **extra)


# --- the lock -------------------------------------------------------------------------------


def test_two_adds_at_once_keep_both_reports(tmp_path):
    root = build_package(tmp_path / "pkg")
    command = [sys.executable, "-c", "from civharm.cli import console_script; console_script()", "add"]
    files = [submission(tmp_path, f"s{i}.json", url=f"https://example.org/invented-page-{i}", claimant=f"Invented claimant {i}")
             for i in (1, 2)]
    runs = [subprocess.Popen([*command, file, "--package", str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=environment(CIVHARM_LOCK_WAIT="600"))
            for file in files]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    added = {out.decode().strip() for out, _ in outputs}
    reports = (root / "data" / "reports.csv").read_text(encoding="utf-8")
    assert len(added) == 2 and all(report_id in reports for report_id in added)


WRITERS = {
    "add": lambda root, tmp_path: ["add", submission(tmp_path), "--package", str(root), "--today", TODAY],
    "release": lambda root, tmp_path: ["release", "1.0.0", "--package", str(root), "--skip-validate"],
    "docs": lambda root, tmp_path: ["docs", str(root)],
    "build": lambda root, tmp_path: ["build", str(root)],
}


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_a_writer_waits_a_bounded_time_for_another_then_names_the_lock(command, tmp_path, monkeypatch):
    root = build_package(tmp_path / "pkg")
    before = tree(root)
    monkeypatch.setenv("CIVHARM_LOCK_WAIT", "0.2")
    with FileLock(root / ".civharm.lock"):  # as another civharm process holds it
        result = CliRunner().invoke(main, WRITERS[command](root, tmp_path))
    assert result.exit_code == 2
    assert result.output == f"Error: another civharm command is writing this package (lock: {root / '.civharm.lock'})\n"
    assert tree(root) == before


def test_a_bad_lock_wait_is_a_usage_error(tmp_path, monkeypatch):
    root = build_package(tmp_path / "pkg")
    monkeypatch.setenv("CIVHARM_LOCK_WAIT", "soon")
    result = CliRunner().invoke(main, ["docs", str(root)])  # a writer: it waits for the lock
    assert result.exit_code == 2 and "CIVHARM_LOCK_WAIT" in result.output and "'soon' is not a number of seconds" in result.output


# --- the journal: a crash at every step -----------------------------------------------------

CHILD = textwrap.dedent("""
    import os, pickle, signal, sys
    root, stop, plan = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    calls = [0]

    def stopping(real):
        def call(*args, **kwargs):
            if any(str(a).startswith(root) for a in args[:2]):
                if calls[0] == stop:
                    os.kill(os.getpid(), signal.SIGKILL)
                calls[0] += 1
            return real(*args, **kwargs)
        return call

    for name in ("replace", "link", "unlink"):
        setattr(os, name, stopping(getattr(os, name)))
    {run}
    print(calls[0])
""")
WRITE = "from civharm.atomic import write_files; write_files(root, pickle.load(open(plan, 'rb')))"


def crashing(root: Path, stop: int, plan: Path, run: str = WRITE, args: tuple = ()) -> subprocess.CompletedProcess:
    script = CHILD.format(run=run)
    return subprocess.run([sys.executable, "-c", script, str(root), str(stop), str(plan), *args],
                          capture_output=True, env=environment(), timeout=300)


@pytest.fixture(scope="module")
def three_files(tmp_path_factory):
    """A package and a write of three files: two changed (the package stays valid), one new."""
    folder = tmp_path_factory.mktemp("journal")
    root = build_package(folder / "pkg")
    edited = build_package(folder / "edited")
    set_cell(edited / "data" / "reports.csv", 2, "notes", "An invented note that replaces the first one.")
    files = {root / "data" / "reports.csv": (edited / "data" / "reports.csv").read_bytes(),
             root / "datapackage.json": json.dumps(json.loads((root / "datapackage.json").read_text()), indent=4) + "\n",
             root / "docs" / "new.md": b"a file that did not exist\n"}
    plan = folder / "plan.pickle"
    plan.write_bytes(pickle.dumps(files))
    copy = build_package(folder / "measure")
    finished = crashing(copy, -1, _moved(plan, root, copy, folder))
    assert finished.returncode == 0, finished.stderr.decode()
    return root, plan, tree(root), tree(copy), int(finished.stdout)


def _moved(plan: Path, old: Path, new: Path, folder: Path) -> Path:
    """The same write, aimed at another copy of the package."""
    files = {new / path.relative_to(old): content for path, content in pickle.loads(plan.read_bytes()).items()}
    moved = folder / f"plan-{new.name}.pickle"
    moved.write_bytes(pickle.dumps(files))
    return moved


STEPS = 22  # the journal in (2), two files set aside and written (3 each), one new file written (1),
# three renames, the journal marked done (2), the leftovers removed (2 each), the journal removed (2)


def test_the_crash_test_covers_every_step(three_files):
    *_, steps = three_files
    assert steps == STEPS


@pytest.mark.parametrize("stop", range(STEPS))
def test_a_kill_at_any_step_is_recovered_by_the_next_command(three_files, stop, tmp_path):
    root, plan, before, after, steps = three_files
    copy = build_package(tmp_path / "pkg")
    killed = crashing(copy, stop, _moved(plan, root, copy, tmp_path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    left = tree(copy)
    read = CliRunner().invoke(main, ["docs", str(copy), "--check"])  # a command that only reads changes no file
    pending = (copy / atomic.JOURNAL).exists() and json.loads((copy / atomic.JOURNAL).read_text())["state"] == "pending"
    assert ("civharm recover" in read.output) == pending and "Traceback" not in read.output, read.output  # done: the files are new
    if pending:
        assert read.exit_code == 2
    assert tree(copy) == left
    result = CliRunner().invoke(main, ["recover", str(copy)])
    assert result.exit_code == 0 and "Traceback" not in result.output and "Error" not in result.output, result.output
    assert ("nothing to recover" in result.stderr) == (left == tree(copy)), result.stderr  # says what it did, or that there was nothing
    state = tree(copy)
    assert state in (before, after), sorted(set(state.items()) ^ set(before.items()))
    if left in (before, after):
        assert "civharm command was stopped" not in result.stderr
    else:  # the kill left a journal or a temporary file: the command says what it did about it
        assert "civharm command stopped" in result.stderr or "civharm command was stopped" in result.stderr


def test_add_killed_at_its_second_rename_stops_readers_until_recover_undoes_it(tmp_path):
    root = build_package(tmp_path / "pkg")
    before = tree(root)
    add = "from civharm import cli; cli.main(['add', sys.argv[4], '--package', root], standalone_mode=False)"
    # add writes incidents, reports and changes: the journal (2 calls), three set aside (3 each), then the renames
    second_rename = 2 + 3 * 3 + 1
    killed = crashing(root, second_rename, tmp_path / "unused", run=add, args=(submission(tmp_path),))
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert (root / atomic.JOURNAL).exists() and tree(root) != before
    left = tree(root)

    def civharm(*args):
        return subprocess.run([sys.executable, "-c", "from civharm.cli import console_script; console_script()", *args],
                              capture_output=True, env=environment(), timeout=300)

    refused = civharm("validate", str(root))
    assert refused.returncode == 2 and tree(root) == left
    assert refused.stderr.decode().splitlines()[-1] == (
        f"Error: {root / atomic.JOURNAL}: a civharm write into this package was interrupted, so its files may be half written; "
        "run `civharm recover` to undo it, then this command again (a command that only reads changes no file)")
    with pytest.raises(CivharmError, match="was interrupted"):
        load(root)  # the Python API hands out no half-written table either
    recovered = civharm("recover", str(root))
    assert recovered.returncode == 0, recovered.stderr.decode()[-2000:]
    assert recovered.stderr.decode().splitlines() == [
        "a civharm command was stopped while writing data/incidents.csv, data/reports.csv, data/changes.csv; "
        "undone: those files are as they were before it"]
    assert tree(root) == before
    assert civharm("validate", str(root)).returncode == 0
    again = civharm("recover", str(root))
    assert again.returncode == 0 and again.stderr.decode().splitlines() == [f"nothing to recover: no interrupted write in {root}"]


# --- failures inside the process --------------------------------------------------------------


def test_disk_full_during_add_cleans_up_and_says_so(tmp_path, monkeypatch):
    root = build_package(tmp_path / "pkg")
    before = tree(root)
    real_fsync = os.fsync

    def fsync(handle):
        if Path(os.readlink(f"/proc/self/fd/{handle}")).name.startswith(".reports.csv."):  # its temporary file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    result = CliRunner().invoke(main, ["add", submission(tmp_path), "--package", str(root), "--today", TODAY])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == "Error: disk full while writing data/reports.csv; nothing was changed"
    assert tree(root) == before


def test_disk_full_while_add_copies_the_package_to_check_it_says_so(tmp_path, monkeypatch):
    import shutil

    root = build_package(tmp_path / "pkg")
    before = tree(root)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfile", full)
    result = CliRunner().invoke(main, ["add", submission(tmp_path), "--package", str(root), "--today", TODAY])
    assert result.exit_code == 2, result.output
    last = result.output.splitlines()[-1]
    assert last.startswith("Error: disk full while writing the copy of the package in ") and last.endswith(
        " that checks the change; nothing was changed")
    assert tree(root) == before


def test_an_injected_fault_between_two_renames_undoes_the_write(tmp_path):
    root = build_package(tmp_path / "pkg")
    before = tree(root)

    def fault(index, path):
        if index == 1:
            raise OSError("injected fault")

    with pytest.raises(CivharmError, match="cannot write data/incidents.csv: injected fault; nothing was changed"):
        atomic.write_files(root, {root / "data" / "reports.csv": "a\n", root / "data" / "incidents.csv": "b\n"}, fault=fault)
    assert tree(root) == before


def test_a_done_journal_is_finished_and_a_hostile_one_refused(tmp_path):
    root = build_package(tmp_path / "pkg")
    (root / "data" / ".reports.csv.civharm-old").write_bytes(b"old")
    (root / atomic.JOURNAL).write_text(json.dumps({"state": "done", "files": [{"path": "data/reports.csv", "existed": True}]}))
    messages = atomic.recover(root)
    assert messages == ["a civharm command was stopped after writing data/reports.csv; its write is complete, "
                        "its leftover files are removed"]
    assert not (root / atomic.JOURNAL).exists() and not (root / "data" / ".reports.csv.civharm-old").exists()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (root / atomic.JOURNAL).write_text(json.dumps({"state": "pending", "files": [{"path": "../outside.txt", "existed": False}]}))
    result = CliRunner().invoke(main, ["recover", str(root)])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: {root / atomic.JOURNAL}: cannot read the journal of an interrupted write "
                                    "('../outside.txt' is not a path inside the package)")
    assert outside.read_text() == "keep me"


def test_a_path_outside_the_package_is_never_written(tmp_path):
    root = build_package(tmp_path / "pkg")
    with pytest.raises(CivharmError, match="not inside the package"):
        atomic.write_files(root, {tmp_path / "elsewhere.txt": "x"})
    assert not (tmp_path / "elsewhere.txt").exists()


def test_the_lock_file_does_not_make_the_package_look_changed_to_git(tmp_path):
    from civharm.build import source_date_epoch
    from civharm.releases import build_version

    root = build_package(tmp_path / "pkg")  # a repository with no .gitignore
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=Test", "-c", "user.email=test@example.org", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    with atomic.package_lock(root):
        assert (root / atomic.LOCK_FILE).exists()
        assert not build_version(root).endswith(".dirty")
        assert "uncommitted" not in source_date_epoch(root, {})[1]


@pytest.mark.parametrize(("path", "why"), [(".git/HEAD", "'.git/HEAD' is not a file civharm writes"),
                                           ("data", "'data' is a folder, not a file"),
                                           (".civharm.lock", "'.civharm.lock' is not a file civharm writes")])
def test_a_journal_naming_git_a_folder_or_the_lock_is_refused_and_nothing_is_touched(tmp_path, path, why):
    root = build_package(tmp_path / "pkg")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = tree(root)
    (root / atomic.JOURNAL).write_text(json.dumps({"civharm-journal": 1, "state": "pending", "files": [{"path": path, "existed": False}]}))
    result = CliRunner().invoke(main, ["recover", str(root)])
    assert result.exit_code == 2 and "internal error" not in result.output
    assert result.output.splitlines()[-1] == (f"Error: {root / atomic.JOURNAL}: cannot read the journal of an interrupted write ({why}); "
                                              "compare the files it names with git, then remove it")
    assert {k: v for k, v in tree(root).items() if k != atomic.JOURNAL} == before


def test_a_journal_committed_to_a_pull_request_cannot_swap_the_data_before_the_history_gate_reads_it(tmp_path):
    """A checkout that brings a journal and an old version beside a changed file: validate must read the committed
    file or refuse, never put the journal's file back first (which would hide a deletion from the gate)."""
    root = build_package(tmp_path / "pkg")
    original = (root / "data" / "incidents.csv").read_bytes()
    lines = original.decode("utf-8").splitlines(keepends=True)
    (root / "data" / "incidents.csv").write_text("".join(lines[:-1]), encoding="utf-8")  # a row deleted
    (root / "data" / ".incidents.csv.civharm-old").write_bytes(original)
    (root / atomic.JOURNAL).write_text(json.dumps({"civharm-journal": 1, "state": "pending",
                                                   "files": [{"path": "data/incidents.csv", "existed": True}]}))
    committed = tree(root)
    result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 2 and "was interrupted" in result.output and "civharm recover" in result.output
    assert tree(root) == committed


def _pending_journal(root: Path, state: str = "pending") -> None:
    (root / "data" / ".reports.csv.civharm-old").write_bytes((root / "data" / "reports.csv").read_bytes())
    (root / atomic.JOURNAL).write_text(json.dumps({"civharm-journal": 1, "state": state,
                                                   "files": [{"path": "data/reports.csv", "existed": True}]}))


def test_a_reader_waits_for_a_write_still_running_instead_of_calling_it_interrupted(tmp_path, monkeypatch):
    root = build_package(tmp_path / "pkg")
    _pending_journal(root)
    monkeypatch.setenv("CIVHARM_LOCK_WAIT", "0.2")
    with FileLock(root / ".civharm.lock"):  # a writer at work
        result = CliRunner().invoke(main, ["validate", str(root)])
    assert result.exit_code == 2
    assert result.output == f"Error: another civharm command is writing this package (lock: {root / '.civharm.lock'})\n"


def test_a_done_journal_does_not_stop_a_reader_and_is_left_to_the_next_writer(tmp_path):
    root = build_package(tmp_path / "pkg")
    _pending_journal(root, state="done")
    before = tree(root)
    result = CliRunner().invoke(main, ["validate", str(root), "--today", TODAY])
    assert result.exit_code == 0, result.output
    assert tree(root) == before


def test_a_journal_committed_to_git_is_never_acted_on(tmp_path):
    root = build_package(tmp_path / "pkg")
    _pending_journal(root)
    (root / "data" / "reports.csv").write_text("report_id\n", encoding="utf-8")  # what the journal would swap back
    for args in (["init", "-q"], ["add", "-A", "-f"], ["-c", "user.name=Test", "-c", "user.email=test@example.org", "commit", "-qm", "pr"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    before = tree(root)
    message = (f"Error: {root / atomic.JOURNAL}: a write journal committed to git records no write made here, so it is not acted on; "
               "remove it from git (git rm --cached) and restore the files it names from git")
    for command in (["validate", str(root)], ["recover", str(root)], ["docs", str(root)]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2 and result.output.splitlines()[-1] == message, (command, result.output)
    with pytest.raises(CivharmError, match="committed to git"):
        load(root)
    assert tree(root) == before
