"""``tableschema.check``: each problem found at its pointer, and only the part at fault dropped.

The malformed-package corpus (tests/fixtures/malformed/schema-*) runs the same checks through
``civharm validate``; these call the check directly for what a package fixture cannot show.
"""
from __future__ import annotations

import json

from civharm.tableschema import check
from conftest import REPO


def schema(**extra) -> dict:
    fields = [{"name": "id", "type": "string"}, {"name": "n", "type": "integer", "constraints": {"minimum": 0}}]
    return {"fields": fields, **extra}


def located(findings) -> list[tuple]:
    return [(f.file, f.pointer, f.field, f.rule_id) for f in findings]


def test_the_repository_schemas_are_sound_and_kept_as_they_are():
    for path in sorted((REPO / "schema").glob("*.json")):
        original = json.loads(path.read_text(encoding="utf-8"))
        trusted, findings = check(original, path.name)
        assert findings == [] and trusted == original, path.name


def test_a_constraint_the_type_does_not_support_is_dropped_alone():
    original = schema()
    original["fields"][1]["constraints"]["pattern"] = "[0-9]+"
    trusted, findings = check(original, "s.json")
    assert located(findings) == [("s.json", "/fields/1/constraints/pattern", "n", "package/invalid-schema")]
    assert "pattern does not apply to a field of type integer" in findings[0].message
    assert trusted["fields"][1]["constraints"] == {"minimum": 0}
    assert original["fields"][1]["constraints"]["pattern"] == "[0-9]+"  # the loaded schema is left as read


def test_foreign_keys_on_unknown_fields_are_dropped_one_by_one_in_any_number():
    """Twelve keys, so that positions 10 and 11 are dropped after 9 would have been: numbers, not text, order them."""
    keys = [{"fields": "id" if i % 5 else f"gone{i}", "reference": {"resource": "other", "fields": "id"}} for i in range(12)]
    trusted, findings = check(schema(foreignKeys=keys), "s.json")
    assert sorted(f.pointer for f in findings) == ["/foreignKeys/0/fields", "/foreignKeys/10/fields", "/foreignKeys/5/fields"]
    assert [fk["fields"] for fk in trusted["foreignKeys"]] == ["id"] * 9


def test_an_inline_schema_is_located_inside_the_descriptor():
    trusted, findings = check({"fields": [{"name": "a", "type": "integer", "constraints": {"maximum": "many"}}]},
                              "datapackage.json", "/resources/3/schema")
    assert located(findings) == [("datapackage.json", "/resources/3/schema/fields/0/constraints/maximum", "a", "package/invalid-schema")]
    assert trusted["fields"][0]["constraints"] == {}


def test_a_field_list_that_cannot_be_read_drops_the_schema_and_says_so():
    trusted, findings = check({"fields": [{"name": "a"}, 7]}, "s.json")
    assert trusted is None
    assert located(findings) == [("s.json", "/fields/1", None, "package/invalid-schema")]
    assert findings[0].message == "must be an object, not 7 (the table is not checked against this schema)"
