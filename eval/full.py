"""`copilot eval full`: every project suite and every public proxy, one Copilot, one index page.

This is the slow, informative run (`make eval-full`): the configured embedding model, every record of
the frozen test splits of the project sets (each over its own library), and seeded conversions of the
test half of the public sets (sizes below keep it to minutes on two cores). Dev splits are for tuning and
are not in the plan; `copilot eval run` scores them. Each run gets its own folder with `summary.json` and `report.html`; `index.html` and
`summary.json` at the top compare the copilot with the best baseline everywhere.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from copilot.errors import ValidationError
from eval.adapters import convert
from eval.harness import Harness
from eval.report import comparison, write_report
from eval.runner import RunConfig, run_suite

__all__ = ["PLAN", "Planned", "run_full"]

DATASETS = Path(__file__).resolve().parent / "datasets"
REPO = DATASETS.parent.parent


@dataclass(frozen=True)
class Planned:
    name: str
    suite: str
    data: str  # a file under eval/datasets, or "convert:SOURCE"
    train: str | None = None
    options: tuple[tuple[str, Any], ...] = ()  # converter options
    limit: int | None = None
    knowledge: str | None = None  # another library (ingested as its own tenant); default: the configured one


SKINCARE = "libraries/skincare"
PLAN: tuple[Planned, ...] = (
    Planned("stage", "stage", "stage_test.jsonl"),
    Planned("stage_skincare", "stage", "stage_skincare_test.jsonl", knowledge=SKINCARE),
    Planned("intent", "intent", "intent_test.jsonl"),
    Planned("compliance", "compliance", "compliance_test.jsonl"),
    Planned("compliance_prose", "compliance", "compliance_prose_test.jsonl"),
    Planned("retrieval", "retrieval", "retrieval_test.jsonl"),
    Planned("response", "response", "response_test.jsonl"),
    Planned("response_skincare", "response", "response_skincare_test.jsonl", knowledge=SKINCARE),
    Planned("classify", "classify", "classify_test.jsonl", train="classify_train.jsonl"),
    Planned("drafts", "drafts", "drafts_test.jsonl"),
    Planned("persuasion-intent", "intent", "convert:persuasion-intent"),
    Planned("persuasion-response", "response", "convert:persuasion-response", options=(("per_dialogue", 2),)),
    Planned("crosswoz-stage", "stage", "convert:crosswoz-stage", options=(("per_stage", 150),)),
    Planned("crosswoz-response", "response", "convert:crosswoz-response", options=(("per_dialogue", 2),),
            limit=300),
    Planned("banking77", "classify", "convert:banking77", options=(("shots", 10), ("per_class", 10))),
    Planned("clinc150", "classify", "convert:clinc150",
            options=(("shots", 10), ("per_class", 10), ("oos_shots", 50))),
)

# Public sets: only their frozen test half (`eval.adapters.in_split`); the dev half is for tuning.
_CONVERT_DEFAULTS = {"shots": 10, "oos_shots": 50, "per_class": 20, "negatives": 9, "per_dialogue": 2,
                     "max_turns": None, "per_stage": 300, "seed": 13, "split": "test"}


def _files(item: Planned, source_dir: Path, scratch: Path) -> tuple[Path, Path | None]:
    if not item.data.startswith("convert:"):
        return DATASETS / item.data, DATASETS / item.train if item.train else None
    out = scratch / f"{item.name}.jsonl"
    train = scratch / f"{item.name}.train.jsonl"
    convert(item.data.split(":", 1)[1], source_dir, out, train, item.limit,
            **(_CONVERT_DEFAULTS | dict(item.options)))
    return out, train if train.exists() else None


def run_full(harness: Harness, out: Path, source_dir: Path, only: set[str] | None = None,
             log: Any = print) -> dict[str, Any]:
    """Run the plan (or the named part of it); public sets missing from `source_dir` are skipped."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="copilot-eval-data-") as scratch:
        for item in PLAN:
            if only and item.name not in only:
                continue
            started = time.perf_counter()
            try:
                data, train = _files(item, source_dir, Path(scratch))
            except ValidationError as exc:
                log(f"skip {item.name}: {exc}")
                results[item.name] = {"suite": item.suite, "skipped": str(exc)}
                continue
            over = harness.library(REPO / item.knowledge) if item.knowledge else harness
            result = run_suite(over, RunConfig(suite=item.suite, data=data, train=train))
            seconds = round(time.perf_counter() - started, 1)
            source = item.data if item.data.startswith("convert:") else f"eval/datasets/{item.data}"
            write_report(result, out / item.name, {"data": source, "embedder": harness.embedder_name,
                                                   "seconds": seconds})
            results[item.name] = {"suite": item.suite, "n": result.n, "comparison": comparison(result),
                                  "seconds": seconds}
            verdict = results[item.name]["comparison"]
            shown = (f"{verdict['metric']} {verdict['copilot']:.4f} vs {verdict['best_baseline']} "
                     f"{verdict['baseline_value']:.4f}") if verdict else "no baseline"
            log(f"{item.name}: n={result.n} {shown} ({seconds}s)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "index.html").write_text(_index(results, harness.embedder_name), encoding="utf-8")
    return results


def _index(results: dict[str, Any], embedder: str) -> str:
    rows = []
    for name, r in results.items():
        c = r.get("comparison")
        if "skipped" in r:
            cells = f'<td colspan="6">skipped: {escape(r["skipped"])}</td>'
        elif c is None:
            cells = f"<td>{r['n']}</td><td colspan=\"5\">no baseline</td>"
        else:
            ratio = f"{c['ratio']:.2f}×" if c["ratio"] else "n/a"
            cells = (f"<td>{r['n']}</td><td>{escape(c['metric'])}</td><td>{c['copilot']:.4f}</td>"
                     f"<td>{escape(c['best_baseline'])} {c['baseline_value']:.4f}</td><td>{ratio}</td>"
                     f"<td>{'yes' if c['beats_best_baseline'] else '<b>no</b>'}</td>")
        rows.append(f'<tr><td><a href="{escape(name)}/report.html">{escape(name)}</a> ({escape(r["suite"])})</td>'
                    f"{cells}</tr>")
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>eval · full run</title>'
            "<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:980px}table{border-collapse:"
            "collapse}td,th{border:1px solid #cbd5e1;padding:.25rem .6rem}</style></head><body>"
            f"<h1>Full evaluation</h1><p>embedder: <code>{escape(embedder)}</code></p><table><tr><th>run</th>"
            "<th>n</th><th>metric</th><th>copilot</th><th>best baseline</th><th>ratio</th><th>beats it</th></tr>"
            f"{''.join(rows)}</table></body></html>\n")
