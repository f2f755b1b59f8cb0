"""A signal for health claims worded without a listed claim ending: a named illness, then what is said after it.

A health claim rarely repeats a rule's endings (肿块会慢慢变小的, 软骨是能重新长出来的, 喘得会轻很多); what recurs is an
illness or condition named (the general pack's `illness` list, 400-odd conditions) and, a few characters later, the
change promised. Each character pair in the window after an illness becomes a feature of its own (`CONTEXT` +
pair), so the semantic layer's health-claim classifier (`semantic.train_health`) learns from the development split
that 变小, 就停 or 不用 after 结节 or 失眠 is a claim while the same pair elsewhere is not; no word list decides which
pairs count. The window (16 characters) was chosen on held-out development blocks, with the pairs read by every
category's classifier: ad_medical recall 0.881 with 10 characters, 0.892 with 16, 0.871 with 24.
"""

from __future__ import annotations

from functools import cache, lru_cache
from importlib import resources

import yaml

from copilot.wordsearch import WordSearch

__all__ = ["CONTEXT", "after_illness", "illness_words"]

CONTEXT = "\x02"  # prefix of the after-illness features; normalised text never holds \x02
_WINDOW = 16


@cache
def illness_words() -> tuple[str, ...]:
    pack = resources.files("copilot.compliance").joinpath("packs", "general.yaml").read_text("utf-8")
    return tuple(dict.fromkeys(w.lower() for w in yaml.safe_load(pack)["lists"]["illness"]))


@cache
def _illnesses() -> WordSearch[None]:
    return WordSearch((word, None) for word in illness_words())


@lru_cache(maxsize=8)
def after_illness(normalised: str) -> frozenset[str]:
    """`CONTEXT` + each character pair within `_WINDOW` characters after an illness is named. One check asks this of
    the same text several times (whether to score it, then its features), so the last few answers are kept."""
    pairs: set[str] = set()
    for _, _, stop in _illnesses().matches(normalised):
        window = normalised[stop : stop + _WINDOW]
        pairs.update(CONTEXT + window[i : i + 2] for i in range(len(window) - 1))
    return frozenset(pairs)
