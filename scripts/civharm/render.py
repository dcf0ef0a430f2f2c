"""Format a Report as text (people), json (machines) or github (workflow annotations)."""
from __future__ import annotations

import json
from itertools import groupby
from typing import Iterator, Mapping

from .findings import Finding, Report

JSON_SHAPE_VERSION = 1
COLOURS = {"error": "\x1b[31m", "warning": "\x1b[33m", "info": "\x1b[36m"}
RESET, BOLD = "\x1b[0m", "\x1b[1m"


def summary_line(report: Report) -> str:
    """``valid: 2 incidents (2 active), 2 reports, 1 sources; 0 errors, 0 warnings``, and what was not read or not applied."""
    counts, summary = report.counts, report.summary
    tables = summary.get("tables", {})
    shown = ("incidents", "reports", "sources") if summary.get("dataset_rules", True) else tables
    parts = [", ".join(f"{tables[name]} {name}" for name in shown if name in tables)]
    if "active_incidents" in summary:
        parts[0] = parts[0].replace(" incidents", f" incidents ({summary['active_incidents']} active)", 1)
    if summary.get("not_read"):
        parts.append(f"not read: {', '.join(summary['not_read'])}")
    if "dataset_rules_not_applied" in summary:
        parts.append(f"structure checked; civharm's dataset rules not applied ({summary['dataset_rules_not_applied']})")
    verdict = "valid" if report.exit_code() == 0 else "invalid"
    return f"{verdict}: {'; '.join(p for p in parts if p)}; {counts['error']} errors, {counts['warning']} warnings"


def text(report: Report, colour: bool = False, context: Mapping[Finding, str] | None = None) -> str:
    """Findings grouped by file, each as ``file:line: field: message [rule]``, then the summary.

    ``context`` adds a line under a finding (``verify-sources``: the page's words around a
    figure); only this format shows it, so no json or github report carries a page's text.
    """
    lines: list[str] = []
    context = context or {}
    for file, group in groupby(report.findings, key=lambda f: f.file):
        lines.append(f"{BOLD}{file}{RESET}" if colour else file)
        for finding in group:
            tag = f"{finding.severity.value} [{finding.rule_id}]"
            if colour:
                tag = f"{COLOURS[finding.severity.value]}{tag}{RESET}"
            lines.append(f"  {finding.as_text()}  {tag}")
            if finding in context:
                lines.append(f"      page: {context[finding]}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    """The documented machine shape: ``{"version", "summary", "findings": [...]}``."""
    return "".join(json_pieces(report))


# Findings per piece of the JSON report: about 8 MB of text at a time.
JSON_PIECE_FINDINGS = 20_000


def json_pieces(report: Report) -> Iterator[str]:
    """``as_json`` in pieces, to be written as they are made: a large report built whole, then
    encoded whole, would touch twice its size of fresh memory."""
    payload = {
        "version": JSON_SHAPE_VERSION,
        "valid": report.exit_code() == 0,
        "summary": {**report.summary, "counts": report.counts},
        "findings": [],
    }
    if not report.findings:
        yield json.dumps(payload, ensure_ascii=False, indent=2) + "\n"
        return
    # one finding per line: json's C encoder only runs without indent, and a million findings must not take minutes
    head = json.dumps(payload, ensure_ascii=False, indent=2).removesuffix("[]\n}")
    assert head.endswith('"findings": '), head[-40:]
    findings = report.findings
    separator = ",\n    "
    for start in range(0, len(findings), JSON_PIECE_FINDINGS):
        piece = separator.join(map(Finding.as_json, findings[start:start + JSON_PIECE_FINDINGS]))
        yield head + "[\n    " + piece if start == 0 else separator + piece
    yield "\n  ]\n}\n"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github(report: Report, changed_files: frozenset[str] = frozenset()) -> str:
    """Workflow commands, findings in changed files first (only the first ones are shown)."""
    ordered = sorted(report.findings, key=lambda f: f.file not in changed_files)
    lines = []
    for finding in ordered:
        level = {"error": "error", "warning": "warning", "info": "notice"}[finding.severity.value]
        props = [f"file={_escape_property(finding.file)}"]
        if finding.line is not None:
            props.append(f"line={finding.line}")
        props.append(f"title={_escape_property(finding.rule_id)}")
        message = f"{finding.field}: {finding.message}" if finding.field else finding.message
        if finding.pointer is not None and finding.line is None:
            message = f"#{finding.pointer}: {message}"
        lines.append(f"::{level} {','.join(props)}::{_escape_data(message)}")
    lines.append(summary_line(report))
    return "\n".join(lines) + "\n"


def markdown_table(report: Report) -> str:
    """The full list for ``$GITHUB_STEP_SUMMARY``."""
    def cell(value) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    out = [f"### civharm validate: {summary_line(report)}", ""]
    if report.findings:
        out += ["| severity | rule | location | field | message |", "|---|---|---|---|---|"]
        out += [f"| {f.severity.value} | `{f.rule_id}` | `{cell(f.location())}` | {cell(f.field)} | {cell(f.message)} |" for f in report.findings]
    return "\n".join(out) + "\n"


FORMATS = ("text", "json", "github")  # the CLI calls text, json_pieces and github, each with what it needs

