"""Who can be reached, and how: a customer's contact record as the directory keeps it,
the household whose members share a daily cap, and the channel a message takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True)
class Unit:
    project: str
    building: str
    unit: str

    @property
    def key(self) -> str:
        return f"{self.project}|{self.building}|{self.unit}"


@dataclass
class Contact:
    customer_id: str
    region: str
    name: str
    phones: list[str] = field(default_factory=list)
    email: str | None = None
    language: str = "zh-CN"
    consent: dict[str, bool] = field(default_factory=dict)
    units: list[Unit] = field(default_factory=list)
    birthday: date | None = None
    occupancy: dict[str, str] = field(default_factory=dict)  # unit key -> occupancy

    @property
    def household(self) -> str:
        """Co-owners of one home share caps: the household is the first home's key (the
        customer alone when they own none yet)."""
        return f"unit:{self.units[0].key}" if self.units else f"customer:{self.customer_id}"

    def address_for(self, channel: str) -> str | None:
        if channel == "sms":
            return self.phones[0] if self.phones else None
        if channel == "email":
            return self.email or None
        if channel == "letter":
            return self.postal_address
        return None

    @property
    def postal_address(self) -> str | None:
        """Letters go to the home (the partner archive carries no other postal address)."""
        if not self.units:
            return None
        u = self.units[0]
        return f"{u.project} {u.building}栋 {u.unit}"


def choose_channel(contact: Contact, alternatives: Sequence[str]) -> tuple[str, str | None]:
    """The first alternative the customer consented to and has an address for; else the
    first one, with why it cannot be used."""
    for channel in alternatives:
        if contact.consent.get(channel) and contact.address_for(channel):
            return channel, None
    first = alternatives[0]
    if not contact.consent.get(first):
        return first, f"no consent for {first}"
    return first, f"no address for {first}"


def owners_of(contacts: Sequence[Contact], project: str, building: str | None) -> list[Contact]:
    """The owners of a project's homes (of one building when given): a pure filter for tests;
    the store answers the same question from its owners index."""
    return [c for c in contacts
            if any(u.project == project and (building is None or u.building == building) for u in c.units)]
