"""The evaluation suites, by name. Each runs the serving `Copilot` (never a copy of its logic)."""

from __future__ import annotations

from eval.suites.base import RunOptions, SuiteResult, SuiteRunner
from eval.suites.compliance import run_compliance
from eval.suites.drafts import run_drafts
from eval.suites.factcheck import run_factcheck
from eval.suites.labels import run_classify, run_intent, run_stage
from eval.suites.ranking import run_response, run_retrieval
from eval.suites.redteam import run_redteam

__all__ = ["SUITES", "RunOptions", "SuiteResult", "SuiteRunner"]

SUITES: dict[str, SuiteRunner] = {
    "stage": run_stage,
    "intent": run_intent,
    "compliance": run_compliance,
    "retrieval": run_retrieval,
    "response": run_response,
    "classify": run_classify,
    "drafts": run_drafts,
    "factcheck": run_factcheck,
    "redteam": run_redteam,
}
