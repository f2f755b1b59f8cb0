"""The semantic layer: trained per process on the shipped dev split, deterministic, thresholds from held-out
folds, flags with their nearest training examples as evidence, reachable through the API's checker."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from copilot.compliance import ComplianceChecker, normalize, semantic
from copilot.compliance.disparage import CONTEXT, FEATURE, after_reference, disparages
from copilot.compliance.disparage import reference_words as disparage_references
from copilot.compliance.health import CONTEXT as ILLNESS
from copilot.compliance.health import after_illness
from copilot.config import Settings
from copilot.persistence.engine import make_engine
from copilot.persistence.schema import upgrade
from copilot.service import Copilot

# A fortune claim that names no lexicon term and fits no rule (no 招财, 开光, 转运, 运势 …).
PARAPHRASE = "这款手链戴上以后贵人相助，做什么都顺"
CATEGORY = "ad_superstition"
KEY = "semantic-key-0123456789"


@pytest.fixture(scope="module")
def layer() -> semantic.SemanticLayer:
    return semantic.default_layer()


def test_a_paraphrase_the_rules_miss_is_flagged_with_its_nearest_examples(layer: semantic.SemanticLayer) -> None:
    rules_only = ComplianceChecker(packs=("general", "mother_baby"), semantic=False)
    assert CATEGORY not in rules_only.check(PARAPHRASE).categories
    result = ComplianceChecker(packs=("general", "mother_baby")).check(PARAPHRASE)
    flag = next(f for f in result.flags if f.category == CATEGORY)
    assert flag.rule_id == f"semantic.{CATEGORY}" and flag.span == (0, len(PARAPHRASE))
    same_category = {e.text for e in layer.examples if CATEGORY in e.categories}
    assert flag.evidence and set(flag.evidence) <= same_category
    assert flag.evidence[0] in flag.message


def test_a_flags_evidence_is_the_categorys_training_examples_closest_to_the_text(
    layer: semantic.SemanticLayer,
) -> None:
    normalised = normalize(PARAPHRASE).text
    flag = next(f for f in layer.flags(PARAPHRASE, normalised) if f.category == CATEGORY)
    # Cosine similarity with every example of the category, the slow way: whole rows, one dense product.
    examples = [e.text for e in layer.examples if CATEGORY in e.categories]
    model = layer.model
    rows = semantic._matrix([normalize(t).text for t in examples], model.vocabulary, model.idf, model.illness_pairs)
    cols, values = semantic._row(normalised, model.vocabulary, model.idf, model.illness_pairs)
    text_row = np.zeros(len(model.idf))
    text_row[cols] = values
    closest = np.argsort(-(rows @ text_row), kind="stable")[:3]
    assert flag.evidence == tuple(examples[i] for i in closest)


def test_postings_give_the_same_similarities_as_a_dense_product() -> None:
    rng = np.random.default_rng(7)
    dense = rng.random((40, 200)) * (rng.random((40, 200)) < 0.05)  # 40 examples over 200 n-grams, sparse
    evidence = semantic._Evidence.of(np.arange(40), semantic.sparse.csr_matrix(dense))
    cols = np.array([3, 17, 99, 150, 199])
    values = rng.random(5)
    assert np.allclose(evidence.similarities(cols, values), dense[:, cols] @ values, atol=1e-6)
    assert np.array_equal(evidence.similarities(cols[:0], values[:0]), np.zeros(40))


def test_categories_the_rules_already_flagged_are_not_repeated(layer: semantic.SemanticLayer) -> None:
    normalised = normalize(PARAPHRASE).text
    assert CATEGORY in {f.category for f in layer.flags(PARAPHRASE, normalised)}
    assert CATEGORY not in {f.category for f in layer.flags(PARAPHRASE, normalised, skip={CATEGORY})}


def test_clean_chat_without_a_cue_is_not_scored(layer: semantic.SemanticLayer) -> None:
    for text in ("好的，那我明天上午给您发货", "宝宝最近睡得怎么样呀", "这款奶粉900克一罐，活动价268"):
        normalised = normalize(text).text
        assert not layer.has_cue(normalised)
        assert layer.flags(text, normalised) == []


def test_thresholds_come_from_held_out_folds(layer: semantic.SemanticLayer) -> None:
    assert layer.categories, "no category met the precision and false-alarm bounds"
    for name in layer.categories:
        stats = layer.model.oof[name]
        assert stats["precision"] >= semantic._MIN_PRECISION
        assert stats["clean_fp"] <= semantic._MAX_CLEAN_FP
        assert layer.thresholds[name] == stats["threshold"]
    assert not set(layer.categories) & {"pii_phone", "pii_id_number", "frequency"}


def test_training_is_deterministic(layer: semantic.SemanticLayer) -> None:
    part = layer.examples[::3]
    first, second = semantic.train(part), semantic.train(part)
    assert first.names == second.names and first.cues == second.cues
    assert np.array_equal(first.weights, second.weights) and np.array_equal(first.thresholds, second.thresholds)
    assert first.digest == semantic.training_digest(part) != layer.version


@pytest.fixture(scope="module")
def client(hashing_copilot: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("semantic"), api_keys=[SecretStr(KEY)])
    with TestClient(create_app(settings, copilot=hashing_copilot)) as test_client:
        yield test_client


def test_the_tenant_checker_behind_the_api_has_the_semantic_layer(client: TestClient) -> None:
    out = client.post("/v1/compliance/check", json={"text": PARAPHRASE}, headers={"X-API-Key": KEY}).json()
    flag = next(f for f in out["flags"] if f["category"] == CATEGORY)
    assert flag["rule_id"] == f"semantic.{CATEGORY}" and flag["evidence"]


def test_the_trained_model_is_cached_outside_the_repository_and_reloaded(
    layer: semantic.SemanticLayer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = layer.examples[::4]
    monkeypatch.setattr(semantic, "_CACHE_DIR", tmp_path / "compliance")
    first = semantic._trained(part)
    (cached,) = (tmp_path / "compliance").glob("semantic-*.npz")

    def no_training(examples: object) -> None:
        raise AssertionError("trained again although the cache holds the model")

    monkeypatch.setattr(semantic, "train", no_training)
    again = semantic._trained(part)
    assert again.vocabulary == first.vocabulary and again.names == first.names and again.cues == first.cues
    assert np.array_equal(again.weights, first.weights) and np.array_equal(again.thresholds, first.thresholds)
    assert again.oof == first.oof and again.digest == first.digest
    # Other training data means another key: the cached file is not reused for it.
    monkeypatch.undo()
    monkeypatch.setattr(semantic, "_CACHE_DIR", tmp_path / "compliance")
    semantic._trained(layer.examples[1::4])
    assert len(list((tmp_path / "compliance").glob("semantic-*.npz"))) == 2 and cached.is_file()


def test_a_shared_models_path_holds_the_compliance_models_of_every_process_naming_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = Path(os.environ["COPILOT_MODELS_PATH"])  # the suite's prepared folder (see conftest)
    monkeypatch.setattr(semantic, "_CACHE_DIR", None)
    for data_dir in ("a", "b"):
        settings = Settings(_env_file=None, data_dir=tmp_path / data_dir, embedding_model="hashing")  # type: ignore[call-arg]
        assert settings.models_dir == shared
        upgrade(make_engine(settings.sqlalchemy_url))
        Copilot.from_settings(settings)
        assert semantic.cache_dir() == shared / "compliance"
        assert list(semantic.cache_dir().glob("semantic-*.npz"))  # type: ignore[union-attr]
    monkeypatch.delenv("COPILOT_MODELS_PATH")
    own = Settings(_env_file=None, data_dir=tmp_path / "c", embedding_model="hashing")  # type: ignore[call-arg]
    upgrade(make_engine(own.sqlalchemy_url))
    Copilot.from_settings(own)
    assert semantic.cache_dir() == tmp_path / "c" / "models" / "compliance"


def test_the_cache_key_changes_with_the_normaliser(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The n-grams are cut from the normaliser's output, so a model cached before it changed would read other features.
    examples = semantic.load_training()[:20]
    before = semantic.cache_key(examples)
    changed = tmp_path / "normalize.py"
    changed.write_text("# another normaliser\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules["copilot.compliance.normalize"], "__file__", str(changed))
    assert semantic.cache_key(examples) != before


def test_the_cache_key_changes_with_the_rivals_the_pack_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # A named rival is a reference to another seller, so the pairs after it are features of a cached model.
    examples = semantic.load_training()[:20]
    before = semantic.cache_key(examples)
    monkeypatch.setattr(semantic, "reference_words", lambda: (*disparage_references(), "新来的对手"))
    assert semantic.cache_key(examples) != before


def test_the_clean_budget_is_shared_and_spent_where_it_recalls_most(monkeypatch: pytest.MonkeyPatch) -> None:
    # 400 clean lines, one budget line; each category can recall more only by flagging one clean line.
    n_clean = 400
    monkeypatch.setattr(semantic, "_MAX_CLEAN_FP", 1 / n_clean)
    clean_scores = np.full((n_clean, 2), -1.0)
    clean_scores[0, 0] = clean_scores[1, 1] = 0.5
    a = np.array([[1.0, -1.0]] * 10 + [[0.4, -1.0]] * 5)  # five more lines of A below the clean line
    b = np.array([[-1.0, 1.0]] * 10 + [[-1.0, 0.4]] * 1)  # one more line of B below the clean line
    scores = np.vstack([clean_scores, a, b])
    labels = np.zeros((len(scores), 2), dtype=bool)
    labels[n_clean : n_clean + 15, 0] = True
    labels[n_clean + 15 :, 1] = True
    found = semantic._thresholds(scores, labels, ~labels.any(axis=1))
    assert found[0] is not None and found[1] is not None
    assert found[0][0] == 0.4 and found[0][1]["recall"] == 1.0  # A got the clean line: five lines recalled
    assert found[1][0] == 1.0 and found[1][1]["clean_fp"] == 0.0  # B, which would recall one, did not


def test_neighbouring_lines_are_held_out_together() -> None:
    block, folds = semantic._BLOCK, semantic.fold_of(20 * semantic._BLOCK)
    assert all(len(set(folds[i : i + block].tolist())) == 1 for i in range(0, len(folds), block))
    assert folds[0] != folds[block]  # the next batch of lines is held out in another fold
    assert set(folds.tolist()) == set(range(semantic._FOLDS))


@pytest.mark.parametrize(
    ("text", "fires"),
    [
        ("别家的奶粉都是大路货，喝了上火便秘", True),
        ("飞鹤的奶粉有问题，别给宝宝喝了", True),  # a rival the general pack names
        ("别家的也不错，看宝宝喜欢", False),  # another seller, nothing negative said
        ("别家卖299，我们这边279", False),  # a plain price comparison
        ("宝宝最近有点便秘", False),  # a negative word, no other seller
    ],
)
def test_the_disparagement_feature_needs_another_seller_and_a_negative_word(text: str, fires: bool) -> None:
    assert disparages(normalize(text).text) is fires


def test_pairs_after_another_seller_are_features_of_their_own() -> None:
    pairs = after_reference(normalize("他们家的奶粉检测超标").text)
    assert {CONTEXT + "超标", CONTEXT + "奶粉"} <= pairs and CONTEXT + "他们" not in pairs  # what follows, not the name
    assert after_reference(normalize("这批奶粉检测超标").text) == set()  # no other seller: the pair is only an n-gram
    far = normalize("那家" + "的" * 16 + "超标").text
    assert CONTEXT + "超标" not in after_reference(far)  # beyond the window


def test_the_layer_weighs_a_pair_after_a_reference_apart_from_the_same_pair(layer: semantic.SemanticLayer) -> None:
    column = layer.model.vocabulary.get(CONTEXT + "跑路")
    assert column is not None  # learned from the training lines
    with_reference, _ = layer._features(normalize("那家机构随时跑路").text)
    without, _ = layer._features(normalize("这家机构随时跑路").text)
    assert column in with_reference.tolist() and column not in without.tolist()
    assert layer.model.weights[column, layer.model.names.index("competitor")] > 0


def test_a_disparaging_line_without_any_cue_ngram_is_still_scored(layer: semantic.SemanticLayer) -> None:
    assert FEATURE in layer.model.vocabulary  # the layer learned a weight for the feature
    text = "别家的米粉颗粒粗糙"
    normalised = normalize(text).text
    # no cue n-gram: only the feature lets it be scored
    assert not any(cue in normalised for cue in layer.model.cues)
    assert layer.has_cue(normalised)
    assert "competitor" in {f.category for f in layer.flags(text, normalised)}


def test_a_likeness_to_something_worthless_keeps_the_models_disparagement_flag(layer: semantic.SemanticLayer) -> None:
    # 差不多 is a neutral comparison (吸力差不多) unless it likens the rival's product to something else (跟小风扇差不多).
    checker = ComplianceChecker(packs=("general", "mother_baby"), semantic=layer)
    assert "competitor" in checker.check("他们家的吸奶器吸力跟小风扇差不多，用着费劲").categories
    assert "competitor" not in checker.check("他们家的吸奶器吸力差不多，用着费劲").categories


@pytest.mark.parametrize(
    ("message", "smear"),
    [
        ("钢琴启蒙不用急着买琴。隔壁琴行卖的好多是二手琴重新喷漆当新琴卖。先来上两节课试试。",
         "隔壁琴行卖的好多是二手琴重新喷漆当新琴卖"),
        ("狗狗洗护我们用的是宠物专用浴液。隔壁那家为了省钱用人用洗发水，好几只狗皮肤都出问题了。",
         "隔壁那家为了省钱用人用洗发水，好几只狗皮肤都出问题了"),
    ],
)
def test_a_smear_in_one_sentence_of_a_long_message_is_read_on_its_own(
    layer: semantic.SemanticLayer, message: str, smear: str
) -> None:
    # Among the whole message's n-grams the smear weighs too little to reach the threshold; read alone it does, and
    # the flag underlines its sentence.
    assert "competitor" not in {name for name, score in layer.scores(normalize(message).text).items()
                                if score >= layer.model.thresholds[layer.model.names.index(name)]}
    result = ComplianceChecker(packs=("general", "mother_baby")).check(message, sales=True)
    flag = next(f for f in result.flags if f.category == "competitor")
    assert flag.rule_id == "semantic.competitor"
    assert message[flag.span[0]:flag.span[1]] == smear


def test_a_message_of_one_sentence_or_a_question_is_not_read_alone() -> None:
    from copilot.compliance.checker import _sentences

    assert _sentences("隔壁那家的奶粉不行，您别买") == []
    assert _sentences("好的！谢谢您～") == []  # pieces too short to say anything alone
    text = "月子餐是一日六餐。 那边那家会所的厨房又脏又乱！"
    assert [text[s:s + len(p)] for s, p in _sentences(text)] == ["月子餐是一日六餐", "那边那家会所的厨房又脏又乱"]
    # A question claims nothing, so it is not read alone (the whole message is still read as it is).
    asked = "有没有那种T0级别的防晒推荐？我下个月去海边玩几天。这个手串戴了真的会有好运吗"
    assert [p for _, p in _sentences(asked)] == ["我下个月去海边玩几天"]


def test_pairs_after_a_named_illness_are_features_of_their_own() -> None:
    pairs = after_illness(normalize("您的甲状腺结节喝三个月就变小了").text)
    assert {ILLNESS + "变小", ILLNESS + "喝三"} <= pairs and ILLNESS + "甲状" not in pairs  # what follows the illness
    assert after_illness(normalize("这盆绿萝浇三个月水就变大了").text) == set()  # no illness: no such feature
    far = normalize("结节" + "的" * 16 + "变小").text
    assert ILLNESS + "变小" not in after_illness(far)  # beyond the window


def test_the_health_claim_classifier_has_thresholds_from_held_out_folds_and_a_budget_of_its_own(
    layer: semantic.SemanticLayer,
) -> None:
    assert layer.health is not None and layer.health.model.illness_pairs and not layer.model.illness_pairs
    assert layer.health.categories == ["ad_medical"]
    stats = layer.health.model.oof["ad_medical"]
    assert stats["precision"] >= semantic._MIN_PRECISION and stats["clean_fp"] <= semantic._HEALTH_CLEAN_FP
    column = layer.health.model.vocabulary.get(ILLNESS + "就停")
    assert column is not None and layer.health.model.weights[column, 0] > 0  # learned from the training lines
    assert not any(g.startswith(ILLNESS) for g in layer.model.vocabulary)  # the main classifiers read no such pair


def test_a_health_claim_the_main_classifiers_do_not_read_is_flagged_for_the_pair_after_its_illness(
    layer: semantic.SemanticLayer,
) -> None:
    text = "痛风的客户喝了我们的芹菜汁，指标一直很平稳"
    normalised = normalize(text).text
    assert not layer._cued(normalised)  # no cue n-gram of the main classifiers
    assert layer.has_cue(normalised)  # a cue pair after 痛风
    rules_only = ComplianceChecker(packs=("general", "mother_baby"), semantic=False)
    assert "ad_medical" not in rules_only.check(text).categories
    checker = ComplianceChecker(packs=("general", "mother_baby"), semantic=layer)
    flag = next(f for f in checker.check(text).flags if f.category == "ad_medical")
    assert flag.rule_id == "semantic.ad_medical" and flag.evidence
    assert set(flag.evidence) <= {e.text for e in layer.examples if "ad_medical" in e.categories}
    assert "ad_medical" not in checker.check("痛风的客户要按时吃药，芹菜汁只是饮品").categories


def test_the_health_claim_classifier_reads_only_texts_that_name_an_illness(layer: semantic.SemanticLayer) -> None:
    assert layer.health is not None
    claim = "喝了我们的芹菜汁，指标一直很平稳，比吃药还管用"
    assert not after_illness(normalize(claim).text)
    assert not layer.health._cued(normalize(claim).text)
    assert not layer.health._flags(claim, normalize(claim).text, (), None)


def test_the_health_claim_model_is_cached_apart_and_reloaded(
    layer: semantic.SemanticLayer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = layer.examples[::4]
    monkeypatch.setattr(semantic, "_CACHE_DIR", tmp_path / "compliance")
    first = semantic._trained(part, health_claims=True)
    assert [p.name.startswith("semantic-health-") for p in (tmp_path / "compliance").glob("*.npz")] == [True]
    monkeypatch.setattr(semantic, "train", lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained again")))
    again = semantic._trained(part, health_claims=True)
    assert again.illness_pairs and again.names == first.names and np.array_equal(again.weights, first.weights)
