"""Who is not surveyed, and why (pure rules; the facts come from partner and case events).

In this order:
1. no consent, no survey (a customer the archive has not sent counts as no consent);
2. the 3-month visit skips customers with a major or crisis complaint, customers
   renovating and customers not moved in;
3. no customer, nor household, surveyed twice within the quiet period;
4. no satisfaction survey while the same customer has a complaint open: it is held and
   falls due after the complaint closes.
The case return visit is a step of the complaint procedure itself: it follows only rule 1,
and does not count as a survey for the quiet period of the others (a survey held for the
complaint falls due after it closes, right when its return visit is made).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from surveys.domain.schedule import Planned, Policy


@dataclass(frozen=True)
class PastSurvey:
    survey_id: str
    due_at: datetime


@dataclass(frozen=True)
class Facts:
    known: bool = False  # the partner archive sent this customer
    consent: bool = False
    occupancy: str | None = None  # of the survey's home: not_moved_in, renovating, occupied
    major_complaint_at: datetime | None = None
    open_complaints: tuple[str, ...] = ()  # case ids
    recent: tuple[PastSurvey, ...] = ()  # this customer's surveys
    household_recent: tuple[PastSurvey, ...] = field(default_factory=tuple)  # the home's


@dataclass(frozen=True)
class Decision:
    outcome: str  # schedule | exclude | defer
    reason: str | None = None  # an ExclusionReason value
    detail: str | None = None


SCHEDULE = Decision("schedule")


def decide(planned: Planned, facts: Facts, policy: Policy) -> Decision:
    if not facts.known:
        return Decision("exclude", "no_consent", "customer not in the archive")
    if not facts.consent:
        return Decision("exclude", "no_consent", "the customer gave no consent")
    if planned.kind == "case_return_visit":
        return SCHEDULE
    if planned.kind == "living_3_months":
        lookback = planned.due_at - timedelta(days=policy.major_complaint_lookback_days)
        if facts.major_complaint_at is not None and facts.major_complaint_at >= lookback:
            return Decision("exclude", "major_complaint", "a major or crisis complaint")
        if facts.occupancy == "renovating":
            return Decision("exclude", "renovating", "the home is being renovated")
        if facts.occupancy == "not_moved_in":
            return Decision("exclude", "not_moved_in", "the owner has not moved in")
    for past, whose in ((facts.recent, "customer"), (facts.household_recent, "household")):
        survey = quiet_conflict(planned.survey_id, planned.due_at, past, policy.quiet_days)
        if survey is not None:
            return Decision("exclude", "already_surveyed",
                            f"the {whose} has survey {survey.survey_id} within {policy.quiet_days} days")
    others = [c for c in facts.open_complaints if c != planned.case_id]
    if others:
        return Decision("defer", None, f"complaint {others[0]} is open")
    return SCHEDULE


def quiet_conflict(survey_id: str, due_at: datetime, past: Iterable[PastSurvey], quiet_days: int,
                   ) -> PastSurvey | None:
    """Another survey due less than `quiet_days` from `due_at`, if there is one."""
    quiet = timedelta(days=quiet_days)
    for survey in past:
        if survey.survey_id != survey_id and abs(survey.due_at - due_at) < quiet:
            return survey
    return None


def counts_for_quiet(kind: str) -> bool:
    """The case return visit is a step of the complaint, not a satisfaction survey."""
    return kind != "case_return_visit"
