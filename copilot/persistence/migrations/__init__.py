"""Alembic migrations of the main database (SQLite or PostgreSQL): `copilot db upgrade` applies them.

Every change to a table in `copilot.persistence.tables` needs a revision of its own on top of the current
head (`copilot db revision -m "…"` writes one from the difference); see the README's "Schema migrations".
"""
