"""A signal for disparagement worded without a listed wrong-doing word: another seller named, then a negative word.

Disparaging a competitor rarely repeats a list's words (别家的洗面奶越洗越干, 他们的老师哪懂教学): what recurs is a
reference to another seller (别家, 他们家, 同行, 某宝, 其他品牌, a named rival) followed closely by a word of negative
sentiment. The negative words are jionlp's sentiment lexicon (`lexicons/sentiment_negative.txt`, 18,607 entries,
Apache-2.0); the lexicon is broad and noisy (蛋白质 is in it), so this is not a rule: the semantic layer reads it as
one more feature next to the text's n-grams, learns its weight per category, and its thresholds (chosen on held-out
blocks under the shared clean budget) decide what the feature may flag. Plain comparisons (也不错, 不好评价) are left
to the checker's neutral-comparison filter as before.

Beside that one feature, `after_reference` gives the character pairs that follow a reference, each as a feature of
its own (`CONTEXT` + pair): the classifiers can then learn that 超标, 跑路 or 骗人 right after 那家 or 他们家 is
disparagement while the same pair elsewhere is not, with no word list deciding which pairs count.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from copilot.wordsearch import WordSearch

__all__ = ["CONTEXT", "FEATURE", "after_reference", "disparages", "negative_after", "reference_words", "word_list_bytes"]

FEATURE = "\x01disparage"  # the pseudo n-gram the semantic layer adds; normalised text never holds \x01
CONTEXT = "\x01"  # prefix of the after-reference features (`after_reference`)
_WINDOW = 16  # characters after the reference where the negative word must start
_REFERENCES = [
    "别家", "别人家", "其他家", "其它家", "他家", "他们家", "她家", "ta家", "他们的", "他们那", "人家的", "人家那", "另一家", "那家", "别的店",
    "别的机构", "别的品牌", "别的牌子", "其他品牌", "其它品牌", "其他牌子", "其他平台", "其他机构", "其他店", "别处", "同行", "友商", "竞品", "隔壁",
    "某宝", "某音", "某东", "某多多", "拼夕夕", "某牌", "某某牌", "某品牌", "xx", "那个牌子", "那个品牌", "那个app", "那个平台", "小品牌", "杂牌",
    "市面上",
]  # another seller, or a product sold elsewhere
_REFERENCES += [f"{letter}牌" for letter in "abcdefghijklmnopqrstuvwxyz"]  # a牌, x牌: a rival left unnamed


def word_list_bytes() -> bytes:
    """The negative word list as shipped (part of the semantic model's cache key)."""
    return resources.files("copilot.compliance").joinpath("lexicons", "sentiment_negative.txt").read_bytes()


@cache
def reference_words() -> tuple[str, ...]:
    """The references above plus the rivals the general pack names (飞鹤, 惠氏, 学而思 …)."""
    pack = resources.files("copilot.compliance").joinpath("packs", "general.yaml").read_text("utf-8")
    return tuple(dict.fromkeys([*_REFERENCES, *(r.lower() for r in yaml.safe_load(pack)["lists"]["competitors"])]))


@cache
def _references() -> WordSearch[None]:
    return WordSearch((word, None) for word in reference_words())


@cache
def _negative() -> WordSearch[None]:
    raw = word_list_bytes().decode("utf-8")
    return WordSearch((word, None) for word in raw.splitlines() if word and not word.startswith("#"))


def disparages(normalised: str) -> bool:
    """Whether a reference to another seller is followed within a few characters by a negative word."""
    return any(negative_after(normalised, stop) for _, _, stop in _references().matches(normalised))


def negative_after(normalised: str, stop: int) -> bool:
    """Whether a negative word lies within a few characters after a reference that stops at `stop` (exclusive)."""
    window = normalised[stop : stop + _WINDOW]
    return bool(window) and _negative().found_in(window)


def after_reference(normalised: str) -> set[str]:
    """`CONTEXT` + each character pair within `_WINDOW` characters after a reference to another seller."""
    pairs: set[str] = set()
    for _, _, stop in _references().matches(normalised):
        window = normalised[stop : stop + _WINDOW]
        pairs.update(CONTEXT + window[i : i + 2] for i in range(len(window) - 1))
    return pairs
