"""Stage detection signals, one by one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from copilot.conversation import stages
from copilot.conversation.catalogue import LibraryCatalogue
from copilot.conversation.cues import find_cue
from copilot.conversation.stage_library import LibraryStages
from copilot.conversation.stages import STAGE_CUES, StageSignals, detect_stage, stage_features
from copilot.conversation.turns import Turn
from copilot.knowledge.loader import load_library
from copilot.knowledge.schema import CustomerProfile, Order, OrderLine, Stage
from copilot.retrieval.documents import doc_for_content
from eval.harness import Harness
from eval.records import Message, StageRecord
from eval.suites.labels import _stages
from tests.conftest import KNOWLEDGE

TODAY = dt.date(2026, 11, 22)


def _buyer(days_ago: int, cycle: int | None = 25) -> CustomerProfile:
    order = Order(id="o1", date=TODAY - dt.timedelta(days=days_ago),
                  items=(OrderLine(sku="d1", name="纸尿裤M码", price=99, cycle_days=cycle),))
    return CustomerProfile(id="c1", name="王芳", orders=(order,))


def _say(*texts: str) -> list[Turn]:
    return [Turn("customer", t) for t in texts]


def test_a_new_friend_with_nothing_said_is_an_icebreak() -> None:
    result = detect_stage([], CustomerProfile(id="c0", name="新朋友"), today=TODAY)
    assert result.name is Stage.icebreak
    assert result.reasons


def test_a_past_buyer_with_nothing_said_is_a_revisit() -> None:
    assert detect_stage([], _buyer(40), today=TODAY).name is Stage.revisit


def test_asking_price_and_how_to_buy_is_recommend() -> None:
    result = detect_stage(_say("这款多少钱？怎么下单"), None, today=TODAY)
    assert result.name is Stage.recommend
    assert any("多少钱" in r or "怎么下单" in r for r in result.reasons)


def test_describing_a_problem_is_discovery() -> None:
    result = detect_stage(_say("宝宝晚上总是哭闹，不知道怎么办"), None, today=TODAY)
    assert result.name is Stage.discovery


def test_feedback_after_delivery_is_revisit() -> None:
    result = detect_stage(_say("上次买的收到了，用着还行"), _buyer(6), today=TODAY)
    assert result.name is Stage.revisit


def test_last_stage_breaks_a_tie() -> None:
    plain = _say("嗯嗯好的")
    even = {"now_ack": dict.fromkeys(("icebreak", "discovery", "recommend", "revisit"), 0.5)}
    for stage in ("recommend", "revisit"):
        assert detect_stage(plain, None, today=TODAY, last_stage=stage, weights=even).name.value == stage


def test_what_the_latest_words_ask_for_outweighs_the_stored_stage() -> None:
    asked = detect_stage(_say("你好", "这款多少钱？怎么下单"), None, today=TODAY, last_stage="icebreak")
    assert asked.name is Stage.recommend
    fed_back = detect_stage(_say("上次买的收到了，用着还行"), _buyer(6), today=TODAY, last_stage="recommend")
    assert fed_back.name is Stage.revisit


def test_the_stored_stage_weight_is_read_from_the_fitted_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fitted = json.loads(stages.WEIGHTS_PATH.read_text(encoding="utf-8"))
    heavy = tmp_path / "heavy.json"
    heavy.write_text(json.dumps(fitted | {"last_stage_weight": 50.0}), encoding="utf-8")
    monkeypatch.setattr(stages, "WEIGHTS_PATH", heavy)
    assert stages.last_stage_weight() == 50.0
    asked = detect_stage(_say("这款多少钱？怎么下单"), None, today=TODAY, last_stage="icebreak")
    assert asked.name is Stage.icebreak
    missing = tmp_path / "old.json"
    missing.write_text(json.dumps({"weights": fitted["weights"]}), encoding="utf-8")
    monkeypatch.setattr(stages, "WEIGHTS_PATH", missing)
    with pytest.raises(ValueError, match=r"eval\.tune_stage --write"):
        stages.last_stage_weight()


def test_the_library_vote_moves_an_ambiguous_turn() -> None:
    plain = [Turn("customer", "之前一直用别家的"), Turn("staff", "……"), Turn("customer", "嗯嗯")]
    for stage in ("revisit", "discovery"):
        signals = StageSignals(customer_vote={stage: 3.0}, staff_vote={stage: 2.0})
        assert detect_stage(plain, None, today=TODAY, signals=signals).name is Stage(stage)


def test_a_brands_own_trigger_decides_a_turn_the_lexicon_knows_nothing_about() -> None:
    library = LibraryStages.from_scripts([(("revisit",), ("空瓶回收",)), (("recommend",), ("旅行装",))])
    vote = library.vote("我攒了三个空瓶回收")
    assert vote.phrases == ("空瓶回收",) and vote.shares["revisit"] == 1.0
    turn = _say("我攒了三个空瓶回收")
    assert detect_stage(turn, None, today=TODAY, signals=StageSignals(library=library)).name is Stage.revisit
    assert detect_stage(_say("有旅行装吗"), None, today=TODAY,
                        signals=StageSignals(library=library)).name is Stage.recommend


def test_the_staff_message_a_bare_reply_answers_sets_the_stage() -> None:
    turns = [Turn("customer", "在吗"), Turn("staff", "在的～"), Turn("customer", "之前一直用别家的"),
             Turn("staff", "……"), Turn("customer", "嗯")]
    for stage in ("recommend", "revisit", "discovery"):
        signals = StageSignals(staff_vote={stage: 5.0, "icebreak": 1.0})
        assert detect_stage(turns, None, today=TODAY, signals=signals).name is Stage(stage)


def test_cue_lists_hold_no_phrases_lifted_from_evaluation_sets() -> None:
    # Once in the lexicon, copied from the original stage set: sizes spelled the way its customers did.
    for phrase in ("穿M", "穿L", "还是M", "还是L", "还是XL", "试一包", "买一包", "买一罐", "两罐", "一箱"):
        assert all(find_cue(cue, phrase) in (None, "买一") for cues in STAGE_CUES.values() for cue in cues), phrase


def test_confidence_is_higher_when_signals_agree() -> None:
    strong = detect_stage(_say("多少钱？有货吗？怎么买"), None, today=TODAY)
    weak = detect_stage(_say("哦"), None, today=TODAY)
    assert strong.confidence > weak.confidence


def test_a_greeting_before_a_question_is_not_an_icebreak() -> None:
    result = detect_stage(_say("你好，这款纸尿裤多少钱？"), CustomerProfile(id="c9", name="新朋友"), today=TODAY)
    assert result.name is Stage.recommend
    assert not any("打招呼" in r for r in result.reasons)


def test_a_buyer_asking_to_order_again_is_recommend_not_revisit() -> None:
    result = detect_stage(_say("再来一箱，还是M码"), _buyer(28), today=TODAY)
    assert result.name is Stage.recommend


def _chat(*lines: tuple[str, str]) -> list[Turn]:
    return [Turn("customer" if who == "c" else "staff", text) for who, text in lines]


def test_answering_a_staff_question_about_the_need_is_discovery() -> None:
    turns = _chat(("c", "你好"), ("s", "您好～方便说下孩子今年几岁了吗？"), ("c", "七岁了，最近老是挑食"))
    features, _ = stage_features(turns, None, today=TODAY)
    assert features.get("answers_question") and features.get("answers_with_need")
    assert detect_stage(turns, None, today=TODAY).name is Stage.discovery


def test_the_conversation_remembers_what_staff_offered_and_what_the_customer_bought() -> None:
    offered = _chat(("c", "有适合老人的吗"), ("s", "这款礼盒是199元，我发您链接"), ("c", "嗯"))
    features, labels = stage_features(offered, None, today=TODAY)
    assert features.get("offered_before") and "报过价" in labels["offered_before"]
    assert "bought_before" not in features
    received = _chat(("c", "上周拍的已经到货了"), ("s", "好的～用着怎么样？"), ("c", "还行吧"))
    features, _ = stage_features(received, None, today=TODAY)
    assert features.get("bought_before") and "offered_before" not in features
    assert detect_stage(received, None, today=TODAY).name is Stage.revisit


def test_a_greeting_inside_a_conversation_does_not_restart_it() -> None:
    turns = _chat(("c", "孩子晚上总是咳嗽，睡不好"), ("s", "咳了几天了？有没有发烧？"), ("c", "在吗"))
    features, _ = stage_features(turns, None, today=TODAY)
    assert features.get("greeting_known")
    assert detect_stage(turns, None, today=TODAY).name is not Stage.icebreak


def test_a_how_to_use_question_after_a_purchase_is_revisit() -> None:
    turns = _chat(("c", "你好，我上次买的那套怎么用，先用哪个"))
    features, _ = stage_features(turns, _buyer(10), today=TODAY)
    assert features.get("how_to_use_bought")
    assert detect_stage(turns, _buyer(10), today=TODAY).name is Stage.revisit


def test_a_bare_reply_to_a_staff_opener_to_a_buyer_is_revisit() -> None:
    turns = _chat(("s", "王姐好，最近宝宝用着还合适吗？"), ("c", "好的"))
    features, _ = stage_features(turns, _buyer(20), today=TODAY)
    assert features.get("staff_opened_buyer") and features.get("bare_answers_staff_care")
    assert detect_stage(turns, _buyer(20), today=TODAY).name is Stage.revisit


def test_an_earlier_greeting_does_not_count_once_the_customer_asks_for_something() -> None:
    asks = [Turn("customer", "你好"), Turn("staff", "您好～我是顾问小芽"), Turn("customer", "你们家东西在哪买")]
    features, _ = stage_features(asks, None, today=TODAY)
    assert "before_greeting" not in features and features["now_buy"] == 1.0
    assert detect_stage(asks, None, today=TODAY).name is Stage.recommend
    bare = [*asks[:2], Turn("customer", "嗯嗯")]
    assert stage_features(bare, None, today=TODAY)[0]["before_greeting"] == 1.0  # a bare reply carries it


def test_being_sent_by_a_friend_is_a_first_contact_not_a_request_for_a_recommendation() -> None:
    features, _ = stage_features(_say("朋友推荐我加你的"), None, today=TODAY)
    assert features["now_referred"] == 1.0 and "now_choose" not in features
    assert features["first_words_bare"] == 1.0
    assert "first_words_bare" not in stage_features(_say("有什么推荐的吗"), None, today=TODAY)[0]
    assert detect_stage(_say("朋友推荐我加你的"), None, today=TODAY).name is Stage.icebreak


def test_damaged_goods_running_low_and_an_order_in_transit_are_read() -> None:
    assert "now_aftersales" in stage_features(_say("罐子瘪了一块"), _buyer(5), today=TODAY)[0]
    assert "now_repurchase" in stage_features(_say("还剩小半包"), _buyer(20), today=TODAY)[0]
    assert "now_in_transit" in stage_features(_say("我买的东西到哪了"), _buyer(2), today=TODAY)[0]
    assert detect_stage(_say("罐子瘪了一块"), _buyer(5), today=TODAY).name is Stage.revisit


def test_the_stage_eval_replays_each_conversation_with_the_stage_the_detector_stored(
    hashing_copilot: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    copilot = hashing_copilot
    harness = Harness(copilot=copilot, tenant="default", embedder_name="hashing", knowledge=KNOWLEDGE)
    said = [Message(role="customer", text="你好"), Message(role="staff", text="您好～宝宝多大啦？"),
            Message(role="customer", text="三个月，晚上总哭闹"), Message(role="staff", text="可以试试这款安抚奶嘴"),
            Message(role="customer", text="嗯嗯")]
    # Labels the detector will not give, so a replay that fed labels forward would show.
    turns = {k: StageRecord(id=f"conv-9-t{k}", customer_id="cust_049", messages=said[:2 * k - 1], stage="revisit")
             for k in (1, 2, 3)}
    alone = StageRecord(id="conv-8-t2", messages=said[:3], stage="revisit")  # no customer: serving stores nothing
    seen: list[tuple[str | None, str | None]] = []
    analyze = copilot.analyze

    def spy(tenant: str, request: Any) -> Any:
        stored = copilot.repo.last_stage(tenant, request.customer_id, request.staff_id) if request.staff_id else None
        seen.append((request.staff_id, stored))
        return analyze(tenant, request)

    monkeypatch.setattr(copilot, "analyze", spy)
    pred = _stages(harness, [turns[3], alone, turns[1], turns[2]], replay=True)
    by_turn = {3: pred[0], 1: pred[2], 2: pred[3]}
    assert by_turn[1] != "revisit"
    assert [s for s in seen if s[0]] == [("eval-replay:conv-9", None), ("eval-replay:conv-9", by_turn[1]),
                                         ("eval-replay:conv-9", by_turn[2])]
    assert seen.count((None, None)) == 1
    assert copilot.repo.last_stage("default", "cust_049", "eval-replay:conv-9") == by_turn[3]
    seen.clear()
    _stages(harness, [turns[1], turns[2]], replay=False)
    assert seen == [(None, None), (None, None)]


def test_a_buyer_shopping_again_is_told_apart_from_a_buyer_reporting_a_problem() -> None:
    def read(text: str, profile: CustomerProfile | None) -> dict[str, float]:
        return stage_features(_say(text), profile, today=TODAY)[0]

    assert read("再来一箱，还是M码", _buyer(28)).get("buying_bought")
    assert read("我买的东西到哪了", _buyer(2)).get("buying_bought")  # delivery progress: the buying step
    assert read("上次买的那款现在多少钱", None).get("buying_bought")  # bought, said in the conversation
    assert "buying_bought" not in read("再来一箱，还是M码", None)  # no purchase known
    assert "buying_bought" not in read("买的尿裤漏了，怎么换货", _buyer(5))  # a problem with what they have
    assert "buying_bought" not in read("上次买的那款怎么用", _buyer(5))


def test_a_weight_given_while_staff_pick_a_size_answers_the_offer_not_a_need_question() -> None:
    sizing = _chat(("c", "S码快用完了"), ("s", "好的～宝宝现在多重呀？S码适合4-8kg"), ("c", "八公斤"))
    features, labels = stage_features(sizing, _buyer(9), today=TODAY)
    assert features.get("answers_staff_size") and "S码" in labels["answers_staff_size"]
    assert features.get("answers_after_offer")
    asked = _chat(("c", "你好"), ("s", "您好～宝宝多大啦？"), ("c", "八个月"))
    features, _ = stage_features(asked, None, today=TODAY)
    assert features.get("answers_with_need") and "answers_after_offer" not in features


def test_a_bare_reply_to_shipping_news_or_to_advice_carries_that_step() -> None:
    shipped = _chat(("c", "发货了吗"), ("s", "已发货，单号发您了，预计明天到"), ("c", "好的"))
    features, _ = stage_features(shipped, None, today=TODAY)
    assert features.get("bare_answers_staff_shipping") and "bare_answers_staff_advice" not in features
    advised = _chat(("c", "宝宝屁屁红红的"), ("s", "建议勤换尿布，洗完晾干再穿"), ("c", "好的谢谢"))
    features, _ = stage_features(advised, None, today=TODAY)
    assert features.get("bare_answers_staff_advice") and "bare_answers_staff_shipping" not in features
    asked = _chat(("c", "宝宝屁屁红红的"), ("s", "建议勤换尿布，洗完晾干再穿"), ("c", "那买什么护臀膏好"))
    assert "bare_answers_staff_advice" not in stage_features(asked, None, today=TODAY)[0]


@pytest.fixture(scope="module")
def catalogues() -> dict[str, LibraryCatalogue]:
    """Each demo vertical's catalogue, read from its library's content as serving reads it."""
    out = {}
    for name, root in (("暖芽", KNOWLEDGE), ("沐颜", KNOWLEDGE.parent / "libraries" / "skincare")):
        docs = [doc_for_content(item) for item in load_library(root).content]
        out[name] = LibraryCatalogue.from_content((d.content_kind, d.title, d.tags, d.stages) for d in docs)
    return out


def _bought(*names: str, status: str = "delivered") -> CustomerProfile:
    lines = tuple(OrderLine(sku=f"sku{i}", name=name, price=99) for i, name in enumerate(names))
    order = Order(id="o1", date=TODAY - dt.timedelta(days=20), items=lines, status=status)  # type: ignore[arg-type]
    return CustomerProfile(id="c1", name="王芳", orders=(order,))


def _named(catalogue: LibraryCatalogue, turns: list[Turn], profile: CustomerProfile | None) -> dict[str, float]:
    features, labels = stage_features(turns, profile, today=TODAY, signals=StageSignals(catalogue=catalogue))
    assert all(labels.get(n) for n in features if n.startswith(("names_", "staff_names_")))
    return {n: v for n, v in features.items() if n.startswith(("names_", "staff_names_"))}


def test_a_product_the_customer_never_ordered_is_told_from_one_they_did(
    catalogues: dict[str, LibraryCatalogue],
) -> None:
    baby, skin = catalogues["暖芽"], catalogues["沐颜"]
    diapers = _bought("云柔纸尿裤 M码 量贩装")
    assert _named(baby, _say("你们家那个护臀膏怎么样"), diapers) == {"names_unbought": 1.0}
    assert _named(baby, _say("尿裤用着挺好的"), diapers) == {"names_bought": 1.0}  # 纸尿裤 asked for as 尿裤
    assert _named(baby, _say("尿裤还是M码，护臀膏加一支"), diapers) == {"names_bought": 1.0, "names_unbought": 1.0}
    cream = _bought("水光保湿面霜 50g", "水润精华水 150ml")
    assert _named(skin, _say("面霜快用完了"), cream) == {"names_bought": 1.0}
    # 精华 is another product than the 精华水 bought, and a name of one vertical means nothing in the other.
    assert _named(skin, _say("修护精华多少钱"), cream) == {"names_unbought": 1.0}
    assert _named(skin, _say("你们家那个护臀膏怎么样"), cream) == {}
    assert _named(baby, _say("宝宝晚上总是哭闹"), diapers) == {}


def test_staff_naming_a_product_is_set_against_the_orders_too(catalogues: dict[str, LibraryCatalogue]) -> None:
    diapers = _bought("云柔纸尿裤 M码 量贩装")
    offered = _chat(("c", "晚上老是漏"), ("s", "可以试试夜安裤，晚上一片到天亮"), ("c", "嗯"))
    assert _named(catalogues["暖芽"], offered, diapers) == {"staff_names_unbought": 1.0}
    checked = _chat(("s", "王姐好，纸尿裤用着还合适吗？"), ("c", "挺好的"))
    assert _named(catalogues["暖芽"], checked, diapers) == {"staff_names_bought": 1.0}


def test_without_orders_a_named_product_is_neither_bought_nor_new(catalogues: dict[str, LibraryCatalogue]) -> None:
    baby = catalogues["暖芽"]
    for profile in (None, CustomerProfile(id="c0", name="新朋友"), _bought("护臀膏 50g", status="cancelled")):
        assert _named(baby, _say("你们家那个护臀膏怎么样"), profile) == {}


def test_a_service_of_the_library_votes_the_stages_it_is_filed_under(catalogues: dict[str, LibraryCatalogue]) -> None:
    for catalogue in catalogues.values():
        named = _named(catalogue, _say("会员日是几号来着"), None)
        assert named["names_service_recommend"] > 0 and "names_service_icebreak" not in named
    # A product's name speaks as a product, even where an event's title carries it.
    assert not catalogues["暖芽"].named("护臀膏怎么样").services
    assert _named(catalogues["暖芽"], _say("宝宝晚上总是哭闹"), None) == {}


def test_serving_reads_the_tenants_catalogue_for_the_stage(hashing_copilot: Any) -> None:
    profile = hashing_copilot.repo.customer("default", "cust_019")  # bought 2段 formula and a bottle
    turns = _say("你们家护臀膏怎么样")
    signals = hashing_copilot.stage_signals("default", turns)
    assert signals.catalogue is not None
    features, _ = stage_features(turns, profile, today=TODAY, signals=signals)
    assert features.get("names_unbought") and "names_bought" not in features
    features, _ = stage_features(_say("奶瓶怎么消毒"), profile, today=TODAY, signals=signals)
    assert features.get("names_bought") and "names_unbought" not in features


def _with_wording(tmp_path: Path, embedder: str, customer: list[list[float]]) -> Path:
    """The committed weights with a wording section whose customer scores are `customer` (dimension × stage)."""
    fitted = json.loads(stages.WEIGHTS_PATH.read_text(encoding="utf-8"))
    wording = {"embedder": embedder, "last_stage_weight": 0.1, "weights": fitted["weights"],
               "customer": customer, "staff": [[0.0] * 4 for _ in customer]}
    path = tmp_path / "wording.json"
    path.write_text(json.dumps(fitted | {"wording": wording}), encoding="utf-8")
    return path


def test_the_wording_scores_move_the_stage_only_with_the_embedder_they_were_fitted_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One dimension that speaks strongly for revisit: a vector along it turns a price question into revisit.
    monkeypatch.setattr(stages, "WEIGHTS_PATH", _with_wording(tmp_path, "e5-like", [[0, 0, 0, 50.0], [0, 0, 0, 0]]))
    turns = _say("这款多少钱？怎么下单")
    along = np.array([1.0, 0.0], dtype=np.float32)
    moved = detect_stage(turns, None, today=TODAY, signals=StageSignals(wording=stages.Wording("e5-like", along)))
    assert moved.name is Stage.revisit
    assert any("说法像该阶段" in r for r in moved.reasons)
    other = detect_stage(turns, None, today=TODAY, signals=StageSignals(wording=stages.Wording("hashing", along)))
    assert other.name is Stage.recommend  # another embedder's vectors: the signals-only table decides
    wider = np.zeros(3, dtype=np.float32)
    assert stages.stage_model(stages.Wording("e5-like", wider)).customer is None  # same name, other width
    assert detect_stage(turns, None, today=TODAY).name is Stage.recommend


def test_wording_weights_of_the_wrong_shape_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "WEIGHTS_PATH", _with_wording(tmp_path, "e5-like", [[0.0, 1.0]]))
    with pytest.raises(ValueError, match="dimension × 4 stages"):
        stages.stage_model()
    fitted = json.loads(stages.WEIGHTS_PATH.read_text(encoding="utf-8"))
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(fitted | {"wording": {"embedder": "e5-like"}}), encoding="utf-8")
    monkeypatch.setattr(stages, "WEIGHTS_PATH", partial)
    with pytest.raises(ValueError, match=r"lacks \['customer', 'last_stage_weight', 'staff'\]"):
        stages.stage_model()


def test_serving_gathers_the_wording_of_the_latest_words_and_the_staff_message_they_answer(
    hashing_copilot: Any,
) -> None:
    turns = [Turn("staff", "宝宝现在多大啦？"), Turn("customer", "五个月了")]
    signals = hashing_copilot.stage_signals("default", turns)
    embedder = hashing_copilot.retriever.store.embedder
    assert signals.wording is not None
    assert signals.wording.embedder == embedder.name
    assert signals.wording.customer is not None and signals.wording.staff is not None
    assert np.allclose(signals.wording.customer, embedder.embed_queries(["五个月了"])[0])
    assert np.allclose(signals.wording.staff, embedder.embed_queries(["宝宝现在多大啦？"])[0])
    alone = hashing_copilot.stage_signals("default", [Turn("customer", "你好")])
    assert alone.wording is not None and alone.wording.staff is None


def _penalised_loss(w: np.ndarray, x: np.ndarray, y: np.ndarray, penalty: float) -> float:
    """The objective `tune_stage.fit` minimises, written out independently: class-balanced cross-entropy plus
    half the L2 penalty on every row but the bias."""
    k = w.shape[1]
    counts = np.bincount(y, minlength=k)
    weights = (len(y) / (k * np.maximum(counts, 1)))[y]
    logits = x @ w
    log_p = logits - np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) \
        - logits.max(axis=1, keepdims=True)
    return float(-(weights * log_p[np.arange(len(y)), y]).mean() + 0.5 * penalty * (w[1:] ** 2).sum())


def test_stage_fit_reaches_the_penalised_optimum() -> None:
    from eval.tune_stage import fit

    rng = np.random.default_rng(7)
    x = np.hstack([np.ones((120, 1)), rng.normal(size=(120, 12))])
    y = (x[:, 1:5] @ rng.normal(size=(4, 4))).argmax(axis=1)
    for penalty in (0.001, 0.1):
        w = fit(x, y, penalty)
        best = _penalised_loss(w, x, y, penalty)
        for _ in range(20):  # no small step in any direction does better
            step = rng.normal(size=w.shape) * 1e-3
            assert _penalised_loss(w + step, x, y, penalty) >= best - 1e-9
    assert np.abs(fit(x, y, 100.0)[1:]).max() < 0.05  # a heavy penalty shrinks the features' weights…
    rare = (x[:, 1] > 2).astype(int)  # stages 2 and 3 never occur: only the bias can say so under that penalty
    assert fit(x, rare, 100.0)[0, 2:].max() < -0.5  # …not the bias
