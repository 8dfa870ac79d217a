"""Queue buckets keep, per case, only the newest thing they heard: saves of one case may
reach the queue in any order and the staff queue still ends showing the latest state."""

from __future__ import annotations

import itertools

from cases.adapters.queue import placed, removed

CASE = "case-1"


def row(rev: int, status: str) -> dict:
    return {"case_id": CASE, "status": status, "rev": rev}


def apply(bucket: dict | None, change) -> dict | None:
    new = change(bucket)
    return bucket if new is None else new


def test_a_late_older_row_does_not_replace_a_newer_one() -> None:
    bucket = apply(None, lambda d: placed(d, CASE, row(2, "handling")))
    assert placed(bucket, CASE, row(1, "assessed")) is None
    assert bucket["rows"][CASE]["status"] == "handling"


def test_a_row_removed_by_a_newer_save_is_not_brought_back_by_an_older_one() -> None:
    bucket = apply(None, lambda d: placed(d, CASE, row(1, "validated")))
    bucket = apply(bucket, lambda d: removed(d, CASE, 3))  # moved to another hour at rev 3
    assert CASE not in bucket["rows"]
    assert placed(bucket, CASE, row(2, "classified")) is None  # the save of rev 2, arriving late
    assert removed(bucket, CASE, 2) is None
    # ... while a newer save may bring it back to this hour.
    assert placed(bucket, CASE, row(4, "handling"))["rows"][CASE]["status"] == "handling"


def test_any_order_of_two_moves_ends_with_the_case_listed_once_where_the_newest_put_it() -> None:
    # rev 1: hour A -> B ; rev 2: hour B -> C. Four bucket operations, any interleaving.
    ops = [("B", lambda d: placed(d, CASE, row(1, "validated"))), ("A", lambda d: removed(d, CASE, 1)),
           ("C", lambda d: placed(d, CASE, row(2, "classified"))), ("B", lambda d: removed(d, CASE, 2))]
    for order in itertools.permutations(ops):
        buckets: dict[str, dict | None] = {"A": {"rows": {CASE: row(0, "received")}, "gone": {}}, "B": None, "C": None}
        for name, change in order:
            buckets[name] = apply(buckets[name], change)
        listed = {name: b["rows"][CASE]["status"] for name, b in buckets.items() if b and CASE in b["rows"]}
        assert listed == {"C": "classified"}, order
