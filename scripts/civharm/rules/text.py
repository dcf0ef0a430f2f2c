"""Rules on text: cells NFC, trimmed, single-line, with no control characters or formula prefix;
titles and descriptions free of template and HTML markup."""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..findings import Severity, code_point, json_pointer, quote
from ..package import DESCRIPTOR, arrow_text
from . import rule

# Non-characters: U+FDD0–U+FDEF and the last two code points of each of the 17 planes.
NONCHARACTERS = "\ufdd0-\ufdef" + "".join(chr(plane + 0xFFFE) + chr(plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
# C0 controls but the line ends (text/line-break reports those); DEL; zero-width and direction marks (U+200B–U+200F, U+061C ARABIC LETTER MARK);
# bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069); U+2028/9; BOM; non-characters.
CONTROL = re.compile("[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
                     + NONCHARACTERS + "]")
LINE_BREAK = re.compile(r"[\r\n]")
UNTRIMMED = re.compile(r"^\s|\s$")
FORMULA = re.compile(r"^[=+\-@]")
# Jinja's delimiters, and what starts a tag, end tag, comment or declaration in HTML's tokenizer
# ('<' then a letter, '/', '!' or '?'); a lone '<' as in "< 5 killed" is text.
MARKUP = re.compile(r"\{[{%#]|<[A-Za-z/!?]")
DESCRIBING_KEYS = ("title", "description")


SUSPECT_STARTS = (" ", "=", "+", "-", "@")  # a leading blank or formula sign


def _suspect(cells: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which cells have anything outside printable ASCII, a leading blank or formula sign, or a trailing blank (a missing cell is none)."""
    odd = pc.invert(pc.ascii_is_printable(cells))
    odd = pc.or_(odd, pc.is_in(pc.utf8_slice_codeunits(cells, 0, 1), value_set=pa.array(SUSPECT_STARTS, pa.large_string())))
    odd = pc.or_(odd, pc.ends_with(cells, " "))
    return np.asarray(pc.fill_null(odd, False).to_numpy(zero_copy_only=False), dtype=bool)


def _cells(ctx, kinds: tuple[str, ...]):
    """(table, field, column) for every field of these Table Schema types, raw text as stored."""
    for resource in ctx.package.resources.values():
        if resource.raw is None or len(set(resource.header)) != len(resource.header):
            continue
        for field in resource.schema.get("fields", []):
            if field.get("type", "string") in kinds and field["name"] in resource.frame.columns:
                yield resource, field["name"], resource.frame[field["name"]]


def _suspects(ctx) -> list:
    """(resource, field, row positions, values) of the text cells some text rule might reject.

    One vectorised RE2 pass over every string column keeps the cells that are not plain
    printable ASCII or that start or end oddly: a superset of what each rule rejects. The
    rules then test those few cells in Python with their exact expressions. Shared by the
    text rules of one run, so the columns are scanned once.
    """
    if "text-suspects" not in ctx.memo:
        found = []
        for resource, field, column in _cells(ctx, ("string",)):
            positions = np.flatnonzero(_suspect(arrow_text(column)))
            if len(positions):
                found.append((resource, field, positions, column.iloc[positions].tolist()))
        ctx.memo["text-suspects"] = found
    return ctx.memo["text-suspects"]


def _rejected(ctx, rule, test, describe):
    for resource, field, positions, values in _suspects(ctx):
        for position, value in zip(positions, values):
            if isinstance(value, str) and test(value):
                yield rule.finding(resource.path, resource.line_of(int(position)), field, describe(value))


@rule("text/not-nfc", Severity.ERROR, "Text is Unicode NFC-normalised.",
      "The same name in two normalisation forms looks identical but does not match in joins, searches or duplicate checks.")
def not_nfc(ctx, rule):
    yield from _rejected(ctx, rule, lambda v: not unicodedata.is_normalized("NFC", v), lambda v: f"{quote(v)} is not NFC-normalised")


@rule("text/untrimmed", Severity.ERROR, "Text has no leading or trailing white space.",
      "Invisible spaces make equal values differ ('Belgorod ' is not 'Belgorod').")
def untrimmed(ctx, rule):
    yield from _rejected(ctx, rule, lambda v: bool(UNTRIMMED.search(v)), lambda v: f"{quote(v)} has leading or trailing white space")


@rule("text/line-break", Severity.ERROR, "Text cells are single-line.",
      "A line break inside a cell makes CSV rows and lines disagree, so errors can no longer be located by line.")
def line_break(ctx, rule):
    yield from _rejected(ctx, rule, lambda v: bool(LINE_BREAK.search(v)), lambda v: f"{quote(v, 60)} contains a line break")


@rule("text/control-character", Severity.ERROR,
      "Text has no control characters, invisible formatting, bidirectional controls or Unicode non-characters.",
      "Control and zero-width characters are invisible, break exact matching and can hide content; bidirectional "
      "controls reorder what a reader sees (a link that shows as '…exe.jpg' points to a '.exe'); non-characters are "
      "not text and other programs replace or reject them.")
def control_character(ctx, rule):
    yield from _rejected(ctx, rule, lambda v: bool(CONTROL.search(v)) and not LINE_BREAK.search(v),
                         lambda v: f"{quote(v, 60)} contains {code_point(CONTROL.search(v).group())}: a control, invisible or non-character code point")


@rule("text/formula-prefix", Severity.ERROR, "No text cell starts with =, +, - or @.",
      "Spreadsheets run such cells as formulas (CSV injection) when a user opens the file.")
def formula_prefix(ctx, rule):
    yield from _rejected(ctx, rule, lambda v: bool(FORMULA.match(v)),
                         lambda v: f"{quote(v, 60)} starts with {v[0]!r}, which spreadsheets run as a formula")


def _descriptions(package):
    """(file, pointer, key, text) of every title and description in datapackage.json and the schema files.

    Walked with a stack, not recursion, so a deeply nested descriptor cannot exhaust the stack.
    """
    documents = {DESCRIPTOR: package.descriptor}
    for resource in package.resources.values():
        if resource.schema_path:  # an inline schema is inside the descriptor
            documents.setdefault(resource.schema_path, resource.schema)
    for file, document in documents.items():
        stack = [((), document)]
        while stack:
            parts, node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for key, value in items:
                if key in DESCRIBING_KEYS and isinstance(value, str) and isinstance(node, dict):
                    yield file, json_pointer(*parts, key), key, value
                else:
                    stack.append(((*parts, key), value))


@rule("text/markup", Severity.ERROR,
      "Titles and descriptions in datapackage.json and the schemas hold no template delimiters (`{{`, `{%`, `{#`) "
      "and no HTML markup (`<` followed by a letter, `/`, `!` or `?`).",
      "They are shown in web pages (`civharm serve`), the release README and the codebook; markup there would run as "
      "template code or script wherever a tool renders it without escaping.")
def markup(ctx, rule):
    for file, pointer, key, text in _descriptions(ctx.package):
        found = MARKUP.search(text)
        if found:
            excerpt = text[found.start():found.start() + 20]
            yield rule.finding(file, None, key, f"contains {quote(excerpt)}: template or HTML markup; "
                               "write titles and descriptions as plain text", pointer=pointer)
