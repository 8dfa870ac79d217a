"""The self-service page without servers: which link opens which survey, and what the
customer sees (both languages, nothing loaded from elsewhere, a draft filled in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from surveys.domain import tokens
from surveys.entrypoints.page import ANSWER_ERRORS, TEXT, form, refused
from surveys.handlers.answering import survey_for_token

T0 = datetime(2026, 3, 2, tzinfo=UTC)
CLAIMS = tokens.TokenClaims("sv-1", "n1", T0 + timedelta(days=3))


def survey(**overrides):
    return {"_id": "sv-1", "kind": "annual", "definition_version": 1, "status": "scheduled", "nonce": "n1",
            "draft": {}, **overrides}


@pytest.mark.parametrize("overrides,reason", [({"status": "completed"}, "used"), ({"nonce": "n2"}, "used"),
                                              ({"status": "expired"}, "expired"), ({"status": "cancelled"}, "closed"),
                                              ({"status": "deferred"}, "closed")])
def test_a_link_opens_only_its_open_survey(overrides, reason):
    with pytest.raises(tokens.TokenRefused) as err:
        survey_for_token(survey(**overrides), CLAIMS)
    assert err.value.reason == reason
    with pytest.raises(tokens.TokenRefused):
        survey_for_token(None, CLAIMS)
    assert survey_for_token(survey(), CLAIMS)["_id"] == "sv-1"


def test_the_page_asks_all_eleven_dimensions_in_both_languages_and_fills_in_the_draft():
    zh = form(survey(), "tok", "zh-CN", values={"overall": 4, "comment": "<b>好</b>"}).body.decode()
    en = form(survey(), "tok", "en", values={}).body.decode()
    assert "年度客户满意度调查" in zh and "Annual customer satisfaction survey" in en
    assert zh.count("<fieldset>") == 12 and en.count("<fieldset>") == 12  # 11 dimensions and a comment
    assert 'name="q_overall" value="4" checked' in zh and "&lt;b&gt;好&lt;/b&gt;" in zh
    assert 'name="viewport"' in en and "<script" not in en and "src=" not in en


def test_refusals_say_why_with_the_right_status():
    assert refused("en", "forged").status_code == 403
    for reason in ("used", "expired", "closed"):
        page = refused("zh-CN", reason)
        assert page.status_code == 410 and TEXT["zh-CN"][reason] in page.body.decode()
    assert set(ANSWER_ERRORS["zh-CN"]) == set(ANSWER_ERRORS["en"])
