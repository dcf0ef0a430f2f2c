"""Checks beyond stock frictionless: cells that frictionless reads but other readers do not.

Numbers only Python reads ('1_0', other scripts' digits, integers too long for 64 bits) and
text glued after a closing quote. Kept apart from ``civharm.structure``, whose findings must
agree with frictionless' own (tests/test_differential.py); these add to them.
"""
from __future__ import annotations

import bisect
import csv
import io
import re

import frictionless
import numpy as np
import pyarrow as pa

from .findings import Finding, code_point, quote
from .package import Package, Resource, arrow_text, cell_bytes, is_utf8

INTEGER_DIGITS = 18  # the most package._integers reads (every such integer fits in 64 bits)


def check_beyond_frictionless(package: Package) -> list[Finding]:
    """What stock frictionless accepts and other readers do not: numbers only Python reads, text after a closing quote.

    Kept apart from ``check``, which must agree with frictionless (tests/test_differential.py).
    """
    findings: list[Finding] = []
    for resource in package.resources.values():
        if resource.raw is not None:
            findings += _text_after_quotes(resource)
            findings += _odd_numbers(resource)
    return findings


def _odd_numbers(resource: Resource) -> list[Finding]:
    """Integer and number cells that frictionless reads although other readers do not (see ``_spelling_problem``)."""
    if len(set(resource.header)) != len(resource.header):
        return []  # a repeated column: reported as such, and its cells cannot be told apart
    findings = []
    for spec in resource.schema.get("fields", []):
        if not isinstance(spec, dict) or spec.get("type") not in ("integer", "number") or spec.get("name") not in resource.frame.columns:
            continue
        positions = _suspect_numbers(arrow_text(resource.frame[spec["name"]]), spec["type"] == "integer")
        if len(positions):
            findings += _read_anyway(resource, spec, positions)
    return findings


def _suspect_numbers(cells: pa.Array | pa.ChunkedArray, integer: bool) -> np.ndarray:
    """Positions of the cells with a byte outside ASCII or a '_', or, for integers, more than 18 characters.

    Read from the column's buffers (``package.cell_bytes``): one byte test over the column's text
    instead of a kernel per cell; the few cells kept are judged one by one.
    """
    found, offset = [np.zeros(0, dtype=np.int64)], 0
    for chunk in cells.chunks if isinstance(cells, pa.ChunkedArray) else [cells]:
        bounds, text = cell_bytes(chunk)
        if text.size:
            body = text[bounds[0]:bounds[-1]]
            odd = np.flatnonzero((body >= 0x80) | (body == ord("_"))) + bounds[0]
            found.append(np.searchsorted(bounds, odd, side="right") - 1 + offset)
            if integer:
                found.append(np.flatnonzero(np.diff(bounds) > INTEGER_DIGITS) + offset)
        offset += len(chunk)
    return np.unique(np.concatenate(found))


def _read_anyway(resource: Resource, spec: dict, positions: np.ndarray) -> list[Finding]:
    """Findings for the cells at ``positions`` that frictionless reads as numbers (the others are its type errors)."""
    try:
        reader = frictionless.Schema.from_descriptor(resource.schema).get_field(spec["name"]).create_cell_reader()
    except frictionless.FrictionlessException:
        return []  # an invalid schema: reported as such
    name, findings, problems = spec["name"], [], {}
    for position, cell in zip(positions.tolist(), resource.frame[name].iloc[positions].tolist()):
        if cell not in problems:
            value, notes = reader(cell)
            read = value is not None and "type" not in (notes or {})
            problems[cell] = _spelling_problem(cell, spec["type"] == "integer") if read else None
        if problems[cell]:
            findings.append(Finding(resource.path, resource.line_of(position), name, "structure/number-spelling",
                                    f"{quote(cell, 60)} is not a valid {spec['type']}: {problems[cell]}"))
    return findings


_LONG_INTEGER = re.compile(f"[0-9]{{{INTEGER_DIGITS + 1}}}")


def _spelling_problem(cell: str, integer: bool) -> str | None:
    """Why other readers would not read the cell as Python does, or None when they would."""
    other = next((char for char in cell if not char.isascii()), None)
    if other is not None:
        return f"ASCII digits 0–9 only (it has {code_point(other)})"
    if "_" in cell:
        return "digits 0–9 only, no '_' separators"
    if integer and _LONG_INTEGER.search(cell):
        return f"more than {INTEGER_DIGITS} digits, too large for other tools' 64-bit integers"
    return None


_CELL_EDGE = np.isin(np.arange(256), list(b',\r\n"'))  # what may precede an opening quote or follow a closing one ('"': a doubled quote)


def _text_after_quotes(resource: Resource) -> list[Finding]:
    """Quoted cells with text after their closing quote (``"abc"xyz``), at the row's line and the cell's field.

    Most files pass one vectorised test of where their quotes stand; only a file that fails it
    is read quote by quote.
    """
    raw = resource.raw
    if b'"' not in raw:
        return []
    first = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.concatenate([np.flatnonzero(data[i:i + _SCAN_BYTES] == 0x22) + i for i in range(first, len(data), _SCAN_BYTES)])
    if _quotes_in_place(data, quotes, first) or not is_utf8(raw):  # another encoding: reported as such
        return []
    findings, line, counted = [], 1, first
    for opened, closed in _glued_cells(raw, quotes.tolist(), first):
        line, counted = line + _line_breaks(raw, counted, opened), opened
        findings.append(_glued_finding(resource, raw, first, line, opened, closed))
    return findings


_SCAN_BYTES = 1 << 22  # compared a block at a time: no file-sized mask


def _quotes_in_place(data: np.ndarray, quotes: np.ndarray, first: int) -> bool:
    """Whether every quote opens a cell, closes one or doubles another, judged by parity.

    Where quotes stand as RFC 4180 puts them they alternate: open, close (a doubled quote closes
    and reopens). So each even-numbered quote follows a cell edge and each odd-numbered one
    precedes one. True: no cell has text after its closing quote. False: read the quotes one by one.
    """
    opening, closing = quotes[0::2], quotes[1::2]
    opening = opening[1:] if len(opening) and opening[0] == first else opening  # the file's start and end are cell edges
    closing = closing[:-1] if len(closing) and closing[-1] == len(data) - 1 else closing
    return bool(_CELL_EDGE[data[opening - 1]].all() and _CELL_EDGE[data[closing + 1]].all())


def _glued_cells(raw: bytes, quotes: list[int], first: int) -> list[tuple[int, int]]:
    """(opening, closing) quote of each quoted cell with text after its closing quote, as the csv module reads them.

    Outside a quoted cell a quote opens one only at the cell's start (elsewhere it is text);
    inside, a doubled quote stands for one quote, and any other quote closes the cell.
    """
    found, inside, opened, doubled = [], False, 0, -1
    for position in quotes:
        if position == doubled:
            continue
        if not inside:
            if position == first or raw[position - 1] in b",\r\n":
                inside, opened = True, position
            continue
        after = raw[position + 1] if position + 1 < len(raw) else None
        if after == 0x22:
            doubled = position + 1
            continue
        inside = False
        if after is not None and after not in b",\r\n":
            found.append((opened, position))
    return found


def _glued_finding(resource: Resource, raw: bytes, first: int, physical: int, opened: int, closed: int) -> Finding:
    """The finding for one glued cell (opening quote on line ``physical``): at its row's first line, in its column."""
    row = bisect.bisect_right(resource.lines, physical) - 1
    line = resource.lines[row] if row >= 0 else 1
    before = raw[_line_start(raw, opened, physical - line, first):opened].decode("utf-8", errors="replace")
    column = len(next(csv.reader(io.StringIO(before, newline="")), [])) - 1 if before else 0
    field = resource.header[column] if 0 <= column < len(resource.header) else None
    end = closed + 1
    while end < len(raw) and end - closed <= 30 and raw[end] not in b",\r\n":
        end += 1
    shown = ("…" if closed - opened > 40 else "") + raw[max(opened, closed - 40):end].decode("utf-8", errors="replace")
    return Finding(resource.path, line, field, "structure/text-after-quote",
                   f"{quote(shown)} has text after the quote that closes the cell; quote the whole cell and double each quote inside it")


def _line_start(raw: bytes, position: int, lines_up: int, first: int) -> int:
    """Where the line ``lines_up`` lines above the one holding ``position`` starts (0: that line itself)."""
    start = line = position
    for _ in range(lines_up + 1):
        found = max(raw.rfind(b"\n", first, start), raw.rfind(b"\r", first, start))
        if found < 0:
            return first
        line = found + 1
        start = found - 1 if raw[found - 1:found + 1] == b"\r\n" else found
    return line


def _line_breaks(raw: bytes, start: int, end: int) -> int:
    """Line breaks in ``raw[start:end]`` as the csv module counts them: \\r\\n, \\n or \\r (the range splits no \\r\\n)."""
    return raw.count(b"\n", start, end) + raw.count(b"\r", start, end) - raw.count(b"\r\n", start, end)
