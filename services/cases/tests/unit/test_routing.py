"""Routing: region and category decide the department and default assignee."""

from __future__ import annotations

from cases.domain.routing import Routing

CONFIG = {
    "default": {"department": "hq_centre"},
    "categories": {"design": {"department": "design_institute", "assignee": "d-1"}},
    "regions": {
        "shenzhen": {
            "categories": {
                "property_management": {"department": "sz_property", "assignee": "pm-9"}
            },
        },
        "beijing": {
            "default": {"department": "bj_centre", "assignee": "bj-1"},
            "categories": {"engineering_quality": "bj_engineering"},
        },
    },
}


def test_built_in_defaults_by_category():
    routing = Routing()
    assert routing.route("shenzhen", "engineering_quality").department == "engineering"
    assert routing.route("shenzhen", "property_management").department == "property"
    assert routing.route("shenzhen", "other").department == "customer_centre"
    assert routing.route("shenzhen", None).department == "customer_centre"


def test_region_category_rule_wins():
    routing = Routing.from_config(CONFIG)
    hit = routing.route("shenzhen", "property_management")
    assert (hit.department, hit.assignee, hit.source) == ("sz_property", "pm-9", "region_category")
    assert routing.route("beijing", "engineering_quality").department == "bj_engineering"


def test_region_default_before_global_rules():
    routing = Routing.from_config(CONFIG)
    hit = routing.route("beijing", "design")
    assert (hit.department, hit.assignee, hit.source) == ("bj_centre", "bj-1", "region_default")


def test_global_category_then_global_default():
    routing = Routing.from_config(CONFIG)
    hit = routing.route("shenzhen", "design")
    assert (hit.department, hit.assignee, hit.source) == ("design_institute", "d-1", "category")
    assert routing.route("shenzhen", "sales_service").department == "sales"  # built-in
    assert routing.route("chengdu", "unheard_of").source == "global_default"
    assert routing.route("chengdu", "unheard_of").department == "hq_centre"
