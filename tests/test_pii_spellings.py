"""The usual spellings of each personal-data form in the labelling guide (e-mail, passport and travel permits,
WeChat ids and QQ numbers, licence plates, landlines, addresses down to the room or the village group), each with
look-alikes that must stay unflagged."""

from __future__ import annotations

import pytest

from copilot.compliance import find_pii, mask_pii


@pytest.mark.parametrize(
    ("text", "category", "found"),
    [
        # e-mail, typed and spelled out
        ("我的邮箱是ZhangSan@163.COM", "pii_other", "ZhangSan@163.COM"),
        ("邮箱：li.ming＠qq.com", "pii_other", "li.ming＠qq.com"),
        ("邮箱 zhang_wei(at)163(dot)com", "pii_other", "zhang_wei(at)163(dot)com"),
        ("发到 wang123 [at] gmail [dot] com 谢谢", "pii_other", "wang123 [at] gmail [dot] com"),
        ("邮箱是 xiaoyu 艾特 163 点 com", "pii_other", "xiaoyu 艾特 163 点 com"),
        ("我邮箱 lily_88@163。com", "pii_other", "lily_88@163。com"),
        # passports and travel permits, after their name wherever the number stands
        ("护照号码：E 1234 5678", "pii_other", "E 1234 5678"),
        ("孩子护照上的号码是E87654321", "pii_other", "E87654321"),
        ("護照號碼E12345678", "pii_other", "E12345678"),
        ("passport no. EJ1234567", "pii_other", "EJ1234567"),
        ("往来港澳通行证号码C 8765 4321", "pii_other", "C 8765 4321"),
        ("港澳证号C12345678", "pii_other", "C12345678"),
        ("回鄉證 M12345678", "pii_other", "M12345678"),
        ("回乡证号码H1234567801", "pii_other", "H1234567801"),
        ("台胞證號碼 1234567801", "pii_other", "1234567801"),
        ("台湾通行证L12345678", "pii_other", "L12345678"),
        ("护照和港澳通行证分别是E12345678和C87654321", "pii_other", "C87654321"),
        # WeChat ids and QQ numbers handed over
        ("ＶＸ：ｍａｍａ２０２４", "pii_other", "ｍａｍａ２０２４"),
        ("加v：baby_shop88", "pii_other", "baby_shop88"),
        ("➕V abcd1234 私聊", "pii_other", "abcd1234"),
        ("我的v信号码是tian_mi88", "pii_other", "tian_mi88"),
        ("威xin: yuer_mom", "pii_other", "yuer_mom"),
        ("q号 987654321 私聊", "pii_other", "987654321"),
        ("Q號：2938471652", "pii_other", "2938471652"),
        ("进Q群 726354819 领资料", "pii_other", "726354819"),
        # licence plates
        ("车牌号：沪a12345", "pii_other", "沪a12345"),
        ("粤B1234学 那辆教练车", "pii_other", "粤B1234学"),
        # landlines with or without the area code, with an extension, international
        ("打(010)62781543转分机8012", "pii_phone", "(010)62781543"),
        ("固话：021-6458-7732 转 203", "pii_phone", "021-6458-7732"),
        ("办公室电话 64587732（上海）", "pii_phone", "64587732"),
        ("总机 0571-87654321-8001", "pii_phone", "0571-87654321"),
        ("+86 21 6458 7732", "pii_phone", "+86 21 6458 7732"),
        ("电话：０２１－６４５８７７３２", "pii_phone", "０２１－６４５８７７３２"),
        # addresses: street and number, lanes, estates, blocks, floors and rooms, villages
        ("上海市黄浦区长乐路123弄4号502室", "pii_address", "上海市黄浦区长乐路123弄4号502室"),
        ("寄到阳光小区5栋302", "pii_address", "阳光小区5栋302"),
        ("万达广场3楼301室", "pii_address", "万达广场3楼301室"),
        ("腾讯大厦A座1203室", "pii_address", "腾讯大厦A座1203室"),
        ("寄到B栋1单元502", "pii_address", "B栋1单元502"),
        ("金地花园二期3栋1702", "pii_address", "金地花园二期3栋1702"),
        ("我家在望京西园三区 312 号楼 2 单元 501", "pii_address", "望京西园三区 312 号楼 2 单元 501"),
        ("寄回 廣州市天河區體育西路103號維多利廣場A塔2208", "pii_address", "廣州市天河區體育西路103號"),
        ("体验店在成都市锦江区春熙路南段8号", "pii_address", "体验店在成都市锦江区春熙路南段8号"),
        ("地址 金色港湾7-2-301", "pii_address", "金色港湾7-2-301"),
        ("河南省周口市太康县城关镇李庄村3组", "pii_address", "李庄村3组"),
        ("寄到新桥村五组12号", "pii_address", "新桥村五组12号"),
        ("地址：张家村18号", "pii_address", "张家村18号"),
    ],
)
def test_each_spelling_is_found_and_masked(text: str, category: str, found: str) -> None:
    matches = [(m.category, text[m.span[0] : m.span[1]]) for m in find_pii(text)]
    assert any(c == category and found in span for c, span in matches), matches
    masked = mask_pii(text)
    assert found not in masked.text and masked.restore(masked.text) == text


@pytest.mark.parametrize(
    "text",
    [
        "万达广场一楼有个儿童乐园",  # a mall floor, no room
        "3栋楼都卖完了",
        "共5栋，每栋32层",
        "2栋2000套房源",
        "草桥欣园四区一号楼首层",  # a floor, no room
        "这个村子三组的人都买了",
        "第一组第3号选手",
        "取件码 5-2-3018",
        "活动时间12月5号到8号",
        "电话打不通，您晚点再试",
        "请在下午3点前电话联系",
        "电话 95588 是银行的客服",
        "护照要带上，别忘了",
        "这款 E12345 型号的说明书",
        "加微信好友的事以后再说",
        "微信支付和支付宝都可以",
        "云Server 和 新Huawei 都有货",  # a province word before latin letters, no plate
        "B站up主推荐的",
        "邮箱发不了图片，换个方式吧",
        "温度控制在60-70度",
    ],
)
def test_lookalikes_of_these_spellings_stay_clean(text: str) -> None:
    assert find_pii(text) == []
