"""What every suite returns, and the registry the runner dispatches on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eval.harness import Harness

__all__ = ["RunOptions", "SuiteResult", "SuiteRunner"]


@dataclass(frozen=True)
class RunOptions:
    seed: int = 13
    train: Sequence[Any] = ()  # training records (classify only)
    langchain: bool = True  # also run the plain LangChain + Chroma baseline where it applies
    # stage: replay each conversation's turns in order, each carrying the stage the service stored at the
    # previous one (off: every turn scored alone, as a first request with no stored conversation)
    replay: bool = True


@dataclass
class SuiteResult:
    """Metrics of the copilot and of each baseline on the same records.

    `primary` names the metric the report compares against the best baseline (higher is better
    unless `lower_is_better`). `details` feeds plots and tables but not `summary.json`'s metrics.
    """

    suite: str
    n: int
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    primary: str
    lower_is_better: bool = False
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


SuiteRunner = Callable[[Harness, Sequence[Any], RunOptions], SuiteResult]
