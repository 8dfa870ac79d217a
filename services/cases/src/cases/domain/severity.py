"""Severity proposal: general, major or crisis, read from what the customer wrote.

Why: step 2 of the nine-step procedure (确认) sends a complaint down the general, major or
crisis procedure. Agents confirm the severity, but a complaint mentioning casualties or a
journalist must not sit in a general queue until someone reads it, so the platform proposes
a severity the moment the case opens.

Rules (the default table; a region edits the words through `SeverityRules.merged`):
- casualties (伤亡, 受伤, 烧伤, injured, burned, died ...)         -> crisis
- media exposure (媒体, 曝光, 记者, 电视台, 微博热搜, journalist ...) -> crisis
- safety hazards (燃气泄漏, 漏电, 触电, 高空坠物, 火灾, 承重 ...)    -> major
- lawyers and lawsuits (律师, 起诉, 法院, lawyer, lawsuit, sue ...)  -> major
- collective complaints (集体, 联名, 多户业主, 维权, collective ...)  -> major
- otherwise                                                         -> general
Context known from elsewhere (a collective incident was detected, the contact came from a
journalist) counts as the matching trigger even when the words are absent.

Chinese words match as substrings. English words match whole words, case-insensitively,
with common endings (lawyer -> lawyers, leak -> leaking), so "sue" does not fire on "issue".
The proposal also guesses the category from keywords (most hits wins, ties in the order of
`CATEGORIES`, nothing -> "other"; a repair contact defaults to engineering quality).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any


class Severity(StrEnum):
    GENERAL = "general"
    MAJOR = "major"
    CRISIS = "crisis"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @staticmethod
    def highest(*values: Severity) -> Severity:
        return max(values, key=lambda s: s.rank, default=Severity.GENERAL)


_RANK = {Severity.GENERAL: 0, Severity.MAJOR: 1, Severity.CRISIS: 2}


class Category(StrEnum):
    ENGINEERING_QUALITY = "engineering_quality"
    SALES_SERVICE = "sales_service"
    CUSTOMER_SERVICE = "customer_service"
    PROPERTY_MANAGEMENT = "property_management"
    DESIGN = "design"
    OTHER = "other"


CATEGORIES: tuple[Category, ...] = tuple(Category)


@dataclass(frozen=True)
class Trigger:
    """A named group of words that raises a complaint to `severity`."""

    severity: Severity
    keywords: tuple[str, ...]


# fmt: off
DEFAULT_TRIGGERS: dict[str, Trigger] = {
    "casualties": Trigger(
        Severity.CRISIS,
        ("伤亡", "受伤", "死亡", "身亡", "丧生", "致死", "致伤", "砸伤", "摔伤", "烧伤",
         "injured", "injury", "injuries", "died", "death", "killed", "casualty",
         "casualties", "burned", "burnt", "scalded"),
    ),
    "media": Trigger(
        Severity.CRISIS,
        ("媒体", "曝光", "记者", "电视台", "微博热搜", "热搜", "报社",
         "media", "journalist", "reporter", "newspaper", "tv station", "the press"),
    ),
    "safety": Trigger(
        Severity.MAJOR,
        ("燃气泄漏", "煤气泄漏", "燃气泄露", "煤气泄露", "漏气", "漏电", "触电", "坠落",
         "高空坠物", "坠楼", "火灾", "起火", "着火", "结构裂缝", "承重", "结构安全", "倒塌",
         "gas leak", "electric shock", "electrocuted", "fire", "fall", "fell",
         "falling objects", "structural", "load-bearing", "collapse"),
    ),
    "legal": Trigger(
        Severity.MAJOR,
        ("律师", "起诉", "法院", "诉讼", "仲裁", "律师函",
         "lawyer", "attorney", "lawsuit", "sue", "suing", "court case", "litigation"),
    ),
    "collective": Trigger(
        Severity.MAJOR,
        ("集体", "联名", "多户业主", "维权", "业主群", "群诉",
         "collective", "joint complaint", "group of owners"),
    ),
}

DEFAULT_CATEGORY_KEYWORDS: dict[Category, tuple[str, ...]] = {
    Category.ENGINEERING_QUALITY: (
        "渗水", "漏水", "渗漏", "裂缝", "空鼓", "开裂", "门窗", "墙面", "地面", "瓷砖", "防水",
        "管道", "堵塞", "质量", "维修", "返修", "施工", "漏电", "燃气", "承重", "结构",
        "leak", "crack", "quality", "repair", "window", "wall", "plumbing", "tiles",
        "construction", "structural",
    ),
    Category.SALES_SERVICE: (
        "销售", "合同", "置业顾问", "定金", "订金", "首付", "贷款", "按揭", "价格", "降价",
        "虚假宣传", "广告", "房产证", "产权证", "认购", "退房",
        "sales", "contract", "deposit", "mortgage", "price", "advertising", "title deed",
        "refund",
    ),
    Category.CUSTOMER_SERVICE: (
        "客服", "热线", "态度", "回复", "没人接", "无人接听", "推诿", "投诉处理", "回访",
        "customer service", "hotline", "rude", "no reply", "no response", "ignored",
    ),
    Category.PROPERTY_MANAGEMENT: (
        "物业", "保安", "保洁", "停车", "车位", "电梯", "垃圾", "绿化", "门禁", "物业费",
        "管家", "噪音扰民",
        "property management", "security guard", "cleaning", "parking", "elevator", "lift",
        "garbage", "management fee",
    ),
    Category.DESIGN: (
        "设计", "户型", "采光", "层高", "规划", "配套", "景观", "朝向", "容积率", "样板房",
        "design", "layout", "floor plan", "daylight", "planning", "landscape", "show flat",
    ),
}

# fmt: on

_CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


@cache
def _pattern(keyword: str) -> re.Pattern[str]:
    if _CJK.search(keyword):
        return re.compile(re.escape(keyword))
    words = r"\s+".join(re.escape(w) for w in keyword.split())
    return re.compile(rf"\b{words}(?:s|es|ed|d|ing)?\b", re.IGNORECASE)


def _hits(text: str, keywords: Iterable[str]) -> list[str]:
    return [k for k in keywords if _pattern(k).search(text)]


def _edit(words: tuple[str, ...], change: Any) -> tuple[str, ...]:
    """A list replaces the words; {"add": [...], "remove": [...]} edits them."""
    if isinstance(change, list | tuple):
        return tuple(dict.fromkeys(change))
    if isinstance(change, Mapping):
        removed = set(change.get("remove", ()))
        kept = [w for w in words if w not in removed]
        return tuple(dict.fromkeys([*kept, *change.get("add", ())]))
    raise ValueError(f"unsupported keyword change: {change!r}")


@dataclass(frozen=True)
class SeverityRules:
    """The words behind each trigger and each category; `default()` then region edits."""

    triggers: Mapping[str, Trigger] = field(default_factory=lambda: dict(DEFAULT_TRIGGERS))
    category_keywords: Mapping[Category, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_KEYWORDS)
    )

    @classmethod
    def default(cls) -> SeverityRules:
        return cls()

    def merged(self, region_override: Mapping[str, Any] | None) -> SeverityRules:
        """A copy with a region's edits applied. Format (every part optional):

        {"triggers": {"safety": {"add": ["甲醛超标"], "remove": ["fall"]},
                      "media": ["媒体", "记者"],                   # a list replaces
                      "pets": {"severity": "major", "add": ["恶犬"]}},  # a new trigger
         "categories": {"design": {"add": ["日照"]}}}
        A trigger's "severity" may be changed too.
        """
        if not region_override:
            return self
        unknown = set(region_override) - {"triggers", "categories"}
        if unknown:
            raise ValueError(f"unknown severity rule sections: {sorted(unknown)}")
        triggers = dict(self.triggers)
        for name, change in (region_override.get("triggers") or {}).items():
            current = triggers.get(name, Trigger(Severity.MAJOR, ()))
            severity = current.severity
            if isinstance(change, Mapping) and "severity" in change:
                severity = Severity(change["severity"])
            words = current.keywords
            if not isinstance(change, Mapping) or {"add", "remove"} & set(change):
                words = _edit(words, change)
            triggers[name] = Trigger(severity, words)
        categories = dict(self.category_keywords)
        for name, change in (region_override.get("categories") or {}).items():
            cat = Category(name)
            categories[cat] = _edit(categories.get(cat, ()), change)
        return SeverityRules(triggers=triggers, category_keywords=categories)

    def mentions(self, trigger: str, *texts: str | None) -> list[str]:
        """The words of `trigger` found in the texts (e.g. `mentions("media", subject, body)`)."""
        text = "\n".join(t for t in texts if t)
        rule = self.triggers.get(trigger)
        return _hits(text, rule.keywords) if rule else []


@dataclass(frozen=True)
class SeverityContext:
    """What is known besides the words: flags set by intake, staff or collective detection."""

    collective: bool = False
    media: bool = False
    casualties: bool = False
    safety_hazard: bool = False
    kind_hint: str | None = None


# context flag -> trigger it stands for
_CONTEXT_TRIGGERS = {
    "casualties": "casualties",
    "media": "media",
    "safety_hazard": "safety",
    "collective": "collective",
}


@dataclass(frozen=True)
class SeverityProposal:
    severity: Severity
    reasons: tuple[str, ...]  # "media:记者", "collective:context", ...
    category: Category

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "reasons": list(self.reasons),
            "category": self.category.value,
        }


def guess_category(text: str, rules: SeverityRules, kind_hint: str | None = None) -> Category:
    best, best_hits = Category.OTHER, 0
    for cat in CATEGORIES:
        hits = len(_hits(text, rules.category_keywords.get(cat, ())))
        if hits > best_hits:
            best, best_hits = cat, hits
    if best_hits == 0 and kind_hint == "repair":
        return Category.ENGINEERING_QUALITY
    return best


def propose_severity(
    subject: str | None,
    body: str | None,
    context: SeverityContext | None = None,
    rules: SeverityRules | None = None,
) -> SeverityProposal:
    """Propose severity, reasons and category for one contact's text."""
    context = context or SeverityContext()
    rules = rules or SeverityRules.default()
    text = "\n".join(t for t in (subject, body) if t)
    severity = Severity.GENERAL
    reasons: list[str] = []
    for name, trigger in rules.triggers.items():
        found = _hits(text, trigger.keywords)
        reasons.extend(f"{name}:{word}" for word in found)
        if found:
            severity = Severity.highest(severity, trigger.severity)
    for flag, name in _CONTEXT_TRIGGERS.items():
        if getattr(context, flag) and name in rules.triggers:
            reasons.append(f"{name}:context")
            severity = Severity.highest(severity, rules.triggers[name].severity)
    return SeverityProposal(
        severity=severity,
        reasons=tuple(reasons),
        category=guess_category(text, rules, context.kind_hint),
    )
