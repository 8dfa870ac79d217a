"""Field types shared by the envelope and every event payload.

They carry the rules every consumer relies on: ids are never empty, times always carry
an offset, a region is one the platform serves, scores stay on their scales.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema
from pydantic import AwareDatetime as _AwareDatetime

from crm_contracts.regions import KNOWN_REGIONS, check_region

__all__ = ["AwareDatetime", "DurationSeconds", "NonEmptyStr", "Nps", "OptionalPhone", "Phone", "RegionCode", "Score"]

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


# Absurd values are refused, not stored: a year 50,000 timestamp or a call of 10^30 seconds
# breaks every date calculation and KPI downstream. The bounds are validators, not schema
# keywords, so the published v1 schemas keep their shape (only the absurd is refused).
MIN_YEAR, MAX_YEAR = 1970, 2100
MAX_DURATION_S = 86_400
_PHONE = re.compile(r"[0-9+\- ]{5,20}")


def _plausible_time(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


def _plausible_phone(value: str) -> str:
    if not _PHONE.fullmatch(value) or not any(c.isdigit() for c in value):
        raise ValueError("a phone number is 5 to 20 characters of digits, '+', '-' and spaces")
    return value


def _plausible_duration(value: int) -> int:
    if value > MAX_DURATION_S:
        raise ValueError(f"at most {MAX_DURATION_S} seconds (a day)")
    return value


AwareDatetime = Annotated[_AwareDatetime, AfterValidator(_plausible_time)]  # type: ignore[misc]
"""RFC 3339 with an offset, in the years 1970 to 2100."""

Phone = Annotated[NonEmptyStr, AfterValidator(_plausible_phone)]
"""A phone number as partners send it: 5 to 20 digits, '+', '-' and spaces (+86 138-0013-8000)."""

OptionalPhone = Annotated[str, AfterValidator(_plausible_phone)] | None
"""A phone number or null; its published schema never had the non-empty rule of `Phone`."""

DurationSeconds = Annotated[int, Field(ge=0), AfterValidator(_plausible_duration)]
"""A duration in whole seconds, 0 to 86,400."""
