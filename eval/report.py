"""`summary.json` and a self-contained `report.html` for one suite run.

The HTML is a single file with inline SVG and CSS, so it can be attached to a ticket or opened from
a CI artifact without a server or network.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from eval.metrics import rounded
from eval.plots import bars_svg, confusion_svg, reliability_svg
from eval.suites.base import SuiteResult

__all__ = ["comparison", "flatten", "lookup", "summary", "write_report"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1000px;color:#0f172a;line-height:1.45}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #cbd5e1;padding:.25rem .6rem;
text-align:right;font-variant-numeric:tabular-nums}th:first-child,td:first-child{text-align:left}
th{background:#f1f5f9;text-align:left}.ours{background:#eff6ff;font-weight:600}.verdict{padding:.6rem 1rem;border-radius:6px;
background:#f1f5f9}.good{background:#dcfce7}.bad{background:#fee2e2}code{background:#f1f5f9;padding:0 .2rem}
.small{font-size:.85rem;color:#475569}td.text{text-align:left;max-width:520px}
"""


def lookup(metrics: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metrics
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def comparison(result: SuiteResult) -> dict[str, Any] | None:
    """The primary metric of the copilot against the best baseline, as a ratio."""
    ours = lookup(result.metrics, result.primary)
    scored = {name: lookup(b, result.primary) for name, b in result.baselines.items()}
    scored = {name: v for name, v in scored.items() if isinstance(v, int | float)}
    if not isinstance(ours, int | float) or not scored:
        return None
    pick = min if result.lower_is_better else max
    best = pick(scored, key=lambda name: scored[name])
    value = scored[best]
    ratio = (value / ours if result.lower_is_better else ours / value) if value and ours else None
    beats = ours < value if result.lower_is_better else ours > value
    return {"metric": result.primary, "copilot": ours, "best_baseline": best, "baseline_value": value,
            "ratio": ratio, "beats_best_baseline": beats}


def summary(result: SuiteResult, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return rounded({
        "suite": result.suite, "n": result.n, "metrics": result.metrics, "baselines": result.baselines,
        "comparison": comparison(result), "notes": result.notes, **(extra or {}),
    })


def flatten(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """Scalar metrics only, nested `{k: value}` objects as `name@k`; tables and plots are skipped."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        if key in ("confusion", "reliability", "per_category"):
            continue
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                if isinstance(inner, int | float) or inner is None:
                    out[f"{key}@{sub}" if key.endswith("_at_k") else f"{key}.{sub}"] = inner
        elif isinstance(value, int | float) or value is None:
            out[key] = value
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _metrics_table(result: SuiteResult) -> str:
    columns = {"copilot": flatten(result.metrics), **{k: flatten(v) for k, v in result.baselines.items()}}
    rows = list(columns["copilot"])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"ours" if c == "copilot" else ""}">{_fmt(values.get(row))}</td>' for c, values in columns.items()
        )
        body.append(f"<tr><td><code>{escape(row)}</code></td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"


def _verdict(result: SuiteResult) -> str:
    c = comparison(result)
    if c is None:
        return '<p class="verdict">No baseline to compare with on this suite.</p>'
    ratio = f"{c['ratio']:.2f}×" if c["ratio"] is not None else "n/a"
    word = "beats" if c["beats_best_baseline"] else "does NOT beat"
    return (f'<p class="verdict {"good" if c["beats_best_baseline"] else "bad"}">On <code>{escape(c["metric"])}</code> '
            f"the copilot scores {_fmt(c['copilot'])} and {word} the best baseline "
            f"(<b>{escape(c['best_baseline'])}</b>, {_fmt(c['baseline_value'])}): ratio {ratio}.</p>")


def _plots(result: SuiteResult) -> str:
    parts = []
    confusion = result.metrics.get("confusion")
    if confusion and len(confusion["labels"]) <= 25:
        parts.append("<h2>Confusion matrix</h2>" + confusion_svg(confusion["labels"], confusion["matrix"]))
    elif confusion:
        parts.append(f'<p class="small">Confusion matrix omitted: {len(confusion["labels"])} labels; see '
                     "summary.json.</p>")
    if "reliability" in result.metrics:
        series = {"copilot": result.metrics["reliability"]}
        series |= {k: v["reliability"] for k, v in result.baselines.items() if "reliability" in v}
        parts.append("<h2>Reliability</h2>" + reliability_svg(series))
    per = result.metrics.get("per_category")
    if per:
        shown = sorted(per, key=lambda c: -per[c]["support"])[:30]
        values = {"copilot": {c: per[c]["f1"] for c in shown}}
        best = (comparison(result) or {}).get("best_baseline")
        base = result.baselines.get(best or "", {}).get("per_category")
        if best and base:
            values[best] = {c: base[c]["f1"] for c in shown if c in base}
        parts.append("<h2>F1 per category</h2>" + bars_svg(values, title="F1 by category (largest support first)"))
    recall = result.metrics.get("recall_at_k")
    if recall:
        values = {"copilot": {f"recall@{k}": v for k, v in recall.items()}}
        values |= {n: {f"recall@{k}": v for k, v in b["recall_at_k"].items()} for n, b in result.baselines.items()}
        parts.append("<h2>Recall@k</h2>" + bars_svg(values, title="recall@k by system"))
    if "r_at_1" in result.metrics:
        keys = ("r_at_1", "r_at_2", "r_at_5", "mrr")
        values = {"copilot": {k: result.metrics[k] for k in keys}}
        values |= {n: {k: b[k] for k in keys} for n, b in result.baselines.items()}
        parts.append("<h2>Response ranking</h2>" + bars_svg(values, title="R@k and MRR by system"))
    return "".join(parts)


def _examples(result: SuiteResult) -> str:
    rows = result.details.get("errors") or result.details.get("misses") or []
    if not rows:
        return ""
    body = "".join(
        f"<tr><td>{escape(r['where'])}</td><td class=\"text\">{escape(r['text'])}</td>"
        f"<td>{escape(r['truth'])}</td><td>{escape(r['pred'])}</td></tr>" for r in rows
    )
    return ("<h2>Examples the copilot got wrong</h2><table><tr><th>record</th><th>text</th><th>truth</th>"
            f"<th>copilot</th></tr>{body}</table>")


def write_report(result: SuiteResult, out: Path, extra: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result, extra)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    context = "".join(f"<li>{escape(k)}: <code>{escape(str(v))}</code></li>" for k, v in (extra or {}).items())
    notes = "".join(f"<li>{escape(n)}</li>" for n in result.notes)
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>eval · {escape(result.suite)}</title>'
        f"<style>{_CSS}</style></head><body><h1>Evaluation: <code>{escape(result.suite)}</code></h1>"
        f"<p>{result.n} records · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC</p><ul class=\"small\">"
        f"{context}</ul>{_verdict(result)}<h2>Metrics</h2>{_metrics_table(result)}{_plots(result)}"
        f"{'<h2>Notes</h2><ul>' + notes + '</ul>' if notes else ''}{_examples(result)}</body></html>\n"
    )
    report_path = out / "report.html"
    report_path.write_text(html, encoding="utf-8")
    return summary_path, report_path
