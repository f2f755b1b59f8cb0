"""Rule words spelled in pinyin are read back into characters and checked like them (rules only, so a semantic flag
cannot stand in for the reading)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from copilot.compliance import ComplianceChecker
from copilot.compliance import checker as checker_module
from copilot.compliance.pinyin import PinyinReader, spelled


@pytest.fixture(scope="module")
def rules() -> ComplianceChecker:
    return ComplianceChecker(packs=("general", "mother_baby"), semantic=False)


@pytest.mark.parametrize(
    ("text", "category", "pinyin"),
    [
        ("zui hao yong 的洗衣凝珠就这款，家里常备", "ad_absolute", "zui hao yong"),
        ("sī xià zhuǎn zhàng gèng kuài", "off_platform", "sī xià zhuǎn zhàng"),
        ("di yi pin pai，宝妈圈都知道", "ad_absolute", "di yi pin pai"),
        ("这个霜能 zhi yu 湿疹", "ad_medical", "zhi yu"),
    ],
)
def test_a_rule_word_spelled_in_pinyin_is_flagged_at_the_pinyin(
    rules: ComplianceChecker, text: str, category: str, pinyin: str
) -> None:
    flags = [f for f in rules.check(text).flags if f.category == category]
    assert flags, f"{category} not flagged in {text!r}"
    assert text[flags[0].span[0] : flags[0].span[1]] == flags[0].matched == pinyin


@pytest.mark.parametrize(
    "text",
    [
        "OK long time no see",  # English words that happen to be syllables
        "wo men xia zhou fa huo",  # pinyin no rule word spells
        "这个霜 bu neng zhi yu 湿疹，有问题要看医生",  # the negation in pinyin is read too
    ],
)
def test_english_words_ordinary_pinyin_and_denials_in_pinyin_stay_quiet(rules: ComplianceChecker, text: str) -> None:
    assert not rules.check(text).flags


def test_a_rewritten_span_maps_back_to_the_pinyin_it_replaced() -> None:
    text = "先说 zui hao yong，再说 si xia zhuan zhang 吧"
    rewritten = PinyinReader(["最好用", "私下转账"]).rewrite(text)
    assert rewritten is not None and rewritten.text == "先说 最好用，再说 私下转账 吧"
    for word, pinyin in (("最好用", "zui hao yong"), ("私下转账", "si xia zhuan zhang")):
        at = rewritten.text.index(word)
        lo, hi = rewritten.original_span(at, at + len(word))
        assert text[lo:hi] == pinyin
    lo, hi = rewritten.original_span(rewritten.text.index("再说"), rewritten.text.index("再说") + 2)
    assert text[lo:hi] == "再说"  # unchanged text between pieces keeps its place
    assert PinyinReader(["最好用"]).rewrite("没有拼音的句子") is None


def test_a_span_ending_where_a_piece_starts_stays_before_the_pinyin() -> None:
    text = "先说 zui hao yong 吧"
    rewritten = PinyinReader(["最好用"]).rewrite(text)
    assert rewritten is not None
    at = rewritten.text.index("最好用")
    assert rewritten.original_span(0, at) == (0, text.index("zui"))
    assert rewritten.original_span(at + 1, at + 2) == (text.index("zui"), text.index(" 吧"))


@pytest.mark.parametrize(
    ("text", "category", "pinyin"),
    [
        ("这个霜zhi湿疹真的绝了", "ad_medical", "zhi湿疹"),  # the syllable before the word's characters
        ("这个床垫能zhi腰间盘突出", "ad_medical", "能zhi"),  # after them
        ("zhi 疗 湿 zhen 的宝宝霜", "ad_medical", "zhi 疗"),  # spaced out
        ("有事加我wei信，聊得方便", "off_platform", "wei信"),
        ("这款按摩仪ｇｅｎ治富贵包", "ad_medical", "ｇｅｎ治"),  # full-width letters, flagged as written
    ],
)
def test_a_rule_word_spelled_partly_in_pinyin_is_flagged_at_its_spelling(
    rules: ComplianceChecker, text: str, category: str, pinyin: str
) -> None:
    flags = [f for f in rules.check(text).flags if f.category == category]
    assert flags, f"{category} not flagged in {text!r}"
    assert text[flags[0].span[0] : flags[0].span[1]] == flags[0].matched == pinyin


def test_mixed_spelling_needs_the_words_own_characters_and_a_syllable_in_latin() -> None:
    reader = PinyinReader(["治疗", "能治", "治愈", "微信"])
    assert reader.rewrite("zhi疗").text == "治疗"  # type: ignore[union-attr]
    assert reader.rewrite("zhi聊") is None  # 聊 is not the word's own character, whatever it sounds like
    assert reader.rewrite("VC泡腾片，app里下单") is None  # Latin that is no syllable is left alone
    assert reader.rewrite("能 zhi yu").text == "能 治愈"  # type: ignore[union-attr]  # more syllables in Latin win


@pytest.mark.parametrize("text", ["VC泡腾片今天有货", "这个app里下单就行", "A品牌的奶粉也不错", "ok的亲，明天发货"])
def test_latin_beside_characters_that_spells_no_rule_word_stays_quiet(rules: ComplianceChecker, text: str) -> None:
    assert not rules.check(text, sales=True).flags


def test_warm_builds_the_reader_so_the_first_pinyin_text_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    checker = ComplianceChecker(packs=("general",), allow_phrases=("预热用的放行词",), semantic=False)
    checker.warm()

    def no_build(*_: object) -> None:
        raise AssertionError("the reader was built on the first text with pinyin, not by warm()")

    monkeypatch.setattr(checker_module, "PinyinReader", no_build)
    assert "ad_absolute" in checker.check("zui hao yong 的就这款").categories


def test_the_copilot_warms_its_checker_at_startup(tmp_path: Path) -> None:
    from copilot.embedding.embedders import HashingEmbedder
    from copilot.service import Copilot
    from tests.conftest import storage

    checker = ComplianceChecker(packs=("general",), allow_phrases=("开机预热的放行词",), semantic=False)
    embedder = HashingEmbedder()
    engine, store = storage(tmp_path, embedder)
    Copilot(engine=engine, embedder=embedder, store=store, compliance=checker)
    for thread in threading.enumerate():
        if thread.name == "compliance-warm":
            thread.join(timeout=60)
    assert checker.version in checker_module._READERS
    assert checker_module._dictionary.cache_info().currsize == 1  # the word dictionary of short list terms


def test_readers_of_old_rules_are_let_go() -> None:
    for n in range(checker_module._MAX_READERS + 2):
        ComplianceChecker(packs=("general",), allow_phrases=(f"放行词{n}号",), semantic=False).warm()
    assert len(checker_module._READERS) <= checker_module._MAX_READERS


def test_a_word_is_spelled_as_a_phrase() -> None:
    assert spelled("重要") == ("zhong", "yao")
    assert spelled("重复") == ("chong", "fu")
