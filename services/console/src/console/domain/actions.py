"""Every step staff may take on a case, as a form: its fields, and who may take it.

The cases service decides what the case allows now (`allowed_actions`) and refuses the
rest; the console only chooses which of those buttons this user's role may press, so that a
button the service would refuse for the role is not shown at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STAFF = frozenset({"agent", "supervisor", "region_admin"})
SUPERVISORS = frozenset({"supervisor", "region_admin"})

SEVERITIES = ("general", "major", "crisis")
CATEGORIES = ("engineering_quality", "sales_service", "customer_service", "property_management", "design", "other")
OUTCOMES = ("valid", "invalid", "consultation")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = "textarea"  # textarea | text | select | bool
    required: bool = True
    options: tuple[str, ...] = ()
    option_group: str = ""  # the label group of the options (severity, category...)


@dataclass(frozen=True)
class Action:
    route: str  # POST /v1/cases/{id}/<route>
    fields: tuple[Field, ...] = ()
    roles: frozenset[str] = STAFF
    primary: bool = False  # a step of the main procedure (shown first), not a side action
    extra: Mapping[str, Any] = field(default_factory=dict)


def _f(name: str, **kw: Any) -> Field:
    return Field(name, **kw)


ACTIONS: dict[str, Action] = {a.route: a for a in (
    Action("validate", (_f("outcome", kind="select", options=OUTCOMES, option_group="outcome"),
                        _f("explanation")), primary=True),
    Action("classify", (_f("severity", kind="select", options=SEVERITIES, option_group="severity"),
                        _f("category", kind="select", options=CATEGORIES, option_group="category"),
                        _f("reason", required=False)), primary=True),
    Action("assess", (_f("nature"), _f("influence"), _f("notes", required=False)), primary=True),
    Action("assign", (_f("department", kind="text"), _f("assignee", kind="text", required=False)), primary=True),
    Action("start-investigation", primary=True),
    Action("findings", (_f("responsible_department", kind="text"), _f("root_cause"), _f("written_findings"),
                        _f("responsible_post", kind="text", required=False),
                        _f("responsible_person", kind="text", required=False)), primary=True),
    Action("legal-opinion", (_f("opinion"),)),
    Action("start-handling", (_f("plan", required=False),), primary=True),
    Action("progress", (_f("message_to_customer"),), primary=True),
    Action("resolve", (_f("summary"),), primary=True),
    Action("customer-confirmation", (_f("accepted", kind="bool"), _f("comment", required=False)), primary=True),
    Action("department-approval", (_f("note", required=False),), primary=True),
    Action("close", primary=True),
    Action("lesson", (_f("root_cause"), _f("responsible_department", kind="text"), _f("improvement")),
           primary=True),
    Action("override-severity", (_f("severity", kind="select", options=SEVERITIES, option_group="severity"),
                                 _f("reason")), roles=SUPERVISORS),
    Action("reassign", (_f("department", kind="text"), _f("assignee", kind="text", required=False),
                        _f("reason")), roles=SUPERVISORS),
    Action("force-close", (_f("reason"),), roles=SUPERVISORS),
    Action("reopen", (_f("reason"),)),
    Action("escalate", (_f("reason"),)),
    Action("wait-for-customer", (_f("reason"),)),
    Action("customer-responded", (_f("note", required=False),)),
    Action("on-site-response", (_f("note", required=False),)),
)}

# The cases service names allowed actions by route ("override-severity"); older builds
# answered with the domain's command names ("override_severity", "record_findings").
_COMMAND_TO_ROUTE = {
    "record_findings": "findings", "record_legal_opinion": "legal-opinion", "report_progress": "progress",
    "confirm_by_customer": "customer-confirmation", "approve_by_department": "department-approval",
    "record_lesson": "lesson", "record_on_site_response": "on-site-response",
}


def route_of(name: str) -> str:
    return _COMMAND_TO_ROUTE.get(name) or name.replace("_", "-")


def actions_for(allowed: Iterable[str], roles: Iterable[str]) -> list[Action]:
    """The actions the case allows now that this user's roles may take, procedure steps first."""
    held = set(roles)
    found = [ACTIONS[r] for r in dict.fromkeys(route_of(a) for a in allowed) if r in ACTIONS]
    mine = [a for a in found if a.roles & held]
    return sorted(mine, key=lambda a: not a.primary)


def may_take(route: str, roles: Iterable[str]) -> bool:
    action = ACTIONS.get(route)
    return action is not None and bool(action.roles & set(roles))


def form_body(action: Action, form: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body the service expects, from the posted form: blanks of optional fields left
    out, so that the service (not the console) says what a required field lacks."""
    body: dict[str, Any] = {}
    for f in action.fields:
        raw = (form.get(f.name) or "").strip()
        if f.kind == "bool":
            body[f.name] = raw in ("true", "on", "1", "yes")
        elif raw or f.required:
            body[f.name] = raw
    return body
