"""A second look, with the copilot's sentence embedder, at texts the n-gram classifiers leave in doubt.

The semantic layer (`semantic.py`) reads character n-grams: cheap enough for every message, blind to wording that
shares little surface with its training lines. The copilot's sentence embedder reads meaning but costs milliseconds
a text on a CPU. So the embedder looks only at the texts the n-gram layer scores within `BAND` below a category's
threshold (and no rule already flagged for that category): there a second classifier, trained on the same lines
with the kernel of the n-grams plus `_WEIGHT` times that of the centred sentence vectors plus `_PAIR_WEIGHT` times
its square, decides, at a threshold chosen the same way as the layer's (out-of-fold, under a clean-line budget of its
own). A text the n-gram layer already flags, or scores far below, is never embedded.

The squared similarity makes every product of two vector dimensions a feature: a linear classifier over the vector
can only weigh how far a text lies along one direction, while the products let it learn that a direction matters
only together with another. It is kept as weights,
one matrix per category (`pair_weights`, 384 × 384 for multilingual-e5-small), so scoring a text stays a few
matrix-vector products.

A text without any of the layer's cue n-grams is one the bulk checker does not score at all. Here it is scored,
and every category it scores at or above the band below the threshold goes to the second classifier, which alone
may flag it: the cues keep the layer's own flags precise, but a third of the risky lines the checker missed held
out held no cue (competitor most of all, whose wording names no product word).

Out of fold on the development split, the n-gram layer alone recalls 0.628 of the risky lines with 38 of 7,235
clean lines flagged; with this second look inside a band of 0.2 it recalls 0.680 with 51 (the n-gram layer with a
budget raised to 50 clean lines reaches 0.652). Bands of 0.1 and 0.3 gave 0.663 and 0.682. Held out through the
whole checker: micro recall 0.718 without it, 0.738 when it looked only at cued texts in the band (clean sales chat
131 -> 138 of 5,574), 0.761 with the texts without a cue and half the budget (144), 0.780 with the squared similarity
(142); `eval/datasets/COMPLIANCE_GUIDE.md` has the figures and why these were kept.

It runs where one text at a time is judged and milliseconds do not matter — drafts before they are shown or sent,
the send gate, the customer's message behind the sidebar's warnings, the webhook — through `Copilot.check`. The bulk
checker (quality inspection of the chat archive, `bench/compliance_throughput.py`) does not use it. It needs an
embedder that reads meaning: with the hashing embedder of the tests there is no second look (`reads_meaning`).

Training embeds every development line once (about two minutes on two cores with multilingual-e5-small) and solves
the same kernel problem as the layer; with the layer's cache directory (`semantic.use_cache_dir`) the result is kept
there, keyed by the training data, the code and the embedder, so a restart loads it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.compliance import semantic
from copilot.compliance.semantic import Example, SemanticLayer, design, out_of_fold
from copilot.compliance.tuned import TunedReader, cached_tuned, transformer_of

__all__ = ["BAND", "EmbeddingReview", "ReviewModel", "reads_meaning", "train_review"]

_log = logging.getLogger(__name__)

BAND = 0.2  # how far below a category's n-gram threshold a text is looked at again (out of fold, see above)
_WEIGHT = 0.5  # kernel = n-grams + _WEIGHT · sentence vectors; 1 and 2 gave the same out of fold
# + _PAIR_WEIGHT · (vector · vector)²: out of fold on the development split at the layer's budget, micro recall
# 0.663 without it, 0.707, 0.710 and 0.702 with 0.5, 1 and 2 (a cube, an exponential or an RBF kernel in its place
# gave 0.659, 0.650 and 0.679 at best)
_PAIR_WEIGHT = 1.0
# The clean training lines the second look may flag out of fold (spent like the layer's `_MAX_CLEAN_FP`): half the
# layer's since texts without a cue come to it too (held-out dev: 0.2%, 0.3%, 0.45%, 0.6% gave micro R 0.754, 0.761,
# 0.770, 0.774 with 143, 144, 149, 157 clean sales chat lines of 5,574 flagged; 0.3% is where clean lines start to
# cost more than they recall).
_MAX_CLEAN_FP = 0.003
_EMBED_BATCH = 256
_REGISTRY: dict[tuple[str, str], ReviewModel] = {}  # (embedder, training digest) → model, per process
_BUILDING: dict[tuple[str, str], threading.Lock] = {}
_TUNED: dict[tuple[str, str], TunedReader] = {}
_REGISTRY_LOCK = threading.Lock()


@dataclass(frozen=True)
class ReviewModel:
    """The second classifier: n-gram and sentence-vector weights per category, thresholds chosen out of fold."""

    names: tuple[str, ...]
    weights: np.ndarray  # the layer's vocabulary × names
    vector_weights: np.ndarray  # embedding dimension × names
    pair_weights: np.ndarray  # names × embedding dimension × embedding dimension
    mean: np.ndarray  # the training lines' mean vector, subtracted before the vectors are compared
    biases: np.ndarray
    thresholds: np.ndarray
    digest: str  # the training data (the layer's `version`): the vocabulary columns must be the layer's
    embedder: str
    oof: dict[str, dict[str, float]]

    def score(self, cols: np.ndarray, values: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """Every category's score for one text's n-gram features and sentence vector."""
        centred = _centred(vector[None, :], self.mean)[0]
        lexical = values @ self.weights[cols] if len(cols) else 0.0
        pairs = (self.pair_weights @ centred) @ centred
        return lexical + centred @ self.vector_weights + pairs + self.biases


def _centred(vectors: np.ndarray, mean: np.ndarray) -> np.ndarray:
    rows = np.asarray(vectors, dtype=np.float64) - mean
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def train_review(examples: Sequence[Example], vectors: np.ndarray, embedder: str) -> ReviewModel:
    """Fit the second classifier on `examples` and their sentence vectors (one row per example)."""
    if len(vectors) != len(examples):
        raise ValueError(f"{len(vectors)} sentence vectors for {len(examples)} training lines")
    d = design(examples)
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    e = _centred(vectors, mean)
    # float32 like the solves: the n×n kernels are the memory this costs (about 1 GB for 15,000 lines)
    kernel = (d.x @ d.x.T).astype(np.float32).toarray()
    vectors32 = e.astype(np.float32)
    similarity = vectors32 @ vectors32.T
    kernel += _WEIGHT * similarity
    kernel += _PAIR_WEIGHT * np.square(similarity, out=similarity)
    del similarity
    kernel += 1.0  # the bias, as a constant feature
    targets = d.targets
    scores = out_of_fold(kernel, targets)
    found = semantic._thresholds(scores, d.labels, d.clean, _MAX_CLEAN_FP)
    coef = semantic._solve(kernel, targets)
    keep = [j for j, f in enumerate(found) if f is not None]
    return ReviewModel(
        names=tuple(d.names[j] for j in keep),
        weights=np.ascontiguousarray(np.asarray(d.x.T @ coef)[:, keep]),
        vector_weights=np.ascontiguousarray(_WEIGHT * (e.T @ coef)[:, keep]),
        pair_weights=np.stack([_PAIR_WEIGHT * (e * coef[:, [j]]).T @ e for j in keep]) if keep
        else np.zeros((0, e.shape[1], e.shape[1])),
        mean=mean, biases=coef.sum(axis=0)[keep],
        thresholds=np.array([found[j][0] for j in keep]),  # type: ignore[index]
        digest=semantic.training_digest(examples), embedder=embedder,
        oof={d.names[j]: found[j][1] for j in keep},  # type: ignore[index]
    )


def reads_meaning(embedder: object) -> bool:
    """Whether a second look with this embedder can add anything: the hashing embedder (tests) only hashes the
    character n-grams the layer already reads."""
    return not str(getattr(embedder, "name", "")).startswith("hashing")


class EmbeddingReview:
    """The second look for one embedder. Its model is trained (or loaded from the cache directory) once per process
    and embedder: `warm` starts that in the background, and a text that needs it before then waits for it."""

    def __init__(self, embedder: object, *, model: ReviewModel | None = None, tuned: bool = False) -> None:
        self.embedder = embedder
        self.name = str(getattr(embedder, "name", "embedder"))
        self._model = model
        # With `tuned`, the third look (`tuned.py`): the embedder's top layers fine-tuned on the same lines, where
        # the embedder has a transformer to fine-tune.
        self._tuned_wanted = tuned and transformer_of(embedder) is not None
        self._tuned: TunedReader | None = None

    def tuned_for(self, layer: SemanticLayer) -> TunedReader | None:
        """The fine-tuned reader for the layer's training lines (trained or loaded once per process and embedder),
        or None when it was not asked for or the embedder has no transformer to fine-tune."""
        if not self._tuned_wanted:
            return None
        reader = self._tuned
        if reader is not None and reader.model.digest == layer.version:
            return reader
        key = (f"tuned:{self.name}", layer.version)
        with _REGISTRY_LOCK:
            lock = _BUILDING.setdefault(key, threading.Lock())
        with lock:
            reader = _TUNED.get(key)
            if reader is None:
                reader = _TUNED[key] = TunedReader(self.embedder, cached_tuned(layer.examples, self.embedder))
        self._tuned = reader
        return reader

    def tuned_flagged(self, layer: SemanticLayer, text: str, skip: set[str]) -> dict[int, tuple[float, float]]:
        """The layer's categories (indexes into `layer.model.names`) outside `skip` that the fine-tuned reader
        flags, each with its score and threshold."""
        reader = self.tuned_for(layer)
        if reader is None:
            return {}
        [scores] = reader.scores([text])
        index = {name: j for j, name in enumerate(layer.model.names)}
        found = {}
        for k, name in enumerate(reader.model.names):
            j = index.get(name)
            if j is not None and name not in skip and scores[k] >= reader.model.thresholds[k]:
                found[j] = (float(scores[k]), float(reader.model.thresholds[k]))
        return found

    def model_for(self, layer: SemanticLayer) -> ReviewModel:
        model = self._model
        if model is not None and model.digest == layer.version:
            return model
        key = (self.name, layer.version)
        with _REGISTRY_LOCK:
            lock = _BUILDING.setdefault(key, threading.Lock())
        with lock:  # one training per embedder and training set, however many Copilots ask
            model = _REGISTRY.get(key)
            if model is None:
                model = _REGISTRY[key] = self._trained(layer.examples)
        self._model = model
        return model

    def warm(self, layer: SemanticLayer) -> threading.Thread:
        """Train or load the model in a background thread (the first doubtful text would otherwise wait for it).
        Not a daemon: a process that exits while it trains waits for it, as torch cannot be torn down mid-call."""
        def build() -> None:
            self.model_for(layer)
            self.tuned_for(layer)

        thread = threading.Thread(target=build, name="compliance-review", daemon=False)
        thread.start()
        return thread

    def flagged(self, layer: SemanticLayer, text: str, cols: np.ndarray, values: np.ndarray,
                doubt: Sequence[int]) -> dict[int, tuple[float, float]]:
        """Of the layer's categories `doubt` (indexes into `layer.model.names`), those the second classifier
        flags, each with its score and threshold."""
        model = self.model_for(layer)
        [vector] = self.embedder.embed_queries([text])  # type: ignore[attr-defined]
        scores = model.score(cols, values, np.asarray(vector))
        index = {name: k for k, name in enumerate(model.names)}
        found = {}
        for j in doubt:
            k = index.get(layer.model.names[j])
            if k is not None and scores[k] >= model.thresholds[k]:
                found[j] = (float(scores[k]), float(model.thresholds[k]))
        return found

    def _trained(self, examples: Sequence[Example]) -> ReviewModel:
        cache = semantic.cache_dir()
        if cache is None:
            return self._train(examples)
        key = hashlib.sha256(semantic.cache_key(examples).encode() + Path(__file__).read_bytes()
                             + self.name.encode()).hexdigest()[:20]
        path = cache / f"review-{key}.npz"
        cache.mkdir(parents=True, exist_ok=True)
        # Every API process and worker builds a Copilot: one trains while the others wait, then load its file.
        with (cache / f".review-{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if path.is_file():
                try:
                    return _load(path)
                except (OSError, ValueError, KeyError) as exc:  # torn or foreign: train again and replace it
                    _log.warning("ignoring unreadable compliance review cache %s: %s", path, exc)
            model = self._train(examples)
            try:
                _save(model, path)
            except OSError as exc:
                _log.warning("could not cache the compliance review in %s: %s", path, exc)
            return model

    def _train(self, examples: Sequence[Example]) -> ReviewModel:
        started = time.perf_counter()
        texts = [e.text for e in examples]
        embed = self.embedder.embed_queries  # type: ignore[attr-defined]
        vectors = np.concatenate([np.asarray(embed(texts[i : i + _EMBED_BATCH]), dtype=np.float32)
                                  for i in range(0, len(texts), _EMBED_BATCH)])
        model = train_review(examples, vectors, self.name)
        _log.info("compliance review trained with %s on %d lines in %.1fs", self.name, len(examples),
                  time.perf_counter() - started)
        return model


def _save(model: ReviewModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as out:
        np.savez(out, names=np.array(model.names, dtype=str), weights=model.weights, vector_weights=model.vector_weights,
                 pair_weights=model.pair_weights, mean=model.mean, biases=model.biases, thresholds=model.thresholds, digest=np.array(model.digest),
                 embedder=np.array(model.embedder), oof=np.array(json.dumps(model.oof)))
    os.replace(tmp, path)


def _load(path: Path) -> ReviewModel:
    with np.load(path, allow_pickle=False) as data:
        return ReviewModel(
            names=tuple(str(n) for n in data["names"].tolist()), weights=data["weights"],
            vector_weights=data["vector_weights"], pair_weights=data["pair_weights"], mean=data["mean"], biases=data["biases"],
            thresholds=data["thresholds"], digest=str(data["digest"]), embedder=str(data["embedder"]),
            oof=json.loads(str(data["oof"])),
        )
