"""Evaluation metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from copilot.errors import ValidationError
from eval import metrics as m


def test_accuracy_and_macro_f1_match_hand_computation() -> None:
    truth = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert m.accuracy(truth, pred) == pytest.approx(3 / 5)
    # a: P=1/2 R=1/2 F=1/2; b: P=2/3 R=1 F=0.8; c: P=0 R=0 F=0
    assert m.macro_f1(truth, pred) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    report = m.label_report(truth, pred)
    assert report["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8), "support": 2}


def test_macro_f1_counts_labels_that_are_only_predicted() -> None:
    assert m.macro_f1(["a", "a"], ["a", "x"]) == pytest.approx((2 / 3 + 0.0) / 2)


def test_confusion_rows_are_truth_and_columns_predictions() -> None:
    got = m.confusion(["a", "a", "b"], ["a", "b", "b"], labels=["a", "b"])
    assert got == {"labels": ["a", "b"], "matrix": [[1, 1], [0, 1]]}


def test_roc_auc_counts_ties_as_half() -> None:
    # Positives 0.8, 0.4; negatives 0.4, 0.1 → pairs: (0.8>0.4)1 (0.8>0.1)1 (0.4=0.4)0.5 (0.4>0.1)1 = 3.5/4
    assert m.roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert m.roc_auc([1, 0], [0.2, 0.9]) == 0.0
    assert m.roc_auc([1, 1], [0.2, 0.9]) is None


def test_brier_and_ece_match_hand_computation() -> None:
    y = [1, 0, 1, 1]
    p = [0.9, 0.2, 0.6, 0.65]
    assert m.brier(y, p) == pytest.approx((0.01 + 0.04 + 0.16 + 0.1225) / 4)
    # Bins (width 0.1): [0.2,0.3): n1 mean .2 pos 0; [0.6,0.7): n2 mean .625 pos 1; [0.9,1]: n1 mean .9 pos 1
    expected = (1 * 0.2 + 2 * 0.375 + 1 * 0.1) / 4
    assert m.ece(y, p) == pytest.approx(expected)
    bins = m.reliability(y, p)
    assert len(bins) == 10
    assert bins[6] == {"lo": 0.6, "hi": 0.7, "n": 2, "mean_p": pytest.approx(0.625), "frac_pos": 1.0}
    assert m.reliability([1], [1.0])[-1]["n"] == 1  # probability 1.0 falls in the last bin


def test_rank_metrics_for_one_answer_ranking() -> None:
    ranks = m.first_hit_ranks([["x", "a"], ["b"], ["y", "z", "q"]], [["a"], ["b"], ["c"]])
    assert ranks == [2, 1, None]
    assert m.r_at(ranks, 1) == pytest.approx(1 / 3)
    assert m.r_at(ranks, 2) == pytest.approx(2 / 3)
    assert m.mrr(ranks) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_recall_and_ndcg_at_k_are_keyed_by_k() -> None:
    ranked = [["a", "x", "b"], ["y", "c"]]
    relevant = [["a", "b"], ["c"]]
    recall = m.recall_at_k(ranked, relevant, [1, 3])
    assert recall == {"1": pytest.approx(0.25), "3": pytest.approx(1.0)}
    ndcg = m.ndcg_at_k(ranked, relevant, [3])
    first = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    second = (1 / math.log2(3)) / 1
    assert ndcg["3"] == pytest.approx((first + second) / 2)


def test_recall_refuses_a_query_without_relevant_ids() -> None:
    with pytest.raises(ValidationError, match="relevant"):
        m.recall_at_k([["a"]], [[]], [1])


def test_oos_precision_and_recall_treat_oos_as_positive() -> None:
    truth = ["oos", "oos", "a", "b"]
    pred = ["oos", "a", "oos", "b"]
    assert m.oos_scores(truth, pred) == {"oos_precision": 0.5, "oos_recall": 0.5}


def test_multilabel_report_and_fp_rate() -> None:
    truth = [["pii_phone"], [], ["ad_absolute", "pii_phone"], []]
    pred = [["pii_phone"], ["ad_absolute"], ["pii_phone"], []]
    report = m.multilabel_report(truth, pred, ["ad_absolute", "pii_phone"])
    assert report["per_category"]["pii_phone"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert report["per_category"]["ad_absolute"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # micro: tp 2, predicted 3, true 3
    assert report["micro"] == {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                               "f1": pytest.approx(2 / 3)}
    assert m.fp_rate(truth, pred) == 0.5
    assert m.fp_rate([["x"]], [[]]) is None


def test_mismatched_lengths_are_an_error_not_a_silent_truncation() -> None:
    with pytest.raises(ValidationError, match="length"):
        m.accuracy(["a", "b"], ["a"])


def test_percentile_interpolates() -> None:
    assert m.percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert m.percentile([5.0], 95) == 5.0
