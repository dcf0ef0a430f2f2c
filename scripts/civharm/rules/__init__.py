"""The registry of semantic rules: each rule is declared once, with its id, severity and rationale.

Rule modules register themselves with ``@rule`` the way an extension would; the codebook's
rule catalogue and the registry-driven tests read ``REGISTRY``. A rule id starts with its
module's name (``dates/end-before-start`` lives in ``rules/dates.py``).
"""
from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ..findings import Finding, Severity
from ..package import Package

MODULES: tuple[str, ...] = ()


@dataclass(frozen=True)
class Context:
    """What every rule may read: the package, and the day that counts as today."""

    package: Package
    today: dt.date


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    title: str
    rationale: str
    check: Callable[[Context], Iterable[Finding]] = field(compare=False, repr=False)

    def finding(self, file: str, line: int | None, field: str | None, message: str, pointer: str | None = None) -> Finding:
        return Finding(file, line, field, self.id, message, self.severity, pointer)


REGISTRY: dict[str, Rule] = {}


def rule(rule_id: str, severity: Severity, title: str, rationale: str):
    """Register ``check(ctx)`` as a rule; it yields findings made with ``RULE.finding``."""

    def register(function):
        module = function.__module__.rsplit(".", 1)[-1]
        assert rule_id.startswith(module + "/"), f"{rule_id} must start with {module}/"
        assert rule_id not in REGISTRY, f"{rule_id} declared twice"
        REGISTRY[rule_id] = Rule(rule_id, severity, title, rationale, function)
        return function

    return register


def load_all() -> dict[str, Rule]:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY


def check(package: Package, today: dt.date) -> list[Finding]:
    """Run every registered rule and collect all findings (no rule stops another)."""
    context = Context(package, today)
    findings: list[Finding] = []
    for registered in load_all().values():
        findings.extend(registered.check(context))
    return findings
