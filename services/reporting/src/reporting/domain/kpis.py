"""The KPIs a regional customer centre is measured on, computed from summed counters, each
with its target and whether it is met. Definitions (what is counted, over what base, which
month) are in the service README; targets default to the industry material's and every
region may override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

CHANNEL_REFERENCE = {"forum": 0.15, "hotline": 0.35, "front_desk": 0.50, "letter": 0.10}
BULK_DELIVERY_DAYS = 45
HALF_YEAR_DAYS = 183


@dataclass(frozen=True)
class Target:
    value: float
    comparison: str  # ">=" or "<="

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        eps = 1e-9
        return value >= self.value - eps if self.comparison == ">=" else value <= self.value + eps


ANNUAL_DIMENSIONS: dict[str, tuple[str, str, float]] = {
    "overall": ("总体满意度", "Overall satisfaction", 0.80),
    "loyalty": ("忠诚度", "Loyalty", 0.52),
    "repurchase": ("再购意愿", "Repurchase", 0.66),
    "recommendation": ("推荐意愿", "Recommendation", 0.80),
    "attention": ("持续关注", "Ongoing attention", 0.75),
    "complaint_handling": ("投诉处理", "Complaint handling", 0.70),
    "sales_service": ("销售服务", "Sales service", 0.70),
    "planning_design": ("规划设计", "Planning & design", 0.89),
    "amenities": ("配套设施", "Amenities", 0.60),
    "engineering_quality": ("工程质量", "Engineering quality", 0.62),
    "property_management": ("物业管理", "Property management", 0.90),
}

DEFAULT_TARGETS: dict[str, Target] = {
    "reply_timeliness": Target(1.0, ">="),
    "repair_satisfaction": Target(0.88, ">="),
    "repair_complaint_share": Target(0.03, "<="),
    "sales_satisfaction": Target(0.95, ">="),
    "sales_complaint_share": Target(0.02, "<="),
    "repairs_45_days": Target(30, "<="),
    "repairs_per_household_delivery": Target(2.3, "<="),
    "repairs_per_household_half_year": Target(6, "<="),
    "leak_rate": Target(0.03, "<="),
    "return_visit_coverage": Target(1.0, ">="),
    **{f"annual_{key}": Target(goal, ">=") for key, (_, _, goal) in ANNUAL_DIMENSIONS.items()},
}

NAMES: dict[str, tuple[str, str]] = {
    "contacts": ("来访量", "Contacts"),
    "channel_mix": ("渠道构成", "Channel mix"),
    "cases_opened": ("立案数", "Cases opened"),
    "reply_timeliness": ("投诉回复及时率", "Complaint reply timeliness"),
    "time_to_close_hours": ("平均关闭时长(小时)", "Average time to close (hours)"),
    "sla_breaches": ("超时次数", "SLA breaches"),
    "collective_incidents": ("集体投诉", "Collective incidents"),
    "return_visit_coverage": ("7日内回访率", "Return visits within 7 days"),
    "repair_satisfaction": ("维修回访满意度", "Repair return-visit satisfaction"),
    "repair_complaint_share": ("维修抱怨度", "Repair complaint share"),
    "sales_satisfaction": ("销售回访满意度", "Sales return-visit satisfaction"),
    "sales_complaint_share": ("销售回访抱怨度", "Sales return-visit complaint share"),
    "nps": ("净推荐值", "Net Promoter Score"),
    "repairs_45_days": ("集中交付45天返修项", "Repairs 45 days after bulk delivery"),
    "repairs_per_household_delivery": ("集中交付户均返修", "Repairs per household at bulk delivery"),
    "repairs_per_household_half_year": ("半年户均返修", "Repairs per household after half a year"),
    "leak_rate": ("渗漏率(每户每月)", "Leak rate per household-month"),
    "lessons_pareto": ("经验教训(按根因)", "Lessons learned by root cause"),
    **{f"annual_{k}": (zh, en) for k, (zh, en, _) in ANNUAL_DIMENSIONS.items()},
}

SURVEY_KINDS = ("case_return_visit", "repair_return_visit", "sales_return_visit",
                "living_3_months", "inspection_1_year", "annual")


def targets_for(region: str, overrides: Mapping[str, Mapping[str, float]]) -> dict[str, Target]:
    """The region's targets: the defaults, with the region's own values where it set one."""
    mine = overrides.get(region) or {}
    return {k: Target(float(mine[k]), t.comparison) if k in mine else t for k, t in DEFAULT_TARGETS.items()}


def _share(part: int, base: int) -> float | None:
    return part / base if base else None


def _prefixed(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in counters.items() if k.startswith(prefix) and v}


@dataclass
class Inputs:
    month: dict[str, int]  # the month cell's counters (one slice)
    year: dict[str, int]  # the year cell's counters up to and with the month's year
    households_halves: int  # households moved in, in halves (a bare-shell home is one half)
    projects: dict[str, dict[str, int]]  # per project: its gauge counters


def compute(inputs: Inputs, targets: Mapping[str, Target]) -> list[dict[str, Any]]:
    """Every KPI of one slice of one month, with its target, whether it is met, the counts
    behind it and the counters to drill into."""
    m = inputs.month
    rows: list[dict[str, Any]] = []

    def row(kpi: str, value: float | None, *, numerator: str | None = None, base: str | None = None,
            count: float | None = None, base_count: float | None = None, unit: str = "ratio",
            **extra: Any) -> None:
        target = targets.get(kpi)
        zh, en = NAMES[kpi]
        rows.append({
            "kpi": kpi, "name": {"zh-CN": zh, "en": en}, "value": value, "unit": unit,
            "target": target.value if target else None,
            "comparison": target.comparison if target else None,
            "met": target.met(value) if target else None,
            "count": count, "base": base_count,
            "drill": {k: v for k, v in (("numerator", numerator), ("base", base)) if v},
            **extra})

    total = m.get("contacts:total", 0)
    row("contacts", total, numerator="contacts:total", count=total, unit="count",
        by_kind=_prefixed(m, "contacts:kind:"))
    channels = _prefixed(m, "contacts:channel:")
    row("channel_mix", None, base="contacts:total", base_count=total, unit="shares",
        shares={c: _share(channels.get(c, 0), total) for c in CHANNEL_REFERENCE},
        counts={c: channels.get(c, 0) for c in CHANNEL_REFERENCE}, reference=CHANNEL_REFERENCE,
        by_channel_kind={k: v for k, v in _prefixed(m, "contacts:channel_kind:").items()})
    opened = m.get("cases:opened", 0)
    row("cases_opened", opened, numerator="cases:opened", count=opened, unit="count",
        by_category=_prefixed(m, "cases:category:"), by_severity=_prefixed(m, "cases:severity:"),
        by_status=_prefixed(m, "cases:status:"), by_department=_prefixed(m, "cases:department:"),
        by_channel=_prefixed(m, "cases:channel:"), by_validity=_prefixed(m, "cases:validity:"))
    timely, replied = m.get("reply:timely", 0), m.get("reply:cases", 0)
    row("reply_timeliness", _share(timely, replied), numerator="reply:timely", base="reply:cases",
        count=timely, base_count=replied)
    closed = m.get("close:count", 0)
    minutes = m.get("sum:close_minutes", 0)
    row("time_to_close_hours", round(minutes / closed / 60, 2) if closed else None, base="close:count",
        base_count=closed, unit="hours", by_outcome=_prefixed(m, "close:outcome:"))
    row("sla_breaches", m.get("sla:breaches", 0), numerator="sla:breaches", count=m.get("sla:breaches", 0),
        unit="count", by_clock=_prefixed(m, "sla:breaches:"))
    row("collective_incidents", m.get("incidents:count", 0), numerator="incidents:count",
        count=m.get("incidents:count", 0), unit="count", by_severity=_prefixed(m, "incidents:severity:"),
        customers=m.get("sum:incident_customers", 0))
    visited, due = m.get("visits:within_7d", 0), m.get("visits:due", 0)
    row("return_visit_coverage", _share(visited, due), numerator="visits:within_7d", base="visits:due",
        count=visited, base_count=due)
    for kind, prefix in (("repair_return_visit", "repair"), ("sales_return_visit", "sales")):
        done = m.get(f"surveys:{kind}:completed", 0)
        sat, dis = m.get(f"surveys:{kind}:satisfied", 0), m.get(f"surveys:{kind}:dissatisfied", 0)
        row(f"{prefix}_satisfaction", _share(sat, done), numerator=f"surveys:{kind}:satisfied",
            base=f"surveys:{kind}:completed", count=sat, base_count=done)
        row(f"{prefix}_complaint_share", _share(dis, done), numerator=f"surveys:{kind}:dissatisfied",
            base=f"surveys:{kind}:completed", count=dis, base_count=done)
    responses = m.get("nps:all:responses", 0)
    nps = (m.get("nps:all:promoters", 0) - m.get("nps:all:detractors", 0)) * 100 / responses if responses else None
    row("nps", round(nps, 1) if nps is not None else None, base="nps:all:responses", base_count=responses,
        unit="score", by_kind={k: _survey_shares(m, k) for k in SURVEY_KINDS if m.get(f"surveys:{k}:completed")})
    for key in ANNUAL_DIMENSIONS:
        sat, answered = inputs.year.get(f"annual:{key}:satisfied", 0), inputs.year.get(f"annual:{key}:responses", 0)
        row(f"annual_{key}", _share(sat, answered), numerator=f"annual:{key}:satisfied",
            base=f"annual:{key}:responses", count=sat, base_count=answered, period="year")
    _repair_rows(row, inputs)
    leaks, households = m.get("repairs:category:leak", 0), inputs.households_halves / 2
    row("leak_rate", round(leaks / households, 4) if households else None, numerator="repairs:category:leak",
        count=leaks, base_count=households)
    causes = sorted(_prefixed(m, "lessons:cause:").items(), key=lambda kv: (-kv[1], kv[0]))
    lessons, running, pareto = sum(v for _, v in causes), 0, []
    for cause, n in causes:
        running += n
        pareto.append({"root_cause": cause, "count": n, "share": n / lessons,
                       "cumulative_share": running / lessons})
    row("lessons_pareto", None, numerator="lessons:count", count=lessons, unit="pareto", pareto=pareto)
    return rows


def _survey_shares(m: Mapping[str, int], kind: str) -> dict[str, Any]:
    done = m.get(f"surveys:{kind}:completed", 0)
    return {"completed": done, "satisfied": _share(m.get(f"surveys:{kind}:satisfied", 0), done),
            "dissatisfied": _share(m.get(f"surveys:{kind}:dissatisfied", 0), done)}


def project_repairs(gauge: Mapping[str, int]) -> dict[str, Any]:
    """Repairs of one project counted from its first delivery day (the bulk delivery), over
    the households moved in (a bare-shell home counts half)."""
    deliveries = sorted(k.removeprefix("deliveries:day:") for k in gauge if k.startswith("deliveries:day:"))
    households = gauge.get("households:moved_in_halves", 0) / 2
    if not deliveries:
        return {"first_delivery": None, "households": households, "repairs_45_days": 0, "repairs_half_year": 0}
    first = date.fromisoformat(deliveries[0])
    days = {date.fromisoformat(k.removeprefix("repairs:day:")): v for k, v in gauge.items()
            if k.startswith("repairs:day:")}

    def within(n: int) -> int:
        return sum(v for d, v in days.items() if first <= d < first + timedelta(days=n))

    return {"first_delivery": first.isoformat(), "households": households,
            "repairs_45_days": within(BULK_DELIVERY_DAYS), "repairs_half_year": within(HALF_YEAR_DAYS)}


def _repair_rows(row: Any, inputs: Inputs) -> None:
    per_project = {p: project_repairs(g) for p, g in inputs.projects.items()}
    delivered = {p: r for p, r in per_project.items() if r["first_delivery"]}
    households = sum(r["households"] for r in delivered.values())
    worst = max((r["repairs_45_days"] for r in delivered.values()), default=None)
    row("repairs_45_days", worst, count=worst, unit="items", per_project=per_project,
        note="the highest project; the target is per project")
    for kpi, field in (("repairs_per_household_delivery", "repairs_45_days"),
                       ("repairs_per_household_half_year", "repairs_half_year")):
        repairs = sum(r[field] for r in delivered.values())
        row(kpi, round(repairs / households, 3) if households else None, count=repairs, base_count=households)
