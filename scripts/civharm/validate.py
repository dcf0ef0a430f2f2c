"""The validation pipeline: load → structure → rules → duplicates → history, one Report out."""
from __future__ import annotations

import datetime as dt
import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import duplicates, history, rules, structure
from .findings import CivharmError, Finding, Report, Severity
from .package import Package, load_package

# Below this many rows a second process costs more than it saves (fork, transfer of findings).
TWO_PROCESSES_FROM_ROWS = 200_000


@dataclass(frozen=True)
class Options:
    today: dt.date
    base: str | None = None
    progress: Callable[[str], None] | None = None  # told each stage's name as it starts (the CLI shows it on a terminal)
    processes: int | None = None  # 1, or 2 (structure and duplicates in a forked process); None: 2 for a large package on 2+ cores


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
    """Findings as plain tuples: pickling 10⁵ dataclasses costs seconds, tuples of text milliseconds."""
    return [(f.file, f.line, f.field, f.rule_id, f.message, f.severity.value, f.pointer) for f in findings]


def _from_rows(rows: list[tuple]) -> list[Finding]:
    severities = {s.value: s for s in Severity}
    return [Finding(file, line, field, rule_id, message, severities[severity], pointer)
            for file, line, field, rule_id, message, severity, pointer in rows]


def _type_shared_tables(package: Package) -> None:
    """Type the tables both processes read before forking: computed once, shared copy-on-write."""
    for resource in package.resources.values():
        if resource.usable:
            resource.typed  # noqa: B018 - a cached property; reading it is the point


def _structure_and_duplicates(package: Package) -> tuple[list[Finding], list[Finding]]:
    return structure.check(package), duplicates.check(package)


def _forked(work: Callable[[], tuple[list[Finding], ...]]) -> Callable[[], tuple[list[Finding], ...]]:
    """Start ``work`` in a forked child (it shares the loaded package, copy-on-write); return a waiter.

    The child sends its findings (or its exception) through a pipe and leaves with
    ``os._exit``, so it never runs the parent's exit handlers or flushes its buffers.
    The pipe is drained on a thread, so a large result cannot block the child.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 0
        try:
            os.close(read_end)
            try:
                payload = ("ok", tuple(_as_rows(part) for part in work()))
            except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
                payload = ("raised", exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(payload, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # noqa: BLE001 - the parent reports a child that sent nothing
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    received: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            received.append(pipe.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()

    def wait() -> tuple[list[Finding], ...]:
        reader.join()
        _, status = os.waitpid(pid, 0)
        if not received or not received[0]:
            raise CivharmError(f"the second validation process ended without a result (exit status {os.waitstatus_to_exitcode(status)})")
        kind, value = pickle.loads(received[0])
        if kind == "raised":
            raise value
        return tuple(_from_rows(part) for part in value)

    return wait


def _picklable(value: object) -> bool:
    try:
        pickle.loads(pickle.dumps(value))
        return True
    except Exception:  # noqa: BLE001 - any failure means "send a description instead"
        return False


def run(path: str | Path, options: Options) -> Report:
    """Validate the package at ``path``; raises CivharmError only when it cannot be read at all."""
    stage = options.progress or (lambda name: None)
    stage("load")
    package = load_package(path)
    findings = list(package.findings)
    if options.base:  # first, so that an unreadable base stops the run before the slow checks
        stage("history")
        findings += history.check_against(package, options.base)
    if _processes(package, options.processes) == 2:
        # Forked before any thread of ours starts: the child gets a copy of one thread only.
        stage("structure and duplicates (second process), rules")
        _type_shared_tables(package)
        wait_for_child = _forked(lambda: _structure_and_duplicates(package))
        threading.Thread(target=_import_great_expectations, daemon=True).start()
        rule_findings = rules.check(package, options.today)
        structural, duplicate_findings = wait_for_child()
    else:
        # Importing GX takes seconds of pure Python; the structure checks are mostly Arrow kernels
        # that leave the interpreter free, so the import runs beside them (the rules wait for it).
        threading.Thread(target=_import_great_expectations, daemon=True).start()
        stage("structure")
        structural = structure.check(package)
        stage("rules")
        rule_findings = rules.check(package, options.today)
        stage("duplicates")
        duplicate_findings = duplicates.check(package)
    findings += structural
    findings += without_cascades(rule_findings + duplicate_findings, structural)
    summary = {"package": str(path), "tables": {name: len(res.frame) for name, res in package.resources.items()}}
    incidents = package.get("incidents")
    if incidents is not None and "status" in incidents.frame.columns:
        summary["active_incidents"] = int((incidents.frame["status"] == "active").sum())
    return Report(findings, summary)
