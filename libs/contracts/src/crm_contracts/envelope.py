"""The CloudEvents 1.0 envelope every Kafka message of the platform is wrapped in.

Structured mode: the whole event, attributes and `data`, is one JSON document, so partners
can read it with any Kafka client or a CloudEvents SDK.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts.fields import AwareDatetime, NonEmptyStr, RegionCode

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured mode, with the platform's `region` extension.

    Unknown attributes (other extensions) are kept, never refused: consumers ignore what
    they do not know.
    """

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = Field(description="CloudEvents version; always 1.0.")
    id: NonEmptyStr = Field(
        description="Unique per event and the idempotency key: a repeated id is the same event."
    )
    type: NonEmptyStr = Field(description="Event type, e.g. crm.cases.case.opened.v1.")
    source: NonEmptyStr = Field(description="Producer, e.g. /crm/cases or /partners/sales-crm.")
    time: AwareDatetime = Field(description="When it happened: RFC 3339 with an offset.")
    subject: NonEmptyStr = Field(
        description="Aggregate id (case id, customer id, ...); also the Kafka message key."
    )
    region: RegionCode
    datacontenttype: str = Field(default="application/json")
    data: dict[str, Any]


def new_event(
    type_: str,
    *,
    source: str,
    subject: str,
    region: str,
    data: BaseModel | dict[str, Any],
    id: str | None = None,
    time: datetime | None = None,
) -> CloudEvent:
    """Wrap a payload in an envelope: a fresh uuid4 id and the current UTC time unless given.

    A payload model is checked against the model registered for `type_`, so a producer
    cannot send a `CaseClosed` labelled as `case.opened`.
    """
    if isinstance(data, BaseModel):
        from crm_contracts.registry import EVENT_TYPES  # the registry imports this module

        spec = EVENT_TYPES.get(type_)
        if spec is not None and not isinstance(data, spec.data_model):
            raise TypeError(
                f"{type_} carries {spec.data_model.__name__}, not {type(data).__name__}"
            )
        payload = data.model_dump(mode="json")
    else:
        payload = data
    return CloudEvent(
        specversion="1.0",
        id=id or str(uuid.uuid4()),
        type=type_,
        source=source,
        time=time or datetime.now(UTC),
        subject=subject,
        region=region,
        data=payload,
    )
