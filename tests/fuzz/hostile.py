"""Hypothesis strategies for hostile Kafka messages on a topic: broken envelopes, broken
payloads, deep nesting, huge values, wrong types, absurd values and plain garbage.

Each strategy starts from a valid event of the type (its registered example) and breaks
one thing; what the contract happens to accept after all (a lax coercion) is filtered
out, so every message drawn must be dead-lettered.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from crm_contracts.examples import example_event
from crm_contracts.regions import KNOWN_REGIONS
from crm_contracts.registry import EventSpec
from crm_runtime.kafka import read_event
from hypothesis import strategies as st

ENVELOPE_REQUIRED = ("specversion", "id", "type", "source", "time", "subject", "region", "data")
OUT_OF_RANGE_TIMES = ("9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00Z", "1900-01-01T00:00:00+08:00",
                      "2101-01-01T00:00:00+08:00", "2026-03-01T10:00:00")  # the last lacks an offset


def valid_document(spec: EventSpec, subject: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(example_event(spec.type).model_dump_json(exclude_none=True))
    document["id"] = str(uuid.uuid4())
    document["subject"] = subject
    return document


def valid_message(spec: EventSpec, subject: str) -> bytes:
    return json.dumps(valid_document(spec, subject), ensure_ascii=False).encode()


def _schema(spec: EventSpec) -> dict[str, Any]:
    return spec.data_model.model_json_schema()


def _required(spec: EventSpec) -> list[str]:
    return list(_schema(spec).get("required", []))


def _datetime_fields(spec: EventSpec) -> list[str]:
    fields = []
    for name, prop in _schema(spec).get("properties", {}).items():
        branches = [prop, *prop.get("anyOf", [])]
        if any(b.get("format") == "date-time" for b in branches):
            fields.append(name)
    return fields


def _is_object_field(spec: EventSpec, name: str) -> bool:
    prop = _schema(spec).get("properties", {}).get(name, {})
    return "$ref" in prop or prop.get("type") == "object"


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


def _nested(depth: int, kind: str) -> str:
    return ('{"a":' * depth + "1" + "}" * depth) if kind == "object" else ("[" * depth + "]" * depth)


def hostile_messages(spec: EventSpec, subject: str) -> st.SearchStrategy[tuple[str, bytes]]:
    """(what was broken, the message) for one event type."""

    def dump(label: str, document: Any) -> tuple[str, bytes]:
        return label, json.dumps(document, ensure_ascii=False).encode()

    def base() -> dict[str, Any]:
        return valid_document(spec, subject)

    missing_attribute = st.sampled_from(ENVELOPE_REQUIRED).map(
        lambda name: dump(f"envelope without {name}", {k: v for k, v in base().items() if k != name}))
    wrong_attribute = st.tuples(st.sampled_from(ENVELOPE_REQUIRED), junk).map(
        lambda pair: dump(f"envelope {pair[0]}={pair[1]!r:.40}", {**base(), pair[0]: pair[1]}))
    bad_region = st.text(min_size=1, max_size=30).filter(lambda r: r not in KNOWN_REGIONS).map(
        lambda region: dump("unknown region", {**base(), "region": region}))
    bad_type = st.text(max_size=40).map(lambda t: dump("unknown type", {**base(), "type": "crm.fuzz." + t}))
    bad_time = st.sampled_from(OUT_OF_RANGE_TIMES).map(lambda t: dump("envelope time out of range", {**base(), "time": t}))

    strategies = [missing_attribute, wrong_attribute, bad_region, bad_type, bad_time]

    required = _required(spec)
    if required:
        strategies.append(st.sampled_from(required).map(lambda name: dump(
            f"data without {name}", {**base(), "data": {k: v for k, v in base()["data"].items() if k != name}})))
        strategies.append(st.tuples(st.sampled_from(required), junk).map(lambda pair: dump(
            f"data.{pair[0]} of the wrong type",
            {**base(), "data": {**base()["data"],
                                pair[0]: [pair[1]] if _is_object_field(spec, pair[0]) else {"x": pair[1]}}})))
    times = _datetime_fields(spec)
    if times:
        strategies.append(st.tuples(st.sampled_from(times), st.sampled_from(OUT_OF_RANGE_TIMES)).map(lambda pair: dump(
            f"data.{pair[0]} out of range", {**base(), "data": {**base()["data"], pair[0]: pair[1]}})))

    def nested(args: tuple[int, str, bool]) -> tuple[str, bytes]:
        depth, kind, in_data = args
        marker = "__hostile__"
        document = base()
        (document["data"] if in_data else document)[marker] = 0
        text = json.dumps(document, ensure_ascii=False).replace(f'"{marker}": 0', f'"{marker}": {_nested(depth, kind)}')
        return f"{kind}s nested {depth} deep", text.encode()

    strategies.append(st.tuples(st.integers(65, 20_000), st.sampled_from(["object", "array"]), st.booleans())
                      .map(nested))

    def huge(args: tuple[int, str]) -> tuple[str, bytes]:
        size, where = args
        document = base()
        (document["data"] if where == "data" else document)["padding"] = "\u7530" * (size // 3)
        return f"{size}-byte {where} string", json.dumps(document, ensure_ascii=False).encode()

    strategies.append(st.tuples(st.integers(1_100_000, 3_000_000), st.sampled_from(["data", "envelope"])).map(huge))
    strategies.append(st.binary(max_size=300).map(lambda raw: ("random bytes", raw)))
    strategies.append(junk.filter(lambda v: not isinstance(v, dict)).map(lambda v: dump("not an object", v)))
    return st.one_of(strategies).filter(lambda item: isinstance(read_event(item[1]), str))
