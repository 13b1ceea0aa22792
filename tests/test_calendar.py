"""Calendar arithmetic of the time rules: months in the province's time zone, at the boundaries."""

import datetime as dt

import pytest

from reconciler.attributes import parse_time
from reconciler.rules.lifecycle import add_months, elapsed, months_between

UTC = dt.UTC


def at(y: int, m: int, d: int, h: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=UTC)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (dt.date(2026, 1, 31), 1, dt.date(2026, 2, 28)),
        (dt.date(2028, 1, 31), 1, dt.date(2028, 2, 29)),
        (dt.date(2028, 2, 29), 12, dt.date(2029, 2, 28)),
        (dt.date(2028, 2, 29), 36, dt.date(2031, 2, 28)),
        (dt.date(2026, 3, 31), 3, dt.date(2026, 6, 30)),
        (dt.date(2026, 11, 15), 3, dt.date(2027, 2, 15)),
        (dt.date(2026, 8, 31), 6, dt.date(2027, 2, 28)),
    ],
)
def test_add_months_clamps_to_the_last_day(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


def test_three_months_boundary_day_before_on_day_after() -> None:
    last = at(2026, 3, 2, 3)  # 10:00 in Hà Nội
    assert not elapsed(last, at(2026, 6, 1, 3), 3)
    assert elapsed(last, at(2026, 6, 2, 3), 3)
    assert elapsed(last, at(2026, 6, 3, 3), 3)


def test_days_are_counted_in_the_province_time_zone() -> None:
    # 2026-03-01 20:00 UTC is already 2 March in Asia/Ho_Chi_Minh (UTC+7)
    last = at(2026, 3, 1, 20)
    assert not elapsed(last, at(2026, 6, 1, 16), 3)  # 1 June 23:00 local
    assert elapsed(last, at(2026, 6, 1, 17), 3)  # 2 June 00:00 local


def test_leap_day_plus_three_years() -> None:
    since = at(2028, 2, 29, 5)
    assert not elapsed(since, at(2031, 2, 27, 5), 36)
    assert elapsed(since, at(2031, 2, 28, 5), 36)


def test_months_between_counts_whole_months() -> None:
    assert months_between(at(2026, 3, 2), at(2026, 11, 1)) == 7
    assert months_between(at(2026, 3, 2), at(2026, 11, 2)) == 8


def test_parse_generalized_time() -> None:
    assert parse_time("20261123090000Z") == at(2026, 11, 23, 9)
    assert parse_time("20261123090000.123456Z") == at(2026, 11, 23, 9)
    assert parse_time("000001010000Z") is None
    assert parse_time("garbage") is None
    assert parse_time(None) is None


def test_elapsed_is_the_calendar_rule_at_every_hour_around_month_ends() -> None:
    """`elapsed` compares with a deadline found once; it says what the calendar rule says,
    local_day(now) >= add_months(local_day(since), months), for moments on both sides of month
    ends, leap days and the province's midnight."""
    from reconciler.rules.lifecycle import local_day

    days = [(y, m, d) for y in (2027, 2028) for m in (2, 3) for d in (1, 28)]
    nows = [at(*day, h) for day in [*days, (2028, 2, 29), (2028, 12, 31)] for h in (16, 17)]
    nows += [at(2029, 1, 1, 17), at(2026, 6, 30, 23)]
    for now in nows:
        for months in (1, 3, 6, 12, 36):
            start = now - dt.timedelta(days=31 * months + 40)
            for hours in range(0, (80 + 31 * months) * 24, 7):
                since = start + dt.timedelta(hours=hours)
                rule = local_day(now) >= add_months(local_day(since), months)
                assert elapsed(since, now, months) == rule, (since, now, months)


@pytest.mark.parametrize(
    "value",
    [
        "20261123090000Z", "20280229235959Z", "20270229000000Z", "20261399000000Z",
        "00000101000000Z", "99991231235959Z", "20261123090000.5Z", " 20261123090000Z",
        "20261123090000+0700", "2026112309000Z", "٢٠٢٦1123090000Z", "000001010000Z", "",
            "19691231235959Z", "19700101000000Z", "21991231235959Z", "22000101000000Z",
    ],
)  # fmt: skip
def test_parse_time_reads_slapd_form_as_it_always_did(value: str) -> None:
    """The fast path for slapd's own form gives what parse_time gave before it."""
    assert parse_time(value) == _parse_time_sliced(value)
    if parse_time(value) is not None:
        assert parse_time(value).tzinfo is UTC  # type: ignore[union-attr]


def _parse_time_sliced(value: str) -> dt.datetime | None:
    """parse_time as it was before its fast path."""
    text = value.strip()
    if not text or text == "000001010000Z":
        return None
    main = text.removesuffix("Z").partition(".")[0]
    digits = main[:14]
    if not (digits[:4].isascii() and digits[:4].isdigit() and 1970 <= int(digits[:4]) < 2200):
        return None
    if len(digits) == 14 and digits.isascii() and digits.isdigit():
        try:
            nums = (digits[:4], digits[4:6], digits[6:8], digits[8:10], digits[10:12], digits[12:])
            return dt.datetime(*map(int, nums), tzinfo=UTC)
        except ValueError:
            pass
    try:
        return dt.datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
