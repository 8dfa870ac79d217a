"""Survey definitions: the questions each kind of survey asks, versioned, in zh-CN and en.

A definition never changes once published: a change is a new version, and a response
records the version it answered, so old answers keep their meaning. `overall` (1-5) is
the question every kind asks: 4 or 5 is satisfied, 1 or 2 dissatisfied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class QuestionType(StrEnum):
    SCALE = "scale"  # 1-5, 5 = very satisfied
    NPS = "nps"  # 0-10, how likely to recommend
    CHOICE = "choice"  # one option of several
    TEXT = "text"  # free text


@dataclass(frozen=True)
class Option:
    id: str
    zh: str
    en: str


@dataclass(frozen=True)
class Question:
    id: str
    type: QuestionType
    zh: str
    en: str
    required: bool = True
    options: tuple[Option, ...] = ()

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class Definition:
    kind: str
    version: int
    title_zh: str
    title_en: str
    questions: tuple[Question, ...] = field(default_factory=tuple)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    def title(self, lang: str) -> str:
        return self.title_en if lang == "en" else self.title_zh


def _scale(id_: str, zh: str, en: str, required: bool = True) -> Question:
    return Question(id_, QuestionType.SCALE, zh, en, required)


OVERALL = "overall"
COMMENT = "comment"
_COMMENT = Question(COMMENT, QuestionType.TEXT, "您还有什么意见或建议？", "Anything else you would like to tell us?",
                    required=False)
_YES_NO_PARTLY = (Option("yes", "是", "Yes"), Option("partly", "部分解决", "Partly"), Option("no", "否", "No"))

# The eleven dimensions of the annual satisfaction survey in the industry material.
ANNUAL_DIMENSIONS = ("overall", "loyalty", "repurchase", "recommendation", "ongoing_attention",
                     "complaint_handling", "sales_service", "planning_design", "amenities",
                     "engineering_quality", "property_management")

_DEFINITIONS: tuple[Definition, ...] = (
    Definition("case_return_visit", 1, "投诉处理回访", "Return visit after your complaint", (
        _scale(OVERALL, "您对本次投诉的处理结果是否满意？",
               "How satisfied are you with how your complaint was handled?"),
        _scale("timeliness", "您对处理的及时性是否满意？", "How satisfied are you with how quickly it was handled?"),
        _scale("attitude", "您对工作人员的服务态度是否满意？", "How satisfied are you with our staff's attitude?"),
        Question("resolved", QuestionType.CHOICE, "您反映的问题是否已经解决？", "Has your problem been solved?",
                 options=_YES_NO_PARTLY),
        _COMMENT,
    )),
    Definition("repair_return_visit", 1, "维修回访", "Return visit after a repair", (
        _scale(OVERALL, "您对本次维修是否满意？", "How satisfied are you with this repair?"),
        _scale("repair_quality", "您对维修质量是否满意？", "How satisfied are you with the quality of the repair?"),
        _scale("timeliness", "维修人员是否按约定时间上门？您是否满意？",
               "Did the repair team come when agreed? How satisfied are you?"),
        Question("fixed", QuestionType.CHOICE, "问题是否已修好？", "Is the problem fixed?", options=_YES_NO_PARTLY),
        _COMMENT,
    )),
    Definition("sales_return_visit", 1, "签约回访", "Return visit after signing", (
        _scale(OVERALL, "您对本次购房签约的服务是否满意？",
               "How satisfied are you with the service when you signed?"),
        _scale("specialist_service", "您对置业顾问的服务是否满意？",
               "How satisfied are you with your sales consultant?"),
        _scale("contract_explanation", "合同条款是否解释清楚？您是否满意？",
               "Were the contract terms explained clearly? How satisfied are you?"),
        Question("recommend", QuestionType.NPS, "您有多大可能向亲友推荐我们？（0-10）",
                 "How likely are you to recommend us to friends and family? (0-10)", required=False),
        _COMMENT,
    )),
    Definition("living_3_months", 1, "入住三个月回访", "Three months in your new home", (
        _scale(OVERALL, "入住三个月，您对新家总体是否满意？",
               "After three months, how satisfied are you with your home?"),
        _scale("property_management", "您对物业服务是否满意？", "How satisfied are you with the property management?"),
        _scale("amenities", "您对小区配套设施是否满意？", "How satisfied are you with the amenities?"),
        _scale("engineering_quality", "您对房屋质量是否满意？", "How satisfied are you with the quality of your home?"),
        Question("open_issues", QuestionType.CHOICE, "目前是否有待维修的问题？",
                 "Is anything still waiting to be repaired?",
                 options=(Option("none", "没有", "Nothing"), Option("some", "有", "Yes"))),
        _COMMENT,
    )),
    Definition("inspection_1_year", 1, "交付一周年质量回访", "One-year quality inspection", (
        _scale(OVERALL, "交付一年，您对房屋质量总体是否满意？",
               "After one year, how satisfied are you with your home's quality?"),
        _scale("engineering_quality", "您对墙面、门窗、水电等工程质量是否满意？",
               "How satisfied are you with walls, doors, windows, plumbing and wiring?"),
        _scale("repair_service", "您对保修服务是否满意？", "How satisfied are you with the warranty repairs?"),
        Question("leak", QuestionType.CHOICE, "一年内是否出现过渗漏？", "Has there been any leak this year?",
                 options=(Option("no", "没有", "No"), Option("yes", "有", "Yes"))),
        _COMMENT,
    )),
    Definition("annual", 1, "年度客户满意度调查", "Annual customer satisfaction survey", (
        _scale(OVERALL, "总体而言，您对我们是否满意？", "Overall, how satisfied are you with us?"),
        _scale("loyalty", "您是否愿意继续关注和支持我们？", "How willing are you to stay with us?"),
        _scale("repurchase", "如果再次购房，您选择我们的意愿如何？", "How likely are you to buy from us again?"),
        Question("recommendation", QuestionType.NPS, "您有多大可能向亲友推荐我们？（0-10）",
                 "How likely are you to recommend us to friends and family? (0-10)"),
        _scale("ongoing_attention", "您对我们持续的关怀和沟通是否满意？",
               "How satisfied are you with how we keep in touch with you?"),
        _scale("complaint_handling", "您对投诉处理是否满意？（如无投诉可不答）",
               "How satisfied are you with complaint handling? (skip if none)", required=False),
        _scale("sales_service", "您对销售服务是否满意？", "How satisfied are you with the sales service?"),
        _scale("planning_design", "您对规划设计是否满意？", "How satisfied are you with the planning and design?"),
        _scale("amenities", "您对配套设施是否满意？", "How satisfied are you with the amenities?"),
        _scale("engineering_quality", "您对工程质量是否满意？", "How satisfied are you with the construction quality?"),
        _scale("property_management", "您对物业管理是否满意？", "How satisfied are you with the property management?"),
        _COMMENT,
    )),
)

DEFINITIONS: dict[tuple[str, int], Definition] = {(d.kind, d.version): d for d in _DEFINITIONS}


def current(kind: str) -> Definition:
    """The newest version of a kind's definition: what a new survey asks."""
    versions = [d for (k, _), d in DEFINITIONS.items() if k == kind]
    if not versions:
        raise KeyError(kind)
    return max(versions, key=lambda d: d.version)


def get(kind: str, version: int) -> Definition:
    return DEFINITIONS[(kind, version)]
