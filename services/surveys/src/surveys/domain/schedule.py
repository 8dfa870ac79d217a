"""When each survey is due, from the event that starts it (pure; the caller passes `now`).

Every survey has a window: it `opens_at` (the visit may be made from then), is `due_at`
(the deadline the worklist sorts by), and `expires_at` unanswered some days later. The
3-month and 1-year visits tell the customer a week ahead (`notice_at`); their eligibility
is checked again just before that notice (`check_at`), since a customer's situation
changes in three months.

A survey's id derives from what started it, so a redelivered event plans the same
survey again, and storing it a second time changes nothing.
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

KINDS = ("case_return_visit", "repair_return_visit", "sales_return_visit", "living_3_months",
         "inspection_1_year", "annual")
# The visits agents make by phone or at home; the annual survey is answered on its page.
WORKLIST_KINDS = frozenset(KINDS) - {"annual"}


@dataclass(frozen=True)
class Policy:
    case_visit_days: int = 7  # a case return visit within 7 days of closure
    repair_visit_days: int = 7
    sales_visit_days: int = 7  # a sales return visit within a week of signing
    living_months: int = 3
    inspection_months: int = 12
    notice_days: int = 7  # the customer is told a week before a scheduled visit
    check_before_notice_h: int = 24
    expire_after_days: int = 7  # unanswered this long after its deadline: expired
    remind_after_days: int = 2  # an unanswered survey is reminded this long after it opens
    annual_days: int = 30  # an annual campaign stays open this long
    quiet_days: int = 30  # no customer nor household surveyed twice within this
    deferral_days: int = 3  # a survey held for an open complaint is due this long after it closes
    major_complaint_lookback_days: int = 365


@dataclass(frozen=True)
class Planned:
    survey_id: str
    kind: str
    region: str
    customer_id: str
    opens_at: datetime
    due_at: datetime
    expires_at: datetime
    notice_at: datetime | None = None
    check_at: datetime | None = None
    case_id: str | None = None
    work_order_id: str | None = None
    contract_id: str | None = None
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    product_type: str | None = None
    campaign_id: str | None = None

    @property
    def household(self) -> str | None:
        return household_key(self.project, self.building, self.unit)

    def moved(self, opens_at: datetime, policy: Policy) -> Planned:
        """The same survey held back until `opens_at` (after a complaint closed)."""
        window = self.due_at - self.opens_at
        due = opens_at + window
        return replace(self, opens_at=opens_at, due_at=due, notice_at=None, check_at=None,
                       expires_at=due + timedelta(days=policy.expire_after_days))


def household_key(project: str | None, building: str | None, unit: str | None) -> str | None:
    return f"{project}|{building}|{unit}" if project and unit else None


def survey_id(kind: str, *natural_key: str) -> str:
    digest = hashlib.sha256("\x1f".join((kind, *natural_key)).encode()).hexdigest()[:24]
    return f"sv-{digest}"


def add_months(at: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it has fewer)."""
    month0 = at.month - 1 + months
    year, month = at.year + month0 // 12, month0 % 12 + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def _window(policy: Policy, opens_at: datetime, days: int) -> tuple[datetime, datetime, datetime]:
    due = opens_at + timedelta(days=days)
    return opens_at, due, due + timedelta(days=policy.expire_after_days)


def case_return_visit(policy: Policy, *, region: str, case_id: str, customer_id: str, closed_at: datetime,
                      closure: str, project: str | None = None, building: str | None = None,
                      unit: str | None = None) -> Planned:
    """`closure` tells one closure of a case from the next (a reopened case closes again)."""
    opens, due, expires = _window(policy, closed_at, policy.case_visit_days)
    return Planned(survey_id("case_return_visit", case_id, closure), "case_return_visit", region, customer_id,
                   opens, due, expires, case_id=case_id, project=project, building=building, unit=unit)


def repair_return_visit(policy: Policy, *, region: str, work_order_id: str, customer_id: str,
                        completed_at: datetime, project: str, building: str, unit: str,
                        case_id: str | None = None) -> Planned:
    opens, due, expires = _window(policy, completed_at, policy.repair_visit_days)
    return Planned(survey_id("repair_return_visit", work_order_id), "repair_return_visit", region, customer_id,
                   opens, due, expires, case_id=case_id, work_order_id=work_order_id, project=project,
                   building=building, unit=unit)


def sales_return_visit(policy: Policy, *, region: str, contract_id: str, customer_id: str, signed_at: datetime,
                       project: str, building: str, unit: str) -> Planned:
    opens, due, expires = _window(policy, signed_at, policy.sales_visit_days)
    return Planned(survey_id("sales_return_visit", contract_id), "sales_return_visit", region, customer_id,
                   opens, due, expires, contract_id=contract_id, project=project, building=building, unit=unit)


def delivery_visits(policy: Policy, *, region: str, customer_id: str, delivered_at: datetime, project: str,
                    building: str, unit: str, product_type: str | None) -> list[Planned]:
    """The living-experience visit at 3 months and the quality inspection at 1 year, each
    announced a week before and checked for eligibility just before that."""
    planned = []
    for kind, months in (("living_3_months", policy.living_months), ("inspection_1_year", policy.inspection_months)):
        due = add_months(delivered_at, months)
        notice = due - timedelta(days=policy.notice_days)
        planned.append(Planned(
            survey_id(kind, customer_id, project, building, unit), kind, region, customer_id,
            opens_at=due, due_at=due, expires_at=due + timedelta(days=policy.expire_after_days),
            notice_at=notice, check_at=notice - timedelta(hours=policy.check_before_notice_h),
            project=project, building=building, unit=unit, product_type=product_type))
    return planned


def campaign_id(region: str, year: int) -> str:
    return f"annual-{region}-{year}"


def annual_survey(policy: Policy, *, region: str, year: int, customer_id: str, starts_at: datetime,
                  project: str | None, building: str | None, unit: str | None,
                  product_type: str | None) -> Planned:
    opens, due, _ = _window(policy, starts_at, policy.annual_days)
    return Planned(survey_id("annual", region, str(year), customer_id), "annual", region, customer_id,
                   opens, due, due, project=project, building=building, unit=unit,
                   product_type=product_type, campaign_id=campaign_id(region, year))


def reminder_at(policy: Policy, planned: Planned) -> datetime | None:
    """One reminder, if it still falls before the deadline."""
    at = planned.opens_at + timedelta(days=policy.remind_after_days)
    return at if at < planned.due_at else None
