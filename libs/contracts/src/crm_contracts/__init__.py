"""The public event contract of the CRM platform: the CloudEvents envelope, one payload model
per v1 event type, topic names, and who produces and consumes what.

Pydantic only, nothing runs at import: every service and partner tool can depend on it.
"""

from crm_contracts.envelope import CloudEvent, new_event
from crm_contracts.regions import KNOWN_REGIONS
from crm_contracts.registry import (
    EVENT_TYPES,
    ContractError,
    EventSpec,
    event_type_of,
    parse_event,
    spec_for,
)

__all__ = [
    "EVENT_TYPES",
    "KNOWN_REGIONS",
    "CloudEvent",
    "ContractError",
    "EventSpec",
    "event_type_of",
    "new_event",
    "parse_event",
    "spec_for",
]
