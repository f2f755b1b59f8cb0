"""What a decrypted WeCom callback becomes in the inbox: its kind and priority.

Welcome codes go first (they live 20 seconds), then 微信客服 events, then everything else.
"""

from __future__ import annotations

from copilot.knowledge.inspection import CONTACT_EVENTS
from copilot.webhooks.inbox import NewEvent
from copilot.wecom.protocol.messages import WeComEvent

__all__ = ["classify", "inbox_event"]


def classify(event: WeComEvent) -> tuple[str, int]:
    """The inbox kind and priority of a decrypted event."""
    if event.event == "change_external_contact" and event.change_type == "add_external_contact":
        return "add_external_contact", 0
    if event.event == "change_external_contact" and event.change_type in CONTACT_EVENTS:
        return event.change_type, 2  # kept for inspection: a staff member deleting a customer
    if event.event == "kf_msg_or_event":
        return "kf_msg_or_event", 1
    return (event.event or event.msg_type or "unknown"), 2


def inbox_event(tenant: str, event: WeComEvent) -> NewEvent:
    """The inbox row for `event`, keyed by WeCom's dedupe key so a retried callback stores nothing new."""
    kind, priority = classify(event)
    return NewEvent(tenant, "wecom", event.dedupe_key, kind, event.raw, priority)
