"""The compliance checker flags every category on realistic text, keeps ordinary speech clean, and loads
its rules as validated, reloadable data."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from copilot.compliance import (
    CATEGORIES,
    ComplianceChecker,
    ComplianceResult,
    Flag,
    Severity,
    available_packs,
)
from copilot.compliance.checker import _resolve_overlaps
from copilot.compliance.prefilter import required_literals, top_level_branches
from copilot.compliance.result import overall_risk
from copilot.errors import ConfigurationError, LibraryError

ALL_PACKS = ("general", "mother_baby", "finance", "education", "beauty")
DATASET = Path(__file__).resolve().parent.parent / "eval" / "datasets" / "compliance_dev.jsonl"


@pytest.fixture(scope="module")
def checker() -> ComplianceChecker:
    return ComplianceChecker(packs=ALL_PACKS)


def _flag(result: ComplianceResult, category: str) -> Flag:
    found = [f for f in result.flags if f.category == category]
    assert found, f"no {category} flag in {result.flags}"
    return found[0]


@pytest.mark.parametrize(
    ("text", "category", "matched"),
    [
        ("亲，这款是全网销量第一的纸尿裤", "ad_absolute", "全网销量第一"),
        ("我们的益生菌用的是国家级实验室的菌株", "ad_absolute", "国家级"),
        ("这几款里面效果最好😊。", "ad_absolute", "最好"),
        ("这是最好的奶粉", "ad_absolute", "最好"),
        ("这款护臀膏可以根治红屁屁", "ad_medical", "根治"),
        ("我们的羊奶粉能增强免疫力", "ad_medical", "增强免疫力"),
        ("这款理财产品保本保息，年化6%", "ad_finance", "保本保息"),
        ("教资考试包过，报名从速", "ad_education", "包过"),
        ("无效退款，您放心试", "false_promise", "无效退款"),
        ("收到货给个五星好评，截图发我返现5元", "review_cashback", "五星好评，截图发我返现"),
        ("亲，加我微信聊吧，这边不方便", "off_platform", "加我微信"),
        ("您直接转我支付宝就行", "off_platform", "转我支付宝"),
        ("身份证11010519491231002X，麻烦登记", "pii_id_number", "11010519491231002X"),
        ("有问题打我电话 186-1234-5678", "pii_phone", "186-1234-5678"),
        ("退到这张卡6222025432319487575", "pii_bank_card", "6222025432319487575"),
        ("寄到幸福小区3栋2单元501", "pii_address", "幸福小区3栋2单元501"),
        ("发票发到wangfang88@163.com", "pii_other", "wangfang88@163.com"),
        ("别跟我扯台独那些", "sensitive_political", "台独"),
        ("美女，约炮吗", "sensitive_porn", "约炮"),
        ("百家乐技巧，跟我下注", "sensitive_gambling", "百家乐"),
        ("出售枪支弹药", "sensitive_violence", "出售枪支"),
        ("买不起就别问了", "harassment", "买不起就别"),
        ("飞鹤的奶粉都是假货，别买", "competitor", "飞鹤的奶粉都是假货"),
    ],
)
def test_each_category_is_flagged_with_a_span_into_the_original(
    checker: ComplianceChecker, text: str, category: str, matched: str
) -> None:
    result = checker.check(text)
    flag = _flag(result, category)
    start, end = flag.span
    assert text[start:end] == matched
    if not category.startswith("pii_"):
        assert flag.matched == matched
    assert flag.message and flag.rule_id
    assert result.requires_approval or flag.severity is Severity.warn


@pytest.mark.parametrize(
    ("text", "category", "matched"),
    [
        ("这款是最　好的奶粉", "ad_absolute", "最　好"),
        ("最😊好的奶粉就是这款", "ad_absolute", "最😊好"),
        ("有需要加我ＶＸ详聊", "off_platform", "加我ＶＸ"),
        ("可以加薇：mama520", "off_platform", "加薇"),
        ("壹佰％天然成分，宝宝放心吃", "ad_absolute", "壹佰％天然"),
        ("＋Ｖ：ab1234 详聊", "off_platform", "＋Ｖ"),
        ("我們平台零風險，穩賺", "ad_finance", "零風險"),
        ("好 评 返 现，先到先得", "review_cashback", "好 评 返 现"),
        ("你个傻 逼", "harassment", "傻 逼"),
    ],
)
def test_evasions_are_caught_and_spans_cover_the_evasive_spelling(
    checker: ComplianceChecker, text: str, category: str, matched: str
) -> None:
    flag = _flag(checker.check(text), category)
    assert matched in text[flag.span[0] : flag.span[1]]


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("到期连本带利一分不少给你", "ad_finance"),
        ("跌了我这边补给你，不会让你亏一分钱的", "ad_finance"),
        ("考研跟我们学，上岸是板上钉钉的事", "ad_education"),
        ("出题组的老师在我们这兼课", "ad_education"),
        ("换了这款洗护，湿疹一周就消下去了", "ad_medical"),
        ("每天冲一袋，个子能多窜两三公分", "ad_medical"),
        ("拆了用了都能退，放心买", "false_promise"),
        ("对身体一点副作用都没有", "false_promise"),
        ("好評截圖發客服，就能領取小禮品一份", "review_cashback"),
        ("那条差评能改一下吗，改完给您补20元", "review_cashback"),
        ("某宝上那些便宜的全是三无，会烂脸的", "competitor"),
        ("你是不是脑子有坑啊", "harassment"),
        ("等着我把你聊天记录挂网上", "harassment"),
        ("部队内部特供的护肤品", "ad_endorsement"),
        ("有人组织去市政府门口拉横幅讨说法", "sensitive_political"),
        ("今晚压哪队？我这有盘口", "sensitive_gambling"),
        ("看片进群，各种无码资源", "sensitive_porn"),
        ("放点那种药在酒里，人就迷糊了", "sensitive_violence"),
        ("帮人跑分，流水走你卡上抽点", "sensitive_violence"),
        ("我弟的身份证号是 610113 1998 0514 2674", "pii_id_number"),
        ("办卡信息：王丽 500103-2000-0407-6301", "pii_id_number"),
        ("车牌粤B·7K2Q9，帮我登记一下", "pii_other"),
    ],
)
def test_paraphrases_of_each_family_are_caught(checker: ComplianceChecker, text: str, category: str) -> None:
    assert category in checker.check(text).categories


@pytest.mark.parametrize(
    "text",
    [
        "宝宝最近睡得怎么样？",
        "这是我们第一次见面，以后多联系",
        "今天是活动最后一天",
        "最少买两罐才包邮",
        "我们会第一时间给您安排发货",
        "这款是100%纯棉的",
        "放心，我们绝对不会打扰您",
        "宝宝第一口辅食，建议从米粉开始",
        "她是我最好的朋友，也在你们家买",
        "您最好明天上午来取",
        "最好先用温水冲一下",
        "那最好了，我明天一早发",
        "以防万一，多备一罐",
        "这个价格已经是保本价了",
        "这个价都快不保本了",
        "湿疹建议去医院治疗，我们的面霜只是日常护理",
        "我们不是药品，不能说有治疗作用",
        "面包过期了就别给宝宝吃了",
        "请看一下注意事项",
        "那可是个大麻烦",
        "宝妈的反馈都很好",
        "您可以加我的企业微信",
        "我们不支持私下转账，请在小程序下单",
        "USB充电的暖奶器",
        "谢谢您的五星好评",
        "订单号2023112212345678，麻烦查一下",
        "满299减50，第二件半价",
        "销量第一次突破十万",
        "酒店的评分最好在4.5分以上",
        "最好评分高一点的",
        "双十一跳楼大甩卖，全场五折",
        "这个一个疗程是多少钱？",
        "退款会原路退到您付款的那张卡上",
        "6月4号我们有个会员日活动，记得来",
        "我们不能保证净值不会波动",
        "您先拍一单，我给您改价",
        "这款M码无码数了，L码还有",
        "道德绑架就没意思了哈",
        "开业那天门口拉横幅，热闹得很",
        "我们不保证录取，但会尽力辅导",
        "",
        "😊😊",
    ],
)
def test_ordinary_speech_is_not_flagged(checker: ComplianceChecker, text: str) -> None:
    result = checker.check(text)
    assert result.flags == ()
    assert result.risk == "none" and not result.requires_approval


def _flag_of(severity: Severity, category: str = "ad_absolute", span: tuple[int, int] = (0, 2)) -> Flag:
    return Flag(category=category, rule_id="r", severity=severity, span=span, message="m")


def test_overall_risk_is_the_most_severe_flag() -> None:
    assert overall_risk([]) == "none"
    assert overall_risk([_flag_of(Severity.warn)]) == "low"
    assert overall_risk([_flag_of(Severity.warn), _flag_of(Severity.review)]) == "review"
    assert overall_risk([_flag_of(Severity.review), _flag_of(Severity.block)]) == "block"


def test_overlaps_keep_the_most_severe_then_longest_per_category() -> None:
    kept = _resolve_overlaps(
        [
            _flag_of(Severity.review, span=(0, 2)),
            _flag_of(Severity.block, span=(1, 3)),
            _flag_of(Severity.review, span=(5, 9)),
            _flag_of(Severity.review, span=(5, 7)),
            _flag_of(Severity.review, category="competitor", span=(0, 2)),
        ]
    )
    assert [(f.category, f.span, f.severity) for f in kept] == [
        ("competitor", (0, 2), Severity.review),
        ("ad_absolute", (1, 3), Severity.block),
        ("ad_absolute", (5, 9), Severity.review),
    ]


def test_a_broad_list_hit_gives_way_to_a_longer_curated_or_semantic_hit_of_another_category() -> None:
    def flag(rule_id: str, category: str, span: tuple[int, int]) -> Flag:
        return Flag(category=category, rule_id=rule_id, severity=Severity.review, span=span, message="m")

    broad = flag("lex.houbb.politics", "sensitive_political", (2, 7))
    assert [f.rule_id for f in _resolve_overlaps([broad, flag("endorse.leader", "ad_endorsement", (2, 9))])] == [
        "endorse.leader"]
    assert [f.rule_id for f in _resolve_overlaps([broad, flag("semantic.spam_ad", "spam_ad", (0, 20))])] == [
        "semantic.spam_ad"]
    assert len(_resolve_overlaps([broad, flag("promise.outcome", "false_promise", (3, 5))])) == 2  # shorter: both stay


def test_result_reports_categories_and_rules_version(checker: ComplianceChecker) -> None:
    result = checker.check("这款奶粉100%有效，宝宝喝了不生病，加我微信")
    assert result.categories == {"false_promise", "ad_medical", "off_platform"}
    assert result.rules_version == checker.version


def test_allow_phrases_suppress_flags_inside_them() -> None:
    text = "我们是行业第一品牌"
    assert ComplianceChecker().check(text).flags
    assert ComplianceChecker(allow_phrases=["行业第一品牌"]).check(text).flags == ()
    hotline = "我们的售后电话 0571-87654321"
    assert ComplianceChecker(allow_phrases=["0571-87654321"]).check(hotline).flags == ()


@pytest.mark.parametrize(
    ("ordinary", "risky", "category"),
    [
        ("益智类的拼图适合三岁以上的孩子", "这款奶粉益智，宝宝越喝越聪明", "ad_medical"),
        ("周末带孩子玩益智桌游吧", "这款奶粉益智，宝宝越喝越聪明", "ad_medical"),
        ("这套历史书从鸦片战争讲到新中国成立", "有人私下卖鸦片", "sensitive_violence"),
        ("玩具手枪是按键发声的，不能发射", "有渠道买手枪吗", "sensitive_violence"),
        ("外教的资质证书都能在小程序里查到", "办理资质证书，当天出证", "sensitive_violence"),
        ("情侣装和亲子装都有现货", "约吗，包夜一千", "sensitive_porn"),
    ],
)
def test_everyday_phrases_the_lists_mis_tag_stay_clean(
    checker: ComplianceChecker, ordinary: str, risky: str, category: str
) -> None:
    # Allow phrases cover only their own words: the risky use of the same term is still found.
    assert category in checker.check(risky).categories
    assert category not in checker.check(ordinary).categories


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


_TENANT_RULE = """
lists:
  competitors: [小熊奶粉]
rules:
  - id: tenant.discount
    category: false_promise
    severity: review
    basis: 公司价格政策
    message: 不得承诺内部折扣
    suggestion: 以商城价格为准
    terms: [内部价, 员工价]
"""


def test_tenant_rule_file_adds_rules_and_extends_lists(tmp_path: Path) -> None:
    path = _write(tmp_path / "tenant.yaml", _TENANT_RULE)
    tenant = ComplianceChecker(extra_rule_files=[path])
    assert ComplianceChecker().check("给您员工价").flags == ()
    flag = _flag(tenant.check("给您员工价"), "false_promise")
    assert (flag.rule_id, flag.suggestion) == ("tenant.discount", "以商城价格为准")
    assert _flag(tenant.check("小熊奶粉都是假货"), "competitor").rule_id == "comp.disparage"


def test_reload_picks_up_an_edited_rule_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "tenant.yaml", _TENANT_RULE)
    tenant = ComplianceChecker(extra_rule_files=[path])
    before = tenant.version
    assert tenant.check("这是内部价").flags
    _write(path, _TENANT_RULE.replace("[内部价, 员工价]", "[亲友价]"))
    tenant.reload()
    assert tenant.version != before
    assert tenant.check("这是内部价").flags == ()
    assert _flag(tenant.check("给您亲友价"), "false_promise").rule_id == "tenant.discount"


def test_a_failed_reload_keeps_the_previous_rules(tmp_path: Path) -> None:
    path = _write(tmp_path / "tenant.yaml", _TENANT_RULE)
    tenant = ComplianceChecker(extra_rule_files=[path])
    _write(path, _TENANT_RULE.replace("severity: review", "severity: fatal"))
    with pytest.raises(LibraryError):
        tenant.reload()
    assert tenant.check("这是内部价").flags


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        (("severity: review", "severity: fatal"), "rule tenant.discount.severity", "warn"),
        (("category: false_promise", "category: fake"), "rule tenant.discount.category", "unknown category"),
        (("terms: [内部价, 员工价]", "pattern: '内部(价'"), "rule tenant.discount.pattern", "invalid regex"),
        (
            ("terms: [内部价, 员工价]", "terms: [内部价]\n    pattern: 员工价"),
            "rule tenant.discount",
            "exactly one",
        ),
        (("terms: [内部价, 员工价]", "pattern: '${nolist}'"), "rule tenant.discount.pattern", "unknown list"),
        (
            ("    suggestion: 以商城价格为准\n", "    colour: red\n"),
            "rule tenant.discount.colour",
            "not permitted",
        ),
    ],
)
def test_bad_rule_data_names_file_line_and_rule(
    tmp_path: Path, change: tuple[str, str], field: str, hint: str
) -> None:
    path = _write(tmp_path / "bad.yaml", _TENANT_RULE.replace(*change))
    with pytest.raises(LibraryError) as caught:
        ComplianceChecker(extra_rule_files=[path])
    problem = caught.value.problems[0]
    assert problem.file == str(path)
    assert problem.line == 5  # the line where the rule starts
    assert problem.field.startswith(field)
    assert hint in problem.message
    assert str(path) in str(caught.value) and "tenant.discount" in str(caught.value)


def test_duplicate_rule_ids_and_broken_yaml_are_reported(tmp_path: Path) -> None:
    clash = _write(tmp_path / "clash.yaml", _TENANT_RULE.replace("tenant.discount", "abs.zuihao"))
    with pytest.raises(LibraryError, match="duplicate rule id"):
        ComplianceChecker(extra_rule_files=[clash])
    broken = _write(tmp_path / "broken.yaml", "rules: [\n")
    with pytest.raises(LibraryError, match="not valid YAML"):
        ComplianceChecker(extra_rule_files=[broken])


def test_unknown_pack_and_missing_file_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="general"):
        ComplianceChecker(packs=["nonexistent"])
    with pytest.raises(ConfigurationError, match="cannot read"):
        ComplianceChecker(extra_rule_files=[tmp_path / "missing.yaml"])


def test_every_shipped_pack_loads_and_every_category_has_a_rule() -> None:
    assert set(ALL_PACKS) <= set(available_packs())
    for pack in available_packs():
        assert ComplianceChecker(packs=("general", pack)).rules
    covered = {r.category for r in ComplianceChecker(packs=ALL_PACKS).rules}
    covered |= {c for c in CATEGORIES if c.startswith("pii_")}
    assert covered == set(CATEGORIES) - {"frequency"}


def test_pattern_rules_run_through_their_trigger_literals_or_always(tmp_path: Path) -> None:
    assert required_literals("(?:好评|晒单)(?:.{0,8}?)返现") == frozenset({"返现"})
    assert required_literals("(?:好评|晒单)(?:.{0,8}?)(?:返|送)") == frozenset({"好评", "晒单"})
    assert required_literals(r"[a-z]{3}\d") is None
    path = _write(
        tmp_path / "t.yaml",
        "rules:\n  - {id: t.code, category: pii_other, severity: warn, basis: 测试依据, message: 出现了内部代码,"
        " pattern: '[a-z]{3}[0-9]{4}'}\n",
    )
    assert (
        _flag(ComplianceChecker(extra_rule_files=[path]).check("代码abc1234"), "pii_other").rule_id
        == "t.code"
    )



def test_top_level_branches_split_only_the_outer_alternation() -> None:
    assert top_level_branches(r"a(?:b|c)|[|x]d|\|e|(?<!f)g") == ["a(?:b|c)", "[|x]d", r"\|e", "(?<!f)g"]
    assert top_level_branches("(?:好评|晒单)返现") == ["(?:好评|晒单)返现"]
    assert top_level_branches("[^]|]x|y") == ["[^]|]x", "y"]
    assert top_level_branches("a|(b") == ["a|(b"]  # unbalanced: left whole (and refused by the pack loader)


def test_each_branch_of_a_rule_runs_only_on_its_own_trigger_literals(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.yaml",
        "rules:\n  - {id: t.mixed, category: pii_other, severity: warn, basis: 测试依据, message: 出现了内部代码,"
        " pattern: '(?:内部|员工)(?:.{0,6}?)价格表|[a-z]{3}\\d{4}|暗号(?:是|为)'}\n",
    )
    checker = ComplianceChecker(extra_rule_files=[path], semantic=False)
    snap = checker._snap
    index = next(i for i, r in enumerate(snap.rules) if r.id == "t.mixed")
    branches = [pattern.pattern for i, pattern in snap.probes if i == index]
    assert branches == ["(?:内部|员工)(?:.{0,6}?)价格表", r"[a-z]{3}\d{4}", "暗号(?:是|为)"]
    # the branch without literals runs on every text, the others only after their own literal
    untriggered = [snap.probes[p][1].pattern for p in snap.untriggered if snap.probes[p][0] == index]
    assert untriggered == [r"[a-z]{3}\d{4}"]
    for text in ("这是员工专用的价格表", "代码abc1234", "今天的暗号是芝麻开门"):
        assert _flag(checker.check(text), "pii_other").rule_id == "t.mixed"
    assert not any(f.rule_id == "t.mixed" for f in checker.check("价格表在这里，暗号不用记").flags)

_LEXICON = """枪支弹药出售 4
北京 0
天安门 0
高清成人影院 2
百家乐娱乐城 3
法轮功学员 0
sexvideo 2
ab 2
"""


def test_public_lexicons_map_tags_and_drop_ambiguous_words(tmp_path: Path) -> None:
    (tmp_path / "houbb").mkdir()
    _write(tmp_path / "houbb" / "sensitive_word_tags.txt", _LEXICON)
    _write(tmp_path / "houbb" / "sensitive_word_allow.txt", "百家乐娱乐城\n")
    checker = ComplianceChecker(lexicon_dir=tmp_path)
    lexicon = {r.category: set(r.terms) for r in checker.rules if r.id.startswith("lexicon.")}
    assert lexicon == {
        "sensitive_violence": {"枪支弹药出售"},
        "sensitive_porn": {"高清成人影院"},
        "sensitive_gambling": {"百家乐娱乐城"},
        "sensitive_political": {"法轮功学员"},
    }
    assert _flag(checker.check("这里有高清成人影院"), "sensitive_porn").rule_id == "lexicon.sensitive_porn"
    assert checker.check("我在北京天安门").flags == ()
    assert not any(f.rule_id.startswith("lexicon.") for f in checker.check("百家乐娱乐城").flags)
    assert checker.version != ComplianceChecker().version


def test_lexicon_dir_without_known_files_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"sensitive_word_tags\.txt"):
        ComplianceChecker(lexicon_dir=tmp_path)


def _rows() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_eval_dataset_covers_every_category_and_enough_clean_text() -> None:
    rows = _rows()
    counts = Counter(c for row in rows for c in row["categories"])  # type: ignore[attr-defined]
    assert len(rows) >= 420
    assert set(counts) == set(CATEGORIES) - {"frequency"}
    assert min(counts.values()) >= 12
    assert sum(1 for row in rows if not row["categories"]) >= 150


def test_eval_dataset_micro_f1_and_clean_false_positive_rate(checker: ComplianceChecker) -> None:
    tp = fp = fn = clean = clean_flagged = 0
    for row in _rows():
        want = set(row["categories"])  # type: ignore[call-overload]
        got = checker.check(str(row["text"])).categories
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
        if not want:
            clean += 1
            clean_flagged += bool(got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.9, f"micro-F1 {f1:.3f} (P {precision:.3f}, R {recall:.3f})"
    assert clean_flagged / clean <= 0.05, f"{clean_flagged}/{clean} clean texts flagged"
