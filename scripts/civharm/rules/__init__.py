"""The registry of semantic rules: each rule is declared once, with its id, severity and rationale.

Rule modules register themselves with ``@rule`` (pandas) or ``@expectation_rule`` (Great
Expectations) the way an extension would; each becomes a ``findings.Rule`` in the one
catalogue (``findings.CATALOGUE``) that the codebook and the catalogue test read. A rule id starts with its module's name
(``dates/end-before-start`` lives in ``rules/dates.py``).
"""
from __future__ import annotations

import datetime as dt
import functools
import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterable

import pandas as pd

import numpy as np

from ..figures import active, active_reports, current_reports
from ..findings import Finding, Rule, Severity, declare
from ..package import Package, schema_location

MODULES = ("files", "text", "counts", "dates", "places", "links", "figures", "attribution", "confidence", "aggregates")
FAMILIES = frozenset(MODULES)  # a rule's family is its module: the part of its ID before "/"

MISSING_FIELD = declare(Rule(
    "package/missing-field", Severity.ERROR, "A table has every field civharm's checks read from it.",
    "A table whose schema and file both lack a field is consistent, so the structure checks pass, but a check that reads the "
    "field cannot run: the field is named at the table's schema and the checks that read it are skipped, instead of stopping "
    "the run. The missing field is found where a check looks it up, not against a list of required fields: the fields read "
    "are spread over every rule, their helpers and the duplicate search, so such a list would be a second copy of the "
    "schemas to keep in step (civharm ships none with the tool), and a field added later that no check needs (time_of_day, "
    "site_type) must not fail an older package."))["package/missing-field"]


@dataclass(frozen=True)
class Context:
    """What every rule may read: the package, the day that counts as today, and a memo.

    ``memo`` holds what several rules derive from the same columns (computed once per run).
    """

    package: Package
    today: dt.date
    memo: dict = field(default_factory=dict, compare=False, repr=False)
    reads: set = field(default_factory=set, compare=False, repr=False)  # the tables the running rule asked for

    def table(self, name: str) -> pd.DataFrame | None:
        """The typed frame of a table, or None when it is absent or lacks schema columns."""
        self.reads.add(name)
        resource = self.package.get(name)
        if resource is None or not resource.usable:
            return None  # a missing or repeated column is a structural error already; rules need all columns
        return resource.typed

    def active_incidents(self) -> np.ndarray | None:
        """Which incidents are active (``figures.active``), as a mask over ``table("incidents")``, derived once per run."""
        incidents = self.table("incidents")
        if incidents is None:
            return None
        if "active-incidents" not in self.memo:
            self.memo["active-incidents"] = active(incidents)
        return self.memo["active-incidents"]

    def current_reports(self) -> pd.DataFrame | None:
        """Current reports with the incident they count toward (``figures.current_reports``), derived once per run."""
        incidents, reports = self.table("incidents"), self.table("reports")
        if incidents is None or reports is None:
            return None
        if "current-reports" not in self.memo:
            self.memo["current-reports"] = current_reports(incidents, reports)
        return self.memo["current-reports"]

    def active_reports(self) -> pd.DataFrame | None:
        """Every active report (superseded too) with the incident it counts toward (``figures.active_reports``), derived once per run."""
        incidents, reports = self.table("incidents"), self.table("reports")
        if incidents is None or reports is None:
            return None
        if "active-reports" not in self.memo:
            self.memo["active-reports"] = active_reports(incidents, reports)
        return self.memo["active-reports"]


@dataclass(frozen=True)
class Check:
    """One Great Expectations expectation over one table, and how to word a failing row."""

    table: str
    field: str
    expectation: object
    message: Callable[[pd.Series], str]


REGISTRY: dict[str, Rule] = {}  # the semantic rules (those with a check), also in findings.CATALOGUE


def in_order(table: str, lower: str, upper: str, field: str, message: Callable[[pd.Series], str]) -> Check:
    """Check that ``lower`` ≤ ``upper`` wherever both are set (one GX expectation); findings sit on ``field``."""
    import great_expectations as gx

    return Check(table, field, gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=upper, column_B=lower, or_equal=True, ignore_row_if="either_value_is_missing"), message)


def rows_where(frame: pd.DataFrame, mask: pd.Series) -> pd.Index:
    """Index labels of the rows where ``mask`` is true (missing counts as false)."""
    return frame.index[mask.fillna(False).to_numpy(dtype=bool)]


def unlike_derived(ctx, rule, checked: pd.DataFrame, column: str, derived: pd.Series, show: Callable, by: str):
    """A finding on each checked incident whose stored ``column`` is not what the rule named ``by`` derives from the
    statements (empty matches only empty): the figure and attribution rules word their mismatches alike."""
    stored = checked[column]
    fill = 0 if pd.api.types.is_numeric_dtype(stored) else ""
    differs = stored.isna().to_numpy(dtype=bool) != derived.isna().to_numpy(dtype=bool)
    differs |= stored.fillna(fill).to_numpy() != derived.fillna(fill).to_numpy()
    for index, was, should in zip(checked.index[differs], stored[differs], derived[differs]):
        yield rule.at_row(ctx, "incidents", index, column,
                          f"stored {show(was)}, but the {by} gives {show(should)} from the statements (civharm recompute rewrites it)")


def _guarded(tables: tuple[str, ...], function):
    """``function``, run only when every table it ``needs`` is usable (a missing table or column is a structure
    finding already, so the rule has nothing to add and need not check for it itself), and whose findings are
    ``package/missing-field`` instead when it looks up a field its table lacks (see ``missing_fields``)."""

    @functools.wraps(function)
    def check(ctx, *args):
        ctx.reads.clear()
        if any(ctx.table(name) is None for name in tables):
            return []
        try:
            return list(function(ctx, *args))  # whole or not at all: a rule stopped half-way says nothing
        except KeyError as error:
            found = missing_fields(ctx.package, error, ctx.reads)
            if not found:
                raise
            return found

    return check


_QUOTED = re.compile(r"(?<!dtype=)'([^']+)'")  # the names in pandas' "['a', 'b'] not in index"
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")  # how civharm names its fields; record IDs carry capitals (ULIDs)


def missing_fields(package: Package, error: KeyError, tables: Iterable[str]) -> list[Finding]:
    """A ``package/missing-field`` finding for each field that pandas did not find (``error``) and that one of
    ``tables`` lacks; [] when the error is not that (a lookup of a row, or a bug), which the caller raises again.

    The table is the one whose fields make up the frame the lookup was in (most of its columns), when the
    traceback shows it: ``url`` missing from reports is not blamed on incidents, which never had one.
    """
    innermost = error.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    if innermost is None or "pandas" not in Path(innermost.tb_frame.f_code.co_filename).parts:
        return []
    key = error.args[0] if error.args else None
    if isinstance(key, str):
        names = [key] if key.isidentifier() else _QUOTED.findall(key)
    else:  # the labels themselves (an Index of the names not found)
        names = [name for name in key if isinstance(name, str)] if isinstance(key, (list, tuple, pd.Index)) else []
    names = [name for name in names if FIELD_NAME.fullmatch(name)]  # not a record ID ('inc_01M…') looked up as a row
    found, columns = [], _looked_up_in(error)
    for name in dict.fromkeys(names):
        lacking = [package[t] for t in sorted(set(tables)) if t in package.resources and name not in package[t].field_names]
        if columns and lacking:
            overlap = {resource.name: len(columns & set(resource.field_names)) for resource in lacking}
            lacking = [resource for resource in lacking if overlap[resource.name] == max(overlap.values())]
        found += [_missing_field(package, resource, name) for resource in lacking]
    return found


def _looked_up_in(error: KeyError) -> set[str]:
    """The columns of the DataFrame a failed lookup was made in, read from the traceback (empty if none is found)."""
    columns: set[str] = set()
    frame = error.__traceback__
    while frame is not None:
        owner = frame.tb_frame.f_locals.get("self")
        owner = getattr(owner, "obj", owner)  # .loc / .at keep their frame as ``obj``
        if isinstance(owner, pd.DataFrame):
            columns = set(owner.columns)
        frame = frame.tb_next
    return columns


def _missing_field(package: Package, resource, name: str) -> Finding:
    file, prefix = schema_location(package, resource)
    pointer = prefix + "/fields"
    return MISSING_FIELD.finding(file, None, name, f"the field {name!r} is missing, and civharm's checks read it from the "
                                 f"{resource.name} table: add it to the schema and its column to {resource.path} "
                                 "(the checks that read it did not run)", pointer=pointer)


def _register(rule_id: str, severity: Severity, title: str, rationale: str, engine: str, needs: tuple[str, ...]):
    def register(function):
        module = function.__module__.rsplit(".", 1)[-1]
        assert rule_id.startswith(module + "/"), f"{rule_id} must start with {module}/"
        assert rule_id not in REGISTRY, f"{rule_id} declared twice"
        REGISTRY.update(declare(Rule(rule_id, severity, title, rationale, _guarded(needs, function), engine)))
        return function

    return register


def rule(rule_id: str, severity: Severity, title: str, rationale: str, needs: tuple[str, ...] = ()):
    """Register ``check(ctx, rule)`` that yields Findings (for what GX cannot express); it runs only when the
    tables it ``needs`` are usable."""
    return _register(rule_id, severity, title, rationale, "pandas", needs)


def expectation_rule(rule_id: str, severity: Severity, title: str, rationale: str, needs: tuple[str, ...] = ()):
    """Register ``check(ctx)`` that returns ``Check`` objects run in one GX suite per table."""
    return _register(rule_id, severity, title, rationale, "gx", needs)


def load_all(families: Collection[str] = FAMILIES) -> dict[str, Rule]:
    """Import the rule modules of these families (all by default) so that their rules register.

    Importing only some keeps a process that runs no GX rule from importing GX (seconds).
    """
    for name in MODULES:
        if name in families:
            importlib.import_module(f"{__name__}.{name}")
    return REGISTRY


def check(package: Package, today: dt.date, families: Collection[str] | None = None) -> list[Finding]:
    """Run every registered rule, or those of the given families (modules), and collect all findings.

    No rule stops another. ``families`` lets a second process run some rules beside the first.
    """
    from . import expectations

    context = Context(package, today)
    findings: list[Finding] = []
    gx_checks: list[tuple[Rule, Check]] = []
    families = FAMILIES if families is None else families
    for registered in list(load_all(families).values()):
        if registered.id.split("/", 1)[0] not in families:
            continue
        if registered.engine == "gx":
            gx_checks += [(registered, c) for c in registered.check(context)]
        else:
            findings.extend(registered.check(context, registered))
    if gx_checks:
        runnable = []
        for registered, expected in gx_checks:  # an expectation on a column the table lacks: the field is named instead
            frame = context.table(expected.table)
            lacking = [name for name in expectations._columns(expected.expectation) if frame is not None and name not in frame.columns]
            findings += [_missing_field(package, package[expected.table], name) for name in lacking]
            if not lacking:
                runnable.append((registered, expected))
        findings += expectations.run(context, runnable)
    return findings


def data_docs(package: Package, today: dt.date) -> str | None:
    """Folder of the GX Data Docs site for the expectation-based rules (see ``expectations``)."""
    from . import expectations

    context = Context(package, today)
    checks = [(r, c) for r in load_all().values() if r.engine == "gx" for c in r.check(context)]
    return expectations.build_data_docs(context, checks)
