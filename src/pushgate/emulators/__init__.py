"""Local emulators of APNs, FCM (HTTP v1) and HMS Push Kit, speaking the providers' protocols.

See `runner.Emulators` to run all three, `control.ControlApp` for the control routes, and
`credentials` for the `CredentialDirectory` the emulators verify credentials with.
"""

from pushgate.emulators.ca import LocalCA
from pushgate.emulators.control import ControlApp
from pushgate.emulators.credentials import (
    ApnsCertificate,
    ApnsCredential,
    ApnsKey,
    ApnsPushCertificate,
    CombinedCredentials,
    CredentialDirectory,
    FcmAccount,
    HmsApp,
    HmsCredential,
    InMemoryCredentials,
)
from pushgate.emulators.runner import Emulators
from pushgate.emulators.state import Delivery, EmulatorState, Fault, TokenOutcome

__all__ = [
    "ApnsCertificate",
    "ApnsCredential",
    "ApnsKey",
    "ApnsPushCertificate",
    "CombinedCredentials",
    "ControlApp",
    "CredentialDirectory",
    "Delivery",
    "EmulatorState",
    "Emulators",
    "Fault",
    "FcmAccount",
    "HmsApp",
    "HmsCredential",
    "InMemoryCredentials",
    "LocalCA",
    "TokenOutcome",
]
