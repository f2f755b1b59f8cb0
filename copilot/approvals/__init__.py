"""Human approval of risky text (items, decisions, expiry, the append-only audit log) and what staff
did with each suggested reply (feedback).

Decisions are conditional updates, so the first decision wins. Must not send anything: releasing an
approved outbox row is all it does; sending is the WeCom sender's job.
"""
