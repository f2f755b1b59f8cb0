"""The sentence embedder's second look (`review.py`): only texts the n-gram layer scores just below a threshold, or
near one without a cue n-gram, are embedded, a flag from it says how it was decided and passes the checker's
filters, the model is trained out of fold and cached, and the Copilot takes it where one text at a time is judged."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from copilot.compliance import ComplianceChecker, normalize, review, semantic
from copilot.compliance.review import BAND, EmbeddingReview, ReviewModel, train_review
from copilot.embedding.embedders import HashingEmbedder

PACKS = ("general", "mother_baby")
DIM = 8


class CountingEmbedder:
    """A stand-in embedder that records what it was asked to embed and returns one fixed direction."""

    def __init__(self, name: str = "counting-test-embedder") -> None:
        self.name = name
        self.dim = DIM
        self.seen: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        rows = np.zeros((len(texts), DIM), dtype=np.float32)
        rows[:, 0] = 1.0
        return rows


@pytest.fixture(scope="module")
def layer() -> semantic.SemanticLayer:
    return semantic.default_layer()


@pytest.fixture(scope="module")
def checker() -> ComplianceChecker:
    return ComplianceChecker(packs=PACKS)


# Categories the checker drops from a text that warns about the practice (反诈提醒…): the filter test needs one.
DISCUSSABLE = ("ad_absolute", "ad_medical", "ad_finance", "ad_education", "ad_superstition", "false_promise",
               "review_cashback", "prize_lure", "spam_ad", "fraud", "off_platform")


@pytest.fixture(scope="module")
def doubtful(layer: semantic.SemanticLayer, checker: ComplianceChecker) -> tuple[str, str]:
    """A development line the checker does not flag whose layer score for a discussable category is within the
    band below its threshold, and that category."""
    for example in layer.examples:
        norm = normalize(example.text).text
        if not layer.has_cue(norm) or "？" in example.text or "?" in example.text or checker.check(example.text).flags:
            continue
        for name, score in layer.scores(norm).items():
            if name in DISCUSSABLE and layer.thresholds[name] - BAND <= score < layer.thresholds[name]:
                return example.text, name
    raise AssertionError("no development line lies in the doubt band")


@pytest.fixture(scope="module")
def uncued(layer: semantic.SemanticLayer, checker: ComplianceChecker) -> tuple[str, str]:
    """A development line without a cue n-gram, which the checker does not flag, that the layer scores at or above
    the band below a discussable category's threshold, and that category."""
    for example in layer.examples:
        norm = normalize(example.text).text
        if layer.has_cue(norm) or "？" in example.text or "?" in example.text or checker.check(example.text).flags:
            continue
        for name, score in layer.scores(norm).items():
            if name in DISCUSSABLE and score >= layer.thresholds[name] - BAND:
                return example.text, name
    raise AssertionError("no development line without a cue comes near a threshold")


def _far_below(layer: semantic.SemanticLayer) -> str:
    """A development line with a cue n-gram whose scores are all more than the band below their thresholds."""
    for example in layer.examples:
        norm = normalize(example.text).text
        if layer.has_cue(norm) and all(s < layer.thresholds[n] - BAND for n, s in layer.scores(norm).items()):
            return example.text
    raise AssertionError("no cue line far below every threshold")


def _stub(layer: semantic.SemanticLayer, category: str, threshold: float, name: str, *,
          pairs: bool = False) -> ReviewModel:
    """A review model whose score for `category` is 1 for the stand-in embedder's direction, 0 elsewhere: through
    the vector's first dimension, or with `pairs` through that dimension's product with itself."""
    k = len(layer.model.names)
    vector_weights = np.zeros((DIM, k))
    pair_weights = np.zeros((k, DIM, DIM))
    if pairs:
        pair_weights[layer.model.names.index(category), 0, 0] = 1.0
    else:
        vector_weights[0, layer.model.names.index(category)] = 1.0
    return ReviewModel(
        names=layer.model.names, weights=np.zeros((len(layer.model.vocabulary), k)), vector_weights=vector_weights,
        pair_weights=pair_weights, mean=np.zeros(DIM), biases=np.zeros(k), thresholds=np.full(k, threshold),
        digest=layer.version, embedder=name, oof={},
    )


def _second_look(layer: semantic.SemanticLayer, category: str, threshold: float) -> tuple[CountingEmbedder,
                                                                                       EmbeddingReview]:
    embedder = CountingEmbedder()
    return embedder, EmbeddingReview(embedder, model=_stub(layer, category, threshold, embedder.name))


def test_a_doubtful_text_gets_the_second_look_and_its_flag_says_so(
    layer: semantic.SemanticLayer, checker: ComplianceChecker, doubtful: tuple[str, str]
) -> None:
    text, category = doubtful
    embedder, second = _second_look(layer, category, 0.5)
    result = checker.check(text, review=second)
    assert embedder.seen == [text]
    flag = next(f for f in result.flags if f.category == category)
    assert flag.rule_id == f"semantic.{category}" and "语义复核" in flag.message and flag.evidence
    assert result.requires_approval


def test_products_of_two_vector_dimensions_count_in_the_second_looks_score(
    layer: semantic.SemanticLayer, checker: ComplianceChecker, doubtful: tuple[str, str]
) -> None:
    text, category = doubtful
    embedder = CountingEmbedder()
    second = EmbeddingReview(embedder, model=_stub(layer, category, 0.5, embedder.name, pairs=True))
    assert category in checker.check(text, review=second).categories
    assert embedder.seen == [text]


def test_the_second_look_does_not_flag_below_its_own_threshold(
    layer: semantic.SemanticLayer, checker: ComplianceChecker, doubtful: tuple[str, str]
) -> None:
    text, category = doubtful
    embedder, second = _second_look(layer, category, 1.5)
    assert checker.check(text, review=second).flags == ()
    assert embedder.seen == [text]


def test_a_text_without_a_cue_near_a_threshold_is_judged_by_the_second_look_alone(
    layer: semantic.SemanticLayer, checker: ComplianceChecker, uncued: tuple[str, str]
) -> None:
    text, category = uncued
    assert category not in checker.check(text).categories  # the bulk checker never scores it
    embedder, second = _second_look(layer, category, 0.5)
    flag = next(f for f in checker.check(text, review=second).flags if f.category == category)
    assert embedder.seen == [text]
    assert flag.rule_id == f"semantic.{category}" and "语义复核" in flag.message and flag.evidence
    score = layer.scores(normalize(text).text)[category]
    assert ("不含特征词" in flag.message) == (score >= layer.thresholds[category])
    refusing, second = _second_look(layer, category, 1.5)
    assert checker.check(text, review=second).flags == ()  # its own threshold decides, not the layer's score
    assert refusing.seen == [text]


def test_a_text_far_below_every_threshold_is_never_embedded(
    layer: semantic.SemanticLayer, checker: ComplianceChecker
) -> None:
    embedder, second = _second_look(layer, layer.model.names[0], -10.0)
    for text in (_far_below(layer), "好的，明天见", "宝宝最近睡得怎么样？"):
        checker.check(text, review=second)
    assert embedder.seen == []


def test_a_flag_from_the_second_look_passes_the_checkers_filters(
    layer: semantic.SemanticLayer, checker: ComplianceChecker, doubtful: tuple[str, str]
) -> None:
    text, category = doubtful
    embedder, second = _second_look(layer, category, 0.5)
    # A text that warns about a practice is not doing it: the checker drops the flag the second look raised.
    assert category not in checker.check(f"反诈提醒：{text}", review=second).categories
    assert embedder.seen == [f"反诈提醒：{text}"]
    rules_only = ComplianceChecker(packs=PACKS, semantic=False)
    assert category not in rules_only.check(text, review=second).categories  # no layer: nothing to look again at


def test_the_review_is_trained_out_of_fold_and_its_file_reloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    examples = semantic.load_training()[:1200]
    small = semantic.SemanticLayer(examples, semantic.train(examples))
    monkeypatch.setattr(review, "_REGISTRY", {})
    monkeypatch.setattr(semantic, "_CACHE_DIR", tmp_path)
    trained = EmbeddingReview(HashingEmbedder(64, name="vectors-a")).model_for(small)
    assert trained.digest == small.version and trained.names
    assert set(trained.names) <= set(semantic.design(examples).names)
    assert all(0.0 < stats["recall"] <= 1.0 and stats["precision"] >= 0.9 for stats in trained.oof.values())
    [cached] = tmp_path.glob("review-*.npz")
    # Another process (an empty registry) loads the file instead of embedding the training lines again.
    monkeypatch.setattr(review, "_REGISTRY", {})
    counting = CountingEmbedder("vectors-a")
    loaded = EmbeddingReview(counting).model_for(small)
    assert counting.seen == [] and loaded.names == trained.names
    assert np.array_equal(loaded.thresholds, trained.thresholds)
    assert np.array_equal(loaded.vector_weights, trained.vector_weights)
    assert np.array_equal(loaded.pair_weights, trained.pair_weights)
    # Another embedder's vectors make another model: its file is another one.
    monkeypatch.setattr(review, "_REGISTRY", {})
    EmbeddingReview(HashingEmbedder(64, name="vectors-b")).model_for(small)
    assert len(list(tmp_path.glob("review-*.npz"))) == 2 and cached.is_file()


def test_the_trained_weights_score_a_line_as_the_kernel_solve_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # The classifier is solved in the dual (one coefficient per line, over the kernel of n-grams, vectors and their
    # squared similarities) and kept as weights: both must give every line the same score.
    examples = semantic.load_training()[:600]
    vectors = np.random.default_rng(7).normal(size=(len(examples), DIM))
    solves: list[tuple[np.ndarray, np.ndarray]] = []
    solve = semantic._solve

    def recording(kernel: np.ndarray, targets: np.ndarray) -> np.ndarray:
        coef = solve(kernel, targets)
        solves.append((np.array(kernel, dtype=np.float64), coef))
        return coef

    monkeypatch.setattr(semantic, "_solve", recording)
    model = train_review(examples, vectors, "random-vectors")
    kernel, coef = solves[-1]  # the last solve is the one on every line; the others are out of fold
    assert kernel.shape == (len(examples), len(examples)) and model.names
    d = semantic.design(examples)
    keep = [d.names.index(name) for name in model.names]
    for i in (0, 123, 599):
        row = d.x[i]
        expected = (kernel[i] @ coef)[keep]
        assert np.allclose(model.score(row.indices, row.data, vectors[i]), expected, atol=1e-3)


def test_train_review_refuses_vectors_that_do_not_match_the_lines() -> None:
    examples = semantic.load_training()[:50]
    with pytest.raises(ValueError, match="50 training lines"):
        train_review(examples, np.zeros((49, DIM)), "x")


class RecordingHashing(HashingEmbedder):
    """Hashed n-gram vectors under a model's name (so the Copilot treats it as one), recording what it embeds."""

    def __init__(self) -> None:
        super().__init__(DIM, name="recording-model")
        self.seen: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().embed_queries(texts)


def test_the_copilot_takes_the_second_look_with_an_embedder_that_reads_meaning(
    hashing_copilot: Any, layer: semantic.SemanticLayer, doubtful: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from copilot.service import Copilot
    from tests.conftest import fixed_clock, storage

    assert hashing_copilot.compliance_review is None  # the hashing embedder only repeats the layer's n-grams
    text, category = doubtful
    assert category not in hashing_copilot.check("default", text).categories
    embedder = RecordingHashing()
    # The model it would train at start-up (minutes with a real embedder) is the one thing put in place here.
    monkeypatch.setitem(review._REGISTRY, (embedder.name, layer.version), _stub(layer, category, -10.0, embedder.name))
    engine, store = storage(tmp_path, embedder)
    copilot = Copilot(engine=engine, embedder=embedder, store=store, compliance=ComplianceChecker(), clock=fixed_clock)
    assert isinstance(copilot.compliance_review, EmbeddingReview)
    embedder.seen.clear()
    assert category in copilot.check("default", text).categories
    assert embedder.seen == [text]
