"""When a push becomes due (targeting/timing.py): `send_at`, `local_time` and quiet hours.

contract.md: `send_at` is RFC 3339 with an offset or Unix seconds, sent now when past and
refused (400 invalid_send_at) beyond 30 days; `local_time` "HH:MM" is the next time the
user's own clock shows it, in the device's zone, else the profile's, else the partner's, else
UTC, a bad name being skipped; quiet hours wait for their end on the user's clock. A wall time
skipped by daylight saving goes at the first valid minute after it, a repeated one at its
first occurrence.

Expected instants are written in UTC by hand (with the zone's offset in a comment), not
computed by the module under test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pushgate.targeting.errors import ApiError, invalid_send_at
from pushgate.targeting.timing import (
    MAX_AHEAD_SECONDS,
    MINUTES_PER_DAY,
    after_quiet_hours,
    due_time,
    format_quiet_hours,
    in_quiet_hours,
    next_local_time,
    parse_local_time,
    parse_quiet_hours,
    parse_send_at,
    user_zone,
    zone_named,
)

DAY = 86_400
HOUR = 3_600
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
KATHMANDU = ZoneInfo("Asia/Kathmandu")
ZULU = ZoneInfo("UTC")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def hm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


NOW = utc(2026, 12, 1, 12, 0)


def refused(call: Callable[[], object], field: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        call()
    error = info.value
    assert (error.status, error.code) == (400, "invalid_send_at")
    assert f"'{field}'" in error.message
    assert "\n" not in error.message
    return error


# --- errors.invalid_send_at -------------------------------------------------------------


def test_invalid_send_at_is_a_400_with_its_code_and_the_message() -> None:
    error = invalid_send_at("'send_at' is wrong")
    assert (error.status, error.code) == (400, "invalid_send_at")
    assert error.body() == {"error": "invalid_send_at", "message": "'send_at' is wrong"}


# --- send_at -----------------------------------------------------------------------------


def test_send_at_left_out_is_none() -> None:
    assert parse_send_at(None, NOW) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-08T09:00:00+02:00", utc(2026, 12, 8, 7, 0)),
        ("2026-12-08T09:00:00Z", utc(2026, 12, 8, 9, 0)),
        ("2026-12-08t09:00:00z", utc(2026, 12, 8, 9, 0)),
        ("2026-12-08 09:00:00Z", utc(2026, 12, 8, 9, 0)),
        ("2026-12-08T09:00:00.25Z", utc(2026, 12, 8, 9, 0) + 0.25),
        ("2026-12-08T09:00:00.123456789+00:00", utc(2026, 12, 8, 9, 0) + 0.123456789),
        ("2026-12-08T09:00:00-05:30", utc(2026, 12, 8, 14, 30)),
        ("2026-12-08T09:00:00+05:45", utc(2026, 12, 8, 3, 15)),
        # RFC 3339's "offset unknown" is still UTC.
        ("2026-12-08T09:00:00-00:00", utc(2026, 12, 8, 9, 0)),
        # A leap second is the following second in Unix time.
        ("2016-12-31T23:59:60Z", utc(2017, 1, 1, 0, 0)),
        ("2024-02-29T00:00:00Z", utc(2024, 2, 29)),
    ],
)
def test_send_at_rfc3339_with_an_offset_is_that_instant(text: str, expected: float) -> None:
    assert parse_send_at(text, NOW) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_796_720_400, 1_796_720_400.0),
        (1_796_720_400.5, 1_796_720_400.5),
        ("1796720400", 1_796_720_400.0),
        ("1796720400.5", 1_796_720_400.5),
    ],
)
def test_send_at_unix_seconds_as_number_or_text(value: object, expected: float) -> None:
    result = parse_send_at(value, NOW)
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0.0),
        ("0", 0.0),
        (-5, -5.0),
        ("-5.5", -5.5),
        (NOW - 1, NOW - 1),
        ("2020-01-01T00:00:00Z", utc(2020, 1, 1)),
    ],
)
def test_send_at_in_the_past_is_returned_as_is(value: object, expected: float) -> None:
    assert parse_send_at(value, NOW) == expected


def test_send_at_exactly_thirty_days_ahead_is_accepted() -> None:
    limit = NOW + 30 * DAY
    assert MAX_AHEAD_SECONDS == 30 * DAY
    assert parse_send_at(limit, NOW) == limit
    assert parse_send_at(int(limit), NOW) == limit
    assert parse_send_at("2026-12-31T12:00:00Z", NOW) == limit
    assert parse_send_at("2026-12-31T14:00:00+02:00", NOW) == limit


@pytest.mark.parametrize(
    "value",
    [
        NOW + 30 * DAY + 1,
        int(NOW) + 30 * DAY + 1,
        str(int(NOW) + 30 * DAY + 1),
        "2026-12-31T12:00:01Z",
        "2026-12-31T12:00:00.5Z",
        "9999-12-31T23:59:59Z",
        10**30,
    ],
)
def test_send_at_more_than_thirty_days_ahead_is_refused(value: object) -> None:
    error = refused(lambda: parse_send_at(value, NOW), "send_at")
    assert "30 days" in error.message


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        [],
        {},
        ["2026-12-08T09:00:00Z"],
        b"1796720400",
    ],
)
def test_send_at_of_another_type_is_refused(value: object) -> None:
    refused(lambda: parse_send_at(value, NOW), "send_at")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400, "9" * 400])
def test_send_at_that_is_no_finite_number_is_refused(value: object) -> None:
    refused(lambda: parse_send_at(value, NOW), "send_at")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "tomorrow 9am",
        "1e9",
        "inf",
        "nan",
        "0x10",
        "1_796_720_400",
        " 1796720400",
        "1796720400 ",
        "+1796720400",
        "1796720400.",
        ".5",
        "１７９６７２０４００",  # full-width digits, which float() takes
        "2026-12-08",
        "2026-12-08T09:00Z",
        "2026-12-08T9:00:00Z",
        "2026-12-08T09:00:00+0200",
        "2026-12-08T09:00:00+02",
        "2026-12-08T09:00:00+02:60",
        "2026-12-08T09:00:00+24:00",
        "2026-12-08T09:00:00.Z",
        "2026-12-08T09:00:00Z ",
        "2026-12-08T09:00:00ZZ",
        "2026-12-08_09:00:00Z",
        "20261208T090000Z",
        "2026-W49-2T09:00:00Z",
        "2026-02-30T09:00:00Z",
        "2026-13-01T09:00:00Z",
        "2026-12-08T24:00:00Z",
        "2026-12-08T09:60:00Z",
        "2026-12-08T09:00:61Z",
        "0000-01-01T00:00:00Z",
        "2026-12-08T09:00:00+02:00\n",
    ],
)
def test_send_at_text_that_is_neither_form_is_refused(text: str) -> None:
    refused(lambda: parse_send_at(text, NOW), "send_at")


@pytest.mark.parametrize("text", ["2026-12-08T09:00:00", "2026-12-08 09:00:00.5"])
def test_send_at_without_an_offset_is_refused_saying_so(text: str) -> None:
    assert "offset" in refused(lambda: parse_send_at(text, NOW), "send_at").message


def test_send_at_refusal_quotes_long_text_cut_short() -> None:
    error = refused(lambda: parse_send_at("x" * 10_000, NOW), "send_at")
    assert len(error.message) < 200


# --- local_time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minute"), [("00:00", 0), ("09:30", 570), ("12:00", 720), ("23:59", 1439)]
)
def test_local_time_is_the_minute_of_the_day(text: str, minute: int) -> None:
    assert parse_local_time(text) == minute


def test_local_time_left_out_is_none() -> None:
    assert parse_local_time(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "24:00",
        "23:60",
        "9:30",
        "09:3",
        "0930",
        "09:30:00",
        " 09:30",
        "09:30 ",
        "09:30\n",
        "09.30",
        "",
        "１２:００",
        930,
        9.5,
        True,
        [],
        {"hour": 9},
    ],
)
def test_local_time_other_than_hh_mm_is_refused(value: object) -> None:
    refused(lambda: parse_local_time(value), "local_time")


# --- quiet hours: the setting ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("22:00-08:00", (1320, 480)),
        ("09:00-17:30", (540, 1050)),
        ("00:00-23:59", (0, 1439)),
        ("23:59-00:00", (1439, 0)),
    ],
)
def test_quiet_hours_setting_reads_as_start_and_end_minutes(
    text: str, window: tuple[int, int]
) -> None:
    assert parse_quiet_hours(text) == window
    assert format_quiet_hours(window) == text


@pytest.mark.parametrize("text", ["off", "OFF", "Off", "  off  ", "\toff\n"])
def test_quiet_hours_off_in_any_case_is_none(text: str) -> None:
    assert parse_quiet_hours(text) is None
    assert format_quiet_hours(None) == "off"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "none",
        "of",
        "22:00",
        "22:00-",
        "22-08",
        "22:00 - 08:00",
        "22:00-08:00-09:00",
        "24:00-08:00",
        "22:00-8:00",
        "22:00–08:00",  # an en dash
        "22:00-22:00",
        "00:00-00:00",
    ],
)
def test_quiet_hours_setting_otherwise_is_a_one_line_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_quiet_hours(text)
    assert str(info.value) and "\n" not in str(info.value)


@given(
    st.integers(0, MINUTES_PER_DAY - 1),
    st.integers(0, MINUTES_PER_DAY - 1),
)
def test_quiet_hours_formatted_read_back_the_same(start: int, end: int) -> None:
    if start != end:
        assert parse_quiet_hours(format_quiet_hours((start, end))) == (start, end)


# --- zones -------------------------------------------------------------------------------


def test_zone_named_finds_an_iana_zone_and_keeps_it() -> None:
    zone = zone_named("Europe/Berlin")
    assert zone is not None and zone.key == "Europe/Berlin"
    assert zone_named("Europe/Berlin") is zone


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../../etc/passwd",
        "/etc/localtime",
        "/usr/share/zoneinfo/Europe/Berlin",
        ".",
        "Europe/Berlin/",
        "Europe//Berlin",
        "Mars/Olympus_Mons",
        "europe berlin",
        "America",  # a directory
        "zone.tab",  # a file of the zone data that is not a zone
        "a\x00b",
        "\udc80",
        "Europe/" + "x" * 5_000,
        5,
        5.0,
        None,
        True,
        b"Europe/Berlin",
        ["Europe/Berlin"],
        {"name": "Europe/Berlin"},
    ],
)
def test_zone_named_is_none_for_a_bad_name(name: object) -> None:
    assert zone_named(name) is None


@given(st.one_of(st.text(), st.binary(), st.integers(), st.none()))
def test_zone_named_never_raises(name: object) -> None:
    zone = zone_named(name)
    assert zone is None or isinstance(zone, ZoneInfo)


def test_user_zone_prefers_the_device_zone() -> None:
    zone = user_zone(
        {"INSIDER.timezone": "Asia/Tokyo"},
        {"timezone": "Europe/Berlin", "INSIDER.timezone": "Europe/Paris"},
        "America/New_York",
    )
    assert zone.key == "Asia/Tokyo"


@pytest.mark.parametrize("device", [{}, {"INSIDER.timezone": "Nowhere/Special"}])
def test_user_zone_without_a_usable_device_zone_takes_the_profile_timezone(
    device: dict[str, object],
) -> None:
    zone = user_zone(device, {"timezone": "Europe/Berlin"}, "America/New_York")
    assert zone.key == "Europe/Berlin"


def test_user_zone_then_takes_the_profile_insider_timezone() -> None:
    profile = {"timezone": "../../etc/passwd", "INSIDER.timezone": "Europe/Paris"}
    zone = user_zone({"INSIDER.timezone": ""}, profile, "America/New_York")
    assert zone.key == "Europe/Paris"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", 5, None, "Not/AZone", [], {}])
def test_user_zone_unknown_everywhere_falls_back_to_the_partner_zone(bad: object) -> None:
    zone = user_zone(
        {"INSIDER.timezone": bad}, {"timezone": bad, "INSIDER.timezone": bad}, "Asia/Kolkata"
    )
    assert zone.key == "Asia/Kolkata"


@pytest.mark.parametrize("partner", [None, "", "Not/AZone"])
def test_user_zone_without_any_usable_zone_is_utc(partner: str | None) -> None:
    zone = user_zone({"INSIDER.timezone": "/etc/localtime"}, {"timezone": 5}, partner)
    assert zone.key == "UTC"
    assert user_zone({}, {}, partner).key == "UTC"


# --- next_local_time ---------------------------------------------------------------------

# 2026-06-10, Europe/Berlin on CEST (UTC+2).
JUNE_0800_BERLIN = utc(2026, 6, 10, 6, 0)


def test_local_time_later_today_is_today() -> None:
    assert next_local_time(JUNE_0800_BERLIN, hm("09:30"), BERLIN) == utc(2026, 6, 10, 7, 30)


def test_local_time_earlier_today_is_tomorrow() -> None:
    assert next_local_time(JUNE_0800_BERLIN, hm("07:59"), BERLIN) == utc(2026, 6, 11, 5, 59)


@pytest.mark.parametrize("into_the_minute", [0.0, 0.5, 45.0, 59.999])
def test_local_time_the_clock_shows_now_is_now(into_the_minute: float) -> None:
    after = JUNE_0800_BERLIN + into_the_minute
    assert next_local_time(after, hm("08:00"), BERLIN) == after


def test_local_time_a_moment_before_the_minute_is_the_minute() -> None:
    assert next_local_time(JUNE_0800_BERLIN - 0.5, hm("08:00"), BERLIN) == JUNE_0800_BERLIN


def test_local_time_midnight_is_the_next_midnight() -> None:
    assert next_local_time(JUNE_0800_BERLIN, 0, BERLIN) == utc(2026, 6, 10, 22, 0)
    assert next_local_time(utc(2026, 6, 10, 22, 0, 1), 0, BERLIN) == utc(2026, 6, 10, 22, 0, 1)
    assert next_local_time(utc(2026, 6, 10, 22, 1), 0, BERLIN) == utc(2026, 6, 11, 22, 0)


def test_local_time_in_utc_is_the_plain_clock() -> None:
    assert next_local_time(utc(2026, 12, 31, 23, 0), hm("00:30"), ZULU) == utc(2027, 1, 1, 0, 30)


@pytest.mark.parametrize(
    ("zone", "after", "local", "expected"),
    [
        # Asia/Kolkata is UTC+05:30: 09:00 IST = 03:30 UTC.
        (KOLKATA, utc(2026, 6, 10, 0, 0), "09:00", utc(2026, 6, 10, 3, 30)),
        (KOLKATA, utc(2026, 6, 10, 4, 0), "09:00", utc(2026, 6, 11, 3, 30)),
        (KOLKATA, utc(2026, 6, 10, 18, 0), "00:00", utc(2026, 6, 10, 18, 30)),
        # Asia/Kathmandu is UTC+05:45: 09:00 = 03:15 UTC; 00:00 = 18:15 UTC the day before.
        (KATHMANDU, utc(2026, 6, 10, 0, 0), "09:00", utc(2026, 6, 10, 3, 15)),
        (KATHMANDU, utc(2026, 6, 10, 3, 16), "09:00", utc(2026, 6, 11, 3, 15)),
        (KATHMANDU, utc(2026, 6, 10, 18, 0), "00:00", utc(2026, 6, 10, 18, 15)),
    ],
)
def test_local_time_in_zones_off_the_hour(
    zone: ZoneInfo, after: float, local: str, expected: float
) -> None:
    assert next_local_time(after, hm(local), zone) == expected


# Europe/Berlin springs forward on 2026-03-29 at 02:00 CET (01:00 UTC) to 03:00 CEST; New York
# on 2026-03-08 at 02:00 EST (07:00 UTC) to 03:00 EDT.
@pytest.mark.parametrize(
    ("zone", "after", "local", "expected"),
    [
        (BERLIN, utc(2026, 3, 29, 0, 0), "02:30", utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 29, 0, 0), "02:00", utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 29, 0, 0), "02:59", utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 29, 0, 0), "03:00", utc(2026, 3, 29, 1, 0)),
        (BERLIN, utc(2026, 3, 29, 0, 0), "03:01", utc(2026, 3, 29, 1, 1)),
        (BERLIN, utc(2026, 3, 29, 0, 0), "01:59", utc(2026, 3, 29, 0, 59)),
        # The day before, 02:30 exists (CET); the day after, it is CEST.
        (BERLIN, utc(2026, 3, 28, 0, 0), "02:30", utc(2026, 3, 28, 1, 30)),
        (BERLIN, utc(2026, 3, 29, 2, 0), "02:30", utc(2026, 3, 30, 0, 30)),
        (NEW_YORK, utc(2026, 3, 8, 5, 0), "02:30", utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, utc(2026, 3, 8, 5, 0), "02:00", utc(2026, 3, 8, 7, 0)),
        (NEW_YORK, utc(2026, 3, 8, 5, 0), "03:15", utc(2026, 3, 8, 7, 15)),
        (NEW_YORK, utc(2026, 3, 8, 5, 0), "01:59", utc(2026, 3, 8, 6, 59)),
    ],
)
def test_local_time_skipped_by_spring_forward_is_the_first_valid_minute_after_it(
    zone: ZoneInfo, after: float, local: str, expected: float
) -> None:
    assert next_local_time(after, hm(local), zone) == expected


def test_local_time_skipped_while_its_first_valid_minute_runs_is_now() -> None:
    # 03:00:30 CEST on 2026-03-29: 02:30 went at 03:00, whose minute is not over.
    after = utc(2026, 3, 29, 1, 0, 30)
    assert next_local_time(after, hm("02:30"), BERLIN) == after


# Europe/Berlin falls back on 2026-10-25 at 03:00 CEST (01:00 UTC) to 02:00 CET, so 02:30 is
# 00:30 UTC and again 01:30 UTC; New York on 2026-11-01 at 02:00 EDT (06:00 UTC) to 01:00 EST,
# so 01:30 is 05:30 UTC and again 06:30 UTC.
@pytest.mark.parametrize(
    ("zone", "after", "local", "expected"),
    [
        (BERLIN, utc(2026, 10, 24, 22, 0), "02:30", utc(2026, 10, 25, 0, 30)),
        (BERLIN, utc(2026, 10, 24, 22, 0), "02:00", utc(2026, 10, 25, 0, 0)),
        (BERLIN, utc(2026, 10, 24, 22, 0), "03:00", utc(2026, 10, 25, 2, 0)),
        (NEW_YORK, utc(2026, 11, 1, 4, 0), "01:30", utc(2026, 11, 1, 5, 30)),
        (NEW_YORK, utc(2026, 11, 1, 4, 0), "01:00", utc(2026, 11, 1, 5, 0)),
        (NEW_YORK, utc(2026, 11, 1, 4, 0), "02:00", utc(2026, 11, 1, 7, 0)),
    ],
)
def test_local_time_repeated_by_fall_back_is_its_first_occurrence(
    zone: ZoneInfo, after: float, local: str, expected: float
) -> None:
    assert next_local_time(after, hm(local), zone) == expected


@pytest.mark.parametrize(
    ("zone", "after", "local", "expected"),
    [
        # 02:10 CET, the second pass: 02:30 is shown again 20 minutes later.
        (BERLIN, utc(2026, 10, 25, 1, 10), "02:30", utc(2026, 10, 25, 1, 30)),
        # 02:40 CEST, the first pass: 02:30 comes round again at 02:30 CET.
        (BERLIN, utc(2026, 10, 25, 0, 40), "02:30", utc(2026, 10, 25, 1, 30)),
        # 01:40 EST, the second pass, long after 01:30 EST: tomorrow's 01:30 EST.
        (NEW_YORK, utc(2026, 11, 1, 6, 40), "01:30", utc(2026, 11, 2, 6, 30)),
        # 01:10 EST, the second pass: 01:30 EST is 20 minutes away.
        (NEW_YORK, utc(2026, 11, 1, 6, 10), "01:30", utc(2026, 11, 1, 6, 30)),
    ],
)
def test_local_time_repeated_and_first_gone_by_is_the_next_time_the_clock_shows_it(
    zone: ZoneInfo, after: float, local: str, expected: float
) -> None:
    assert next_local_time(after, hm(local), zone) == expected


def test_local_time_on_a_day_the_zone_skipped_is_the_next_valid_minute() -> None:
    # Samoa went from 2011-12-29 23:59:59 (UTC-10) to 2011-12-31 00:00 (UTC+14), i.e.
    # 2011-12-30 10:00 UTC; 09:00 on the skipped 30th goes at that midnight.
    apia = ZoneInfo("Pacific/Apia")
    after = utc(2011, 12, 29, 20, 0)  # 10:00 on the 29th, UTC-10
    assert next_local_time(after, hm("09:00"), apia) == utc(2011, 12, 30, 10, 0)
    assert next_local_time(after, hm("11:00"), apia) == utc(2011, 12, 29, 21, 0)


def test_local_time_after_a_fall_back_across_midnight_is_yesterday_wall_time_again() -> None:
    # St John's fell back at 00:01 NDT (UTC-2:30) on 2010-11-07 to 23:01 NST (UTC-3:30) on
    # the 6th: at 00:00:30 on the 7th, 23:30 on the 6th is still to come, at 03:00 UTC.
    st_johns = ZoneInfo("America/St_Johns")
    after = utc(2010, 11, 7, 2, 30, 30)
    assert next_local_time(after, hm("23:30"), st_johns) == utc(2010, 11, 7, 3, 0)


def test_local_time_of_a_skipped_day_is_now_while_the_first_valid_minute_runs() -> None:
    # 00:00:30 on 2011-12-31 in Samoa: 09:00 on the skipped 30th went at 00:00.
    after = utc(2011, 12, 30, 10, 0, 30)
    assert next_local_time(after, hm("09:00"), ZoneInfo("Pacific/Apia")) == after


# Zones whose clocks change at midnight (Havana, Cairo, Santiago), by 30 minutes (Lord Howe),
# in the southern summer (Sydney, Chatham), for Ramadan (Casablanca) or not at all (Tokyo,
# UTC), and offsets off the hour (St Johns, Chatham, Tehran, Kolkata, Kathmandu).
SAMPLE_ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "America/Havana",
    "America/Sao_Paulo",
    "Africa/Cairo",
    "Africa/Casablanca",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Pacific/Kiritimati",
]
START_2026 = utc(2026, 1, 1)
END_2027 = utc(2028, 1, 1)
instants_2026_2027 = st.one_of(
    # to the microsecond: datetime rounds finer fractions, which would blur the clock read here
    st.integers(int(START_2026) * 10**6, int(END_2027) * 10**6 - 1).map(lambda us: us / 1e6),
    # whole minutes too, where the boundaries are
    st.integers(int(START_2026) // 60, int(END_2027) // 60 - 1).map(lambda m: m * 60.0),
)
minutes_of_day = st.integers(0, MINUTES_PER_DAY - 1)


@functools.cache
def clock_changes(name: str) -> list[float]:
    """The instants in 2026-2027 at which the zone's offset changes: found by steps of two
    hours, then by halving down to the second."""
    zone = ZoneInfo(name)

    def offset(at: float) -> timedelta | None:
        return datetime.fromtimestamp(at, zone).utcoffset()

    found = []
    at = START_2026
    while at < END_2027:
        if offset(at) != offset(at + 2 * HOUR):
            low, high = at, at + 2 * HOUR
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            found.append(high)
        at += 2 * HOUR
    return found


@st.composite
def near_a_clock_change(draw: st.DrawFn) -> tuple[str, float, int]:
    """A zone, an instant up to a day before one of its clock changes and a minute of day
    close to the wall times skipped or repeated there: a uniform draw seldom meets them."""
    name = draw(st.sampled_from([name for name in SAMPLE_ZONES if clock_changes(name)]))
    change = draw(st.sampled_from(clock_changes(name)))
    after = change + draw(st.integers(-26 * 60, 2 * 60)) * 60.0
    after += draw(st.sampled_from([0.0, 0.5, 30.0, 59.999]))
    local = wall(change - 1, ZoneInfo(name))
    minute = (local.hour * 60 + local.minute + draw(st.integers(-90, 90))) % MINUTES_PER_DAY
    return name, after, minute


anywhere = st.tuples(st.sampled_from(SAMPLE_ZONES), instants_2026_2027, minutes_of_day)


@st.composite
def about_now(draw: st.DrawFn) -> tuple[str, float, int]:
    """A minute of day near the one the clock shows at the instant, the minute itself among
    them."""
    name, after = draw(st.sampled_from(SAMPLE_ZONES)), draw(instants_2026_2027)
    local = wall(after, ZoneInfo(name))
    minute = (local.hour * 60 + local.minute + draw(st.integers(-2, 2))) % MINUTES_PER_DAY
    return name, after, minute


cases = st.one_of(anywhere, near_a_clock_change(), about_now())


def wall(at: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at, zone).replace(tzinfo=None)


def shows(at: float, minute_of_day: int, zone: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(at, zone)
    return local.hour * 60 + local.minute == minute_of_day


def assert_first_showing(after: float, result: float, minute_of_day: int, zone: ZoneInfo) -> None:
    """`result` is the first instant from `after` at which the clock shows the minute, or,
    when the clock jumped over it, the first minute shown after the jump."""
    assert after <= result < after + 26 * HOUR
    if result > after:
        # Nothing sooner would do: the sample zones' offsets are whole minutes, so the
        # clock's minutes begin on UTC's.
        assert not shows(after, minute_of_day, zone)
        at = (after // 60 + 1) * 60
        while at < result:
            assert not shows(at, minute_of_day, zone), at
            at += 60
        assert wall(result, zone).second == 0 and wall(result, zone).microsecond == 0
    if shows(result, minute_of_day, zone):
        return
    # Not shown: the clock jumped over the minute asked for just at the minute of `result`.
    start = (result // 60) * 60
    before, at_start = wall(start - 60, zone), wall(start, zone)
    assert before + timedelta(minutes=1) != at_start, "no jump at the result"
    asked = [
        datetime.combine(day, datetime.min.time()) + timedelta(minutes=minute_of_day)
        for day in (at_start.date() - timedelta(days=1), at_start.date())
    ]
    assert any(before < wanted < at_start for wanted in asked), (before, at_start, asked)


@settings(max_examples=1_000, deadline=None)
@given(cases)
def test_next_local_time_is_the_first_showing_of_the_minute_or_the_first_after_a_skipped_one(
    case: tuple[str, float, int],
) -> None:
    name, after, minute_of_day = case
    zone = ZoneInfo(name)
    assert_first_showing(after, next_local_time(after, minute_of_day, zone), minute_of_day, zone)


# --- quiet hours: on the user's clock ----------------------------------------------------

NIGHT = (hm("22:00"), hm("08:00"))
WORKDAY = (hm("09:00"), hm("17:00"))


@pytest.mark.parametrize(
    ("local", "quiet"),
    [
        ("21:59", False),
        ("22:00", True),
        ("23:59", True),
        ("00:00", True),
        ("03:00", True),
        ("07:59", True),
        ("08:00", False),
        ("12:00", False),
    ],
)
def test_quiet_hours_across_midnight_include_the_start_not_the_end(local: str, quiet: bool) -> None:
    # 2026-06-10 in Berlin is UTC+2.
    at = utc(2026, 6, 10) + (hm(local) - 120) * 60 + 30
    assert in_quiet_hours(at, NIGHT, BERLIN) is quiet


@pytest.mark.parametrize(
    ("local", "quiet"),
    [("08:59", False), ("09:00", True), ("12:00", True), ("16:59", True), ("17:00", False)],
)
def test_quiet_hours_within_a_day_include_the_start_not_the_end(local: str, quiet: bool) -> None:
    at = utc(2026, 6, 10) + hm(local) * 60 + 59.9
    assert in_quiet_hours(at, WORKDAY, ZULU) is quiet


def test_quiet_hours_are_read_on_the_user_clock() -> None:
    at = utc(2026, 6, 10, 20, 30)  # 22:30 in Berlin, 02:00 in Kolkata, 16:30 in New York
    assert in_quiet_hours(at, NIGHT, BERLIN)
    assert in_quiet_hours(at, NIGHT, KOLKATA)
    assert not in_quiet_hours(at, NIGHT, NEW_YORK)


def test_a_push_outside_quiet_hours_is_not_moved() -> None:
    at = utc(2026, 6, 10, 10, 0, 7)  # 12:00:07 in Berlin
    assert after_quiet_hours(at, NIGHT, BERLIN) == at


def test_a_push_in_quiet_hours_waits_for_their_end() -> None:
    # 23:00 in Berlin waits until 08:00 the next morning; 03:00 until 08:00 that morning.
    assert after_quiet_hours(utc(2026, 6, 10, 21, 0), NIGHT, BERLIN) == utc(2026, 6, 11, 6, 0)
    assert after_quiet_hours(utc(2026, 6, 11, 1, 0), NIGHT, BERLIN) == utc(2026, 6, 11, 6, 0)
    assert after_quiet_hours(utc(2026, 6, 10, 9, 0), WORKDAY, ZULU) == utc(2026, 6, 10, 17, 0)


@pytest.mark.parametrize(
    ("zone", "at", "expected"),
    [
        # 23:30 CET on 2026-03-28: the end, 02:30, is skipped that night; 03:00 CEST instead.
        (BERLIN, utc(2026, 3, 28, 22, 30), utc(2026, 3, 29, 1, 0)),
        # 01:00 CET, just before the jump.
        (BERLIN, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0)),
        # 23:00 EST on 2026-03-07: 02:30 is skipped; 03:00 EDT is 07:00 UTC.
        (NEW_YORK, utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 7, 0)),
    ],
)
def test_quiet_hours_ending_in_a_skipped_hour_end_at_the_first_valid_minute(
    zone: ZoneInfo, at: float, expected: float
) -> None:
    window = (hm("22:00"), hm("02:30"))
    assert after_quiet_hours(at, window, zone) == expected


def test_quiet_hours_ending_in_a_repeated_hour_end_at_the_next_time_the_clock_shows_it() -> None:
    window = (hm("22:00"), hm("01:30"))
    # 01:10 EDT, first pass: 01:30 EDT (05:30 UTC).
    assert after_quiet_hours(utc(2026, 11, 1, 5, 10), window, NEW_YORK) == utc(2026, 11, 1, 5, 30)
    # 01:10 EST, second pass (back in quiet hours): 01:30 EST (06:30 UTC), not tomorrow.
    assert after_quiet_hours(utc(2026, 11, 1, 6, 10), window, NEW_YORK) == utc(2026, 11, 1, 6, 30)


@settings(max_examples=500, deadline=None)
@given(cases, minutes_of_day)
def test_a_push_is_moved_only_when_quiet_and_then_to_the_first_end_of_quiet_hours(
    case: tuple[str, float, int], start: int
) -> None:
    name, at, end = case
    if start == end:
        return
    zone = ZoneInfo(name)
    moved = after_quiet_hours(at, (start, end), zone)
    if in_quiet_hours(at, (start, end), zone):
        assert_first_showing(at, moved, end, zone)
    else:
        assert moved == at


# --- due_time ----------------------------------------------------------------------------


class ZoneLookup:
    """The `zone` callable, counting its calls."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.calls = 0

    def __call__(self) -> ZoneInfo:
        self.calls += 1
        return self.zone


# 2026-06-10 12:00 UTC: 14:00 in Berlin, outside NIGHT.
NOON = utc(2026, 6, 10, 12, 0)


def test_due_time_of_a_plain_push_is_now_without_a_zone_lookup() -> None:
    lookup = ZoneLookup(BERLIN)
    assert due_time(NOON, None, None, None, lookup) == NOON
    assert lookup.calls == 0


def test_due_time_of_send_at_is_that_time_without_a_zone_lookup() -> None:
    lookup = ZoneLookup(BERLIN)
    assert due_time(NOON, NOON + HOUR, None, None, lookup) == NOON + HOUR
    assert due_time(NOON, NOON - HOUR, None, None, lookup) == NOON
    assert lookup.calls == 0


def test_due_time_of_local_time_looks_the_zone_up_once() -> None:
    lookup = ZoneLookup(BERLIN)
    # 15:00 in Berlin is 13:00 UTC; the zone serves quiet hours too.
    assert due_time(NOON, None, hm("15:00"), NIGHT, lookup) == utc(2026, 6, 10, 13, 0)
    assert lookup.calls == 1


def test_due_time_of_local_time_in_quiet_hours_waits_for_their_end() -> None:
    lookup = ZoneLookup(BERLIN)
    # 23:00 in Berlin is quiet: 08:00 the next morning, 06:00 UTC.
    assert due_time(NOON, None, hm("23:00"), NIGHT, lookup) == utc(2026, 6, 11, 6, 0)
    assert lookup.calls == 1


def test_due_time_of_local_time_ignoring_quiet_hours_is_the_local_time() -> None:
    assert due_time(NOON, None, hm("23:00"), None, ZoneLookup(BERLIN)) == utc(2026, 6, 10, 21, 0)


def test_due_time_of_send_at_in_quiet_hours_waits_for_their_end() -> None:
    lookup = ZoneLookup(BERLIN)
    send_at = utc(2026, 6, 10, 21, 0)  # 23:00 in Berlin
    assert due_time(NOON, send_at, None, NIGHT, lookup) == utc(2026, 6, 11, 6, 0)
    assert lookup.calls == 1
    assert due_time(NOON, send_at, None, NIGHT, ZoneLookup(NEW_YORK)) == send_at


def test_due_time_of_send_at_in_the_past_is_now_checked_against_quiet_hours() -> None:
    at_night = utc(2026, 6, 10, 21, 0)  # 23:00 in Berlin
    due = due_time(at_night, at_night - DAY, None, NIGHT, ZoneLookup(BERLIN))
    assert due == utc(2026, 6, 11, 6, 0)


def test_due_time_of_a_plain_push_in_quiet_hours_waits_for_their_end() -> None:
    lookup = ZoneLookup(KOLKATA)
    night_in_kolkata = utc(2026, 6, 10, 20, 0)  # 01:30 IST; 08:00 IST is 02:30 UTC
    assert due_time(night_in_kolkata, None, None, NIGHT, lookup) == utc(2026, 6, 11, 2, 30)
    assert lookup.calls == 1
    assert due_time(NOON, None, None, NIGHT, ZoneLookup(KOLKATA)) == NOON
