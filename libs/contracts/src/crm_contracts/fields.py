"""Field types shared by the envelope and every event payload.

They carry the rules every consumer relies on: ids are never empty, times always carry
an offset, a region is one the platform serves, scores stay on their scales.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints, WithJsonSchema

from crm_contracts.regions import KNOWN_REGIONS, check_region

__all__ = ["AwareDatetime", "NonEmptyStr", "Nps", "RegionCode", "Score"]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
"""An id or a name: an empty string is always a producer's bug."""

RegionCode = Annotated[
    str,
    AfterValidator(check_region),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(KNOWN_REGIONS),
            "description": "Lower-case region code (片区), e.g. shenzhen.",
        }
    ),
]
"""A region the platform serves; see `crm_contracts.regions.KNOWN_REGIONS`."""

Score = Annotated[int, Field(ge=1, le=5)]
"""An answer on the 1-5 satisfaction scale: 4 and 5 count as satisfied, 1 and 2 as dissatisfied."""

Nps = Annotated[int, Field(ge=0, le=10)]
"""Net Promoter Score answer: how likely, 0-10, the customer is to recommend us."""
