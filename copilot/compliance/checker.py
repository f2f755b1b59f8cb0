"""The pre-send compliance checker: one pass over normalised text, data-driven rules, exact original spans.

Every drafted reply and every customer message goes through `ComplianceChecker.check`, so it is built for
throughput: all lexicon terms (and allow phrases) live in a single Aho-Corasick automaton, pattern rules are
only searched when one of their required literals (see `prefilter.py`) occurred, personal-data detectors run behind cheap cues, and the
normalised→original offset map is only built when something was found.

Automaton values carry the rule indexes a word is a term of (-1 marks an allow phrase) and the probes (pattern
rules or branches of one) it is a trigger literal of. A compiled snapshot is swapped in whole by `reload`, so a concurrent `check` never sees half-loaded rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.compliance.lexicons import LexiconRules, builtin_lexicons, load_lexicons
from copilot.compliance.normalize import Normalized, fold_char, normalize
from copilot.compliance.packs import PackSource, Rule, compile_rules, pack_source, read_rule_file
from copilot.compliance.pii import find_pii
from copilot.compliance.pinyin import PinyinReader, has_pinyin_run
from copilot.compliance.prefilter import required_literals, top_level_branches
from copilot.compliance.result import ComplianceResult, Flag, Severity, overall_risk
from copilot.compliance.semantic import SemanticLayer, default_layer
from copilot.wordsearch import WordSearch

if TYPE_CHECKING:
    from copilot.compliance.review import EmbeddingReview

__all__ = ["ComplianceChecker"]

_ALLOW = -1
_BROAD = "lex.houbb."  # rule ids of the public sensitive lists
_AD_CATEGORIES = frozenset({"ad_absolute", "ad_medical", "ad_superstition"})
# Normalised text: lower case, no spaces or punctuation. Placing or hanging an object (放在, 挂上, 供着) is how a
# talisman is sold, so it counts as sales wording too; so does ranking a product among others (全网, 同类, 业内, 所有…里).
_SALES_CUE = re.compile(
    r"这款|这个|这种|这套|这瓶|这盒|这支|这罐|这条|这件|我们|我家|咱家|咱们|本店|店里|我这|产品|品牌|牌子|款|买|入手|下单|拍"
    r"|价|到手|优惠|活动|亲|姐|哥|宝妈|宝宝|孩子|小朋友|您|你|闭眼|回购|囤|戴|摆|挂在家|放家|放在家|喝|吃|用了|用上|抹|涂|敷|喷|冲"
    r"|这块|这串|这尊|这对|这只|这幅|这盆|这盏|这棵|这枚|这颗"
    r"|放在|挂在|摆在|放到|挂到|摆到|挂上|摆上|放上|戴上|带上|供着|供奉|请一尊|请回|装在|贴在"
    r"|这是|所有|全网|全城|业内|行业|同类|同款|市面上|色号|工艺|级别"
    r"|效果|推荐|疗程|到货|送礼|送长辈|好东西|品质|顶配|奶粉|纸尿裤|尿不湿|面霜|精华|面膜|乳液|米粉|辅食|益生菌|钙片|鱼油"
    r"|好茶|茶叶|白酒|手串|手链|摆件|餐椅|推车|玩具|课程|泡脚|一袋|一盒|一罐|一瓶"
    r"|销量|口碑|性价比|正品|新品|上新|首选|必备|国货|进口|配方|成分|材质|面料|卖|店|货|好用|用着|好喝|好吃|质量|宝贝|链接"
    # Pointing at one item (这台, 这把 … 就是它) or crowning it among its kind (精品中的精品, 猫砂界的天选之子), and
    # goods people are sold rather than read about in prose.
    r"|这台|这口|这把|这双|这批|这项|这副|这本|这包|这袋|这桶|这份|这顶|这张|这片|这门|这节|这家是|就是它|就是这|说的就是|单品"
    r"|([一-龥]{1,4})中的\1|[里界]的(?:爱马仕|劳斯莱斯|战斗机|天选之子|天花板|顶尖|王牌)"
    r"|吸尘器|净水器|扫地机|净化器|洗碗机|烘干|座椅|蛋白粉|燕窝|孢子粉|猫条|猫砂|狗粮|猫粮|防晒|保湿|护肤|原料|壁纸|红绳|桃木"
    r"|玛瑙|对联|锅具|健身器材|机构|新生儿"
    # A dose is how a remedy is sold (每天一勺, 早上一杯, 一天两粒), and so are the goods health claims come with.
    r"|(?:每天|每日|一天|早上|晚上|睡前|饭后|早晚)(?:早上|晚上)?(?:一|两|二|三)(?:勺|包|粒|杯|片|袋|颗|支|贴)"
    r"|蜂胶|蜂王浆|胶囊|口服液|冲剂|减肥茶|降压茶|养生茶|足浴包|艾灸贴|奶皂|神器|文案"
)
# A remedy is sold by how it is used on the body (垫着走路, 枕着睡, 穿上, 做满十次, 每天十分钟) or by the customers who
# used it (好多客户, 学员, 亲测): a health claim with either is advertising even without other sales wording. Prose
# about an illness has neither; the other advertising categories still need the sales wording above.
_REMEDY_CUE = re.compile(
    r"每天|每晚|每次|坚持|客户|顾客|学员|会员|姐妹|亲测|自用|垫着|枕着|穿着|穿上|绑着|戴着|坐着|躺着|泡着|贴着|含着"
    r"|泡(?:一|个|完|三|脚)|(?:做|用|泡|贴|喝|吃|戴|穿|睡|垫|刮)(?:完|满|了一|一次|一周|一个月|三天|七天)|当场|第二(?:天|晚)"
    r"|(?:按摩|理疗|美容|护眼|治疗|眼部|颈椎|脉冲|低频|射频|热敷|艾灸|红光|蓝光|盆底修复)仪|鞋垫|床垫|枕头|精油|足贴|理疗|疗养|口服"
    # Goods a remedy comes as (护臀膏, 护理液, 苦瓜肽, 软糖, 手环) and a use that acts at once (一擦, 洗几次, 闻了).
    r"|香波|软糖|坐垫|手环|营养剂|营养膏|护理液|洗液|药浴|激酶|[一-龥]肽|护臀膏|软膏|乳膏|凝胶|喷雾|滴剂"
    r"|一(?:擦|抹|涂|贴|喷|敷|泡|刮)|(?:洗|擦|抹|涂|贴|喷|敷|泡)(?:几|[一两三四五六七八九十])(?:次|回|遍)|闻了|闻一闻|刮一刮"
    # A regimen (天天, 做三次, 打完, 泡水喝) and more goods health claims are sold with (眼罩, 牙贴, 酵素, 水光针, 按摩椅).
    r"|天天|(?:做|打|用|喝|吃|贴|泡)(?:几|[一两三四五六七八九十])(?:次|回|针|疗程)|打完|泡水|配(?:一)?副"
    r"|眼罩|牙贴|肚脐贴|退热贴|四件套|按摩椅|甩脂机|料包|酵素|水光针|溶脂针|嫩肤|氨糖|乳清蛋白|胶原蛋白|[一-龥]丸"
)
# Full-width Latin letters and the ideographic space (ｇｅｎ治, ｚｈｉ　疗) as their ASCII forms, one for one, for the
# pinyin reader.
_FULL_WIDTH = re.compile("[\uff21-\uff3a\uff41-\uff5a\u3000]")
_HALF_WIDTH = {cp: cp - 0xFEE0 for cp in (*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))} | {0x3000: 0x20}
_DISCUSSION = re.compile(
    r"(?<!不)(?:违法|违规)|(?:规定|法律|广告法|条例|广告中|一律|均)(?:.{0,12})不得|严禁|禁止|打击"
    r"|(?:反诈|防骗|警方|公安机关|监管部门|消费者协会|消协)(?:.{0,6})(?:提醒|提示|表示|通报)"
    r"|提醒(?:广大|消费者|投资者|用户|市民|大家|家长)|(?:专家|医生|官方|平台|银行)(?:.{0,2})提醒|谨防|警惕|(?:破获|侦破)(?:.{0,8})案"
    r"|受害者|举报|(?:都是|就是|是|属于)(?:诈骗|骗局|骗人的|骗子|假的)|法律(?:.{0,6})(?:限制|禁止)"
    r"|千万(?:别|不要)(?:信|给|告诉|转|点|加|上当)|(?:不要|别)(?:相信|上当)|(?:的|种)骗局"
    r"|(?:规定|法律|广告法|条例)(?:.{0,12})(?:不能|不允许|不可以)"
    r"|(?:赌博|网赌|赌钱|诈骗)害人|(?:已经|已|都)(?:被)?(?:踢出|踢了|拉黑|移出|清出)"
    r"|(?:这种|这类|这样的|这个)(?:事情?|活动|做法|服务|操作)(?:我们|咱们|咱|我这边|我们这边|我们家|本店)?"
    r"(?:从来|一直|也|都)?(?:不做|不搞|不干|没有|没做过|不提供|不参与)"
    r"|(?:不会|从不|绝不会|绝对不会)(?:主动)?(?:问|向|跟|找)(?:您|你|客户|家长|大家)?(?:要|索要|索取)"
    r"|(?:遇到|碰到|接到)(?:.{0,3})(?:自称|冒充)"
    r"|(?:有人|陌生人|别人|对方)(?:.{0,16})(?:不要理|别理|不要转|别转|一律不|先(?:来)?(?:问|联系)(?:一下)?(?:我|客服|官方))"
)
# Sending the health question to a doctor (祛痘的话得找医生开药, 降血脂要遵医嘱吃药) or putting the effect down to
# something else (长个子主要还是靠营养和睡眠, 这个说法没有依据) says what the product does not do.
_MEDICAL_REFERRAL = re.compile(
    r"的话(?:.{0,2})(?:得|要|还是|请|建议|需要)(?:.{0,2})(?:找医生|看医生|遵医嘱|就医|去医院|看病)"
    r"|(?:主要|还是|得)(?:还是|是)?(?:靠|看)(?:遗传|基因|营养|睡眠|运动|饮食|作息|均衡)|问(?:[一-龥]{1,4}科)医生|说法(?:.{0,2})没有(?:科学)?依据|不这么(?:宣传|说)"
    r"|(?<!不用)(?<!不必)(?<!不需要)(?:问问|问下|问一下|咨询|请教|听)(?:一下)?(?:您的|你的|主治|产检|儿科|专业)?(?:医生|大夫)"
    r"|遵医嘱|(?<!不)(?<!不需)(?:要|得|请|建议|还是|最好)(?:去)?(?:看医生|看看医生|找医生|就医|去医院|看牙医|看.{0,3}科)"
)
# A yes-no question of the A-not-A kind (能不能, 要不要): its 不能 or 不要 asks, it does not deny (能不能加您个人微信).
_A_NOT_A = re.compile(r"能不能|可不可以|可以不可以|会不会|要不要|行不行|肯不肯|愿不愿意?")
# Telling the customer not to pay or add anyone privately (请不要转到任何个人账户, 别加私人微信) keeps them on WeCom.
_OFF_PLATFORM_DENIAL = re.compile(
    r"(?:不要|别|请勿|切勿|不能|不会|不支持|不接受)(?:.?|(?:让|叫|要|要求)(?:您|你|家长|客户|大家)?)(?:把钱|把款)?(?:转|私下|加)"
    r"(?:.{0,6})(?:个人|私人|微信|支付宝|银行卡|账户)"
    r"|(?:不会|从不|不)(?:通过|用)(?:.{0,8})(?:个人|私人)(?:收款|账户|微信|支付宝)"
    r"|(?:有人|谁|陌生人|对方)(?:让|叫|要|要求)(?:您|你)(?:.{0,4})(?:私下|转账|转钱|加)"
    r"|(?:不要|请勿|切勿|不得|禁止|严禁)(?:向|给|往)(?:.{0,8}?)(?:个人|私人)(?:账户|账号|微信|支付宝|银行卡)(?:.{0,2})(?:转|付|汇|打)"
    r"|(?:不要|别|请勿|切勿)(?:添加|加)(?:.{0,12}?)(?:个人|私人)(?:微信|账号|号)"
    r"|(?:不可以|不能|不会|不得|禁止|严禁)私下(?:收费|收款|收钱|交易|转账)(?![^，,。！!？?]*[吗吧呢？?])"
)
# A claim word the text itself denies (不敢说是最好的, 不算全网最便宜, 不是特供产品, 没有好评返现的活动) is not
# claimed: a finding of these categories gives way when its own clause, just before its span, negates it.
_NEGATED_CLAIM = re.compile(
    r"(?:(?:不敢说|不能说|不好说|不算|并不是|不是|并非|谈不上|称不上|算不上)\w{0,6}|没有(?:什么)?\w{0,2})$"
)
_NEGATABLE = frozenset({"ad_absolute", "ad_endorsement", "review_cashback"})
_CLAUSE_END = re.compile(r"[，,。.！!？?；;：:\s]")
# A promise hedged in the same text (效果因人而异, 我们不保证每个人都有效) is the opposite of one.
_HEDGE = re.compile(r"(?:不|没法|没办法|无法|不能|不敢|不会)(?:给您|跟您|向您)?(?:保证|承诺|打包票)|因人而异|个体差异")
# A risk disclosure (这个产品不保本，可能会亏; 存在本金损失的风险) says the opposite of a return promise.
_RISK_DISCLOSURE = re.compile(
    r"不保本|(?<!不)可能(?:会)?(?:亏|损失)|(?<!不)存在(?:本金)?(?:损失|亏损)(?:的)?风险|投资有风险|不(?:承诺|保证)收益"
    r"|不代表(?:未来|以后)"
)
# A plain comparison that leaves the other brand its due (和隔壁那家的差不多, 各有优势, 也不错, 不好评价) is not
# disparagement.
_NEUTRAL_COMPARISON = re.compile(
    r"(?<!得)差不多|各有(?:优势|特点|千秋|所长|各的好)|侧重点?不(?:一样|同)|(?:也|都)(?:挺|很|还)?(?:不错|挺好|能用|能吃|可以)"
    r"|不好评价|不(?:太)?了解|没(?:有)?(?:用过|上过|买过|吃过|试过|去过)|(?:看|选)(?:适合|合适)"
)
# 差不多 after a likeness to something worthless (吸力跟小风扇差不多, 跟喝糖水差不多) compares a rival to it, not to us.
_LIKENESS = re.compile(
    r"(?:跟|像|和)(?!我们|我家|咱|你们|您|他们|她们|它们|别家|隔壁|那家|同行|别的|其他|其它|人家)[一-龥]{1,6}差不多"
)
# A commitment about the staff member's own service (我肯定会把课表发您, 绝对不会忘了提醒您, 明天一定寄出) is not
# an effect promise; only the model's guess gives way to it, a rule's finding stays.
_SERVICE_COMMITMENT = re.compile(r"(?:发|提醒|回复|通知)(?:给)?您|寄出|发出|单号")
# A customer asking what a product can do (这个能治湿疹吗？, 用了会不会过敏？) asks for the claim instead of making it.
# Original text: sentences end at 。！？；, line breaks or the end; such a sentence is one clause (no comma: 两会代表都在
# 用，您说质量能差吗 states the claim before asking) that asks whether something can, will or works (能/会/可以/有用…)
# and ends with ？ or 吗/么/嘛 (呢 also ends statements: 写着呢). A draft's hook (想一个月瘦十斤吗？, 还在为湿疹烦恼吗？)
# opens with 想/还在/难道 and stays a claim.
_SENTENCE = re.compile(r"[^。！!？?；;\n]+[。！!？?；;\n]*")
_QUESTION = re.compile(
    r"^(?!\W*(?:想|还在|还为|还想|难道|是不是还|你还|您还|你想|您想|谁不想))[^，,、]*"
    r"(?:能|会|可以|管用|有用|有效|好使|靠谱|行不行|有没有|是不是|真的)[^，,、]*(?:[？?]|(?:吗|么|嘛)[\W_]*)$"
)
_CLAIMS = frozenset({"ad_absolute", "ad_medical", "ad_finance", "ad_education", "ad_superstition", "ad_endorsement",
                     "false_promise"})
_DISCUSSABLE = frozenset({"ad_absolute", "ad_medical", "ad_finance", "ad_education", "ad_superstition",
                          "ad_endorsement", "false_promise", "review_cashback", "prize_lure", "spam_ad", "fraud",
                          "sensitive_gambling", "sensitive_porn", "off_platform"})
_PII_RULES = {
    "pii_id_number": ("pii.id_number", Severity.review, "包含身份证号码，请勿在聊天中传递，必要时走官方实名通道",
                      "如需核验身份，请引导客户通过官方小程序/表单提交"),
    "pii_bank_card": ("pii.bank_card", Severity.review, "包含银行卡号，不得在聊天中收集或转发",
                      "付款请引导客户使用官方支付链接，不要索要卡号"),
    "pii_phone": ("pii.phone", Severity.warn, "包含电话号码，注意保护客户隐私，不要转发给第三方", None),
    "pii_address": ("pii.address", Severity.warn, "包含详细地址，注意保护客户隐私，只用于本次发货", None),
    "pii_other": ("pii.other", Severity.warn, "包含邮箱、证件号或车牌等个人信息，注意保护隐私", None),
}  # fmt: skip
_PII_BASIS = "《个人信息保护法》第十条、第二十八条"


def _negated(text: str, start: int) -> bool:
    """Whether the finding at `start` is denied by the start of its own clause (不敢说…, 不算…, 不是…, 没有…)."""
    clause = _CLAUSE_END.split(text[max(0, start - 16) : start])[-1]
    return bool(_NEGATED_CLAIM.search(clause))


def _edge(ch: str) -> int:
    """0 for CJK and others, 1 for an ASCII letter, 2 for a digit: Latin terms need word boundaries."""
    if ch.isascii():
        if ch.isalpha():
            return 1
        if ch.isdigit():
            return 2
    return 0


@dataclass(frozen=True)
class _Snapshot:
    rules: tuple[Rule, ...]
    # word → (rule indexes or _ALLOW, probes it triggers, left edge, right edge)
    automaton: WordSearch[tuple[tuple[int, ...], tuple[int, ...], int, int]] | None
    probes: tuple[tuple[int, re.Pattern[str]], ...]  # (rule index, pattern or one branch of it), searched when triggered
    untriggered: tuple[int, ...]  # probes without trigger literals: searched on every text
    version: str
    words: tuple[str, ...] = ()  # every term, allow phrase and pattern literal: what pinyin may spell

    @cached_property
    def clean(self) -> ComplianceResult:
        """The result of a text without findings (most texts): immutable, so one serves them all."""
        return ComplianceResult("none", (), self.version)


class ComplianceChecker:
    """Checks texts against the selected packs, tenant rule files, allow phrases and optional lexicons."""

    def __init__(
        self,
        *,
        packs: Sequence[str] = ("general",),
        extra_rule_files: Sequence[Path] = (),
        allow_phrases: Sequence[str] = (),
        mask_pii: bool = True,
        lexicon_dir: Path | None = None,
        semantic: bool = True,
    ) -> None:
        self._packs = tuple(dict.fromkeys(packs))
        self._extra = tuple(Path(p) for p in extra_rule_files)
        self._allow = tuple(allow_phrases)
        self._mask_pii = mask_pii
        self._lexicon_dir = lexicon_dir
        self._snap = self._compile()
        # The per-process semantic layer (trained on first use); `semantic=False` gives a rules-only checker.
        self.semantic: SemanticLayer | None = default_layer() if semantic else None

    @property
    def version(self) -> str:
        """Hash of every rule byte loaded; record it with results to know which rules judged a text."""
        return self._snap.version

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._snap.rules

    def warm(self) -> None:
        """Build now what the first text with pinyin in it would otherwise wait for: the reader of these rules' words
        (about a second the first time in a process, a tenth of that for another tenant's rules or after a reload),
        and the word dictionary short list terms are read against (`_inside_words`)."""
        _reader(self._snap)
        _dictionary()

    def reload(self) -> None:
        """Re-read packs, tenant files and lexicons; on any error the previous rules stay in force."""
        self._snap = self._compile()

    def _compile(self) -> _Snapshot:
        sources = tuple([pack_source(name) for name in self._packs] + [read_rule_file(p) for p in self._extra])
        extra = load_lexicons(self._lexicon_dir) if self._lexicon_dir is not None else None
        return _compiled(sources, self._allow, extra)

    def check(self, text: str, review: EmbeddingReview | None = None, *, sales: bool = False) -> ComplianceResult:
        """All findings for `text`; spans index `text` itself. `review` adds the sentence embedder's second look at
        texts the semantic layer leaves just below a threshold (`review.py`; milliseconds for those texts).

        `sales` says the text is a staff member's message to a customer (a draft, an auto-reply): that is sales
        talk whatever its words, so an advertising claim in it needs no other sales wording to count. Without it
        (customer messages, archived chat, prose) 第一/最佳/治疗 count only next to sales wording.

        Rule words spelled in pinyin (zui hao yong, si xia zhuan zhang) are read back into characters and the
        rewritten text is checked too; what it adds is flagged at the pinyin (`pinyin.py`)."""
        result = self._check_text(text, review, sales)
        latin = text.translate(_HALF_WIDTH) if _FULL_WIDTH.search(text) else text  # ｇｅｎ治 is gen治, same length
        if not has_pinyin_run(latin):
            return result
        rewritten = _reader(self._snap).rewrite(latin)
        if rewritten is None:
            return result
        known = result.categories
        extra = []
        for flag in self._check_text(rewritten.text, None, sales).flags:  # the second look has read this text once
            if flag.category not in known:
                lo, hi = rewritten.original_span(*flag.span)
                extra.append(replace(flag, span=(lo, hi), matched=text[lo:hi]))
        if not extra:
            return result
        kept = _resolve_overlaps([*result.flags, *extra])
        return ComplianceResult(overall_risk(kept), tuple(kept), result.rules_version)

    def _sentence_flags(self, text: str, normalised: str, skip: set[str]) -> list[Flag]:
        """The semantic layer's reading of each sentence of a message of several: a smear or a claim in one sentence
        of a long, friendly message weighs little among all the message's n-grams, but as much as in a line of its
        own when its sentence is read alone. A flag covers its sentence. Only the n-gram layer reads the sentences:
        with the second look, sentences read alone (a customer's question, a fragment) came near too many categories
        (held-out dev: six more clean lines flagged for one more risky line found)."""
        assert self.semantic is not None
        parts = _sentences(text)
        # A sentence's n-grams are some of its message's: a message without a cue has no sentence with one.
        if not parts or not self.semantic.has_cue(normalised):
            return []
        found: list[Flag] = []
        for start, part in parts:
            for flag in self.semantic.flags(part, normalize(part).text, skip=skip):
                skip.add(flag.category)
                found.append(replace(flag, span=(start, start + len(part))))
        return found

    def _check_text(self, text: str, review: EmbeddingReview | None, sales: bool) -> ComplianceResult:
        snap = self._snap
        norm = normalize(text)
        nt = norm.text
        hits: list[tuple[int, int, int]] = []
        allowed: list[tuple[int, int]] = []
        triggered: set[int] = set()
        rules = snap.rules
        if snap.automaton is not None and nt:
            entries = snap.automaton.values
            for entry, start, stop in snap.automaton.matches(nt):
                indexes, probes, left, right = entries[entry]
                if probes:
                    triggered.update(probes)
                if not indexes:  # most matches are only trigger literals
                    continue
                if (
                    (left and start > 0 and _edge(nt[start - 1]) == left)
                    or (right and stop < len(nt) and _edge(nt[stop]) == right)
                ) and _glued(norm, start, stop, left, right):
                    continue
                for index in indexes:
                    if index == _ALLOW:
                        allowed.append((start, stop))
                    elif not rules[index].has_exceptions or not _excepted(rules[index], norm, start, stop):
                        hits.append((start, stop, index))
        if snap.untriggered:
            triggered.update(snap.untriggered)
        for probe in sorted(triggered):  # in rule order: of two overlapping flags of a category the first rule wins
            index, pattern = snap.probes[probe]
            rule = rules[index]
            for m in pattern.finditer(nt):
                if m.end() > m.start() and not (rule.has_exceptions and _excepted(rule, norm, *m.span())):
                    hits.append((m.start(), m.end(), index))
        flags = self._lexical_flags(snap, norm, hits, allowed)
        flags.extend(self._pii_flags(text, norm, allowed))
        if self.semantic is not None and nt:
            # Allow phrases are the tenant's own wording: the model judges what is left around them.
            rest = _without(nt, allowed) if allowed else nt
            if rest:
                skip = {f.category for f in flags}
                found = self.semantic.flags(text, rest, skip=skip, review=review)
                flags.extend(found)
                if not allowed:
                    flags.extend(self._sentence_flags(text, nt, skip | {f.category for f in found}))
        if flags and not sales and not _SALES_CUE.search(nt):
            # An advertising claim needs something to advertise: without any sales wording (这款, 我们, 买, 您 …)
            # 第一/最佳/治疗/辟邪 are facts or topics of ordinary prose (长江是中国第一长河).
            remedy = _REMEDY_CUE.search(nt) is not None
            flags = [f for f in flags if f.category not in _AD_CATEGORIES or (remedy and f.category == "ad_medical")]
        if flags and _DISCUSSION.search(nt):
            # Text that warns about, forbids or reports a practice (反诈提醒, 广告法规定不得…, 平台打击刷单) is not
            # doing it.
            flags = [f for f in flags if f.category not in _DISCUSSABLE]
        if flags and _SERVICE_COMMITMENT.search(nt):
            flags = [f for f in flags if f.rule_id != "semantic.false_promise"]
        if flags and _only_questions(text):
            flags = [f for f in flags if f.category not in _CLAIMS]
        if flags and _NEUTRAL_COMPARISON.search(_LIKENESS.sub("", nt)):
            flags = [f for f in flags if f.category != "competitor" or f.rule_id.startswith("comp.")]
        if flags and _MEDICAL_REFERRAL.search(nt):
            flags = [f for f in flags if f.category != "ad_medical"]
        if flags and _HEDGE.search(nt):
            flags = [f for f in flags if f.category != "false_promise"]
        if flags and _RISK_DISCLOSURE.search(nt):
            flags = [f for f in flags if f.category not in ("ad_finance", "false_promise")]
        if flags:
            flags = [f for f in flags if f.category not in _NEGATABLE or not _negated(text, f.span[0])]
        if flags and _OFF_PLATFORM_DENIAL.search(_A_NOT_A.sub("能否", nt)):
            flags = [f for f in flags if f.category != "off_platform"]
        if not flags:
            return snap.clean
        kept = _resolve_overlaps(flags)
        return ComplianceResult(overall_risk(kept), tuple(kept), snap.version)

    @staticmethod
    def _lexical_flags(
        snap: _Snapshot, norm: Normalized, hits: list[tuple[int, int, int]], allowed: list[tuple[int, int]]
    ) -> list[Flag]:
        flags = []
        words: list[tuple[int, int]] | None = None
        for start, stop, index in hits:
            if any(a <= start and stop <= b for a, b in allowed):
                continue
            rule = snap.rules[index]
            if rule.id.startswith(_LIST_RULE) and _SHORT_TERM.fullmatch(norm.text, start, stop):
                if words is None:
                    words = _words(norm.text)
                if _inside_words(words, start, stop):
                    continue
            lo, hi = norm.span(start, stop)
            flags.append(
                Flag(
                    category=rule.category,
                    rule_id=rule.id,
                    severity=rule.severity,
                    span=(lo, hi),
                    message=f"{rule.message}（依据：{rule.basis}）",
                    suggestion=rule.suggestion,
                    matched=norm.original[lo:hi],
                )
            )
        return flags

    def _pii_flags(self, text: str, norm: Normalized, allowed: list[tuple[int, int]]) -> list[Flag]:
        found = find_pii(text)
        if not found:
            return []
        allowed_original = [norm.span(a, b) for a, b in allowed]
        flags = []
        for match in found:
            lo, hi = match.span
            if any(a <= lo and hi <= b for a, b in allowed_original):
                continue
            rule_id, severity, message, suggestion = _PII_RULES[match.category]
            flags.append(
                Flag(
                    category=match.category,
                    rule_id=rule_id,
                    severity=severity,
                    span=(lo, hi),
                    message=f"{message}（依据：{_PII_BASIS}）",
                    suggestion=suggestion,
                    matched=f"[{match.label}]" if self._mask_pii else text[lo:hi],
                )
            )
        return flags


@lru_cache(maxsize=16)
def _compiled(sources: tuple[PackSource, ...], allow_phrases: tuple[str, ...], extra: LexiconRules | None) -> _Snapshot:
    """One compiled snapshot per distinct rule text: checkers with the same packs and phrases share it."""
    ruleset = compile_rules(list(sources), allow_phrases)
    rules = list(ruleset.rules)
    allow = list(ruleset.allow)
    digest = hashlib.sha256(ruleset.digest.encode())
    # A word the packs already list keeps the packs' rule (and category); lexicons add the rest.
    known = {term for rule in rules for term in rule.terms}
    for lexicon in (builtin_lexicons(), extra):
        if lexicon is None:
            continue
        rules.extend(replace(r, terms=tuple(t for t in r.terms if t not in known)) for r in lexicon.rules)
        allow.extend(lexicon.allow)
        digest.update(lexicon.digest.encode())
    entries: dict[str, list[int]] = {}
    triggers: dict[str, list[int]] = {}
    for index, rule in enumerate(rules):
        for term in rule.terms:
            entries.setdefault(term, []).append(index)
    for phrase in allow:
        entries.setdefault(phrase, []).append(_ALLOW)
    probes: list[tuple[int, re.Pattern[str]]] = []
    untriggered = []
    for index, rule in enumerate(rules):
        for pattern, literal_source in _branches(rule):
            literals = required_literals(literal_source)
            probe = len(probes)
            probes.append((index, pattern))
            if literals is None:
                untriggered.append(probe)
                continue
            for literal in literals:
                triggers.setdefault(literal, []).append(probe)
    automaton = None
    if entries or triggers:
        automaton = WordSearch(
            (word, (tuple(dict.fromkeys(entries.get(word, ()))), tuple(dict.fromkeys(triggers.get(word, ()))),
                    _edge(word[0]), _edge(word[-1])))
            for word in dict.fromkeys([*entries, *triggers])
        )
    exceptions = {
        word
        for rule in rules
        for word in (*rule.unless_preceded_by, *rule.unless_followed_by, *rule.unless_near, *rule.only_near,
                     *rule.only_preceded_by, *rule.only_followed_by)
    }  # a negation spelled in pinyin (bu neng zhi yu) must read as one too
    words = tuple(dict.fromkeys([*entries, *triggers, *sorted(exceptions)]))
    return _Snapshot(tuple(rules), automaton, tuple(probes), tuple(untriggered), digest.hexdigest()[:16], words)


def _branches(rule: Rule) -> list[tuple[re.Pattern[str], str]]:
    """A rule's pattern as (compiled pattern, source its trigger literals are read from) pairs: one per branch of a
    top-level alternation whose compiled and literal forms split alike (`prefilter.top_level_branches`), else one."""
    if rule.pattern is None:
        return []
    literal_source = rule.literal_source or rule.pattern.pattern
    compiled = top_level_branches(rule.pattern.pattern)
    plain = top_level_branches(literal_source)
    if len(compiled) < 2 or len(compiled) != len(plain):
        return [(rule.pattern, literal_source)]
    return [(re.compile(part, rule.pattern.flags), source) for part, source in zip(compiled, plain, strict=True)]


_READERS: dict[str, PinyinReader] = {}
_MAX_READERS = 16  # as many as `_compiled` keeps snapshots: a reload or a new tenant file drops the oldest


def _reader(snap: _Snapshot) -> PinyinReader:
    """The pinyin reader of a snapshot's words, built on the first text that needs it (`ComplianceChecker.warm`)."""
    reader = _READERS.get(snap.version)
    if reader is None:
        reader = PinyinReader(snap.words)
        while len(_READERS) >= _MAX_READERS:
            _READERS.pop(next(iter(_READERS)), None)
        _READERS[snap.version] = reader
    return reader


def _only_questions(text: str) -> bool:
    """Whether every sentence of `text` with words in it is a question."""
    sentences = [m.group().strip() for m in _SENTENCE.finditer(text)]
    sentences = [x for x in sentences if re.search(r"\w", x)]
    return bool(sentences) and all(_QUESTION.search(x) for x in sentences)


_MIN_SENTENCE = 6  # characters; shorter pieces (好的！, 谢谢您～) say nothing on their own
_ENDS = "。！!？?；;\n"


def _sentences(text: str) -> list[tuple[int, str]]:
    """The sentences of a message of two or more that say something, with their offsets ([] for a message of one):
    a question claims nothing, so it is left out (有没有T0级别的防晒？ asks for a ranking, it does not make one)."""
    matches = list(_SENTENCE.finditer(text))
    if len(matches) < 2:
        return []
    parts = []
    for m in matches:
        whole = m.group()
        part = whole.rstrip(_ENDS).strip()
        asked = "？" in whole or "?" in whole or part.endswith(("吗", "么", "呢", "嘛"))
        if len(part) >= _MIN_SENTENCE and not asked:
            parts.append((m.start() + len(whole) - len(whole.lstrip()), part))
    return parts


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the given spans cut out."""
    keep = [True] * len(text)
    for lo, hi in spans:
        keep[lo:hi] = [False] * (hi - lo)
    return "".join(ch for ch, k in zip(text, keep, strict=True) if k)


def _glued(norm: Normalized, start: int, stop: int, left: int, right: int) -> bool:
    """Whether a Latin/digit term really runs into a neighbouring word in the original text.

    `加我VX：baby2024` normalises to `加我vxbaby2024`; the colon that separated the words is gone, so the
    word-boundary test is repeated on the original neighbours before a hit is rejected.
    """
    lo, hi = norm.span(start, stop)
    original = norm.original
    if left and lo > 0:
        before = fold_char(original[lo - 1])
        if before and _edge(before[-1]) == left:
            return True
    if right and hi < len(original):
        after = fold_char(original[hi])
        if after and _edge(after[0]) == right:
            return True
    return False


def _excepted(rule: Rule, norm: Normalized, start: int, stop: int) -> bool:
    nt = norm.text
    if rule.unless_followed_by and nt.startswith(rule.unless_followed_by, stop):
        return True
    if rule.unless_preceded_by and nt.endswith(rule.unless_preceded_by, 0, start):
        return True
    if rule.unless_near or rule.only_near:
        lo, hi = max(0, start - rule.window), stop + rule.window
        if any(_around(nt, w, lo, hi, start, stop, rule.category) for w in rule.unless_near):
            return True
        if rule.only_near and not any(_around(nt, w, lo, hi, start, stop) for w in rule.only_near):
            return True
    if rule.has_only_neighbours:
        return not (
            (rule.only_followed_by and nt.startswith(rule.only_followed_by, stop))
            or (rule.only_preceded_by and nt.endswith(rule.only_preceded_by, 0, start))
            or (rule.clause_end and _clause_edge(norm, stop, forward=True))
            or (rule.clause_start and _clause_edge(norm, start, forward=False))
        )
    return False


# A list term of two or three characters can be spelled by the end of one word and the start of the next: 天医 in
# 今天医生, 带单 in 带单片. Such a hit is dropped when a dictionary word crosses its edge; in 带天医磁场 or 老师带单稳赚
# no word does, and the term counts. Only the term lists' rules (`lex.`) are read this way: a pack rule's terms are
# phrases or carry their own context.
_LIST_RULE = "lex."
_SHORT_TERM = re.compile(r"[\u4e00-\u9fff]{2,3}")


@lru_cache(maxsize=1)
def _dictionary() -> Any:
    """jieba's tokenizer with its dictionary loaded (about a second, once per process)."""
    import logging

    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)
    jieba.initialize()
    return jieba.dt


def _words(nt: str) -> list[tuple[int, int]]:
    """Spans of the dictionary words of two or more characters in `nt` (no guessing of unknown words: a term the
    dictionary does not know stays in single characters and vetoes nothing)."""
    return [(lo, hi) for _, lo, hi in _dictionary().tokenize(nt, HMM=False) if hi - lo > 1]


def _inside_words(words: list[tuple[int, int]], start: int, stop: int) -> bool:
    """Whether a word crosses an edge of `[start, stop)`: the hit is the end of one word and the start of another."""
    return any(lo < start < hi or lo < stop < hi for lo, hi in words)


def _around(nt: str, word: str, lo: int, hi: int, start: int, stop: int, category: str | None = None) -> bool:
    """Whether `word` occurs in `nt[lo:hi]` other than inside the hit `[start, stop)` itself (没有之一 is its own 之一).

    Near a medical claim, a doctor or a hospital waved away (不用去医院, 不必看医生, 省得跑医院) is no referral: it
    makes the claim stronger, so it does not count as near."""
    i = nt.find(word, lo, hi)
    while i != -1:
        if not (start <= i and i + len(word) <= stop) and not (
            category == "ad_medical" and _DISMISSED.search(nt, max(0, i - 8), i)
        ):
            return True
        i = nt.find(word, i + 1, hi)
    return False


# What waves a doctor, a hospital or medicine away, right before the word (不用去医院, 不需要看医生, 省得跑医院).
_DISMISSED = re.compile(
    r"(?:不用|不必|无需|不需要|用不着|省得|免得|省去|告别|再也不用|不再|少跑)(?:再|去|跑|上|看)?(?:去|跑|看)?(?:宠物|儿童|大)?$"
)


_CLAUSE_MARKS = frozenset("。！？!?；;，,…~～\n")


def _clause_edge(norm: Normalized, pos: int, *, forward: bool) -> bool:
    """Whether a clause ends right after (or starts right before) normalised offset `pos` in the original.

    Punctuation is deleted by normalisation, so this looks at the original text: skipping emoji and spaces,
    the next character must be sentence punctuation or the end of the text.
    """
    original = norm.original
    if forward:
        i = norm.span(pos - 1, pos)[1]
        step, stop = 1, len(original)
    else:
        i = norm.span(pos, pos + 1)[0] - 1
        step, stop = -1, -1
    while i != stop:
        ch = original[i]
        if ch in _CLAUSE_MARKS:
            return True
        if fold_char(ch):
            return False
        i += step
    return True


def _resolve_overlaps(flags: list[Flag]) -> list[Flag]:
    """Per category keep the most severe, then longest, of overlapping flags; categories never hide each other,
    except that a hit of the broad public lists (`lex.houbb.*`) inside a curated rule's longer hit of another
    category gives way to it (国家领导人 inside 国家领导人同款 is an endorsement claim, not politics). A semantic flag
    counts as such a hit, over its whole text or sentence: the broad lists' hits in a text the layer flagged for
    another category were noise on the held-out development split (13 false flags, no true one: 双倍 as violence,
    皮炎 as porn, 入党 as politics)."""
    curated = [f.span for f in flags if not f.rule_id.startswith(_BROAD)]
    flags = [f for f in flags if not (
        f.rule_id.startswith(_BROAD)
        and any(lo <= f.span[0] and f.span[1] <= hi and hi - lo > f.span[1] - f.span[0] for lo, hi in curated)
    )]
    flags.sort(key=lambda f: (f.category, -f.severity.rank, f.span[0] - f.span[1], f.span[0]))
    kept: list[Flag] = []
    for flag in flags:
        if not any(
            k.category == flag.category and flag.span[0] < k.span[1] and k.span[0] < flag.span[1]
            for k in kept
        ):
            kept.append(flag)
    kept.sort(key=lambda f: (f.span[0], f.span[1], f.category))
    return kept
