"""The CI gate: the committed thresholds pass on this commit, and a raised threshold fails it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from eval.gate import DEFAULT_THRESHOLDS, check, format_outcome, load_thresholds, measure, run_gate
from eval.harness import build_copilot


@pytest.fixture(scope="module")
def gate_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], Any]:
    from copilot.embedding.embedders import HashingEmbedder

    config = load_thresholds(DEFAULT_THRESHOLDS)
    harness = build_copilot(HashingEmbedder(), Path(__file__).resolve().parent.parent / "knowledge",
                            tmp_path_factory.mktemp("gate"))
    return harness, config, measure(harness, config)


def test_committed_thresholds_pass(gate_run: tuple[Any, dict[str, Any], Any]) -> None:
    _, config, measured = gate_run
    outcome = check(measured, config)
    assert not outcome.failures, format_outcome(outcome)
    assert {c.suite for c in outcome.checks} == {"stage", "intent", "compliance", "retrieval", "response",
                                                 "classify", "drafts", "stage_skincare", "response_skincare"}


def test_a_raised_threshold_fails_the_gate(gate_run: tuple[Any, dict[str, Any], Any], tmp_path: Path) -> None:
    _, config, measured = gate_run
    raised = {**config, "suites": {**config["suites"]}}
    stage = dict(raised["suites"]["stage"])
    stage["min"] = {**stage["min"], "macro_f1": round(measured["stage"]["macro_f1"] + 0.01, 4)}
    raised["suites"]["stage"] = stage
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(raised, allow_unicode=True), encoding="utf-8")
    outcome = check(measured, load_thresholds(path))
    assert [(c.suite, c.metric) for c in outcome.failures] == [("stage", "macro_f1")]
    assert "FAIL stage.macro_f1" in format_outcome(outcome)


def test_a_max_bound_fails_when_the_metric_rises(gate_run: tuple[Any, dict[str, Any], Any]) -> None:
    _, _, measured = gate_run
    tight = {"suites": {"intent": {"data": "x", "max": {"brier": measured["intent"]["brier"] - 0.01}}}}
    assert [c.metric for c in check(measured, tight).failures] == ["brier"]


def test_a_missing_metric_fails_rather_than_passes(gate_run: tuple[Any, dict[str, Any], Any]) -> None:
    _, _, measured = gate_run
    config = {"suites": {"stage": {"data": "x", "min": {"no_such_metric": 0.0}}}}
    assert len(check(measured, config).failures) == 1


def test_run_gate_uses_the_file_it_is_given(gate_run: tuple[Any, dict[str, Any], Any], tmp_path: Path) -> None:
    harness, config, _ = gate_run
    small = {"suites": {"classify": {**config["suites"]["classify"], "min": {"macro_f1": 1.01}}}}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(small), encoding="utf-8")
    outcome = run_gate(path, harness=harness)
    assert [c.metric for c in outcome.failures] == ["macro_f1"]


def test_the_gate_reads_test_splits_only(tmp_path: Path) -> None:
    from copilot.errors import ValidationError

    config = load_thresholds(DEFAULT_THRESHOLDS)
    for name, entry in config["suites"].items():
        if entry.get("suite", name) != "compliance":
            assert entry["data"].endswith("_test.jsonl"), name
    path = tmp_path / "dev.yaml"
    path.write_text("suites:\n  stage:\n    data: eval/datasets/stage_dev.jsonl\n    min: {macro_f1: 0.5}\n",
                    encoding="utf-8")
    with pytest.raises(ValidationError, match="frozen test splits only"):
        load_thresholds(path)


def test_an_entry_runs_its_suite_over_the_library_it_names(gate_run: tuple[Any, dict[str, Any], Any]) -> None:
    harness, _, measured = gate_run
    assert "skincare" in harness.copilot.repo.tenants()
    assert measured["stage_skincare"]["macro_f1"] != measured["stage"]["macro_f1"]
    skincare = harness.library(Path(__file__).resolve().parent.parent / "libraries" / "skincare")
    assert skincare.tenant == "skincare"
    from copilot.errors import NotFoundError

    assert harness.copilot.repo.customer("skincare", "cust_101").id == "cust_101"
    with pytest.raises(NotFoundError):
        harness.copilot.repo.customer(harness.tenant, "cust_101")


def test_thresholds_file_errors_say_what_to_fix(tmp_path: Path) -> None:
    from copilot.errors import ValidationError

    path = tmp_path / "bad.yaml"
    path.write_text("suites:\n  stage:\n    data: x.jsonl\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="'min' or 'max'"):
        load_thresholds(path)
    path.write_text("suites:\n  nope:\n    data: x_test.jsonl\n    min: {a: 1}\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="unknown suite"):
        load_thresholds(path)


def _entries(config: dict[str, Any], suite: str) -> dict[str, Any]:
    return {**config, "suites": {name: entry for name, entry in config["suites"].items()
                                 if entry.get("suite", name) == suite}}


@pytest.mark.parametrize("stage", ["icebreak", "discovery", "recommend", "revisit"])
def test_the_gate_fails_when_a_stage_cue_list_is_emptied(
    gate_run: tuple[Any, dict[str, Any], Any], monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    from copilot.conversation.stages import STAGE_CUES
    from copilot.knowledge.schema import Stage

    harness, config, _ = gate_run
    monkeypatch.setitem(STAGE_CUES, Stage(stage), [])
    stages = _entries(config, "stage")
    outcome = check(measure(harness, stages), stages)
    assert outcome.failures, format_outcome(outcome)


def test_the_gate_fails_when_the_reranker_is_dense_only(
    gate_run: tuple[Any, dict[str, Any], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from copilot.drafting.rerank import RerankWeights

    harness, config, _ = gate_run
    weights = harness.copilot.reranker.weights
    total = weights.dense + weights.joint + weights.lexical
    monkeypatch.setattr(harness.copilot.reranker, "weights", RerankWeights(dense=total, joint=0.0, lexical=0.0))
    responses = _entries(config, "response")
    outcome = check(measure(harness, responses), responses)
    assert outcome.failures, format_outcome(outcome)


def test_the_real_embedder_gate_reads_test_splits_with_the_served_model() -> None:
    from copilot.config import DEFAULT_EMBEDDING_MODEL

    path = DEFAULT_THRESHOLDS.with_name("thresholds_e5.yaml")
    config = load_thresholds(path)
    assert config["embedder"] == DEFAULT_EMBEDDING_MODEL
    fast = load_thresholds(DEFAULT_THRESHOLDS)
    for name, entry in config["suites"].items():
        assert entry["data"] == fast["suites"][name]["data"], name
        assert all(value > 0 for value in entry["min"].values()), name
