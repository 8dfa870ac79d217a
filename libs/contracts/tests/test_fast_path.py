"""`parse_event` reads Kafka's bytes by a fast path (pydantic's JSON parser, nesting
bounded by counting brackets) and falls back to the exact path for anything it refuses:
for every input, valid or hostile, the answer must be the exact path's, word for word."""

from __future__ import annotations

import json

import pytest
from crm_contracts import registry
from crm_contracts.examples import example_event
from crm_contracts.registry import EVENT_TYPES, MAX_DEPTH, ContractError, parse_event

CALL = "crm.partner.hotline.call-recorded.v1"
BASE = example_event(CALL).model_dump_json()


def _with(attribute: str) -> bytes:
    """The call event with `attribute` (raw JSON text) inserted before its first field."""
    return BASE.replace('"specversion"', attribute + ',"specversion"', 1).encode()


def _nested(depth: int) -> bytes:
    return _with('"x":' + "[" * depth + "1" + "]" * depth)


HOSTILE = {
    "NaN": _with('"x":NaN'),
    "Infinity": _with('"x":-Infinity'),
    "exponent past float": _with('"x":1e400'),
    "int of 4,300 digits": _with('"x":' + "9" * 4300),
    "int of 4,301 digits": _with('"x":' + "9" * 4301),
    "lone surrogate": _with('"x":"\\ud800"'),
    "surrogate in data": BASE.replace('"call_id":"', '"call_id":"\\udfff', 1).encode(),
    "duplicate region, the last wins": BASE[:-1].encode() + b',"region":"beijing"}',
    "duplicate region, unknown": BASE[:-1].encode() + b',"region":"atlantis"}',
    "control character": _with('"x":"a\x01b"'),
    "trailing text": BASE.encode() + b"x",
    "trailing white space": BASE.encode() + b" \n",
    "byte order mark": "\ufeff".encode() + BASE.encode(),
    "invalid UTF-8": BASE.encode().replace(b"shenzhen", b"shen\xffzhen"),
    "not an object": b"[1, 2]",
    "a string": b'"event"',
    "empty": b"",
    "unknown type": BASE.replace(CALL, "crm.nobody.thing.v1").encode(),
    "unknown region": BASE.replace('"region":"shenzhen"', '"region":"atlantis"', 1).encode(),
    "data not an object": BASE.split('"data":')[0].encode() + b'"data":[]}',
    "extension attribute": _with('"traceparent":"00-abc-def-01"'),
    "time without offset": BASE.replace("+08:00", "", 1).encode(),
    "nesting just within": _nested(MAX_DEPTH - 3),
    "nesting at the bracket count": _nested(MAX_DEPTH - 2),
    "nesting past the limit": _nested(MAX_DEPTH),
}


def _answer(parse, raw: bytes):
    try:
        event, data = parse(raw)
    except ContractError as exc:
        return ("refused", str(exc), exc.field)
    return ("accepted", repr(event.model_dump()), type(data), repr(data.model_dump()))  # repr: NaN == NaN


@pytest.mark.parametrize("raw", [example_event(t).model_dump_json().encode() for t in EVENT_TYPES], ids=list(EVENT_TYPES))
def test_every_event_type_reads_the_same_by_both_paths(raw):
    assert _answer(parse_event, raw) == _answer(registry._parse_exact, raw)


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_bytes_get_the_exact_paths_answer(raw):
    assert _answer(parse_event, raw) == _answer(registry._parse_exact, raw)


def test_the_fast_path_reads_valid_bytes_without_the_exact_one(monkeypatch):
    def exact(raw):
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(registry, "_parse_exact", exact)
    event, data = parse_event(BASE.encode())
    assert event.type == CALL and data.call_id == json.loads(BASE)["data"]["call_id"]
