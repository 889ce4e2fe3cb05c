"""`pushgate users import`'s pure parts: the CSV column mapping (docs/cli.md), JSON-lines
records, the rules, and reading with offsets that an interrupted import resumes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from pushgate.toolbox.importer import exclusive
from pushgate.toolbox.reader import FileError, Position, read_csv, read_jsonl
from pushgate.toolbox.rows import (
    Checked,
    HeaderError,
    Reason,
    check,
    csv_document,
    json_document,
    parse_header,
)


def doc(header: str, row: list[str]) -> tuple[dict[str, object], list[Reason]]:
    return csv_document(parse_header(header.split(",")), row)


def test_columns_map_to_identifiers_attributes_and_the_device() -> None:
    found, reasons = doc(
        "email,phone_number,uuid,identifier.loyalty,insider_id,name,age,attribute.email_optin,"
        "score:float,tags:list,prefs:json,device.platform,device.token,device.push_optin,"
        "device.screen_width",
        [
            "A@b.co",
            "+6512345678",
            "u1",
            "L1",
            "",
            "Ada",
            "36",
            "yes",
            "9.5",
            "x; y;",
            '{"a": 1}',
            "ios",
            "ab12",
            "false",
            "1170",
        ],
    )
    assert reasons == []
    assert found == {
        "identifiers": {
            "email": "A@b.co",
            "phone_number": "+6512345678",
            "uuid": "u1",
            "custom": {"loyalty": "L1"},
        },
        "attributes": {
            "name": "Ada",
            "age": 36,
            "email_optin": True,
            "score": 9.5,
            "tags": ["x", "y"],
            "prefs": {"a": 1},
        },
        "devices": [
            {"platform": "ios", "device_token": "ab12", "push_optin": False, "screen_width": 1170}
        ],
    }


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,city", "no identifier column"),
        ("email,device.colour", "unknown device field"),
        ("email,score:decimal", "unknown type"),
        ("email,device.platform:int", "only attribute columns take a :type"),
        ("email,name,attribute.name", "appears twice"),
        ("email,,name", "empty column name"),
    ],
)
def test_headers_that_cannot_be_mapped(header: str, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        parse_header(header.split(","))


def test_cells_that_are_not_their_type_are_reasons() -> None:
    found, reasons = doc("uuid,age,device.push_optin,n:float", ["u", "x", "maybe", "inf"])
    assert [r.rule for r in reasons] == [
        "attributes.age.type(int)",
        "device.push_optin.type(bool)",
        "attributes.n.type(float)",
    ]
    assert found == {"identifiers": {"uuid": "u"}}
    assert doc("uuid,name", ["u"])[1] == [Reason("row.columns", "1 cells, the header has 2")]


def test_the_user_apis_rules_name_what_is_wrong() -> None:
    def rules(value: dict[str, object]) -> list[str]:
        result = check(value)
        assert isinstance(result, list)
        return [r.rule for r in result]

    assert rules({"identifiers": {"email": "nope"}, "attributes": {"a": 1}}) == [
        "identifiers.email.regexp(^.+@.+\\..+$)"
    ]
    assert rules({"attributes": {"a": 1}}) == ["identifiers.required"]
    assert rules({"identifiers": {"uuid": "u"}}) == ["required(attributes|events|device)"]
    assert rules({"identifiers": {"uuid": "u"}, "events": [{"event_name": "Bad"}]}) == [
        "events.0.event_name.regexp(^[a-z0-9][a-zA-Z0-9._-]*$)"
    ]
    assert rules({"identifiers": {"uuid": "u"}, "devices": [{"platform": "web"}]}) == [
        "device.platform"
    ]
    assert rules({"identifiers": {"uuid": "u"}, "devices": [{}, 3]}) == ["devices.0.platform"]


def test_a_valid_row_is_what_the_store_and_the_endpoints_take() -> None:
    result = check(
        {
            "identifiers": {"email": "a@b.co"},
            "attributes": {"name": "Ada"},
            "devices": [{"platform": "IOS", "device_token": " t1 "}],
        }
    )
    assert isinstance(result, Checked)
    # One SDK session carries the attributes: the session merges them as the upsert would.
    assert result.user is None and result.record is None
    (session,) = result.sessions
    assert session.device["device_token"] == "t1"  # as the SDK endpoint stores it
    assert session.attributes == {"INSIDER.name": "Ada"}
    assert result.session_bodies[0]["device"]["platform"] == "IOS"
    assert result.session_bodies[0]["attributes"] == {"name": "Ada"}
    # Events, or arrays that replace, need the upsert.
    for extra in ({"events": [{"event_name": "buy"}]}, {"not_append": True}):
        both = check({"identifiers": {"uuid": "u"}, "attributes": {"a": 1}, **extra,
                      "devices": [{"platform": "ios", "device_token": "t"}]})  # fmt: skip
        assert isinstance(both, Checked) and both.user is not None and both.record is not None
        assert both.sessions[0].attributes == {}


def test_json_lines_take_device_and_devices() -> None:
    found, reasons = json_document(
        {"identifiers": {"uuid": "u"}, "device": {"a": 1}, "devices": [{"b": 2}], "x": 1}
    )
    assert reasons == [] and found == {
        "identifiers": {"uuid": "u"},
        "devices": [{"a": 1}, {"b": 2}],
    }
    assert json_document([1])[1][0].rule == "row.type(object)"
    assert json_document({"devices": {}})[1][0].rule == "devices.type(array)"


def test_reading_resumes_at_the_offset_after_a_row(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(
        '\ufeffemail,name\r\na@b.co,Ada\r\n\r\n"x\ny@b.co","Multi\nline"\r\nc@b.co,Cé\r\n'.encode()
    )
    rows = list(read_csv(path, Position()))
    assert [(r.number, r.line, r.raw["email"]) for r in rows] == [
        (1, 2, "a@b.co"),
        (2, 4, "x\ny@b.co"),
        (3, 7, "c@b.co"),  # the quoted cells above span lines 4 to 6
    ]
    assert rows[-1].end == path.stat().st_size and rows[-1].lines == 7
    after_first = rows[0]
    again = list(read_csv(path, Position(after_first.end, after_first.number, after_first.lines)))
    assert [(r.number, r.line, r.doc, r.end) for r in again] == [
        (r.number, r.line, r.doc, r.end) for r in rows[1:]
    ]
    assert rows[2].doc["attributes"] == {"name": "Cé"}


def test_json_lines_resume_and_bad_json_is_a_row(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"identifiers": {"uuid": "1"}}\n\n{oops\n{"identifiers": {"uuid": "3"}}')
    rows = list(read_jsonl(path, Position()))
    assert [(r.number, r.line) for r in rows] == [(1, 1), (2, 3), (3, 4)]
    assert rows[1].reasons[0].rule == "row.json"
    resumed = list(read_jsonl(path, Position(rows[1].end, 2, 3)))
    assert [(r.number, r.line, r.raw) for r in resumed] == [(3, 4, {"identifiers": {"uuid": "3"}})]


def test_one_import_of_a_file_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("email\n")
    with exclusive(path), pytest.raises(FileError, match="another import"), exclusive(path):
        pass
    with exclusive(path):  # released
        pass


def test_the_nul_character_is_refused_as_the_endpoints_refuse_it(tmp_path: Path) -> None:
    assert doc("uuid,name", ["u", "a\0b"])[1] == [
        Reason("row.nul", "column 'name' holds the NUL character")
    ]
    path = tmp_path / "u.jsonl"
    path.write_bytes(b'{"identifiers": {"uuid": "x\\u0000"}}\n')
    (row,) = read_jsonl(path, Position())
    assert row.reasons[0].text() == (
        "row.json: not valid JSON: strings must not contain the NUL character (\\u0000)"
    )
