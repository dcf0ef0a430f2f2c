"""The validation pipeline: load → structure → rules → duplicates → history, one Report out."""
from __future__ import annotations

import datetime as dt
import gc
import os
import pickle
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import duplicates, history, rules, structure
from .findings import CivharmError, Finding, Report
from .package import Package, load_package

# The dataset's rules and duplicate checks read these tables; a package that has neither is some
# other data package, which gets the structure checks (its own Table Schemas) and no more.
DATASET_TABLES = ("incidents", "reports")
NOT_A_CIVHARM_PACKAGE = "not a civharm package: no incidents or reports table"

# Below this many rows a second process costs more than it saves (fork, transfer of findings).
TWO_PROCESSES_FROM_ROWS = 200_000
# Rule families the second process runs beside the duplicate gate: pandas-only (GX is imported
# in the first process alone), chosen so that both processes end at about the same time (the
# place rules moved back to the first process once structure got faster: 1M reports, runs
# interleaved, 12.8 s against 13.2 s).
SECOND_PROCESS_RULES = frozenset({"text"})


@dataclass(frozen=True)
class Options:
    today: dt.date
    base: str | None = None
    progress: Callable[[str], None] | None = None  # told each stage's name as it starts (the CLI shows it on a terminal)
    processes: int | None = None  # 1, or 2 (duplicate gate and text rules in a forked process); None: 2 for a large package on 2+ cores


def without_cascades(rule_findings: list[Finding], structural: list[Finding]) -> list[Finding]:
    """Drop rule findings on rows that already have a structural error.

    A cell that is not a valid integer reads as empty, so a rule would report a second,
    misleading problem on the same row ("coordinates without GeoNames ID"). Fix the
    structural error and the row's rules run again.
    """
    broken = {(f.file, f.line) for f in structural if f.line is not None and f.line > 1}
    return [f for f in rule_findings if (f.file, f.line) not in broken]


def _import_great_expectations() -> None:
    try:
        import great_expectations  # noqa: F401
    except Exception:  # noqa: BLE001 - the rules import it again and report the failure properly
        pass


def _processes(package: Package, asked: int | None) -> int:
    """How many processes to use: as asked, else two for a large package on a machine with two cores."""
    if not hasattr(os, "fork"):  # Windows: one process
        return 1
    if asked is not None:
        return 2 if asked >= 2 else 1
    rows = sum(len(resource.frame) for resource in package.resources.values())
    return 2 if rows >= TWO_PROCESSES_FROM_ROWS and (os.cpu_count() or 1) >= 2 else 1


def _as_rows(findings: list[Finding]) -> list[tuple]:
    """Findings as plain tuples: pickle sends a plain tuple several times faster than a named one."""
    return [tuple(f) for f in findings]


def _from_rows(rows: list[tuple]) -> list[Finding]:
    return list(map(Finding._make, rows))


def _type_shared_tables(package: Package) -> None:
    """Type the tables both processes read before forking: computed once, shared copy-on-write."""
    for resource in package.resources.values():
        if resource.usable:
            resource.typed  # noqa: B018 - a cached property; reading it is the point


class _Child:
    """A forked process computing findings: ``result()`` waits for them, ``stop()`` ends it early."""

    def __init__(self, pid: int, read_end: int):
        self.pid = pid
        self.received: list[bytes] = []
        # The pipe is drained on a thread, so a large result cannot block the child.
        self.reader = threading.Thread(target=self._drain, args=(read_end,), daemon=True)
        self.reader.start()

    def _drain(self, read_end: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            self.received.append(pipe.read())

    def result(self) -> list[Finding]:
        self.reader.join()
        _, status = os.waitpid(self.pid, 0)
        if not self.received or not self.received[0]:
            raise CivharmError(f"the second validation process ended without a result (exit status {os.waitstatus_to_exitcode(status)})")
        kind, value = pickle.loads(self.received[0])
        if kind == "raised":
            raise value
        return _from_rows(value)

    def stop(self) -> None:
        """Kill and reap the child (the first process failed; its result is not needed)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _forked(work: Callable[[], list[Finding]]) -> _Child:
    """Start ``work`` in a forked child, which shares the loaded package copy-on-write.

    The child sends its findings (or its exception) through a pipe and leaves with
    ``os._exit``, so it never runs the parent's exit handlers or flushes its buffers.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_end)
            try:
                payload = ("ok", _as_rows(work()))
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
                payload = ("raised", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - the parent reports a child that sent nothing
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    return _Child(pid, read_end)


def _picklable(value: object) -> bool:
    try:
        pickle.loads(pickle.dumps(value))
        return True
    except Exception:  # noqa: BLE001 - any failure means "send a description instead"
        return False


@contextmanager
def _no_cycle_collector():
    """Pause Python's cycle collector for the run.

    A large package means 10⁵–10⁶ Python objects (findings, groups, keys); each burst of
    allocations made the collector walk them all again (≈ 5 s of a 1M-report run, measured).
    The run's memory is bounded by the package and the collector resumes when the run ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run(path: str | Path | Package, options: Options) -> Report:
    """Validate the package at ``path`` (or one already loaded, as ``build`` has); raises CivharmError only when it cannot be read at all."""
    with _no_cycle_collector():
        return _run(path, options)


def _run(path: str | Path | Package, options: Options) -> Report:
    stage = options.progress or (lambda name: None)
    stage("load")
    package = path if isinstance(path, Package) else load_package(path)
    path = package.root if isinstance(path, Package) else path
    findings = list(package.findings)
    if options.base:  # first, so that an unreadable base stops the run before the slow checks
        stage("history")
        findings += history.check_against(package, options.base)
    dataset_rules = any(name in package.resources for name in DATASET_TABLES)
    second_process = None
    if dataset_rules and _processes(package, options.processes) == 2:
        # The duplicate gate and some rule families run in a forked copy of this process while
        # this one checks structure and the other rules; forked before any thread of ours
        # starts (a fork copies one thread).
        stage(f"duplicates and the {', '.join(sorted(SECOND_PROCESS_RULES))} rules (second process)")
        _type_shared_tables(package)
        second_process = _forked(lambda: rules.check(package, options.today, SECOND_PROCESS_RULES) + duplicates.check(package))
    # Importing GX takes seconds of pure Python; the structure checks are mostly Arrow kernels
    # that leave the interpreter free, so the import runs beside them (the rules wait for it).
    threading.Thread(target=_import_great_expectations, daemon=True).start()
    try:
        stage("structure")
        structural = structure.check(package) + structure.check_beyond_frictionless(package)
        stage("rules")
        if not dataset_rules:
            later_findings = []
        elif second_process is None:
            later_findings = rules.check(package, options.today)
            stage("duplicates")
            later_findings += duplicates.check(package)
        else:
            later_findings = rules.check(package, options.today, rules.FAMILIES - SECOND_PROCESS_RULES)
            later_findings += second_process.result()
    except BaseException:
        if second_process is not None:
            second_process.stop()
        raise
    findings += structural
    findings += without_cascades(later_findings, structural)
    summary = {"package": str(path), "tables": {name: len(res.frame) for name, res in package.resources.items() if res.unread is None},
               "dataset_rules": dataset_rules}
    unread = [name for name, res in package.resources.items() if res.unread is not None]
    if unread:  # their rows are unknown, not zero
        summary["not_read"] = unread
    if not dataset_rules:
        summary["dataset_rules_not_applied"] = NOT_A_CIVHARM_PACKAGE
    incidents = package.get("incidents")
    if incidents is not None and incidents.unread is None and "status" in incidents.frame.columns:
        summary["active_incidents"] = int((incidents.frame["status"] == "active").sum())
    return Report(findings, summary)
