"""The normaliser defeats spelling evasions and still maps every character back to the original text."""

from __future__ import annotations

import pytest

from copilot.compliance.normalize import chinese_numeral_value, fold_char, normalize, normalize_term


def _original_slice(text: str, needle: str) -> str:
    norm = normalize(text)
    start = norm.text.index(needle)
    lo, hi = norm.span(start, start + len(needle))
    return text[lo:hi]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＶＸ", "vx"),
        ("加 V 信", "加v信"),
        ("最　好", "最好"),
        ("最😊好", "最好"),
        ("最\u200b好", "最好"),
        ("最\u200d\ufe0f好", "最好"),
        ("穩賺不賠", "稳赚不赔"),
        ("後來", "后来"),
        ("🅥🅧", "vx"),
        ("𝐕𝐗", "vx"),
        ("＋Ｖ", "加v"),
        ("➕V", "加v"),
        ("✚薇", "加薇"),
        ("①②③", "123"),
        ("❶", "1"),
    ],
)
def test_evasive_spellings_normalise_to_the_plain_form(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("壹佰％有效", "100%有效"),
        ("百分之百纯棉", "100%纯棉"),
        ("百分百满意", "100%满意"),
        ("效果百分之九十九", "效果99%"),
        ("一百%安全", "100%安全"),
        ("贰拾元", "20元"),
    ],
)
def test_chinese_numerals_in_percent_and_amount_contexts_become_digits(text: str, expected: str) -> None:
    assert normalize(text).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("tnb的老人", "糖尿病的老人"), ("他家的货lj", "他家的货垃圾"), ("DDDD，不多说", "懂的都懂不多说")],
)
def test_chat_initials_read_as_their_word(text: str, expected: str) -> None:
    assert normalize(text).text == expected
    assert normalize(text).span(len(expected) - 2, len(expected)) == (len(text) - 2, len(text))


@pytest.mark.parametrize("text", ["html里的ljust", "tnbc型号", "Ldddd码"])
def test_initials_inside_a_latin_word_are_left_alone(text: str) -> None:
    assert normalize(text).text == text.lower()


def test_numerals_outside_amount_contexts_are_left_alone() -> None:
    assert normalize("第一次见面，一起吃饭").text == "第一次见面一起吃饭"
    assert normalize("第一元素").text == "第一元素"


@pytest.mark.parametrize(
    ("numeral", "value"),
    [
        ("壹佰", 100),
        ("一百零五", 105),
        ("十五", 15),
        ("二十", 20),
        ("一零零", 100),
        ("三万五千", 35000),
        ("十", 10),
    ],
)
def test_chinese_numeral_values(numeral: str, value: int) -> None:
    assert chinese_numeral_value(numeral) == value


def test_span_covers_characters_deleted_inside_a_match() -> None:
    assert _original_slice("最😊好的奶粉", "最好") == "最😊好"
    assert _original_slice("这款是最　好的", "最好") == "最　好"


def test_span_covers_the_original_numeral_spelling() -> None:
    assert _original_slice("这款壹佰％有效哦", "100%") == "壹佰％"
    assert _original_slice("这款壹佰％有效哦", "有效") == "有效"


def test_span_after_a_character_that_expands() -> None:
    text = "⑩号，最😊好"
    assert normalize(text).text == "10号最好"
    assert _original_slice(text, "最好") == "最😊好"
    assert _original_slice(text, "10") == "⑩"


def test_span_rejects_ranges_outside_the_text() -> None:
    with pytest.raises(IndexError):
        normalize("你好").span(0, 5)


def test_terms_and_single_characters_fold_like_texts() -> None:
    assert normalize_term("NO.1") == "no1"
    assert fold_char("，") == ""
    assert fold_char("Ｖ") == "v"
    assert fold_char("薇") == "薇"


def test_variant_forms_read_as_the_standard_one() -> None:
    # 帐户/帐号/转帐 are variants the standard replaced with 账; OpenCC turns 帳 into 帐, not 账.
    assert normalize("转帐到我个人帐户").text == "转账到我个人账户"
    assert normalize("轉帳給我").text == "转账给我"
