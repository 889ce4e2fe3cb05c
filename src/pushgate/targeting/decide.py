"""Who gets each notification, and the answer the caller sees (pure).

The store resolves identifiers to profiles and their devices; these functions
decide, per matched user, between a send to one device and an exclusion
reason, then turn the outcome (after the store applied the frequency cap) into
the documented response body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from pushgate.targeting import timing
from pushgate.targeting.push import Identifier, Push
from pushgate.wire.push import TargetedPushResponse

NO_USER_FOUND = "NoUserFound"
OPT_OUT = "OptOut"
UNREGISTERED = "Unregistered"
USER_GLOBALLY_CAPPED = "UserGloballyCapped"
INVALID_CERTIFICATE = "InvalidCertificate"
DEVICE_TOKEN = "INSIDER.device_token"


class DeviceView(msgspec.Struct, frozen=True):
    id: int
    platform: str  # ios | android | huawei
    token: str
    environment: str
    push_optin: bool
    live: bool  # the token has not been reported dead by its provider
    last_active_at: float
    attributes: Mapping[str, Any] = msgspec.field(default_factory=dict)


class ProfileView(msgspec.Struct, frozen=True):
    id: int
    insider_id: str
    last_active_at: float
    attributes: Mapping[str, Any]
    devices: Sequence[DeviceView]


class Outcome(msgspec.Struct, frozen=True):
    """One matched (or unmatched) user of one notification."""

    push: Push
    profile: ProfileView | None
    device: DeviceView | None  # set when the user is to be sent to
    reason: str | None  # set when the user is excluded

    @property
    def wants_cap(self) -> bool:
        return self.device is not None and self.push.gfc_enabled


def matched_profiles(
    push: Push, matches: Mapping[Identifier, Sequence[int]], profiles: Mapping[int, ProfileView]
) -> list[ProfileView]:
    """Profiles any identifier of the notification points to, in identifier order."""
    seen: dict[int, ProfileView] = {}
    for ident in push.identifiers:
        for profile_id in matches.get(ident, ()):
            profile = profiles.get(profile_id)
            if profile is not None:
                seen.setdefault(profile_id, profile)
    found = list(seen.values())
    if push.send_single_user and len(found) > 1:
        return [max(found, key=lambda p: (p.last_active_at, p.id))]
    return found


def choose_device(profile: ProfileView) -> DeviceView | str:
    """The most recently active device that is opted in and registered, or why none is."""
    opted_in = [d for d in profile.devices if d.push_optin]
    if profile.devices and not opted_in:
        return OPT_OUT
    live = [d for d in opted_in if d.live and d.token]
    if not live:
        return UNREGISTERED
    return max(live, key=lambda d: (d.last_active_at, d.id))


def plan(
    pushes: Sequence[Push],
    matches: Mapping[Identifier, Sequence[int]],
    profiles: Mapping[int, ProfileView],
    validated_platforms: frozenset[str],
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for push in pushes:
        users = matched_profiles(push, matches, profiles)
        if not users:
            outcomes.append(Outcome(push, None, None, NO_USER_FOUND))
            continue
        for profile in users:
            choice = choose_device(profile)
            if isinstance(choice, str):
                outcomes.append(Outcome(push, profile, None, choice))
            elif choice.platform not in validated_platforms:
                outcomes.append(Outcome(push, profile, None, INVALID_CERTIFICATE))
            else:
                outcomes.append(Outcome(push, profile, choice, None))
    return outcomes


def apply_cap(outcomes: Sequence[Outcome], capped: Iterable[int]) -> list[Outcome]:
    """Turn the sends the store found at the frequency cap into exclusions."""
    capped_set = set(capped)
    return [
        Outcome(o.push, o.profile, None, USER_GLOBALLY_CAPPED) if i in capped_set else o
        for i, o in enumerate(outcomes)
    ]


def due_at(
    o: Outcome, now: float, partner_zone: str | None, quiet: tuple[int, int] | None
) -> float:
    """When a send becomes due (contract.md): now, at its `send_at`, or at the user's next
    `local_time`, and then past the partner's quiet hours, both on the user's own clock."""
    push = o.push
    window = None if push.ignore_quiet_hours else quiet
    if push.send_at is None and push.local_time is None and window is None:
        return now
    device, profile = o.device, o.profile
    assert device is not None and profile is not None

    def zone() -> ZoneInfo:
        return timing.user_zone(device.attributes, profile.attributes, partner_zone)

    return timing.due_time(now, push.send_at, push.local_time, window, zone)


def report(
    profile: ProfileView, device: DeviceView, attributes: Sequence[str] | None
) -> dict[str, Any]:
    if attributes is None:
        return {DEVICE_TOKEN: device.token}
    known: dict[str, Any] = {**profile.attributes, **device.attributes}
    known["INSIDER.insider_id"] = profile.insider_id
    known[DEVICE_TOKEN] = device.token
    return {name: known.get(name) for name in attributes}


def answer(
    outcomes: Sequence[Outcome], report_attributes: Sequence[str] | None
) -> TargetedPushResponse:
    successes: list[dict[str, Any]] = []
    errors: dict[str, list[dict[str, Any]]] = {}
    optin_count: int | None = None
    for o in outcomes:
        if o.push.check_optin and optin_count is None:
            optin_count = 0
        if o.device is not None and o.profile is not None:
            successes.append(report(o.profile, o.device, report_attributes))
            if o.push.check_optin:
                optin_count = (optin_count or 0) + 1
        elif o.reason is not None:
            errors.setdefault(o.reason, []).append(o.push.identifiers_sent)
    # None (no notification asked for opt-in) leaves `optin_delivery_count` out of the body.
    return TargetedPushResponse(
        successes=successes, errors=errors, optin_delivery_count=optin_count
    )
