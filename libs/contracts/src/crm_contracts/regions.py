"""The regions (片区) the platform serves.

A region code travels on every event (the `region` extension attribute) and decides
whose customer centre handles a case, whose data a user may see, and the prefix of
the human-readable case number (SZ-2026-000123). Adding a region is an additive
change; removing or renaming one is a breaking change for everyone who stored it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple


class RegionInfo(NamedTuple):
    case_prefix: str
    name_zh: str
    name_en: str


KNOWN_REGIONS: Mapping[str, RegionInfo] = MappingProxyType(
    {
        "shenzhen": RegionInfo("SZ", "深圳", "Shenzhen"),
        "shanghai": RegionInfo("SH", "上海", "Shanghai"),
        "beijing": RegionInfo("BJ", "北京", "Beijing"),
        "tianjin": RegionInfo("TJ", "天津", "Tianjin"),
        "chengdu": RegionInfo("CD", "成都", "Chengdu"),
        "shenyang": RegionInfo("SY", "沈阳", "Shenyang"),
        "guangzhou": RegionInfo("GZ", "广州", "Guangzhou"),
        "hangzhou": RegionInfo("HZ", "杭州", "Hangzhou"),
        "wuhan": RegionInfo("WH", "武汉", "Wuhan"),
    }
)


def check_region(code: str) -> str:
    """Return `code` if it is a known region, else raise ValueError naming the known ones."""
    if code not in KNOWN_REGIONS:
        known = ", ".join(KNOWN_REGIONS)
        raise ValueError(f"unknown region {code!r}; expected a lower-case region code: {known}")
    return code


def case_number(region: str, year: int, sequence: int) -> str:
    """The human-readable case number agents and customers quote: `SZ-2026-000123`."""
    prefix = KNOWN_REGIONS[check_region(region)].case_prefix
    return f"{prefix}-{year:04d}-{sequence:06d}"
