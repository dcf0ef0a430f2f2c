"""Structural validation with frictionless 5: types, required, enums, patterns, keys.

Each frictionless error becomes a Finding whose rule id is ``frictionless/<type>``, placed
on the physical CSV line (cells cannot hold line breaks, so row and line agree).
"""
from __future__ import annotations

import re

import frictionless
from frictionless import system

from .findings import Finding
from .package import DESCRIPTOR, Package

ERROR_LIMIT = 10_000_000


_CONSTRAINT = re.compile(r'constraint "(?P<name>\w+)" is "(?P<value>.*)"', re.S)
_POSITION = re.compile(r'row at position "?(?P<row>\d+)"?')


def _message(error, resource=None) -> str:
    """A sentence that quotes the bad value and says what was expected."""
    cell = getattr(error, "cell", None)
    note = getattr(error, "note", "") or ""
    quoted = repr(cell) if cell not in (None, "") else "an empty cell"
    field = None
    if resource is not None and getattr(error, "field_name", None) in resource.field_names:
        field = resource.field(error.field_name)
    if error.type == "type-error":
        expected = field["type"] if field else note
        hint = " (YYYY-MM-DD)" if expected == "date" else ""
        return f"{quoted} is not a valid {expected}{hint}"
    if error.type == "constraint-error":
        match = _CONSTRAINT.search(note)
        name, value = (match["name"], match["value"]) if match else ("", note)
        if name == "required":
            return "a value is required"
        if name == "enum":
            return f"{quoted} is not an allowed value; allowed: {', '.join((field or {}).get('constraints', {}).get('enum', []))}"
        if name == "pattern":
            if field and "civharm:definitions" in field:
                allowed = ", ".join(field["civharm:definitions"])
                return f"{quoted} is not a list of allowed values separated by ';'; allowed: {allowed}"
            return f"{quoted} does not match the pattern {value}"
        if name in ("minimum", "minLength"):
            return f"{quoted} is below the {name} {value}"
        if name in ("maximum", "maxLength"):
            return f"{quoted} is above the {name} {value}"
        return f"{quoted} breaks the constraint {name} = {value}"
    position = _POSITION.search(note)
    if error.type in ("unique-error", "primary-key") and position:
        line = resource.line_of(int(position["row"]) - 2) if resource is not None else position["row"]
        what = "primary key" if error.type == "primary-key" else "value"
        if error.type == "primary-key":
            return f"duplicate primary key: the same as on line {line}"
        return f"duplicate value {quoted}: the same as on line {line}"
    if error.type == "foreign-key":
        return note[0].upper() + note[1:] if note else "foreign key not found"
    title = error.title.rstrip(".").lower()
    if cell not in (None, ""):
        return f"{title}: {quoted}" + (f" ({note})" if note else "")
    return f"{title}: {note}" if note else title


def check(package: Package) -> list[Finding]:
    """Validate every readable resource against its Table Schema."""
    loadable = [r for r in package.resources.values() if r.raw is not None and r.schema]
    if not loadable:
        return []
    names = {r.name for r in loadable}
    descriptor = dict(package.descriptor)
    descriptor["resources"] = [dict(spec) for spec in package.descriptor["resources"]
                               if isinstance(spec, dict) and spec.get("name") in names]
    for spec in descriptor["resources"]:
        spec["schema"] = package[spec["name"]].schema
    findings: list[Finding] = []
    with system.use_context(trusted=False):
        try:
            fpackage = frictionless.Package(descriptor, basepath=str(package.root))
            report = fpackage.validate(limit_errors=ERROR_LIMIT)
        except frictionless.FrictionlessException as exc:
            error = exc.error
            return [Finding(DESCRIPTOR, None, None, f"frictionless/{error.type}", _message(error), pointer="")]
    for task in report.tasks:
        resource = package.get(task.name)
        path = resource.path if resource else task.name
        for error in task.errors:
            row = getattr(error, "row_number", None)
            field = getattr(error, "field_name", None) or ",".join(getattr(error, "field_names", None) or []) or None
            if error.type == "primary-key" and resource is not None:
                field = ",".join(resource.schema.get("primaryKey", [])) or None
            if row is None:
                pointer = f"/resources/{[r['name'] for r in descriptor['resources']].index(task.name)}" if resource else ""
                if error.type in ("schema-error", "field-error"):
                    findings.append(Finding(resource.schema_path or DESCRIPTOR, None, field, f"frictionless/{error.type}", _message(error), pointer=""))
                elif error.type in ("blank-header", "duplicate-label", "extra-label", "missing-label", "incorrect-label", "blank-label"):
                    findings.append(Finding(path, 1, field or getattr(error, "label", None), f"frictionless/{error.type}", _message(error)))
                else:
                    findings.append(Finding(DESCRIPTOR, None, field, f"frictionless/{error.type}", _message(error), pointer=pointer))
                continue
            findings.append(Finding(path, resource.line_of(row - 2) if resource else row, field, f"frictionless/{error.type}", _message(error, resource)))
    return findings
