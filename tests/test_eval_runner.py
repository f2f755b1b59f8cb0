"""Evaluation harness: record validation, suite outputs, reports and public-set converters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from copilot.errors import ValidationError
from eval.adapters import convert, crosswoz_stage, next_turn_records
from eval.harness import Harness
from eval.records import load_records
from eval.report import write_report
from eval.runner import RunConfig, run_suite
from eval.suites.ranking import _rank_positions


def _write(path: Path, rows: list[Any]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n",
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def harness(hashing_copilot: Any) -> Harness:
    return Harness(copilot=hashing_copilot, tenant="default", embedder_name="hashing",
                   knowledge=Path(__file__).resolve().parent.parent / "knowledge")


def test_bad_lines_are_all_reported_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "stage.jsonl", [
        {"messages": [{"role": "customer", "text": "你好"}], "stage": "icebreak"},
        "{not json",
        {"messages": [{"role": "boss", "text": "hi"}], "stage": "icebreak"},
        {"messages": [{"role": "customer", "text": "多少钱"}], "stage": "closing"},
    ])
    with pytest.raises(ValidationError) as caught:
        load_records(path, "stage")
    message = str(caught.value)
    assert f"{path}:2: not valid JSON" in message
    assert f"{path}:3: messages.0.role" in message
    assert f"{path}:4: stage" in message
    assert "3 problem(s)" in message


def test_response_label_must_index_a_candidate(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl", [{"messages": [{"role": "customer", "text": "hi"}],
                                          "candidates": ["a", "b"], "label": 2}])
    with pytest.raises(ValidationError, match=r"r.jsonl:1: .*label 2 is not an index"):
        load_records(path, "response")


def test_unknown_relevant_ids_name_the_record(harness: Harness, tmp_path: Path) -> None:
    path = _write(tmp_path / "ret.jsonl", [{"query": "几天发货", "relevant": ["S-LOG-001"]},
                                           {"query": "几天发货", "relevant": ["S-NOPE-999"]}])
    with pytest.raises(ValidationError, match=r"ret.jsonl:2: S-NOPE-999"):
        run_suite(harness, RunConfig(suite="retrieval", data=path, langchain=False))


def test_stage_run_writes_summary_and_report(harness: Harness, tmp_path: Path) -> None:
    path = _write(tmp_path / "stage.jsonl", [
        {"messages": [{"role": "customer", "text": "你好，刚加上"}], "stage": "icebreak"},
        {"messages": [{"role": "customer", "text": "宝宝晚上老是漏尿怎么办"}], "stage": "discovery"},
        {"messages": [{"role": "customer", "text": "夜安裤L码多少钱，怎么买"}], "stage": "recommend"},
        {"messages": [{"role": "customer", "text": "上次买的收到了，宝宝穿着挺好"}], "stage": "revisit"},
    ])
    result = run_suite(harness, RunConfig(suite="stage", data=path))
    summary_path, report_path = write_report(result, tmp_path / "out")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert {"suite", "n", "metrics", "baselines"} <= set(summary)
    assert summary["suite"] == "stage" and summary["n"] == 4
    assert {"accuracy", "macro_f1", "confusion"} <= set(summary["metrics"])
    assert {"majority", "random", "retrieval_vote"} == set(summary["baselines"])
    assert sum(map(sum, summary["metrics"]["confusion"]["matrix"])) == 4
    html = report_path.read_text(encoding="utf-8")
    assert 'aria-label="confusion matrix"' in html and "best baseline" in html


def test_response_ranks_with_the_copilot_reranker(harness: Harness, tmp_path: Path) -> None:
    path = _write(tmp_path / "resp.jsonl", [{
        "messages": [{"role": "customer", "text": "宝宝晚上老是漏尿，床单都湿了"}],
        "candidates": ["今天天气不错", "晚上漏尿可以试试夜安裤，吸收量大，后腰也高", "发票稍后开给您"],
        "label": 1,
    }])
    result = run_suite(harness, RunConfig(suite="response", data=path))
    assert result.metrics["r_at_1"] == 1.0
    assert set(result.baselines) == {"bm25", "dense", "random"}


def test_ties_count_against_the_true_candidate() -> None:
    assert _rank_positions(np.array([0.5, 0.5, 0.5]), 0) == 3
    assert _rank_positions(np.array([0.1, 0.9, 0.5]), 1) == 1


def test_next_turn_records_put_the_true_reply_at_the_label() -> None:
    dialogues = [
        [("customer", f"q{i}"), ("staff", f"a{i}"), ("customer", f"q{i}b"), ("staff", f"a{i}b")] for i in range(6)
    ]
    records = next_turn_records(dialogues, target="staff", negatives=3, per_dialogue=2, seed=1)
    assert len(records) == 12
    answer = {d[t - 1][1]: d[t][1] for d in dialogues for t in (1, 3)}
    for r in records:
        assert r["candidates"][r["label"]] == answer[r["messages"][-1]["text"]]
        assert len(r["candidates"]) == 4 and len(set(r["candidates"])) == 4
    assert records == next_turn_records(dialogues, target="staff", negatives=3, per_dialogue=2, seed=1)


def test_crosswoz_acts_map_to_stages() -> None:
    assert crosswoz_stage([["General", "greet", "none", "none"]]) == "icebreak"
    assert crosswoz_stage([["Inform", "餐馆", "人均消费", "100元"], ["Request", "餐馆", "名称", ""]]) == "recommend"
    assert crosswoz_stage([["Select", "酒店", "源领域", "景点"]]) == "recommend"
    assert crosswoz_stage([["Inform", "景点", "评分", "4.5分以上"]]) == "discovery"
    assert crosswoz_stage([["Request", "景点", "地址", ""]]) is None
    assert crosswoz_stage([["General", "thank", "none", "none"]]) is None


def test_persuasion_outcome_is_the_persuadee_actual_donation(tmp_path: Path) -> None:
    folder = tmp_path / "persuasionforgood"
    folder.mkdir()
    (folder / "annotated_dialog.csv").write_text(
        ",B2,B4,Turn,Unit,er_label_1,ee_label_1,er_label_2,ee_label_2,neg,neu,pos\n"
        "0,d1,0,0,Hello.,greeting,,,,0,1,0\n1,d1,0,0,Would you donate?,proposition,,,,0,1,0\n"
        "2,d1,1,0,Sure.,,agree,,,0,1,0\n3,d2,0,0,Hi.,greeting,,,,0,1,0\n4,d2,1,0,No thanks.,,disagree,,,0,1,0\n",
        encoding="utf-8")
    (folder / "annotated_info.csv").write_text(
        "B2,B3,B4,B5,B6,B7\nd1,u1,0,,1,10\nd1,u2,1,0.5,0.5,10\nd2,u3,0,,0,10\nd2,u4,1,1,0,10\n", encoding="utf-8")
    out = tmp_path / "intent.jsonl"
    n, _ = convert("persuasion-intent", tmp_path, out)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == 2
    assert [(r["id"], r["outcome"]) for r in rows] == [("d1", 1), ("d2", 0)]
    assert rows[0]["messages"] == [{"role": "staff", "text": "Hello. Would you donate?"},
                                   {"role": "customer", "text": "Sure."}]


def test_missing_public_data_says_where_to_point(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="--source-dir"):
        convert("banking77", tmp_path, tmp_path / "x.jsonl")


def test_public_sets_split_into_halves_that_never_share_a_dialogue(tmp_path: Path) -> None:
    from eval.adapters import DEFAULT_SOURCE_DIR, convert, in_split

    assert in_split("anything", "all")
    assert in_split("abc", "dev") != in_split("abc", "test")
    with pytest.raises(ValidationError, match="unknown split"):
        convert("crosswoz-response", DEFAULT_SOURCE_DIR, tmp_path / "x.jsonl", split="train")
    if not (DEFAULT_SOURCE_DIR / "persuasionforgood" / "annotated_info.csv").exists():
        pytest.skip("public data folder not beside the repository")
    ids = {}
    for split in ("all", "dev", "test"):
        convert("persuasion-intent", DEFAULT_SOURCE_DIR, tmp_path / f"{split}.jsonl", split=split)
        ids[split] = {json.loads(line)["id"] for line in (tmp_path / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()}
    assert ids["dev"] and ids["test"]
    assert not ids["dev"] & ids["test"]
    assert ids["dev"] | ids["test"] == ids["all"]
