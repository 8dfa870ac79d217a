"""What makes a contact: its identity (so a repeat never makes a second one), and the
rule that folds a near-identical repeat from the same customer within a day.

Pure rules, no I/O.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

# Contacts from the same customer this close in text, within this window, are marked
# `duplicate_of` the first one: still recorded (nothing is lost), but not worked twice.
DUPLICATE_WINDOW = timedelta(hours=24)
DUPLICATE_SIMILARITY = 0.9

_NAMESPACE = uuid.UUID("6f1c3c2e-8a57-4d4b-9a43-2f0d6c1e7b10")


def contact_id_for(channel: str, source_ref: str | None, idempotency_key: str | None) -> str:
    """A contact's id. Deterministic when the contact has a natural identity (the channel's
    own reference — call id, post id, letter number — or the client's Idempotency-Key), so a
    repeat, on any replica, lands on the same id and creates nothing new."""
    if source_ref:
        return str(uuid.uuid5(_NAMESPACE, f"{channel}:{source_ref}"))
    if idempotency_key:
        return str(uuid.uuid5(_NAMESPACE, f"idempotency:{idempotency_key}"))
    return str(uuid.uuid4())


_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def normalised_text(subject: str, body: str) -> str:
    text = unicodedata.normalize("NFKC", f"{subject} {body}").casefold()
    return _NOISE.sub("", text)


@dataclass(frozen=True)
class EarlierContact:
    contact_id: str
    received_at: datetime
    text: str  # normalised_text of the earlier contact
    duplicate_of: str | None = None


def find_duplicate(text: str, received_at: datetime, earlier: list[EarlierContact]) -> str | None:
    """The contact this one repeats, if the same customer sent near-identical text within
    24 hours; it points at the first of a chain, not at another duplicate."""
    best: tuple[float, EarlierContact] | None = None
    for candidate in earlier:
        if abs(received_at - candidate.received_at) > DUPLICATE_WINDOW:
            continue
        ratio = (
            1.0
            if candidate.text == text
            else difflib.SequenceMatcher(None, candidate.text, text, autojunk=False).ratio()
        )
        if ratio >= DUPLICATE_SIMILARITY and (best is None or ratio > best[0]):
            best = (ratio, candidate)
    if best is None:
        return None
    return best[1].duplicate_of or best[1].contact_id
