"""A service's problem+json, told in the user's language.

The services answer in English with the field they refuse (`field`, or `errors[].field`
from request validation); staff read a sentence in their own language that names the field
by its label, with the service's own words kept beneath for whoever reports a fault."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from console.domain.i18n import Translator

# Status -> what it means for the person at the screen.
_HEADLINES = {400: "problem.invalid", 401: "problem.signed_out", 403: "problem.forbidden", 404: "problem.not_found",
              409: "problem.not_now", 413: "problem.too_large", 415: "problem.bad_file", 422: "problem.invalid"}


_EMPTY = frozenset({"missing", "string_too_short"})


@dataclass(frozen=True)
class Message:
    field: str | None
    text: str


@dataclass(frozen=True)
class ToldProblem:
    headline: str
    messages: list[Message]
    original: str  # the service's detail, verbatim

    @property
    def fields(self) -> set[str]:
        return {m.field for m in self.messages if m.field}


def _leaf(field: str) -> str:
    """'body.customer.phone' -> 'phone'; 'files[0]' -> 'files'."""
    last = field.split(".")[-1]
    return last.split("[")[0]


def tell(status: int, problem: dict[str, Any], t: Translator) -> ToldProblem:
    headline = t(_HEADLINES.get(status, "problem.failed"))
    messages: list[Message] = []
    errors = problem.get("errors")
    if isinstance(errors, list) and errors:
        for error in errors:
            if not isinstance(error, dict):
                continue
            name = _leaf(str(error.get("field") or ""))
            key = "problem.field_required" if error.get("type") in _EMPTY else "problem.field_invalid"
            messages.append(Message(name or None, t(key, field=t.label("field", name))))
    elif problem.get("field") and not (status == 409 and problem["field"] == "status"):
        # A 409 on `status` is what the headline already says: not at this step.
        name = _leaf(str(problem["field"]))
        key = "problem.field_not_now" if status == 409 else "problem.field_invalid"
        messages.append(Message(name, t(key, field=t.label("field", name))))
    for missing in problem.get("missing") or []:
        messages.append(Message(None, t("problem.missing_step", step=t.label("checklist", str(missing)))))
    return ToldProblem(headline, messages, str(problem.get("detail") or problem.get("title") or ""))
