"""Every personal-data form the checker knows, each with texts that must and must not match, and the context
rules that keep ordinary chat words (最近, 第一次, 唯一一次, 最后一天, 专供 as a channel) unflagged."""

from __future__ import annotations

import pytest

from copilot.compliance import ComplianceChecker, find_pii, mask_pii


@pytest.mark.parametrize(
    ("text", "category", "found"),
    [
        ("我的邮箱是 wang.lili@163.com，发票发这里", "pii_other", "wang.lili@163.com"),
        ("邮箱 yang_tao#163.com（#换成@）", "pii_other", "yang_tao#163.com"),
        ("发到 li.na艾特qq.com 就行", "pii_other", "li.na艾特qq.com"),
        ("发到 xiaomei1993 at qq dot com 就行", "pii_other", "xiaomei1993 at qq dot com"),
        ("台胞证号码 01928374，帮我登记", "pii_other", "01928374"),
        ("身份证号 420106198611133360 帮我登记", "pii_id_number", "420106198611133360"),  # bad check digit
        ("证件号 320102850715123，老身份证", "pii_id_number", "320102850715123"),  # 15-digit old ID
        ("身 份 证：110101199003071234", "pii_id_number", "110101199003071234"),
        ("sfz 510104199207223456", "pii_id_number", "510104199207223456"),
        ("护照号E12345678，帮我订票", "pii_other", "E12345678"),
        ("港澳通行证 C12345678", "pii_other", "C12345678"),
        ("回乡证H12345678", "pii_other", "H12345678"),
        ("有事打我座机 021-64587732", "pii_phone", "021-64587732"),
        ("公司电话 0755 86932214", "pii_phone", "0755 86932214"),
        ("(010)62781543 这是我们家的电话", "pii_phone", "(010)62781543"),
        ("卡号 6222 0212 3456 7890 124，退款打这里", "pii_bank_card", "6222 0212 3456 7890 124"),  # Luhn fails
        ("银行卡6217000010012345670", "pii_bank_card", "6217000010012345670"),
        ("信用卡 4367 4200 1234 5678", "pii_bank_card", "4367 4200 1234 5678"),
        ("加我微信 mama_2024baby，那边发你券", "pii_other", "mama_2024baby"),
        ("我QQ是 3478291056", "pii_other", "3478291056"),
        ("微信就是我手机号 13912345678", "pii_phone", "13912345678"),
        # WeChat and QQ spelled to dodge filters: emoji between the cue and the id, a lone 薇/威/v before a colon
        ("V❤：tianmi_baby88，通过了发你", "pii_other", "tianmi_baby88"),
        ("威📲：nuanya_mama 备注团购", "pii_other", "nuanya_mama"),
        ("加我薇 xx_beauty_01 私聊", "pii_other", "xx_beauty_01"),
        ("微 信 号：mama_club_66", "pii_other", "mama_club_66"),
        ("Q：456789012 拉你进群", "pii_other", "456789012"),
        ("加扣 567890123", "pii_other", "567890123"),
        ("台湾通行证 87654321 办好了", "pii_other", "87654321"),
    ],
)
def test_each_pii_form_is_found(text: str, category: str, found: str) -> None:
    matches = [(m.category, text[m.span[0] : m.span[1]]) for m in find_pii(text)]
    assert (category, found) in matches
    masked = mask_pii(text)
    assert found not in masked.text and masked.restore(masked.text) == text


@pytest.mark.parametrize(
    "text",
    [
        "订单号 202611190000874213，麻烦帮我查下物流",  # 18 digits, no ID context
        "编号 110101199003071235 的货已入库",  # ID-shaped, failing checksum, no ID context
        "您尾号8812的卡已经退款成功",
        "手机号138****5678的那位是您吗",
        "我们的客服热线是400-820-8820",
        "快递单号 SF1234567890123",
        "运单 7312345678901234 已签收",  # 16 digits, no card word, no issuer prefix
        "微信号是多少呀？",
        "QQ音乐会员也送",
        "护照要提前办，大概一周",
        "台胞证要带原件，复印件不行",
        "这款是 at home 系列，早上八点发货",
        "这个 #话题# 很火",
        "权威：Nature 上的研究",  # 威 inside a word is no WeChat cue
        "薇诺娜：Winona 是个牌子",
        "V领毛衣：cotton 款",
        "Q：这款能用吗",
        "加扣子的款式 123456 号",
    ],
)
def test_lookalikes_are_not_pii(text: str) -> None:
    assert find_pii(text) == []


@pytest.fixture(scope="module")
def checker() -> ComplianceChecker:
    return ComplianceChecker(packs=("general", "mother_baby"))


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("这款是最便宜的，闭眼入", "ad_absolute"),
        ("我们家的辅食是最安全的", "ad_absolute"),
        ("这是全网首发的新款", "ad_absolute"),
        ("这款手串是大师开过光的，戴上招财", "ad_superstition"),
        ("恭喜您中奖了，点击领奖", "prize_lure"),
        ("国宴专用的白酒，送礼有面子", "ad_endorsement"),
        ("宝妈兼职日结，有兴趣私我", "spam_ad"),
        ("把手机收到的验证码发我一下", "fraud"),
    ],
)
def test_lexicon_terms_are_flagged_with_their_category(checker: ComplianceChecker, text: str, category: str) -> None:
    flags = [f for f in checker.check(text).flags if f.category == category]
    assert flags and flags[0].rule_id.startswith(("lex.", "abs.", "sens.", "semantic.", "superstition.", "endorse."))
    assert flags[0].message and "依据" in flags[0].message


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("最近宝宝睡得怎么样？", "ad_absolute"),  # 最近
        ("这是我第一次买这个牌子", "ad_absolute"),  # 第一次
        ("唯一一次补发是上个月那单", "ad_absolute"),  # 唯一一次
        ("活动最后一天了，您看需要的话今天下单", "ad_absolute"),  # 最后一天
        ("你们最便宜的是哪款？", "ad_absolute"),  # a customer's question
        ("Python是目前最流行的编程语言之一", "ad_absolute"),  # 之一
        ("唐朝是中国历史上最强盛的朝代之一", "ad_absolute"),  # 历史上最
        ("这款是电商专供款，和门店包装不一样", "ad_endorsement"),  # channel 专供
        ("我们没有开光这一说，就是普通饰品", "ad_superstition"),  # denied 开光
        ("古人认为玉能辟邪，这是一种民俗观念", "ad_superstition"),  # folklore, not a claim
        ("验证码千万别告诉任何人，我们官方不会问您要", "fraud"),  # a warning
        ("陌生人让您刷单都是诈骗，千万别信", "review_cashback"),  # a warning
        ("有人冒充我们招代理，请以官方公告为准", "spam_ad"),  # a warning
        ("没有中奖这回事，那条短信是假的", "prize_lure"),  # a denial
    ],
)
def test_context_rules_keep_ordinary_wording_clean(checker: ComplianceChecker, text: str, category: str) -> None:
    assert category not in checker.check(text).categories
