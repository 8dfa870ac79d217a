"""Hostile input to `parse_event` and `decode_json`: every failure is a ContractError that
names what is wrong, never another exception a consumer would retry forever."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crm_contracts.examples import example_event
from crm_contracts.registry import MAX_DEPTH, ContractError, decode_json, parse_event

CALL = "crm.partner.hotline.call-recorded.v1"


def call_document(**data: Any) -> dict[str, Any]:
    document = json.loads(example_event(CALL).model_dump_json(exclude_none=True))
    document["data"].update(data)
    return document


def nested_text(depth: int, opener: str = '{"a":', closer: str = "}") -> str:
    return opener * depth + "1" + closer * depth


@pytest.mark.parametrize("depth", [MAX_DEPTH, 500, 5_000, 200_000])
@pytest.mark.parametrize(("opener", "closer"), [('{"a":', "}"), ("[", "]")])
def test_deeply_nested_data_is_a_contract_error_naming_the_field(depth, opener, closer):
    document = json.dumps(call_document(notes=0))
    raw = document.replace('"notes": 0', '"notes": ' + nested_text(depth, opener, closer))
    with pytest.raises(ContractError) as caught:
        parse_event(raw.encode())
    assert "deeper than" in str(caught.value) or "nest" in str(caught.value)
    if depth < 900:  # below what json.loads itself can decode, the field is named
        assert caught.value.field == "data.notes"


def test_nesting_within_the_limit_is_accepted():
    # The envelope and `data` take two levels; what is inside may use the rest.
    raw = json.dumps(call_document(notes=0)).replace('"notes": 0', '"notes": ' + nested_text(MAX_DEPTH - 3))
    event, data = parse_event(raw)
    assert data.call_id == event.data["call_id"]


def test_a_deeply_nested_python_dict_is_refused_too():
    inner: dict[str, Any] = {}
    document = call_document(notes=inner)
    for _ in range(10_000):
        inner["a"] = {}
        inner = inner["a"]
    with pytest.raises(ContractError) as caught:
        parse_event(document)
    assert caught.value.field == "data.notes"


def test_any_exception_while_validating_becomes_a_contract_error(monkeypatch):
    from crm_contracts import registry

    def explode(*args, **kwargs):
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(registry.CloudEvent, "model_validate", explode)
    with pytest.raises(ContractError, match="OverflowError"):
        parse_event(json.dumps(call_document()))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"duration_s": 10**30}, "data.duration_s"),
        ({"duration_s": 86_401}, "data.duration_s"),
        ({"duration_s": -1}, "data.duration_s"),
        ({"caller_phone": "1"}, "data.caller_phone"),
        ({"caller_phone": "call me back"}, "data.caller_phone"),
        ({"caller_phone": "1" * 21}, "data.caller_phone"),
        ({"started_at": "2101-01-01T00:00:00+08:00"}, "data.started_at"),
        ({"started_at": "1969-12-31T00:00:00+00:00"}, "data.started_at"),
        ({"started_at": 10**30}, "data.started_at"),
        ({"summary": 10**5000}, None),  # json.loads refuses ints of more than 4300 digits
    ],
)
def test_absurd_values_are_refused_with_the_field_named(data, field):
    with pytest.raises(ContractError) as caught:
        parse_event(json.dumps(call_document(**data)) if field else _with_huge_int())
    if field:
        assert caught.value.field == field


def _with_huge_int() -> str:
    return json.dumps(call_document(summary=0)).replace('"summary": 0', '"summary": ' + "9" * 5000)


@pytest.mark.parametrize(
    "data",
    [
        {"duration_s": 0},
        {"duration_s": 86_400},
        {"caller_phone": "+86 138-0013-8000"},
        {"caller_phone": "95555"},
        {"started_at": "1970-01-01T00:00:00+00:00"},
        {"started_at": "2100-12-31T23:59:59+08:00"},
    ],
)
def test_plausible_values_at_the_bounds_are_accepted(data):
    _, parsed = parse_event(json.dumps(call_document(**data)))
    for name, value in data.items():
        assert getattr(parsed, name) is not None
        if name != "started_at":
            assert getattr(parsed, name) == value


def test_an_envelope_time_out_of_range_is_refused():
    document = call_document()
    document["time"] = "9999-12-31T00:00:00Z"
    with pytest.raises(ContractError) as caught:
        parse_event(document)
    assert caught.value.field == "time"


def test_decode_json_refuses_deep_arrays_and_accepts_an_array_of_events():
    events = [call_document(), call_document()]
    assert decode_json(json.dumps(events)) == events
    with pytest.raises(ContractError):
        decode_json(nested_text(100_000, "[", "]"))
    with pytest.raises(ContractError):
        decode_json("[" * 70 + "]" * 70)
    with pytest.raises(ContractError):
        decode_json(b"\xff")
