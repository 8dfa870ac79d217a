"""Backward compatibility: the rules of `breaking_changes`, and the v1 models against the
published schemas in docs/events/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from crm_contracts.compat import breaking_changes
from crm_contracts.export import event_schema
from crm_contracts.registry import EVENT_TYPES

PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "events"


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


STRING = {"type": "string"}
OPTIONAL_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}


# ------------------------------------------------------------------ the rules, one by one


def test_identical_schemas_are_compatible():
    schema = obj(("a",), a=STRING, b=OPTIONAL_STRING)
    assert breaking_changes(schema, copy.deepcopy(schema)) == []


def test_documentation_changes_are_compatible():
    old = obj(a={"type": "string", "title": "A", "description": "old"})
    new = obj(a={"type": "string", "title": "Alpha", "description": "new", "examples": ["x"]})
    assert breaking_changes(old, new) == []


def test_a_removed_property_breaks():
    assert breaking_changes(obj(a=STRING, b=STRING), obj(a=STRING)) == [
        "b: property removed (or renamed)"
    ]


def test_a_renamed_property_breaks():
    problems = breaking_changes(obj(("phone",), phone=STRING), obj(("mobile",), mobile=STRING))
    assert "phone: property removed (or renamed)" in problems
    assert "mobile: new required property" in problems


def test_a_new_optional_property_is_compatible():
    assert breaking_changes(obj(a=STRING), obj(a=STRING, b=OPTIONAL_STRING)) == []


def test_a_new_required_property_breaks():
    assert breaking_changes(obj(a=STRING), obj(("b",), a=STRING, b=STRING)) == [
        "b: new required property"
    ]


def test_an_optional_property_made_required_breaks():
    assert breaking_changes(obj(a=STRING), obj(("a",), a=STRING)) == [
        "a: optional property became required"
    ]


def test_a_required_property_made_optional_is_compatible():
    assert breaking_changes(obj(("a",), a=STRING), obj(a=OPTIONAL_STRING)) == []


def test_a_changed_type_breaks():
    assert breaking_changes(obj(a=STRING), obj(a={"type": "integer"})) == [
        "a: type changed from string to integer"
    ]


def test_null_no_longer_accepted_breaks():
    assert breaking_changes(obj(a=OPTIONAL_STRING), obj(a=STRING)) == [
        "a: type narrowed: null no longer accepted"
    ]


def test_a_wider_type_is_compatible():
    assert breaking_changes(obj(a={"type": "integer"}), obj(a={"type": "number"})) == []
    assert breaking_changes(obj(a=STRING), obj(a=OPTIONAL_STRING)) == []
    assert breaking_changes(obj(a=STRING), obj(a={})) == []


def test_a_tighter_bound_breaks_and_a_looser_one_does_not():
    old = obj(score={"type": "integer", "minimum": 1, "maximum": 5})
    tighter = obj(score={"type": "integer", "minimum": 1, "maximum": 4})
    looser = obj(score={"type": "integer", "minimum": 0, "maximum": 10})
    assert breaking_changes(old, tighter) == ["score: type narrowed: maximum 5 -> 4"]
    assert breaking_changes(old, looser) == []


def test_a_new_format_or_pattern_breaks():
    timed = obj(at={"type": "string", "format": "date-time"})
    assert breaking_changes(obj(at=STRING), timed) == [
        "at: type narrowed: format 'date-time' added"
    ]
    patterned = obj(n={"type": "string", "pattern": "^[A-Z]+$"})
    assert breaking_changes(obj(n=STRING), patterned) == [
        "n: type narrowed: pattern '^[A-Z]+$' added"
    ]


def test_a_removed_enum_value_breaks():
    old = obj(channel={"type": "string", "enum": ["hotline", "forum", "letter"]})
    new = obj(channel={"type": "string", "enum": ["hotline", "forum"]})
    assert breaking_changes(old, new) == ["channel: enum value removed: 'letter'"]


def test_a_new_enum_value_is_compatible():
    old = obj(channel={"type": "string", "enum": ["hotline", "forum"]})
    new = obj(channel={"type": "string", "enum": ["hotline", "forum", "wechat"]})
    assert breaking_changes(old, new) == []


def test_an_enum_on_a_free_string_breaks():
    new = obj(channel={"type": "string", "enum": ["hotline"]})
    assert breaking_changes(obj(channel=STRING), new) == [
        "channel: type narrowed to the values 'hotline'"
    ]


def test_refs_are_followed_into_definitions():
    def with_enum(values: list[str]) -> dict[str, Any]:
        schema = obj(
            severity={"anyOf": [{"$ref": "#/$defs/Severity"}, {"type": "null"}], "default": None}
        )
        schema["$defs"] = {"Severity": {"type": "string", "enum": values, "title": "Severity"}}
        return schema

    assert (
        breaking_changes(with_enum(["general", "major"]), with_enum(["general", "major", "x"]))
        == []
    )
    assert breaking_changes(with_enum(["general", "major"]), with_enum(["general"])) == [
        "severity: enum value removed: 'major'"
    ]


def test_nested_objects_and_arrays_are_compared():
    old = obj(data=obj(items={"type": "array", "items": obj(("id",), id=STRING, size=STRING)}))
    new = obj(data=obj(items={"type": "array", "items": obj(("id",), id=STRING)}))
    assert breaking_changes(old, new) == ["data.items[].size: property removed (or renamed)"]


def test_map_values_are_compared():
    old = obj(scores={"type": "object", "additionalProperties": {"type": "integer", "maximum": 5}})
    new = obj(scores={"type": "object", "additionalProperties": {"type": "string"}})
    assert breaking_changes(old, new) == ["scores.*: type changed from integer to string"]


def test_refusing_additional_properties_breaks():
    new = obj(a=STRING)
    new["additionalProperties"] = False
    assert breaking_changes(obj(a=STRING), new) == [
        "(root): additional properties no longer allowed"
    ]


# ------------------------------------------------------------------ on the real schemas


def test_breaking_a_real_event_is_caught():
    published = event_schema("crm.intake.contact.received.v1")
    changed = copy.deepcopy(published)
    del changed["properties"]["data"]["properties"]["kind_hint"]
    changed["$defs"]["ContactChannel"]["enum"].remove("letter")
    changed["properties"]["data"]["required"].append("reply_to")
    assert breaking_changes(published, changed) == [
        "data.channel: enum value removed: 'letter'",
        "data.kind_hint: property removed (or renamed)",
        "data.reply_to: optional property became required",
    ]


def _published() -> list[Path]:
    return sorted(PUBLISHED.glob("*.json"))


def test_the_published_schemas_exist():
    assert {path.stem for path in _published()} == set(EVENT_TYPES)


@pytest.mark.parametrize("path", _published(), ids=lambda path: path.stem)
def test_v1_models_stay_compatible_with_the_published_schemas(path: Path):
    """A breaking change to a v1 model needs a new type and a .v2 topic instead."""
    type_ = path.stem
    assert type_ in EVENT_TYPES, f"{type_} was published and may not be removed"
    published = json.loads(path.read_text(encoding="utf-8"))
    assert breaking_changes(published, event_schema(type_)) == []
