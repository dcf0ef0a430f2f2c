"""How much civharm reads from outside before it refuses: downloads and zip files.

Every limit is declared here once, with why it is that size. Functions that read a download
or a zip take a ``Limits`` (default ``LIMITS``), so a caller or a test can tighten them, and
every refusal names the limit it hit.
"""
from __future__ import annotations

from dataclasses import dataclass

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
