"""Token budgets: the served model's tokenizer where it is known, a conservative estimate otherwise."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from copilot.config import Settings
from copilot.errors import ConfigurationError
from copilot.llm.streaming import ObjectScanner
from copilot.llm.tokens import (
    EstimatedTokens,
    TokenCounter,
    TokenizerFileTokens,
    build_token_counter,
    openai_encoding,
    seed_tiktoken_cache,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def _tiktoken_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    cache = seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", str(cache))
        yield


def chinese_texts() -> list[str]:
    texts = []
    for line in (REPO / "eval" / "datasets" / "stage_dev.jsonl").read_text(encoding="utf-8").splitlines()[:300]:
        texts.extend(m["text"] for m in json.loads(line)["messages"])
    return texts


@pytest.mark.parametrize(("model", "encoding"), [
    ("gpt-4o-mini", "o200k_base"), ("gpt-4o", "o200k_base"), ("openai/gpt-4.1-nano", "o200k_base"),
    ("o3-mini", "o200k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base"),
    ("qwen2.5-1.5b-instruct", None), ("llama3.1:8b", None), ("deepseek-chat", None), ("gpt-oss-20b", None),
])
def test_only_openai_model_names_get_a_tiktoken_encoding(model: str, encoding: str | None) -> None:
    assert openai_encoding(model) == encoding


def test_auto_uses_tiktoken_for_openai_models_and_the_estimate_for_others() -> None:
    openai = build_token_counter(Settings(_env_file=None, llm_model="gpt-4o-mini"))
    local = build_token_counter(Settings(_env_file=None, llm_model="qwen2.5:1.5b"))
    assert openai.name == "tiktoken:o200k_base"
    assert isinstance(local, EstimatedTokens)
    assert build_token_counter(Settings(_env_file=None, llm_tokenizer="tiktoken:cl100k_base")).name == (
        "tiktoken:cl100k_base")


def test_the_estimate_over_counts_the_openai_tokenizers_on_chinese_chat() -> None:
    estimate = EstimatedTokens()
    texts = chinese_texts()
    for encoding in ("cl100k_base", "o200k_base"):
        real = TokenCounter(encoding)
        assert sum(map(estimate.count, texts)) >= 1.15 * sum(map(real.count, texts)), encoding
        # Short texts of rare characters (嗯谢谢: 7 cl100k tokens) may cost more than estimated; they are few.
        under = [t for t in texts if estimate.count(t) < real.count(t)]
        assert len(under) <= 0.02 * len(texts), (encoding, under[:5])


def test_trimming_by_the_estimate_stays_within_the_budget() -> None:
    estimate = EstimatedTokens()
    text = "宝宝最近红屁屁，纸尿裤M码还是L码？体重9.5kg，一天换7片。" * 20
    for budget in (1, 10, 57, 300):
        trimmed = estimate.trim(text, budget)
        assert estimate.count(trimmed) <= budget
        assert text.startswith(trimmed)
        assert estimate.count(text[: len(trimmed) + 1]) > budget  # the longest prefix that fits


def test_a_tokenizer_json_counts_with_the_models_own_tokenizer(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(chinese_texts(), trainers.BpeTrainer(vocab_size=400, special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))

    counter = build_token_counter(Settings(_env_file=None, llm_tokenizer=str(path)))
    assert isinstance(counter, TokenizerFileTokens)
    text = "纸尿裤M码还是L码"
    assert counter.count(text) == len(tok.encode(text, add_special_tokens=False).ids)


def test_a_missing_tokenizer_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"tokenizer\.json"):
        build_token_counter(Settings(_env_file=None, llm_tokenizer=str(tmp_path / "nope.json")))
    with pytest.raises(ConfigurationError, match="unknown tiktoken encoding"):
        build_token_counter(Settings(_env_file=None, llm_tokenizer="tiktoken:p50k"))


def test_scanner_hands_back_each_candidate_when_its_brace_closes() -> None:
    answer = ('<think>{"text": "not this"}</think>```json\n{"candidates": [{"text": "一{二}\\"三", "script_ids": ["S-1"]},'
              ' {"text": "第二条", "content_ids": []}]}\n```')
    scanner = ObjectScanner("text")
    seen: list[tuple[int, str]] = []
    for i, char in enumerate(answer):
        for obj in scanner.feed(char):
            seen.append((i, obj["text"]))
    assert [text for _, text in seen] == ['一{二}"三', "第二条"]
    first_close = answer.index('["S-1"]}') + len('["S-1"]}') - 1
    assert seen[0][0] == first_close  # handed back on the very character that completed it
    assert scanner.complete == 2


def test_scanner_reads_json_lines_and_skips_prose_between() -> None:
    scanner = ObjectScanner("text")
    found = scanner.feed('好的：\n{"text": "甲"}\n这是第二条 {"text": "乙", "x": {"y": 1}}\n{"no": 1}')
    assert [o["text"] for o in found] == ["甲", "乙"]
