"""What every stage may assume of a Table Schema, checked once when the package is loaded.

The loader, frictionless, the vectorised checks, the rules, the builders and the docs all
read the schemas; each trusted their shape, so a field given as a string, a pattern that
does not compile or a bound that is not a number stopped the whole run with an internal
error, or hid every table behind frictionless' "descriptor is not valid". ``check`` holds a
schema against ``SHAPE`` (a JSON Schema, run by the jsonschema library frictionless uses
too) and against what JSON Schema cannot say (bounds and enum values of the field's type,
constraints the type supports, key fields that exist), and returns a schema the later
stages can trust, with one finding per problem, at its JSON pointer:

- a schema whose fields cannot be read (``fields`` not a list, a field not an object or
  without a name) is dropped whole: its table is not checked against it, the others are;
- any other problem drops only the part at fault (a constraint, a key, a field's type, which
  becomes ``any``), so the table's rows are still checked against the rest.
"""
from __future__ import annotations

import copy
import re

import jsonschema

from .findings import Finding, Rule, Severity, json_pointer, quote

RULE = Rule("package/invalid-schema", Severity.ERROR, "A Table Schema has the shape Table Schema defines and its constraints fit its field types.",
            "Every stage reads the schemas; a malformed one would stop the run with an internal error or hide a table's checks. "
            "The part at fault is dropped and the rest still checked.")  # declared in the catalogue by package.RULES
# Table Schema's field types, as frictionless 5 reads them (one module each in frictionless/fields/).
TYPES = ("any", "array", "boolean", "date", "datetime", "duration", "geojson", "geopoint", "integer",
         "list", "number", "object", "string", "time", "year", "yearmonth")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_TEXT = {"type": "string"}
_NAMES = {"anyOf": [_TEXT, {"type": "array", "items": _TEXT}]}
_LENGTH = {"type": "integer", "minimum": 0}

# The shape the stages rely on; members not named here are left to frictionless.
SHAPE = {
    "type": "object",
    "required": ["fields"],
    "properties": {
        "fields": {"type": "array", "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": _TEXT,
                "type": {"enum": list(TYPES)},
                "format": _TEXT, "title": _TEXT, "description": _TEXT,
                "constraints": {"type": "object", "properties": {
                    "required": {"type": "boolean"}, "unique": {"type": "boolean"},
                    "pattern": {"type": "string", "format": "pattern"},
                    "enum": {"type": "array"}, "minLength": _LENGTH, "maxLength": _LENGTH}},
                "civharm:definitions": {"type": "object", "additionalProperties": _TEXT},
                "civharm:delimiter": _TEXT,
            }}},
        "primaryKey": _NAMES,
        "foreignKeys": {"type": "array", "items": {
            "type": "object",
            "required": ["fields", "reference"],
            "properties": {"fields": _NAMES, "reference": {
                "type": "object", "required": ["fields"], "properties": {"resource": _TEXT, "fields": _NAMES}}}}},
        "title": _TEXT, "description": _TEXT,
    },
}

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("pattern", raises=(re.error, RecursionError, OverflowError))
def _compiles(value: object) -> bool:
    """A pattern as frictionless compiles it (``^pattern$``); the bare one first, so the error's position is the author's."""
    if isinstance(value, str):
        re.compile(value)
        re.compile(f"^{value}$")
    return True


_VALIDATOR = jsonschema.Draft202012Validator(SHAPE, format_checker=_FORMATS)
_KINDS = {"array": "a list", "object": "an object", "string": "text", "boolean": "true or false", "integer": "a whole number"}


def check(schema: dict, file: str, base: str = "") -> tuple[dict | None, list[Finding]]:
    """(the schema as later stages may trust it, or None when its fields cannot be read; its problems).

    ``file`` and ``base`` (the JSON pointer of the schema inside ``file``) place the findings.
    """
    trusted, findings = copy.deepcopy(schema), []
    problems = [(list(error.absolute_path), _wording(error)) for error in _VALIDATOR.iter_errors(schema)]
    if any(_unreadable(path) for path, _ in problems):
        return None, [_finding(file, base, schema, path, message, whole=True) for path, message in problems]
    _drop(trusted, [path for path, _ in problems])
    later = _typed_problems(trusted)
    _drop(trusted, [path for path, _ in later])
    keys = _key_problems(trusted)
    _drop(trusted, [path for path, _ in keys])
    findings = [_finding(file, base, schema, path, message, whole=False) for path, message in problems + later + keys]
    return trusted, findings


def _unreadable(path: list) -> bool:
    """Whether a problem at ``path`` leaves the list of fields unreadable (no schema then)."""
    return not path or (path[0] == "fields" and (len(path) <= 2 or path[2] == "name"))


def _wording(error: jsonschema.ValidationError) -> str:
    """What is wrong, in the schema author's terms (jsonschema's own text quotes whole values)."""
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        return f"must be {_KINDS.get(expected, expected)}, not {quote(value)}"
    if kind == "required":
        missing = next((name for name in expected if name not in value), expected[0])
        return f"{quote(missing)} is missing"
    if kind == "enum":
        return f"{quote(value)} is not a field type; the types are {', '.join(TYPES)}"
    if kind == "format":
        return f"{quote(value)} is not a regular expression: {error.cause}"
    if kind == "minimum":
        return f"must be {expected} or more, not {quote(value)}"
    if kind == "anyOf":
        return f"must be a field name or a list of field names, not {quote(value)}"
    return f"{quote(value)} breaks the rule {kind} of Table Schema"


def _typed_problems(schema: dict) -> list[tuple[list, str]]:
    """Constraints the field's type does not support, and bounds or enum values not of that type.

    Read by frictionless' own value readers, as the structure checks will read them (a bound
    that does not read was compared with a number: a TypeError).
    """
    from frictionless import FrictionlessException, system  # imported here: most loads never need it

    problems = []
    for index, field in enumerate(schema["fields"]):
        constraints = field.get("constraints") or {}
        if not constraints:
            continue
        kind = field.get("type", "string")
        cls = system.select_field_class(kind)
        try:
            read = cls(name=field["name"], format=field.get("format", "default")).create_value_reader()
        except FrictionlessException as exc:
            problems.append((["fields", index, "format"], f"{quote(field.get('format'))} cannot be read: {exc.error.note}"))
            continue
        for name, value in constraints.items():
            path = ["fields", index, "constraints", name]
            if name not in cls.supported_constraints and name != "unique":
                problems.append((path, f"{name} does not apply to a field of type {kind}"))
            elif name in _BOUNDS and read(value) is None:
                problems.append((path, f"{quote(value)} is not a valid {kind}"))
            elif name == "enum":
                unread = [item for item in value if read(item) is None]
                if unread:
                    problems.append((path, f"{quote(unread[0])} is not a valid {kind}"))
    return problems


def _key_problems(schema: dict) -> list[tuple[list, str]]:
    """Primary and foreign key fields that are not fields of this schema."""
    names = {field["name"] for field in schema["fields"]}
    problems = []
    keys = [("primaryKey",)] + [("foreignKeys", index, "fields") for index in range(len(schema.get("foreignKeys", [])))]
    for where in keys:
        node = schema
        for part in where:
            node = node.get(part) if isinstance(node, dict) else node[part]
        listed = [node] if isinstance(node, str) else node or []
        for position, name in enumerate(listed):
            if name not in names:
                at = list(where) + ([] if isinstance(node, str) else [position])
                problems.append((at, f"{quote(name)} is not a field of this schema"))
    return problems


def _target(path: list) -> tuple:
    """The part dropped for a problem at ``path``: one constraint, one field member, one foreign key, or a top-level member."""
    if path[0] == "fields":
        return tuple(path[:4] if path[2] == "constraints" and len(path) > 3 else path[:3])
    if path[0] == "foreignKeys":
        return tuple(path[:2])
    return tuple(path[:1])


def _drop(schema: dict, paths: list[list]) -> None:
    """Remove the parts at fault (deepest and last first, so list positions still hold); a bad type becomes ``any``."""
    for target in sorted({_target(path) for path in paths}, key=_order, reverse=True):
        *parents, last = target
        node = schema
        for part in parents:
            node = node[part]
        if target[0] == "fields" and len(target) == 3 and last == "type":
            node["type"] = "any"
            node.pop("format", None)
            node["constraints"] = {k: v for k, v in (node.get("constraints") or {}).items() if k in ("required", "unique")}
        elif isinstance(node, list):
            del node[last]
        else:
            node.pop(last, None)


def _order(target: tuple) -> list[tuple]:
    """A sort key for targets: positions compare as numbers (10 after 9), names as text."""
    return [(0, part, "") if isinstance(part, int) else (1, 0, part) for part in target]


def _finding(file: str, base: str, schema: dict, path: list, message: str, whole: bool) -> Finding:
    """A problem at ``path`` of the schema, named by the field it belongs to (else the top-level member)."""
    field = path[0] if path and path[0] != "fields" else None
    if path[:1] == ["fields"] and len(path) >= 2 and isinstance(schema.get("fields"), list):
        spec = schema["fields"][path[1]]
        field = spec.get("name") if isinstance(spec, dict) and isinstance(spec.get("name"), str) else None
    elif path == ["fields"]:
        field = "fields"
    outcome = "the table is not checked against this schema" if whole else "ignored; the rest of the schema still applies"
    return RULE.finding(file, None, field, f"{message} ({outcome})", pointer=base + json_pointer(*path))
