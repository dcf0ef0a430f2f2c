"""The validation pipeline: load → structure → rules → duplicates → history, one Report out."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from . import rules, structure
from .findings import Report
from .package import load_package


@dataclass(frozen=True)
class Options:
    today: dt.date
    base: str | None = None


def run(path: str | Path, options: Options) -> Report:
    """Validate the package at ``path``; raises CivharmError only when it cannot be read at all."""
    package = load_package(path)
    findings = list(package.findings)
    findings += structure.check(package)
    findings += rules.check(package, options.today)
    summary = {"package": str(path), "tables": {name: len(res.frame) for name, res in package.resources.items()}}
    return Report(findings, summary)
