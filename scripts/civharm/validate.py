"""The validation pipeline: load → structure → rules → duplicates → history, one Report out."""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import duplicates, history, rules, structure
from .findings import Finding, Report
from .package import load_package


@dataclass(frozen=True)
class Options:
    today: dt.date
    base: str | None = None
    progress: Callable[[str], None] | None = None  # told each stage's name as it starts (the CLI shows it on a terminal)


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


def run(path: str | Path, options: Options) -> Report:
    """Validate the package at ``path``; raises CivharmError only when it cannot be read at all."""
    stage = options.progress or (lambda name: None)
    stage("load")
    package = load_package(path)
    findings = list(package.findings)
    if options.base:  # first, so that an unreadable base stops the run before the slow checks
        stage("history")
        findings += history.check_against(package, options.base)
    # Importing GX takes seconds of pure Python; the structure checks are mostly Arrow kernels
    # that leave the interpreter free, so the import runs beside them (the rules wait for it).
    threading.Thread(target=_import_great_expectations, daemon=True).start()
    stage("structure")
    structural = structure.check(package)
    findings += structural
    stage("rules")
    rule_findings = rules.check(package, options.today)
    stage("duplicates")
    findings += without_cascades(rule_findings + duplicates.check(package), structural)
    summary = {"package": str(path), "tables": {name: len(res.frame) for name, res in package.resources.items()}}
    incidents = package.get("incidents")
    if incidents is not None and "status" in incidents.frame.columns:
        summary["active_incidents"] = int((incidents.frame["status"] == "active").sum())
    return Report(findings, summary)

