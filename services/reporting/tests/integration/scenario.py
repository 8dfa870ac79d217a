"""A month of a region's life, as events of every kind, with the KPIs counted by hand.

Two regions (shenzhen, shanghai) and two months (March and April 2019: no other test
suite writes events dated then). Times are China time (+08:00).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .conftest import Events, new_id

CST = timezone(timedelta(hours=8))
MARCH, APRIL = "2019-03", "2019-04"


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2019, month, day, hour, tzinfo=CST)


class Scenario:
    def __init__(self) -> None:
        self.events = Events()
        self.project = new_id("P")  # unique: gauges (households, repairs) are not per month
        self.cases: dict[str, str] = {}
        self.contacts: list[str] = []

    # -- builders ----------------------------------------------------------------------

    def contact(self, channel: str, when: datetime, region: str = "shenzhen", kind: str = "complaint") -> str:
        contact_id = new_id("k")
        self.events.add("crm.intake.contact.received.v1", {
            "contact_id": contact_id, "channel": channel, "source_ref": contact_id, "region": region,
            "project": self.project, "customer_match": "unknown", "kind_hint": kind, "subject": "s", "body": "b",
            "received_at": when.isoformat(), **({"letter_form": "post"} if channel == "letter" else {})},
            subject=contact_id, region=region)
        self.contacts.append(contact_id)
        return contact_id

    def case(self, name: str, steps: list[tuple[str, datetime, dict]], region: str = "shenzhen") -> str:
        case_id = self.cases.setdefault(name, new_id("c"))
        prefix = "SZ" if region == "shenzhen" else "SH"
        state = {"status": "received"}
        for seq, (kind, when, fields) in enumerate(steps, start=1):
            state.update({k: v for k, v in fields.items()
                          if k in ("status", "severity", "category", "department")})
            data = {"case_id": case_id, "case_number": f"{prefix}-2019-{seq:06d}", "region": region,
                    "occurred_at": when.isoformat(), "sequence": seq, **state, **fields}
            self.events.add(f"crm.cases.case.{kind}.v1", data, subject=case_id, region=region,
                            id=f"{case_id}:{seq}")
        return case_id

    def survey(self, kind: str, *, completed: datetime | None, scheduled: datetime | None = None,
               score: int = 5, nps: int | None = None, scores: dict | None = None, **subject_ids) -> str:
        survey_id = new_id("s")
        base = {"survey_id": survey_id, "kind": kind, "customer_id": "cust-1", "project": self.project,
                "due_at": ((scheduled or completed) + timedelta(days=7)).isoformat(), **subject_ids}
        if scheduled:
            self.events.add("crm.surveys.survey.scheduled.v1", base, subject=survey_id, at=scheduled)
        if completed:
            self.events.add("crm.surveys.survey.completed.v1", {
                **base, "scores": scores or {"overall": score}, "nps": nps, "satisfied": score >= 4,
                "dissatisfied": score <= 2, "completed_at": completed.isoformat()},
                subject=survey_id, at=completed)
        return survey_id

    def unit(self, n: int, fit_out: str, occupied: bool) -> None:
        unit = {"customer_id": f"cust-{n}", "project": self.project, "building": "1", "unit": f"{n:04d}"}
        subject = f"{self.project}/1/{n:04d}"
        self.events.add("crm.partner.unit.delivered.v1", {**unit, "delivered_at": at(3, 1).isoformat(),
                                                          "fit_out": fit_out}, subject=subject)
        if occupied:
            self.events.add("crm.partner.unit.occupancy-changed.v1", {
                **unit, "occupancy": "occupied", "changed_at": at(3, 15).isoformat()}, subject=subject)

    def repair(self, category: str, when: datetime) -> str:
        work_order = new_id("wo")
        self.events.add("crm.partner.repair.work-order-completed.v1", {
            "work_order_id": work_order, "customer_id": "cust-1", "project": self.project, "building": "1",
            "unit": "0001", "category": category, "completed_at": when.isoformat()}, subject=work_order)
        return work_order


def build() -> Scenario:
    s = Scenario()
    # Contacts: shenzhen March 3 hotline, 1 forum, 4 front desk, 2 letters; April 2 hotline;
    # shanghai March 1 front desk.
    for channel, n in (("hotline", 3), ("forum", 1), ("front_desk", 4), ("letter", 2)):
        for i in range(n):
            s.contact(channel, at(3, 2 + i))
    s.contact("hotline", at(4, 3))
    s.contact("hotline", at(4, 4), kind="consultation")
    s.contact("front_desk", at(3, 9), region="shanghai")

    opened = {"channel": "hotline", "project": s.project, "kind_hint": "complaint"}
    classified = {"status": "classified", "severity": "general", "category": "engineering_quality"}
    # c1: engineering, replied in time, closed 3 days after opening, in March.
    s.case("c1", [("opened", at(3, 2), opened),
                  ("assigned", at(3, 2, 11), {"department": "engineering", **classified}),
                  ("progress-reported", at(3, 2, 12), {"message_to_customer": "on our way", "first_reply": True}),
                  ("closed", at(3, 5), {"status": "closed", "outcome": "resolved"}),
                  ("lesson-recorded", at(3, 6), {"status": "lesson_recorded", "root_cause": "施工质量",
                                                 "responsible_department": "engineering", "improvement": "x"})])
    # c2: sales, first reply late, opened in March, closed in April.
    s.case("c2", [("opened", at(3, 10), opened),
                  ("assigned", at(3, 10, 11), {"department": "sales", "status": "classified",
                                               "severity": "major", "category": "sales_service"}),
                  ("sla-breached", at(3, 10, 15), {"clock": "first_reply", "due_at": at(3, 10, 14).isoformat()}),
                  ("closed", at(4, 2), {"status": "closed", "outcome": "resolved"}),
                  ("lesson-recorded", at(4, 3), {"status": "lesson_recorded", "root_cause": "沟通不足",
                                                 "responsible_department": "sales", "improvement": "y"})])
    # c3: a consultation, closed the same day: no reply obligation.
    s.case("c3", [("opened", at(3, 20), opened),
                  ("validated", at(3, 20, 11), {"outcome": "consultation"}),
                  ("closed", at(3, 20, 12), {"status": "closed", "outcome": "consultation"})])
    s.case("c5", [("opened", at(3, 21), opened),
                  ("lesson-recorded", at(3, 22), {"root_cause": "施工质量", "responsible_department": "engineering",
                                                  "improvement": "z", "department": "engineering"})])
    # c4: shanghai, timely.
    s.case("c4", [("opened", at(3, 3), opened),
                  ("assigned", at(3, 3, 11), {"department": "engineering", **classified}),
                  ("closed", at(3, 4), {"status": "closed", "outcome": "resolved"})], region="shanghai")
    s.events.add("crm.cases.collective-incident.detected.v1", {
        "incident_id": "inc-1" + s.project, "region": "shenzhen", "project": s.project, "category": "engineering_quality",
        "severity": "major", "customer_count": 6, "window_start": at(3, 11).isoformat(),
        "window_end": at(3, 12).isoformat(), "occurred_at": at(3, 12).isoformat()}, subject="inc-1" + s.project)
    # Surveys (shenzhen, March): repair visits 5, 4, 2 with NPS 10, 9, 3; one sales visit 5;
    # case visits: one within 7 days of scheduling, one never answered; two annual surveys.
    s.survey("repair_return_visit", completed=at(3, 12), score=5, nps=10, work_order_id="wo-a")
    s.survey("repair_return_visit", completed=at(3, 13), score=4, nps=9, work_order_id="wo-b")
    s.survey("repair_return_visit", completed=at(3, 14), score=2, nps=3, work_order_id="wo-c")
    s.survey("sales_return_visit", completed=at(3, 15), score=5, contract_id="k-1")
    s.survey("case_return_visit", scheduled=at(3, 5), completed=at(3, 8), case_id=s.cases["c1"])
    s.survey("case_return_visit", scheduled=at(3, 25), completed=None, case_id=s.cases["c3"])
    s.survey("annual", completed=at(3, 16), scores={"overall": 5, "amenities": 2})
    s.survey("annual", completed=at(3, 17), scores={"overall": 3, "amenities": 4})
    # Households of the project: 2 finished + 2 bare delivered on 1 March; moved in: 1
    # finished and 2 bare = 1 + 0.5 + 0.5 = 2 households.
    s.unit(1, "finished", occupied=True)
    s.unit(2, "finished", occupied=False)
    s.unit(3, "bare", occupied=True)
    s.unit(4, "bare", occupied=True)
    # Repairs: a leak on 10 March and a wall on 20 March (within 45 days of 1 March), a
    # plumbing job on 1 May (within half a year).
    s.repair("leak", at(3, 10))
    s.repair("wall", at(3, 20))
    s.repair("plumbing", at(5, 1))
    return s
