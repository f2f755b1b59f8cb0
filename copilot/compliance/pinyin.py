"""Rule words spelled in pinyin: zui hao yong, si xia zhuan zhang, di yi pin pai.

Writing a claim in pinyin is a common way round keyword filters, and the rules only read characters. The checker
reads such runs back: a run of two or more Latin tokens that are all pinyin syllables is matched, syllable by
syllable, against the pinyin of the words the rules already know (their terms, the literals their patterns need, the
lists they name), and each match is written back in characters. The rewritten text then goes through the same
checker, so negations, context and the other filters apply as they do to characters. Only whole syllables match, so
an English word (ok, long, fan) never stands for a character on its own, and nothing is guessed for pinyin that no
rule word spells.

Pinyin mixed with characters (zhi疗, 能zhi, 湿zhen, si下转账) is read the same way: a rule word may be spelled partly
in characters, as long as each character is the word's own and at least one syllable is in Latin letters. A lone
syllable is read only inside such a word, so 能zhi腰疼 reads 能治 (a rule word) and nothing else.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from pypinyin import lazy_pinyin

__all__ = ["PinyinReader", "Rewritten", "has_pinyin_run", "spelled"]

_LATIN = "a-zA-Zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüê"
# Two or more Latin tokens separated by spaces (or the apostrophe of xi'an): the shape of written-out pinyin.
_RUN = re.compile(rf"[{_LATIN}]+(?:[ \t'’·]+[{_LATIN}]+)+")
_TOKEN = re.compile(rf"[{_LATIN}]+")
_CJK = re.compile(r"^[\u4e00-\u9fff]{2,}$")
# A Latin token against a character (zhi疗, 能 zhi): the shape of pinyin mixed into a word.
_MIXED = re.compile(rf"[{_LATIN}][ \t]?[\u4e00-\u9fff]|[\u4e00-\u9fff][ \t]?[{_LATIN}]")
# What `rewrite` reads: Latin tokens and single characters; a space or apostrophe may separate them.
_PIECE = re.compile(rf"[{_LATIN}]+|[\u4e00-\u9fff]|[ \t'’·]+|.", re.S)
_WINDOW = 64  # characters read on each side of a syllable: the longest rule word spelled out in Latin is shorter
_MAX_WORD = 8  # syllables; the longest rule words are about this long


def has_pinyin_run(text: str) -> bool:
    """Cheap test for a run of Latin tokens or Latin against a character (most messages have neither)."""
    return _RUN.search(text) is not None or _MIXED.search(text) is not None


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
    """Reads pinyin, alone or mixed with characters, back into the rule words it spells."""

    def __init__(self, words: Iterable[str]) -> None:
        self._words: dict[tuple[str, ...], list[str]] = {}
        self._prefixes: set[tuple[str, ...]] = set()  # the start of some word's syllables: reading on may find it
        self._syllables = _syllables()
        for word in sorted(set(words)):
            if _CJK.match(word):
                key = spelled(word)
                self._words.setdefault(key, []).append(word)
                self._prefixes.update(key[:n] for n in range(1, len(key)))

    def rewrite(self, text: str) -> Rewritten | None:
        """`text` with every rule word spelled (partly) in pinyin written in characters, or None when there is none."""
        syllables = self._syllables
        windows: list[list[int]] = []  # only the text around a syllable in Latin letters is read
        for m in _TOKEN.finditer(text):
            if _toneless(m.group()) in syllables:
                lo, hi = max(0, m.start() - _WINDOW), min(len(text), m.end() + _WINDOW)
                if windows and lo <= windows[-1][1]:
                    windows[-1][1] = hi
                else:
                    windows.append([lo, hi])
        groups: list[list[tuple[int, int, str, bool]]] = []
        for lo, hi in windows:
            while lo > 0 and _TOKEN.match(text, lo - 1):  # never start or end inside a Latin word
                lo -= 1
            while hi < len(text) and _TOKEN.match(text, hi):
                hi += 1
            tokens: list[tuple[int, int, str, bool]] = []  # start, end, syllable, written in Latin
            groups.append(tokens)
            for m in _PIECE.finditer(text, lo, hi):
                piece = m.group()
                if piece[0] in " \t'’·":
                    continue
                if "\u4e00" <= piece[0] <= "\u9fff":
                    tokens.append((m.start(), m.end(), piece, False))
                    continue
                toneless = _toneless(piece) if piece[0].isalpha() else ""
                if toneless in syllables:
                    tokens.append((m.start(), m.end(), toneless, True))
                else:
                    tokens = []
                    groups.append(tokens)
        out: list[str] = []
        pieces: list[tuple[int, int, int, int]] = []
        done = 0  # original text copied up to here
        length = 0  # length of the rewritten text so far
        chosen: list[tuple[int, int, str]] = []  # (start, end, word) in the original text
        for group in groups:
            chosen += [(group[i][0], group[j - 1][1], word) for i, j, word in self._words_in(group)]
        for start, end, word in sorted(chosen):
            out.append(text[done:start])
            length += start - done
            pieces.append((length, length + len(word), start, end))
            out.append(word)
            length += len(word)
            done = end
        if not pieces:
            return None
        out.append(text[done:])
        return Rewritten("".join(out), tuple(pieces))

    def _words_in(self, group: list[tuple[int, int, str, bool]]) -> list[tuple[int, int, str]]:
        """Rule words spelled in a group of tokens with at least one syllable in Latin, as (first, past-last, word).

        Where spellings overlap, the one with more syllables in Latin wins, then the longer, then the earlier: in
        能 zhi yu 湿疹 that is 治愈 (two in Latin), not 能治 (one)."""
        latin = [k for k, t in enumerate(group) if t[3]]
        if not latin:
            return []
        found: list[tuple[int, int, int, str]] = []  # -syllables in Latin, first, past-last, word
        for i in range(max(0, latin[0] - _MAX_WORD + 1), min(len(group), latin[-1] + 1)):
            key: tuple[str, ...] = ()
            in_latin = 0
            for j in range(i, min(len(group), i + _MAX_WORD)):
                _, _, token, is_latin = group[j]
                key += (token if is_latin else _pinyin_of(token),)
                in_latin += is_latin
                if in_latin and len(key) > 1:
                    span = group[i : j + 1]
                    for word in self._words.get(key, ()):
                        if all(is_in or word[k] == t for k, (_, _, t, is_in) in enumerate(span)):
                            found.append((-in_latin, i, j + 1, word))
                            break
                if key not in self._prefixes:
                    break
        taken: list[tuple[int, int, str]] = []
        for _, i, j, word in sorted(found, key=lambda f: (f[0], f[1] - f[2], f[1])):
            if all(j <= a or i >= b for a, b, _ in taken):
                taken.append((i, j, word))
        return taken


@cache
def spelled(word: str) -> tuple[str, ...]:
    """The word's toneless syllables, read as a phrase (重 in 重要 and in 重复). Kept for the life of the process:
    every tenant's rules and every reload spell mostly the same words, and pypinyin takes about a second for the
    packs' 27,000."""
    return tuple(lazy_pinyin(word))


@cache
def _pinyin_of(character: str) -> str:
    return lazy_pinyin(character)[0]
