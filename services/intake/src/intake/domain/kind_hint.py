"""Kind hint: complaint, consultation, suggestion, repair or praise, from rules over text.

Pure rules, no I/O. Intake attaches the hint to ``crm.intake.contact.received.v1``
(``kind_hint``); an agent confirms or corrects it when the case is validated. The hint is
deliberately simple and explainable — every point of a score comes from a keyword the agent
can see in :attr:`KindHint.evidence`.

How a text is scored (:func:`classify_kind`):

1. subject and body are NFKC-normalised and case-folded (full-width → ASCII, "LEAK" → "leak");
2. every keyword of every kind (and every question marker) is found left to right, longest
   first, so "不满意" is one complaint hit and not also a praise hit for "满意";
3. a keyword adds its weight to its kind — the first occurrence fully, the second at half
   weight, further ones not at all; keywords in the subject count ``subject_weight`` times;
4. a keyword right after a negation in the same clause ("没有漏水", "not satisfied") adds
   nothing; question forms such as "是不是", "有没有" are not negations; complaint keywords
   are only cancelled by the narrow ``complaint_negations`` ("我不是来投诉的"), since
   "没有道歉" or "has not been refunded" is still a grievance;
5. question markers ("?", "吗", …) add to consultation and are never negated;
6. the kind with the highest score wins; equal scores go to the first kind of the tie order
   complaint > repair > consultation > suggestion > praise (a missed complaint costs more than
   a missed praise); with no keyword at all the hint is ``default_kind`` (consultation) with
   confidence 0, which consumers read as *unclassified*;
7. a danger to people is never a consultation: when one of ``danger_words`` counts (harm
   words score for complaint, hazard words for repair, see ``kind_keywords.DANGER_WORDS``),
   the better of complaint and repair wins instead of consultation. Harm words take the
   ordinary negations ("没人受伤"), not the narrow complaint ones.

``confidence`` is the winner's share of all the points (0–1); ``scores`` holds every kind's
points, so a consumer can apply its own threshold (e.g. "complaint ≥ 3 ⇒ put in the queue
as a complaint even if repair won").

Region override (configuration)
-------------------------------
:meth:`KindKeywords.merged` takes a plain dict (from YAML/JSON/env configuration) and
returns a new table; the default table is not changed::

    {
      "add": {                                   # kind -> {keyword: weight} or [keyword, ...]
        "complaint": {"烂尾": 3.0, "维权群": 2.5},
        "repair": ["返潮", "回南天"]             #   a list gives each word weight 2.0
      },
      "remove": {                                # kind (or "*" for every kind) -> [keyword, ...]
        "praise": ["负责"],
        "*": ["严重"]
      },
      "question_markers": {"add": {"咋办": 1.5}, "remove": ["呢"]},
      "negations": {"add": ["莫"], "remove": ["无"]},
      "complaint_negations": {"add": ["不算投诉"]},
      "danger_words": {"add": ["煤气罐"]},      # never a consultation (see below)
      "default_kind": "consultation",            # optional
      "subject_weight": 1.5                      # optional
    }

``remove`` is applied before ``add``; an ``add`` of an existing keyword replaces its weight;
removing a keyword that is not there is ignored (one override can serve several versions of
the default table). An unknown kind, an unknown top-level key or a weight that is not a
positive number raises ``ValueError`` — a broken configuration fails at start-up, not
silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

from intake.domain import kind_keywords as defaults

__all__ = ["KINDS", "Kind", "KindHint", "KindKeywords", "classify_kind"]


class Kind(StrEnum):
    COMPLAINT = "complaint"
    CONSULTATION = "consultation"
    SUGGESTION = "suggestion"
    REPAIR = "repair"
    PRAISE = "praise"


KINDS: tuple[str, ...] = tuple(k.value for k in Kind)
_ADDED_WORD_WEIGHT = 2.0
# A negation does not reach across punctuation: "都没有。难道…" does not negate "难道".
_CLAUSE_BREAK = re.compile(r"[,.;:!?，。；：！？、…\n\"“”()（）]")
_OVERRIDE_KEYS = frozenset(
    {
        "add",
        "remove",
        "question_markers",
        "negations",
        "complaint_negations",
        "danger_words",
        "default_kind",
        "subject_weight",
    }
)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _is_latin(keyword: str) -> bool:
    return keyword[:1].isascii() and keyword[:1].isalnum()


def _weight(kind: str, keyword: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"weight of {keyword!r} for {kind!r} must be a positive number")
    return float(value)


def _as_weights(kind: str, words: Mapping[str, Any] | Iterable[str]) -> dict[str, float]:
    if isinstance(words, str):
        raise ValueError(f"keywords for {kind!r} must be a list or a mapping, not a string")
    if isinstance(words, Mapping):
        return {str(k): _weight(kind, str(k), v) for k, v in words.items()}
    return {str(k): _ADDED_WORD_WEIGHT for k in words}


@dataclass(frozen=True)
class KindHint:
    kind: Kind
    confidence: float
    scores: dict[str, float]
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class KindKeywords:
    """The rule table: weighted keywords per kind, question markers and negations."""

    keywords: Mapping[str, Mapping[str, float]]
    question_markers: Mapping[str, float] = field(
        default_factory=lambda: dict(defaults.QUESTION_MARKERS)
    )
    negations: tuple[str, ...] = defaults.NEGATIONS
    complaint_negations: tuple[str, ...] = defaults.COMPLAINT_NEGATIONS
    not_negations: tuple[str, ...] = defaults.NOT_NEGATIONS
    danger_words: tuple[str, ...] = defaults.DANGER_WORDS
    negation_window_zh: int = defaults.NEGATION_WINDOW_ZH
    negation_window_en: int = defaults.NEGATION_WINDOW_EN
    subject_weight: float = defaults.SUBJECT_WEIGHT
    default_kind: str = defaults.DEFAULT_KIND
    complaint_margin: float = defaults.COMPLAINT_MARGIN
    complaint_floor: float = defaults.COMPLAINT_FLOOR
    tie_order: tuple[str, ...] = defaults.TIE_ORDER

    def __post_init__(self) -> None:
        unknown = set(self.keywords) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds in keyword table: {sorted(unknown)}")
        table = {k: _as_weights(k, self.keywords.get(k, {})) for k in KINDS}
        object.__setattr__(self, "keywords", table)
        markers = _as_weights("question_markers", self.question_markers)
        object.__setattr__(self, "question_markers", markers)
        object.__setattr__(self, "negations", tuple(self.negations))
        object.__setattr__(self, "complaint_negations", tuple(self.complaint_negations))
        object.__setattr__(self, "danger_words", tuple(self.danger_words))
        if self.default_kind not in KINDS:
            raise ValueError(f"default_kind must be one of {KINDS}, not {self.default_kind!r}")
        if sorted(self.tie_order) != sorted(KINDS):
            raise ValueError(f"tie_order must be a permutation of {KINDS}")
        _weight("subject_weight", "subject_weight", self.subject_weight)

    @classmethod
    def default(cls) -> KindKeywords:
        """The table in :mod:`intake.domain.kind_keywords`."""
        return _DEFAULT

    def merged(self, override: Mapping[str, Any] | None) -> KindKeywords:
        """A new table with a region's override applied (format: see the module docstring)."""
        if not override:
            return self
        unknown = set(override) - _OVERRIDE_KEYS
        if unknown:
            raise ValueError(f"unknown keys in kind keyword override: {sorted(unknown)}")
        table = {k: dict(v) for k, v in self.keywords.items()}
        for kind, words in (override.get("remove") or {}).items():
            if kind != "*" and kind not in KINDS:
                raise ValueError(f"unknown kind in override 'remove': {kind!r}")
            if isinstance(words, str):
                raise ValueError(f"'remove' of {kind!r} must be a list of keywords")
            for target in KINDS if kind == "*" else (kind,):
                for word in words:
                    table[target].pop(word, None)
        for kind, words in (override.get("add") or {}).items():
            if kind not in KINDS:
                raise ValueError(f"unknown kind in override 'add': {kind!r}")
            table[kind].update(_as_weights(kind, words))

        markers = dict(self.question_markers)
        qm = override.get("question_markers") or {}
        _check_add_remove("question_markers", qm)
        for word in qm.get("remove", ()):
            markers.pop(word, None)
        markers.update(_as_weights("question_markers", qm.get("add", {})))

        negations = _merge_words("negations", self.negations, override)
        complaint_negations = _merge_words(
            "complaint_negations", self.complaint_negations, override
        )
        danger_words = _merge_words("danger_words", self.danger_words, override)

        return replace(
            self,
            keywords=table,
            question_markers=markers,
            negations=negations,
            complaint_negations=complaint_negations,
            danger_words=danger_words,
            default_kind=override.get("default_kind", self.default_kind),
            subject_weight=override.get("subject_weight", self.subject_weight),
        )

    @cached_property
    def _matcher(self) -> tuple[re.Pattern[str], dict[str, list[tuple[str, float, bool]]]]:
        table: dict[str, list[tuple[str, float, bool]]] = {}
        for kind, words in self.keywords.items():
            for word, weight in words.items():
                table.setdefault(_fold(word), []).append((kind, weight, True))
        for word, weight in self.question_markers.items():
            table.setdefault(_fold(word), []).append((Kind.CONSULTATION.value, weight, False))
        table.pop("", None)
        alternatives = sorted(table, key=lambda w: (-len(w), w))
        pattern = "|".join((r"\b" if _is_latin(w) else "") + re.escape(w) for w in alternatives)
        return re.compile(pattern or r"(?!x)x"), table

    @cached_property
    def _negation_rules(self) -> dict[bool, tuple[tuple[str, ...], re.Pattern[str] | None]]:
        """For complaint keywords (True) and the others (False): Chinese negations and one
        regular expression over the latin ones."""
        rules: dict[bool, tuple[tuple[str, ...], re.Pattern[str] | None]] = {}
        for complaint, words in ((True, self.complaint_negations), (False, self.negations)):
            folded = [_fold(w).strip() for w in words if w.strip()]
            latin = [w for w in folded if w.isascii()]
            parts = [
                ("" if w.startswith("n'") else r"\b") + re.escape(w) + r"\b"
                for w in sorted(latin, key=len, reverse=True)
            ]
            pattern = re.compile("|".join(parts)) if parts else None
            rules[complaint] = (tuple(w for w in folded if not w.isascii()), pattern)
        return rules

    @cached_property
    def danger(self) -> frozenset[str]:
        """The danger words, folded as they are matched."""
        return frozenset(_fold(w) for w in self.danger_words)

    def _negated(self, text: str, start: int, keyword: str, complaint: bool) -> bool:
        latin = _is_latin(keyword)
        size = self.negation_window_en if latin else self.negation_window_zh
        window = _CLAUSE_BREAK.split(text[max(0, start - size) : start])[-1]
        chinese, pattern = self._negation_rules[complaint]
        if latin:
            return pattern is not None and pattern.search(window) is not None
        if any(q in window for q in self.not_negations):
            return False
        return any(n in window for n in chinese)

    def score(
        self, text: str, factor: float, scores: dict[str, float], seen: Counter[str]
    ) -> list[str]:
        """Add ``text``'s points to ``scores``; returns the keywords that counted."""
        pattern, table = self._matcher
        folded = _fold(text)
        evidence: list[str] = []
        for m in pattern.finditer(folded):
            word = m.group(0)
            seen[word] += 1
            repeat = 1.0 if seen[word] == 1 else 0.5 if seen[word] == 2 else 0.0
            if repeat == 0.0:
                continue
            counted = False
            for kind, weight, negatable in table[word]:
                # "没人受伤" is nobody hurt: harm words take the ordinary negations.
                complaint = kind == Kind.COMPLAINT.value and word not in self.danger
                if negatable and self._negated(folded, m.start(), word, complaint):
                    continue
                scores[kind] += weight * repeat * factor
                counted = True
            evidence.append(word if counted else f"¬{word}")
        return evidence


def _merge_words(
    name: str, current: tuple[str, ...], override: Mapping[str, Any]
) -> tuple[str, ...]:
    section = override.get(name) or {}
    _check_add_remove(name, section)
    for key in ("add", "remove"):
        if isinstance(section.get(key, ()), str):
            raise ValueError(f"override {name!r} {key!r} must be a list")
    removed = set(section.get("remove", ()))
    words = [w for w in current if w not in removed]
    words += [w for w in section.get("add", ()) if w not in words]
    return tuple(words)


def _check_add_remove(name: str, section: Mapping[str, Any]) -> None:
    unknown = set(section) - {"add", "remove"}
    if unknown:
        raise ValueError(f"override {name!r} takes only 'add' and 'remove', not {sorted(unknown)}")


_DEFAULT = KindKeywords(keywords=defaults.KIND_KEYWORDS)


def classify_kind(subject: str, body: str, keywords: KindKeywords | None = None) -> KindHint:
    """The kind hint for a contact's subject and body (see the module docstring)."""
    rules = keywords or _DEFAULT
    scores = dict.fromkeys(KINDS, 0.0)
    seen: Counter[str] = Counter()
    evidence = rules.score(subject or "", rules.subject_weight, scores, seen)
    evidence += rules.score(body or "", 1.0, scores, seen)
    rounded = {k: round(v, 3) for k, v in scores.items()}
    best = max(scores.values())
    if best <= 0:
        return KindHint(Kind(rules.default_kind), 0.0, rounded, tuple(evidence))
    complaint = scores[Kind.COMPLAINT.value]
    if complaint >= rules.complaint_floor and complaint >= rules.complaint_margin * best:
        winner = Kind.COMPLAINT.value  # the cautious side: see complaint_margin
    else:
        winner = next(k for k in rules.tie_order if abs(scores[k] - best) < 1e-9)
    if winner == Kind.CONSULTATION.value and rules.danger.intersection(evidence):
        # A danger to people is never a consultation, however many question marks it has.
        winner = max((Kind.COMPLAINT.value, Kind.REPAIR.value), key=lambda k: (scores[k], k == "complaint"))
    total = sum(v for v in scores.values() if v > 0)
    return KindHint(Kind(winner), round(scores[winner] / total, 3), rounded, tuple(evidence))
