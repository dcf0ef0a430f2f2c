"""The one finding model every stage returns, and the report that collects them.

Static text (title, rationale, default severity) belongs to the rule that raises a
finding, not to the finding: every rule is a ``Rule`` declared once in ``CATALOGUE``. A finding carries only what is
specific to one place in one file.
"""
from __future__ import annotations

import enum
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter
from typing import Callable, NamedTuple


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Finding(NamedTuple):
    """One problem at one place: a CSV line (header = line 1) or a JSON pointer.

    A named tuple, not a dataclass: a large package yields very many findings, and tuples
    are cheaper to build, hash, sort and send between processes.
    """

    file: str
    line: int | None
    field: str | None
    rule_id: str
    message: str
    severity: Severity = Severity.ERROR
    pointer: str | None = None

    def location(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        elif self.pointer is not None:
            where += f"#{self.pointer}"
        return where

    def as_text(self) -> str:
        """``file:line: field: message`` — the form every text report uses."""
        parts = [self.location()]
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def as_dict(self) -> dict:
        return {"rule_id": self.rule_id, "severity": self.severity.value, "file": self.file, "line": self.line,
                "pointer": self.pointer, "field": self.field, "message": self.message}

    def as_json(self) -> str:
        """``json.dumps(self.as_dict(), ensure_ascii=False)``, written out: no dict per finding (10⁵ of them)."""
        return (f'{{"rule_id": {_json_text(self.rule_id)}, "severity": "{_SEVERITY[self.severity]}", "file": {_json_or_null(self.file)}, '
                f'"line": {"null" if self.line is None else int(self.line)}, "pointer": {_json_or_null(self.pointer)}, '
                f'"field": {_json_or_null(self.field)}, "message": {_json_text(self.message)}}}')


_SEVERITY = {severity: severity.value for severity in Severity}  # not the enum's value descriptor per finding
_json_text = json.encoder.encode_basestring  # the C encoder of one string (non-ASCII kept, as ensure_ascii=False)


def _json_or_null(value) -> str:
    return "null" if value is None else _json_text(value)


@dataclass(frozen=True)
class Rule:
    """A rule as declared once: id, default severity, what it checks (title) and why (rationale).

    Every rule id any stage can emit is a ``Rule`` in ``CATALOGUE`` (see ``declare``): the
    semantic rules (``rules/``, which also carry their ``check``), the package loader, the
    structure stage (frictionless' error types included), the duplicate and history gates and
    ``verify-sources``. The codebook's rule lists and the catalogue test read the catalogue.
    Its fixture is ``tests/fixtures/rules/<id>/`` (variants: ``<id>-<variant>/``); tests/test_rules.py
    runs every fixture and names each rule without one and each emitted id not declared.
    """

    id: str
    severity: Severity
    title: str
    rationale: str
    check: Callable | None = field(default=None, compare=False, repr=False)
    engine: str | None = None  # semantic rules: "pandas" (check yields Findings) or "gx" (check returns GX Checks)

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def fixture(self) -> str:
        """Where the fixtures that trigger the rule live: ``<this>/case.json`` or ``<this>-<variant>/case.json``."""
        return f"tests/fixtures/rules/{self.id}"

    def finding(self, file: str, line: int | None, field: str | None, message: str, pointer: str | None = None) -> Finding:
        return Finding(file, line, field, self.id, message, self.severity, pointer)

    def at_row(self, ctx, table: str, index: int, field: str | None, message: str) -> Finding:
        """A finding on the physical line of row ``index`` of ``table`` in ``ctx.package``."""
        resource = ctx.package[table]
        return self.finding(resource.path, resource.line_of(index), field, message)


CATALOGUE: dict[str, Rule] = {}


def declare(*rules: Rule) -> dict[str, Rule]:
    """Add rules to the one catalogue (each id once) and return them by id, for the declaring module."""
    for rule in rules:
        if rule.id in CATALOGUE and CATALOGUE[rule.id] != rule:
            raise ValueError(f"rule {rule.id} declared twice")
        CATALOGUE[rule.id] = rule
    return {rule.id: rule for rule in rules}


def json_pointer(*parts: object) -> str:
    """An RFC 6901 pointer to ``parts`` (``~`` and ``/`` in a part escaped)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def quote(value: object, limit: int = 80) -> str:
    """``repr`` of a cell for a message, cut to ``limit`` characters so a huge cell gives a short line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(str(value)):,} characters)"


def code_point(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: names a character a message cannot show (invisible, or a lookalike digit)."""
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()


def _sort_key(finding: Finding):
    return (finding.file, finding.line or 0, finding.pointer or "", finding.field or "", finding.rule_id, finding.message)


@dataclass
class Report:
    """All findings of one run, sorted, with the counts that decide the exit code."""

    findings: list[Finding] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # dict, not set: it keeps the stages' order, mostly sorted already, which the sort then runs through
        self.findings = sorted(dict.fromkeys(self.findings), key=_sort_key)

    @cached_property
    def counts(self) -> dict[str, int]:
        """Findings per severity (counted once: the report, its summary and the exit code all ask)."""
        counter = Counter(map(itemgetter(5), self.findings))  # the severity, without a Python call per finding
        return {s.value: counter.get(s, 0) for s in Severity}

    def exit_code(self, strict: bool = False) -> int:
        counts = self.counts
        if counts["error"] or (strict and counts["warning"]):
            return 1
        return 0


class CivharmError(Exception):
    """A problem that stops a command from running at all (exit 2), with its location."""

    def __init__(self, message: str, finding: Finding | None = None):
        super().__init__(message)
        self.finding = finding
