"""The dependencies surveys' entrypoints hand to its use cases, built once in bootstrap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crm_runtime.leases import Timers

from surveys.adapters.quiet import QuietClaims
from surveys.adapters.store import CampaignStore, CoverageStore, Directory, SurveyStore
from surveys.adapters.worklist import Worklist
from surveys.domain.schedule import Policy


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SurveysDeps:
    surveys: SurveyStore
    directory: Directory
    worklist: Worklist
    coverage: CoverageStore
    campaigns: CampaignStore
    timers: Timers
    policy: Policy
    link_secret: str
    quiet: QuietClaims
    product_forms: dict[str, str] = field(default_factory=dict)
    now: Callable[[], datetime] = _now
