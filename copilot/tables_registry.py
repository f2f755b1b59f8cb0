"""Imports every module that defines SQL tables, so `create_schema` creates them all."""

from __future__ import annotations

import importlib

__all__ = ["TABLE_MODULES", "load_all"]

# Modules beside models.py that own tables of their own feature.
TABLE_MODULES: tuple[str, ...] = (
    "copilot.models",
    "copilot.feedback",
    "copilot.compliance.frequency",
    "copilot.revisits.store",
    "copilot.inbox",
    "copilot.spool",
    "copilot.approvals",
    "copilot.wecom.tables",
)


def load_all() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)
