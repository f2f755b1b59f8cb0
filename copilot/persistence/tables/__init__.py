"""Every SQL table of the copilot, one module per concern; importing this package registers them all on
`SQLModel.metadata`, which is what `copilot.persistence.schema` creates.

Every table carries `tenant_id`; times are UTC (SQLite hands them back naive: read them with
`copilot.clock.as_utc`).
"""

from copilot.persistence.tables.approvals import ApprovalItem, AuditLog, StaffNotification
from copilot.persistence.tables.backoffice import (
    ChatDaily,
    ChatTurn,
    ContactEvent,
    InspectionHit,
    InspectionQueue,
    StaffDaily,
    StaffSuggestionsDaily,
    StatsDirty,
    SuggestionMark,
)
from copilot.persistence.tables.compliance import CustomerWindow, FrequencySlot
from copilot.persistence.tables.conversations import (
    CandidateRow,
    Conversation,
    FlagRow,
    MessageRow,
    SidebarFeedback,
    SuggestionRow,
)
from copilot.persistence.tables.identity import ApiKeyRow, LoginState
from copilot.persistence.tables.library import (
    ContentRow,
    CustomerRow,
    LibraryDoc,
    LibraryVersion,
    ScriptRow,
    StaffRow,
    Tenant,
)
from copilot.persistence.tables.revisits import RevisitItem
from copilot.persistence.tables.sends import SendRow
from copilot.persistence.tables.webhooks import (
    InboxEvent,
    OutboxMessage,
    SpoolCursor,
    SpooledEvent,
    WebhookSecret,
)
from copilot.persistence.tables.wecom import (
    AutomationState,
    AutoReplyPolicyRow,
    KfCursor,
    WeComApp,
    WeComCredential,
)

__all__ = [
    "ApiKeyRow", "ApprovalItem", "AuditLog", "AutoReplyPolicyRow", "AutomationState", "CandidateRow", "ChatDaily",
    "ChatTurn", "ContactEvent", "ContentRow", "Conversation", "CustomerRow", "CustomerWindow", "FlagRow",
    "FrequencySlot", "InboxEvent", "InspectionHit", "InspectionQueue", "KfCursor", "LibraryDoc", "LibraryVersion",
    "LoginState", "MessageRow",
    "OutboxMessage", "RevisitItem", "ScriptRow", "SendRow", "SidebarFeedback", "SpoolCursor", "SpooledEvent",
    "StaffDaily", "StaffNotification", "StaffRow", "StaffSuggestionsDaily", "StatsDirty", "SuggestionMark",
    "SuggestionRow", "Tenant", "WeComApp", "WeComCredential",
    "WebhookSecret",
]
