"""Return-visit coverage: visits due against visits done, per project and product type.

The industry material asks for every product type to be visited, at least five
households each; a row meets the target when that many distinct households answered.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_HOUSEHOLDS = 5


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
