"""Return-visit coverage: visits due against visits done, per project and product type.

The industry material asks for every product type to be visited, at least five
households each; a row meets the target when that many distinct households answered.

A product type is the building's form and the home's fit-out (`high_rise/bare`, `villa/
finished`, ...). The partner contracts carry only the fit-out (`unit.delivered`'s
`fit_out`), so the forms come from a configured mapping of projects and buildings
(`CRM_SURVEYS_PRODUCT_FORMS`); a home the mapping does not name counts by its fit-out alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MIN_HOUSEHOLDS = 5
# The forms of residential product Chinese developers sell (高层, 洋房/小高层, 多层, 叠拼, 联排, 独栋别墅, 商业).
FORMS = ("high_rise", "mid_rise", "low_rise", "stacked_villa", "townhouse", "villa", "commercial")


def product_type(forms: Mapping[str, str], project: str | None, building: str | None,
                 fit_out: str | None) -> str | None:
    """The coverage product type of a home: `<form>/<fit_out>`, the form from `forms`
    keyed `<project>|<building>` (one building) or `<project>` (the whole project)."""
    form = forms.get(f"{project}|{building}") or forms.get(project or "")
    if form and fit_out:
        return f"{form}/{fit_out}"
    return form or fit_out


@dataclass(frozen=True)
class CoverageRow:
    project: str
    product_type: str
    due: int
    done: int
    households_done: int

    @property
    def meets_target(self) -> bool:
        return self.households_done >= MIN_HOUSEHOLDS

    @property
    def done_ratio(self) -> float:
        return round(self.done / self.due, 4) if self.due else 0.0


def summary(rows: list[CoverageRow]) -> dict[str, object]:
    """How many product types (of each project) are covered, and the share."""
    covered = sum(1 for r in rows if r.meets_target)
    return {
        "product_types": len(rows), "product_types_covered": covered,
        "covered_ratio": round(covered / len(rows), 4) if rows else 0.0,
        "due": sum(r.due for r in rows), "done": sum(r.done for r in rows),
        "min_households": MIN_HOUSEHOLDS,
    }
