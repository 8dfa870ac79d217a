"""Personal data on screen: a phone number is shown whole only to the roles that call
customers back; everyone else, and every list, sees it masked."""

from __future__ import annotations

from collections.abc import Iterable

# Agents and supervisors phone customers back; administrators and auditors do not need to.
PHONE_ROLES = frozenset({"agent", "supervisor"})


def mask_phone(phone: str | None) -> str:
    """138****5678: enough to confirm a caller, not enough to dial."""
    if not phone:
        return "—"
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def shown_phone(phone: str | None, roles: Iterable[str]) -> str:
    if not phone:
        return "—"
    return phone if PHONE_ROLES & set(roles) else mask_phone(phone)


def mask_name(name: str | None) -> str:
    """张** / J*** : the family name or first letter only."""
    if not name:
        return "—"
    return name[0] + "*" * max(1, len(name) - 1)
