"""Few-shot message classification: labels, confidences and out-of-scope rejection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from copilot.conversation.message_intents import OOS_LABEL, MessageClassifier
from copilot.embedding.embedders import HashingEmbedder, Vectors
from copilot.errors import ValidationError

TRAIN = [
    ("我的快递到哪了", "logistics"),
    ("快递什么时候发货", "logistics"),
    ("物流几天没更新了", "logistics"),
    ("快递单号发我一下", "logistics"),
    ("我要退货退款", "refund"),
    ("退款什么时候到账", "refund"),
    ("没拆封可以退货吗", "refund"),
    ("申请退款怎么操作", "refund"),
    ("积分怎么兑换", "membership"),
    ("会员积分快过期了", "membership"),
    ("会员等级怎么升级", "membership"),
    ("积分商城在哪里", "membership"),
]
OOS = [
    ("what is the weather tomorrow", OOS_LABEL),
    ("recommend a movie for tonight", OOS_LABEL),
    ("how do I fix my laptop", OOS_LABEL),
    ("book me a flight to Paris", OOS_LABEL),
]


@pytest.fixture(scope="module")
def classifier() -> MessageClassifier:
    return MessageClassifier(HashingEmbedder()).fit(TRAIN + OOS)


def test_predicts_the_class_whose_examples_a_message_resembles(classifier: MessageClassifier) -> None:
    got = classifier.predict(["快递到哪了呀", "退款到账了吗", "积分能兑换什么"])
    assert [label for label, _ in got] == ["logistics", "refund", "membership"]
    assert all(0.0 <= conf <= 1.0 for _, conf in got)


def test_unrelated_messages_are_out_of_scope(classifier: MessageClassifier) -> None:
    got = classifier.predict(["xyz qqq zzz", "tell me a joke about cats"])
    assert [label for label, _ in got] == [OOS_LABEL, OOS_LABEL]


def test_oos_examples_are_not_a_class(classifier: MessageClassifier) -> None:
    assert classifier.labels == ["logistics", "membership", "refund"]


def test_a_clear_match_is_more_confident_than_an_ambiguous_one(classifier: MessageClassifier) -> None:
    (_, clear), (_, mixed) = classifier.predict(["快递单号发我一下", "快递退款积分"])
    assert clear > mixed


def test_without_oos_examples_most_training_like_text_is_kept() -> None:
    classifier = MessageClassifier(HashingEmbedder()).fit(TRAIN)
    got = classifier.predict([text for text, _ in TRAIN])
    kept = [label for label, _ in got if label != OOS_LABEL]
    assert len(kept) >= len(TRAIN) - 2
    assert classifier.threshold > float("-inf")


def test_needs_two_labels_besides_oos() -> None:
    with pytest.raises(ValidationError, match="two labels"):
        MessageClassifier(HashingEmbedder()).fit([("快递到哪了", "logistics"), *OOS])


def test_empty_examples_name_the_bad_one() -> None:
    with pytest.raises(ValidationError, match="example 2"):
        MessageClassifier(HashingEmbedder()).fit([("快递到哪了", "logistics"), ("  ", "refund")])


def test_predict_before_fit_is_an_error() -> None:
    with pytest.raises(ValidationError, match="fit"):
        MessageClassifier(HashingEmbedder()).predict(["快递到哪了"])


def test_same_training_gives_same_predictions() -> None:
    texts = ["快递到哪了呀", "会员积分", "hello there"]
    first = MessageClassifier(HashingEmbedder()).fit(TRAIN + OOS).predict(texts)
    second = MessageClassifier(HashingEmbedder()).fit(TRAIN + OOS).predict(texts)
    assert first == second


def test_a_label_with_a_single_example_is_still_predicted() -> None:
    classifier = MessageClassifier(HashingEmbedder()).fit([*TRAIN, ("发票怎么开", "invoice"), *OOS])
    assert "invoice" in classifier.labels
    assert classifier.predict(["发票怎么开"])[0][0] == "invoice"


def test_two_examples_of_two_labels_are_enough() -> None:
    classifier = MessageClassifier(HashingEmbedder()).fit([("快递到哪了", "logistics"), ("我要退款", "refund")])
    assert [label for label, _ in classifier.predict(["快递到哪了", "我要退款"])] == ["logistics", "refund"]


class _NoisyAxes:
    """Vectors named by their text ("a 7": class a, draw 7): the classes differ by a small offset on one
    axis, while two other axes carry large noise shared by both, so cosine neighbours are mostly noise."""

    name, dim = "noisy-axes", 4

    def __init__(self) -> None:
        self.noise = np.random.default_rng(7).normal(size=200)

    def embed_queries(self, texts: Sequence[str]) -> Vectors:
        rows = []
        for text in texts:
            label, draw = text.split()
            offset = 0.3 if label == "a" else -0.3
            rows.append([1.0, offset, 3.0 * self.noise[int(draw)], self.noise[int(draw) + 100]])
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        return self.embed_queries(texts)


def test_the_head_learns_the_direction_that_separates_the_classes() -> None:
    train = [(f"a {i}", "a") for i in range(20)] + [(f"b {i}", "b") for i in range(20, 40)]
    texts = [f"a {i}" for i in range(40, 70)] + [f"b {i}" for i in range(70, 100)]
    classifier = MessageClassifier(_NoisyAxes()).fit(train)
    kept = [(label, text[0]) for (label, _), text in zip(classifier.predict(texts), texts, strict=True)
            if label != OOS_LABEL]
    assert len(kept) >= 50
    # Nearest centroid + kNN alone labels about 5 in 6 of these right.
    assert all(label == truth for label, truth in kept)
