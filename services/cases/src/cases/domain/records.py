"""The small frozen records a case keeps of each step (who, when, what)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import DomainError


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    customer_visible: bool = False


@dataclass(frozen=True)
class Assessment:
    nature: str
    influence: str
    notes: str | None
    by: str
    at: datetime


@dataclass(frozen=True)
class Findings:
    responsible_department: str
    responsible_post: str | None
    responsible_person: str | None
    root_cause: str
    written_findings: str
    evidence_attachment_ids: tuple[str, ...]
    by: str
    at: datetime


@dataclass(frozen=True)
class LegalOpinion:
    opinion: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Resolution:
    summary: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Approval:
    note: str | None
    by: str
    at: datetime


@dataclass(frozen=True)
class Closure:
    forced: bool
    reason: str | None
    outcome: str  # resolved | forced | invalid | consultation
    checklist: dict[str, bool]
    by: str
    at: datetime


@dataclass(frozen=True)
class Lesson:
    root_cause: str
    responsible_department: str
    improvement: str
    by: str
    at: datetime


@dataclass(frozen=True)
class Escalation:
    reason: str
    to: str
    by: str
    at: datetime


def require(value: str | None, name: str) -> str:
    if value is None or not str(value).strip():
        raise DomainError(f"{name} must not be empty", field=name)
    return str(value).strip()


def check_at(at: datetime) -> datetime:
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        raise DomainError("times must be timezone-aware", field="at")
    return at



def aware(value: Any) -> datetime | None:
    """A datetime from an ISO string or a naive UTC one (as pymongo hands them back)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value  # type: ignore[no-any-return]
