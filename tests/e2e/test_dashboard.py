"""The campaigns dashboard in a real browser (Chromium driven by Playwright) against the real
`pushgate serve --emulate`: sign-in with the API key, the campaign list, one campaign's report,
sign-out.

Sources: docs/statistics.md (the report's JSON, which the page must show unchanged), the dashboard
endpoints (`/dashboard`, `/dashboard/session`, `/dashboard/api/...`), contract.md ("Emulators":
`POST /emulator/v1/tokens`).

The scenario (module fixture `campaign`): one campaign to seven users: accepted on iOS, two
Android and Huawei; one iOS user opted out (`OptOut`); one iOS token the APNs emulator answers
`Unregistered` (a failure); one uuid without a profile (`NoUserFound`). After the sends settle,
the iOS user's app reports `push_delivered` and `push_session`, the Android and Huawei users'
apps `push_delivered`: 3 delivered, 1 opened, so every funnel number and both rates differ.

Chromium: Debian's `/usr/bin/chromium` (`scripts/test` installs it through `scripts/prepare`);
Playwright only drives it (`playwright install` is never needed).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.emulated import Control, device_token, notification
from tests.support.server import Partner, Server
from tests.support.stats_api import event, list_campaigns, report_json, send_events

try:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
except ImportError:  # checked below: skipped only when the browser is missing too
    HAVE_PLAYWRIGHT = False
else:
    HAVE_PLAYWRIGHT = True

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Without either there is no browser test to run here; with only one of the two the
# environment is half set up, which must fail loudly rather than skip.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not HAVE_PLAYWRIGHT,
    reason="needs Chromium at /usr/bin/chromium (apt-get install chromium) and the Python "
    "package playwright (pip install playwright==1.65.2)",
)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-output" / "dashboard"
CAMP_ID = 4711
LATER_CAMP_ID = 4712  # one push scheduled an hour ahead, then cancelled
FUNNEL = (
    "requested",
    "resolved",
    "queued",
    "scheduled",
    "accepted",
    "failed",
    "cancelled",
    "expired",
    "pending",
    "delivered",
    "opened",
)
FUNNEL_CHART = ("requested", "resolved", "queued", "accepted", "delivered", "opened")
PLATFORMS = ("ios", "android", "huawei")
PLATFORM_FIELDS = ("queued", "accepted", "failed", "expired")
LIST_COLUMNS = (
    "requested",
    "queued",
    "scheduled",
    "accepted",
    "failed",
    "cancelled",
    "delivered",
    "opened",
)
TIMEOUT_MS = 15_000
# A wrong key gets a 401 from POST /dashboard/session, which Chromium logs as "Failed to load
# resource" (the browser reporting a status, not a page error). Only the wrong-key test expects
# it; any other console error or warning fails a test.
EXPECTED_401 = re.compile(r"^Failed to load resource: the server responded with a status of 401\b")


# ---- the campaign ----


@dataclass
class Campaign:
    partner: Partner
    name: str
    report: dict[str, Any]  # GET /api/v1/campaigns/{id}/report once everything has settled
    listed: dict[str, Any]  # its entry in GET /api/v1/campaigns


@pytest.fixture(scope="module")
def campaign(server: Server, control: Control) -> Campaign:
    partner = server.create_partner()
    name = f"Dashboard e2e {os.urandom(3).hex()}"
    users: dict[str, tuple[str, str]] = {}  # name -> (uuid, insider_id)

    def register(user: str, platform: str, **device: Any) -> str:
        token = device_token(platform)
        uuid = f"dash-{user}-{token[-8:]}"
        users[user] = (uuid, partner.session({"uuid": uuid}, platform, token, **device))
        return token

    for user, platform in [
        ("ios", "ios"),
        ("and1", "android"),
        ("and2", "android"),
        ("hw", "huawei"),
    ]:
        register(user, platform)
    register("optout", "ios", push_optin=False)
    control.token_outcome("ios", register("unreg", "ios"), "Unregistered")
    nobody = f"dash-nobody-{os.urandom(4).hex()}"

    uuids = [uuid for uuid, _ in users.values()] + [nobody]
    content = {"camp_name": name, "title": "Dashboard title", "message": "Dashboard message"}
    r = partner.push({"notifications": [notification(u, CAMP_ID, **content) for u in uuids]})
    assert r.status_code == 200, r.text
    assert set(r.json()["errors"]) == {"OptOut", "NoUserFound"}, r.text

    wait_report(partner, lambda rep: rep["funnel"]["pending"] == 0, "nothing pending")
    for user, names in [
        ("ios", ["push_delivered", "push_session"]),
        ("and1", ["push_delivered"]),
        ("hw", ["push_delivered"]),
    ]:
        answer = send_events(partner, users[user][1], [event(n, CAMP_ID) for n in names])
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(names), answer.text
    report = wait_report(partner, lambda rep: rep["funnel"]["opened"] == 1, "the open counted")

    # The scenario must reach the page with every kind of number, or the comparisons below
    # would prove little; the numbers themselves are test_campaign_stats.py's business.
    funnel = report["funnel"]
    assert funnel["requested"] == 7 and funnel["failed"] == 1, report
    assert (funnel["delivered"], funnel["opened"]) == (3, 1), report
    assert set(funnel["excluded"]) == {"OptOut", "NoUserFound"}, report
    assert [f["name"] for f in report["fail_records"]] == ["Unregistered"], report

    r = list_campaigns(partner)
    assert r.status_code == 200, r.text
    (listed,) = [c for c in r.json()["campaigns"] if c["camp_id"] == CAMP_ID]
    return Campaign(partner, name, report, listed)


def wait_report(
    partner: Partner, done: Callable[[dict[str, Any]], bool], what: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll the campaign's report (the API, with the key) until `done(report)`."""
    deadline = time.monotonic() + timeout
    while True:
        report = report_json(partner, CAMP_ID)
        if done(report):
            return report
        if time.monotonic() >= deadline:
            pytest.fail(f"campaign {CAMP_ID}: {what} not reached in {timeout} s: {report}")
        time.sleep(0.1)


# ---- the browser ----


@dataclass
class Tab:
    """A fresh browser context and page, with what the page logged and every URL it used."""

    page: Page
    context: BrowserContext
    base_url: str
    problems: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    expect_rejected_key: bool = False

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type not in ("error", "warning"):
            return
        url = message.location.get("url", "")
        if (
            self.expect_rejected_key
            and EXPECTED_401.match(message.text)
            and url == f"{self.base_url}/dashboard/session"
        ):
            return
        self.problems.append(f"console {message.type}: {message.text} ({url})")

    def open(self, path: str = "/dashboard") -> None:
        self.page.goto(self.base_url + path)

    def sign_in(self, api_key: str) -> None:
        self.page.get_by_test_id("api-key-input").fill(api_key)
        self.page.get_by_test_id("signin-button").click()

    def session_cookie(self) -> dict[str, Any]:
        (cookie,) = self.context.cookies(f"{self.base_url}/dashboard")
        return dict(cookie)

    def text(self, testid: str) -> str:
        return self.page.get_by_test_id(testid).inner_text().strip()

    def number(self, testid: str) -> int:
        return int(self.text(testid).replace(",", ""))

    def screenshot(self, tmp_path: Path, name: str) -> Path:
        shot = tmp_path / f"{name}.png"
        self.page.screenshot(path=str(shot), full_page=True)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / shot.name)
        return shot

    def assert_clean(self, secret: str) -> None:
        assert self.problems == []
        leaked = [u for u in self.urls if secret in u]
        assert leaked == [], "the API key appeared in a URL"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not HAVE_PLAYWRIGHT:
        pytest.fail("Chromium is installed but not playwright: pip install playwright==1.65.2")
    if not CHROMIUM.exists():
        pytest.fail("playwright is installed but not Chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser: Browser, server: Server) -> Iterator[Tab]:
    # Reduced motion: the page then draws its charts without animation, so screenshots show
    # them finished.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page, context, server.base_url)
    page.on("console", tab.on_console)
    page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    page.on("request", lambda request: tab.urls.append(request.url))
    page.on("framenavigated", lambda frame: tab.urls.append(frame.url))
    yield tab
    context.close()


# ---- tests ----


def test_wrong_api_key_shows_an_error_and_starts_no_session(tab: Tab, campaign: Campaign) -> None:
    tab.expect_rejected_key = True
    tab.open()
    form = tab.page.get_by_test_id("signin-form")
    form.wait_for()

    tab.sign_in("not-" + campaign.partner.api_key)

    error = tab.page.get_by_test_id("signin-error")
    error.wait_for()
    assert error.inner_text().strip()
    assert form.is_visible()
    assert not tab.page.get_by_test_id("partner-name").is_visible()
    assert tab.context.cookies() == []
    tab.assert_clean(campaign.partner.api_key)


def test_campaign_page_shows_the_numbers_of_the_report_api(
    tab: Tab, campaign: Campaign, tmp_path: Path
) -> None:
    partner, report = campaign.partner, campaign.report
    tab.open()
    tab.sign_in(partner.api_key)
    tab.page.get_by_test_id("partner-name").filter(has_text=partner.name).wait_for()

    # The session is a cookie the page's scripts cannot read.
    cookie = tab.session_cookie()
    assert cookie["httpOnly"] is True, cookie
    assert cookie["sameSite"] == "Strict", cookie
    assert tab.page.evaluate("document.cookie") == ""

    # The list, narrowed by the search box to this campaign, shows the list API's numbers.
    tab.page.get_by_test_id("search").fill(campaign.name)
    row = tab.page.get_by_test_id(f"campaign-row-{CAMP_ID}")
    row.wait_for()
    assert tab.page.locator("[data-testid^=campaign-row-]").count() == 1
    cells = {k: row.locator(f"td[data-col={k}]").inner_text() for k in LIST_COLUMNS}
    assert {k: int(v) for k, v in cells.items()} == {k: campaign.listed[k] for k in LIST_COLUMNS}
    open_rate = row.locator("td[data-col=open_rate]").inner_text()
    assert open_rate == f"{campaign.listed['open_rate']:.2f}%"
    tab.screenshot(tmp_path, "campaigns")

    row.click()
    tab.page.wait_for_url(re.compile(rf"#/campaigns/{CAMP_ID}$"))
    for chart in ("chart-funnel", "chart-series", "chart-platforms"):
        tab.page.locator(f"canvas[data-testid={chart}][data-rendered=true]").wait_for()

    assert tab.text("campaign-name") == campaign.name
    assert {n: tab.number(f"funnel-{n}") for n in FUNNEL} == {
        n: report["funnel"][n] for n in FUNNEL
    }
    excluded = report["funnel"]["excluded"]
    assert {reason: tab.number(f"excluded-{reason}") for reason in excluded} == excluded
    assert tab.text("rate-delivery") == f"{report['rates']['delivery_rate']:.2f}%"
    assert tab.text("rate-open") == f"{report['rates']['open_rate']:.2f}%"
    assert {f["name"]: tab.number(f"fail-{f['name']}") for f in report["fail_records"]} == {
        f["name"]: f["count"] for f in report["fail_records"]
    }
    shown = {(p, f): tab.number(f"platform-{p}-{f}") for p in PLATFORMS for f in PLATFORM_FIELDS}
    assert shown == {(p, f): report["platforms"][p][f] for p in PLATFORMS for f in PLATFORM_FIELDS}

    # The charts draw the same numbers (read back from Chart.js, the page's only chart library).
    assert chart_data(tab.page, "chart-funnel") == [report["funnel"][n] for n in FUNNEL_CHART]
    assert chart_data(tab.page, "chart-platforms") == [
        report["platforms"][p]["queued"] for p in PLATFORMS
    ]

    shot = tab.screenshot(tmp_path, "campaign")
    assert shot.stat().st_size > 0
    tab.assert_clean(partner.api_key)


def test_signing_out_brings_back_the_sign_in_form_and_ends_the_session(
    tab: Tab, campaign: Campaign
) -> None:
    tab.open()
    tab.sign_in(campaign.partner.api_key)
    tab.page.get_by_test_id("campaigns-table").wait_for()
    cookie = tab.session_cookie()

    tab.page.get_by_test_id("signout").click()

    tab.page.get_by_test_id("signin-form").wait_for()
    assert not tab.page.get_by_test_id("partner-name").is_visible()
    assert tab.context.cookies() == []
    # The server forgot the session: the old cookie, replayed, is no longer signed in.
    replayed = httpx.get(
        f"{tab.base_url}/dashboard/session", cookies={cookie["name"]: cookie["value"]}
    )
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"partner": None}
    tab.open()
    tab.page.get_by_test_id("signin-form").wait_for()
    tab.assert_clean(campaign.partner.api_key)


def chart_data(page: Page, testid: str) -> list[Any]:
    """The first dataset of the Chart.js chart drawn on the canvas with this test id."""
    return list(
        page.evaluate(
            '(id) => Chart.getChart(document.querySelector(`canvas[data-testid="${id}"]`))'
            ".data.datasets[0].data",
            testid,
        )
    )


def test_the_campaigns_page_shows_the_webhook_and_its_last_error(
    tab: Tab, campaign: Campaign
) -> None:
    partner = campaign.partner
    headers = {"X-API-KEY": partner.api_key}
    client = partner.server.client
    client.delete("/api/v1/webhook", headers=headers)
    tab.open()
    tab.sign_in(partner.api_key)
    state = tab.page.get_by_test_id("webhook-state")
    state.wait_for()
    assert "No webhook" in state.inner_text()

    url = "https://8.8.8.8/pushgate-hook"
    assert client.put("/api/v1/webhook", json={"url": url}, headers=headers).status_code == 200
    tab.page.get_by_test_id("refresh").click()
    tab.page.get_by_test_id("webhook-url").wait_for()
    assert tab.text("webhook-url") == url
    assert tab.text("webhook-state") == "Enabled"
    assert tab.text("webhook-error") == "No error."
    client.delete("/api/v1/webhook", headers=headers)
    tab.assert_clean(partner.api_key)


def test_a_scheduled_push_shows_as_scheduled_and_after_a_cancel_as_cancelled(
    tab: Tab, server: Server, tmp_path: Path
) -> None:
    partner = server.create_partner()  # its own: the other tests' lists stay as they are
    name = f"Dashboard later {os.urandom(3).hex()}"
    token = device_token("ios")
    uuid = f"dash-later-{token[-8:]}"
    partner.session({"uuid": uuid}, "ios", token)
    later = notification(uuid, LATER_CAMP_ID, camp_name=name, send_at=int(time.time()) + 3600)
    r = partner.push({"notifications": [later]})
    assert r.status_code == 200 and r.json()["successes"], r.text

    tab.open()
    tab.sign_in(partner.api_key)
    row = tab.page.get_by_test_id(f"campaign-row-{LATER_CAMP_ID}")
    row.wait_for()
    cells = {k: int(row.locator(f"td[data-col={k}]").inner_text()) for k in LIST_COLUMNS}
    assert cells == {k: int(k in ("requested", "queued", "scheduled")) for k in LIST_COLUMNS}
    # Every column of the list fits the 1280 px page, without scrolling sideways.
    wrap = tab.page.get_by_test_id("campaigns-table").locator("xpath=..")
    assert wrap.evaluate("(el) => el.scrollWidth <= el.clientWidth")
    row.click()
    tab.page.wait_for_url(re.compile(rf"#/campaigns/{LATER_CAMP_ID}$"))
    tab.page.get_by_test_id("funnel-numbers").wait_for()
    assert {n: tab.number(f"funnel-{n}") for n in ("queued", "scheduled", "pending")} == {
        "queued": 1,
        "scheduled": 1,
        "pending": 1,
    }
    assert tab.number("funnel-cancelled") == 0
    assert "1 scheduled for later" in tab.text("pending-notice")
    tab.screenshot(tmp_path, "campaign-scheduled")

    headers = {"X-API-KEY": partner.api_key}
    r = server.client.post(f"/api/v1/campaigns/{LATER_CAMP_ID}/cancel", headers=headers)
    assert r.json() == {"camp_id": LATER_CAMP_ID, "cancelled": 1}, r.text
    tab.page.reload()
    tab.page.get_by_test_id("funnel-numbers").wait_for()
    shown = {n: tab.number(f"funnel-{n}") for n in ("scheduled", "failed", "cancelled", "pending")}
    assert shown == {"scheduled": 0, "failed": 1, "cancelled": 1, "pending": 0}
    assert tab.number("fail-Cancelled") == 1
    assert not tab.page.get_by_test_id("pending-notice").is_visible()

    tab.page.get_by_test_id("back").click()
    row.wait_for()
    assert row.locator("td[data-col=scheduled]").inner_text() == "0"
    assert row.locator("td[data-col=cancelled]").inner_text() == "1"
    assert row.locator("td[data-col=failed]").inner_text() == "1"
    tab.assert_clean(partner.api_key)
