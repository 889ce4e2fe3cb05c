"""Errors raised by the pure provider parts before anything goes on the wire."""

from __future__ import annotations


class CredentialError(ValueError):
    """An uploaded credential cannot be used (bad PEM, wrong key type, missing field...).

    The message says what is wrong and is safe to show to the partner: it never contains
    key material.
    """


class InvalidRequest(ValueError):
    """A push that the provider would refuse, caught before sending.

    `reason` is the provider's own name for the refusal (for APNs: `BadDeviceToken`,
    `PayloadTooLarge`, `BadPriority`...), so that a locally caught error is recorded
    exactly like the provider's answer would have been.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
