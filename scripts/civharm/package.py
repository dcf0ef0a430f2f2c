"""Load a data package (descriptor, schemas, CSV files) into one read-only object.

Every later stage reads from this object and never opens a file itself, so each file
is read once. Problems that make a file unreadable become findings here (the package
can still be partly checked); a package with no readable descriptor raises
``CivharmError`` (exit 2).

Why it is over 500 lines: reading a file and typing its columns are one job here, since the
line numbers, the chunks Arrow parsed and the fast paths (``plain_integers``, ``plain_dates``)
that every later stage shares are made while reading; a later split would have to hand all
of them across.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from . import speed, tableschema
from .findings import CivharmError, Finding, Rule, Severity, declare, json_pointer, quote
from .limits import parse_json

DESCRIPTOR = "datapackage.json"
# The Data Package name rule (lowercase ASCII letters, digits, '-', '.', '_'): a resource name
# names a SQLite table, an XLSX sheet and a release file, so it can hold no '/' or space.
RESOURCE_NAME = re.compile(r"[a-z0-9._-]+")

# What civharm reads: each table from a plain CSV file inside the package (comma-separated,
# '"' quotes, one header line, UTF-8, not compressed), checked against its own Table Schema.
# A resource that asks to be read any other way is refused at the property that asks, and its
# rows are not read: a table read the wrong way would look like one whose rows were all deleted.
PLAIN_CSV_DIALECT = {  # CSV Dialect property → the values that still mean plain CSV
    "delimiter": (",",), "quoteChar": ('"',), "doubleQuote": (True,), "lineTerminator": ("\n", "\r\n"),
    "skipInitialSpace": (False,), "header": (True,), "headerRowCount": (1,), "caseSensitiveHeader": (False,),
    "csvddfVersion": (1.2, "1.2"),
}
COMPRESSED_SUFFIXES = (".zip", ".gz", ".bz2", ".xz", ".zst")
COMPRESSED_MAGIC = {b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
PLAIN_CSV = "civharm reads each table from an uncompressed, comma-separated UTF-8 CSV file in the package"

# What the loader refuses in a descriptor or a file; the table is then not read (or read as far as it can be).
RULES = declare(
    Rule("package/no-resources", Severity.ERROR, "The descriptor lists at least one resource.",
         "A package without tables has nothing to check; an empty list is almost always a descriptor saved half-way."),
    Rule("package/invalid-resource", Severity.ERROR, "Each resource is an object with a name.",
         "Tables, release files and findings are named after the resource; a resource without a name cannot be checked or built."),
    Rule("package/duplicate-resource", Severity.ERROR, "No two resources share a name.",
         "The second table of a name would silently replace the first in every stage and release file."),
    Rule("package/invalid-resource-name", Severity.ERROR, "A resource name is lowercase letters, digits, '-', '.' and '_' (the Data Package name rule).",
         "Resource names become file names and SQL table names in the release; anything else could escape a folder or break a query."),
    Rule("package/inline-data", Severity.ERROR, "A resource's rows are in a CSV file, not inline in the descriptor.",
         "civharm reads, diffs and releases tables as CSV files; inline rows would not be checked like the rest."),
    Rule("package/unsupported-dialect", Severity.ERROR, "A resource's CSV dialect is plain CSV (comma, double quote, header row).",
         "Every stage and every tool downstream reads the file as plain CSV; another dialect would be read differently by each."),
    Rule("package/compressed-resource", Severity.ERROR, "A resource is an uncompressed file, not an archive or a file inside one.",
         "An archive hides its rows from diffs and review and can unpack to any size."),
    Rule("package/unsupported-format", Severity.ERROR, "A resource is a CSV file (format csv, or a path ending in .csv).",
         "civharm checks and releases CSV tables only; another format would be skipped or misread."),
    Rule("package/unsupported-encoding", Severity.ERROR, "A resource is encoded as UTF-8.",
         "The release files and every check assume UTF-8; another encoding garbles names in other scripts."),
    Rule("package/missing-schema", Severity.ERROR, "Every resource has a Table Schema.",
         "Without one a table's types, keys and vocabularies would go unchecked; civharm does not infer a schema."),
    Rule("package/unsafe-path", Severity.ERROR, "A data or schema path is relative and stays inside the package.",
         "An absolute path, a URL or '..' would read (and release) a file from outside the package."),
    Rule("package/missing-file", Severity.ERROR, "The file a resource names exists.",
         "A missing table would otherwise look like an empty one."),
    Rule("package/unreadable-file", Severity.ERROR, "The file a resource names can be read.",
         "A file that cannot be opened (a symbolic link loop, a folder, no permission) must not pass as an empty table."),
    Rule("package/unreadable-schema", Severity.ERROR, "A schema file holds a JSON object.",
         "A schema that cannot be read leaves its table unchecked; it is reported instead of trusted."),
    Rule("package/unreadable-csv", Severity.ERROR, "A CSV file can be parsed to its end (no unterminated quote, no over-long field).",
         "Rows after the point where parsing stops would otherwise be missing without a word; the table is not checked further."),
    tableschema.RULE,
)

# The most characters a cell may hold: what a spreadsheet cell holds, so that every release
# format (the XLSX too) carries every cell whole. Both readers read longer cells (the csv module
# with frictionless's own field limit, see ``_split_rows_slowly``; Arrow has none), and the rule
# ``files/cell-too-large`` reports them: the verdict on a cell never depends on which reader,
# or which earlier work in the same process, read it.
MAX_CELL_CHARS = 32_767


@dataclass
class Resource:
    """One tabular resource: its schema, its raw bytes and its cells as strings."""

    name: str
    path: str  # repo-relative POSIX path as written in the descriptor
    schema: dict
    schema_path: str | None
    raw: bytes | None
    header: list[str] = field(default_factory=list)
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)  # the header's columns; at most EXTRA_LABELS_KEPT beyond the fields
    lines: list[int] = field(default_factory=list)  # physical line of each data row
    ragged: bool = False  # some row has more or fewer cells than the header
    surplus: dict[int, int] = field(default_factory=dict)  # row index → cells beyond the header's, for rows that have any
    unread: str | None = None  # why its rows were not (all) read, as a located finding's text; None when they were
    schema_ok: bool = True  # the schema was read and had no problem (``tableschema.check``): its types can be trusted

    @property
    def usable(self) -> bool:
        """Whether row-level rules can read it: a sound schema, readable, and every schema field present exactly once."""
        return (self.schema_ok and self.raw is not None and len(set(self.header)) == len(self.header)
                and set(self.field_names) <= set(self.frame.columns))

    @property
    def field_names(self) -> list[str]:
        return [f["name"] for f in self.schema.get("fields", [])]

    def field(self, name: str) -> dict:
        for f in self.schema.get("fields", []):
            if f["name"] == name:
                return f
        raise KeyError(name)

    def line_of(self, row_index: int) -> int:
        return self.lines[row_index] if row_index < len(self.lines) else row_index + 2

    def lines_of(self, row_indices: np.ndarray) -> np.ndarray:
        """``line_of`` of many rows at once."""
        lines = np.asarray(self.lines, dtype=np.int64)
        inside = row_indices < len(lines)
        return np.where(inside, lines[np.where(inside, row_indices, 0)] if len(lines) else 0, row_indices + 2)

    @cached_property
    def typed(self) -> pd.DataFrame:
        """Cells converted to the schema's types, column by column (``civharm.speed`` may spread the
        columns over threads); a cell that does not convert is NA."""
        fields = [(f["name"], f.get("type", "string")) for f in self.schema.get("fields", []) if f["name"] in self.frame.columns]
        jobs = [(self.frame[name], kind) for name, kind in fields]
        columns = speed.mapped(lambda job: _typed_column(*job), jobs, len(self.frame))
        return pd.DataFrame(dict(zip([name for name, _ in fields], columns)), index=self.frame.index, copy=False)  # the columns are new: no copy


def _typed_column(column: pd.Series, kind: str) -> pd.Series:
    """One column of cells in its schema type (see ``Resource.typed``)."""
    if kind == "integer":  # as frictionless reads them: surrounding blanks and a sign allowed, int64 range
        return _integers(column)
    if kind == "number":
        return pd.to_numeric(column.where(column != "", None), errors="coerce").astype("Float64")
    if kind == "date":
        return _dates(column)
    return _empty_as_missing(column)


def arrow_text(column: pd.Series | pd.Index) -> pa.Array | pa.ChunkedArray:
    """A text column's cells as Arrow large strings: pandas' own type, so an Arrow-backed column (as loaded) is not copied."""
    return pa.array(column.array, type=pa.large_string(), from_pandas=True)


def among(ids: pd.Series, values: pd.Series) -> np.ndarray:
    """Whether each ID is one of ``values``: one Arrow hash, not pandas' ``isin``, which on Arrow strings builds its
    value set one Python object at a time (at 10⁶ reports, more than the whole duplicate search)."""
    value_set = pa.array(values.dropna().unique(), type=pa.large_string())
    return np.asarray(pc.is_in(arrow_text(ids), value_set=value_set).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def positions_in(keys: pd.Series | pd.Index, ids: pd.Series | pd.Index) -> np.ndarray:
    """Where each key first occurs among ``ids``, -1 when it is missing or absent.

    One Arrow hash of ``ids``, not a pandas index or a Python dict probed row by row
    (10⁶ report rows look up their incident this way).
    """
    return np.asarray(pc.index_in(arrow_text(keys), value_set=arrow_text(ids)).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _empty_as_missing(column: pd.Series) -> pd.Series:
    """Text cells with empty ones as NA, sharing the cells' bytes (a new validity bitmap only)."""
    chunks = []
    cells = arrow_text(column)
    for chunk in cells.chunks if isinstance(cells, pa.ChunkedArray) else [cells]:
        valid = pc.and_(pc.not_equal(chunk, ""), pc.is_valid(chunk))
        if chunk.offset == 0 and valid.offset == 0:
            chunks.append(pa.Array.from_buffers(pa.large_string(), len(chunk), [valid.buffers()[1], *chunk.buffers()[1:]]))
        else:  # a sliced chunk: its bitmap would not line up, so copy
            chunks.append(pc.if_else(valid, chunk, pa.scalar(None, pa.large_string())))
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(chunks, type=pa.large_string())), index=column.index)


def _integers(column: pd.Series) -> pd.Series:
    """Cells that are whole numbers (blanks around, a sign, at most 18 digits) as nullable int64; the rest NA.

    Parsed by Arrow, not Python: an empty cell stays NA, never 0. A column whose every cell
    is already written the plain way (as the number prints back) is cast in one pass; any
    other spelling (blanks, '+', leading zeros, hex, which Arrow's cast would also read) sends
    the column through the full parse.
    """
    numbers = plain_integers(arrow_text(_empty_as_missing(column)))
    if numbers is None:
        return _integers_spelled_any_way(column)
    return _nullable_int64(numbers, column.index)


def plain_integers(cells: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """The integer fast path, shared by loading and the structure check: Arrow's cast of the whole
    column, kept when no cell has a leading zero and every number has at most 18 digits; else None
    (the caller reads the column its slower way)."""
    try:
        numbers = pc.cast(cells, pa.int64())
    except pa.ArrowInvalid:
        return None
    extremes = pc.min_max(numbers)
    if leading_zeros(cells).any() or (extremes["min"].as_py() or 0) <= -(10**18) or (extremes["max"].as_py() or 0) >= 10**18:
        return None
    return numbers


def leading_zeros(cells: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which cells start with a '0' that is not the whole cell: '007', and hex such as '0x1F'.

    Arrow's integer cast reads hex, which frictionless and our own parse do not (a leading
    '-' it refuses before hex); other spellings it reads give the same number either way.
    Read from the first two bytes of each cell in the column's buffers: no string is made
    (printing every number back to compare would touch fresh memory for each column).
    """
    masks = [np.zeros(0, dtype=bool)]
    for chunk in cells.chunks if isinstance(cells, pa.ChunkedArray) else [cells]:
        bounds, text = cell_bytes(chunk)
        found = np.zeros(len(chunk), dtype=bool)
        if text.size:
            longer = np.flatnonzero(bounds[1:] - bounds[:-1] >= 2)
            found[longer] = text[bounds[longer]] == ord("0")
        masks.append(found)
    return np.concatenate(masks)


def cell_bytes(chunk: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(bounds, text) of one chunk of a large-string column, read in place from its buffers.

    Cell ``i`` is ``text[bounds[i]:bounds[i + 1]]``; a check of a cell's first or last byte
    then needs no string made per cell.
    """
    _, offsets, data = chunk.buffers()
    if offsets is None or data is None:
        return np.zeros(len(chunk) + 1, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    return np.frombuffer(offsets, dtype=np.int64)[chunk.offset:chunk.offset + len(chunk) + 1], np.frombuffer(data, dtype=np.uint8)


def _integers_spelled_any_way(column: pd.Series) -> pd.Series:
    text = pc.utf8_trim_whitespace(arrow_text(column))
    plain = pc.match_substring_regex(text, r"^[+-]?[0-9]{1,18}$")
    return _nullable_int64(pc.cast(pc.replace_substring_regex(pc.if_else(plain, text, None), r"^\+", ""), pa.int64()), column.index)


def _nullable_int64(numbers: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    values = np.asarray(pc.fill_null(numbers, 0).to_numpy(zero_copy_only=False), dtype=np.int64)  # asarray: no second copy
    missing = np.asarray(pc.is_null(numbers).to_numpy(zero_copy_only=False), dtype=bool)
    return pd.Series(pd.arrays.IntegerArray(values, missing), index=index, copy=False)


# The one way a date is written in the package: ASCII digits, zero-padded, YYYY-MM-DD. Stock
# frictionless reads dates with strptime, which also takes '2024-3-14' and other digits ('٢٠٢٤');
# the structure check reports those (structure/date-format) and every reader here refuses them.
DATE_SPELLING = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
# The days a date may name, declared once. The dataset records civilian harm in contemporary
# armed conflict: a day before 1900 is a typing error (0224-03-14 for 2024-03-14), and a day
# after today is one already (dates/in-future, dates/as-of-format); 2099 caps it for any today
# this tool will see. Both bounds keep every day read, and the month or year the rules add to
# it, inside pandas' nanosecond datetimes (1677-09-21 to 2262-04-11). Every reader here reads
# a day outside as no date (like any invalid cell); structure/date-out-of-range reports it.
EARLIEST_DAY, LATEST_DAY = dt.date(1900, 1, 1), dt.date(2099, 12, 31)
# The longest date interval of one incident, date_start to date_end counted inclusive: an
# incident is one event, and its coarsest precision, a calendar year, spans 366 days in a leap
# year. A longer one is dates/span-too-long; the duplicate gate expands no interval beyond it.
MAX_SPAN_DAYS = 366


def outside_days(cells: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which cells written YYYY-MM… (a date; an as_of, whose month-only form counts as the month's first day) name a
    day outside EARLIEST_DAY to LATEST_DAY. Compared as text, which ASCII-digit dates sort as their days do, so no
    such day ever reaches a datetime (where pandas would refuse or wrap it)."""
    earliest, latest = (pa.scalar(day.isoformat(), pa.large_string()) for day in (EARLIEST_DAY, LATEST_DAY))
    cells = pc.cast(cells, pa.large_string())
    day = pc.if_else(pc.equal(pc.utf8_length(cells), 7), pc.binary_join_element_wise(cells, pa.scalar("-01", pa.large_string()), pa.scalar("", pa.large_string())), pc.utf8_slice_codeunits(cells, 0, 10))
    outside = pc.and_(pc.match_substring_regex(cells, "^[0-9]{4}-[0-9]{2}"), pc.or_(pc.less(day, earliest), pc.greater(day, latest)))
    return np.asarray(pc.fill_null(outside, False).to_numpy(zero_copy_only=False), dtype=bool)


def outside_message(cell: str) -> str:
    """Why a cell written YYYY-MM-DD… (a date, an as_of) names no day here: it is outside EARLIEST_DAY to LATEST_DAY."""
    if cell < EARLIEST_DAY.isoformat():
        return f"{quote(cell)} is before {EARLIEST_DAY}, the earliest day a date here may name (a mistyped year?)"
    return f"{quote(cell)} is after {LATEST_DAY}, the latest day a date here may name (a mistyped year?)"


def parse_date(text: object) -> dt.date | None:
    """The day a cell names when it is written YYYY-MM-DD (a real day from EARLIEST_DAY to LATEST_DAY); else None.

    The scalar twin of ``_dates``, for code that compares single cells (the history gate).
    """
    if not isinstance(text, str) or not re.fullmatch(DATE_SPELLING, text):
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


def date_spelled(cells: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which cells are written YYYY-MM-DD in ASCII digits (missing cells: False)."""
    matched = pc.match_substring_regex(cells, f"^{DATE_SPELLING}$")
    return np.asarray(pc.fill_null(matched, False).to_numpy(zero_copy_only=False), dtype=bool)


def _dates(column: pd.Series) -> pd.Series:
    """Cells as ``parse_date`` reads them, as datetime64[us]; empty or not such a date: NaT.

    Arrow's cast reads what ``parse_date`` reads (YYYY-MM-DD, a real day), and any year from
    0 too, in one pass (tests/test_dates.py); a column with any other cell, or a day outside
    EARLIEST_DAY to LATEST_DAY, is read one distinct value at a time.
    """
    cells = arrow_text(_empty_as_missing(column))
    days = plain_dates(cells)
    if days is None:
        days = _dates_one_by_one(cells)
    microseconds = pc.fill_null(pc.cast(days, pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64) * 86_400_000_000
    microseconds[pc.is_null(days).to_numpy(zero_copy_only=False)] = np.iinfo(np.int64).min  # NaT
    return pd.Series(microseconds.view("datetime64[us]"), index=column.index, copy=False)


_FIRST, _LAST = ((day - dt.date(1970, 1, 1)).days for day in (EARLIEST_DAY, LATEST_DAY))  # date32 counts days from 1970


def plain_dates(cells: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """The date fast path, shared by loading and the structure check: Arrow's cast of the whole
    column to days, which reads exactly YYYY-MM-DD real days of any year; None when any cell is
    not such a day from EARLIEST_DAY to LATEST_DAY (the caller reads the column its slower way)."""
    try:
        days = pc.cast(cells, pa.date32())
    except pa.ArrowInvalid:
        return None
    extremes = pc.min_max(pc.cast(days, pa.int32()))
    first, last = extremes["min"].as_py(), extremes["max"].as_py()
    return None if first is not None and (first < _FIRST or last > _LAST) else days


def _dates_one_by_one(cells: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``parse_date`` of each distinct cell, spread back over the column."""
    encoded = pc.dictionary_encode(cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells)
    days = pa.array([parse_date(value) for value in encoded.dictionary.to_pylist()], type=pa.date32())
    return days.take(encoded.indices)


@dataclass
class Package:
    """A loaded data package. ``findings`` holds the problems met while loading."""

    root: Path
    descriptor: dict
    resources: dict[str, Resource]
    findings: list[Finding]

    def __getitem__(self, name: str) -> Resource:
        return self.resources[name]

    def get(self, name: str) -> Resource | None:
        return self.resources.get(name)


def _read_json(path: Path, display: str) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CivharmError(f"{display}: file not found")
    except (OSError, UnicodeDecodeError) as exc:
        raise CivharmError(f"{display}: cannot read: {exc}")
    data = parse_json(text, display)
    if not isinstance(data, dict):
        raise CivharmError(f"{display}: must hold a JSON object")
    return data


class BadPath(Exception):
    """Why a descriptor path cannot be used: ``rule_id`` says whether it is unsafe or names nothing readable."""

    def __init__(self, rule_id: str, reason: str):
        super().__init__(reason)
        self.rule_id = rule_id


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _outside_form(relative: object) -> bool:
    """Whether a descriptor path is no relative path at all: not text, empty, absolute or a URL."""
    return not isinstance(relative, str) or not relative or relative.startswith(("/", "\\")) or "://" in relative


def safe_relative(relative: object) -> str | None:
    """A descriptor path as a relative POSIX path inside the package, read as text only (no file
    system: for a version held in git), or None for an absolute path, a URL or a ``..`` part."""
    if _outside_form(relative):
        return None
    parts = PurePosixPath(relative.replace("\\", "/")).parts
    return None if ".." in parts else "/".join(parts)


def safe_path(root: Path, relative: object) -> Path | None:
    """Resolve a descriptor path, refusing absolute paths, URLs, ``..`` parts and escapes from the package (None).

    Raises ``BadPath`` for a control character (a NUL cannot be passed to the system at all)
    and for a path that cannot be resolved (a symbolic link loop).
    """
    if safe_relative(relative) is None:
        return None  # the Data Package spec forbids absolute paths and `..`; a `..` after a symlinked folder would climb out
    if _CONTROL.search(relative):
        raise BadPath("package/unsafe-path", f"path {quote(relative)} holds a control character, which no file name here may")
    try:
        candidate = (root / relative).resolve()
    except RuntimeError:  # how Python 3.11 reports a symbolic link loop
        raise BadPath("package/unreadable-file", f"path {quote(relative)} cannot be resolved: it is a symbolic link loop")
    except OSError as exc:
        raise BadPath("package/unreadable-file", f"path {quote(relative)} cannot be resolved: {exc.strerror or exc}")
    try:
        candidate.relative_to(root.resolve())
    except ValueError:
        return None
    return candidate


def is_utf8(raw: bytes) -> bool:
    """Whether the bytes are valid UTF-8, checked by Arrow (no decoded copy, unlike ``bytes.decode``)."""
    offsets = pa.array([0, len(raw)], type=pa.int64()).buffers()[1]
    try:
        pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(raw)]).cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


# Arrow parses a CSV in blocks of this size on all cores; the cells stay in those chunks (a copy
# into one would touch as much fresh memory again). Cache-sized blocks: see benchmarks/README.md.
CSV_BLOCK_BYTES = 1 << 22
# Labels of a header beyond its schema's fields that the loaded frame keeps as columns. Every
# stage paid per column and every row per label (a header of 20,000 extra labels took minutes
# and gigabytes; 1,000,000 took all the memory); those past these say nothing new, and
# structure.py lists as many extra labels one by one, then counts the rest. A table whose schema
# could not be read keeps the first COLUMNS_KEPT_WITHOUT_SCHEMA (real tables have far fewer).
EXTRA_LABELS_KEPT = 20
COLUMNS_KEPT_WITHOUT_SCHEMA = 1_000


def _split_rows(raw: bytes, display: str, findings: list[Finding], width: int | None = None) -> tuple[list[str], pd.DataFrame, list[int], bool, dict[int, int]]:
    """Parse CSV bytes into string cells, keeping each row's physical line number.

    The fast path (pyarrow, every column read as text) covers well-formed files in which
    no cell holds a line break; the slow path (the csv module) covers everything else and
    notes ragged rows. The last value says whether some row had the wrong number of cells.
    The header is returned whole; the frame holds its first ``width`` columns at most.
    """
    text_ok = is_utf8(raw)
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    end = body.find(b"\n")
    first_line = body[: end if end >= 0 else len(body)]  # not split(): that would copy the whole file
    if text_ok and b"\r" not in body and b'"' not in first_line and first_line:
        header = next(csv.reader([first_line.decode("utf-8")]))
        if width is not None and len(header) > width:  # a header too wide to keep whole: the slow path cuts its rows
            return _split_rows_slowly(raw.decode("utf-8", errors="replace").lstrip("\ufeff"), display, findings, width)
        try:
            table = pacsv.read_csv(
                io.BytesIO(body),
                read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES, skip_rows=1, autogenerate_column_names=True),
                # blocks are cut at line ends without reading quotes (cheaper); a cut inside a
                # quoted cell is an error, and a cell with a line break fails the row count below
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
                convert_options=pacsv.ConvertOptions(
                    column_types={f"f{i}": pa.large_string() for i in range(len(header))},  # pandas' own type: no cast
                    strings_can_be_null=False, quoted_strings_can_be_null=False, auto_dict_encode=False),
            )
            lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
            # one row per line: no line break inside a cell and no empty line (Arrow skips those; the
            # slow path keeps each as a blank row), so each row's line number is its position
            # (tests/fixtures/malformed/blank-lines)
            if table.num_columns == len(header) and table.num_rows + 1 == lines:
                frame = table.to_pandas(types_mapper=lambda t: pd.StringDtype("pyarrow"))
                frame.columns = header
                return header, frame, list(range(2, len(frame) + 2)), False, {}
        except (pa.ArrowInvalid, ValueError):
            pass
    return _split_rows_slowly(raw.decode("utf-8", errors="replace").lstrip("\ufeff"), display, findings, width)


def _split_rows_slowly(text: str, display: str, findings: list[Finding], width: int | None = None):
    # frictionless raises the csv module's process-wide field limit when its CSV parser is first
    # imported; set the same limit here, so a cell reads alike before and after that import.
    from frictionless.formats.csv.settings import FIELD_SIZE_LIMIT

    csv.field_size_limit(FIELD_SIZE_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    kept = 0  # cells of each row the frame keeps: the header's, at most ``width``
    rows, lines = [], []
    ragged = False
    surplus: dict[int, int] = {}
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            if header is None:
                header = row
                kept = len(header) if width is None else min(len(header), width)
                start = reader.line_num + 1
                continue
            if row == [] and header:  # an empty line: a blank row, as frictionless reads it (structure reports it)
                row = [""] * len(header)
            if len(row) != len(header):  # frictionless reports it (extra-cell / missing-cell)
                ragged = True
                if len(row) > len(header):
                    surplus[len(rows)] = len(row) - len(header)
            if len(row) != kept:
                row = (row + [""] * kept)[:kept]
            rows.append(row)
            lines.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        findings.append(RULES["package/unreadable-csv"].finding(display, start, None, f"cannot parse CSV: {exc}"))
    header = header or []
    frame = pd.DataFrame(rows, columns=header[:kept], dtype="string") if header else pd.DataFrame()
    return header, frame, lines, ragged, surplus


def _refusals(spec: dict, pointer: str) -> list[Finding]:
    """A finding for each property of a resource that asks for something other than a plain CSV file (see PLAIN_CSV)."""
    found: list[Finding] = []

    def refuse(key: str, rule_id: str, message: str, deeper: str = "") -> None:
        found.append(RULES[rule_id].finding(DESCRIPTOR, None, key, f"{message}; {PLAIN_CSV}", pointer=f"{pointer}/{key}{deeper}"))

    if "data" in spec:
        refuse("data", "package/inline-data", "inline data is not supported: put the rows in a CSV file and give its path")
    dialect = spec.get("dialect")
    if "dialect" in spec and not isinstance(dialect, dict):
        refuse("dialect", "package/unsupported-dialect", f"{quote(dialect)} is not supported: remove it")
    for key, value in dialect.items() if isinstance(dialect, dict) else ():
        if value not in PLAIN_CSV_DIALECT.get(key, ()):
            refuse("dialect", "package/unsupported-dialect",
                   f"{key} {quote(value)} is not supported: save the file as plain CSV and remove the dialect", json_pointer(key))
    path = spec.get("path")
    suffix = PurePosixPath(path).suffix.lower() if isinstance(path, str) else ""
    if spec.get("compression") not in (None, "", "no"):
        refuse("compression", "package/compressed-resource", f"{quote(spec['compression'])} is not supported: unpack the file")
    elif "innerpath" in spec:
        refuse("innerpath", "package/compressed-resource", "a file inside an archive is not supported: unpack it")
    elif suffix in COMPRESSED_SUFFIXES:
        refuse("path", "package/compressed-resource", f"{quote(path)} names a compressed file, which is not supported: unpack it")
    if "format" in spec and str(spec["format"]).lower() != "csv":
        refuse("format", "package/unsupported-format", f"{quote(spec['format'])} is not supported")
    elif "format" not in spec and isinstance(path, str) and suffix not in (".csv", *COMPRESSED_SUFFIXES):
        refuse("path", "package/unsupported-format", f"{quote(path)} does not end in .csv and no format is given")
    if "encoding" in spec and str(spec["encoding"]).lower().replace("-", "").replace("_", "") != "utf8":
        refuse("encoding", "package/unsupported-encoding", f"{quote(spec['encoding'])} is not supported: save the file as UTF-8")
    if spec.get("schema") in (None, {}):
        found.append(RULES["package/missing-schema"].finding(DESCRIPTOR, None, "schema",
                             f"resource {spec.get('name')!r} has no schema: civharm checks each table against its Table "
                             "Schema and does not infer one; add a schema", pointer=pointer))
    return found


def _compressed(raw: bytes) -> str | None:
    """The kind of archive the bytes are (a compressed file saved under a .csv name), or None."""
    return next((kind for magic, kind in COMPRESSED_MAGIC.items() if raw.startswith(magic)), None)


def schema_location(package: "Package", resource: Resource) -> tuple[str, str]:
    """(file, JSON pointer prefix) of a resource's schema: its own file, or its place in datapackage.json."""
    if resource.schema_path:
        return resource.schema_path, ""
    names = [spec.get("name") if isinstance(spec, dict) else None for spec in package.descriptor.get("resources", [])]
    return DESCRIPTOR, f"/resources/{names.index(resource.name)}/schema" if resource.name in names else ""


def load_package(path: str | Path = ".") -> Package:
    """Read a package from a ``datapackage.json`` or the folder holding one."""
    target = Path(path)
    descriptor_path = target if target.is_file() or target.suffix == ".json" else target / DESCRIPTOR
    root = descriptor_path.parent
    display = descriptor_path.name if root == Path(".") else str(descriptor_path)
    if not descriptor_path.exists():
        raise CivharmError(f"{display}: no data package here (expected a datapackage.json or its folder)")
    descriptor = _read_json(descriptor_path, display)
    findings: list[Finding] = []
    resources: dict[str, Resource] = {}
    listed = descriptor.get("resources")
    if not isinstance(listed, list):
        raise CivharmError(f"{display}#/resources: must be a list of resources")
    for index, spec in enumerate(listed):
        pointer = json_pointer("resources", index)
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            findings.append(RULES["package/invalid-resource"].finding(DESCRIPTOR, None, "name", "a resource needs a name", pointer=pointer))
            continue
        name = spec["name"]
        if name in resources:
            findings.append(RULES["package/duplicate-resource"].finding(DESCRIPTOR, None, "name", f"resource name {name!r} is used twice; names must be unique", pointer=pointer + "/name"))
            continue
        if not RESOURCE_NAME.fullmatch(name):
            findings.append(RULES["package/invalid-resource-name"].finding(DESCRIPTOR, None, "name",
                                    f"resource name {quote(name)} must be lowercase letters, digits, '-', '.' and '_' only "
                                    "(the Data Package name rule): it names tables and release files", pointer=pointer + "/name"))
        refused = _refusals(spec, pointer)  # anything but a plain CSV file with a schema: its rows are not read
        schema, schema_path, schema_ok = _load_schema(root, spec, pointer, findings)
        display_path, raw = f"<resource {name}>", None
        if not ("data" in spec and spec.get("path") is None):  # inline data: refused, and no path to complain about
            display_path, raw = _load_data(root, spec, pointer, refused)
        if raw is not None and not refused and (kind := _compressed(raw)) is not None:
            refused.append(RULES["package/compressed-resource"].finding(DESCRIPTOR, None, "path",
                                   f"{spec['path']} is a {kind} archive, not a CSV file: unpack it; {PLAIN_CSV}", pointer=pointer + "/path"))
        if refused:
            raw = None
        resource = Resource(name=name, path=display_path, schema=schema, schema_path=schema_path, raw=raw, schema_ok=schema_ok,
                            unread=refused[0].as_text() if refused else None)
        findings += refused
        if raw is not None:
            read_findings: list[Finding] = []
            width = (len(resource.field_names) or COLUMNS_KEPT_WITHOUT_SCHEMA) + EXTRA_LABELS_KEPT
            resource.header, resource.frame, resource.lines, resource.ragged, resource.surplus = _split_rows(raw, display_path, read_findings, width)
            resource.unread = read_findings[0].as_text() if read_findings else None
            findings += read_findings
        resources[name] = resource
    if not listed:
        findings.append(RULES["package/no-resources"].finding(DESCRIPTOR, None, "resources", "the package lists no resources", pointer="/resources"))
    return Package(root=root, descriptor=descriptor, resources=resources, findings=findings)


def _load_schema(root: Path, spec: dict, pointer: str, findings: list[Finding]) -> tuple[dict, str | None, bool]:
    """(schema as the stages may trust it, its file if it has one, whether it was sound); problems go to ``findings``.

    A schema that cannot be read at all is ``{}``: its table is not checked against it.
    """
    schema, schema_path = spec.get("schema"), None
    if schema is None:
        return {}, None, False
    if isinstance(schema, str):
        schema_path = schema
        try:
            schema_file = safe_path(root, schema)
        except BadPath as exc:
            findings.append(RULES[exc.rule_id].finding(DESCRIPTOR, None, "schema", f"schema {exc}", pointer=pointer + "/schema"))
            return {}, schema_path, False
        if schema_file is None:
            findings.append(RULES["package/unsafe-path"].finding(DESCRIPTOR, None, "schema",
                                    f"schema path {schema!r} must be relative and stay inside the package", pointer=pointer + "/schema"))
            return {}, schema_path, False
        try:
            schema = _read_json(schema_file, schema)
        except CivharmError as exc:
            findings.append(RULES["package/unreadable-schema"].finding(schema_path, None, None, str(exc).split(": ", 1)[-1], pointer=""))
            return {}, schema_path, False
    elif not isinstance(schema, dict):
        findings.append(tableschema.RULE.finding(DESCRIPTOR, None, "schema",
                                f"must be the path of a schema file or a schema object, not {quote(schema)}", pointer=pointer + "/schema"))
        return {}, None, False
    trusted, problems = tableschema.check(schema, schema_path or DESCRIPTOR, "" if schema_path else pointer + "/schema")
    findings += problems
    return trusted or {}, schema_path, trusted is not None and not problems


def _load_data(root: Path, spec: dict, pointer: str, findings: list[Finding]) -> tuple[str, bytes | None]:
    """(the path findings name, the file's bytes or None when it cannot be read); problems go to ``findings``."""
    name, data_path = spec["name"], spec.get("path")
    display_path = data_path if isinstance(data_path, str) else f"<resource {name}>"
    try:
        data_file = safe_path(root, data_path)
    except BadPath as exc:
        findings.append(RULES[exc.rule_id].finding(DESCRIPTOR, None, "path", f"resource {name!r}: {exc}", pointer=pointer + "/path"))
        return display_path, None
    if data_file is None:
        findings.append(RULES["package/unsafe-path"].finding(DESCRIPTOR, None, "path",
                                f"path {data_path!r} must be a relative path inside the package", pointer=pointer + "/path"))
        return display_path, None
    if not data_file.is_file():
        findings.append(RULES["package/missing-file"].finding(DESCRIPTOR, None, "path",
                                f"resource {name!r}: file {data_path} does not exist", pointer=pointer + "/path"))
        return display_path, None
    try:
        return display_path, data_file.read_bytes()
    except OSError as exc:
        findings.append(RULES["package/unreadable-file"].finding(DESCRIPTOR, None, "path",
                                f"resource {name!r}: file {quote(data_path)} cannot be read: {exc.strerror or exc}", pointer=pointer + "/path"))
        return display_path, None
