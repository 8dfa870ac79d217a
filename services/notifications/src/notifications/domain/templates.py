"""Message templates: which placeholders each template may use, checking a template when
it is saved, and rendering it in a sandbox (staff edit templates; a template must not
reach into Python objects)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import SandboxedEnvironment, SecurityError

LANGUAGES = ("zh-CN", "en")
CHANNELS = ("sms", "email", "letter", "staff")

# Template id -> the placeholders its trigger fills. A saved template may use these only.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "case.acknowledged": ("customer_name", "case_number", "centre_name"),
    "case.progress": ("customer_name", "case_number", "message", "centre_name"),
    "case.resolved": ("customer_name", "case_number", "summary", "centre_name"),
    "staff.case_assigned": ("case_number", "department", "title"),
    "staff.case_escalated": ("case_number", "reason", "escalated_to"),
    "staff.sla_breached": ("case_number", "clock", "due_at"),
    "staff.collective_incident": ("project", "building", "customer_count", "severity", "category"),
    "sales.welcome": ("customer_name", "company", "project_name", "specialist_name", "specialist_phone"),
    **{f"milestone.{m}": ("project_name", "building", "centre_name")
       for m in ("topped_out", "frame_removed", "landscaping_started", "site_open_day", "delivery")},
    "unit.move_in": ("customer_name", "project_name", "building", "unit", "centre_name"),
    "survey.visit_notice": ("customer_name", "visit_date", "centre_name"),
    "care.birthday": ("customer_name", "centre_name"),
    "care.holiday": ("customer_name", "holiday_name", "centre_name"),
}

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateInvalid(ValueError):
    """A template text refused when saved; `field` names what is wrong."""

    def __init__(self, field: str, message: str, placeholder: str | None = None):
        super().__init__(message)
        self.field = field
        self.placeholder = placeholder


class RenderFailed(ValueError):
    """A stored template could not be rendered with the trigger's values."""


@dataclass(frozen=True)
class Template:
    template_id: str
    language: str
    channel: str
    version: int
    subject: str
    body: str

    @property
    def key(self) -> str:
        return template_key(self.template_id, self.language, self.channel)


def template_key(template_id: str, language: str, channel: str) -> str:
    return f"{template_id}|{language}|{channel}"


def check_text(template_id: str, field: str, text: str) -> None:
    """Refuse a template text that does not parse or uses a placeholder its trigger does
    not fill, naming the first unknown one."""
    allowed = PLACEHOLDERS.get(template_id)
    if allowed is None:
        raise TemplateInvalid("template_id", f"unknown template id {template_id!r}")
    try:
        parsed = _env.parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(field, f"{field} does not parse at line {exc.lineno}: {exc.message}") from exc
    unknown = sorted(meta.find_undeclared_variables(parsed) - set(allowed))
    if unknown:
        raise TemplateInvalid(
            field, f"unknown placeholder {unknown[0]!r} in {field}; {template_id} fills: {', '.join(allowed)}",
            placeholder=unknown[0])


def check_template(template_id: str, language: str, channel: str, subject: str, body: str) -> None:
    if language not in LANGUAGES:
        raise TemplateInvalid("language", f"language must be one of {', '.join(LANGUAGES)}")
    if channel not in CHANNELS:
        raise TemplateInvalid("channel", f"channel must be one of {', '.join(CHANNELS)}")
    if not body.strip():
        raise TemplateInvalid("body", "body must not be empty")
    check_text(template_id, "subject", subject)
    check_text(template_id, "body", body)


def sample_params(template_id: str, language: str) -> dict[str, str]:
    """Values for a preview: each placeholder shows its own name, so staff see where it goes."""
    return {name: (f"〈{name}〉" if language == "zh-CN" else f"<{name}>")
            for name in PLACEHOLDERS.get(template_id, ())}


@lru_cache(maxsize=512)
def _compiled(text: str) -> Any:
    # Compiling is most of a render's cost: a broadcast renders one text 20,000 times.
    return _env.from_string(text)


def render_text(text: str, params: Mapping[str, str]) -> str:
    try:
        return str(_compiled(text).render(**params)).strip()
    except (UndefinedError, SecurityError, TemplateSyntaxError) as exc:
        raise RenderFailed(str(exc)) from exc


def render(template: Template, params: Mapping[str, str]) -> tuple[str, str]:
    """The rendered (subject, body); every placeholder of the template id gets a value
    (an absent optional one renders empty)."""
    values = {name: "" for name in PLACEHOLDERS.get(template.template_id, ())}
    values.update({k: v for k, v in params.items() if v is not None})
    return render_text(template.subject, values), render_text(template.body, values)
