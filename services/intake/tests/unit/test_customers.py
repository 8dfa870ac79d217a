import pytest
from intake.domain.customers import (
    ContactIdentity,
    DirectoryEntry,
    MatchKind,
    lookup_keys,
    match_customer,
    normalise_email,
    normalise_name,
    provisional_customer_id,
)

ZHANG = DirectoryEntry.build(
    "C-1001",
    "shenzhen",
    names=["张伟"],
    phones=["+86 138-0001-8000", "(0755) 8888-6666"],
    emails=["Zhang.Wei@Example.COM"],
    units=[("滨海花园", "3栋", "1201")],
)
SMITH = DirectoryEntry.build(
    "C-2002",
    "shanghai",
    names=["John Smith"],
    phones=["13911112222"],
    emails=["john.smith@example.com"],
    units=[("Riverside One", "Building 5", "Unit 802")],
)
PROVISIONAL_ZHANG = DirectoryEntry.build(
    provisional_customer_id("shenzhen", "13800018000"),
    "shenzhen",
    phones=["13800018000"],
    provisional=True,
)
DIRECTORY = [ZHANG, SMITH]


def test_build_normalises_phones_and_emails() -> None:
    assert ZHANG.phones == {"13800018000", "0755-88886666"}
    assert ZHANG.emails == {"zhang.wei@example.com"}
    assert DirectoryEntry.build("x", "r", phones=["not a number", ""]).phones == frozenset()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Zhang.Wei@Example.COM", "zhang.wei@example.com"),
        (" <a@b.cn> ", "a@b.cn"),
        ("mailto:Li@Mail.Example.cn", "li@mail.example.cn"),
        ("ｌｉ＠ｅｘａｍｐｌｅ．ｃｏｍ", "li@example.com"),
        ("not-an-email", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    assert normalise_email(raw) == expected


def test_normalise_name() -> None:
    assert normalise_name(" 张 伟 ") == "张伟"
    assert normalise_name("张伟先生") == "张伟"
    assert normalise_name("王女士") == "王"
    assert normalise_name("Mr. Wei ZHANG") == normalise_name("zhang wei")
    assert normalise_name("") is None


@pytest.mark.parametrize(
    "phone",
    [
        "13800018000",
        "+86 138 0001 8000",
        "0086-13800018000",
        "＋８６ １３８-０００１-８０００",
        "0755-88886666",
        "+86 755 8888 6666",
        "(0755)88886666转12",
    ],
)
def test_exact_match_by_any_phone_format(phone: str) -> None:
    match = match_customer(ContactIdentity(phone=phone), DIRECTORY)
    assert match.kind is MatchKind.EXACT
    assert match.customer_id == "C-1001"
    assert match.matched_on == "phone"
    assert match.entry is ZHANG


def test_exact_match_by_email_ignores_case() -> None:
    match = match_customer(ContactIdentity(email="JOHN.SMITH@example.com"), DIRECTORY)
    assert (match.kind, match.customer_id, match.matched_on) == (
        MatchKind.EXACT,
        "C-2002",
        "email",
    )


def test_exact_beats_probable_and_prefers_non_provisional() -> None:
    contact = ContactIdentity(phone="13800018000", region="shenzhen")
    assert match_customer(contact, [PROVISIONAL_ZHANG, ZHANG]).customer_id == "C-1001"
    assert match_customer(contact, [ZHANG, PROVISIONAL_ZHANG]).customer_id == "C-1001"
    only_provisional = match_customer(contact, [PROVISIONAL_ZHANG])
    assert only_provisional.kind is MatchKind.EXACT
    assert only_provisional.customer_id.startswith("prov-")


@pytest.mark.parametrize(
    "contact",
    [
        ContactIdentity(name="张伟", project="滨海花园", unit="1201"),
        ContactIdentity(name=" 张 伟 先生", project="滨海花园 ", building="3号楼", unit="1201室"),
        ContactIdentity(name="张先生", project="滨海花园", building="3栋", unit="1201"),
    ],
)
def test_probable_match_on_name_and_unit(contact: ContactIdentity) -> None:
    match = match_customer(contact, DIRECTORY)
    assert match.kind is MatchKind.PROBABLE
    assert match.customer_id == "C-1001"
    assert match.unit == ("滨海花园", "3栋", "1201")


def test_probable_match_latin_name_any_order_and_case() -> None:
    contact = ContactIdentity(name="smith JOHN", project="riverside one", building="5", unit="802")
    assert match_customer(contact, DIRECTORY).customer_id == "C-2002"
    mr = ContactIdentity(name="Mr. Smith", project="Riverside One", unit="Unit 802")
    assert match_customer(mr, DIRECTORY).kind is MatchKind.PROBABLE


@pytest.mark.parametrize(
    "contact",
    [
        ContactIdentity(),
        ContactIdentity(phone="13999999999"),
        ContactIdentity(email="someone@else.cn"),
        ContactIdentity(name="张伟"),  # a name alone is not enough
        ContactIdentity(name="张伟", project="滨海花园", unit="1202"),  # wrong unit
        ContactIdentity(name="张伟", project="滨海花园", building="4栋", unit="1201"),
        ContactIdentity(name="李伟", project="滨海花园", unit="1201"),  # wrong name
        ContactIdentity(name="李先生", project="滨海花园", unit="1201"),  # wrong surname
        ContactIdentity(name="张伟", project="翠湖", unit="1201"),  # wrong project
    ],
)
def test_unknown(contact: ContactIdentity) -> None:
    match = match_customer(contact, DIRECTORY)
    assert match.kind is MatchKind.UNKNOWN
    assert match.customer_id is None
    assert match.entry is None


def test_provisional_id_is_stable_across_formats_and_channels() -> None:
    a = provisional_customer_id("shenzhen", "13800018000")
    assert a == provisional_customer_id("shenzhen", "+86 138-0001-8000")
    assert a == provisional_customer_id("Shenzhen ", "＋８６ １３８-０００１-８０００")
    assert a.startswith("prov-") and len(a) == len("prov-") + 16
    assert a != provisional_customer_id("beijing", "13800018000")
    assert a != provisional_customer_id("shenzhen", "13900018000")
    e = provisional_customer_id("shanghai", "Li.Na@Example.com")
    assert e == provisional_customer_id("shanghai", "li.na@example.com")
    with pytest.raises(ValueError):
        provisional_customer_id("shenzhen", "  ")


def test_lookup_keys_meet_entry_keys() -> None:
    entry_keys = set(ZHANG.lookup_keys())
    assert "phone:13800018000" in entry_keys
    assert "email:zhang.wei@example.com" in entry_keys
    assert "name-unit:滨海花园|1201|张伟" in entry_keys

    keys = lookup_keys(
        ContactIdentity(
            name="张伟先生",
            phone="+86 138 0001 8000",
            email="Zhang.Wei@example.com",
            project="滨海花园",
            unit="1201室",
        )
    )
    assert keys == [
        "phone:13800018000",
        "email:zhang.wei@example.com",
        "name-unit:滨海花园|1201|张伟",
    ]
    assert set(keys) <= entry_keys
    surname = lookup_keys(ContactIdentity(name="张先生", project="滨海花园", unit="1201"))
    assert surname == ["surname-unit:滨海花园|1201|张"]
    assert set(surname) <= entry_keys
    assert lookup_keys(ContactIdentity(name="张伟")) == []
    assert lookup_keys(ContactIdentity(phone="not a phone")) == []


def test_only_the_surname_and_unit_key_is_expected_to_gather_neighbours() -> None:
    from intake.domain.customers import key_often_shared

    neighbour = DirectoryEntry.build("C-1002", "shenzhen", names=["张敏"], phones=["13900001111"],
                                     units=[("滨海花园", "7栋", "1201")])
    common = set(ZHANG.lookup_keys()) & set(neighbour.lookup_keys())
    assert common == {"surname-unit:滨海花园|1201|张"}
    assert [k for k in ZHANG.lookup_keys() if key_often_shared(k)] == ["surname-unit:滨海花园|1201|张"]


def test_an_older_record_of_a_customer_never_replaces_a_newer_one() -> None:
    from datetime import UTC, datetime

    from intake.domain.customers import newest_per_customer, supersedes

    monday = DirectoryEntry.build("C-1001", "shenzhen", phones=["13800018000"],
                                  as_of=datetime(2026, 3, 2, 9, tzinfo=UTC))
    tuesday = DirectoryEntry.build("C-1001", "shenzhen", phones=["13900019000"],
                                   as_of=datetime(2026, 3, 3, 9, tzinfo=UTC))
    undated = DirectoryEntry.build("C-1001", "shenzhen", phones=["13700017000"])
    assert supersedes(tuesday, monday) and not supersedes(monday, tuesday)
    assert supersedes(undated, tuesday) and supersedes(monday, undated)  # unknown age: taken as current
    # In one batch too, whatever the order they arrived in.
    assert newest_per_customer([tuesday, monday])["C-1001"].phones == {"13900019000"}
    assert newest_per_customer([monday, tuesday])["C-1001"].phones == {"13900019000"}
