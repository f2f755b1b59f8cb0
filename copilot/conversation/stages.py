"""Stage detection: where this 1v1 relationship is (icebreak · discovery · recommend · revisit).

A linear evidence model over signals that carry from one brand to the next:
- general dialogue acts in the customer's latest words and the turn before (`cues.py`: greeting, who-are-you,
  describing a need, asking price/size/stock/how to buy, objection, after-sales feedback, repurchase,
  holiday greeting, bare acknowledgement, a question); the earlier turn's greeting, who-are-you, holiday wish,
  bare reply or question counts only while the latest words ask for nothing themselves;
- the tenant's own library: the stages its scripts' triggers are filed under (`LibraryStages`), the stages of
  the scripts closest to the customer's words and of those closest to the staff's last message (the step of
  the SOP staff are on);
- the profile: orders, their recency and repurchase cycle, a first contact with no history;
- the tenant's catalogue against the profile (`catalogue.py`): a product of the library named in the latest
  words or in the staff message they answer, and whether the customer's orders carry it (a product never
  bought is shopping, the one bought is more often its use), and the stages of a service of the library named;
- the state of the conversation (`_state`): what the staff message being answered does (asks about the need,
  quotes or links a product, handles after-sales, checks in), whether staff already offered something, whether
  the customer already said they bought or received it, who opened the conversation, and the combinations the
  labelling rules turn on (a greeting or holiday wish from someone already known, a how-to-use question after
  a purchase, a description given in answer to a staff question, a bare reply carrying the staff's step);
- the wording itself: where the configured embedder is the one the weights were fitted with, its vectors of the
  latest words and of the staff message they answer (the ones the library votes already computed) each add a
  learned linear score per stage, so a turn phrased like the dev turns of a stage leans that way even when no
  listed act fires; with another embedder (the hashing one of the fast tests) the signals-only weights serve;
- the last stage this conversation was in (a small weight, fitted on the dev sets replayed turn by turn: it
  settles a near tie, and any signal of the latest words outweighs it) and, where an LLM is configured, its vote.

Each signal adds `weight × value` to each stage and leaves a reason a person can read. The weights of the
dialogue-act, state, library and profile signals are fitted on the dev stage sets of three verticals
(`eval/tune_stage.py` writes `stage_weights.json`); test sets are never read for them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from copilot.conversation.catalogue import LibraryCatalogue, catalogue_features
from copilot.conversation.cues import (
    ACK,
    ADVICE,
    AFTERSALES,
    ALTERNATIVE,
    AMOUNT,
    AVAILABLE,
    BOUGHT,
    BUY,
    CHOOSE,
    DEAL,
    GREETING,
    HOLIDAY,
    HOW_TO_USE,
    IN_TRANSIT,
    OBJECTION,
    PRICE,
    PROBLEM,
    PRODUCT,
    RECEIVED,
    REFERRED,
    REPURCHASE,
    SHIPPING,
    SITUATION,
    SIZE,
    STAFF_ADVICE,
    STAFF_AFTERSALES,
    STAFF_CARE,
    STAFF_NEED,
    STAFF_OFFER,
    STAFF_SHIPPING,
    STAFF_SIZE,
    STOCK,
    SYMPTOM,
    WHO,
    Cue,
    find_cue,
)
from copilot.conversation.stage_library import LibraryStages, share
from copilot.conversation.turns import Turn, answered_staff_text, customer_turns, last_customer_text
from copilot.knowledge.schema import CustomerProfile, Stage

__all__ = ["FIRST_WORDS", "STAGE_CUES", "WEIGHTS_PATH", "StageModel", "StageResult", "StageSignals", "Wording",
           "detect_stage", "last_stage_weight", "stage_features", "stage_model", "stage_weights"]

STAGES = tuple(s.value for s in Stage)
WEIGHTS_PATH = Path(__file__).with_name("stage_weights.json")

# The dialogue acts stage detection reads, by the stage they usually speak for (the fitted weights decide
# how much each speaks for every stage; this grouping is for people and for tests).
STAGE_CUES: dict[Stage, list[Cue]] = {
    Stage.icebreak: [GREETING, WHO, REFERRED],
    Stage.discovery: [PROBLEM, ADVICE, SITUATION],
    Stage.recommend: [PRICE, BUY, STOCK, SIZE, SHIPPING, CHOOSE, DEAL, PRODUCT, OBJECTION],
    Stage.revisit: [RECEIVED, AFTERSALES, REPURCHASE, HOLIDAY],
}
# Shapes of the latest words and acts of the staff message they answer, read beside the cues above.
_SHAPES: tuple[Cue, ...] = (ALTERNATIVE, AVAILABLE, BOUGHT, AMOUNT, SYMPTOM, HOW_TO_USE, IN_TRANSIT)
_STAFF_ACTS: tuple[Cue, ...] = (STAFF_NEED, STAFF_OFFER, STAFF_AFTERSALES, STAFF_CARE, STAFF_ADVICE, STAFF_SIZE,
                                STAFF_SHIPPING)
_BUYING = ("now_price", "now_buy", "now_stock", "now_deal", "now_choose")
# Acts of the latest words about what the customer already has: a problem with it, or how to use it.
_USING = ("now_aftersales", "now_symptom", "now_how_to_use")
_QUESTION_ENDS = ("?", "？", "吗", "呢")
# Acts of the latest words that say nothing about what the customer wants.
_NOT_CONTENT = frozenset({"now_greeting", "now_who", "now_referred", "now_ack", "now_question", "now_holiday"})
_SHORT = re.compile(r"[\s\W_]+", re.UNICODE)
# Signals that say these are the customer's first words: dropped once the conversation has a stored stage.
FIRST_WORDS = ("first_words", "first_words_bare", "first_words_buyer", "first_words_question")
_LLM_WEIGHT = 1.5


@dataclass(frozen=True)
class StageResult:
    name: Stage
    confidence: float
    reasons: tuple[str, ...]
    scores: Mapping[str, float]


@dataclass(frozen=True)
class Wording:
    """The embedder's vectors of the customer's latest words and of the staff message they answer."""

    embedder: str  # the embedder's name: the wording weights apply only to the one they were fitted with
    customer: NDArray[np.float32] | None = None
    staff: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class StageSignals:
    """What the tenant's library says about this turn, gathered by the caller (which owns retrieval)."""

    library: LibraryStages | None = None
    customer_vote: Mapping[str, float] | None = None  # stages of the scripts closest to the customer's words
    staff_vote: Mapping[str, float] | None = None  # stages of the scripts closest to the staff's last message
    catalogue: LibraryCatalogue | None = None  # the products and services the tenant's library offers
    wording: Wording | None = None


def _acts(text: str, prefix: str, labels: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    if not text.strip():
        return out
    for cues in STAGE_CUES.values():
        for cue in cues:
            hit = find_cue(cue, text)
            if hit and not (cue is CHOOSE and find_cue(REFERRED, text)):  # 朋友推荐的: sent, not asking
                out[f"{prefix}{cue.name}"] = 1.0
                labels[f"{prefix}{cue.name}"] = f"“{hit}”{cue.label}"
    bare = _SHORT.sub("", text)
    if len(bare) <= 4 and (find_cue(ACK, text) or not bare):
        out[f"{prefix}ack"] = 1.0
        labels[f"{prefix}ack"] = f"“{text.strip()[:8]}”{ACK.label}"
    if text.rstrip().endswith(("?", "？", "吗", "呢")):
        out[f"{prefix}question"] = 1.0
        labels[f"{prefix}question"] = "在提问"
    return out


def stage_features(
    turns: Sequence[Turn], profile: CustomerProfile | None, *, today: dt.date, signals: StageSignals | None = None,
) -> tuple[dict[str, float], dict[str, str]]:
    """The signals of one turn as named values (mostly 0/1 or shares), and a reason for each that is set."""
    signals = signals or StageSignals()
    labels: dict[str, str] = {}
    said = customer_turns(turns)
    latest = last_customer_text(turns)
    previous = said[-2].text if len(said) >= 2 else ""
    features: dict[str, float] = {"bias": 1.0}
    now = _acts(latest, "now_", labels)
    if set(now) - {"now_greeting", "now_question", "now_ack"}:
        now.pop("now_greeting", None)  # a greeting in front of a real question is politeness, not a first contact
    features |= now
    before = _acts(previous, "before_", labels)
    if set(now) - _NOT_CONTENT:  # what the latest words ask for decides over an earlier greeting
        before = {k: v for k, v in before.items() if k.replace("before_", "now_", 1) not in _NOT_CONTENT}
    features |= before
    if signals.library is not None:
        vote = signals.library.vote(latest)
        for stage, value in vote.shares.items():
            if value > 0:
                features[f"trigger_{stage}"] = value
                labels[f"trigger_{stage}"] = f"话术库触发词“{'、'.join(vote.phrases[:3])}”"
    if not any(k.startswith(("now_", "trigger_")) and k != "now_question" for k in features):
        features["now_silent"] = 1.0  # nothing in the latest words: the exchange in progress decides
        labels["now_silent"] = "最新消息没有明确信号"
    if signals.catalogue is not None:
        features |= catalogue_features(signals.catalogue, latest, answered_staff_text(turns), profile, labels)
    for name, vote_of, what in (("query", signals.customer_vote, "与客户的话最相近的话术"),
                                ("staff", signals.staff_vote, "与顾问上一句最相近的话术")):
        for stage, value in share(vote_of).items():
            if value > 0:
                features[f"{name}_{stage}"] = value
                labels[f"{name}_{stage}"] = f"{what}多属于该阶段（{value:.0%}）"

    orders = sorted(profile.orders, key=lambda o: o.date) if profile else []
    history = list(profile.chat) if profile else []
    if profile is not None and orders:
        days = (today - orders[-1].date).days
        features["has_orders"] = 1.0
        labels["has_orders"] = f"老客户：有 {len(orders)} 笔订单"
        if days <= 14 and any(o.status == "delivered" for o in orders):
            features["recent_delivery"] = 1.0
            labels["recent_delivery"] = f"{days} 天前刚买过，可能在反馈使用情况"
        cycles = [line.cycle_days for line in orders[-1].items if line.cycle_days]
        if cycles and days >= min(cycles) * 0.8:
            features["cycle_due"] = 1.0
            labels["cycle_due"] = f"上次购买已 {days} 天，接近用完周期（{min(cycles)} 天）"
    elif profile is not None and not history:
        features["no_history"] = 1.0
        labels["no_history"] = "还没有聊天记录和订单"
    if len(said) <= 1:
        features["first_words"] = 1.0
        labels["first_words"] = "这是客户在本次对话里的第一句话"
    features |= _state(turns, profile, features, labels)
    return features, labels


def _flag(out: dict[str, float], labels: dict[str, str], name: str, label: str) -> None:
    out[name] = 1.0
    labels[name] = label


def _state(turns: Sequence[Turn], profile: CustomerProfile | None, features: Mapping[str, float],
           labels: dict[str, str]) -> dict[str, float]:
    """Where the conversation stands: what the staff message being answered does, what has happened so far
    (staff quoted a price or sent a link, the customer said they bought or received something), and the
    combinations the labelling rules turn on (a greeting or a holiday wish from someone already known, a
    how-to-use question after a purchase, a description given in answer to a staff question)."""
    out: dict[str, float] = {}
    said = customer_turns(turns)
    latest = said[-1].text if said else ""
    for cue in _SHAPES:
        if hit := find_cue(cue, latest):
            _flag(out, labels, f"now_{cue.name}", f"“{hit}”{cue.label}")
    answered = answered_staff_text(turns)
    if answered:
        if answered.rstrip().endswith(_QUESTION_ENDS) or "？" in answered[-12:]:
            _flag(out, labels, "answers_question", "客户在回答顾问的提问")
        for cue in _STAFF_ACTS:
            if hit := find_cue(cue, answered):
                _flag(out, labels, f"answers_{cue.name}", f"回应顾问的“{hit}”（{cue.label}）")
    staff_said = " ".join(t.text for t in turns if t.role == "staff")
    earlier = " ".join(t.text for t in said[:-1])
    if find_cue(STAFF_OFFER, staff_said):
        _flag(out, labels, "offered_before", "本次对话里顾问已经推荐或报过价")
    if any(find_cue(cue, earlier) for cue in (BOUGHT, RECEIVED, AFTERSALES)):
        _flag(out, labels, "bought_before", "客户在本次对话里说过已购买/收货/售后")
    buying = (PRICE, BUY, DEAL, SIZE, STOCK) if find_cue(REFERRED, earlier) else (PRICE, BUY, CHOOSE, DEAL, SIZE, STOCK)
    if any(find_cue(cue, earlier) for cue in buying):
        _flag(out, labels, "buying_before", "客户在本次对话里问过价格/购买")
    if turns and turns[0].role == "staff":
        _flag(out, labels, "staff_opened", "这次对话是顾问主动发起的")
        if profile is not None and profile.orders:
            _flag(out, labels, "staff_opened_buyer", "顾问主动联系老客户")
    # A bare reply carries the step of the staff message it answers.
    if features.get("now_ack") or features.get("now_silent"):
        for stage in STAGES:
            if features.get(f"staff_{stage}"):
                out[f"bare_staff_{stage}"] = features[f"staff_{stage}"]
                labels[f"bare_staff_{stage}"] = labels.get(f"staff_{stage}", "")
        for name in [n for n in out if n.startswith("answers_")]:
            _flag(out, labels, f"bare_{name}", labels[name])
    if features.get("first_words"):
        said_something = {n for n in (*features, *out) if n.startswith("now_")} - _NOT_CONTENT - {"now_silent"}
        if not said_something and not any(features.get(f"trigger_{s}") for s in STAGES if s != "icebreak"):
            _flag(out, labels, "first_words_bare", "初次接触，还没说具体的事")
        if features.get("has_orders"):
            _flag(out, labels, "first_words_buyer", "老客户开启新的对话")
        if features.get("now_question"):
            _flag(out, labels, "first_words_question", "客户一上来就提问")
    known = bool(profile and (profile.orders or profile.chat)) or not features.get("first_words")
    if known and features.get("now_greeting"):
        _flag(out, labels, "greeting_known", "已经认识的客户在打招呼")
    if known and features.get("now_holiday"):
        _flag(out, labels, "holiday_known", "已经认识的客户在节日问候")
    bought = any(features.get(n) or out.get(n) for n in ("has_orders", "bought_before", "now_bought", "now_received"))
    if bought and out.get("now_how_to_use"):
        _flag(out, labels, "how_to_use_bought", "买过之后问怎么用")
    if bought and (features.get("now_aftersales") or out.get("now_symptom")):
        _flag(out, labels, "problem_bought", "买过之后反馈问题")
    # A buyer asking to buy, for a price, a deal, a size or where the order is (再来一箱, 快用完了…多少钱, 我买的…到哪了)
    # is at the buying step again, unless the same words report a problem or ask how to use what they have: the
    # latest words decide, and the guide files delivery progress under recommend.
    shopping = any(features.get(n) for n in (*_BUYING, "now_size")) or out.get("now_in_transit")
    if bought and shopping and not any(features.get(n) or out.get(n) for n in _USING):
        _flag(out, labels, "buying_bought", "买过的客户又在问购买/价格/优惠/物流")
    describes = any(features.get(n) or out.get(n) for n in ("now_situation", "now_amount", "now_problem", "now_symptom"))
    if out.get("answers_question") and describes and not any(features.get(n) for n in _BUYING):
        _flag(out, labels, "answers_with_need", "客户在回答顾问的问题、描述自身情况")
        if out.get("offered_before") or out.get("answers_staff_offer") or out.get("answers_staff_size"):
            _flag(out, labels, "answers_after_offer", "顾问推荐之后补充情况（多为选规格）")
    out["turn_index"] = min(len(said), 6) / 6
    return out


@dataclass(frozen=True)
class StageModel:
    """One fitted table: the signals' weights, the previous stage's weight and, for the wording model, the
    per-stage linear scores of the embedder's vectors (dimension × stage, the fitted scale folded in)."""

    weights: dict[str, dict[str, float]]
    last_stage_weight: float
    embedder: str | None = None
    customer: NDArray[np.float64] | None = None
    staff: NDArray[np.float64] | None = None


def _table(raw: Mapping[str, object], where: str) -> dict[str, dict[str, float]]:
    weights = raw.get("weights")
    if not isinstance(weights, dict):
        raise ValueError(f"{where} has no weights table: refit it with python -m eval.tune_stage --write")
    return {feature: {s: float(w) for s, w in by_stage.items()} for feature, by_stage in weights.items()}


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[StageModel, StageModel | None]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    if "last_stage_weight" not in raw:
        raise ValueError(f"{path.name} has no last_stage_weight: refit it with python -m eval.tune_stage --write")
    plain = StageModel(_table(raw, path.name), float(raw["last_stage_weight"]))
    wording = raw.get("wording")
    if not wording:
        return plain, None
    missing = {"embedder", "last_stage_weight", "customer", "staff"} - set(wording)
    if missing:
        raise ValueError(f"{path.name}: the wording model lacks {sorted(missing)}; refit it with "
                         "python -m eval.tune_stage --write")
    customer = np.asarray(wording["customer"], dtype=np.float64)
    staff = np.asarray(wording["staff"], dtype=np.float64)
    if customer.ndim != 2 or customer.shape[1] != len(STAGES) or staff.shape != customer.shape:
        raise ValueError(f"{path.name}: the wording weights must be dimension × {len(STAGES)} stages; refit them")
    return plain, StageModel(_table(wording, f"{path.name} (wording)"), float(wording["last_stage_weight"]),
                             str(wording["embedder"]), customer, staff)


def stage_model(wording: Wording | None = None) -> StageModel:
    """The wording model when `wording` comes from the embedder it was fitted with, else the signals-only one."""
    plain, with_wording = _load(WEIGHTS_PATH)
    if wording is not None and with_wording is not None and wording.embedder == with_wording.embedder:
        assert with_wording.customer is not None
        for vector in (wording.customer, wording.staff):
            if vector is not None and vector.shape != (with_wording.customer.shape[0],):
                return plain  # same name, another width: not the vectors the weights were fitted on
        return with_wording
    return plain


def stage_weights() -> dict[str, dict[str, float]]:
    """Feature → stage → weight of the signals-only model, as fitted on the dev sets."""
    return _load(WEIGHTS_PATH)[0].weights


def last_stage_weight() -> float:
    """How much the stage stored at the previous suggestion of this conversation counts (signals-only model),
    fitted on the dev sets replayed turn by turn as serving asks them (each turn reading the stage detected at
    the one before)."""
    return _load(WEIGHTS_PATH)[0].last_stage_weight


def detect_stage(
    turns: Sequence[Turn],
    profile: CustomerProfile | None,
    *,
    today: dt.date,
    last_stage: str | None = None,
    signals: StageSignals | None = None,
    llm_vote: str | None = None,
    weights: Mapping[str, Mapping[str, float]] | None = None,
) -> StageResult:
    """Weigh the evidence for each stage and return the strongest, with its reasons."""
    scores = dict.fromkeys(STAGES, 0.0)
    reasons: dict[str, list[tuple[float, str]]] = {s: [] for s in STAGES}

    def add(stage: str, weight: float, reason: str) -> None:
        scores[stage] += weight
        if weight > 0:
            reasons[stage].append((weight, reason))

    model = stage_model(signals.wording if signals is not None and weights is None else None)
    if not turns:
        _opener(profile, today, add)
    else:
        features, labels = stage_features(turns, profile, today=today, signals=signals)
        if last_stage is not None:
            for name in FIRST_WORDS:
                features.pop(name, None)  # a stored conversation: these are not the customer's first words
        table = weights if weights is not None else model.weights
        for name, value in features.items():
            for stage, weight in table.get(name, {}).items():
                if stage in scores and value:
                    add(stage, weight * value, labels.get(name, ""))
        if model.customer is not None and model.staff is not None and signals is not None and signals.wording:
            for vector, matrix, what in ((signals.wording.customer, model.customer, "客户的说法"),
                                         (signals.wording.staff, model.staff, "所回应的顾问消息的说法")):
                if vector is None:
                    continue
                for stage, value in zip(STAGES, vector.astype(np.float64) @ matrix, strict=True):
                    add(stage, float(value), f"{what}像该阶段的对话")
    if last_stage in scores:
        add(last_stage, model.last_stage_weight, f"上一轮阶段是 {last_stage}")
    if llm_vote in scores:
        add(llm_vote, _LLM_WEIGHT, "大模型判断为该阶段")

    best = max(STAGES, key=lambda s: (scores[s], -STAGES.index(s)))
    shown = [r for _, r in sorted(reasons[best], key=lambda wr: -wr[0]) if r]
    return StageResult(
        name=Stage(best),
        confidence=_confidence(scores, best),
        reasons=tuple(dict.fromkeys(shown))[:5] or ("没有明确信号，按默认阶段处理",),
        scores={s: round(v, 3) for s, v in scores.items()},
    )


def _opener(profile: CustomerProfile | None, today: dt.date, add: Callable[[str, float, str], None]) -> None:
    """Nobody has said anything yet: the profile alone decides what the first message should be."""
    orders = sorted(profile.orders, key=lambda o: o.date) if profile else []
    if orders:
        days = (today - orders[-1].date).days
        add(Stage.revisit.value, 3.0, f"老客户：有 {len(orders)} 笔订单，上次购买在 {days} 天前，适合回访")
    elif profile is not None and profile.chat:
        add(Stage.discovery.value, 1.5, "聊过但还没有下单：继续了解需求")
    else:
        add(Stage.icebreak.value, 3.0, "新好友：还没有聊天记录和订单，先破冰")


def _confidence(scores: Mapping[str, float], best: str) -> float:
    """Softmax share of the winning stage, a calibrated-enough 0–1 figure for people to read."""
    top = max(scores.values())
    exps = {s: math.exp(v - top) for s, v in scores.items()}
    return round(exps[best] / sum(exps.values()), 3)
