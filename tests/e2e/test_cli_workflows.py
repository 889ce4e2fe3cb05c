"""The toolbox commands (docs/cli.md) against a real `pushgate serve --emulate` and its
database, on both backends: `users import` (counts, rejects, profiles, resuming after
SIGKILL), `send`, `campaigns`, `certs`, and `demo`."""

from __future__ import annotations

import csv
import datetime
import hashlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pushgate.emulators.credentials import (
    InMemoryCredentials,
    generate_apns_credential,
    generate_fcm_service_account,
)
from tests.support.emulated import Control, partner_id, rows, wait_for, wait_jobs_final
from tests.support.pushes import SETTINGS_DELAY
from tests.support.server import PUSHGATE, Partner, Server
from tests.support.stats_api import EVENTS_PATH, report_json

PLATFORMS = ("ios", "android", "huawei")


def cli(
    server: Server | None, *args: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """`pushgate ...` on the server's database, with a terminal wide enough for the tables."""
    env = server.process_env() if server is not None else dict(os.environ)
    env["COLUMNS"] = "220"
    out = subprocess.run(
        [PUSHGATE, *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if check:
        assert out.returncode == 0, f"{args}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def token_of(platform: str, n: int, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}:{n}".encode()).hexdigest()
    if platform == "ios":
        return digest
    if platform == "android":
        return f"f{digest[:10]}:APA91b{digest}"
    return f"IQAAAACy{digest}"


def masked(token: str) -> str:
    return f"{token[:6]}…{token[-4:]}"


# ---- import files with known contents ----

# Every 50 rows, the first six are bad, each in its own way; the rule the summary counts it by.
BAD_RULES = {
    0: "identifiers.email.regexp(^.+@.+\\..+$)",
    1: "identifiers.phone_number.regexp(^\\+[1-9]\\d{6,14}$)",
    2: "attributes.age.type(int)",
    3: "device.platform",
    4: "identifiers.required",
    5: "row.columns",
}
HEADER = [
    "email",
    "phone_number",
    "uuid",
    "name",
    "age",
    "tags:list",
    "device.platform",
    "device.token",
    "device.udid",
    "device.push_optin",
]


@dataclass
class ImportFile:
    path: Path
    rows: int
    salt: str
    bad: dict[int, str] = field(default_factory=dict)  # row number -> rule
    devices: dict[int, tuple[str, str]] = field(default_factory=dict)  # row -> (platform, token)

    @property
    def good(self) -> int:
        return self.rows - len(self.bad)

    def good_devices(self) -> int:
        return sum(1 for n in self.devices if n not in self.bad)


def write_csv(path: Path, count: int, salt: str) -> ImportFile:
    made = ImportFile(path, count, salt)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(count):
            n = i + 1
            platform = PLATFORMS[i % 3]
            email, phone, uuid = f"{salt}-{i}@example.com", f"+65{10_000_000 + i}", f"{salt}-u{i}"
            age, token = str(20 + i % 50), token_of(platform, i, salt)
            with_device = i % 2 == 0
            kind = i % 50
            if kind == 0:
                email = f"{salt}-{i}-at-example.com"
            elif kind == 1:
                phone = f"0065{i}"
            elif kind == 2:
                age = "thirty"
            elif kind == 3:
                platform, with_device = "windows", True
            elif kind == 4:
                email = phone = uuid = ""
            row = [email, phone, uuid, f"Name {i}", age, "a;b"]
            row += (
                [platform, token, f"udid-{salt}-{i}", "true"] if with_device else ["", "", "", ""]
            )
            if kind == 5:
                row.append("one cell too many")
            if kind in BAD_RULES:
                made.bad[n] = BAD_RULES[kind]
            if with_device:
                made.devices[n] = (platform, token)
            out.writerow(row)
    return made


def import_json(server: Server, partner: Partner, path: Path, *extra: str) -> dict[str, Any]:
    out = cli(
        server,
        "users",
        "import",
        str(path),
        "--partner",
        partner.name,
        "--data-dir",
        str(server.data_dir),
        "--json",
        *extra,
    )
    return dict(json.loads(out.stdout))


def count(server: Server, partner: Partner, table: str) -> int:
    (row,) = rows(
        server, f"SELECT count(*) AS n FROM {table} WHERE partner_id = ?", partner_id(partner)
    )
    return int(row["n"])


def rejects_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---- users import ----


def test_import_of_10000_rows_with_bad_rows(
    server: Server, partner: Partner, tmp_path: Path
) -> None:
    made = write_csv(tmp_path / "users.csv", 10_000, os.urandom(3).hex())
    summary = import_json(server, partner, made.path)

    assert summary["finished"] and summary["rows"] == 10_000
    assert (summary["imported"], summary["updated"]) == (made.good, 0)
    assert summary["rejected"] == len(made.bad) == 1_200
    assert summary["devices"] == made.good_devices()
    assert summary["reasons"] == {rule: 200 for rule in BAD_RULES.values()}
    rejects = rejects_of(tmp_path / "users.csv.rejects.jsonl")
    assert {r["row"]: r["reasons"][0].split(":")[0] for r in rejects} == made.bad
    sample = next(r for r in rejects if r["row"] == 3)  # age "thirty"
    assert sample["data"]["age"] == "thirty" and sample["line"] == 4
    assert sample["reasons"] == ["attributes.age.type(int): not an integer: thirty"]

    assert count(server, partner, "profiles") == made.good
    assert count(server, partner, "devices") == made.good_devices()
    assert count(server, partner, "identifiers") == 3 * made.good
    # A profile as the user API reads it: identifiers, typed attributes, the device.
    i = 6  # row 7: good, with an iOS device
    r = partner.user_api("profile", {"identifiers": {"uuid": f"{made.salt}-u{i}"}})
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["attributes"]["INSIDER.name"] == f"Name {i}"
    assert profile["attributes"]["INSIDER.age"] == 20 + i
    assert profile["attributes"]["tags"] == ["a", "b"]
    assert profile["identifiers"]["phone_number"] == f"+65{10_000_000 + i}"
    (device,) = profile["devices"]
    assert (device["INSIDER.platform"], device["INSIDER.device_token"]) == made.devices[i + 1]
    assert device["INSIDER.push_optin"] is True and device["registered"] is True


def test_import_of_json_lines_uses_the_user_and_session_rules(
    server: Server, partner: Partner, tmp_path: Path
) -> None:
    ios, android = token_of("ios", 1, "j"), token_of("android", 2, "j")
    lines = [
        {  # attributes, an event and two devices
            "identifiers": {"email": "Jl@Example.com", "custom": {"loyalty": "L1"}},
            "attributes": {"name": "Jo", "custom": {"tier": "gold"}},
            "events": [{"event_name": "purchase", "timestamp": "2026-01-01T00:00:00Z"}],
            "devices": [
                {"platform": "ios", "device_token": ios, "push_optin": True},
                {"platform": "android", "device_token": android, "push_optin": False},
            ],
        },
        {"identifiers": {"uuid": "jl-2"}, "events": [{"event_name": "Bad Name"}]},
        {"identifiers": {"uuid": "jl-3"}, "device": {"platform": "ios"}},
        "not an object",
        {"identifiers": {"uuid": "jl-4"}, "device": {"platform": "ios", "device_token": ios}},
    ]
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n{broken\n")
    summary = import_json(server, partner, path)
    assert (summary["rows"], summary["imported"], summary["rejected"]) == (6, 2, 4)
    assert summary["devices"] == 3
    by_row = {r["row"]: r for r in rejects_of(tmp_path / "users.jsonl.rejects.jsonl")}
    assert set(by_row) == {2, 3, 4, 6}
    assert by_row[2]["reasons"][0].startswith("events.0.event_name.regexp(")
    assert by_row[3]["reasons"][0].startswith("device.device_token: ")
    assert by_row[4]["reasons"] == ["row.type(object): a line must hold a JSON object"]
    assert by_row[6]["line"] == 7 and by_row[6]["reasons"][0].startswith("row.json: ")

    profile = partner.user_api("profile", {"identifiers": {"email": "jl@example.com"}}).json()
    assert profile["identifiers"]["custom"] == {"loyalty": "L1"}
    assert profile["attributes"]["tier"] == "gold" and profile["event_count"] == 1
    # The iOS token moved to jl-4's device, as a re-used token does through the SDK.
    assert [d["INSIDER.device_token"] for d in profile["devices"]] == [android]
    other = partner.user_api("profile", {"identifiers": {"uuid": "jl-4"}}).json()
    assert [d["INSIDER.device_token"] for d in other["devices"]] == [ios]


def test_import_resumes_after_sigkill(server: Server, partner: Partner, tmp_path: Path) -> None:
    made = write_csv(tmp_path / "big.csv", 12_000, os.urandom(3).hex())
    state_path = tmp_path / "big.csv.import-state.json"
    args = ["users", "import", str(made.path), "--partner", partner.name]
    args += ["--data-dir", str(server.data_dir), "--batch-size", "500", "--json"]
    env = server.process_env()
    proc = subprocess.Popen([PUSHGATE, *args], env=env, stdout=subprocess.DEVNULL)
    try:

        def midway() -> dict[str, Any] | None:
            try:
                state = json.loads(state_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            return state if state["rows"] >= 2_000 else None

        state = wait_for(midway, 120, 0.01)
        assert state, "no checkpoint"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not state["finished"] and state["rows"] < made.rows, "finished before the kill"
    killed_at = json.loads(state_path.read_text())["rows"]

    summary = import_json(server, partner, made.path)
    # It went on from its last commit: the state file's, or the one after it when the kill
    # fell between a commit and the state file's update.
    assert killed_at <= summary["resumed_after_row"] <= killed_at + 500
    assert summary["run_rows"] == made.rows - summary["resumed_after_row"]
    assert summary["finished"] and summary["rows"] == made.rows
    # Every row once: no row was stored twice (it would count as an update) or skipped.
    assert (summary["imported"], summary["updated"]) == (made.good, 0)
    assert summary["rejected"] == len(made.bad)
    assert json.loads(state_path.read_text())["finished"] is True
    rejects = rejects_of(tmp_path / "big.csv.rejects.jsonl")
    assert sorted(r["row"] for r in rejects) == sorted(made.bad)
    assert count(server, partner, "profiles") == made.good
    assert count(server, partner, "devices") == made.good_devices()


def test_import_finished_restarted_or_changed(
    server: Server, partner: Partner, tmp_path: Path
) -> None:
    made = write_csv(tmp_path / "u.csv", 100, "chg")
    first = import_json(server, partner, made.path)
    assert first["imported"] == made.good
    # Once finished, the same command does nothing; --restart imports again, as updates.
    again = import_json(server, partner, made.path)
    assert again["already_imported"] and again["run_rows"] == 0
    redo = import_json(server, partner, made.path, "--restart")
    assert (redo["imported"], redo["updated"], redo["rejected"]) == (0, made.good, len(made.bad))
    assert count(server, partner, "profiles") == made.good
    assert count(server, partner, "devices") == made.good_devices()
    with made.path.open("a") as f:
        f.write("late@example.com,,,Late,,,,,,\n")
    second = import_json(server, partner, made.path)
    assert second["resumed_after_row"] is None and second["rows"] == 101
    assert (second["imported"], second["updated"]) == (1, made.good)


def test_import_over_http(server: Server, partner: Partner, tmp_path: Path) -> None:
    made = write_csv(tmp_path / "h.csv", 300, os.urandom(3).hex())
    base = ["users", "import", str(made.path), "--partner", partner.name, "--url"]
    base += [server.base_url, "--request-token", partner.request_token, "--json"]
    no_sdk_key = cli(server, *base, check=False)
    assert no_sdk_key.returncode == 2 and "--sdk-key" in no_sdk_key.stderr
    summary = json.loads(cli(server, *base, "--sdk-key", partner.sdk_key).stdout)
    assert summary["resumed_after_row"] is None  # the refused run stored nothing
    assert summary["finished"] and summary["target"] == server.base_url
    assert (summary["stored"], summary["rejected"]) == (made.good, len(made.bad))
    assert summary["devices"] == made.good_devices()
    assert count(server, partner, "profiles") == made.good
    assert count(server, partner, "devices") == made.good_devices()
    profile = partner.user_api("profile", {"identifiers": {"uuid": f"{made.salt}-u7"}}).json()
    assert profile["attributes"]["INSIDER.age"] == 27 and profile["devices"] == []
    with_device = partner.user_api("profile", {"identifiers": {"uuid": f"{made.salt}-u6"}})
    assert with_device.json()["devices"][0]["INSIDER.device_token"] == made.devices[7][1]


def test_bad_header_refuses_the_file(server: Server, partner: Partner, tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("name,device.colour\nAda,red\n")
    out = cli(
        server,
        "users",
        "import",
        str(path),
        "--partner",
        partner.name,
        "--data-dir",
        str(server.data_dir),
        check=False,
    )
    assert out.returncode == 1
    assert "unknown device field" in out.stderr
    assert count(server, partner, "profiles") == 0


# ---- send, campaigns ----


def register(server: Server, partner: Partner, tmp_path: Path, salt: str) -> dict[str, str]:
    """Three users with one device each (by import), and one opted out; email -> token."""
    tokens = {f"{salt}-{p}@example.com": token_of(p, 0, salt) for p in PLATFORMS}
    lines = [
        {"identifiers": {"email": email}, "device": {"platform": p, "device_token": t}}
        for (email, t), p in zip(tokens.items(), PLATFORMS, strict=True)
    ]
    lines.append(
        {
            "identifiers": {"email": f"{salt}-out@example.com"},
            "device": {
                "platform": "ios",
                "device_token": token_of("ios", 9, salt),
                "push_optin": False,
            },
        }
    )
    path = tmp_path / f"{salt}.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines))
    assert import_json(server, partner, path)["imported"] == 4
    return tokens


def test_send_prints_each_users_result_and_the_server_delivers(
    server: Server, partner: Partner, control: Control, tmp_path: Path
) -> None:
    salt = f"s{os.urandom(3).hex()}"
    tokens = register(server, partner, tmp_path, salt)
    emails = list(tokens)
    out = cli(
        server,
        "send",
        *(f"--to=email:{e}" for e in emails),
        f"--to=email:{salt}-out@example.com",
        "--to=uuid:nobody-at-all",
        "--title=Hello",
        "--message=From the CLI",
        "--camp-id=501",
        "--url",
        server.base_url,
        "--api-key",
        partner.api_key,
    )
    table = out.stdout
    for email, token in tokens.items():
        line = next(x for x in table.splitlines() if f"email:{email}" in x)
        assert "sent" in line and masked(token) in line and token not in table
    assert re.search(r"email:\S+-out@example\.com\s*│\s*OptOut", table)
    assert re.search(r"uuid:nobody-at-all\s*│\s*NoUserFound", table)
    assert "3 of 5 queued for delivery" in table
    delivered = control.wait_delivered(list(tokens.values()))
    assert all(delivered[t] == 1 for t in tokens.values())
    ios = control.deliveries(token=tokens[emails[0]])[0]["payload"]
    assert ios["aps"]["alert"]["title"] == "Hello"


def test_send_needs_the_api_key(server: Server, partner: Partner) -> None:
    env_free = cli(
        server,
        "send",
        "--to=email:a@b.co",
        "--title=t",
        "--message=m",
        "--partner",
        partner.name,
        "--data-dir",
        str(server.data_dir),
        check=False,
    )
    assert env_free.returncode == 2 and "stored only as hashes" in env_free.stderr
    wrong = cli(
        server,
        "send",
        "--to=email:a@b.co",
        "--title=t",
        "--message=m",
        "--url",
        server.base_url,
        "--api-key",
        "pgk_wrong",
        check=False,
    )
    assert wrong.returncode == 1 and "bad_api_key" in wrong.stderr


def test_campaign_report_matches_the_api(
    server: Server, partner: Partner, control: Control, tmp_path: Path
) -> None:
    salt = f"c{os.urandom(3).hex()}"
    tokens = register(server, partner, tmp_path, salt)
    ios, android, huawei = tokens.values()
    control.token_outcome("ios", ios, "Unregistered")
    sent = cli(
        server,
        "send",
        *(f"--to=email:{e}" for e in tokens),
        f"--to=email:{salt}-out@example.com",
        "--title=t",
        "--message=m",
        "--camp-id=777",
        "--camp-name=Report test",
        "--url",
        server.base_url,
        "--api-key",
        partner.api_key,
        "--json",
    )
    results = json.loads(sent.stdout)["results"]
    assert [r["result"] for r in results] == ["sent", "sent", "sent", "OptOut"]
    wait_jobs_final(partner, 3, 20)
    insider = {r["device_token"]: r["insider_id"] for r in results if r["result"] == "sent"}
    for token, names in (
        (android, ["push_delivered"]),
        (huawei, ["push_delivered", "push_session"]),
    ):
        events = [{"event_name": n, "camp_id": 777} for n in names]
        r = server.client.post(
            EVENTS_PATH,
            json={"insider_id": insider[masked(token)], "events": events},
            headers={"X-SDK-KEY": partner.sdk_key},
        )
        assert r.status_code == 200, r.text
    api = report_json(partner, 777)
    assert api["funnel"]["accepted"] == 2 and api["funnel"]["failed"] == 1

    keyed = ["campaigns", "show", "777", "--url", server.base_url, "--api-key", partner.api_key]
    on_db = [
        "campaigns",
        "show",
        "777",
        "--partner",
        partner.name,
        "--data-dir",
        str(server.data_dir),
    ]
    for args in (keyed, on_db):
        shown = json.loads(cli(server, *args, "--json").stdout)
        for part in ("camp_id", "name", "funnel", "rates", "platforms", "fail_records"):
            assert shown[part] == api[part], (args, part)

    table = cli(server, *keyed).stdout
    funnel = api["funnel"]
    for stage in ("requested", "resolved", "queued", "accepted", "failed", "delivered", "opened"):
        assert re.search(rf"│?\s*{stage}\s+│?\s*{funnel[stage]}\b", table), (stage, table)
    assert "100.00%" in table  # delivery rate: 2 delivered of 2 accepted
    assert f"{api['rates']['open_rate']:.2f}%" == "50.00%" and "50.00%" in table
    assert "Unregistered" in table and masked(ios) in table and "OptOut" in table

    listed = json.loads(
        cli(
            server,
            "campaigns",
            "list",
            "--url",
            server.base_url,
            "--api-key",
            partner.api_key,
            "--json",
        ).stdout
    )
    (entry,) = [c for c in listed["campaigns"] if c["camp_id"] == 777]
    assert (entry["requested"], entry["accepted"], entry["opened"]) == (4, 2, 1)
    listing = cli(
        server, "campaigns", "list", "--partner", partner.name, "--data-dir", str(server.data_dir)
    ).stdout
    assert "Report test" in listing and "50.00%" in listing


# ---- send later, cancel ----


def sent_later(server: Server, partner: Partner, *args: str, check: bool = True) -> Any:
    """`pushgate send` through the server with these options (recipients and timing)."""
    return cli(
        server,
        "send",
        "--title=Later",
        "--message=Sent later",
        *args,
        "--url",
        server.base_url,
        "--api-key",
        partner.api_key,
        check=check,
    )


def campaign_jobs(server: Server, partner: Partner, camp_id: int) -> list[dict[str, Any]]:
    return rows(
        server,
        "SELECT * FROM jobs WHERE partner_id = ? AND camp_id = ? ORDER BY id",
        partner_id(partner),
        camp_id,
    )


def test_send_at_is_scheduled_shown_and_cancelled(
    server: Server, partner: Partner, control: Control, tmp_path: Path
) -> None:
    salt = f"l{os.urandom(3).hex()}"
    tokens = register(server, partner, tmp_path, salt)
    emails = list(tokens)
    before = time.time()
    out = sent_later(server, partner, f"--to=email:{emails[0]}", "--at=+1h", "--camp-id=901")
    due = datetime.datetime.fromtimestamp(round(before + 3600), datetime.UTC)
    assert re.search(r"1 of 1 queued for delivery, due 20\d\d-\d\d-\d\d [\d:]+ UTC", out.stdout)
    (job,) = campaign_jobs(server, partner, 901)
    assert job["due_at"] == pytest.approx(due.timestamp(), abs=2)
    offset = datetime.timezone(datetime.timedelta(hours=-3))
    at = (due + datetime.timedelta(minutes=5)).astimezone(offset).isoformat()
    sent_later(server, partner, f"--to=email:{emails[1]}", f"--at={at}", "--camp-id=901")
    assert campaign_jobs(server, partner, 901)[1]["due_at"] == due.timestamp() + 300

    keyed = ["--url", server.base_url, "--api-key", partner.api_key]
    shown = json.loads(cli(server, "campaigns", "show", "901", *keyed, "--json").stdout)
    assert (shown["funnel"]["scheduled"], shown["funnel"]["pending"]) == (2, 2)
    table = cli(server, "campaigns", "show", "901", *keyed).stdout
    assert re.search(r"scheduled\s+2\s+100\.00%\s+of queued", table), table
    listed = json.loads(cli(server, "campaigns", "list", *keyed, "--json").stdout)
    (entry,) = [c for c in listed["campaigns"] if c["camp_id"] == 901]
    assert (entry["scheduled"], entry["cancelled"]) == (2, 0)
    listing = cli(server, "campaigns", "list", *keyed).stdout
    assert re.search(r"scheduled.+cancelled", listing)
    assert re.search(r"901\s*│[^\n]*│\s*2\s*│\s*2\s*│\s*0\s*│\s*0\s*│\s*0\s*│", listing), listing

    cancelled = cli(server, "campaigns", "cancel", "901", *keyed).stdout
    assert re.search(r"901\s*│\s*2\s*│", cancelled), cancelled
    again = cli(server, "campaigns", "cancel", "901", *keyed, "--json").stdout
    assert json.loads(again) == {"camp_id": 901, "cancelled": 0}
    table = cli(server, "campaigns", "show", "901", *keyed).stdout
    assert re.search(r"scheduled\s+0\b", table) and re.search(r"failed\s+2\b", table)
    assert re.search(r"cancelled\s+2\s+100\.00%\s+of failed", table), table
    assert "Cancelled" in table  # the fail record
    (entry,) = [
        c
        for c in json.loads(cli(server, "campaigns", "list", *keyed, "--json").stdout)["campaigns"]
        if c["camp_id"] == 901
    ]
    assert (entry["scheduled"], entry["cancelled"], entry["failed"]) == (0, 2, 2)
    assert [j["state"] for j in campaign_jobs(server, partner, 901)] == ["failed", "failed"]
    assert all(control.deliveries(token=tokens[e]) == [] for e in emails[:2])


def test_cancelling_an_unknown_campaign_is_one_line(server: Server, partner: Partner) -> None:
    keyed = ["--url", server.base_url, "--api-key", partner.api_key]
    out = cli(server, "campaigns", "cancel", "987654", *keyed, check=False)
    assert out.returncode == 1, out
    assert out.stderr.strip().splitlines() == [
        "Error: 404 campaign_not_found: no campaign with camp_id 987654"
    ]
    assert out.stdout == ""
    unkeyed = cli(server, "campaigns", "cancel", "1", "--url", server.base_url, check=False)
    assert unkeyed.returncode == 2 and "API key" in unkeyed.stderr


def test_local_time_and_ignore_quiet_hours(
    server: Server, partner: Partner, control: Control, tmp_path: Path
) -> None:
    salt = f"q{os.urandom(3).hex()}"
    tokens = register(server, partner, tmp_path, salt)
    ios, android, huawei = tokens
    # The users have no zone of their own, nor the partner: their clock is UTC.
    now = datetime.datetime.now(datetime.UTC)
    later = now + datetime.timedelta(hours=2)
    sent_later(server, partner, f"--to=email:{ios}", f"--local-time={later:%H:%M}", "--camp-id=902")
    (job,) = campaign_jobs(server, partner, 902)
    assert job["due_at"] == later.replace(second=0, microsecond=0).timestamp()

    # Quiet hours from an hour ago to an hour ahead: a push now waits, unless told otherwise.
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(hours=1)
    quiet = f"--quiet-hours={start:%H:%M}-{end:%H:%M}"
    on_db = ["--data-dir", str(server.data_dir)]
    cli(server, "partners", "update", partner.name, quiet, *on_db)
    time.sleep(SETTINGS_DELAY)
    sent_later(server, partner, f"--to=email:{android}", "--camp-id=903")
    sent_later(server, partner, f"--to=email:{huawei}", "--camp-id=904", "--ignore-quiet-hours")
    (held,) = campaign_jobs(server, partner, 903)
    assert held["due_at"] == end.replace(second=0, microsecond=0).timestamp()
    control.wait_delivered([tokens[huawei]])
    assert control.deliveries(token=tokens[android]) == []
    cli(server, "partners", "update", partner.name, "--quiet-hours=off", *on_db)


def test_a_bad_when_is_one_line_and_sends_nothing(server: Server, partner: Partner) -> None:
    for args, says in (
        (["--at=tomorrow"], "Invalid value for --at: must be an RFC 3339 date-time"),
        (["--at=2026-12-24T18:00:00"], "it has no offset (add Z or ±HH:MM)"),
        (["--at=+31d"], "must be at most 30 days in the future"),
        (["--at=+10 min"], "is not +N followed by s, m, h or d"),
        (["--local-time=9:00"], "Invalid value for --local-time: '9:00' is not \"HH:MM\""),
        (["--at=+10m", "--local-time=09:00"], "--at and --local-time: choose one"),
    ):
        out = sent_later(server, partner, "--to=uuid:nobody", "--camp-id=905", *args, check=False)
        assert out.returncode == 2, (args, out)
        assert says in out.stderr, (args, out.stderr)
        assert out.stderr.count("Error:") == 1 and "Traceback" not in out.stderr
    assert campaign_jobs(server, partner, 905) == []
    r = server.client.get("/api/v1/campaigns/905/report", headers={"X-API-KEY": partner.api_key})
    assert r.status_code == 404


# ---- certs ----


def test_certs_add_and_list(server: Server, partner: Partner, tmp_path: Path) -> None:
    info = server.client.get("/emulator/v1/info").json()
    account = generate_fcm_service_account(
        InMemoryCredentials(), token_uri=info["fcm"]["token_url"]
    )
    (tmp_path / "sa.json").write_text(json.dumps(account))
    apns = generate_apns_credential(InMemoryCredentials(), bundle_id="com.example.app")
    (tmp_path / "AuthKey.p8").write_text(apns.private_key_pem)
    (tmp_path / "hms.json").write_text(json.dumps({"app_id": "1001", "client_id": "1001"}))
    key = ["--url", server.base_url, "--api-key", partner.api_key, "--json"]

    added = [
        cli(server, "certs", "add", "firebase", str(tmp_path / "sa.json"), *key),
        cli(
            server,
            "certs",
            "add",
            "apns",
            str(tmp_path / "AuthKey.p8"),
            "--key-id",
            apns.key_id,
            "--team-id",
            apns.team_id,
            "--bundle-id",
            "com.example.app",
            *key,
        ),
        cli(
            server,
            "certs",
            "add",
            "huawei",
            str(tmp_path / "hms.json"),
            "--client-secret",
            "s3cret",
            *key,
        ),
    ]
    assert [json.loads(a.stdout) for a in added] == [
        {"platform": p, "validated": True} for p in ("android", "ios", "huawei")
    ]
    bad = cli(server, "certs", "add", "apns", str(tmp_path / "hms.json"), *key, check=False)
    assert bad.returncode == 1 and "invalid_certificate" in bad.stderr

    listed = cli(
        server,
        "certs",
        "list",
        "--partner",
        partner.name,
        "--data-dir",
        str(server.data_dir),
        "--json",
    ).stdout
    found = {c["platform"]: c for c in map(json.loads, listed.splitlines())}
    assert found["android"]["validated"] and found["huawei"]["validated"]
    assert found["ios"]["validated"] is False  # the bad upload replaced the good one
    assert found["android"]["ref"] == f"fcm:{account['client_email']}:{account['private_key_id']}"
    assert {c["kind"] for c in found.values()} == {"uploaded"}
    assert account["private_key"] not in listed
    table = cli(
        server, "certs", "list", "--partner", partner.name, "--data-dir", str(server.data_dir)
    ).stdout
    assert partner.name in table and "uploaded" in table


def test_cli_needs_a_server_or_says_so(tmp_path: Path) -> None:
    out = cli(
        None, "campaigns", "list", "--url", "http://127.0.0.1:9", "--api-key", "k", check=False
    )
    assert out.returncode == 1 and "is `pushgate serve` running" in out.stderr


# ---- demo ----


def test_demo_runs_to_completion_and_cleans_up() -> None:
    started = time.monotonic()
    out = cli(None, "demo", timeout=90)
    took = time.monotonic() - started
    assert took < 60, took
    text = out.stdout
    assert "campaign report" in text and "done" in text
    for stage, expected in (("requested", 3), ("accepted", 3), ("delivered", 3), ("opened", 1)):
        assert re.search(rf"{stage}\s+│?\s*{expected}\b", text), (stage, text)
    data_dir = re.search(r"--data-dir (\S+)", text)
    assert data_dir and not Path(data_dir.group(1)).exists()
