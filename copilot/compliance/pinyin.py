"""Rule words spelled in pinyin: zui hao yong, si xia zhuan zhang, di yi pin pai.

Writing a claim in pinyin is a common way round keyword filters, and the rules only read characters. The checker
reads such runs back: a run of two or more Latin tokens that are all pinyin syllables is matched, syllable by
syllable, against the pinyin of the words the rules already know (their terms, the literals their patterns need, the
lists they name), and each match is written back in characters. The rewritten text then goes through the same
checker, so negations, context and the other filters apply as they do to characters. Only whole syllables match, so
an English word (ok, long, fan) never stands for a character on its own, and nothing is guessed for pinyin that no
rule word spells.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pypinyin import lazy_pinyin

__all__ = ["PinyinReader", "Rewritten", "has_pinyin_run"]

_LATIN = "a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüê"
# Two or more Latin tokens separated by spaces (or the apostrophe of xi'an): the shape of written-out pinyin.
_RUN = re.compile(rf"[{_LATIN}]+(?:[ \t'’·]+[{_LATIN}]+)+")
_TOKEN = re.compile(rf"[{_LATIN}]+")
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,}$")
_MAX_WORD = 8  # syllables; the longest rule words are about this long


def has_pinyin_run(text: str) -> bool:
    """Cheap test for a run of Latin tokens (most messages have none)."""
    return _RUN.search(text) is not None


@cache
def _syllables() -> frozenset[str]:
    """Every toneless pinyin syllable pypinyin gives a common character (zhuang, lv, er …)."""
    spelled = lazy_pinyin("".join(chr(c) for c in range(0x4E00, 0x9FA6)), errors="ignore")
    return frozenset(s for s in spelled if s.isascii() and s.isalpha())


def _toneless(token: str) -> str:
    plain = "".join(c for c in unicodedata.normalize("NFKD", token.replace("ü", "v")) if not unicodedata.combining(c))
    return plain.lower()


@dataclass(frozen=True)
class Rewritten:
    """A text with its pinyin words written in characters, and where each replaced piece came from."""

    text: str
    pieces: tuple[tuple[int, int, int, int], ...]  # (start, end) in the rewritten text, (start, end) in the original

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original span a span of the rewritten text covers (a replaced piece maps to its whole pinyin)."""
        return self._position(start, left=True), self._position(end, left=False)

    def _position(self, at: int, *, left: bool) -> int:
        i = bisect_right([piece[0] for piece in self.pieces], at) - 1
        if i < 0:
            return at
        new_start, new_end, old_start, old_end = self.pieces[i]
        if at == new_start:
            return old_start
        if at < new_end:  # inside a replaced piece: a start takes the whole pinyin from its start, an end to its end
            return old_start if left else old_end
        return old_end + (at - new_end)


class PinyinReader:
    """Reads pinyin runs back into the rule words they spell."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words: dict[tuple[str, ...], str] = {}
        for word in sorted(set(words)):
            if _CJK.match(word):
                self._words.setdefault(tuple(lazy_pinyin(word)), word)

    def rewrite(self, text: str) -> Rewritten | None:
        """`text` with every rule word spelled in pinyin written in characters, or None when there is none."""
        syllables = _syllables()
        out: list[str] = []
        pieces: list[tuple[int, int, int, int]] = []
        done = 0  # original text copied up to here
        length = 0  # length of the rewritten text so far
        for run in _RUN.finditer(text):
            tokens = [(m.start(), m.end(), _toneless(m.group())) for m in _TOKEN.finditer(text, run.start(), run.end())]
            i = 0
            while i < len(tokens):
                found = None
                if tokens[i][2] in syllables:
                    for j in range(min(len(tokens), i + _MAX_WORD), i + 1, -1):
                        key = tuple(t[2] for t in tokens[i:j])
                        if all(s in syllables for s in key) and key in self._words:
                            found = (j, self._words[key])
                            break
                if found is None:
                    i += 1
                    continue
                j, word = found
                start, end = tokens[i][0], tokens[j - 1][1]
                out.append(text[done:start])
                length += start - done
                pieces.append((length, length + len(word), start, end))
                out.append(word)
                length += len(word)
                done = end
                i = j
        if not pieces:
            return None
        out.append(text[done:])
        return Rewritten("".join(out), tuple(pieces))
