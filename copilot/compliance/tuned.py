"""A third look: the top layers of the copilot's sentence embedder, fine-tuned on the development split as one
multi-label classifier of the compliance categories.

The n-gram layer (`semantic.py`) and the second look (`review.py`) are linear classifiers over features that stay
fixed: the character n-grams, and the embedder's sentence vector, which was trained to find passages for a query,
not to tell a smear from a comparison. Here the last `TOP_LAYERS` transformer layers of that same embedder are
trained on the development lines, with a linear head over their mean-pooled output, so what the layers attend to is
learnt from the categories themselves. The lower layers stay the embedder's own: they run once per text and are
shared with it, so only the top layers' weights (a few million numbers) and the head are kept.

Trained on the lines of four of the five folds (`semantic.fold_of`); the fifth, never trained on, chooses each
category's threshold: the layer's clean margin (0.05) above the highest score of any of its clean lines (clean
sales chat and prose alike), and never below 0.5. What a flag from here costs on clean wording the thresholds never
saw was measured with a fold held out of both (`_MARGIN`) and on blind batches (`eval/datasets/COMPLIANCE_GUIDE.md`).

It runs wherever the second look runs (`Copilot.check`: drafts, the send gate, customer messages, the webhook) on
every text, about 15 ms a short text on two cores, and never in the bulk checker. Training takes a few minutes on
two cores (`copilot prepare` does it once; the result is kept in the layer's cache directory, keyed by the training
data, this code and the embedder). It needs an embedder whose transformer it can reach (a sentence-transformers
model); with any other there is no third look.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from copilot.compliance import semantic
from copilot.compliance.semantic import Example

__all__ = ["TOP_LAYERS", "TunedModel", "TunedReader", "transformer_of"]

_log = logging.getLogger(__name__)

TOP_LAYERS = 4  # the embedder's last layers that are trained (multilingual-e5-small has 12)
_EPOCHS = 3
_BATCH = 32
_MAX_TOKENS = 64  # sales chat lines are short; longer texts are read up to here
_LAYER_RATE = 4e-5
_HEAD_RATE = 2e-3
_THRESHOLD_FOLD = 0  # the fold whose lines choose the thresholds and are never trained on
_MIN_THRESHOLD = 0.5
_MIN_EXAMPLES = 15  # categories with fewer training lines get no classifier
_SEED = 0
# How far above the threshold fold's highest clean score a threshold sits: the layer's own `_CLEAN_MARGIN` (new clean
# wording scores a little higher). Trained on three folds, thresholds on the fourth, the fifth held out: the tuned
# layers added 5, 5, 3, 3 and 2 clean sales-chat lines of 1,128 at margins 0.0001, 0.02, 0.05, 0.1 and 0.15, and
# 35, 34, 32, 27 and 16 risky lines of 1,631; 0.05 is the first within the second look's budget (0.3%).
_MARGIN = semantic._CLEAN_MARGIN


def transformer_of(embedder: object) -> tuple[Any, Any, str, threading.Lock] | None:
    """The tokenizer, the transformer, the query prompt and the tokenizer's lock of a sentence-transformers embedder
    whose model is a BERT-style encoder (embeddings, then a stack of layers), or None for any other embedder."""
    parts = getattr(embedder, "transformer_parts", None)
    if parts is None:
        return None
    found = parts()
    if found is None:
        return None
    model = found[1]
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None or not hasattr(model, "embeddings") or len(layers) <= TOP_LAYERS:
        return None
    return found


@dataclass(frozen=True)
class TunedModel:
    """The trained top layers and head, and a threshold per category chosen on the held-out fold."""

    names: tuple[str, ...]
    state: dict[str, Any]  # the top layers' and the head's tensors, by name
    thresholds: np.ndarray
    digest: str  # the training data (the layer's `version`)
    embedder: str
    held_out: dict[str, dict[str, float]]  # per category on the threshold fold: positives, found


class TunedReader:
    """Scores texts with the fine-tuned top layers over the embedder's own lower layers."""

    def __init__(self, embedder: object, model: TunedModel) -> None:
        import torch

        parts = transformer_of(embedder)
        if parts is None:
            raise ValueError(f"the embedder {getattr(embedder, 'name', embedder)!r} has no transformer to fine-tune")
        self._tokenizer, self._base, self._prompt, self._tokenizer_lock = parts
        self.model = model
        self._top, self._head = _fresh_top(self._base, len(model.names))
        self._top.load_state_dict({k[4:]: v for k, v in model.state.items() if k.startswith("top.")})
        self._head.load_state_dict({k[5:]: v for k, v in model.state.items() if k.startswith("head.")})
        self._top.eval()
        self._torch = torch

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every category's probability for each text (rows follow `texts`, columns `model.names`)."""
        torch = self._torch
        if not texts:
            return np.zeros((0, len(self.model.names)), dtype=np.float32)
        with self._tokenizer_lock:
            ids, mask = _tokens(self._tokenizer, self._prompt, texts)
        with torch.inference_mode():
            hidden = _lower(self._base, ids, mask)
            logits = _upper(self._top, self._head, hidden, mask)
            return torch.sigmoid(logits).numpy().astype(np.float32)


def train_tuned(examples: Sequence[Example], embedder: object, *, epochs: int = _EPOCHS,
                rates: tuple[float, float] = (_LAYER_RATE, _HEAD_RATE)) -> TunedModel:
    """Fine-tune the top layers on the lines outside the threshold fold; choose thresholds on that fold.
    `epochs` and `rates` (the layers', the head's) are for tests with a tiny transformer."""
    import torch

    parts = transformer_of(embedder)
    if parts is None:
        raise ValueError(f"the embedder {getattr(embedder, 'name', embedder)!r} has no transformer to fine-tune")
    tokenizer, base, prompt, tokenizer_lock = parts
    started = time.perf_counter()
    counts: dict[str, int] = {}
    for e in examples:
        for c in e.categories:
            counts[c] = counts.get(c, 0) + 1
    names = tuple(sorted(c for c, n in counts.items() if n >= _MIN_EXAMPLES))
    targets = np.zeros((len(examples), len(names)), dtype=np.float32)
    column = {c: j for j, c in enumerate(names)}
    for i, e in enumerate(examples):
        for c in e.categories:
            if c in column:
                targets[i, column[c]] = 1.0
    folds = semantic.fold_of(len(examples))
    fit = np.flatnonzero(folds != _THRESHOLD_FOLD)
    hold = np.flatnonzero(folds == _THRESHOLD_FOLD)
    texts = [e.text for e in examples]
    torch.manual_seed(_SEED)
    with tokenizer_lock, torch.no_grad():  # not inference_mode: these states are trained on
        lower = _lower_states(tokenizer, prompt, base, texts)
    top, head = _fresh_top(base, len(names))
    optimiser = torch.optim.AdamW([{"params": top.parameters(), "lr": rates[0]},
                                   {"params": head.parameters(), "lr": rates[1]}], weight_decay=0.01)
    steps = epochs * -(-len(fit) // _BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=list(rates), total_steps=steps, pct_start=0.1)
    loss_of = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(_SEED)
    top.train()
    for _ in range(epochs):
        for batch in _batches(fit, lower, rng):
            hidden, mask = _padded(torch, [lower[i] for i in batch])
            loss = loss_of(_upper(top, head, hidden, mask), torch.from_numpy(targets[batch]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    top.eval()
    held = np.zeros((len(hold), len(names)), dtype=np.float32)
    with torch.inference_mode():
        order = sorted(range(len(hold)), key=lambda k: len(lower[hold[k]]))
        for s in range(0, len(order), 128):
            rows = order[s : s + 128]
            hidden, mask = _padded(torch, [lower[hold[k]] for k in rows])
            held[rows] = torch.sigmoid(_upper(top, head, hidden, mask)).numpy()
    clean = np.array([not examples[int(i)].categories for i in hold])
    thresholds = np.full(len(names), _MIN_THRESHOLD, dtype=np.float64)
    if clean.any():
        highest = held[clean].max(axis=0).astype(np.float64)
        thresholds = np.maximum(thresholds, highest + _MARGIN)
    found = held >= thresholds
    report = {c: {"positives": float(targets[hold, j].sum()), "found": float((found[:, j] & (targets[hold, j] > 0)).sum())}
              for j, c in enumerate(names)}
    state = {f"top.{k}": v.detach().clone() for k, v in top.state_dict().items()}
    state.update({f"head.{k}": v.detach().clone() for k, v in head.state_dict().items()})
    _log.info("compliance tuned layers trained on %d lines in %.1fs", len(fit), time.perf_counter() - started)
    return TunedModel(names=names, state=state, thresholds=thresholds, digest=semantic.training_digest(examples),
                      embedder=str(getattr(embedder, "name", "embedder")), held_out=report)


def _fresh_top(base: Any, categories: int) -> tuple[Any, Any]:
    import torch

    top = torch.nn.ModuleList(copy.deepcopy(layer) for layer in base.encoder.layer[-TOP_LAYERS:])
    head = torch.nn.Linear(base.config.hidden_size, categories)
    return top, head


def _tokens(tokenizer: Any, prompt: str, texts: Sequence[str]) -> tuple[Any, Any]:
    encoded = tokenizer([prompt + t for t in texts], truncation=True, max_length=_MAX_TOKENS, padding=True,
                        return_tensors="pt")
    return encoded["input_ids"], encoded["attention_mask"]


def _additive(torch: Any, mask: Any) -> Any:
    return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min


def _run(layers: Any, hidden: Any, mask: Any) -> Any:
    import torch

    extended = _additive(torch, mask)
    for layer in layers:
        out = layer(hidden, attention_mask=extended)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def _lower(base: Any, ids: Any, mask: Any) -> Any:
    """The embedder's hidden states below the trained layers."""
    import torch

    hidden = base.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    return _run(base.encoder.layer[: len(base.encoder.layer) - TOP_LAYERS], hidden, mask)


def _upper(top: Any, head: Any, hidden: Any, mask: Any) -> Any:
    out = _run(top, hidden, mask)
    weights = mask[..., None].to(out.dtype)
    pooled = (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return head(pooled)


def _lower_states(tokenizer: Any, prompt: str, base: Any, texts: Sequence[str]) -> list[Any]:
    """Each text's hidden states below the trained layers, without padding (float16 to halve the memory)."""
    import torch

    states: list[Any] = [None] * len(texts)
    lengths = [len(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    for s in range(0, len(order), 64):
        rows = order[s : s + 64]
        ids, mask = _tokens(tokenizer, prompt, [texts[i] for i in rows])
        hidden = _lower(base, ids, mask)
        for k, i in enumerate(rows):
            states[i] = hidden[k, : int(mask[k].sum())].to(torch.float16).clone()
    return states


def _padded(torch: Any, rows: list[Any]) -> tuple[Any, Any]:
    longest = max(r.shape[0] for r in rows)
    hidden = torch.zeros((len(rows), longest, rows[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for k, r in enumerate(rows):
        hidden[k, : r.shape[0]] = r.float()
        mask[k, : r.shape[0]] = 1
    return hidden, mask


def _batches(indexes: np.ndarray, states: list[Any], rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of lines of about one length (chunks of 50 batches sorted by length, then shuffled)."""
    order = rng.permutation(indexes)
    batches: list[np.ndarray] = []
    for s in range(0, len(order), _BATCH * 50):
        chunk = order[s : s + _BATCH * 50]
        chunk = chunk[np.argsort([states[i].shape[0] for i in chunk], kind="stable")]
        batches.extend(chunk[k : k + _BATCH] for k in range(0, len(chunk), _BATCH))
    rng.shuffle(batches)
    return batches


def cached_tuned(examples: Sequence[Example], embedder: object) -> TunedModel:
    """The model for `examples` and `embedder`, from the layer's cache directory when it holds one."""
    import fcntl

    import torch

    cache = semantic.cache_dir()
    if cache is None:
        return train_tuned(examples, embedder)
    name = str(getattr(embedder, "name", "embedder"))
    key = hashlib.sha256(semantic.cache_key(examples).encode() + Path(__file__).read_bytes()
                         + name.encode()).hexdigest()[:20]
    path = cache / f"tuned-{key}.pt"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f".tuned-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            try:
                return _from_saved(torch.load(path, weights_only=True))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:  # torn or foreign: train again
                _log.warning("ignoring unreadable compliance tuned-layer cache %s: %s", path, exc)
        model = train_tuned(examples, embedder)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            torch.save(_to_saved(model), tmp)
            os.replace(tmp, path)
        except OSError as exc:
            _log.warning("could not cache the compliance tuned layers in %s: %s", path, exc)
        return model


def _to_saved(model: TunedModel) -> dict[str, Any]:
    return {"names": list(model.names), "state": model.state, "thresholds": model.thresholds.tolist(),
            "digest": model.digest, "embedder": model.embedder,
            "held_out": {c: [v["positives"], v["found"]] for c, v in model.held_out.items()}}


def _from_saved(data: dict[str, Any]) -> TunedModel:
    return TunedModel(names=tuple(data["names"]), state=dict(data["state"]),
                      thresholds=np.asarray(data["thresholds"], dtype=np.float64), digest=str(data["digest"]),
                      embedder=str(data["embedder"]),
                      held_out={c: {"positives": float(p), "found": float(f)} for c, (p, f) in data["held_out"].items()})
