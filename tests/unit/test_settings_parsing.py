"""Settings are read from the environment once, in config.py, by one rule per kind: every
switch takes the same words, every choice is checked, and a mistake is one ConfigError naming
the variable (issue 16: `PUSHGATE_EMULATE=yes` once worked for `serve` and not for `partners
create`)."""

from __future__ import annotations

import pytest

from pushgate import config
from pushgate.config import ConfigError, Settings

SWITCHES = {
    "EMULATE": "emulate",
    "CAMPAIGN_STATS": "campaign_stats",
    "ACCESS_LOG": "access_log",
    "EMULATOR_PROCESS": "emulator_process",
}
CHOICES = {
    "ROLE": ("role", "Worker", "worker"),
    "LOG_LEVEL": ("log_level", "DEBUG", "debug"),
    "LOG_FORMAT": ("log_format", "Text", "text"),
    "SQLITE_SYNCHRONOUS": ("sqlite_synchronous", "full", "FULL"),
}
PROVIDER_HOSTS = ("APNS_URL", "APNS_SANDBOX_URL", "FCM_URL", "HMS_URL", "HMS_TOKEN_URL")


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    names = [*SWITCHES, *CHOICES, *PROVIDER_HOSTS, "FCM_TOKEN_URL", "PROVIDER_CA_FILE"]
    for name in names:
        monkeypatch.delenv(config.ENV_PREFIX + name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[(word, True) for word in ("1", "true", "Yes", "ON")],
        *[(word, False) for word in ("0", "false", "no", "Off")],
    ],
)
def test_every_switch_takes_the_same_words(
    clean: pytest.MonkeyPatch, name: str, raw: str, value: bool
) -> None:
    clean.setenv(config.ENV_PREFIX + name, raw)
    assert getattr(Settings.load(), SWITCHES[name]) is value


@pytest.mark.parametrize("name", SWITCHES)
def test_a_switch_left_blank_keeps_its_default(clean: pytest.MonkeyPatch, name: str) -> None:
    default = getattr(Settings.load(), SWITCHES[name])
    clean.setenv(config.ENV_PREFIX + name, " ")
    assert getattr(Settings.load(), SWITCHES[name]) is default


@pytest.mark.parametrize("name", SWITCHES)
def test_a_switch_that_is_neither_on_nor_off_is_a_mistake(
    clean: pytest.MonkeyPatch, name: str
) -> None:
    clean.setenv(config.ENV_PREFIX + name, "maybe")
    with pytest.raises(ConfigError, match=f"^PUSHGATE_{name} must be on or off, not 'maybe'$"):
        Settings.load()


@pytest.mark.parametrize("name", CHOICES)
def test_a_choice_is_read_in_any_case(clean: pytest.MonkeyPatch, name: str) -> None:
    field, raw, value = CHOICES[name]
    clean.setenv(config.ENV_PREFIX + name, raw)
    assert getattr(Settings.load(), field) == value


@pytest.mark.parametrize("name", CHOICES)
def test_a_choice_outside_its_list_is_a_mistake_that_lists_them(
    clean: pytest.MonkeyPatch, name: str
) -> None:
    clean.setenv(config.ENV_PREFIX + name, "bogus")
    with pytest.raises(ConfigError, match=f"^PUSHGATE_{name} must be one of .+, not 'bogus'$"):
        Settings.load()


def test_provider_hosts_are_only_those_given(clean: pytest.MonkeyPatch) -> None:
    assert Settings.load().provider_urls() == {}
    clean.setenv("PUSHGATE_FCM_URL", "http://127.0.0.1:9/")
    clean.setenv("PUSHGATE_HMS_TOKEN_URL", " ")
    assert Settings.load().provider_urls() == {"fcm_url": "http://127.0.0.1:9/"}


def test_flags_win_over_the_environment(clean: pytest.MonkeyPatch) -> None:
    clean.setenv("PUSHGATE_EMULATE", "off")
    assert Settings.load(emulate=True).emulate is True
