"""Parsing the SDK's app events and the Message Center query (docs/statistics.md)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushgate.stats.events import CLOCK_SKEW_SECONDS, MAX_EVENTS, AppEvent, parse_events
from pushgate.stats.message_center import (
    BAD_LIMIT,
    BAD_PAYLOAD,
    MessageCenterError,
    parse_query,
)
from pushgate.targeting.errors import ApiError
from pushgate.targeting.push import Identifier

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def event(**fields: Any) -> dict[str, Any]:
    return {"event_name": "push_delivered", "camp_id": 7, **fields}


def body(*events: dict[str, Any], insider_id: Any = "user-1") -> dict[str, Any]:
    return {"insider_id": insider_id, "events": list(events)}


def events_error(sent: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_events(sent, NOW)
    return caught.value


# ---- app events: what is accepted ----


def test_a_batch_carries_the_user_and_its_events_in_order() -> None:
    batch = parse_events(
        body(
            event(event_name="push_delivered", camp_id=7, timestamp="2027-01-15T07:30:00Z"),
            event(event_name="push_session", camp_id=8, timestamp="2027-01-15T07:45:00Z"),
        ),
        NOW,
    )
    assert batch.insider_id == "user-1"
    assert batch.events == (
        AppEvent("push_delivered", 7, NOW - 1800),
        AppEvent("push_session", 8, NOW - 900),
    )


def test_a_timestamp_with_an_offset_is_converted_to_utc() -> None:
    batch = parse_events(body(event(timestamp="2027-01-15T09:30:00+02:00")), NOW)
    assert batch.events[0].at == NOW - 1800


def test_a_timestamp_with_fractional_seconds_keeps_them() -> None:
    batch = parse_events(body(event(timestamp="2027-01-15T07:59:59.250Z")), NOW)
    assert batch.events[0].at == NOW - 0.75


def test_an_event_without_a_timestamp_happened_now() -> None:
    batch = parse_events(body(event()), NOW)
    assert batch.events[0].at == NOW


def test_a_future_timestamp_counts_at_the_time_it_was_received() -> None:
    batch = parse_events(body(event(timestamp="2027-01-16T08:00:00Z")), NOW)
    assert batch.events[0].at == NOW


def test_a_timestamp_slightly_ahead_within_the_clock_skew_is_kept() -> None:
    ahead = datetime.datetime.fromtimestamp(NOW + CLOCK_SKEW_SECONDS, datetime.UTC)
    batch = parse_events(body(event(timestamp=ahead.isoformat())), NOW)
    assert batch.events[0].at == NOW + CLOCK_SKEW_SECONDS


def test_a_timestamp_just_past_the_clock_skew_counts_now() -> None:
    ahead = datetime.datetime.fromtimestamp(NOW + CLOCK_SKEW_SECONDS + 1, datetime.UTC)
    batch = parse_events(body(event(timestamp=ahead.isoformat())), NOW)
    assert batch.events[0].at == NOW


@given(
    st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
        timezones=st.timezones(),
    )
)
def test_no_event_is_ever_later_than_now_plus_the_clock_skew(when: datetime.datetime) -> None:
    batch = parse_events(body(event(timestamp=when.isoformat())), NOW)
    at = batch.events[0].at
    assert at <= NOW + CLOCK_SKEW_SECONDS
    assert at == (when.timestamp() if when.timestamp() <= NOW + CLOCK_SKEW_SECONDS else NOW)


@pytest.mark.parametrize("camp_id", [0, -3, 2**63])
def test_a_camp_id_no_campaign_can_have_is_an_invalid_value(camp_id: int) -> None:
    error = events_error(body(event(camp_id=camp_id)))
    assert (error.code, error.status) == ("invalid_value", 400)


def test_a_thousand_events_are_accepted() -> None:
    assert len(parse_events(body(*[event()] * MAX_EVENTS), NOW).events) == MAX_EVENTS


# ---- app events: what is refused ----


@pytest.mark.parametrize("sent", [[], "x", 3, None])
def test_a_body_that_is_not_an_object_is_an_invalid_type(sent: Any) -> None:
    assert events_error(sent).code == "invalid_type"


def test_a_missing_insider_id_is_a_missing_field() -> None:
    error = events_error({"events": [event()]})
    assert (error.status, error.code) == (400, "missing_field")
    assert "'insider_id'" in error.message


@pytest.mark.parametrize("insider_id", ["", 5, ["u"], True])
def test_an_insider_id_that_is_not_a_non_empty_string_is_an_invalid_type(insider_id: Any) -> None:
    error = events_error(body(event(), insider_id=insider_id))
    assert (error.status, error.code) == (400, "invalid_type")
    assert "insider_id" in error.message


def test_missing_events_is_a_missing_field() -> None:
    assert events_error({"insider_id": "u"}).code == "missing_field"


def test_events_that_are_not_an_array_are_an_invalid_type() -> None:
    assert events_error({"insider_id": "u", "events": {"0": event()}}).code == "invalid_type"


@pytest.mark.parametrize("count", [0, MAX_EVENTS + 1])
def test_between_one_and_a_thousand_events_are_required(count: int) -> None:
    error = events_error(body(*[event()] * count))
    assert error.status == 400
    assert "between 1 and 1000" in error.message


def test_an_event_that_is_not_an_object_is_an_invalid_type_naming_its_index() -> None:
    error = events_error(body(event(), "push_delivered"))
    assert error.code == "invalid_type"
    assert "events[1]" in error.message


@pytest.mark.parametrize("field", ["event_name", "camp_id"])
def test_an_event_without_a_required_field_is_a_missing_field(field: str) -> None:
    sent = event()
    del sent[field]
    error = events_error(body(sent))
    assert error.code == "missing_field"
    assert f"'{field}'" in error.message
    assert "events[0]" in error.message


@pytest.mark.parametrize("name", ["push_opened", "PUSH_DELIVERED", ""])
def test_another_event_name_is_an_invalid_event(name: str) -> None:
    error = events_error(body(event(), event(event_name=name)))
    assert (error.status, error.code) == (400, "invalid_event")
    assert "events[1].event_name" in error.message


def test_an_event_name_that_is_not_a_string_is_an_invalid_type() -> None:
    assert events_error(body(event(event_name=1))).code == "invalid_type"


@pytest.mark.parametrize("camp_id", [True, False, 7.0, "7", [7]])
def test_a_camp_id_that_is_not_an_integer_is_an_invalid_type(camp_id: Any) -> None:
    error = events_error(body(event(camp_id=camp_id)))
    assert error.code == "invalid_type"
    assert "events[0].camp_id" in error.message


@pytest.mark.parametrize(
    "stamp", ["yesterday", "2027-13-01T00:00:00Z", "2027-01-15 25:00Z", "1800000000"]
)
def test_an_unparseable_timestamp_is_an_invalid_timestamp(stamp: str) -> None:
    error = events_error(body(event(timestamp=stamp)))
    assert (error.status, error.code) == (400, "invalid_timestamp")
    assert "events[0].timestamp" in error.message


@pytest.mark.parametrize("stamp", ["2027-01-15T07:00:00", "2027-01-15"])
def test_a_timestamp_without_a_zone_is_an_invalid_timestamp(stamp: str) -> None:
    error = events_error(body(event(timestamp=stamp)))
    assert error.code == "invalid_timestamp"
    assert "time zone" in error.message


@pytest.mark.parametrize("stamp", [1_800_000_000, 1.5, {"t": 1}])
def test_a_timestamp_that_is_not_a_string_is_an_invalid_type(stamp: Any) -> None:
    assert events_error(body(event(timestamp=stamp))).code == "invalid_type"


def test_one_bad_event_refuses_the_whole_batch() -> None:
    error = events_error(body(event(), event(), event(camp_id="x")))
    assert "events[2]" in error.message


# ---- Message Center: the query ----


def query_error(sent: Any) -> MessageCenterError:
    with pytest.raises(MessageCenterError) as caught:
        parse_query(sent, NOW)
    return caught.value


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("Email", "email"),
        ("Phone", "phone_number"),
        ("Uuid", "uuid"),
        ("email", "email"),
        ("phone_number", "phone_number"),
        ("uuid", "uuid"),
    ],
)
def test_the_standard_identifier_keys_map_to_their_kinds(key: str, kind: str) -> None:
    query = parse_query({"identifiers": {key: "value"}}, NOW)
    assert query.identifiers == (Identifier(kind, "value"),)


def test_any_other_identifier_key_is_a_custom_identifier() -> None:
    query = parse_query({"identifiers": {"loyalty_id": "L-1", "Email": "a@b.co"}}, NOW)
    assert query.identifiers == (Identifier("loyalty_id", "L-1"), Identifier("email", "a@b.co"))


def test_an_email_is_matched_case_insensitively_and_values_are_trimmed() -> None:
    query = parse_query({"identifiers": {"Email": "  J.Doe@Mail.COM "}}, NOW)
    assert query.identifiers == (Identifier("email", "j.doe@mail.com"),)


def test_defaults_are_everything_until_now_at_most_a_hundred() -> None:
    query = parse_query({"identifiers": {"Email": "a@b.co"}}, NOW + 0.75)
    assert (query.start, query.end, query.limit) == (0.0, NOW, 100)


def test_the_range_and_limit_are_taken_as_sent() -> None:
    query = parse_query(
        {
            "identifiers": {"Uuid": "u-1"},
            "start_date": 1633068172,
            "end_date": 2143433430,
            "limit": 5,
        },
        NOW,
    )
    assert (query.start, query.end, query.limit) == (1633068172.0, 2143433430.0, 5)


def test_integral_floats_are_accepted_as_integers() -> None:
    query = parse_query(
        {"identifiers": {"Uuid": "u"}, "start_date": 10.0, "end_date": 20.0, "limit": 3.0}, NOW
    )
    assert (query.start, query.end, query.limit) == (10.0, 20.0, 3)


def test_start_equal_to_end_is_a_range_of_one_second() -> None:
    query = parse_query({"identifiers": {"Uuid": "u"}, "start_date": 5, "end_date": 5}, NOW)
    assert (query.start, query.end) == (5.0, 5.0)


def test_start_after_end_is_a_bad_payload() -> None:
    error = query_error({"identifiers": {"Uuid": "u"}, "start_date": 6, "end_date": 5})
    assert (error.status, error.text) == (400, BAD_PAYLOAD)


def test_a_start_after_the_default_end_is_a_bad_payload() -> None:
    error = query_error({"identifiers": {"Uuid": "u"}, "start_date": int(NOW) + 1})
    assert error.text == "bad payload"


@pytest.mark.parametrize("limit", [0, -1, 101, 10_000])
def test_a_limit_outside_one_to_a_hundred_is_refused_with_its_own_text(limit: int) -> None:
    error = query_error({"identifiers": {"Uuid": "u"}, "limit": limit})
    assert (error.status, error.text) == (400, "limit should be between 1 and 100.")
    assert error.text == BAD_LIMIT


@pytest.mark.parametrize("limit", [1, 100])
def test_the_limits_bounds_are_accepted(limit: int) -> None:
    assert parse_query({"identifiers": {"Uuid": "u"}, "limit": limit}, NOW).limit == limit


@pytest.mark.parametrize(
    "sent",
    [
        None,
        [],
        "identifiers",
        {},
        {"identifiers": {}},
        {"identifiers": []},
        {"identifiers": "a@b.co"},
        {"identifiers": {"Email": 5}},
        {"identifiers": {"Email": None}},
        {"identifiers": {"custom": {"loyalty_id": "L-1"}}},
        {"identifiers": {"Email": "   "}},
        {"identifiers": {"": "x"}},
        {"identifiers": {"Uuid": "u"}, "start_date": "0"},
        {"identifiers": {"Uuid": "u"}, "end_date": 1.5},
        {"identifiers": {"Uuid": "u"}, "limit": "10"},
        {"identifiers": {"Uuid": "u"}, "limit": True},
        {"identifiers": {"Uuid": "u"}, "start_date": False},
        {"identifiers": {"Uuid": "u"}, "limit": None},
    ],
)
def test_a_malformed_query_is_a_bad_payload(sent: Any) -> None:
    error = query_error(sent)
    assert (error.status, error.text) == (400, BAD_PAYLOAD)
    assert str(error) == "bad payload"
