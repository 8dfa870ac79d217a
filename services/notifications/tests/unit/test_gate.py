from datetime import date, datetime
from zoneinfo import ZoneInfo

from notifications.domain.gate import GatePolicy, MessageClass, SendWindow, decide, is_public_holiday

TZ = ZoneInfo("Asia/Shanghai")
POLICY = GatePolicy(SendWindow.parse("08:00-21:00"), TZ, daily_cap=2)


def at(y, m, d, hh, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=TZ)


def gate(now, cls=MessageClass.SERVICE, channel="sms", consented=True, opted_out=(), sent=0, **kw):
    return decide(channel=channel, message_class=cls, now=now, policy=POLICY, consented=consented,
                  opted_out_channels=opted_out,
                  household_sent_on=lambda day: sent if day == now.astimezone(TZ).date() else 0, **kw)


def test_inside_the_window_a_message_goes_now():
    assert gate(at(2026, 12, 1, 10)).action == "send"


def test_a_message_due_at_23_local_waits_until_8_the_next_morning():
    d = gate(at(2026, 12, 1, 23))
    assert (d.action, d.until) == ("defer", at(2026, 12, 2, 8))
    assert "window" in d.reason


def test_early_morning_waits_until_8_the_same_day():
    assert gate(at(2026, 12, 1, 6, 30)).until == at(2026, 12, 1, 8)


def test_a_utc_clock_is_judged_in_local_time():
    # 14:00 UTC is 22:00 in Shenzhen.
    from datetime import UTC
    d = gate(datetime(2026, 12, 1, 14, 0, tzinfo=UTC))
    assert d.until == at(2026, 12, 2, 8)


def test_marketing_on_national_day_waits_for_the_next_working_day():
    # 2025-10-01..08 is the National Day holiday; Saturday 2025-10-11 is a make-up working day,
    # but the next working day after the holiday is Thursday 2025-10-09.
    assert is_public_holiday(date(2025, 10, 3))
    d = gate(at(2025, 10, 3, 10), cls=MessageClass.MARKETING)
    assert (d.action, d.until) == ("defer", at(2025, 10, 9, 8))
    assert "holiday" in d.reason


def test_a_service_message_on_a_public_holiday_is_not_held_back():
    assert gate(at(2025, 10, 3, 10), cls=MessageClass.SERVICE).action == "send"


def test_a_plain_weekend_is_not_a_public_holiday():
    assert gate(at(2026, 12, 5, 10), cls=MessageClass.MARKETING).action == "send"  # a Saturday


def test_without_consent_for_the_channel_nothing_is_sent():
    d = gate(at(2026, 12, 1, 10), consented=False)
    assert (d.action, d.reason) == ("suppress", "no consent for sms")


def test_an_opt_out_stops_marketing_but_not_the_customers_own_case():
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.MARKETING, opted_out=("sms",)).action == "suppress"
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.MARKETING, opted_out=("*",)).action == "suppress"
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.MARKETING, opted_out=("email",)).action == "send"
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.SERVICE, opted_out=("*",)).action == "send"


def test_the_household_cap_defers_broadcasts_to_the_next_day_but_not_service_messages():
    d = gate(at(2026, 12, 1, 10), cls=MessageClass.NOTICE, sent=2)
    assert (d.action, d.until) == ("defer", at(2026, 12, 2, 8))
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.SERVICE, sent=2).action == "send"
    assert gate(at(2026, 12, 1, 10), cls=MessageClass.NOTICE, sent=1).action == "send"


def test_a_message_that_could_only_leave_after_it_expires_is_suppressed():
    d = gate(at(2026, 12, 1, 23), expires_at=at(2026, 12, 2, 0))
    assert d.action == "suppress" and d.reason.startswith("expired")


def test_letters_and_staff_ignore_the_window():
    assert gate(at(2026, 12, 1, 23), channel="letter").action == "send"
    assert gate(at(2026, 12, 1, 23), channel="staff", cls=MessageClass.STAFF, consented=False).action == "send"


def test_send_window_parsing_refuses_nonsense():
    import pytest
    with pytest.raises(ValueError):
        SendWindow.parse("21:00-08:00")
    with pytest.raises(ValueError):
        SendWindow.parse("eight to nine")
