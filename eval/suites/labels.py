"""Suites that score labels and probabilities: `stage`, `intent` and `classify`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from copilot.conversation.message_intents import OOS_LABEL, MessageClassifier
from copilot.conversation.query import build_query
from copilot.errors import ValidationError
from copilot.retrieval.filters import Filters
from eval import metrics as m
from eval.baselines import KeywordClassifier, keyword_intent, majority, stratified_random
from eval.harness import Harness, request_for
from eval.records import ClassifyRecord, IntentRecord, StageRecord
from eval.suites.base import RunOptions, SuiteResult

__all__ = ["STAGES", "conversation_turn", "replay_order", "run_classify", "run_intent", "run_stage"]

STAGES = ("icebreak", "discovery", "recommend", "revisit")


def _label_metrics(truth: Sequence[str], pred: Sequence[str], labels: Sequence[str] | None = None) -> dict[str, Any]:
    """`labels` fixes the table order; macro-F1 averages only labels that occur on either side."""
    seen = set(truth) | set(pred)
    return {
        "accuracy": m.accuracy(truth, pred),
        "macro_f1": m.macro_f1(truth, pred, [lab for lab in labels if lab in seen] if labels else None),
        "confusion": m.confusion(truth, pred, labels),
        "per_category": m.label_report(truth, pred, labels),
    }


def conversation_turn(record_id: str | None) -> tuple[str, int] | None:
    """`<conversation>-t<K>` → (conversation, K); None when the id does not name a turn."""
    if not record_id or "-t" not in record_id:
        return None
    conversation, _, turn = record_id.rpartition("-t")
    return (conversation, int(turn)) if turn.isdigit() and conversation else None


def replay_order(records: Sequence[Any]) -> list[int]:
    """Record indexes with each conversation's turns in turn order (records that name no turn keep their place)."""
    keys = []
    for i, r in enumerate(records):
        where = conversation_turn(r.id)
        keys.append((*where, i) if where else (f"#{i}", 0, i))
    return sorted(range(len(records)), key=keys.__getitem__)


def _store_stage(h: Harness, customer_id: str, staff_id: str, stage: str | None) -> None:
    """What `Copilot` writes after a suggestion: the stage of this customer and staff member's conversation."""
    with h.copilot.repo.unit_of_work() as session:
        conversation = h.copilot.repo.conversation(session, h.tenant, customer_id, staff_id)
        conversation.last_stage = stage
        session.add(conversation)


def _stages(h: Harness, records: Sequence[StageRecord], *, replay: bool) -> list[str]:
    """The copilot's stage for every record (via `analyze`, as serving reads a turn).

    With `replay`, each conversation's turns are asked in order by a staff member of their own, and after each
    the detected stage is stored as the service stores it after a suggestion, so turn K reads the detector's
    own answer at the turn before it (never the label), exactly as serving does. As in serving, only a request
    with a known customer and a staff member reads a stored stage; a conversation's first turn starts with none."""
    pred = [""] * len(records)
    started: set[str] = set()
    for i in replay_order(records) if replay else range(len(records)):
        r = records[i]
        where = conversation_turn(r.id) if replay and r.customer_id else None
        if where is None:
            pred[i] = h.copilot.analyze(h.tenant, request_for(r.messages, r.customer_id)).stage.name
            continue
        staff_id = f"eval-replay:{where[0]}"[:128]
        if where[0] not in started:  # a conversation starts with no stored stage (nor one from an earlier run)
            started.add(where[0])
            _store_stage(h, r.customer_id or "", staff_id, None)
        request = request_for(r.messages, r.customer_id).model_copy(update={"staff_id": staff_id})
        pred[i] = h.copilot.analyze(h.tenant, request).stage.name
        _store_stage(h, r.customer_id or "", staff_id, pred[i])
    return pred


def run_stage(h: Harness, records: Sequence[StageRecord], opts: RunOptions) -> SuiteResult:
    """The copilot's stage (via `analyze`) against the labels, beside label-only and retrieval-only guesses.

    By default each conversation is replayed turn by turn with the stage the service stored at the previous
    turn (`_stages`); `without_last_stage` scores every turn alone, the protocol of the figures before it."""
    truth = [r.stage for r in records]
    pred = _stages(h, records, replay=opts.replay)
    vote_pred = []
    for r in records:
        # Retrieval alone: the stage the best-matching scripts belong to (the detector's library vote).
        query = build_query(r.messages, None)
        hits = h.copilot.search(h.tenant, query, filters=Filters(kinds=("script",)), k=10)
        votes: dict[str, float] = {}
        for hit in hits:
            for stage in hit.doc.stages:
                votes[stage] = votes.get(stage, 0.0) + hit.score
        vote_pred.append(max(STAGES, key=lambda s: votes.get(s, 0.0)) if votes else "discovery")
    baselines = {
        "majority": _label_metrics(truth, majority(truth), STAGES),
        "random": _label_metrics(truth, stratified_random(truth, opts.seed), STAGES),
        "retrieval_vote": _label_metrics(truth, vote_pred, STAGES),
    }
    metrics = _label_metrics(truth, pred, STAGES)
    if opts.replay:  # the same detector with no stored stage: what the replay changes, not a baseline to beat
        alone = _label_metrics(truth, _stages(h, records, replay=False), STAGES)
        metrics["without_last_stage"] = {"accuracy": alone["accuracy"], "macro_f1": alone["macro_f1"]}
    return SuiteResult(
        suite="stage", n=len(records), metrics=metrics, baselines=baselines,
        primary="macro_f1",
        details={"errors": _errors(records, truth, pred)},
        notes=["Turns replayed in conversation order with the stage stored at the previous turn (as serving)."
               if opts.replay else "Every turn scored alone, with no stored stage."],
    )


def _errors(records: Sequence[Any], truth: Sequence[str], pred: Sequence[str], limit: int = 25) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for r, t, p in zip(records, truth, pred, strict=True):
        if t != p and len(out) < limit:
            text = getattr(r, "text", None) or " / ".join(msg.text for msg in r.messages[-2:])
            out.append({"where": r.where, "text": text[:160], "truth": t, "pred": p})
    return out


def _probability_metrics(y: Sequence[int], p: Sequence[float]) -> dict[str, Any]:
    return {
        "roc_auc": m.roc_auc(y, p),
        "brier": m.brier(y, p),
        "ece": m.ece(y, p),
        "reliability": m.reliability(y, p),
    }


def run_intent(h: Harness, records: Sequence[IntentRecord], opts: RunOptions) -> SuiteResult:
    """Intent score / 100 as the probability that the conversation converts."""
    y = [r.outcome for r in records]
    if len(set(y)) < 2:
        raise ValidationError("the intent suite needs both outcomes (0 and 1) among its records")
    p = [h.copilot.analyze(h.tenant, request_for(r.messages, r.customer_id)).intent.score / 100 for r in records]
    keyword = [keyword_intent([msg.text for msg in r.messages if msg.role == "customer"]) for r in records]
    rate = sum(y) / len(y)
    metrics = _probability_metrics(y, p) | {"positive_rate": rate}
    return SuiteResult(
        suite="intent", n=len(records), metrics=metrics, primary="roc_auc",
        baselines={
            "keyword": _probability_metrics(y, keyword),
            "base_rate": _probability_metrics(y, [rate] * len(y)),
        },
        notes=["base_rate predicts the evaluated set's own positive rate for everyone: AUC 0.5, the Brier "
               "score a calibrated model must beat."],
    )


def run_classify(h: Harness, records: Sequence[ClassifyRecord], opts: RunOptions) -> SuiteResult:
    """Few-shot classification with out-of-scope detection, trained on --train, scored on --data."""
    train: Sequence[ClassifyRecord] = opts.train
    if not train:
        raise ValidationError("the classify suite needs --train FILE.jsonl with {text, label} examples")
    examples = [(r.text, r.label) for r in train]
    classifier = MessageClassifier(h.copilot.embedder).fit(examples)
    truth = [r.label for r in records]
    texts = [r.text for r in records]
    predicted = classifier.predict(texts)
    pred = [label for label, _ in predicted]
    keyword = KeywordClassifier(OOS_LABEL).fit(examples).predict(texts)
    labels = sorted(set(truth) | {lab for _, lab in examples})

    def score(guess: Sequence[str]) -> dict[str, Any]:
        out = _label_metrics(truth, guess, labels) | m.oos_scores(truth, guess, OOS_LABEL)
        in_scope = [(t, g) for t, g in zip(truth, guess, strict=True) if t != OOS_LABEL]
        out["in_scope_accuracy"] = m.accuracy([t for t, _ in in_scope], [g for _, g in in_scope]) if in_scope else None
        return out

    train_majority = Counter(lab for _, lab in examples if lab != OOS_LABEL).most_common(1)[0][0]
    return SuiteResult(
        suite="classify", n=len(records), metrics=score(pred), primary="macro_f1",
        baselines={"keyword": score(keyword), "majority": score([train_majority] * len(truth))},
        notes=[f"trained on {len(examples)} examples in {len(set(lab for _, lab in examples))} labels; "
               f"lexical mix {classifier.mix}, out-of-scope threshold {classifier.threshold:.3f}"],
        details={"errors": _errors(records, truth, pred)},
    )
