"""How much civharm reads from outside before it refuses: downloads, zip files and JSON.

Every limit is declared here once, with why it is that size. Functions that read a download
or a zip take a ``Limits`` (default ``LIMITS``), so a caller or a test can tighten them, and
every refusal names the limit it hit.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .findings import CivharmError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

# SHA256SUMS lists the few files of one release, about 100 bytes a line.
MAX_CHECKSUMS_BYTES = 1 * MiB
# The release zip as fetched; at 1M reports the package holds about 480 MB of CSV.
MAX_ZIP_BYTES = 2 * GiB
# All members of one zip, unpacked, and one member alone.
MAX_UNPACKED_BYTES = 8 * GiB
MAX_MEMBER_BYTES = 4 * GiB
# Unpacked size over compressed size of one member: CSV deflates 3 to 10 times, zeros 1000 times.
MAX_RATIO = 100
# Members smaller than this are not held to MAX_RATIO: they cannot fill a disk however they compress.
RATIO_FLOOR_BYTES = 1 * MiB
# A release holds a descriptor, its schemas and its data files.
MAX_MEMBERS = 10_000
# The zip's table of contents (its central directory), read whole before any member: ~100 bytes a member.
MAX_INDEX_BYTES = 16 * MiB
# One file given to `civharm import`, read whole: 512 MiB of JSON or CSV is already several GiB of Python objects.
MAX_IMPORT_BYTES = 512 * MiB
# A figure read from an imported file: more than any toll of any war; a larger number is a broken file.
MAX_IMPORTED_FIGURE = 999_999_999
# One whole download (SHA256SUMS, then the zip, redirects included), and silence on a connection.
DEADLINE_SECONDS = 3600.0
READ_TIMEOUT_SECONDS = 60.0
# Redirects followed, each within the scheme, host and port first asked.
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Limits:
    """The limits in force for one download or one zip read."""

    checksums_bytes: int = MAX_CHECKSUMS_BYTES
    zip_bytes: int = MAX_ZIP_BYTES
    unpacked_bytes: int = MAX_UNPACKED_BYTES
    member_bytes: int = MAX_MEMBER_BYTES
    ratio: int = MAX_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES
    members: int = MAX_MEMBERS
    index_bytes: int = MAX_INDEX_BYTES
    deadline_seconds: float = DEADLINE_SECONDS
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS
    redirects: int = MAX_REDIRECTS


LIMITS = Limits()


def size_text(count: int) -> str:
    """A limit in the largest binary unit that divides it (``4 GiB``), else in bytes."""
    for unit, name in ((GiB, "GiB"), (MiB, "MiB"), (KiB, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count} bytes"


def read_bounded(path: Path, limit: int) -> bytes | None:
    """A file's bytes, reading at most one byte more than ``limit`` (so /dev/zero ends too);
    None when it holds more. A file that cannot be read is a CivharmError ``path: cannot read: why``."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise CivharmError(f"{path}: cannot read: {exc.strerror or exc}")
    return raw if len(raw) <= limit else None


# What a JSON file (descriptor, schema, releases.json) may hold, checked before it is parsed:
# Python's parser recurses once per level (RecursionError near 1,000) and refuses integers of
# over 4,300 digits, and later stages (frictionless, deep copies) recurse several frames per level.
MAX_JSON_DEPTH = 64
MAX_JSON_DIGITS = 100
# Strings (skipped whole), brackets, and runs of digits too long for a number.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[0-9]{%d,}' % (MAX_JSON_DIGITS + 1))


def parse_json(text: str, display: str) -> object:
    """The one way civharm parses JSON from outside: bounded depth and number length, then
    ``json.loads``; every refusal is a CivharmError located as ``display:line``."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        first = token.group()[0]
        if first == '"':
            continue
        if first in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise CivharmError(f"{display}:{_line_at(text, token.start())}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif first in "]}":
            depth -= 1
        else:
            raise CivharmError(f"{display}:{_line_at(text, token.start())}: a number of {len(token.group()):,} digits; "
                               f"at most {MAX_JSON_DIGITS} are read")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CivharmError(f"{display}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})")


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1
