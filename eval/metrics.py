"""Evaluation metrics, written out so every figure in a report can be checked by hand.

Plain functions over Python sequences; no model code. Keys returned here are the ones that end up in
`summary.json`, so their spellings are part of the format (see `eval/README.md`).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from copilot.errors import ValidationError

__all__ = [
    "OOS",
    "accuracy",
    "brier",
    "confusion",
    "ece",
    "first_hit_ranks",
    "fp_rate",
    "label_report",
    "macro_f1",
    "mean",
    "mrr",
    "multilabel_report",
    "ndcg_at_k",
    "oos_scores",
    "percentile",
    "r_at",
    "recall_at_k",
    "reliability",
    "roc_auc",
    "rounded",
]

OOS = "oos"


def _same_length(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValidationError(f"metric inputs differ in length: {len(a)} vs {len(b)}")
    if not a:
        raise ValidationError("metric needs at least one example")


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    _same_length(y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)


def label_report(
    y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Per label {precision, recall, f1, support}; labels default to every label seen on either side."""
    _same_length(y_true, y_pred)
    names = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    out: dict[str, dict[str, float]] = {}
    for name in names:
        tp = sum(t == name and p == name for t, p in zip(y_true, y_pred, strict=True))
        predicted = sum(p == name for p in y_pred)
        support = sum(t == name for t in y_true)
        precision, recall = _div(tp, predicted), _div(tp, support)
        out[name] = {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "support": support}
    return out


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted mean F1 over labels (default: every label that is true or predicted somewhere)."""
    report = label_report(y_true, y_pred, labels)
    return sum(r["f1"] for r in report.values()) / len(report)


def confusion(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """{"labels": [...], "matrix": rows = true label, columns = predicted label}."""
    _same_length(y_true, y_pred)
    names = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))
    index = {name: i for i, name in enumerate(names)}
    matrix = [[0] * len(names) for _ in names]
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t]][index[p]] += 1
    return {"labels": names, "matrix": matrix}


def roc_auc(y: Sequence[int], p: Sequence[float]) -> float | None:
    """Probability a random positive scores above a random negative (ties count half); None if one class."""
    _same_length(y, p)
    order = sorted(range(len(p)), key=lambda i: p[i])
    ranks = [0.0] * len(p)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and p[order[j + 1]] == p[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    pos = sum(1 for v in y if v == 1)
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return None
    rank_sum = sum(r for r, v in zip(ranks, y, strict=True) if v == 1)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def brier(y: Sequence[int], p: Sequence[float]) -> float:
    _same_length(y, p)
    return sum((pi - yi) ** 2 for yi, pi in zip(y, p, strict=True)) / len(y)


def reliability(y: Sequence[int], p: Sequence[float], bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins: {lo, hi, n, mean_p, frac_pos}; empty bins are kept with n = 0."""
    _same_length(y, p)
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [i for i, pi in enumerate(p) if lo <= pi < hi or (b == bins - 1 and pi == 1.0)]
        n = len(members)
        out.append({
            "lo": lo, "hi": hi, "n": n,
            "mean_p": _div(sum(p[i] for i in members), n),
            "frac_pos": _div(sum(y[i] for i in members), n),
        })
    return out


def ece(y: Sequence[int], p: Sequence[float], bins: int = 10) -> float:
    """Expected calibration error: bin-size-weighted mean |observed rate − mean predicted probability|."""
    table = reliability(y, p, bins)
    return sum(b["n"] / len(y) * abs(b["frac_pos"] - b["mean_p"]) for b in table)


def first_hit_ranks(ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]]) -> list[int | None]:
    """1-based rank of the first relevant item in each ranking, None when none was returned."""
    _same_length(ranked, relevant)
    out: list[int | None] = []
    for items, rel in zip(ranked, relevant, strict=True):
        wanted = set(rel)
        out.append(next((i + 1 for i, item in enumerate(items) if item in wanted), None))
    return out


def r_at(ranks: Sequence[int | None], k: int) -> float:
    """Share of queries whose first relevant item is within the top k (R@k for one-answer ranking)."""
    if not ranks:
        raise ValidationError("metric needs at least one example")
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def mrr(ranks: Sequence[int | None]) -> float:
    if not ranks:
        raise ValidationError("metric needs at least one example")
    return sum(1.0 / r for r in ranks if r is not None) / len(ranks)


def recall_at_k(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]], ks: Sequence[int]
) -> dict[str, float]:
    """Mean share of each query's relevant items found in its top k, keyed by str(k)."""
    _same_length(ranked, relevant)
    sets = [set(r) for r in relevant]
    if any(not s for s in sets):
        raise ValidationError("every query needs at least one relevant id")
    return {
        str(k): sum(len(set(items[:k]) & s) / len(s) for items, s in zip(ranked, sets, strict=True)) / len(sets)
        for k in ks
    }


def ndcg_at_k(
    ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]], ks: Sequence[int]
) -> dict[str, float]:
    """Binary-relevance nDCG@k (gain 1, discount log2(rank + 1)), keyed by str(k)."""
    _same_length(ranked, relevant)
    sets = [set(r) for r in relevant]
    out: dict[str, float] = {}
    for k in ks:
        total = 0.0
        for items, s in zip(ranked, sets, strict=True):
            dcg = sum(1.0 / math.log2(i + 2) for i, item in enumerate(items[:k]) if item in s)
            ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(s))))
            total += _div(dcg, ideal)
        out[str(k)] = total / len(sets)
    return out


def oos_scores(y_true: Sequence[str], y_pred: Sequence[str], oos: str = OOS) -> dict[str, float]:
    """Out-of-scope detection as a binary task with `oos` as the positive class."""
    _same_length(y_true, y_pred)
    tp = sum(t == oos and p == oos for t, p in zip(y_true, y_pred, strict=True))
    predicted = sum(p == oos for p in y_pred)
    actual = sum(t == oos for t in y_true)
    return {"oos_precision": _div(tp, predicted), "oos_recall": _div(tp, actual)}


def multilabel_report(
    truth: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]], categories: Sequence[str] | None = None
) -> dict[str, Any]:
    """Per-category {precision, recall, f1, support} and micro-averaged {precision, recall, f1}."""
    _same_length(truth, predicted)
    t_sets, p_sets = [set(t) for t in truth], [set(p) for p in predicted]
    names = list(categories) if categories is not None else sorted(set().union(*t_sets, *p_sets))
    per: dict[str, dict[str, float]] = {}
    all_tp = all_pred = all_true = 0
    for name in names:
        tp = sum(name in t and name in p for t, p in zip(t_sets, p_sets, strict=True))
        n_pred = sum(name in p for p in p_sets)
        n_true = sum(name in t for t in t_sets)
        precision, recall = _div(tp, n_pred), _div(tp, n_true)
        per[name] = {"precision": precision, "recall": recall, "f1": _f1(precision, recall), "support": n_true}
        all_tp, all_pred, all_true = all_tp + tp, all_pred + n_pred, all_true + n_true
    precision, recall = _div(all_tp, all_pred), _div(all_tp, all_true)
    return {"per_category": per, "micro": {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}}


def fp_rate(truth: Sequence[Iterable[str]], predicted: Sequence[Iterable[str]]) -> float | None:
    """Among texts labelled clean (no category), the share that got any flag; None if there are none."""
    _same_length(truth, predicted)
    clean = [set(p) for t, p in zip(truth, predicted, strict=True) if not set(t)]
    return _div(sum(1 for p in clean if p), len(clean)) if clean else None


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def rounded(value: Any, digits: int = 4) -> Any:
    """Round every float in a nested structure so summaries diff cleanly."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value
