import time

import pytest
from crm_runtime.pii import mask_email, mask_id_number, mask_phone, mask_text, normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # mobile numbers
        ("13800018000", "13800018000"),
        ("138 0001 8000", "13800018000"),
        ("138-0001-8000", "13800018000"),
        ("138.0001.8000", "13800018000"),
        ("(138)00018000", "13800018000"),
        ("+86 138 0001 8000", "13800018000"),
        ("+8613800018000", "13800018000"),
        ("0086-13800018000", "13800018000"),
        ("0086 138 0001 8000", "13800018000"),
        ("8613800018000", "13800018000"),
        ("86-138-0001-8000", "13800018000"),
        ("＋８６ １３８-０００１-８０００", "13800018000"),
        ("１３８０００１８０００", "13800018000"),
        ("（+86）13800018000", "13800018000"),
        ("tel: 13800018000", "13800018000"),
        ("手机：138-0001-8000", "13800018000"),
        ("19912345678", "19912345678"),
        ("+86 13800018000 #12", "13800018000"),
        # landlines
        ("0755-88886666", "0755-88886666"),
        ("(0755) 8888-6666", "0755-88886666"),
        ("（０７５５）８８８８－６６６６", "0755-88886666"),
        ("075588886666", "0755-88886666"),
        ("+86 755 88886666", "0755-88886666"),
        ("+86-755-8888-6666", "0755-88886666"),
        ("+86 (0)755 8888 6666", "0755-88886666"),
        ("+86 0755 88886666", "0755-88886666"),
        ("0086 755 88886666", "0755-88886666"),
        ("86 755 8888 6666", "0755-88886666"),
        ("010-62345678", "010-62345678"),
        ("(010)6234 5678", "010-62345678"),
        ("+86 10 6234 5678", "010-62345678"),
        ("021 5555 6666", "021-55556666"),
        ("028.8555.6666", "028-85556666"),
        ("0311-8765432", "0311-8765432"),
        ("0755—88886666", "0755-88886666"),
        # extensions are dropped
        ("0755-88886666转123", "0755-88886666"),
        ("0755-88886666 转 8012", "0755-88886666"),
        ("010 6234 5678 分机 12", "010-62345678"),
        ("0755-88886666 ext. 12", "0755-88886666"),
        ("0755-88886666 ext12", "0755-88886666"),
        ("0755 8888 6666 x205", "0755-88886666"),
    ],
)
def test_phone_formats_normalise(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        None,
        "abc",
        "12345678901",  # 12x is not a mobile range
        "1380001800",  # ten digits
        "138000180001",  # twelve digits
        "88886666",  # local number without an area code
        "020-12345678",  # a local number does not start with 1
        "0755-8888",  # too short
        "400-888-8888",  # service number
        "95555",
        "+1 415 555 1234",  # another country
        "+44 20 7946 0000",
        "2026-03-01",
        "5000元",
        "3栋2单元1201",
        "138-0001-800a",
        "13800018000, 13900001111",  # two numbers are not one
    ],
)
def test_non_numbers_do_not_normalise(raw: str | None) -> None:
    assert normalise_phone(raw) is None


def test_mask_phone() -> None:
    assert mask_phone("13800018000") == "138****8000"
    assert mask_phone("+86 138-0001-8000") == "138****8000"
    assert mask_phone("0755-88886666") == "0755-****6666"
    assert mask_phone("88886666") == "****6666"


def test_mask_email_and_id() -> None:
    assert mask_email("zhang.wei@example.com") == "z***@example.com"
    assert mask_id_number("440301199001011234") == "440301********1234"


def test_mask_text_masks_personal_data() -> None:
    text = (
        "业主张先生，电话13800018000，邮箱 zhang.wei@example.com，"
        "身份证440301199001011234，座机（0755）8888-6666转123"
    )
    masked = mask_text(text)
    assert "13800018000" not in masked
    assert "138****8000" in masked
    assert "z***@example.com" in masked
    assert "440301********1234" in masked
    assert "0755-****6666" in masked
    assert masked.startswith("业主张先生，电话")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请回电 ＋８６ １３８-０００１-８０００", "请回电 138****8000"),
        ("call me on +86 755 88886666 please", "call me on 0755-****6666 please"),
        ("Tel:0086-13800018000.", "Tel:138****8000."),
        ("手机号138 0001 8000，谢谢", "手机号138****8000，谢谢"),
        ("13800018000@qq.com", "1***@qq.com"),
        ("mail Li.Na+crm@mail.example.cn!", "mail L***@mail.example.cn!"),
        ("ID 44030119900101123X", "ID 440301********123X"),
        ("座机 88886666", "座机 ****6666"),
        ("电话是：8888666", "电话是：***8666"),
    ],
)
def test_mask_text_formats(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01 交房",
        "2026年3月1日 10:30 到 13:00",
        "首付5000元，月供13800元",
        "总价 1380 万，面积 138.5 平方米",
        "3栋2单元1201室漏水",
        "房号 1501 1502 1503",
        "订单号 202603011380001800012",
        "work order WO-2026-000123, case SZ-2026-000123",
        "合同编号 02812345678",
        "order 88886666 shipped",
        "version 1.2.3, 100% done",
        "",
    ],
)
def test_mask_text_leaves_ordinary_numbers(text: str) -> None:
    assert mask_text(text) == text


def test_mask_text_does_not_backtrack_catastrophically() -> None:
    # Not a speed test (benchmarks are for that): a pattern that backtracks on a long line
    # would take minutes here, where a linear one takes a second even on a loaded machine.
    line = (
        "2026-03-01 业主来电 3栋2单元1201 报修漏水，联系 13800018000 / a.b@example.com，费用5000元"
    )
    start = time.perf_counter()
    for _ in range(10_000):
        mask_text(line)
    elapsed = time.perf_counter() - start
    assert elapsed < 30.0, f"10k log lines took {elapsed:.2f}s"


def test_identifiers_that_contain_phone_shaped_digits_are_left_alone():
    for text in ("trace cf9446e9cce7b19c09677296385f3356", "case cf9446e9-cce7-b19c-0967-7296385f3356",
                 "order AB13800018000X"):
        assert mask_text(text) == text
