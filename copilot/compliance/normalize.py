"""Evasion-proof text normalisation with a map back to the original offsets.

Staff and customers dodge keyword filters by writing `最😊好`, `ＶＸ`, `壹佰％` or traditional characters.
Every rule therefore matches a *normalised* copy of the text in which:

* full-width, circled, mathematical and other compatibility forms become plain letters and digits (NFKC, plus
  the circled digits and enclosed letters NFKC leaves alone);
* letters are lower-cased and traditional characters become simplified (a per-character table derived from
  OpenCC `t2s` once per process, so the conversion never changes the length of a character, and variant forms
  the standard replaced become the standard one: 帐户 → 账户);
* spaces, punctuation, symbols, emoji, combining marks and zero-width characters are deleted, so
  characters separated by them become adjacent; `%` is kept and `+` becomes `加` (`+V` means `加V`);
* Chinese numerals in percent and amount contexts become digits (`壹佰%` → `100%`, `百分之百` → `100%`), and a
  few chat initials become the word they stand for (`tnb` → `糖尿病`, `dddd` → `懂的都懂`).

Rule patterns are written against this form. `Normalized.span` maps a normalised slice back to the exact
original slice, so a flag on `最😊好的奶粉` covers `最😊好` and nothing else. The map is built lazily: most
texts raise no flag and never pay for it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cache

import opencc

__all__ = ["Normalized", "chinese_numeral_value", "fold_char", "normalize", "normalize_term"]

# Astral blocks that hold emoji, enclosed letters, mathematical letters and tag/variation characters; every
# other astral character passes through unchanged (a rare dictionary miss, still correct).
_ASTRAL_RANGES = ((0x1D400, 0x1D800), (0x1F000, 0x1FC00), (0xE0000, 0xE01F0))
_KEEP_SYMBOLS = frozenset("%")
_PLUS = frozenset("+＋﹢➕✚⁺₊")  # the heavy plus emoji (➕V) is the commonest in chat


def _letter_from_name(ch: str) -> str:
    """`🅥`, `🆅` and `🇻` have no compatibility decomposition; their names still say which letter they are."""
    name = unicodedata.name(ch, "")
    for marker in ("LATIN CAPITAL LETTER ", "LATIN SMALL LETTER ", "SYMBOL LETTER "):
        if marker in name:
            tail = name.rsplit(" ", 1)[-1]
            if len(tail) == 1 and tail.isalpha():
                return tail.lower()
    return ""


def _map_char(ch: str, t2s: dict[str, str]) -> str:
    if ch in _PLUS:
        return "加"
    category = unicodedata.category(ch)
    if category == "No":
        value = unicodedata.numeric(ch, -1.0)
        return str(int(value)) if value >= 0 and value == int(value) else ""
    folded = unicodedata.normalize("NFKC", ch)
    out: list[str] = []
    for c in folded:
        if c.isalnum():
            out.extend(t2s.get(low, low) for low in c.lower() if low.isalnum())
        elif c in _KEEP_SYMBOLS:
            out.append(c)
    if not out and category == "So":
        return _letter_from_name(ch)
    return "".join(out)


def _t2s_table() -> dict[str, str]:
    """One OpenCC call over every CJK character, one per line, so phrase rules cannot merge neighbours."""
    chars = [chr(c) for c in (*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000), *range(0xF900, 0xFB00))]
    converted = opencc.OpenCC("t2s").convert("\n".join(chars)).split("\n")
    if len(converted) != len(chars):
        return {}
    table = {a: b for a, b in zip(chars, converted, strict=True) if a != b and len(b) == 1}
    return table | _VARIANTS


# Variant forms the standard replaced (第一批异形词整理表: 帐户 → 账户, 帐号 → 账号, 转帐 → 转账), which OpenCC keeps
# (帳 → 帐): the rules are written in the standard form. 帐篷 and 蚊帐 read as 账篷 and 蚊账 here, which no rule names.
_VARIANTS = {"帐": "账", "帳": "账"}


@cache
def _table() -> dict[int, str | None]:
    """Translate table covering every BMP character, so `str.translate` never takes its slow miss path."""
    t2s = _t2s_table()
    table: dict[int, str | None] = {}
    codepoints: Iterable[int] = range(0x10000)
    for lo, hi in _ASTRAL_RANGES:
        codepoints = (*codepoints, *range(lo, hi))
    for cp in codepoints:
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        mapped = _map_char(ch, t2s)
        table[cp] = mapped if mapped else None
    return table


_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "幺": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
    "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_NUMERAL_CLASS = "".join(_DIGITS) + "".join(_UNITS) + "万"
# Initials that stand for a word in chat (tnb 糖尿病, gxy 高血压, dddd 懂的都懂, zqs 智商税, lj 垃圾), read as the word
# when no other letter touches them.
_INITIALS = {"tnb": "糖尿病", "gxy": "高血压", "dddd": "懂的都懂", "zqs": "智商税", "lj": "垃圾"}
_INITIALS_RE = re.compile(rf"(?<![a-z])(?:{'|'.join(_INITIALS)})(?![a-z])")
_REWRITE_RE = re.compile(
    rf"百分之?百|百分之([{_NUMERAL_CLASS}0-9]+)|(?<!第)([{_NUMERAL_CLASS}]+)(?=[%倍元])"
    rf"|(?<![a-z])({'|'.join(_INITIALS)})(?![a-z])"
)


def chinese_numeral_value(numeral: str) -> int | None:
    """Value of `壹佰`, `一百零五`, `十` or a digit string like `一零零`; None if it is not a number."""
    if not numeral:
        return None
    if all(c in _DIGITS or c.isdigit() for c in numeral) and len(numeral) > 1:
        return int("".join(str(_DIGITS[c]) if c in _DIGITS else c for c in numeral))
    total = section = num = 0
    for c in numeral:
        if c in _DIGITS:
            num = _DIGITS[c]
        elif c.isdigit():
            num = num * 10 + int(c)
        elif c in _UNITS:
            section += (num or 1) * _UNITS[c]
            num = 0
        elif c == "万":
            total += (section + num or 1) * 10000
            section = num = 0
        else:
            return None
    return total + section + num


def _replacement(match: re.Match[str]) -> str | None:
    if match.group(3) is not None:
        return _INITIALS[match.group(3)]
    if match.group(1) is None and match.group(2) is None:
        return "100%"
    if match.group(1) is not None:
        value = chinese_numeral_value(match.group(1))
        return None if value is None else f"{value}%"
    value = chinese_numeral_value(match.group(2))
    return None if value is None else str(value)


class Normalized:
    """A normalised text plus the lazily built map from its characters to original offsets."""

    __slots__ = ("_ends", "_folded_len", "_rewrites", "_starts", "original", "text")

    def __init__(
        self, original: str, text: str, rewrites: tuple[tuple[int, int, str], ...], folded_len: int
    ) -> None:
        self.original = original
        self.text = text
        self._rewrites = rewrites
        self._folded_len = folded_len
        self._starts: list[int] | None = None
        self._ends: list[int] = []

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original `[start, end)` covering normalised `[start, end)`, including anything deleted inside."""
        if not 0 <= start < end <= len(self.text):
            raise IndexError(
                f"span [{start}, {end}) is outside the normalised text of length {len(self.text)}"
            )
        if self._starts is None:
            self._build_map()
        assert self._starts is not None
        return self._starts[start], self._ends[end - 1]

    def _build_map(self) -> None:
        table = _table()
        starts = [i for i, ch in enumerate(self.original) if table.get(ord(ch), ch)]
        if len(starts) == self._folded_len:
            ends = [i + 1 for i in starts]
        else:  # some character became several (⑩ → 10): spell every one out
            starts, ends = [], []
            for i, ch in enumerate(self.original):
                out = table.get(ord(ch), ch) or ""
                starts.extend([i] * len(out))
                ends.extend([i + 1] * len(out))
        if self._rewrites:
            new_starts: list[int] = []
            new_ends: list[int] = []
            pos = 0
            for lo, hi, repl in self._rewrites:
                new_starts.extend(starts[pos:lo])
                new_ends.extend(ends[pos:lo])
                new_starts.extend([starts[lo]] * len(repl))
                new_ends.extend([ends[hi - 1]] * len(repl))
                pos = hi
            new_starts.extend(starts[pos:])
            new_ends.extend(ends[pos:])
            starts, ends = new_starts, new_ends
        self._starts, self._ends = starts, ends


def normalize(text: str) -> Normalized:
    """Normalise `text` for matching; see the module docstring for what changes."""
    folded = text.translate(_table())
    folded_len = len(folded)
    rewrites: list[tuple[int, int, str]] = []
    if "%" in folded or "百" in folded or "倍" in folded or "元" in folded or _INITIALS_RE.search(folded):
        pieces: list[str] = []
        pos = 0
        for match in _REWRITE_RE.finditer(folded):
            repl = _replacement(match)
            if repl is None:
                continue
            lo, hi = match.span()
            pieces.append(folded[pos:lo])
            pieces.append(repl)
            rewrites.append((lo, hi, repl))
            pos = hi
        if rewrites:
            pieces.append(folded[pos:])
            folded = "".join(pieces)
    return Normalized(text, folded, tuple(rewrites), folded_len)


def fold_char(ch: str) -> str:
    """What one original character becomes in normalised text ("" when it is deleted)."""
    return _table().get(ord(ch), ch) or ""


def normalize_term(term: str) -> str:
    """The normalised form of a lexicon entry, so terms and texts meet in the same alphabet."""
    return normalize(term).text
