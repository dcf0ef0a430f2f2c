"""Record IDs that two concurrent pull requests cannot both take.

A ULID is 48 bits of milliseconds and 80 random bits in Crockford base32: sortable by
creation time, and a collision needs two identical 80-bit draws in the same millisecond.
Written here (20 lines) rather than pulled in as a dependency because the format is
tiny and fixed, and the schema's patterns must match it exactly.
"""
from __future__ import annotations

import secrets
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIXES = {"incidents": "inc", "reports": "rep", "damage": "dmg", "aggregates": "agg", "changes": "chg"}


def ulid(now_ms: int | None = None, randomness: int | None = None) -> str:
    """Return a 26-character ULID for the given (or current) time."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = secrets.randbits(80) if randomness is None else randomness
    value = (ms << 80) | rand
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_id(table: str) -> str:
    """A fresh ID for a record of ``table`` (``inc_…``, ``rep_…``, ``dmg_…``, ``agg_…``, ``chg_…``)."""
    return f"{PREFIXES[table]}_{ulid()}"
