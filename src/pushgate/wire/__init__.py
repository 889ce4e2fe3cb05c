"""The JSON shapes of every public endpoint, as msgspec Structs: one schema for the server and
for `pushgate.client`.

Requests the server already decodes with msgspec are not redefined: the Targeted Push API's
`TargetedPushRequest` and `Notification` are `pushgate.targeting.schema`'s, re-exported here. The
other shapes (the answers, and the requests the server validates field by field) are defined
once in this package: the server builds every answer as one of these Structs and encodes it,
its OpenAPI document (api/openapi.py) is generated from them, and the client decodes every
answer with them. Field order is the order of the keys on the wire.

Optional request fields default to None and are left out of the encoded body
(`omit_defaults`), so a Struct encodes to the minimal body the documentation shows.
"""

from pushgate.wire.certificates import (
    ApnsCertificate,
    ApnsTokenKey,
    CertificateResult,
    FirebaseServiceAccount,
    HuaweiCredential,
)
from pushgate.wire.errors import ErrorBody
from pushgate.wire.health import HealthStatus, ReadyStatus
from pushgate.wire.push import (
    AdvancedPushItem,
    AdvancedPushPayload,
    AndroidOptions,
    AsyncAccepted,
    IosOptions,
    Notification,
    TargetedPushRequest,
    TargetedPushResponse,
)
from pushgate.wire.sdk import (
    Device,
    EventsRequest,
    EventsResult,
    PushEvent,
    SessionRequest,
    SessionResult,
)
from pushgate.wire.stats import (
    CampaignCancelled,
    CampaignPage,
    CampaignReport,
    CampaignSummary,
    FailRecord,
    FunnelCounts,
    MessageCenterEntry,
    MessageCenterQuery,
    PlatformCounts,
    Rates,
    SeriesPoint,
    Statistics,
    StatisticsCampaign,
    StatisticsRequest,
)
from pushgate.wire.users import (
    Deleted,
    Profile,
    ProfileQuery,
    UpsertCount,
    UpsertData,
    UpsertFailures,
    UpsertRequest,
    UpsertResult,
    UserEvent,
    UserRecord,
)

__all__ = [
    "AdvancedPushItem",
    "AdvancedPushPayload",
    "AndroidOptions",
    "ApnsCertificate",
    "ApnsTokenKey",
    "AsyncAccepted",
    "CampaignCancelled",
    "CampaignPage",
    "CampaignReport",
    "CampaignSummary",
    "CertificateResult",
    "Deleted",
    "Device",
    "ErrorBody",
    "EventsRequest",
    "EventsResult",
    "FailRecord",
    "FirebaseServiceAccount",
    "FunnelCounts",
    "HealthStatus",
    "HuaweiCredential",
    "IosOptions",
    "MessageCenterEntry",
    "MessageCenterQuery",
    "Notification",
    "PlatformCounts",
    "Profile",
    "ProfileQuery",
    "PushEvent",
    "Rates",
    "ReadyStatus",
    "SeriesPoint",
    "SessionRequest",
    "SessionResult",
    "Statistics",
    "StatisticsCampaign",
    "StatisticsRequest",
    "TargetedPushRequest",
    "TargetedPushResponse",
    "UpsertCount",
    "UpsertData",
    "UpsertFailures",
    "UpsertRequest",
    "UpsertResult",
    "UserEvent",
    "UserRecord",
]
