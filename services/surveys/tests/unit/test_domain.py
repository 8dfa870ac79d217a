"""The surveys' pure rules: definitions, answers and scores, schedules on a moved clock,
exclusions, signed links and coverage."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from surveys.domain import answers, definitions, eligibility, schedule, tokens
from surveys.domain.coverage import CoverageRow, summary

POLICY = schedule.Policy()
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_every_kind_has_a_bilingual_definition_asking_overall():
    for kind in schedule.KINDS:
        d = definitions.current(kind)
        assert d.version >= 1 and d.question("overall") is not None
        for q in d.questions:
            assert q.zh and q.en and q.zh != q.en


def test_the_annual_survey_asks_the_eleven_dimensions():
    d = definitions.current("annual")
    ids = [q.id for q in d.questions]
    assert len(definitions.ANNUAL_DIMENSIONS) == 11
    assert all(dim in ids for dim in definitions.ANNUAL_DIMENSIONS)
    assert d.question("recommendation").type is definitions.QuestionType.NPS


def test_a_score_of_6_is_refused_naming_the_question():
    d = definitions.current("case_return_visit")
    with pytest.raises(answers.InvalidAnswer) as err:
        answers.validate(d, {"overall": 6}, complete=False)
    assert (err.value.question, err.value.code) == ("overall", "range")


@pytest.mark.parametrize("bad", [{"nope": 3}, {"resolved": "maybe"}, {"timeliness": "abc"}, {"overall": True}])
def test_other_bad_answers_are_refused(bad):
    with pytest.raises(answers.InvalidAnswer) as err:
        answers.validate(definitions.current("case_return_visit"), bad, complete=False)
    assert err.value.question == next(iter(bad))


def test_a_submission_needs_every_required_question_but_a_draft_does_not():
    d = definitions.current("case_return_visit")
    assert answers.validate(d, {"overall": "2"}, complete=False) == {"overall": 2}
    with pytest.raises(answers.InvalidAnswer) as err:
        answers.validate(d, {"overall": 2}, complete=True)
    assert err.value.question == "timeliness"


@pytest.mark.parametrize("overall,satisfied,dissatisfied", [(5, True, False), (4, True, False), (3, False, False),
                                                            (2, False, True), (1, False, True)])
def test_satisfied_is_4_or_5_dissatisfied_1_or_2(overall, satisfied, dissatisfied):
    d = definitions.current("sales_return_visit")
    clean = answers.validate(d, {"overall": overall, "specialist_service": 3, "contract_explanation": 4,
                                 "recommend": 9, "comment": " ok "}, complete=True)
    result = answers.score(d, clean)
    assert (result.satisfied, result.dissatisfied) == (satisfied, dissatisfied)
    assert result.nps == 9 and result.comment == "ok" and "recommend" not in result.scores


def test_case_return_visit_is_due_within_7_days_of_closure_and_the_id_is_stable():
    a = schedule.case_return_visit(POLICY, region="shenzhen", case_id="c1", customer_id="u1", closed_at=T0,
                                   closure="9")
    b = schedule.case_return_visit(POLICY, region="shenzhen", case_id="c1", customer_id="u1", closed_at=T0,
                                   closure="9")
    again = schedule.case_return_visit(POLICY, region="shenzhen", case_id="c1", customer_id="u1", closed_at=T0,
                                       closure="14")
    assert a.opens_at == T0 and a.due_at == T0 + timedelta(days=7)
    assert a.survey_id == b.survey_id != again.survey_id


def test_sales_and_repair_visits_within_a_week():
    s = schedule.sales_return_visit(POLICY, region="shenzhen", contract_id="k1", customer_id="u", signed_at=T0,
                                    project="p", building="1", unit="101")
    r = schedule.repair_return_visit(POLICY, region="shenzhen", work_order_id="w1", customer_id="u",
                                     completed_at=T0, project="p", building="1", unit="101")
    assert s.due_at - s.opens_at == timedelta(days=7) and r.due_at == T0 + timedelta(days=7)
    assert s.expires_at > s.due_at


def test_delivery_plans_the_3_month_and_1_year_visits_with_a_week_of_notice():
    living, inspection = schedule.delivery_visits(POLICY, region="shenzhen", customer_id="u",
                                                  delivered_at=datetime(2026, 11, 30, 9, tzinfo=UTC),
                                                  project="p", building="1", unit="101", product_type="bare")
    assert living.kind == "living_3_months" and living.due_at == datetime(2027, 2, 28, 9, tzinfo=UTC)
    assert inspection.due_at == datetime(2027, 11, 30, 9, tzinfo=UTC)
    for v in (living, inspection):
        assert v.notice_at == v.due_at - timedelta(days=7)
        assert v.check_at < v.notice_at


def facts(**kw):
    return eligibility.Facts(known=True, consent=True, **kw)


def living():
    return schedule.delivery_visits(POLICY, region="shenzhen", customer_id="u", delivered_at=T0, project="p",
                                    building="1", unit="101", product_type="bare")[0]


@pytest.mark.parametrize("given,reason", [
    (eligibility.Facts(known=True, consent=False), "no_consent"),
    (eligibility.Facts(), "no_consent"),
    (facts(major_complaint_at=T0 + timedelta(days=10)), "major_complaint"),
    (facts(occupancy="renovating"), "renovating"),
    (facts(occupancy="not_moved_in"), "not_moved_in"),
])
def test_the_3_month_visit_exclusions(given, reason):
    decision = eligibility.decide(living(), given, POLICY)
    assert (decision.outcome, decision.reason) == ("exclude", reason)


def test_an_occupied_home_without_complaints_is_visited():
    assert eligibility.decide(living(), facts(occupancy="occupied"), POLICY).outcome == "schedule"
    # An old major complaint (beyond the look-back) does not count.
    old = T0 - timedelta(days=400)
    assert eligibility.decide(living(), facts(major_complaint_at=old), POLICY).outcome == "schedule"


def test_nobody_nor_their_household_is_surveyed_twice_in_the_quiet_period():
    plan = schedule.sales_return_visit(POLICY, region="shenzhen", contract_id="k", customer_id="u", signed_at=T0,
                                       project="p", building="1", unit="101")
    near = eligibility.PastSurvey("sv-other", plan.due_at - timedelta(days=POLICY.quiet_days - 1))
    far = eligibility.PastSurvey("sv-old", plan.due_at - timedelta(days=POLICY.quiet_days + 1))
    assert eligibility.decide(plan, facts(recent=(near,)), POLICY).reason == "already_surveyed"
    assert eligibility.decide(plan, facts(household_recent=(near,)), POLICY).reason == "already_surveyed"
    assert eligibility.decide(plan, facts(recent=(far,)), POLICY).outcome == "schedule"
    # Its own earlier record (a redelivery) is not "another survey".
    itself = eligibility.PastSurvey(plan.survey_id, plan.due_at)
    assert eligibility.decide(plan, facts(recent=(itself,)), POLICY).outcome == "schedule"


def test_an_open_complaint_holds_a_satisfaction_survey_but_not_its_own_return_visit():
    sales = schedule.sales_return_visit(POLICY, region="shenzhen", contract_id="k", customer_id="u", signed_at=T0,
                                        project="p", building="1", unit="101")
    assert eligibility.decide(sales, facts(open_complaints=("c9",)), POLICY).outcome == "defer"
    visit = schedule.case_return_visit(POLICY, region="shenzhen", case_id="c9", customer_id="u", closed_at=T0,
                                       closure="1")
    recent = (eligibility.PastSurvey("sv-x", T0),)
    assert eligibility.decide(visit, facts(open_complaints=("c9",), recent=recent), POLICY).outcome == "schedule"
    moved = sales.moved(T0 + timedelta(days=20), POLICY)
    assert moved.due_at - moved.opens_at == sales.due_at - sales.opens_at and moved.survey_id == sales.survey_id


def test_signed_links_refuse_forgery_and_expiry():
    token = tokens.sign("secret", "sv-1", "n1", T0 + timedelta(days=1))
    assert tokens.verify("secret", token, T0).survey_id == "sv-1"
    for forged in (token[:-2] + "xx", tokens.sign("other", "sv-1", "n1", T0 + timedelta(days=1)),
                   token.replace(token.split(".")[0], tokens._b64(b"sv-2")), "garbage"):
        with pytest.raises(tokens.TokenRefused) as err:
            tokens.verify("secret", forged, T0)
        assert err.value.reason == "forged"
    with pytest.raises(tokens.TokenRefused) as err:
        tokens.verify("secret", token, T0 + timedelta(days=2))
    assert err.value.reason == "expired"


def test_coverage_needs_five_households_per_product_type():
    rows = [CoverageRow("p", "bare", 10, 6, 5), CoverageRow("p", "finished", 8, 4, 4)]
    assert [r.meets_target for r in rows] == [True, False]
    assert summary(rows)["covered_ratio"] == 0.5 and summary(rows)["due"] == 18


def test_product_type_is_the_building_form_and_the_fit_out():
    from surveys.domain.coverage import product_type

    forms = {"碧水湾": "high_rise", "碧水湾|9": "villa"}
    assert product_type(forms, "碧水湾", "3", "bare") == "high_rise/bare"
    assert product_type(forms, "碧水湾", "9", "finished") == "villa/finished"  # a building overrides its project
    assert product_type(forms, "云山", "1", "bare") == "bare"  # not in the mapping: the fit-out alone
    assert product_type(forms, "碧水湾", "3", None) == "high_rise"


def test_unknown_product_forms_are_refused_at_start_up():
    from pydantic import ValidationError
    from surveys.settings import SurveysSettings

    with pytest.raises(ValidationError, match="skyscraper"):
        SurveysSettings(CRM_SURVEYS_PRODUCT_FORMS='{"碧水湾": "skyscraper"}')


def test_two_surveys_less_than_the_quiet_period_apart_share_a_claim_document():
    from surveys.adapters.quiet import claim_ids

    def ids(due: datetime, homes=("p|1|101",)) -> set[str]:
        return set(claim_ids("c1", homes, "p|1|101", due, 30))

    year_end = datetime(2026, 12, 31, 20, tzinfo=UTC)
    assert ids(year_end) & ids(year_end + timedelta(days=29))  # across the new year
    assert ids(datetime(2026, 6, 1, tzinfo=UTC)) == {"h:p|1|101|2026"}  # one document mid-year
    assert claim_ids("c1", (), None, year_end, 30) == ["c:c1|2026", "c:c1|2027"]  # no home: the customer's


def test_a_campaign_survey_claims_the_year_of_its_due_date_only_and_still_meets_its_neighbours():
    from surveys.adapters.quiet import claim_ids

    year_end = datetime(2026, 12, 31, 20, tzinfo=UTC)  # 2027-01-01 in China
    annual = set(claim_ids("c1", ("p|1|101",), "p|1|101", year_end, 30, one_sided=True))
    assert annual == {"h:p|1|101|2027"}
    before = set(claim_ids("c1", ("p|1|101",), "p|1|101", year_end - timedelta(days=10), 30))
    assert annual & before  # a visit ten days before, in the old year, still meets it
