"""Recognising the customer behind a contact (issue 4, "customer recognition").

Pure rules, no I/O. The intake directory holds one :class:`DirectoryEntry` per customer,
built from ``crm.partner.customer.upserted.v1`` (and unit events) or created as a
provisional entry for an unknown caller. A contact carries a :class:`ContactIdentity`
(whatever the channel told us: name, phone, e-mail, project/building/unit).

* :func:`lookup_keys` gives the equality keys to query the store with, and
  :meth:`DirectoryEntry.lookup_keys` the keys to store an entry under, so the adapter never
  needs regular expressions or ``$or`` over arrays — one ``{"keys": {"$in": [...]}}`` query.
* :func:`match_customer` decides among the entries found:

  - **exact** — the normalised phone or the lower-cased e-mail is one of the entry's;
    with several exact candidates a non-provisional entry wins (the partner's record
    supersedes the provisional one), then an entry of the contact's region, then the
    smallest ``customer_id`` (deterministic);
  - **probable** — the name matches (spaces and the honorifics 先生/女士/小姐/太太, Mr/Mrs/Ms
    stripped, case-insensitive for latin names, latin names in any word order; "张先生"
    matches "张伟" on the surname) **and** the project and unit match (the building too when
    the contact gives one);
  - **unknown** — otherwise.

* :func:`provisional_customer_id` is a deterministic id for an unknown caller, so the same
  phone number or e-mail gets the same provisional id on every channel and every replica.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from crm_runtime.pii import normalise_phone

__all__ = [
    "ContactIdentity",
    "DirectoryEntry",
    "Match",
    "MatchKind",
    "lookup_keys",
    "match_customer",
    "newest_per_customer",
    "normalise_email",
    "normalise_name",
    "normalise_place",
    "provisional_customer_id",
    "supersedes",
]


class MatchKind(StrEnum):
    EXACT = "exact"
    PROBABLE = "probable"
    UNKNOWN = "unknown"


# --- normalisation -------------------------------------------------------------------------

_EMAIL = re.compile(r"[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}")


def normalise_email(raw: str | None) -> str | None:
    """Lower-cased, trimmed e-mail address (``mailto:`` and ``<…>`` removed), or None."""
    if not raw:
        return None
    s = unicodedata.normalize("NFKC", raw).strip().lower()
    if s.startswith("mailto:"):
        s = s[len("mailto:") :]
    s = s.strip("<>\"' ")
    return s if _EMAIL.fullmatch(s) else None


_SPACES = re.compile(r"[\s\u00b7\u30fb.·]+")
_ZH_HONORIFIC = re.compile(r"(?:先生|女士|小姐|太太|夫人|老师|阿姨|叔叔|总)$")
_LATIN_HONORIFIC = re.compile(r"^(?:mr|mrs|ms|miss|mx|dr|madam|sir)\.?\s+", re.IGNORECASE)
_CJK = re.compile(r"[\u3400-\u9fff]")
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 独孤 南宫 西门 "
    "轩辕 呼延 钟离 闻人 赫连 澹台 公冶 太史 申屠 濮阳 万俟 单于".split()
)


@dataclass(frozen=True)
class _Name:
    """A name reduced for comparison.

    ``full`` is the whole name without spaces/honorifics (latin: lower-case words sorted);
    ``surname_only`` is True for "张先生" / "Mr Zhang" — a surname with an honorific.
    """

    full: str
    surname_only: bool
    latin: bool


def _parse_name(raw: str) -> _Name | None:
    s = unicodedata.normalize("NFKC", raw).strip()
    if not s:
        return None
    if _CJK.search(s):
        s = _SPACES.sub("", s)
        had_honorific = bool(_ZH_HONORIFIC.search(s))
        s = _ZH_HONORIFIC.sub("", s)
        if not s:
            return None
        surname_only = had_honorific and (len(s) == 1 or s in _COMPOUND_SURNAMES)
        return _Name(s, surname_only, latin=False)
    had_honorific = bool(_LATIN_HONORIFIC.match(s))
    s = _LATIN_HONORIFIC.sub("", s)
    words = sorted(w for w in re.split(r"[\s,.\-·]+", s.casefold()) if w)
    if not words:
        return None
    return _Name(" ".join(words), had_honorific and len(words) == 1, latin=True)


def normalise_name(raw: str | None) -> str | None:
    """``" 张 伟先生 "`` → ``"张伟"``; ``"Mr. Wei ZHANG"`` → ``"wei zhang"`` (words sorted)."""
    parsed = _parse_name(raw) if raw else None
    return parsed.full if parsed else None


def _surnames(full_name: _Name) -> set[str]:
    """Surname forms of a full name that "X先生" / "Mr X" may refer to."""
    if full_name.surname_only:
        return {full_name.full}
    if not full_name.latin:
        if full_name.full[:2] in _COMPOUND_SURNAMES and len(full_name.full) > 2:
            return {full_name.full[:2]}
        return {full_name.full[:1]}
    words = full_name.full.split(" ")
    return set(words) if len(words) > 1 else set()


def _names_match(contact: _Name, entry: _Name) -> bool:
    if contact.full == entry.full:
        return True
    if contact.surname_only and not entry.surname_only:
        return contact.full in _surnames(entry)
    return False


_BUILDING_SUFFIX = re.compile(r"(?:号楼|栋|幢|座|楼|号|building|bldg|blk|block|tower)$")
_BUILDING_PREFIX = re.compile(r"^(?:building|bldg|blk|block|tower|no|#)")
_UNIT_SUFFIX = re.compile(r"(?:室|房|号|户|unit|room|rm|flat|apt)$")
_UNIT_PREFIX = re.compile(r"^(?:unit|room|rm|flat|apt|no|#)")


def normalise_place(raw: str | None, kind: str = "project") -> str:
    """Project, building or unit reduced for comparison ("3栋" = "3号楼" = "Building 3")."""
    if not raw:
        return ""
    s = unicodedata.normalize("NFKC", raw).casefold()
    s = re.sub(r"[\s\-_.·]+", "", s)
    if kind == "building":
        s = _BUILDING_PREFIX.sub("", _BUILDING_SUFFIX.sub("", s))
    elif kind == "unit":
        s = _UNIT_PREFIX.sub("", _UNIT_SUFFIX.sub("", s))
    return s


# --- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactIdentity:
    """Who a contact says it is; every field optional."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    project: str | None = None
    building: str | None = None
    unit: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class DirectoryEntry:
    """One customer in intake's directory. ``phones``/``emails`` hold normalised values."""

    customer_id: str
    region: str
    names: list[str] = field(default_factory=list)
    phones: frozenset[str] = field(default_factory=frozenset)
    emails: frozenset[str] = field(default_factory=frozenset)
    units: list[tuple[str, str, str]] = field(default_factory=list)  # (project, building, unit)
    provisional: bool = False
    # When the partner's archive wrote this record (its event's time); None when unknown.
    as_of: datetime | None = None

    @classmethod
    def build(
        cls,
        customer_id: str,
        region: str,
        *,
        names: Iterable[str] = (),
        phones: Iterable[str] = (),
        emails: Iterable[str | None] = (),
        units: Iterable[tuple[str, str, str]] = (),
        provisional: bool = False,
        as_of: datetime | None = None,
    ) -> DirectoryEntry:
        """An entry from raw partner data: phones and e-mails normalised, junk dropped."""
        return cls(
            customer_id=customer_id,
            region=region,
            names=[n for n in names if n and n.strip()],
            phones=frozenset(p for p in map(normalise_phone, phones) if p),
            emails=frozenset(e for e in map(normalise_email, emails) if e),
            units=[tuple(u) for u in units],  # type: ignore[misc]
            provisional=provisional,
            as_of=as_of,
        )

    def lookup_keys(self) -> list[str]:
        """Keys to store this entry under; :func:`lookup_keys` builds the same ones."""
        keys = [f"phone:{p}" for p in sorted(self.phones)]
        keys += [f"email:{e}" for e in sorted(self.emails)]
        parsed = [n for n in map(_parse_name, self.names) if n]
        for project, _building, unit in self.units:
            place = f"{normalise_place(project)}|{normalise_place(unit, 'unit')}"
            for name in parsed:
                keys.append(f"name-unit:{place}|{name.full}")
                keys += [f"surname-unit:{place}|{s}" for s in sorted(_surnames(name))]
        return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class Match:
    customer_id: str | None
    kind: MatchKind
    entry: DirectoryEntry | None = None
    matched_on: str | None = None  # "phone", "email" or "name-unit"

    @property
    def unit(self) -> tuple[str, str, str] | None:
        """The entry's unit when it has exactly one, to fill in a contact that lacks it."""
        if self.entry is not None and len(self.entry.units) == 1:
            return self.entry.units[0]
        return None


UNKNOWN = Match(None, MatchKind.UNKNOWN)


def supersedes(candidate: DirectoryEntry, stored: DirectoryEntry) -> bool:
    """Whether `candidate` may replace `stored`. The partner's archive sends whole records,
    so an older one arriving late (redelivered, replayed, or overtaken on another
    partition) must not undo a newer one; a record of unknown age is taken as current."""
    return candidate.as_of is None or stored.as_of is None or candidate.as_of >= stored.as_of


def newest_per_customer(entries: Iterable[DirectoryEntry]) -> dict[str, DirectoryEntry]:
    """The newest record of each customer in a batch (the later one on a tie)."""
    newest: dict[str, DirectoryEntry] = {}
    for entry in entries:
        known = newest.get(entry.customer_id)
        if known is None or supersedes(entry, known):
            newest[entry.customer_id] = entry
    return newest


def lookup_keys(identity: ContactIdentity) -> list[str]:
    """Store keys to find the candidates for ``identity`` with equality filters only.

    ``phone:13800018000``, ``email:a@b.cn``, ``name-unit:<project>|<unit>|<name>`` and, for
    "张先生"-style names, ``surname-unit:<project>|<unit>|<surname>``.
    """
    keys: list[str] = []
    phone = normalise_phone(identity.phone)
    if phone:
        keys.append(f"phone:{phone}")
    email = normalise_email(identity.email)
    if email:
        keys.append(f"email:{email}")
    name = _parse_name(identity.name) if identity.name else None
    project = normalise_place(identity.project)
    unit = normalise_place(identity.unit, "unit")
    if name and project and unit:
        prefix = "surname-unit" if name.surname_only else "name-unit"
        keys.append(f"{prefix}:{project}|{unit}|{name.full}")
    return keys


def key_often_shared(key: str) -> bool:
    """Surname + unit-number keys gather neighbours (every 张 in the 1201s of a project's
    buildings); phone, e-mail and full-name keys seldom name more than one customer."""
    return key.startswith("surname-unit:")


def _preference(entry: DirectoryEntry, region: str | None) -> tuple[bool, bool, str]:
    return (entry.provisional, region is not None and entry.region != region, entry.customer_id)


def _unit_matches(identity: ContactIdentity, units: Iterable[tuple[str, str, str]]) -> bool:
    project = normalise_place(identity.project)
    unit = normalise_place(identity.unit, "unit")
    building = normalise_place(identity.building, "building")
    if not project or not unit:
        return False
    for e_project, e_building, e_unit in units:
        if normalise_place(e_project) != project or normalise_place(e_unit, "unit") != unit:
            continue
        if building and normalise_place(e_building, "building") not in ("", building):
            continue
        return True
    return False


def match_customer(contact: ContactIdentity, candidates: Iterable[DirectoryEntry]) -> Match:
    """Exact (phone/e-mail), probable (name + project + unit) or unknown; see module doc."""
    entries = list(candidates)
    phone = normalise_phone(contact.phone)
    email = normalise_email(contact.email)
    exact: list[tuple[DirectoryEntry, str]] = []
    for entry in entries:
        if phone and phone in entry.phones:
            exact.append((entry, "phone"))
        elif email and email in entry.emails:
            exact.append((entry, "email"))
    if exact:
        entry, on = min(exact, key=lambda pair: _preference(pair[0], contact.region))
        return Match(entry.customer_id, MatchKind.EXACT, entry, on)

    name = _parse_name(contact.name) if contact.name else None
    if name is None:
        return UNKNOWN
    probable = [
        entry
        for entry in entries
        if _unit_matches(contact, entry.units)
        and any(_names_match(name, n) for n in map(_parse_name, entry.names) if n)
    ]
    if probable:
        entry = min(probable, key=lambda e: _preference(e, contact.region))
        return Match(entry.customer_id, MatchKind.PROBABLE, entry, "name-unit")
    return UNKNOWN


def provisional_customer_id(region: str, phone_or_email: str) -> str:
    """``prov-`` + 16 hex digits of sha256(region | normalised phone or e-mail).

    The same caller gets the same id whatever the channel or format ("+86 138-0001-8000"
    and "13800018000" are one key). Raises ValueError for an empty key.
    """
    key = normalise_phone(phone_or_email) or normalise_email(phone_or_email)
    if key is None:
        key = unicodedata.normalize("NFKC", phone_or_email or "").strip().casefold()
    if not key:
        raise ValueError("a provisional customer id needs a phone number or an e-mail address")
    digest = hashlib.sha256(f"{region.strip().casefold()}|{key}".encode()).hexdigest()
    return f"prov-{digest[:16]}"
