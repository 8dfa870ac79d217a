"""The console shows `allowed_actions` as buttons that POST to `/v1/cases/{id}/<name>`:
every name it can answer must be such a route, and every such route a name it can answer."""

from __future__ import annotations

from cases.entrypoints.http import build_router
from fastapi.routing import APIRoute

from .fakes import fake_deps
from .test_procedure import new_case, t

PREFIX = "/v1/cases/{case_id}/"


def case_step_routes() -> set[str]:
    routes = [r for r in build_router(fake_deps()).routes if isinstance(r, APIRoute)]
    return {r.path.removeprefix(PREFIX) for r in routes if r.path.startswith(PREFIX) and "POST" in r.methods}


def test_every_allowed_action_is_a_post_route_of_the_case_and_every_such_route_is_an_action():
    seen: set[str] = set()
    crisis = new_case(subject="高空坠物", body="阳台玻璃掉落砸伤路人")
    seen |= set(crisis.allowed_actions())
    plain = new_case()
    seen |= set(plain.allowed_actions())
    plain.wait_for_customer("等照片", actor="a", at=t(1))
    seen |= set(plain.allowed_actions())
    plain.customer_responded(actor="a", at=t(2))
    steps = [
        lambda c: c.validate("valid", "已受理", actor="a", at=t(3)),
        lambda c: c.classify("general", "engineering_quality", actor="a", at=t(4)),
        lambda c: c.assess("渗漏", "单户", actor="a", at=t(5)),
        lambda c: c.start_investigation(actor="a", at=t(6)),
        lambda c: c.record_findings(responsible_department="engineering", root_cause="防水",
                                    written_findings="破损", actor="a", at=t(7)),
        lambda c: c.start_handling(actor="a", at=t(8)),
        lambda c: c.report_progress("明天上门", actor="a", at=t(9)),
    ]
    for step in steps:
        step(plain)
        seen |= set(plain.allowed_actions())
    plain.resolve("已维修", actor="eng", at=t(50))
    seen |= set(plain.allowed_actions())
    plain.confirm_by_customer(True, actor="agent-1", at=t(60))
    plain.approve_by_department(actor="eng-lead", at=t(61))
    plain.close(actor="agent-1", at=t(62))
    seen |= set(plain.allowed_actions())
    routes = case_step_routes()
    assert seen <= routes, seen - routes
    assert routes <= seen, routes - seen


def test_allowed_actions_leave_out_what_the_case_itself_does_not_permit():
    case = new_case()
    assert "customer-responded" not in case.allowed_actions()
    assert "on-site-response" not in case.allowed_actions()  # not a crisis
    case.wait_for_customer("等照片", actor="a", at=t(1))
    assert "customer-responded" in case.allowed_actions()
    assert "wait-for-customer" not in case.allowed_actions()
    crisis = new_case(subject="高空坠物", body="阳台玻璃掉落砸伤路人")
    assert "on-site-response" in crisis.allowed_actions()
