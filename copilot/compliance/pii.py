"""Personal data in chat text: find it, mask it before it leaves the building, put it back afterwards.

Customers paste phone numbers, addresses and ID numbers into WeCom; drafts must not leak them to a model
and logs must never hold them. Detection favours validated numbers over lookalikes: a resident ID must pass
`stdnum.cn.ric` (checksum, birth date, region), a phone must be a valid Chinese number to `phonenumbers`,
a bank card must pass Luhn with a plausible issuer prefix, so order numbers and prices stay unflagged.

Detection runs on the original text; full-width digits are first turned into ASCII one for one, so spans
index the original without any map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric

__all__ = ["MaskedText", "PiiMatch", "find_pii", "mask_pii"]

_ASCII_DIGITS = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789XX")
_SEP = r"[\s\-－]?"
_PREFILTER_NUMBER = re.compile(r"\d[\d\s\-－]{5,}\d")
# An ID is written 18 digits in a row, 6-8-4 or 6-4-4-4 (`610113 1998 0514 2674`, `500103-2000-0407-6301`);
# the checksum and birth date keep other digit runs out.
_ID_SEP = r"[\s\-－]{0,2}"
_ID_RE = re.compile(
    rf"(?<![\dA-Za-z])\d{{6}}{_ID_SEP}\d{{4}}{_ID_SEP}\d{{4}}{_ID_SEP}\d{{3}}[\dXxＸｘ](?![\dA-Za-z])"
)
_MOBILE_RE = re.compile(
    rf"(?<![\dA-Za-z+])(?:(?:\+|00|＋)?86{_SEP}|\(\+?86\){_SEP})?1{_SEP}[3-9](?:{_SEP}\d){{9}}(?![\dA-Za-z])"
)
_LANDLINE_RE = re.compile(
    rf"(?<![\dA-Za-z+])(?:(?:\+|00|＋)?86{_SEP})?(?:\(0\d{{2,3}}\)|（0\d{{2,3}}）|0\d{{2,3}}){_SEP}"
    rf"[2-9](?:{_SEP}\d){{6,7}}(?![\dA-Za-z])"
)
_CN_DIGITS = "零〇一二三四五六七八九幺两"
_CN_TO_ASCII = str.maketrans(_CN_DIGITS, "001234567891" + "2")
_CN_MOBILE_RE = re.compile(rf"(?<![{_CN_DIGITS}])[一幺](?:[\s\-]?[{_CN_DIGITS}]){{10}}(?![{_CN_DIGITS}])")
_CARD_RE = re.compile(rf"(?<![\dA-Za-z])\d(?:{_SEP}\d){{15,18}}(?![\dA-Za-z])")
# UnionPay, Visa, Mastercard, JCB and the old 9558 ICBC range; 2-series Mastercard is left out on purpose:
# order numbers starting with a date (2311…) fall inside it.
_CARD_PREFIXES = ("62", "60", "65", "4", "51", "52", "53", "54", "55", "35", "9558")

_CJK = r"\u4e00-\u9fff"
_NUM = r"0-9０-９一二三四五六七八九十百零〇"
_ADDRESS_RE = re.compile(
    rf"(?:[{_CJK}]{{2,8}}?(?:省|自治区|市|自治州|区|县|旗|镇|乡|街道))*"
    rf"[{_CJK}A-Za-z0-9]{{1,12}}?(?:路|街|大道|巷|弄|胡同)(?:[{_NUM}]+段)?[{_NUM}\-]+号(?:院)?"
    rf"(?:[{_NUM}A-Za-z\-]+(?:号楼|栋|幢|座|单元|楼|层|室|号|户))*"
    rf"|(?:[{_CJK}]{{2,8}}?(?:省|自治区|市|区|县|镇|乡))*[{_CJK}A-Za-z]{{2,12}}?"
    rf"(?:小区|花园|公寓|大厦|家园|苑|府|广场|新村|社区|村|公馆|华庭)"
    rf"[{_NUM}]+(?:号楼|栋|幢|座|期)[\-]?(?:[{_NUM}]+单元[\-]?)?[{_NUM}]+(?:室|号|户)?"
    rf"|(?<![{_NUM}])[{_NUM}]+(?:号楼|栋|幢|座)[\-]?[{_NUM}]+单元[\-]?[{_NUM}]+(?:室|号|户)?"
)
_ADDRESS_CUE = re.compile(r"[号室栋幢座]|单元")
_ADDRESS_LEAD = re.compile(
    r"^(?:我的|我家|收货|收件|家庭|详细|快递|请|麻烦|帮我)*(?:地址|住址)?(?:是|为|在|寄到|发到|送到|住在)?"
)
_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_DOCUMENT_RE = re.compile(
    r"(?:护照|通行证|签证)(?:号码|号)?(?:是|为)?[:：\s]*([A-Za-z]{1,2}\d{7,8})(?![\dA-Za-z])"
)
_PLATE_RE = re.compile(
    r"(?<![A-Za-z])[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]"
    r"[A-Z][\s·・•.\-]?(?:[A-HJ-NP-Z0-9]{5}|[DF][A-HJ-NP-Z0-9]{5}|[A-HJ-NP-Z0-9]{5}[DF])(?![A-Za-z0-9])"
)


# One search that most texts fail, so ordinary chat pays for a single regex scan.
_ANY_CUE = re.compile(
    rf"{_PREFILTER_NUMBER.pattern}|{_CN_MOBILE_RE.pattern}|{_ADDRESS_CUE.pattern}|@|护照|通行证|签证"
    r"|[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z]"
)


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its category, a human label for masks, span and canonical value."""

    category: str
    label: str
    span: tuple[int, int]
    value: str


def _digits(raw: str) -> str:
    return re.sub(r"[^0-9X]", "", raw.translate(_ASCII_DIGITS).upper())


def _numbers(text: str) -> list[PiiMatch]:
    found: list[PiiMatch] = []
    for m in _ID_RE.finditer(text):
        value = _digits(m.group())
        # The checksum is cheap; the full validation looks the region code up in a database.
        if value[-1] == ric.calc_check_digit(value) and ric.is_valid(value):
            found.append(PiiMatch("pii_id_number", "身份证", m.span(), value))
    for regex, label in ((_MOBILE_RE, "手机号"), (_LANDLINE_RE, "电话")):
        for m in regex.finditer(text):
            raw = m.group().translate(_ASCII_DIGITS)
            try:
                number = phonenumbers.parse(raw, "CN")
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                found.append(PiiMatch("pii_phone", label, m.span(), str(number.national_number)))
    for m in _CARD_RE.finditer(text):
        value = _digits(m.group())
        if 16 <= len(value) <= 19 and value.startswith(_CARD_PREFIXES) and luhn.is_valid(value):
            found.append(PiiMatch("pii_bank_card", "银行卡", m.span(), value))
    return found


def _spelled_phones(text: str) -> list[PiiMatch]:
    """Mobile numbers written in Chinese digits (一三八…), a common way to slip past number filters."""
    found = []
    for m in _CN_MOBILE_RE.finditer(text):
        digits = re.sub(r"[^0-9]", "", m.group().translate(_CN_TO_ASCII))
        if len(digits) == 11 and phonenumbers.is_valid_number(phonenumbers.parse(digits, "CN")):
            found.append(PiiMatch("pii_phone", "手机号", m.span(), digits))
    return found


def _addresses(text: str) -> list[PiiMatch]:
    found = []
    for m in _ADDRESS_RE.finditer(text):
        start, end = m.span()
        lead = _ADDRESS_LEAD.match(m.group())
        if lead and lead.end() < end - start:
            start += lead.end()
        found.append(PiiMatch("pii_address", "地址", (start, end), text[start:end]))
    return found


def _others(text: str) -> list[PiiMatch]:
    found: list[PiiMatch] = []
    if "@" in text:
        found.extend(
            PiiMatch("pii_other", "邮箱", m.span(), m.group().lower()) for m in _EMAIL_RE.finditer(text)
        )
    if "护照" in text or "通行证" in text or "签证" in text:
        found.extend(
            PiiMatch("pii_other", "证件号", m.span(1), m.group(1).upper())
            for m in _DOCUMENT_RE.finditer(text)
        )
    found.extend(
        PiiMatch("pii_other", "车牌号", m.span(), re.sub(r"[\s·・•.\-]", "", m.group()))
        for m in _PLATE_RE.finditer(text)
    )
    return found


_PRIORITY = {"pii_id_number": 4, "pii_bank_card": 3, "pii_phone": 2, "pii_address": 1, "pii_other": 0}


def find_pii(text: str) -> list[PiiMatch]:
    """Every personal-data span in `text`, non-overlapping, in text order (longest/most specific wins)."""
    if not _ANY_CUE.search(text):
        return []
    candidates: list[PiiMatch] = []
    if _PREFILTER_NUMBER.search(text):
        candidates.extend(_numbers(text.translate(_ASCII_DIGITS)))
    if _CN_MOBILE_RE.search(text):
        candidates.extend(_spelled_phones(text))
    if _ADDRESS_CUE.search(text):
        candidates.extend(_addresses(text))
    candidates.extend(_others(text))
    if len(candidates) < 2:
        return candidates
    candidates.sort(key=lambda p: (-(p.span[1] - p.span[0]), -_PRIORITY[p.category], p.span[0]))
    kept: list[PiiMatch] = []
    for cand in candidates:
        if all(cand.span[1] <= k.span[0] or k.span[1] <= cand.span[0] for k in kept):
            kept.append(cand)
    return sorted(kept, key=lambda p: p.span)


@dataclass(frozen=True)
class MaskedText:
    """Text with personal data replaced by placeholders such as `[手机号1]`; `restore` reverses it."""

    text: str
    placeholders: dict[str, str] = field(default_factory=dict)

    def restore(self, text: str) -> str:
        """Put the original values back into `text` (typically a model's draft that kept the placeholders)."""
        if not self.placeholders:
            return text
        pattern = re.compile("|".join(re.escape(p) for p in sorted(self.placeholders, key=len, reverse=True)))
        return pattern.sub(lambda m: self.placeholders[m.group()], text)


def mask_pii(text: str) -> MaskedText:
    """Replace each piece of personal data with a stable placeholder; the same value gets the same one."""
    matches = find_pii(text)
    if not matches:
        return MaskedText(text, {})
    by_value: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    placeholders: dict[str, str] = {}
    pieces: list[str] = []
    pos = 0
    for m in matches:
        key = (m.label, m.value)
        placeholder = by_value.get(key)
        if placeholder is None:
            counters[m.label] = counters.get(m.label, 0) + 1
            placeholder = f"[{m.label}{counters[m.label]}]"
            by_value[key] = placeholder
            placeholders[placeholder] = text[m.span[0] : m.span[1]]
        pieces.append(text[pos : m.span[0]])
        pieces.append(placeholder)
        pos = m.span[1]
    pieces.append(text[pos:])
    return MaskedText("".join(pieces), placeholders)
