"""Webhook plumbing independent of WeCom's protocol: the durable inbox (dedupe, leases), the outbox
(idempotency keys) and the SQLite callback spool with its group-commit writer.

Must not interpret events (that is `copilot.wecom.automation`) or call WeCom.
"""
