"""The fact check of LLM drafts: every concrete claim must be backed by what the draft cites or by the chat.

`extract_claims` finds the spans a customer would take as fact: numbers with their units (prices,
sizes, quantities, durations, dates and times, discounts), size codes (M码, 2段), product names,
promises (包邮, 送…, 已经帮您…) and profile facts (a city, a feeding mode, a baby's sex). `check`
then looks for each claim, normalised (两包 → 2包, 9公斤 → 9kg, 12月1号 → 12月1日), in the evidence:
the texts of the scripts, content items and profile fields the draft cites, the conversation, and
the persona. A claim found nowhere is unsupported, and the caller turns it into an
`unsupported_claim` flag that needs a human: the copilot cannot know whether the model was right.

Product names and profile-fact words come from the tenant's own library (`Lexicon.from_library`)
plus `factcheck_terms.yaml`; promise patterns and unit words live in that file too, so they can be
reviewed without reading code. Numbers written in Chinese are converted here rather than with a
numeral library because the ones we tried leave 两 and ranges (一到两箱) alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

__all__ = ["Claim", "Evidence", "Lexicon", "Unsupported", "check", "extract_claims", "normalize"]

_TERMS_FILE = Path(__file__).with_name("factcheck_terms.yaml")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_CN_NUM = "零〇一二两三四五六七八九十百千万"
_NUM = rf"(?:\d+(?:\.\d+)?|[{_CN_NUM}]+|几|半)"


@dataclass(frozen=True)
class Claim:
    kind: str  # price | size | quantity | date | number | product | promise | profile
    span: tuple[int, int]
    text: str


@dataclass(frozen=True)
class Evidence:
    """What a draft may rely on: (label, text) pairs, e.g. ("话术 S-DPR-004", "…")."""

    sources: tuple[tuple[str, str], ...]

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self.sources]


@dataclass(frozen=True)
class Unsupported:
    claim: Claim
    looked_for: str  # the normalised form searched for
    looked_in: tuple[str, ...]  # the labels of the evidence searched


@dataclass(frozen=True)
class Lexicon:
    products: tuple[str, ...]
    profile_terms: tuple[str, ...]
    promises: tuple[re.Pattern[str], ...]
    units: str  # the unit alternation used after a number
    idioms: frozenset[str]  # number+unit phrases that are figures of speech, not claims (一下, 一点)

    @classmethod
    def from_library(cls, product_titles: Iterable[str], brand: str) -> Lexicon:
        """Product names from the library's product titles (brand, size and pack parts removed) and the
        shipped category words; profile-fact words from the shipped list. The customer's own true
        values (a nickname) are not claims: a draft may use them without citing the field."""
        terms = _terms()
        products = set(terms["product_categories"])
        for title in product_titles:
            name = re.split(r"[\s（(]", title.replace(brand, "").strip(), maxsplit=1)[0]
            if 2 <= len(name) <= 12:
                products.add(name)
        profile = set(terms["profile_terms"])
        units = "|".join(sorted(terms["units"], key=len, reverse=True))
        return cls(
            products=tuple(sorted(products, key=len, reverse=True)),
            profile_terms=tuple(sorted(profile - products, key=len, reverse=True)),
            promises=tuple(re.compile(p) for p in terms["promises"]),
            units=units,
            idioms=frozenset(terms["idioms"]),
        )


@lru_cache(maxsize=1)
def _terms() -> dict[str, list[str]]:
    raw = yaml.safe_load(_TERMS_FILE.read_text(encoding="utf-8"))
    return {key: [str(v) for v in values] for key, values in raw.items()}


def _cn_to_int(text: str) -> int | None:
    if not text or any(c not in _CN_DIGITS and c not in _CN_UNITS for c in text):
        return None
    total, section, digit = 0, 0, None
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char] if digit is None else digit * 10 + _CN_DIGITS[char]
        else:
            unit = _CN_UNITS[char]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section, digit = 0, None
            else:
                section += (1 if digit is None else digit) * unit
                digit = None
    return total + section + (digit or 0)


def normalize(text: str) -> str:
    """Numbers and units in one spelling, so the same fact matches however it was written."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(rf"[{_CN_NUM}]+", lambda m: str(n) if (n := _cn_to_int(m.group(0))) is not None else m.group(0), text)
    text = re.sub(r"¥\s*(\d+(?:\.\d+)?)", r"\1元", text)
    replacements = (
        (r"(?<=\d)\s*(?:公斤|千克|KG|Kg)", "kg"), (r"(?<=\d)\s*(?:毫升|ML|mL)", "ml"), (r"(?<=\d)\s*克", "g"),
        (r"(?<=\d)\s*厘米", "cm"), (r"(?<=\d)\s*(?:块钱|块|元钱)", "元"), (r"(?<=\d)\s*号(?!码|奶嘴)", "日"),
        (r"个?星期", "周"), (r"礼拜", "周"), (r"(?<=\d)\s*(?:到|至|~|～|—|－)\s*(?=\d)", "-"),
        (r"(?<=\d)\s+(?=[a-zA-Z\u4e00-\u9fff])", ""), (r"早上|上午", "上午"), (r"晚上|晚", "晚"),
    )
    for pattern, repl in replacements:
        text = re.sub(pattern, repl, text)
    return text


def extract_claims(text: str, lexicon: Lexicon) -> list[Claim]:
    """The checkable spans of `text`, longest first where they overlap, in reading order."""
    found: list[Claim] = []
    patterns: list[tuple[str, str]] = [
        ("price", rf"满\s*{_NUM}\s*减\s*{_NUM}"),
        ("price", rf"¥\s*\d+(?:\.\d+)?|{_NUM}\s*(?:元|块钱|块)|{_NUM}折|百分之{_NUM}|\d+(?:\.\d+)?%"),
        ("promise", rf"买\s*{_NUM}\s*送\s*{_NUM}[^\s，。！？,.!?～~]{{0,6}}"),
        ("date", rf"{_NUM}月{_NUM}(?:日|号)(?:\s*(?:到|至|-|~|～)\s*{_NUM}(?:日|号))?"),
        ("date", rf"(?:每月|本月|下月)?{_NUM}(?:日|号)"),
        ("date", rf"(?:上午|下午|早上|晚上|中午|凌晨|晚)?{_NUM}点(?:前|后|半|之前|以前)?"),
        ("date", r"(?:今天|明天|后天|明后天|昨天|今晚|明晚|上个月|下个月|下周|这周|本周|周[一二三四五六日天]|星期[一二三四五六日天])"),
        ("size", r"(?<![A-Za-z])(?:NB|XXXL|XXL|XL|S|M|L)(?:码|号)"),
        ("quantity", rf"{_NUM}\s*(?:-|到|至|~|～)\s*{_NUM}\s*(?:{lexicon.units})(?:多|左右|以上|以内|内)?"),
        ("quantity", rf"{_NUM}\s*(?:{lexicon.units})(?:多|左右|以上|以内|内)?"),
    ]
    for kind, pattern in patterns:
        for match in re.finditer(pattern, text):
            span = match.span()
            phrase = match.group(0)
            if phrase in lexicon.idioms or _overlaps(span, found):
                continue
            found.append(Claim(_kind_of(kind, phrase), span, phrase))
    for promise in lexicon.promises:
        for match in promise.finditer(text):
            if not _overlaps(match.span(), found, kinds=("promise",)):
                found.append(Claim("promise", match.span(), match.group(0)))
    for kind, terms in (("product", lexicon.products), ("profile", lexicon.profile_terms)):
        for term in terms:
            for match in re.finditer(re.escape(term), text):
                if not _overlaps(match.span(), found, kinds=("product", "profile")):
                    found.append(Claim(kind, match.span(), term))
    return sorted(found, key=lambda c: c.span)


def _kind_of(kind: str, phrase: str) -> str:
    if kind != "quantity":
        return kind
    if re.search(r"(?:kg|公斤|千克|斤|g|克|ml|毫升|cm|厘米|段)", phrase):
        return "size"
    if re.search(r"(?:天|周|个月|个多月|个半月|年|小时|分钟)", phrase):
        return "date"
    if re.search(r"(?:岁|积分|分)", phrase):
        return "number"
    return "quantity"


def _overlaps(span: tuple[int, int], claims: Sequence[Claim], kinds: tuple[str, ...] | None = None) -> bool:
    return any(c.span[0] < span[1] and span[0] < c.span[1] and (kinds is None or c.kind in kinds) for c in claims)


def check(text: str, evidence: Evidence, lexicon: Lexicon) -> list[Unsupported]:
    """The claims of `text` that appear nowhere in the evidence."""
    haystack = "\n".join(normalize(body) for _, body in evidence.sources)
    out: list[Unsupported] = []
    for claim in extract_claims(text, lexicon):
        wanted = _key(claim)
        if not _found(wanted, haystack):
            out.append(Unsupported(claim, wanted, tuple(evidence.labels)))
    return out


def _key(claim: Claim) -> str:
    key = normalize(claim.text)
    if claim.kind in ("quantity", "size", "date", "number", "price"):
        key = re.sub(r"(?:多|左右|以上|以内|之前|以前)$", "", key)  # 三周多 is backed by 三周
    return key.replace(" ", "")


def _found(key: str, haystack: str) -> bool:
    if not key:
        return True
    # A number must not be read out of a longer one: 2包 is not backed by 12包.
    prefix = r"(?<![\d.])" if key[0].isdigit() else ""
    return re.search(prefix + re.escape(key), haystack) is not None
