"""The third look: an embedder's top layers fine-tuned as a compliance classifier (`copilot/compliance/tuned.py`).

A tiny BERT with a character vocabulary stands in for multilingual-e5-small, so training takes seconds; the real
model is trained by `copilot prepare` and scored by the real-embedder gate."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import pytest

from copilot.compliance import review, semantic, tuned
from copilot.compliance.checker import ComplianceChecker
from copilot.compliance.review import EmbeddingReview
from copilot.compliance.semantic import Example, SemanticLayer, train
from copilot.embedding.embedders import HashingEmbedder
from tests.test_compliance_review import DIM, _stub

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SMEARS = ["隔壁那家全是假货", "那家的东西用了烂脸", "别家都是三无工厂货", "他们家卖的是过期品"]
LURES = ["点击链接领取大奖", "转发就送现金红包", "全民免单快来抢", "扫码抽奖必中iPhone"]
CLEAN = ["今天天气不错呀", "您好请问几点发货", "好的我下午看一下", "谢谢亲的耐心等待", "快递明天就能到"]
FILLER = "嗯啊哦呢吧哈呀"


class TinyEmbedder:
    """A five-layer BERT with random weights over the characters of the lines above."""

    name = "tiny-bert"

    def __init__(self) -> None:
        chars = sorted(set("".join(SMEARS + LURES + CLEAN) + FILLER + "0123456789query:"))
        tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
        self.tokenizer = transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})
        torch.manual_seed(0)
        config = transformers.BertConfig(vocab_size=len(chars) + 5, hidden_size=32, num_hidden_layers=tuned.TOP_LAYERS + 1,
                                         num_attention_heads=2, intermediate_size=64, max_position_embeddings=80)
        self.model = transformers.BertModel(config).eval()
        self.lock = threading.Lock()

    def transformer_parts(self) -> tuple[object, object, str, threading.Lock]:
        return self.tokenizer, self.model, "query: ", self.lock


def _lines(n: int = 600, seed: int = 1) -> list[Example]:
    """Blocks of 40 lines (the folds' unit), each mixing the two risky kinds and clean chat."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 5
        pad = "".join(rng.choice(FILLER) for _ in range(rng.randint(0, 3)))
        if kind == 0:
            out.append(Example(rng.choice(SMEARS) + pad, frozenset({"competitor"})))
        elif kind == 1:
            out.append(Example(pad + rng.choice(LURES), frozenset({"prize_lure"})))
        else:
            out.append(Example(rng.choice(CLEAN) + pad, frozenset()))
    return out


@pytest.fixture(scope="module")
def tiny() -> TinyEmbedder:
    return TinyEmbedder()


@pytest.fixture(scope="module")
def trained(tiny: TinyEmbedder) -> tuned.TunedModel:
    return tuned.train_tuned(_lines(), tiny, epochs=8, rates=(3e-3, 3e-2))


def test_tuned_layers_flag_held_out_lines_and_no_clean_line_of_the_threshold_fold(
        tiny: TinyEmbedder, trained: tuned.TunedModel) -> None:
    lines = _lines()
    hold = [e for e, f in zip(lines, semantic.fold_of(len(lines)), strict=True) if f == 0]
    reader = tuned.TunedReader(tiny, trained)
    scores = reader.scores([e.text for e in hold])
    assert trained.names == ("competitor", "prize_lure")
    assert (trained.thresholds >= 0.5).all()
    flagged = scores >= trained.thresholds
    clean = np.array([not e.categories for e in hold])
    assert not flagged[clean].any()
    for j, name in enumerate(trained.names):
        positives = np.array([name in e.categories for e in hold])
        assert flagged[positives, j].mean() >= 0.8, name
        assert trained.held_out[name]["found"] == flagged[positives, j].sum()


def test_threshold_fold_is_never_trained_on(tiny: TinyEmbedder, trained: tuned.TunedModel) -> None:
    lines = _lines()
    folds = semantic.fold_of(len(lines))
    # Every line of the threshold fold relabelled: the layers and head must come out the same, only the thresholds
    # (and what the fold reports) may move.
    swapped = [Example(e.text, frozenset({"prize_lure"}) if f == 0 else e.categories)
               for e, f in zip(lines, folds, strict=True)]
    again = tuned.train_tuned(swapped, tiny, epochs=8, rates=(3e-3, 3e-2))
    assert again.state.keys() == trained.state.keys()
    assert all(torch.equal(again.state[k], trained.state[k]) for k in trained.state)
    changed = [Example(e.text + ("哈" if f != 0 else ""), e.categories) for e, f in zip(lines, folds, strict=True)]
    other = tuned.train_tuned(changed, tiny, epochs=8, rates=(3e-3, 3e-2))
    assert not all(torch.equal(other.state[k], trained.state[k]) for k in trained.state)


def test_cached_model_loads_the_same_and_a_torn_file_is_trained_again(
        tiny: TinyEmbedder, trained: tuned.TunedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_train(examples: object, embedder: object) -> tuned.TunedModel:
        calls.append(1)
        return trained

    monkeypatch.setattr(tuned, "train_tuned", fake_train)
    monkeypatch.setattr(semantic, "_CACHE_DIR", tmp_path)
    first = tuned.cached_tuned(_lines(), tiny)
    [saved] = list(tmp_path.glob("tuned-*.pt"))
    second = tuned.cached_tuned(_lines(), tiny)
    assert len(calls) == 1
    assert second.names == trained.names and second.held_out == trained.held_out
    assert np.array_equal(second.thresholds, first.thresholds)
    assert all(torch.equal(second.state[k], trained.state[k]) for k in trained.state)
    saved.write_bytes(saved.read_bytes()[:100])
    tuned.cached_tuned(_lines(), tiny)
    assert len(calls) == 2
    assert tuned.cached_tuned(_lines(), tiny).names == trained.names and len(calls) == 2


def test_an_embedder_without_a_transformer_gets_no_third_look() -> None:
    hashing = HashingEmbedder()
    assert tuned.transformer_of(hashing) is None
    assert EmbeddingReview(hashing, tuned=True).tuned_for(SemanticLayer(_lines(200), train(_lines(200)))) is None
    with pytest.raises(ValueError, match="no transformer"):
        tuned.train_tuned(_lines(200), hashing)


def test_checker_flags_what_only_the_tuned_layers_read(tiny: TinyEmbedder, trained: tuned.TunedModel,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _lines()
    layer = SemanticLayer(lines, train(lines))
    reader = tuned.TunedReader(tiny, trained)
    with_tuned, without = EmbeddingReview(tiny, tuned=True), EmbeddingReview(tiny)
    monkeypatch.setattr(with_tuned, "tuned_for", lambda _layer: reader)
    for looks in (with_tuned, without):  # the second look is not what is tested here: it flags nothing
        monkeypatch.setattr(looks, "flagged", lambda *args: {})
    monkeypatch.setattr(layer, "_cued", lambda _normalised: False)  # so the n-gram layer alone flags nothing
    checker = ComplianceChecker(packs=(), semantic=False)  # and no rule
    checker.semantic = layer
    text = SMEARS[2] + "呢"
    assert "competitor" not in checker.check(text, review=without).categories
    result = checker.check(text, review=with_tuned)
    [flag] = result.flags
    assert flag.category == "competitor" and flag.rule_id == "semantic.competitor"
    assert "微调模型" in flag.message
    assert flag.evidence and set(flag.evidence) <= {x.text for x in lines if "competitor" in x.categories}
    assert not checker.check(CLEAN[1], review=with_tuned).flags


class TinyHashing(HashingEmbedder):
    """Hashed vectors (the Copilot's store and the second look need some) with the tiny BERT behind them."""

    def __init__(self, tiny: TinyEmbedder) -> None:
        super().__init__(DIM, name="tiny-bert")
        self.tiny = tiny

    def transformer_parts(self) -> tuple[object, object, str, threading.Lock]:
        return self.tiny.transformer_parts()


def test_the_setting_gives_the_copilot_the_third_look(tiny: TinyEmbedder, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from copilot.config import Settings
    from copilot.persistence.engine import make_engine
    from copilot.persistence.schema import upgrade
    from copilot.service import Copilot

    # Tiny layers taught that one harmless line is a smear, so whatever flags it is the third look.
    marked = CLEAN[0]
    lines = [Example(e.text, frozenset({"competitor"}) if e.text.startswith(marked) else frozenset())
             for e in _lines() if not e.categories]
    taught = tuned.train_tuned(lines, tiny, epochs=8, rates=(3e-3, 3e-2))
    layer = semantic.default_layer()
    embedder = TinyHashing(tiny)
    # What the Copilot would train at start-up is put in place: a second look that flags nothing, the tiny layers.
    monkeypatch.setitem(review._REGISTRY, (embedder.name, layer.version), _stub(layer, "competitor", 1e9, embedder.name))
    monkeypatch.setitem(review._TUNED, (f"tuned:{embedder.name}", layer.version), tuned.TunedReader(tiny, taught))
    checks = {}
    for flag in (False, True):
        settings = Settings(data_dir=tmp_path / str(flag), compliance_tuned=flag)
        upgrade(make_engine(settings.sqlalchemy_url))
        checks[flag] = Copilot.from_settings(settings, embedder=embedder).check("default", marked + "呢")
    assert not checks[False].flags
    [flag] = checks[True].flags
    assert flag.category == "competitor" and "微调模型" in flag.message


def test_copilot_eval_compliance_takes_the_third_look_from_the_setting(tiny: TinyEmbedder, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`COPILOT_COMPLIANCE_TUNED=true copilot eval compliance` scores the checker with the third look, as the app
    runs it; the scratch Copilot the command builds is not left without it."""
    import json

    import eval.harness
    from copilot.config import get_settings
    from eval.runner import RunConfig, run

    marked = CLEAN[0]
    lines = [Example(e.text, frozenset({"competitor"}) if e.text.startswith(marked) else frozenset())
             for e in _lines() if not e.categories]
    taught = tuned.train_tuned(lines, tiny, epochs=8, rates=(3e-3, 3e-2))
    layer = semantic.default_layer()
    embedder = TinyHashing(tiny)
    monkeypatch.setitem(review._REGISTRY, (embedder.name, layer.version), _stub(layer, "competitor", 1e9, embedder.name))
    monkeypatch.setitem(review._TUNED, (f"tuned:{embedder.name}", layer.version), tuned.TunedReader(tiny, taught))
    monkeypatch.setattr(eval.harness, "choose_embedder", lambda name, settings: embedder)
    data = tmp_path / "lines.jsonl"
    data.write_text(json.dumps({"text": marked + "呢", "categories": []}, ensure_ascii=False) + "\n", "utf-8")
    knowledge = Path(__file__).resolve().parent.parent / "knowledge"
    flagged = {}
    for flag in (False, True):
        monkeypatch.setenv("COPILOT_DATA_DIR", str(tmp_path / str(flag)))
        monkeypatch.setenv("COPILOT_COMPLIANCE_TUNED", str(flag).lower())
        get_settings.cache_clear()
        try:
            result, _ = run(RunConfig(suite="compliance", data=data, out=tmp_path / f"out-{flag}", langchain=False),
                            embedder_name=None, knowledge=knowledge)
        finally:
            get_settings.cache_clear()
        assert any(("third look at every text" in n) == flag for n in result.notes)
        flagged[flag] = result.metrics["fp_rate"]
    assert flagged == {False: 0.0, True: 1.0}
