"""The brand library: its schema (persona, staff, scripts, content, customer profiles), the loader that
validates files with file:line errors, and ingest, which loads only what changed.

The only package that reads library files. Must not draft or score anything.
"""
