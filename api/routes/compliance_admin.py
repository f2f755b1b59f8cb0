"""Compliance administration: re-read the caller tenant's compliance settings and rule files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import AdminDep, CopilotDep

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["compliance"])


@router.post("/compliance/reload")
async def reload_compliance(copilot: CopilotDep, caller: AdminDep) -> dict[str, Any]:
    """Apply an edited `compliance.yaml` (or rule pack) now; a broken file answers 422 and changes nothing."""
    registry = copilot.tenant_compliance
    checker = await run_in_threadpool(registry.reload, caller.tenant)
    config = registry.config(caller.tenant)
    return {
        "tenant": caller.tenant,
        "source": "tenant" if config is not None else "default",
        "rules_version": checker.version,
        "rules": len(checker.rules),
        "packs": list(config.packs) if config is not None else None,
        "proactive_daily_cap": config.proactive_daily_cap if config is not None else None,
    }
