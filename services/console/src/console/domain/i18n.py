"""The console's two languages: every label staff read, and dates and numbers in their locale.

Why a table rather than gettext catalogues: two languages, a few hundred strings, no
translators' tooling in the centres; one Python dict keeps both sides of each string
together, and a unit test checks that none is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from console.domain.labels import LABELS

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
# Every region the platform serves is in mainland China: one zone for all their clocks.
CENTRE_ZONE = ZoneInfo("Asia/Shanghai")


def pick_language(preferred: str | None, accept_language: str | None = None) -> str:
    """The user's saved choice, else the browser's first supported language, else Chinese."""
    if preferred in LANGUAGES:
        return preferred  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


class Translator:
    """`t("queue.title")` in the user's language; a missing key shows the key, never crashes."""

    def __init__(self, language: str):
        self.language = language if language in LANGUAGES else DEFAULT_LANGUAGE
        self._index = 0 if self.language == "zh-CN" else 1

    def __call__(self, key: str, **values: Any) -> str:
        pair = LABELS.get(key)
        text = pair[self._index] if pair else key
        return text.format(**values) if values else text

    def label(self, group: str, value: str | None) -> str:
        """A code such as a status or severity, shown by its name (the code if unknown)."""
        if value is None:
            return "—"
        pair = LABELS.get(f"{group}.{value}")
        return pair[self._index] if pair else value

    def datetime(self, value: datetime | str | None) -> str:
        moment = parse_moment(value)
        if moment is None:
            return "—"
        local = moment.astimezone(CENTRE_ZONE)
        if self.language == "zh-CN":
            return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
        return f"{local.day} {local:%b} {local.year}, {local:%H:%M}"

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return "—"
        # Both locales group thousands with commas; Chinese readers expect 万 only in prose.
        return f"{value:,.{digits}f}"

    def duration(self, minutes: int) -> str:
        """A working-time span: '2 天 3 小时' / '2 d 3 h' (a working day is counted as hours)."""
        hours, mins = divmod(abs(minutes), 60)
        if self.language == "zh-CN":
            return f"{hours} 小时 {mins} 分" if hours else f"{mins} 分钟"
        return f"{hours} h {mins} min" if hours else f"{mins} min"


def parse_moment(value: datetime | str | None) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CENTRE_ZONE)
    if not isinstance(value, str) or not value:  # absent (None, or a template's undefined)
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=CENTRE_ZONE)
