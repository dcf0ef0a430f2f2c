"""What makes a record the record its ID names, and the keys a released table keeps.

The history gate (``history.check``) reads both: an ID of the base version that now holds
a different record is ``history/id-changed``, logged or not; a key that the released schema
declares and the new schema drops is ``history/key-dropped``. The codebook's "Record
identity" section is ``identity_text()``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .findings import quote

# Share of content fields on which two versions of one record agree, at least. A row that
# agrees this well with another ID's base row, and not with its own, holds that record.
SAME_RECORD = 0.8


@dataclass(frozen=True)
class Identity:
    """The fields that identify a table's records.

    ``fixed``: a correction never changes them (an empty value may be filled in).
    ``facets``: named groups of fields; a correction may fix some of them, never all at once
    (an incident whose time and place both change is another event).
    """

    fixed: tuple[str, ...] = ()
    facets: tuple[tuple[str, tuple[str, ...]], ...] = ()


IDENTITY = {
    "incidents": Identity(facets=(("time", ("date_start", "date_end")),
                                  ("place", ("country_code", "subdivision_code", "area", "locality_en", "geonames_id")))),
    # a statement's claimant wording or its as-of moment may be corrected, not both at once
    "reports": Identity(fixed=("incident_id", "url"), facets=(("claimant", ("claimant",)), ("as-of moment", ("as_of",)))),
    "damage": Identity(fixed=("report_id",)),
    "aggregates": Identity(fixed=("claimant", "population", "period_end", "country_code")),
    "sources": Identity(facets=(("name", ("name",)), ("domain", ("domain",)))),
}


def changed_identity(table: str, before: dict[str, str], after: dict[str, str]) -> str | None:
    """What of the record's identity changed from ``before`` to ``after`` (for a message), or None."""
    identity = IDENTITY.get(table, Identity())
    fixed = [f for f in identity.fixed if before.get(f, "") and before.get(f, "") != after.get(f, "")]
    if fixed:
        return "; ".join(f"{f} {quote(before[f], 60)} → {quote(after.get(f, ''), 60)}" for f in fixed)
    moved = [(name, [f for f in fields if before.get(f, "") != after.get(f, "")]) for name, fields in identity.facets]
    if identity.facets and all(changed for _, changed in moved):
        return "; ".join(f"its {name} ({', '.join(changed)})" for name, changed in moved)
    return None


def agreement(a: dict[str, str], b: dict[str, str], fields: list[str]) -> float:
    """Share of ``fields`` on which two rows hold the same cell."""
    return sum(a.get(f, "") == b.get(f, "") for f in fields) / len(fields) if fields else 1.0


def taken_over(old: dict[str, dict[str, str]], new: dict[str, dict[str, str]], changed: list[str], pool: list[str],
               fields: list[str]) -> dict[str, str]:
    """{ID: other ID} for each changed row that now holds the record another ID of ``pool`` held in the base.

    Such a row agrees with the other's base row on at least SAME_RECORD of ``fields`` and with
    its own on less (IDs swapped, or a record moved to another ID). Exact copies are found by
    hashing; near ones by comparing every pair, when there are few pairs.
    """
    if not fields:
        return {}
    by_content: dict[tuple[str, ...], list[str]] = {}
    for key in pool:
        by_content.setdefault(tuple(old[key].get(f, "") for f in fields), []).append(key)
    compare_pairs = len(changed) * len(pool) <= PAIRS_COMPARED
    out = {}
    for key in changed:
        row = new[key]
        if agreement(row, old[key], fields) >= SAME_RECORD:
            continue  # still its own record
        twin = next((k for k in by_content.get(tuple(row.get(f, "") for f in fields), []) if k != key), None)
        if twin is None and compare_pairs:
            score, other = max(((agreement(row, old[k], fields), k) for k in pool if k != key), default=(0.0, None))
            twin = other if score >= SAME_RECORD else None
        if twin is not None:
            out[key] = twin
    return out


# Row pairs compared field by field at most, beyond which only exact copies are matched.
PAIRS_COMPARED = 200_000


def identity_text() -> str:
    """The codebook's definition of "a different record" (the history gate's id-changed rule)."""
    rows = [f"| `{table}` | {', '.join(f'`{f}`' for f in identity.fixed)} | "
            f"{'; '.join(name + ' (' + ', '.join(f'`{f}`' for f in fields) + ')' for name, fields in identity.facets)} |"
            for table, identity in IDENTITY.items()]
    return "\n".join([
        "An ID names one record forever. `civharm validate --base` reports `history/id-changed` where an ID of the "
        "base version now holds a different record, whether or not the changes are in the corrections log. "
        "A row holds a different record when:",
        "",
        f"- it now holds what another ID held in the base (IDs swapped or moved): at least {SAME_RECORD:.0%} of its "
        f"fields (all but the ID, `record_version` and `last_updated`) equal that row's in the base, and fewer than "
        f"{SAME_RECORD:.0%} equal its own;",
        "- a field a correction never changes has changed (an empty one may be filled in), or every facet has changed at once "
        "(a correction may fix some facets, not all of them), as the table below lists;",
        "- or, for a change the corrections log does not explain, at least 3 and more than half of its filled fields changed at once.",
        "",
        "To change what identifies a record, retract the record and add the corrected one under a new ID.",
        "",
        "| table | fields a correction never changes | facets |",
        "|---|---|---|",
        *rows,
    ])


# --- keys -------------------------------------------------------------------------------------


def declared_key(schema: dict) -> list[str]:
    """The schema's primary key as a list of field names ([] when it declares none)."""
    key = schema.get("primaryKey")
    if isinstance(key, str):
        return [key]
    return [k for k in key if isinstance(k, str)] if isinstance(key, list) else []


def _fields(schema: dict) -> dict[str, tuple[int, dict]]:
    listed = schema.get("fields")
    return {f["name"]: (i, f) for i, f in enumerate(listed if isinstance(listed, list) else [])
            if isinstance(f, dict) and isinstance(f.get("name"), str)}


def _constraints(field: dict) -> dict:
    constraints = field.get("constraints")
    return constraints if isinstance(constraints, dict) else {}


def unique_keys(schema: dict) -> list[tuple[str, ...]]:
    """Field combinations whose values the schema makes unique: its primary key, then each unique field."""
    keys = [tuple(declared_key(schema))] if declared_key(schema) else []
    keys += [(name,) for name, (_, f) in _fields(schema).items() if _constraints(f).get("unique") is True and (name,) not in keys]
    return keys


def _foreign_keys(schema: dict) -> list[dict]:
    listed = schema.get("foreignKeys")
    return [fk for fk in listed if isinstance(fk, dict)] if isinstance(listed, list) else []


def _described(fk: dict) -> str:
    fields = fk.get("fields")
    reference = fk.get("reference") if isinstance(fk.get("reference"), dict) else {}
    return f"{json.dumps(fields, ensure_ascii=False)} → {reference.get('resource', '')}.{json.dumps(reference.get('fields'), ensure_ascii=False)}"


def repeats(frame: pd.DataFrame, key: tuple[str, ...]) -> list[tuple[int, int, tuple[str, ...]]]:
    """(row, first row with the same cells, cells) for each row repeating the cells of ``key`` (empty cells never repeat)."""
    cells = frame[list(key)].fillna("")
    present = (cells != "").any(axis=1).to_numpy()
    members = np.flatnonzero(cells.duplicated(keep=False).to_numpy() & present)
    first: dict[tuple[str, ...], int] = {}
    out = []
    for index in members:
        value = tuple(cells.iloc[index])
        if value in first:
            out.append((int(index), first[value], value))
        else:
            first[value] = int(index)
    return out


def dropped_keys(old: dict, new: dict) -> list[tuple[str, str | None, str]]:
    """(JSON pointer into the new schema, field, message) for each key of ``old`` that ``new`` drops.

    Keys are the primary key (any change of it), unique constraints, foreign keys, and the
    required constraint of a field that is part of one of them. A required constraint dropped
    from any other field is a loosened constraint (a minor release), not a lost key: an
    optional title, say, lets no ID repeat and no reference dangle.
    """
    out: list[tuple[str, str | None, str]] = []
    if declared_key(old) and declared_key(new) != declared_key(old):
        out.append(("/primaryKey", None, f"the primary key {json.dumps(declared_key(old))} of the released schema is now "
                                          f"{json.dumps(declared_key(new))}"))
    new_fields = _fields(new)
    key_fields = set(declared_key(old) or [])
    for fk in _foreign_keys(old):
        fields = fk.get("fields")
        key_fields |= set(fields) if isinstance(fields, list) else {fields} if isinstance(fields, str) else set()
    for name, (_, field) in _fields(old).items():
        keyed = name in key_fields or _constraints(field).get("unique") is True
        kept = [k for k in ("unique", "required") if _constraints(field).get(k) is True and (k == "unique" or keyed)]
        if name not in new_fields:
            if kept:
                out.append(("/fields", name, f"field `{name}`, {' and '.join(kept)} in the released schema, was removed"))
            continue
        index, now = new_fields[name]
        lost = [k for k in kept if _constraints(now).get(k) is not True]
        if lost:
            where = f"/fields/{index}/constraints" if "constraints" in now else f"/fields/{index}"
            out.append((where, name, f"`{name}` is no longer {' and '.join(lost)} (it is in the released schema)"))
    kept_fks = _foreign_keys(new)
    for fk in _foreign_keys(old):
        if fk not in kept_fks:
            fields = fk.get("fields")
            name = ",".join(fields) if isinstance(fields, list) else fields if isinstance(fields, str) else None
            out.append(("/foreignKeys", name, f"the released foreign key {_described(fk)} was removed or changed"))
    return out
