"""Rules on the bytes of each CSV file: UTF-8, no BOM, LF line endings, no cell too large."""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from ..findings import Severity
from ..package import MAX_CELL_CHARS, arrow_text, is_utf8
from . import rule


def _line_at(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


@rule("files/not-utf8", Severity.ERROR, "Data files are UTF-8.",
      "Any other encoding turns names in Cyrillic or Arabic into mojibake for some readers.")
def not_utf8(ctx, rule):
    for resource in ctx.package.resources.values():
        if resource.raw is None or is_utf8(resource.raw):
            continue
        try:
            resource.raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield rule.finding(resource.path, _line_at(resource.raw, exc.start), None,
                               f"byte 0x{resource.raw[exc.start]:02x} at offset {exc.start} is not valid UTF-8")


@rule("files/bom", Severity.ERROR, "Data files have no byte-order mark.",
      "A BOM becomes part of the first column's name for many CSV readers.")
def bom(ctx, rule):
    for resource in ctx.package.resources.values():
        if resource.raw is not None and resource.raw.startswith(b"\xef\xbb\xbf"):
            yield rule.finding(resource.path, 1, None, "file starts with a UTF-8 byte-order mark; save it without BOM")


@rule("files/crlf", Severity.ERROR, "Data files use LF line endings.",
      "Mixed line endings make every line differ in git diffs and break line-based review.")
def crlf(ctx, rule):
    for resource in ctx.package.resources.values():
        if resource.raw is not None and b"\r" in resource.raw:
            offset = resource.raw.index(b"\r")
            yield rule.finding(resource.path, _line_at(resource.raw, offset), None,
                               "line ends with CR (carriage return); use LF line endings")


@rule("files/cell-too-large", Severity.ERROR, f"A cell holds at most {MAX_CELL_CHARS:,} characters.",
      "A spreadsheet cell holds no more, so the XLSX release could not carry a longer one whole; "
      "no field needs that much text, and a huge cell is more likely a paste gone wrong.")
def cell_too_large(ctx, rule):
    for resource in ctx.package.resources.values():
        if resource.raw is None or len(resource.raw) <= MAX_CELL_CHARS:
            continue
        for position, name in enumerate(resource.frame.columns):
            lengths = pc.utf8_length(arrow_text(resource.frame.iloc[:, position]))
            for index in np.flatnonzero(np.asarray(pc.greater(lengths, MAX_CELL_CHARS).fill_null(False))):
                yield rule.at_row(ctx, resource.name, int(index), name,
                                  f"the cell has {lengths[int(index)].as_py():,} characters; a cell holds at most {MAX_CELL_CHARS:,}")
