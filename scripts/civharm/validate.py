"""The validation pipeline: load → history → structure → rules → duplicates, one Report out
(and, with ``--report-dir``, the report and the GX Data Docs written from the same run).

How long it takes is ``civharm.speed``'s business: the pipeline hands it two independent
workloads (structure and most rules; the duplicate gate and the text rules) and gets both
results back, whether they ran one after the other or at once.
"""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import duplicates, history, render, rules, speed, strictness, structure
from .findings import Finding, Report
from .package import Package, load_package

# The dataset's rules and duplicate checks read these tables; a package that has neither is some
# other data package, which gets the structure checks (its own Table Schemas) and no more.
DATASET_TABLES = ("incidents", "reports")
NOT_A_CIVHARM_PACKAGE = "not a civharm package: no incidents or reports table"

# Rule families run beside the duplicate gate when ``civharm.speed`` runs the two workloads at
# once (pandas-only: GX stays in the first process); chosen so that both end at about the same time.
SECOND_PROCESS_RULES = frozenset({"text"})
# The tables the duplicate checks read (a field they look up and a table lacks is named, as the rules' are).
DUPLICATE_TABLES = ("incidents", "reports", "damage", "sources", "duplicate_decisions")


@dataclass(frozen=True)
class Options:
    today: dt.date
    base: str | None = None
    progress: Callable[[str], None] | None = None  # told each stage's name as it starts (the CLI shows it on a terminal)
    processes: int | None = None  # for civharm.speed: 1, or 2 (duplicate gate and text rules in a second process); None: by size


def without_cascades(rule_findings: list[Finding], structural: list[Finding]) -> list[Finding]:
    """Drop rule findings on rows that already have a structural error.

    A cell that is not a valid integer reads as empty, so a rule would report a second,
    misleading problem on the same row ("coordinates without GeoNames ID"). Fix the
    structural error and the row's rules run again.
    """
    broken = {(f.file, f.line) for f in structural if f.line is not None and f.line > 1}
    return [f for f in rule_findings if (f.file, f.line) not in broken]


def run(path: str | Path | Package, options: Options) -> Report:
    """Validate the package at ``path`` (or one already loaded, as ``build`` has); raises CivharmError only when it cannot be read at all."""
    with speed.collector_paused():
        if isinstance(path, Package):
            return _run(path, path.root, options)
        return _run(_load(path, options), path, options)


def _load(path: str | Path, options: Options) -> Package:
    (options.progress or (lambda name: None))("load")
    return load_package(path)


def run_with_report_dir(path: str | Path, options: Options, directory: str | Path) -> tuple[Report, list[Path]]:
    """``run``, then ``report.json`` and the GX Data Docs site written into ``directory`` from the same loaded package."""
    with speed.collector_paused():
        package = _load(path, options)
        report = _run(package, path, options)
        return report, write_report_dir(report, package, options.today, directory)


def write_report_dir(report: Report, package: Package, today: dt.date, directory: str | Path) -> list[Path]:
    """Write ``report.json`` and the GX Data Docs site (``data-docs/``) into ``directory``, all at once."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with open(staging / "report.json", "w", encoding="utf-8") as out:
            out.writelines(render.json_pieces(report))
        site = rules.data_docs(package, today)
        if site:
            shutil.copytree(site, staging / "data-docs")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p for p in target.rglob("*") if p.is_file())


def _duplicates(package: Package) -> list[Finding]:
    """``duplicates.check``, or ``package/missing-field`` findings when it looks up a field a table lacks."""
    try:
        return duplicates.check(package)
    except KeyError as error:
        found = rules.missing_fields(package, error, DUPLICATE_TABLES)
        if not found:
            raise
        return found


def _run(package: Package, path: str | Path, options: Options) -> Report:
    stage = options.progress or (lambda name: None)
    findings = list(package.findings)
    if options.base:  # first, so that an unreadable base stops the run before the slow checks
        stage("history")
        findings += history.check_against(package, options.base)
    dataset_rules = any(name in package.resources for name in DATASET_TABLES)

    def first() -> tuple[list[Finding], list[Finding]]:
        stage("structure")
        found = structure.check(package) + strictness.check_beyond_frictionless(package)
        stage("rules")
        return found, rules.check(package, options.today, rules.FAMILIES - SECOND_PROCESS_RULES) if dataset_rules else []

    def second() -> list[Finding]:
        if not dataset_rules:
            return []
        stage("duplicates")
        return rules.check(package, options.today, SECOND_PROCESS_RULES) + _duplicates(package)

    def type_tables() -> None:  # what both workloads read, computed once before they part
        for resource in package.resources.values():
            if resource.usable:
                resource.typed  # noqa: B018 - a cached property; reading it is the point

    rows = sum(len(resource.frame) for resource in package.resources.values())
    (structural, later_findings), more = speed.both(rows, first, second, options.processes if dataset_rules else 1,
                                                   prepare=type_tables, warm_up=("great_expectations",))
    later_findings = later_findings + more
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
