"""Fit the stage detector's weights on the dev stage sets of three verticals (never a test set).

`python -m eval.tune_stage [--embedder NAME] [--write]` builds the serving Copilot over each set's library,
turns every dev record into the detector's features (`stages.stage_features`, with the library signals the
Copilot gathers for it), and fits a multinomial logistic regression with an L2 penalty. The health-food set
has no library in the repository: its records carry the dialogue-act, conversation-state and profile signals
only, so they teach the weights of the signals every tenant has. The children's-education set (`CHECK_SETS`,
no library either) is never fitted on: it is scored with the final weights, a vertical they have not seen. The penalty is chosen by leaving one
vertical out (fit on the others, score macro-F1 on the held-out one) beside a 5-fold cross-validation that
keeps each conversation in one fold; the penalty whose worse held-out brand plus cross-validated mean is best
wins, so the weights favour signals that carry across verticals. `--write` stores the weights (fitted on
every dev set) in `copilot/conversation/stage_weights.json`.

Beside that signals-only table, the same fit is run with the embedder's vectors of the customer's latest words
and of the staff message they answer appended to the signals (times a scale chosen with the penalty by the same
rule): the wording model. Serving uses it only with the embedder it was fitted with (`stages.stage_model`); the
library-less sets carry their vectors too, since the wording needs no library. `--no-wording` skips it;
`--wording-only` refits it alone and keeps the stored signals-only table (the one the hashing embedder and the
CI gate are served by).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize

from copilot.config import get_settings
from copilot.conversation.stages import FIRST_WORDS, STAGES, WEIGHTS_PATH, StageSignals, stage_features
from copilot.conversation.turns import Turn
from copilot.errors import NotFoundError
from eval import metrics as m
from eval.harness import EVAL_NOW, Harness, build_copilot, choose_embedder
from eval.records import StageRecord, load_records
from eval.suites.labels import conversation_turn, replay_order

__all__ = ["DEV_SETS", "fit", "main"]

REPO = Path(__file__).resolve().parent.parent
# (data, library) of every dev set the weights may learn from; None: no library of that vertical exists.
DEV_SETS: tuple[tuple[str, str | None], ...] = (
    ("eval/datasets/stage_dev.jsonl", "knowledge"),
    ("eval/datasets/stage_skincare_dev.jsonl", "libraries/skincare"),
    ("eval/datasets/stage_healthfood_dev.jsonl", None),
)
# Dev sets scored with the final weights only, to see how they carry to a vertical they were not fitted on.
CHECK_SETS: tuple[str, ...] = ("eval/datasets/stage_education_dev.jsonl",)
PENALTIES = (0.001, 0.003, 0.01, 0.03, 0.1)
# Candidate scales of the wording vectors (unit length) against the 0/1 signals.
WORDING_SCALES = (2.0, 4.0, 8.0)
FOLDS = 5
# Candidate weights of the stage stored at the previous turn (`stages.last_stage_weight`).
LAST_STAGE_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class Replay:
    """How serving would have asked one set's turns: in conversation order, and which conversation each turn
    belongs to when it carries a stored stage (a known customer; records with no customer read none)."""

    order: list[int]
    chain: list[str | None]

    @classmethod
    def of(cls, records: Sequence[StageRecord]) -> Replay:
        chain = []
        for r in records:
            where = conversation_turn(r.id)
            chain.append(where[0] if where and r.customer_id else None)
        return cls(order=replay_order(records), chain=chain)


def stage_scores(x: np.ndarray, w: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each turn's stage scores alone, and with the first-words signals dropped (a stage is stored)."""
    first = [i for i, n in enumerate(names) if n in FIRST_WORDS]
    alone = x @ w
    return alone, alone - x[:, first] @ w[first]


def replay_predict(alone: np.ndarray, stored: np.ndarray, replay: Replay, last_weight: float) -> np.ndarray:
    """Stage indexes as `detect_stage` gives them when each turn reads the stage predicted at the turn before
    it in its conversation (never the label); ties go to the earlier stage, as in `detect_stage`."""
    pred = np.argmax(alone, axis=1)
    last: dict[str, int] = {}
    for i in replay.order:
        key = replay.chain[i]
        if key is None:
            continue
        if key in last:
            scores = stored[i].copy()
            scores[last[key]] += last_weight
            pred[i] = int(np.argmax(scores))
        last[key] = int(pred[i])
    return pred


def _f1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(m.macro_f1([STAGES[i] for i in y], [STAGES[i] for i in pred], list(STAGES)))


def featurize(h: Harness, records: Sequence[StageRecord], *, library: bool = True) -> list[dict[str, float]]:
    return featurize_with_wording(h, records, library=library)[0]


def featurize_with_wording(h: Harness, records: Sequence[StageRecord], *,
                           library: bool = True) -> tuple[list[dict[str, float]], np.ndarray]:
    """The signals of every record, and the wording vectors (customer's words, then the staff message they
    answer; zeros where there is none) as serving gathers them."""
    rows, vectors = [], []
    dim = h.copilot.retriever.store.embedder.dim
    for r in records:
        turns = [Turn(msg.role, msg.text) for msg in r.messages]
        try:
            profile = h.copilot.repo.customer(h.tenant, r.customer_id) if r.customer_id else None
        except NotFoundError:
            profile = None
        wording = h.copilot.stage_wording(turns)
        signals = h.copilot.stage_signals(h.tenant, turns) if library else StageSignals(wording=wording)
        features, _ = stage_features(turns, profile, today=EVAL_NOW.date(), signals=signals)
        rows.append(features)
        vectors.append(np.concatenate([np.zeros(dim) if v is None else np.asarray(v, dtype=np.float64)
                                       for v in (wording.customer, wording.staff)]))
    return rows, np.vstack(vectors) if vectors else np.zeros((0, 2 * dim))


def conversation_of(record_id: str | None, index: int) -> str:
    """Turn records are named `<conversation>-t<n>`; folds keep a conversation whole (no id: a group alone)."""
    return record_id.rsplit("-t", 1)[0] if record_id else f"#{index}"


def _matrix(rows: Sequence[dict[str, float]], names: Sequence[str]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    x = np.zeros((len(rows), len(names)), dtype=np.float64)
    for i, row in enumerate(rows):
        for name, value in row.items():
            if name in index:
                x[i, index[name]] = value
    return x


def fit(x: np.ndarray, y: np.ndarray, penalty: float) -> np.ndarray:
    """Multinomial logistic regression with an L2 penalty (the bias row unpenalised), classes weighted equally;
    solved to convergence with L-BFGS, so small penalties and wide wording vectors reach the same optimum."""
    n, d = x.shape
    k = len(STAGES)
    onehot = np.eye(k)[y]
    sample_w = (n / (k * np.maximum(onehot.sum(axis=0), 1)))[y]  # balanced: macro-F1 is what is measured
    penalised = np.ones((d, k))
    penalised[0] = 0.0

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d, k)
        logits = x @ w
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -float(sample_w @ (log_p * onehot).sum(axis=1)) / n + 0.5 * penalty * float(((w * penalised) ** 2).sum())
        grad = x.T @ ((np.exp(log_p) - onehot) * sample_w[:, None]) / n + penalty * w * penalised
        return loss, grad.ravel()

    result = optimize.minimize(loss_and_grad, np.zeros(d * k), jac=True, method="L-BFGS-B",
                               options={"maxiter": 5000, "gtol": 1e-7})
    return np.asarray(result.x).reshape(d, k)


def _macro_f1(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    pred = np.argmax(x @ w, axis=1)
    return float(m.macro_f1([STAGES[i] for i in y], [STAGES[i] for i in pred], list(STAGES)))


def _out_of_fold(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], groups: Sequence[list[str]], penalty: float,
                 names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Stage scores of every row (all sets stacked) by weights fitted without its fold (`stage_scores`)."""
    x, y = np.vstack(xs), np.concatenate(ys)
    group = [g for gs in groups for g in gs]
    names_ = sorted(set(group))
    order = np.random.default_rng(0).permutation(len(names_))
    fold_of = {names_[k]: rank % FOLDS for rank, k in enumerate(order)}
    folds = np.array([fold_of[g] for g in group])
    alone, stored = np.zeros((len(y), len(STAGES))), np.zeros((len(y), len(STAGES)))
    for k in range(FOLDS):
        w = fit(x[folds != k], y[folds != k], penalty)
        alone[folds == k], stored[folds == k] = stage_scores(x[folds == k], w, names)
    return alone, stored


def _cross_validate(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], groups: Sequence[list[str]],
                    penalty: float) -> list[float]:
    """Macro-F1 of each set when every fold is predicted by weights fitted without it (all sets pooled)."""
    x, y = np.vstack(xs), np.concatenate(ys)
    group = [g for gs in groups for g in gs]
    names = sorted(set(group))
    order = np.random.default_rng(0).permutation(len(names))
    fold_of = {names[k]: rank % FOLDS for rank, k in enumerate(order)}
    folds = np.array([fold_of[g] for g in group])
    pred = np.zeros(len(y), dtype=int)
    for k in range(FOLDS):
        w = fit(x[folds != k], y[folds != k], penalty)
        pred[folds == k] = np.argmax(x[folds == k] @ w, axis=1)
    scores, start = [], 0
    for part in ys:
        end = start + len(part)
        scores.append(float(m.macro_f1([STAGES[i] for i in part], [STAGES[i] for i in pred[start:end]], list(STAGES))))
        start = end
    return scores


def _fit_last_stage(xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], groups: Sequence[list[str]],
                    replays: Sequence[Replay], names: Sequence[str], penalty: float,
                    with_library: Sequence[int]) -> tuple[float, dict[str, Any]]:
    """The weight of the stage stored at the previous turn, chosen on the dev sets replayed as serving asks them
    (each turn reads the stage predicted at the turn before, with weights that never saw its fold or vertical),
    by the same rule as the penalty: the worse held-out brand plus the cross-validated mean."""
    held: list[tuple[np.ndarray, np.ndarray]] = []
    for k in range(len(xs)):
        train = [i for i in range(len(xs)) if i != k]
        w = fit(np.vstack([xs[i] for i in train]), np.concatenate([ys[i] for i in train]), penalty)
        held.append(stage_scores(xs[k], w, names))
    alone, stored = _out_of_fold(xs, ys, groups, penalty, names)
    bounds = np.cumsum([0, *[len(y) for y in ys]])
    report: dict[str, Any] = {"without": {}, "held_out": {}, "cross_validated": {}}
    report["without"] = {
        "held_out": [round(_f1(y, np.argmax(a, axis=1)), 4) for y, (a, _) in zip(ys, held, strict=True)],
        "cross_validated": [round(_f1(ys[k], np.argmax(alone[bounds[k]:bounds[k + 1]], axis=1)), 4)
                            for k in range(len(ys))],
    }
    print(f"no stored stage: held-out {report['without']['held_out']}, "
          f"{FOLDS}-fold {report['without']['cross_validated']}")
    best, best_score = LAST_STAGE_WEIGHTS[0], -1.0
    for weight in LAST_STAGE_WEIGHTS:
        out_held = [_f1(y, replay_predict(a, st, r, weight)) for y, (a, st), r in zip(ys, held, replays, strict=True)]
        folded = [_f1(ys[k], replay_predict(alone[bounds[k]:bounds[k + 1]], stored[bounds[k]:bounds[k + 1]],
                                            replays[k], weight)) for k in range(len(ys))]
        report["held_out"][str(weight)] = [round(v, 4) for v in out_held]
        report["cross_validated"][str(weight)] = [round(v, 4) for v in folded]
        print(f"replayed, previous stage weight {weight}: held-out {report['held_out'][str(weight)]}, "
              f"{FOLDS}-fold {report['cross_validated'][str(weight)]}")
        score = min(out_held[i] for i in with_library) + float(np.mean(folded))
        if score > best_score + 1e-9:
            best, best_score = weight, score
    print(f"chosen previous stage weight {best}")
    return best, report


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embedder", default=None, help="'hashing' or a model; default: the configured one")
    parser.add_argument("--write", action="store_true", help=f"write {WEIGHTS_PATH.name}")
    parser.add_argument("--no-wording", action="store_true", help="fit the signals-only table alone")
    parser.add_argument("--wording-only", action="store_true",
                        help=f"refit the wording model alone; the signals-only table stays as {WEIGHTS_PATH.name} has it")
    args = parser.parse_args(argv)
    embedder = choose_embedder(args.embedder, get_settings())
    brands: list[tuple[str, list[dict[str, float]], np.ndarray, list[str]]] = []
    vectors: list[np.ndarray] = []
    replays: list[Replay] = []
    with tempfile.TemporaryDirectory(prefix="copilot-tune-") as scratch:
        base = build_copilot(embedder, REPO / "knowledge", Path(scratch))
        for data, library in DEV_SETS:
            h = base.library(REPO / library) if library else base
            records: list[StageRecord] = load_records(REPO / data, "stage")
            rows, wording = featurize_with_wording(h, records, library=library is not None)
            brands.append((data, rows, np.array([STAGES.index(r.stage) for r in records]),
                           [f"{data}:{conversation_of(r.id, i)}" for i, r in enumerate(records)]))
            vectors.append(wording)
            replays.append(Replay.of(records))
        checks = []
        for data in CHECK_SETS:
            records = load_records(REPO / data, "stage")
            rows, wording = featurize_with_wording(base, records, library=False)
            checks.append((data, rows, np.array([STAGES.index(r.stage) for r in records]), wording))
    names = ["bias", *sorted({n for _, rows, _, _ in brands for row in rows for n in row} - {"bias"})]
    xs = [_matrix(rows, names) for _, rows, _, _ in brands]
    ys = [y for _, _, y, _ in brands]
    with_library = [i for i, (_, library) in enumerate(DEV_SETS) if library]
    if args.wording_only:
        out = json.loads(WEIGHTS_PATH.read_text(encoding="utf-8"))
        out["wording"] = _fit_wording(embedder.name, xs, ys, vectors, [g for *_, g in brands], replays, names,
                                      with_library, checks)
        if args.write:
            WEIGHTS_PATH.write_text(dump_weights(out), encoding="utf-8")
            print(f"wrote the wording model into {WEIGHTS_PATH}")
        return out
    report: dict[str, Any] = {"held_out": {}, "cross_validated": {}}
    best_penalty, best_score = PENALTIES[0], -1.0
    for penalty in PENALTIES:
        held_out = []
        for held in range(len(brands)):
            train = [i for i in range(len(brands)) if i != held]
            w = fit(np.vstack([xs[i] for i in train]), np.concatenate([ys[i] for i in train]), penalty)
            held_out.append(_macro_f1(w, xs[held], ys[held]))
        folded = _cross_validate(xs, ys, [g for *_, g in brands], penalty)
        report["held_out"][str(penalty)] = [round(s, 4) for s in held_out]
        report["cross_validated"][str(penalty)] = [round(s, 4) for s in folded]
        print(f"penalty {penalty}: macro-F1 on the held-out vertical {report['held_out'][str(penalty)]}, "
              f"{FOLDS}-fold by conversation {report['cross_validated'][str(penalty)]}")
        # The brands with a library are what serving looks like; the library-less set still counts in the folds.
        score = min(held_out[i] for i in with_library) + float(np.mean(folded))
        if score > best_score + 1e-9:
            best_penalty, best_score = penalty, score
    last_weight, chained = _fit_last_stage(xs, ys, [g for *_, g in brands], replays, names, best_penalty, with_library)
    w = fit(np.vstack(xs), np.concatenate(ys), best_penalty)
    in_sample = [round(_macro_f1(w, x, y), 4) for x, y in zip(xs, ys, strict=True)]
    print(f"chosen penalty {best_penalty}; in-sample dev macro-F1 {in_sample}")
    unseen = {data: round(_macro_f1(w, _matrix(rows, names), y), 4) for data, rows, y, _ in checks}
    print(f"macro-F1 on verticals never fitted on {unseen}")
    weights = _named(w, names)
    out = {
        "data": [d for d, *_ in brands],
        "embedder": embedder.name,
        "penalty": best_penalty,
        "held_out_vertical_macro_f1": report["held_out"][str(best_penalty)],
        "cross_validated_macro_f1": report["cross_validated"][str(best_penalty)],
        "unseen_vertical_macro_f1": unseen,
        "last_stage_weight": last_weight,
        "replayed_macro_f1": chained,
        "weights": weights,
    }
    if not args.no_wording:
        out["wording"] = _fit_wording(embedder.name, xs, ys, vectors, [g for *_, g in brands], replays, names,
                                      with_library, checks)
    if args.write:
        WEIGHTS_PATH.write_text(dump_weights(out), encoding="utf-8")
        print(f"wrote {WEIGHTS_PATH}")
    return out


def dump_weights(out: dict[str, Any]) -> str:
    """The weights file as JSON, each innermost list of numbers on one line (the wording matrices stay short)."""
    text = json.dumps(out, ensure_ascii=False, indent=1)
    return re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text) + "\n"


def _named(w: np.ndarray, names: Sequence[str]) -> dict[str, dict[str, float]]:
    return {name: {s: round(float(w[i, j]), 3) for j, s in enumerate(STAGES)} for i, name in enumerate(names)}


def _fit_wording(embedder: str, xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], vectors: Sequence[np.ndarray],
                 groups: Sequence[list[str]], replays: Sequence[Replay], names: Sequence[str],
                 with_library: Sequence[int], checks: Sequence[tuple[str, list[dict[str, float]], np.ndarray,
                                                                     np.ndarray]]) -> dict[str, Any]:
    """The wording model: the signals plus the scaled wording vectors, penalty and scale chosen by the same
    rule as the signals-only table, then the previous stage's weight replayed on it."""
    dim = vectors[0].shape[1] // 2
    wide = [*names, *(f"customer_{i}" for i in range(dim)), *(f"staff_{i}" for i in range(dim))]
    best, best_score, report = (PENALTIES[0], WORDING_SCALES[0]), -1.0, {}
    for scale in WORDING_SCALES:
        wx = [np.hstack([x, scale * v]) for x, v in zip(xs, vectors, strict=True)]
        for penalty in PENALTIES:
            held_out = []
            for held in range(len(wx)):
                train = [i for i in range(len(wx)) if i != held]
                w = fit(np.vstack([wx[i] for i in train]), np.concatenate([ys[i] for i in train]), penalty)
                held_out.append(_macro_f1(w, wx[held], ys[held]))
            folded = _cross_validate(wx, ys, groups, penalty)
            key = f"scale {scale}, penalty {penalty}"
            report[key] = {"held_out": [round(v, 4) for v in held_out], "cross_validated": [round(v, 4) for v in folded]}
            print(f"wording {key}: held-out {report[key]['held_out']}, {FOLDS}-fold {report[key]['cross_validated']}")
            score = min(held_out[i] for i in with_library) + float(np.mean(folded))
            if score > best_score + 1e-9:
                best, best_score = (penalty, scale), score
    penalty, scale = best
    wx = [np.hstack([x, scale * v]) for x, v in zip(xs, vectors, strict=True)]
    last_weight, chained = _fit_last_stage(wx, ys, groups, replays, wide, penalty, with_library)
    w = fit(np.vstack(wx), np.concatenate(ys), penalty)
    unseen = {data: round(_macro_f1(w, np.hstack([_matrix(rows, names), scale * v]), y), 4)
              for data, rows, y, v in checks}
    print(f"wording model: scale {scale}, penalty {penalty}; macro-F1 on verticals never fitted on {unseen}")
    n = len(names)
    return {
        "embedder": embedder,
        "scale": scale,
        "penalty": penalty,
        "held_out_vertical_macro_f1": report[f"scale {scale}, penalty {penalty}"]["held_out"],
        "cross_validated_macro_f1": report[f"scale {scale}, penalty {penalty}"]["cross_validated"],
        "unseen_vertical_macro_f1": unseen,
        "last_stage_weight": last_weight,
        "replayed_macro_f1": chained,
        "weights": _named(w[:n], names),
        # scale folded in: serving scores a unit vector v as v @ customer
        "customer": np.round(scale * w[n:n + dim], 4).tolist(),
        "staff": np.round(scale * w[n + dim:], 4).tolist(),
    }


if __name__ == "__main__":
    main()
