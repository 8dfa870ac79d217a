"""Routing: which department (and which person) owns a new case.

Why: a complaint must land with the department that can act on it (engineering for a
leaking wall, the property company for a broken lift) without an agent forwarding it by
hand. Routing is configuration, not code: each region edits its own table.

Lookup order, first match wins:
1. the region's rule for the category,
2. the region's default (a region that sets one takes every category it has no rule for),
3. the global rule for the category,
4. the global default.
A supervisor can still reassign a case afterwards (`Case.reassign`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .severity import Category


@dataclass(frozen=True)
class Assignment:
    department: str
    assignee: str | None = None
    source: str = "global_default"  # region_category | region_default | category | global_default

@dataclass(frozen=True)
class Target:
    department: str
    assignee: str | None = None

    @classmethod
    def parse(cls, value: Target | str | Mapping[str, Any]) -> Target:
        if isinstance(value, Target):
            return value
        if isinstance(value, str):
            return cls(value)
        return cls(value["department"], value.get("assignee"))


DEFAULT_CATEGORY_DEPARTMENTS: dict[str, Target] = {
    Category.ENGINEERING_QUALITY: Target("engineering"),
    Category.SALES_SERVICE: Target("sales"),
    Category.CUSTOMER_SERVICE: Target("customer_centre"),
    Category.PROPERTY_MANAGEMENT: Target("property"),
    Category.DESIGN: Target("design"),
    Category.OTHER: Target("customer_centre"),
}


@dataclass(frozen=True)
class Routing:
    by_region_category: Mapping[tuple[str, str], Target] = field(default_factory=dict)
    region_defaults: Mapping[str, Target] = field(default_factory=dict)
    by_category: Mapping[str, Target] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_DEPARTMENTS)
    )
    default: Target = field(default_factory=lambda: Target("customer_centre"))

    def route(self, region: str, category: str | None) -> Assignment:
        cat = str(category) if category else Category.OTHER.value
        if (hit := self.by_region_category.get((region, cat))) is not None:
            return Assignment(hit.department, hit.assignee, "region_category")
        if (hit := self.region_defaults.get(region)) is not None:
            return Assignment(hit.department, hit.assignee, "region_default")
        if (hit := self.by_category.get(cat)) is not None:
            return Assignment(hit.department, hit.assignee, "category")
        return Assignment(self.default.department, self.default.assignee, "global_default")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None) -> Routing:
        """Build from plain data (one document per platform, edited by region admins):

        {"default": {"department": "customer_centre"},
         "categories": {"design": "design"},                # merged over the built-in table
         "regions": {"shenzhen": {"default": {"department": "sz_centre", "assignee": "u1"},
                                  "categories": {"property_management":
                                                 {"department": "sz_property"}}}}}
        """
        config = config or {}
        by_category = dict(DEFAULT_CATEGORY_DEPARTMENTS)
        by_category.update({k: Target.parse(v) for k, v in config.get("categories", {}).items()})
        by_region_category: dict[tuple[str, str], Target] = {}
        region_defaults: dict[str, Target] = {}
        for region, rc in config.get("regions", {}).items():
            if rc.get("default"):
                region_defaults[region] = Target.parse(rc["default"])
            for cat, target in rc.get("categories", {}).items():
                by_region_category[(region, cat)] = Target.parse(target)
        default = (
            Target.parse(config["default"]) if config.get("default") else Target("customer_centre")
        )
        return cls(by_region_category, region_defaults, by_category, default)
