"""Rules on text cells: NFC, trimmed, single-line, no control characters, no formula prefix."""
from __future__ import annotations

import unicodedata

import pandas as pd

from ..findings import Severity, quote
from . import rule

CONTROL = r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\ufeff]"


def _string_cells(ctx):
    """(table, field, column) for every string field, raw text as stored."""
    for resource in ctx.package.resources.values():
        if resource.raw is None or len(set(resource.header)) != len(resource.header):
            continue
        for field in resource.schema.get("fields", []):
            if field.get("type", "string") == "string" and field["name"] in resource.frame.columns:
                yield resource, field["name"], resource.frame[field["name"]].astype("string")


def _each(rule, resource, column: pd.Series, mask: pd.Series, field: str, describe):
    for index in column.index[mask.fillna(False).to_numpy(dtype=bool)]:
        yield rule.finding(resource.path, resource.line_of(index), field, describe(column[index]))


@rule("text/not-nfc", Severity.ERROR, "Text is Unicode NFC-normalised.",
      "The same name in two normalisation forms looks identical but does not match in joins, searches or duplicate checks.")
def not_nfc(ctx, rule):
    for resource, field, column in _string_cells(ctx):
        non_ascii = column.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).to_numpy(dtype=bool)
        flags = non_ascii.copy()
        flags[non_ascii] = [unicodedata.normalize("NFC", v) != v for v in column[non_ascii]]
        mask = pd.Series(flags, index=column.index)
        yield from _each(rule, resource, column, mask, field, lambda v: f"{quote(v)} is not NFC-normalised")


@rule("text/untrimmed", Severity.ERROR, "Text has no leading or trailing white space.",
      "Invisible spaces make equal values differ ('Belgorod ' is not 'Belgorod').")
def untrimmed(ctx, rule):
    for resource, field, column in _string_cells(ctx):
        mask = column.str.match(r"^\s") | column.str.contains(r"\s$", regex=True)
        yield from _each(rule, resource, column, mask, field, lambda v: f"{quote(v)} has leading or trailing white space")


@rule("text/line-break", Severity.ERROR, "Text cells are single-line.",
      "A line break inside a cell makes CSV rows and lines disagree, so errors can no longer be located by line.")
def line_break(ctx, rule):
    for resource, field, column in _string_cells(ctx):
        mask = column.str.contains(r"[\r\n]", regex=True)
        yield from _each(rule, resource, column, mask, field, lambda v: f"{quote(v, 60)} contains a line break")


@rule("text/control-character", Severity.ERROR, "Text has no control or invisible formatting characters.",
      "Control and zero-width characters are invisible, break exact matching and can hide content.")
def control_character(ctx, rule):
    for resource, field, column in _string_cells(ctx):
        mask = column.str.contains(CONTROL, regex=True) & ~column.str.contains(r"[\r\n]", regex=True)
        yield from _each(rule, resource, column, mask, field, lambda v: f"{quote(v, 60)} contains a control or invisible character")


@rule("text/formula-prefix", Severity.ERROR, "No text cell starts with =, +, - or @.",
      "Spreadsheets run such cells as formulas (CSV injection) when a user opens the file.")
def formula_prefix(ctx, rule):
    for resource, field, column in _string_cells(ctx):
        mask = column.str.match(r"^[=+\-@]")
        yield from _each(rule, resource, column, mask, field, lambda v: f"{quote(v, 60)} starts with {v[0]!r}, which spreadsheets run as a formula")
