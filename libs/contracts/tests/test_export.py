"""The generated documents: committed and current, complete, and internally consistent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from crm_contracts import topics
from crm_contracts.compat import main as compat_main
from crm_contracts.export import (
    ASYNCAPI_FILE,
    EVENTS_DIR,
    asyncapi_document,
    differences,
    event_schema,
    main,
    render,
)
from crm_contracts.registry import EVENT_TYPES

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_the_committed_docs_are_up_to_date(tmp_path: Path):
    assert main([str(tmp_path)]) == 0
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated == sorted(
        [Path(ASYNCAPI_FILE)] + [Path(EVENTS_DIR) / f"{t}.json" for t in EVENT_TYPES]
    )
    stale = [
        str(relative)
        for relative in generated
        if not (DOCS / relative).exists()
        or (DOCS / relative).read_bytes() != (tmp_path / relative).read_bytes()
    ]
    assert stale == [], "run: uv run python -m crm_contracts.export"


def test_check_reports_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["--check", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err

    main([str(tmp_path)])
    assert main(["--check", str(tmp_path)]) == 0

    opened = tmp_path / EVENTS_DIR / "crm.cases.case.opened.v1.json"
    opened.write_text("{}\n", encoding="utf-8")
    shutil.copy(opened, tmp_path / EVENTS_DIR / "crm.cases.case.vanished.v1.json")
    assert main(["--check", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{opened}: out of date" in err
    assert "crm.cases.case.vanished.v1.json: not a registered event type" in err
    assert len(differences(tmp_path)) == 2


def test_the_output_is_stable():
    assert render("x") == render("x")
    text = render("x")[Path("x") / EVENTS_DIR / "crm.cases.case.opened.v1.json"]
    assert text.endswith("}\n")
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_an_event_schema_is_the_envelope_with_its_payload():
    schema = event_schema("crm.intake.contact.received.v1")
    properties = schema["properties"]
    assert properties["type"]["const"] == "crm.intake.contact.received.v1"
    assert set(schema["required"]) >= {"specversion", "id", "type", "source", "time", "region"}
    assert properties["region"]["enum"][0] == "beijing"
    assert properties["data"]["title"] == "ContactReceived"
    assert "contact_id" in properties["data"]["required"]
    assert properties["data"]["properties"]["channel"]["$ref"] == "#/$defs/ContactChannel"
    assert schema["x-topic"] == topics.INTAKE_CONTACTS


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_reference_resolves():
    document = asyncapi_document()
    for ref in _refs(document):
        assert ref.startswith("#/"), ref
        _resolve(document, ref)
    for type_ in EVENT_TYPES:
        schema = event_schema(type_)
        for ref in _refs(schema):
            _resolve(schema, ref)


def test_asyncapi_covers_every_topic_message_and_service():
    document = yaml.safe_load((DOCS / ASYNCAPI_FILE).read_text(encoding="utf-8"))
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == set(topics.ALL_TOPICS)
    names = {message["name"] for message in document["components"]["messages"].values()}
    assert set(EVENT_TYPES) <= names

    operations = document["operations"].values()
    for topic in (*topics.PARTNER_TOPICS, *topics.PLATFORM_TOPICS):

        def acting(action: str, topic: str = topic) -> set[str]:
            return {
                op["title"].split()[0]
                for op in operations
                if op["action"] == action
                and _resolve(document, op["channel"]["$ref"])["address"] == topic
            }

        producer = topics.TOPIC_PRODUCER[topic]
        gateway = {topics.PARTNER_GATEWAY} if producer == topics.PARTNERS else set()
        assert acting("send") == {producer} | gateway
        assert acting("receive") == set(topics.TOPIC_CONSUMERS[topic])


def test_compat_command_against_the_published_schemas(tmp_path: Path):
    assert compat_main([str(DOCS / EVENTS_DIR)]) == 0
    schema = json.loads((DOCS / EVENTS_DIR / "crm.surveys.survey.completed.v1.json").read_text())
    del schema["properties"]["data"]["properties"]["nps"]
    schema["properties"]["data"]["properties"]["legacy"] = {"type": "string"}
    (tmp_path / "crm.surveys.survey.completed.v1.json").write_text(json.dumps(schema))
    assert compat_main([str(tmp_path)]) == 1
