"""Storage: the engine (SQLite or PostgreSQL through SQLAlchemy), every SQL table, the one path that
creates the schema, and the repository that reads library and conversation rows as domain objects.

Must not import the workflows that use it; tables carry `tenant_id` and UTC times.
"""
