"""Answer validation and scoring, the same for every answering mode.

Answers are `{question_id: value}`. A partial set (a self-service page saved half way)
only has to be valid for what it holds; a submitted one needs every required question.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from surveys.domain.definitions import COMMENT, OVERALL, Definition, QuestionType

MAX_TEXT = 2000


class InvalidAnswer(ValueError):
    """An answer the definition does not allow; `question` names it, `code` says why
    (unknown, number, range, choice, text, length, required) for a page in any language."""

    def __init__(self, question: str, message: str, code: str = "invalid"):
        super().__init__(f"{question}: {message}")
        self.question = question
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Result:
    scores: dict[str, int]  # the 1-5 answers
    nps: int | None
    choices: dict[str, str]
    comment: str | None
    satisfied: bool
    dissatisfied: bool


def _as_int(question: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidAnswer(question, "must be a whole number", "number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise InvalidAnswer(question, "must be a whole number", "number")


def validate(definition: Definition, answers: dict[str, Any], *, complete: bool) -> dict[str, Any]:
    """The answers normalised (numbers as int, texts stripped, blanks dropped), or
    `InvalidAnswer` naming the first question at fault."""
    clean: dict[str, Any] = {}
    for question_id, value in answers.items():
        question = definition.question(question_id)
        if question is None:
            raise InvalidAnswer(question_id, f"is not a question of {definition.kind} v{definition.version}",
                                    "unknown")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if question.type is QuestionType.SCALE:
            number = _as_int(question_id, value)
            if not 1 <= number <= 5:
                raise InvalidAnswer(question_id, f"must be 1 to 5, not {number}", "range")
            clean[question_id] = number
        elif question.type is QuestionType.NPS:
            number = _as_int(question_id, value)
            if not 0 <= number <= 10:
                raise InvalidAnswer(question_id, f"must be 0 to 10, not {number}", "range")
            clean[question_id] = number
        elif question.type is QuestionType.CHOICE:
            allowed = [o.id for o in question.options]
            if value not in allowed:
                raise InvalidAnswer(question_id, f"must be one of {', '.join(allowed)}", "choice")
            clean[question_id] = value
        else:
            if not isinstance(value, str):
                raise InvalidAnswer(question_id, "must be text", "text")
            if len(value) > MAX_TEXT:
                raise InvalidAnswer(question_id, f"must be at most {MAX_TEXT} characters", "length")
            clean[question_id] = value.strip()
    if complete:
        for question in definition.questions:
            if question.required and question.id not in clean:
                raise InvalidAnswer(question.id, "is required", "required")
    return clean


def score(definition: Definition, answers: dict[str, Any]) -> Result:
    """What a complete, valid set of answers says: the scores, NPS and the verdict."""
    scores, choices = {}, {}
    nps: int | None = None
    for question in definition.questions:
        if question.id not in answers:
            continue
        value = answers[question.id]
        if question.type is QuestionType.SCALE:
            scores[question.id] = int(value)
        elif question.type is QuestionType.NPS:
            nps = int(value)
        elif question.type is QuestionType.CHOICE:
            choices[question.id] = str(value)
    overall = scores.get(OVERALL)
    comment = answers.get(COMMENT)
    return Result(scores=scores, nps=nps, choices=choices, comment=comment or None,
                  satisfied=overall in (4, 5), dissatisfied=overall in (1, 2))
