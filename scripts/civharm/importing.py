"""What every ``civharm import FORMAT`` shares: reading the file within bounds, its provenance,
the planned change (rows to add, rows revised, attribution), the check, and the one write.

A format module (``tfp_daily``, ``ucdp_ged``) turns a file into rows; this module turns rows
into a ``Change``: the new text of each file that differs, or nothing when re-importing the
same file (idempotent). The package is validated as it would be after the change, and the
files are written together through ``atomic.write_files``, or not at all.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from .atomic import FaultHook, write_files
from .findings import CivharmError, Finding
from .ids import new_id
from .limits import MAX_IMPORT_BYTES, read_bounded, size_text
from .package import DESCRIPTOR, BadPath, Package, safe_path

# Wraps a sequence the importer walks, to show progress (the CLI passes a progress bar).
Track = Callable[[Sequence, str], Iterable]


def no_progress(items: Sequence, label: str) -> Iterable:
    return items


@dataclass(frozen=True)
class SourceFile:
    """The bytes of the file to import, with what every imported row cites: its name and SHA-256."""

    path: Path
    raw: bytes

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def read_source(path: str | Path, limit: int = MAX_IMPORT_BYTES) -> SourceFile:
    """The file's bytes, refusing what is not a readable regular file or is larger than ``limit``."""
    target = Path(path)
    if not target.is_file():
        raise CivharmError(f"{target}: no such file")
    size = target.stat().st_size
    if size > limit:
        raise CivharmError(f"{target}: {size:,} bytes is more than an import reads ({size_text(limit)})")
    raw = read_bounded(target, limit)
    if raw is None:
        raise CivharmError(f"{target}: more than an import reads ({size_text(limit)})")
    return SourceFile(target, raw)


@dataclass(frozen=True)
class Attribution:
    """The licence and source citation a format adds to the resources its rows go into."""

    source: dict
    licence: dict


@dataclass
class Change:
    """Every file an import would write, and what it would do, for the dry run and the summary."""

    package: Package
    files: dict[Path, str] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    revised: list[str] = field(default_factory=list)  # one line per revision: which record, what changed
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)
    destination: Path | None = None  # a new package: the package was laid out in a scratch folder, to be written here

    @property
    def empty(self) -> bool:
        return not self.files

    def summary(self) -> list[str]:
        """Lines saying what the import adds and revises (or that it changes nothing)."""
        if self.empty:
            return [f"nothing to change: the package holds every record already ({self.unchanged:,} unchanged)"]
        lines = [f"add {count:,} row(s) to {table}" for table, count in self.added.items() if count]
        if self.revised:
            lines.append(f"revise {len(self.revised):,} record(s) (the old row stays, superseded by the new one):")
            lines += [f"  {line}" for line in self.revised]
        if self.unchanged:
            lines.append(f"{self.unchanged:,} record(s) unchanged")
        lines += self.notes
        where = f" (a new package in {self.destination})" if self.destination is not None else ""
        lines.append("files: " + ", ".join(sorted(p.relative_to(self.package.root).as_posix() for p in self.files)) + where)
        return lines


def records(package: Package, table: str) -> list[dict]:
    """A table's rows as dicts of strings (empty cells as "")."""
    resource = package.get(table)
    if resource is None or resource.raw is None:
        raise CivharmError(f"the package has no readable {table} table (datapackage.json lists none, or its file is missing); run civharm validate")
    if not resource.usable:
        raise CivharmError(f"{resource.path}: its columns do not match schema {resource.schema_path}; run civharm validate")
    return resource.frame.fillna("").astype(str).to_dict("records") if not resource.frame.empty else []


def typed(package: Package, table: str, rows: list[dict]) -> pd.DataFrame:
    """Rows of ``table`` (strings) in the schema's types, as the package would read them."""
    resource = package[table]
    frame = pd.DataFrame(rows, columns=resource.header, dtype="string")
    return dataclasses.replace(resource, raw=b"", frame=frame, lines=[]).typed


def table_text(package: Package, table: str, rows: list[dict]) -> str:
    """CSV text of a table: its header as it stands, one line per row, LF line ends."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=package[table].header, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def stage(change: Change, table: str, rows: list[dict], before: list[dict]) -> None:
    """Put a table's new rows in the change when they differ from what is there."""
    if rows != before:
        change.files[change.package.root / change.package[table].path] = table_text(change.package, table, rows)
        change.added[table] = change.added.get(table, 0) + max(len(rows) - len(before), 0)


def new_row(package: Package, table: str, values: dict, today: dt.date) -> dict:
    """A complete row of ``table`` with a fresh ID, version 1 and today's date; unknown fields are a bug."""
    names = package[table].field_names
    unknown = set(values) - set(names)
    assert not unknown, f"{table}: no field(s) {sorted(unknown)}"
    row = {name: "" if values.get(name) is None else str(values.get(name)) for name in names}
    row.update(status="active", record_version="1", last_updated=today.isoformat())
    key = package[table].schema.get("primaryKey", [names[0]])[0]
    row[key] = row[key] or new_id(table)
    return row


def supersede(old: dict, record_id: str, new_id_: str, table: str, reason: str, today: dt.date, log: list[dict]) -> None:
    """Point an old row at the row that replaces it, raising its version and logging why (the history gate's terms)."""
    version = int(old["record_version"] or 1) + 1
    log.append({"change_id": new_id("changes"), "change_date": today.isoformat(), "table": table, "record_id": record_id,
                "record_version": str(version), "field": "superseded_by", "old_value": old.get("superseded_by", ""),
                "new_value": new_id_, "reason": reason, "report_id": ""})
    old.update(superseded_by=new_id_, record_version=str(version), last_updated=today.isoformat())


def attribute(change: Change, tables: Iterable[str], attribution: Attribution) -> None:
    """Add the format's source and licence to each resource the rows go into, once (idempotent)."""
    package = change.package
    path = package.root / DESCRIPTOR
    descriptor = json.loads(json.dumps(package.descriptor))
    changed = False
    for spec in descriptor.get("resources", []):
        if not isinstance(spec, dict) or spec.get("name") not in tables:
            continue
        for key, entry in (("sources", attribution.source), ("licenses", attribution.licence)):
            listed = spec.setdefault(key, [] if key == "sources" else list(package.descriptor.get("licenses", [])))
            if entry not in listed:
                listed.append(entry)
                changed = True
    if changed:
        change.files[path] = json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n"
        change.notes.append(f"{DESCRIPTOR}: add the source's attribution and licence ({attribution.licence.get('title', attribution.licence.get('name'))})")


def ensure_source(change: Change, sources: list[dict], values: dict, today: dt.date) -> None:
    """Add the publisher row the imported rows cite, unless the package has it."""
    if values["source_id"] not in {row["source_id"] for row in sources}:
        sources.append(new_row(change.package, "sources", values, today))


def check(change: Change, today: dt.date) -> list[Finding]:
    """Errors the change would add to the package (validated as it would be, in a copy)."""
    from .contribute import check as errors_added

    return errors_added(change.package, change, today)


def skeleton(folder: Path, template: Package, title: str, licence: dict) -> Path:
    """Lay out an empty package in ``folder``: the template's schemas, header-only tables, a descriptor of its own."""
    descriptor = json.loads(json.dumps(template.descriptor))
    for spec in descriptor.get("resources", []):
        for key in ("sources", "licenses"):
            spec.pop(key, None)
    descriptor.update(name=f"{template.descriptor.get('name', 'civharm')}-import", title=title, version="0.1.0",
                      licenses=[licence], sources=[])
    files: dict[Path, bytes | str] = {folder / DESCRIPTOR: json.dumps(descriptor, indent=2, ensure_ascii=False) + "\n"}
    for resource in template.resources.values():
        if resource.raw is None or (resource.schema_path and not _inside(template.root, resource.schema_path)) or not _inside(template.root, resource.path):
            raise CivharmError(f"{template.root / DESCRIPTOR}: resource {resource.name!r} cannot be read from inside the package; "
                               "run civharm validate on it")
        if resource.schema_path:
            files[folder / resource.schema_path] = (template.root / resource.schema_path).read_bytes()
        files[folder / resource.path] = ",".join(resource.field_names) + "\n"
    write_files(folder, files)
    return folder


def _inside(root: Path, relative: str) -> bool:
    """Whether a descriptor path stays inside the package folder (``package.safe_path``; an unresolvable one does not)."""
    try:
        return safe_path(root, relative) is not None
    except BadPath:
        return False


def apply(change: Change, fault: FaultHook | None = None) -> None:
    """Write every file of the change at once, or none; a new package is written whole into its destination."""
    files: dict[Path, bytes | str] = dict(change.files)
    root = change.package.root
    if change.destination is not None:
        laid_out = {path: path.read_bytes() for path in root.rglob("*") if path.is_file() and not path.name.startswith(".civharm")}
        files = {change.destination / path.relative_to(root): content for path, content in {**laid_out, **files}.items()}
        root = change.destination
        root.mkdir(parents=True, exist_ok=True)
    write_files(root, files, fault=fault)
