"""The console and the cases service agree on the steps of the procedure: every action the
console shows as a form is a POST route of cases, and every such route has its form."""

from __future__ import annotations

from cases.entrypoints.http import ACTIONS as CASE_ROUTES
from console.domain import actions


def test_the_console_posts_to_routes_the_cases_service_has():
    assert set(actions.ACTIONS) == set(CASE_ROUTES)
