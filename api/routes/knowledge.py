"""Knowledge search, citation targets and customer profiles."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import AdminDep, CopilotDep, StaffDep
from api.params import IdPath, TextQuery
from copilot.errors import NotFoundError
from copilot.identity.scope import require_customer
from copilot.knowledge.schema import Stage
from copilot.retrieval.filters import Filters

router = APIRouter(prefix="/v1", tags=["knowledge"])


@router.get("/knowledge/search")
async def search_knowledge(
    copilot: CopilotDep,
    caller: StaffDep,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    stage: Stage | None = None,
    scenario: TextQuery = None,
    tag: TextQuery = None,
    kind: Literal["script", "content"] | None = None,
    k: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    filters = Filters(
        kinds=(kind,) if kind else (), stage=stage.value if stage else None, scenario=scenario,
        tags=(tag,) if tag else (),
    )
    hits = await run_in_threadpool(copilot.search, caller.tenant, q, filters=filters, k=k)
    return {
        "query": q,
        "results": [
            {
                "kind": h.doc.kind, "id": h.doc.id, "title": h.doc.title, "text": h.doc.body,
                "stages": list(h.doc.stages), "scenarios": list(h.doc.scenarios), "tags": list(h.doc.tags),
                "score": round(h.score, 6), "dense": h.dense, "lexical": h.lexical,
            }
            for h in hits
        ],
    }


@router.get("/knowledge/items/{kind}/{item_id}")
def get_item(kind: Literal["script", "content"], item_id: IdPath, copilot: CopilotDep,
                   caller: StaffDep) -> dict[str, Any]:
    if kind == "script":
        row = copilot.repo.script(caller.tenant, item_id)
        return {"kind": "script", "id": row.id, "stage": row.stage, "scenario": row.scenario, "text": row.text,
                "tags": row.tags, "segments": row.segments, "triggers": row.triggers,
                "source": f"{row.source_file}:{row.source_line}"}
    content = copilot.repo.content(caller.tenant, item_id)
    return {"kind": "content", **content.data, "source": f"{content.source_file}:{content.source_line}"}


@router.get("/customers")
async def list_customers(
    copilot: CopilotDep,
    caller: StaffDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict[str, Any]:
    """The customers the caller may see: staff their own, supervisors their team's, admins and keys all."""
    items, total = await run_in_threadpool(lambda: copilot.repo.customers(
        caller.tenant, limit=limit, offset=offset, staff_ids=caller.visible_staff()))
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/customers/{customer_id}")
async def get_customer(customer_id: IdPath, copilot: CopilotDep, caller: StaffDep) -> dict[str, Any]:
    await run_in_threadpool(require_customer, copilot.engine, caller, customer_id)
    return copilot.repo.customer(caller.tenant, customer_id).model_dump(mode="json")


@router.post("/knowledge/ingest")
async def ingest_library(copilot: CopilotDep, caller: AdminDep, request: Request) -> dict[str, Any]:
    """Load the caller tenant's library folder again (changed items only) and move its library version on:
    every API process serves the new library within seconds. A broken library answers 422, changes nothing."""
    settings = request.app.state.settings
    folder = await run_in_threadpool(copilot.repo.library_path, caller.tenant)
    if folder is None and caller.tenant == settings.default_tenant:
        folder = settings.knowledge_dir
    if folder is None:
        raise NotFoundError(f"tenant {caller.tenant!r} has no library folder yet; "
                            "run `copilot ingest PATH --tenant …` once")
    report = await run_in_threadpool(lambda: copilot.ingest(folder, tenant=caller.tenant))
    return {"tenant": caller.tenant, "library_version": copilot.library_version(caller.tenant),
            "summary": report.summary()}
