"""Publish the contract as documents partners can read and tools can check:

- `docs/events/<type>.json`: one JSON Schema (2020-12) per event type, the whole CloudEvent
  with `data` described by the type's payload model; the compatibility test compares new
  models with these files, so they are the published v1 contract;
- `docs/asyncapi.yaml`: one AsyncAPI 3.0 document with every topic, every message, and
  which service sends and receives what.

    python -m crm_contracts.export [--check] [OUT_DIR]   (OUT_DIR defaults to docs)

`--check` writes nothing and exits 1 listing the files that differ. Writing YAML needs
PyYAML (installed in the workspace; the package itself needs only pydantic).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_contracts import topics
from crm_contracts.envelope import CLOUDEVENTS_CONTENT_TYPE, CloudEvent
from crm_contracts.examples import example_event
from crm_contracts.registry import EVENT_TYPES, EventSpec, events_on, spec_for

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EVENTS_DIR = "events"
ASYNCAPI_FILE = "asyncapi.yaml"
KAFKA_BINDING_VERSION = "0.5.0"
DEFAULT_PARTITIONS = 6


# ------------------------------------------------------------------ JSON Schema per type


def event_schema(type_: str) -> dict[str, Any]:
    """The JSON Schema of one event type: the CloudEvent envelope with `data` replaced by
    the payload model's schema and `type` fixed to `type_`."""
    spec = spec_for(type_)
    schema = CloudEvent.model_json_schema()
    data = spec.data_model.model_json_schema()
    defs = data.pop("$defs", {})
    schema["properties"]["type"] = {**schema["properties"]["type"], "const": type_}
    schema["properties"]["data"] = data
    if defs:
        schema["$defs"] = defs
    schema.update(
        {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": f"urn:crm:event:{type_}",
            "title": type_,
            "description": (
                f"CloudEvents 1.0 structured-mode event on topic {spec.topic}; "
                f"data: {spec.data_model.__name__}."
            ),
            "examples": [example_event(type_).model_dump(mode="json")],
            "x-topic": spec.topic,
            "x-producer": spec.producer,
            "x-consumers": list(spec.consumers),
        }
    )
    return schema


# ------------------------------------------------------------------ AsyncAPI 3.0


def asyncapi_document() -> dict[str, Any]:
    """Every topic as a channel, every event type as a message, and per service one send
    operation for the topic it produces and one receive operation per topic it consumes."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for topic in (*topics.PARTNER_TOPICS, *topics.PLATFORM_TOPICS):
        specs = events_on(topic)
        channel_id = _channel_id(topic)
        for spec in specs:
            name = spec.data_model.__name__
            _add_schemas(schemas, spec)
            messages[name] = _message(spec)
        channels[channel_id] = {
            "address": topic,
            "title": topic,
            "description": _channel_description(topic),
            "messages": {
                spec.data_model.__name__: {
                    "$ref": f"#/components/messages/{spec.data_model.__name__}"
                }
                for spec in specs
            },
            "bindings": {
                "kafka": {
                    "partitions": DEFAULT_PARTITIONS,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        channel_messages = [
            {"$ref": f"#/channels/{channel_id}/messages/{spec.data_model.__name__}"}
            for spec in specs
        ]
        producer = topics.TOPIC_PRODUCER[topic]
        operations[f"{producer}.send.{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"{producer} publishes to {topic}",
            "messages": channel_messages,
        }
        if producer == topics.PARTNERS:
            gateway = topics.PARTNER_GATEWAY
            operations[f"{gateway}.send.{channel_id}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "title": f"{gateway} forwards partner events POSTed to /v1/partner-events",
                "messages": channel_messages,
            }
        for consumer in topics.TOPIC_CONSUMERS[topic]:
            operations[f"{consumer}.receive.{channel_id}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "title": f"{consumer} consumes {topic} (consumer group crm-{consumer})",
                "messages": channel_messages,
            }

    messages["DeadLetter"] = _dead_letter_message()
    for service in topics.SERVICES:
        topic = topics.dlq_topic(service)
        channel_id = _channel_id(topic)
        channels[channel_id] = {
            "address": topic,
            "title": topic,
            "description": (
                f"What {service} could not process after its retries; nothing is dropped "
                "silently, and a re-drive command puts a message back on its original topic."
            ),
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        operations[f"{service}.send.{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "title": f"{service} dead-letters a message",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/DeadLetter"}],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "CRM platform events",
            "version": "1.0.0",
            "description": (
                "Every Kafka message is a CloudEvents 1.0 structured-mode JSON document "
                f"({CLOUDEVENTS_CONTENT_TYPE}). The `region` extension attribute is required; "
                "the message key is the aggregate id (`subject`), so one aggregate's events "
                "stay in order. Trace context travels in the `traceparent` header. Consumers "
                "ignore unknown fields; a breaking change gets a new type and a `.v2` topic. "
                "Generated by `python -m crm_contracts.export`; do not edit by hand."
            ),
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "The embedded development broker (`make run`).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel_id(topic: str) -> str:
    """`crm.partner.customers.v1` -> `partnerCustomersV1`."""
    words = topic.removeprefix("crm.").replace("-", ".").split(".")
    return words[0] + "".join(word[:1].upper() + word[1:] for word in words[1:])


def _channel_description(topic: str) -> str:
    producer = topics.TOPIC_PRODUCER[topic]
    consumers = ", ".join(topics.TOPIC_CONSUMERS[topic])
    if producer == topics.PARTNERS:
        origin = (
            "Published by integration partners, directly or through the partner gateway "
            f"of {topics.PARTNER_GATEWAY} (`POST /v1/partner-events`)."
        )
    else:
        origin = f"Published by {producer} through its outbox."
    return f"{origin} Consumed by: {consumers}."


def _message(spec: EventSpec) -> dict[str, Any]:
    summary, _, details = (spec.data_model.__doc__ or "").strip().partition("\n")
    payload = CloudEvent.model_json_schema()
    payload["properties"]["type"] = {**payload["properties"]["type"], "const": spec.type}
    payload["properties"]["data"] = {"$ref": f"#/components/schemas/{spec.data_model.__name__}"}
    message: dict[str, Any] = {
        "name": spec.type,
        "title": spec.data_model.__name__,
        "summary": " ".join(summary.split()),
        "contentType": CLOUDEVENTS_CONTENT_TYPE,
        "payload": payload,
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The aggregate id: the event's subject."},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
        "examples": [
            {"name": "example", "payload": example_event(spec.type).model_dump(mode="json")}
        ],
    }
    if details.strip():
        message["description"] = " ".join(details.split())
    return message


def _add_schemas(schemas: dict[str, Any], spec: EventSpec) -> None:
    """Put the payload schema and its definitions under components/schemas, refusing two
    different definitions under one name."""
    data = spec.data_model.model_json_schema(ref_template="#/components/schemas/{model}")
    found = {**data.pop("$defs", {}), spec.data_model.__name__: data}
    for name, schema in found.items():
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"two different schemas are both called {name}")
        schemas[name] = schema


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": "dead-letter",
        "title": "DeadLetter",
        "summary": "A message a service could not process, byte for byte as it was read.",
        "contentType": "application/octet-stream",
        "payload": {"description": "The original message value, unchanged."},
        "headers": {
            "type": "object",
            "properties": {
                name: {"type": "string", "description": description}
                for name, description in topics.DLQ_HEADERS.items()
            },
            "required": list(topics.DLQ_HEADERS),
        },
    }


# ------------------------------------------------------------------ files


def render(out_dir: str | Path = "docs") -> dict[Path, str]:
    """Every generated file under `out_dir` and its exact text."""
    out = Path(out_dir)
    files = {
        out / EVENTS_DIR / f"{type_}.json": _json_text(event_schema(type_))
        for type_ in sorted(EVENT_TYPES)
    }
    files[out / ASYNCAPI_FILE] = _yaml_text(asyncapi_document())
    return files


def differences(out_dir: str | Path = "docs") -> list[str]:
    """Files under `out_dir` that are missing, out of date, or left over from a type that
    is no longer registered."""
    expected = render(out_dir)
    problems = [
        f"{path}: {'out of date' if path.exists() else 'missing'}"
        for path, text in expected.items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    events_dir = Path(out_dir) / EVENTS_DIR
    if events_dir.is_dir():
        problems += [
            f"{path}: not a registered event type (removing a type is a breaking change)"
            for path in sorted(events_dir.glob("*.json"))
            if path not in expected
        ]
    return problems


def write(out_dir: str | Path = "docs") -> list[Path]:
    """Write every generated file; returns those that changed."""
    changed = []
    for path, text in render(out_dir).items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def _json_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _yaml_text(document: dict[str, Any]) -> str:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is in the workspace
        raise SystemExit("crm_contracts.export needs PyYAML to write asyncapi.yaml") from None
    # A deep copy, so YAML anchors never appear for the messages shared between operations.
    return yaml.dump(
        copy.deepcopy(document),
        Dumper=_no_alias_dumper(yaml),
        sort_keys=True,
        allow_unicode=True,
        width=100,
    )


def _no_alias_dumper(yaml: Any) -> Any:
    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return Dumper


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_contracts.export",
        description="Write the JSON Schemas and the AsyncAPI document of the event contract.",
    )
    parser.add_argument("out_dir", nargs="?", default="docs", help="default: docs")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = differences(args.out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m crm_contracts.export", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
