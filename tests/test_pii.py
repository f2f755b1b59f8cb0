"""Personal data is found only when it validates, masked with stable placeholders and restored exactly."""

from __future__ import annotations

import pytest
from stdnum import luhn

from copilot.compliance import ComplianceChecker, find_pii, mask_pii

VALID_ID = "11010519491231002X"  # checksum, birth date and region all valid
INVALID_ID = "110105194912310021"  # same number, wrong check digit
CARD = "622202123456789012" + luhn.calc_check_digit("622202123456789012")


def _found(text: str) -> list[tuple[str, str]]:
    return [(m.category, text[m.span[0] : m.span[1]]) for m in find_pii(text)]


def test_valid_resident_id_is_found_and_an_invalid_checksum_is_not() -> None:
    assert _found(f"身份证{VALID_ID}，麻烦登记") == [("pii_id_number", VALID_ID)]
    assert _found(f"订单号{INVALID_ID}") == []


def test_resident_id_with_spaces_and_lower_case_x() -> None:
    text = "证件号 110105 19491231 002x"
    assert _found(text) == [("pii_id_number", "110105 19491231 002x")]


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "138 1234 5678",
        "138-1234-5678",
        "+86 138 1234 5678",
        "8613812345678",
        "010-62751234",
        "0755 8888 9999",
        "(0571)87654321",
        "１３９１２３４５６７８",
        "一三八一二三四五六七八",
    ],
)
def test_phone_numbers_in_common_forms(phone: str) -> None:
    assert _found(f"联系我：{phone}，谢谢") == [("pii_phone", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "订单号2023112212345678，麻烦查一下",
        "快递单号SF1234567890123",
        "价格1380元，满2000减200",
        "2023-11-22 18:30下的单",
        "会员号88001234",
        "客服热线400-820-8820",
        "宝宝体重7.5公斤，身高68厘米",
    ],
)
def test_numbers_that_are_not_personal_data_stay_clean(text: str) -> None:
    assert _found(text) == []


def test_bank_card_by_luhn_or_by_issuer_prefix_or_card_word() -> None:
    assert _found(f"卡号{CARD}") == [("pii_bank_card", CARD)]
    spaced = " ".join(CARD[i : i + 4] for i in range(0, len(CARD), 4))
    assert _found(f"卡号 {spaced}") == [("pii_bank_card", spaced)]
    wrong_check = CARD[:-1] + str((int(CARD[-1]) + 1) % 10)
    # A typo in the check digit is still a card number when a card word or a known issuer prefix says so.
    assert _found(f"卡号{wrong_check}") == [("pii_bank_card", wrong_check)]
    assert _found(f"退到{wrong_check}") == [("pii_bank_card", wrong_check)]
    no_issuer = "73" + wrong_check[2:]
    assert _found(f"运单{no_issuer}") == []
    date_like = "231122000000000" + luhn.calc_check_digit("231122000000000")
    assert _found(f"流水号{date_like}") == []


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("我的地址是浙江省杭州市西湖区文三路123号5幢302室", "浙江省杭州市西湖区文三路123号5幢302室"),
        ("寄到幸福小区3栋2单元501，放门卫", "幸福小区3栋2单元501"),
        ("送到成都市武侯区人民南路四段27号", "成都市武侯区人民南路四段27号"),
        ("我在3号楼2单元502", "3号楼2单元502"),
    ],
)
def test_addresses_with_street_numbers_or_rooms(text: str, address: str) -> None:
    assert _found(text) == [("pii_address", address)]


def test_store_location_without_number_is_not_an_address() -> None:
    assert _found("门店在万达广场一楼，周末有活动") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("发票发到wangfang88@163.com", "wangfang88@163.com"),
        ("护照号E12345678", "E12345678"),
        ("港澳通行证号C12345678", "C12345678"),
        ("车牌浙A12345，停地库", "浙A12345"),
    ],
)
def test_other_personal_data(text: str, value: str) -> None:
    assert _found(text) == [("pii_other", value)]


def test_masking_round_trip_uses_stable_placeholders() -> None:
    text = f"电话13812345678，再说一遍13812345678，备用13912345678，身份证{VALID_ID}"
    masked = mask_pii(text)
    assert masked.text == "电话[手机号1]，再说一遍[手机号1]，备用[手机号2]，身份证[身份证1]"
    assert "13812345678" not in masked.text and VALID_ID not in masked.text
    assert masked.restore(masked.text) == text
    draft = "好的，样品寄给[手机号1]，备用[手机号2]，实名用[身份证1]"
    assert masked.restore(draft) == f"好的，样品寄给13812345678，备用13912345678，实名用{VALID_ID}"


def test_same_number_written_differently_gets_the_same_placeholder() -> None:
    masked = mask_pii("13812345678 也就是 138-1234-5678")
    assert masked.text == "[手机号1] 也就是 [手机号1]"


def test_masking_text_without_personal_data_is_identity() -> None:
    masked = mask_pii("宝宝最近睡得好吗")
    assert masked.text == "宝宝最近睡得好吗"
    assert masked.placeholders == {}
    assert masked.restore("随便什么") == "随便什么"


def test_checker_flags_pii_with_original_spans_but_never_echoes_it() -> None:
    text = f"我的手机13812345678，卡号{CARD}"
    result = ComplianceChecker().check(text)
    by_category = {f.category: f for f in result.flags}
    assert set(by_category) == {"pii_phone", "pii_bank_card"}
    phone = by_category["pii_phone"]
    assert text[phone.span[0] : phone.span[1]] == "13812345678"
    assert phone.matched == "[手机号]"
    assert all("13812345678" not in f.message and CARD not in f.matched for f in result.flags)
    assert result.risk == "review"


def test_checker_can_echo_pii_when_masking_is_off() -> None:
    result = ComplianceChecker(mask_pii=False).check("电话13812345678")
    assert [f.matched for f in result.flags] == ["13812345678"]
    assert result.risk == "low"
