"""Personal data in chat text: find it, mask it before it leaves the building, put it back afterwards.

Customers paste phone numbers, addresses and ID numbers into WeCom; drafts must not leak them to a model
and logs must never hold them. Detection favours validated numbers over lookalikes, with context where validation cannot decide: a bare
resident ID must pass `stdnum.cn.ric` (checksum, birth date, region), but 18 or 15 digits after 身份证/证件号
count whatever their check digit; a phone must be a valid Chinese mobile or landline to `phonenumbers`; a
card number needs Luhn with an issuer prefix, or a card word (卡号, 银行卡…) or an issuer prefix (62, 4, 51–55)
with a failing check digit; e-mail addresses (also spelled with # or 艾特), passport and HK/Macau permit
numbers after their name, and WeChat ids and QQ numbers after 微信/QQ are `pii_other`. Order numbers,
prices, masked numbers and card tails stay unflagged.

Detection runs on the original text; full-width digits are first turned into ASCII one for one, so spans
index the original without any map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers
from stdnum import luhn
from stdnum.cn import ric

from copilot.wordsearch import WordSearch

__all__ = ["MaskedText", "PiiMatch", "find_pii", "mask_pii"]

_ASCII_DIGITS = str.maketrans("０１２３４５６７８９ｘＸ", "0123456789XX")
# Full-width ASCII (ＶＸ：ｍａｍａ２０２４, ＠) and the ideographic space, one character for one, so spans still
# index the original text.
# Traditional characters of addresses (體育西路103號維多利廣場) are read as their simplified forms, also one for one.
_TRADITIONAL = ("號樓層區廣場棟單園廈門陽東圍鎮縣", "号楼层区广场栋单园厦门阳东围镇县")
_HALF_WIDTH = str.maketrans(
    {chr(0xFF01 + i): chr(0x21 + i) for i in range(94)} | {"\u3000": " "}
    | dict(zip(*_TRADITIONAL, strict=True))
)
# Translating costs more than looking: most texts hold no such character and are left as they are.
_NEEDS_FOLDING = re.compile(f"[\uff01-\uff5e\u3000{_TRADITIONAL[0]}]")
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
# +86 21 6458 7732: the international form drops the trunk 0 of the area code.
_INTL_LANDLINE_RE = re.compile(
    rf"(?<![\dA-Za-z+])(?:\+|00)86{_SEP}(?:\(0\))?[1-9]\d{{1,2}}{_SEP}[2-9](?:{_SEP}\d){{6,7}}(?![\dA-Za-z])"
)
# A local landline without its area code (办公室电话 64587732) is a phone only after a phone word.
_LOCAL_LANDLINE_RE = re.compile(
    r"(?:电话|電話|座机|座機|固话|固話|总机|總機|传真|傳真|tel)(?:号码|号|號碼|號)?[^\d\n]{0,6}?"
    r"(?<![\d\-])([2-8]\d{2,3}[\s\-]?\d{4})(?![\d\-])",
    re.IGNORECASE,
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
_BUILDING = rf"[{_NUM}A-Za-z]+ ?(?:号楼|栋|幢|座|期|区|塔) ?"
_PLACE = r"(?:小区|花园|公寓|大厦|大楼|家园|苑|府|广场|新村|社区|村|公馆|华庭|中心|湾|邸|郡|居|庭|城|园|里|塔)"
# A room number not followed by a unit of quantity or a building word (2栋2000套 is stock, 一号楼首层 no room).
_ROOM = rf"[{_NUM}]+(?:室|户|房|号(?![楼院]))?(?![{_NUM}套平万元米个件层楼栋幢座单号])"
_ADDRESS_RE = re.compile(
    # street + number: 文三路123号5幢302室, 长乐路123弄4号502室, 人民南路四段27号
    rf"(?:[{_CJK}]{{2,8}}?(?:省|自治区|市|自治州|区|县|旗|镇|乡|街道))*"
    rf"[{_CJK}A-Za-z0-9]{{1,12}}?(?:路|街|大道|巷|弄|胡同)(?:[{_NUM}东西南北中]+段)?(?:[{_NUM}]+[弄巷])? ?[{_NUM}\-]+ ?号(?:院)?"
    rf"(?:[{_NUM}A-Za-z\-]+(?:号楼|栋|幢|座|单元|楼|层|室|号|户|房))*"
    # estate or building + block/unit/room or floor/room: 阳光小区5栋302, 金地花园二期3栋1702, 万达广场3楼301室
    rf"|(?:[{_CJK}]{{2,8}}?(?:省|自治区|市|区|县|镇|乡))*[{_CJK}A-Za-z]{{2,12}}?{_PLACE} ?"
    rf"(?:(?:{_BUILDING}[\-]?)+(?:[{_NUM}]+ ?单元 ?[\-]?)?(?:[{_NUM}]+[楼层][\-]?)?{_ROOM}"
    rf"|[{_NUM}]+[楼层][\-]?[{_NUM}]+(?:室|房|号)"
    rf"|\d{{1,3}}-\d{{1,2}}-\d{{3,4}}(?!\d))"
    # villages: 李庄村3组, 新桥村五组12号, 张家村18号
    rf"|[{_CJK}]{{1,3}}村[{_NUM}]+(?:组|社|队)(?:[{_NUM}]+号)?|[{_CJK}]{{1,3}}村[{_NUM}]+号"
    # block + unit + room, or block + room with its 室: B栋1单元502, 3号楼502室
    rf"|(?<![{_NUM}A-Za-z])[{_NUM}A-Za-z]+ ?(?:号楼|栋|幢|座) ?[\-]?[{_NUM}]+ ?单元 ?[\-]?{_ROOM}"
    rf"|(?<![{_NUM}A-Za-z])[{_NUM}A-Za-z]{{1,4}}(?:号楼|栋|幢|座)[\-]?(?:[{_NUM}]+[楼层])?[{_NUM}]{{3,4}}[室房]"
)
_ADDRESS_CUE = re.compile(r"[号室栋幢座]|单元|\d房|村[0-9一二三四五六七八九十]|\d-\d{1,2}-\d")
_ADDRESS_LEAD = re.compile(
    r"^(?:我的|我家|收货|收件|家庭|详细|快递|请|麻烦|帮我)*(?:地址|住址)?(?:是|为|在|寄到|发到|送到|住在)?"
)
# Each pattern may start only where a run of address characters starts, so a long run without the
# separator costs one pass, not one pass per position.
_EMAIL_RE = re.compile(r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# E-mail spelled to dodge filters: yang_tao#163.com（#换成@）, li(at)qq.com, wang艾特163.com, mei at qq dot com
_DOT = r"(?:\.|。|\s*(?:\(dot\)|\[dot\]|（dot）|dot|点|點)\s*)"
_EMAIL_SPELLED_RE = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+\s*(?:@|#|\(at\)|\[at\]|（at）|\{at\}| at |艾特|圈a)\s*[A-Za-z0-9\-]+"
    rf"(?:{_DOT}[A-Za-z0-9\-]+)*{_DOT}(?:com|cn|net|org|edu)(?:{_DOT}cn)?(?![A-Za-z])",
    re.IGNORECASE,
)
# Passport (E…, EJ…, G…), Hong Kong/Macau permit (C…, CA…), home-return permit (H…/M…), after a cue word.
_DOCUMENT_CUE = r"护照|護照|通行证|通行證|港澳证|港澳證|回乡证|回鄉證|签证|簽證|旅行证|旅行證|证件|證件|passport"
# A text that names a document: every number shaped like one (one or two letters, 7–10 digits, spaced as people
# type them: E 1234 5678) is that document's number (孩子护照上的号码是E87654321, 护照和通行证分别是E…和C…).
_DOCUMENT_RE = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2}[\s\-]?\d(?:[\s\-]?\d){6,9})(?![\dA-Za-z])")
# Taiwan compatriot permit (台胞证): eight digits (ten with the renewal count), only after its cue word.
_TAIWAN_PERMIT_RE = re.compile(
    r"(?:台胞证|台胞證|台湾居民来往大陆通行证|台湾通行证|台灣通行證)(?:号码|号|號碼|號|编号)?[^\dA-Za-z\n]{0,6}?(\d{8}(?:\d{2})?)(?!\d)"
)
# An ID number introduced as one is personal data even when its check digit is wrong (typos, 15-digit old IDs).
_ID_CONTEXT_RE = re.compile(
    r"(?:身\s*份\s*[证證]|证\s*件\s*号|sfz)(?:号码|号|號碼|號)?[^\d\n]{0,8}?"
    r"(\d{6}[\s\-－]{0,2}\d{4}[\s\-－]{0,2}\d{4}[\s\-－]{0,2}\d{3}[\dXx]|\d{15})(?![\dA-Za-z])",
    re.IGNORECASE,
)
_CARD_CONTEXT = re.compile(r"卡号|卡號|银行卡|銀行卡|储蓄卡|信用卡|借记卡")
# WeChat ids and QQ numbers handed over to move the chat elsewhere.
# A lone v/薇/威 is the cue only when a colon follows it (emoji may sit between: V❤：, 威📲：) or 加 comes before it
# (加我薇 …), so 权威：Nature stays a word; the id may sit behind emoji and colons too.
_WECHAT_CUE = (
    r"[微薇威]\s?信|徽信|维信|v信|vx|wx|wechat|weixin|[微威薇]xin|wei信|绿泡泡"
    r"|(?:加|\+|➕)(?:我|个)?[v薇威](?![A-Za-z])|(?<![\w])[v薇威](?=[^\w\s]{0,3} ?[:：])"
)
_WECHAT_RE = re.compile(
    rf"(?:{_WECHAT_CUE})(?:\s?(?:号码|号|號|id))?(?:是|[^\w\n，。,;；.!?！？、]){{0,6}}([A-Za-z][-_A-Za-z0-9]{{5,19}})"
    r"(?![-_A-Za-z0-9])",
    re.IGNORECASE,
)
_QQ_RE = re.compile(
    r"(?:qq|扣扣|企鹅|球球|加扣|(?<![A-Za-z])q(?=号|號|群|[^\w\s]{0,3} ?[:：]))(?:号码|号|號|群号|群)?"
    r"(?:是|[^\w\n，。,;；.!?！？、]){0,6}([1-9]\d{4,11})(?!\d)",
    re.IGNORECASE,
)
# Ordinary plates (沪A12345, 沪a·8K3T2), new-energy ones (粤B·D12345) and coach or police plates (粤B1234学);
# typed in lower case too, so the tail must hold digits (云Server is no plate).
_PLATE_RE = re.compile(
    r"(?<![A-Za-z])[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]"
    r"[A-Za-z][\s·・•.\-]?(?:[A-HJ-NP-Za-hj-np-z0-9]{5}|[DFdf][A-HJ-NP-Za-hj-np-z0-9]{5}|[A-HJ-NP-Za-hj-np-z0-9]{5}[DFdf]"
    r"|[A-HJ-NP-Za-hj-np-z0-9]{4}[学警挂港澳领试超])(?![A-Za-z0-9])"
)


# One search that most texts fail, so ordinary chat pays for a single regex scan.
_ANY_CUE = re.compile(
    rf"{_PREFILTER_NUMBER.pattern}|{_CN_MOBILE_RE.pattern}|{_ADDRESS_CUE.pattern}|@|#(?=[A-Za-z0-9])"
    r"|[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Za-z]"
)
_PLATE_CUE = re.compile(r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Za-z]")
# The word cues, matched in the lower-cased text by one automaton pass (an alternation of them under IGNORECASE
# costs several times more); each names the detectors it wakes.
_WORD_CUES: WordSearch[str] = WordSearch(
    (_cue, _kind)
    for _kind, _cues in (
    ("document", (*_DOCUMENT_CUE.split("|"), "台胞")),
    ("mail", ("(at)", "[at]", "（at）", "{at}", " at ", "艾特", "圈a")),
    ("wechat", ("微信", "薇信", "威信", "微 信", "薇 信", "威 信", "徽信", "维信", "v信", "vx", "wx", "wechat", "weixin",
                "xin", "wei信", "绿泡泡", "v", "薇", "威")),
    ("qq", ("qq", "扣扣", "企鹅", "球球", "加扣", "q")),
    )
    for _cue in _cues
)


def _word_cues(text: str) -> set[str]:
    """The kinds of word cue in `text` (document, mail, wechat, qq)."""
    return {kind for _start, _stop, kind in _WORD_CUES.find(text.lower())}


def _has_cue(text: str) -> bool:
    return _ANY_CUE.search(text) is not None or bool(_word_cues(text))


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
    for regex, label in ((_MOBILE_RE, "手机号"), (_LANDLINE_RE, "电话"), (_INTL_LANDLINE_RE, "电话")):
        for m in regex.finditer(text):
            raw = m.group().translate(_ASCII_DIGITS)
            try:
                number = phonenumbers.parse(raw, "CN")
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                found.append(PiiMatch("pii_phone", label, m.span(), str(number.national_number)))
    for m in _LOCAL_LANDLINE_RE.finditer(text):
        found.append(PiiMatch("pii_phone", "电话", m.span(1), _digits(m.group(1))))
    for m in _ID_CONTEXT_RE.finditer(text):
        found.append(PiiMatch("pii_id_number", "身份证", m.span(1), _digits(m.group(1))))
    card_context = _CARD_CONTEXT.search(text) is not None
    for m in _CARD_RE.finditer(text):
        value = _digits(m.group())
        if not 16 <= len(value) <= 19:
            continue
        # A real issuer prefix or a card word makes it a card even with a wrong check digit (typos);
        # an 18-digit number shaped like an ID (birth date inside) is left to the ID detectors.
        if (luhn.is_valid(value) and value.startswith(_CARD_PREFIXES)) or ((card_context or value.startswith(_ISSUER_PREFIXES)) and not _id_shaped(value)):
            found.append(PiiMatch("pii_bank_card", "银行卡", m.span(), value))
    return found


_ISSUER_PREFIXES = ("62", "4", "51", "52", "53", "54", "55")


def _id_shaped(value: str) -> bool:
    """An 18-digit string whose positions 7–14 read as a birth date between 1900 and 2099."""
    if len(value) != 18:
        return False
    year, month, day = int(value[6:10]), int(value[10:12]), int(value[12:14])
    return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31


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


def _others(text: str, kinds: set[str]) -> list[PiiMatch]:
    found: list[PiiMatch] = []
    if "@" in text:
        found.extend(
            PiiMatch("pii_other", "邮箱", m.span(), m.group().lower()) for m in _EMAIL_RE.finditer(text)
        )
    if "@" in text or "#" in text or "mail" in kinds:
        found.extend(
            PiiMatch("pii_other", "邮箱", m.span(), m.group().lower()) for m in _EMAIL_SPELLED_RE.finditer(text)
        )
    if "document" in kinds:
        found.extend(
            PiiMatch("pii_other", "证件号", m.span(1), re.sub(r"[\s\-]", "", m.group(1)).upper())
            for m in _DOCUMENT_RE.finditer(text)
        )
        found.extend(PiiMatch("pii_other", "证件号", m.span(1), m.group(1)) for m in _TAIWAN_PERMIT_RE.finditer(text))
    if "wechat" in kinds:
        found.extend(PiiMatch("pii_other", "微信号", m.span(1), m.group(1)) for m in _WECHAT_RE.finditer(text))
    for m in _QQ_RE.finditer(text) if "qq" in kinds else ():
        number = m.group(1)
        if len(number) == 11 and number.startswith("1"):
            continue  # a mobile number given as the QQ/WeChat account is a phone, found as one
        found.append(PiiMatch("pii_other", "QQ号", m.span(1), number))
    for m in _PLATE_RE.finditer(text) if _PLATE_CUE.search(text) else ():
        plate = re.sub(r"[\s·・•.\-]", "", m.group()).upper()
        if sum(c.isdigit() for c in plate) >= 2:
            found.append(PiiMatch("pii_other", "车牌号", m.span(), plate))
    return found


_PRIORITY = {"pii_id_number": 4, "pii_bank_card": 3, "pii_phone": 2, "pii_address": 1, "pii_other": 0}


def find_pii(text: str) -> list[PiiMatch]:
    """Every personal-data span in `text`, non-overlapping, in text order (longest/most specific wins)."""
    if _NEEDS_FOLDING.search(text):
        text = text.translate(_HALF_WIDTH)
    kinds = _word_cues(text)
    if not kinds and _ANY_CUE.search(text) is None:
        return []
    candidates: list[PiiMatch] = []
    if _PREFILTER_NUMBER.search(text):
        candidates.extend(_numbers(text.translate(_ASCII_DIGITS)))
    if _CN_MOBILE_RE.search(text):
        candidates.extend(_spelled_phones(text))
    if _ADDRESS_CUE.search(text):
        candidates.extend(_addresses(text))
    candidates.extend(_others(text, kinds))
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
