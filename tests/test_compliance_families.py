"""Claim-family rules: each flags the general shape of its family and stays quiet on the negated or ordinary
wording next to it (rules only, so a semantic flag cannot stand in for a missing rule)."""

from __future__ import annotations

import pytest

from copilot.compliance import ComplianceChecker


@pytest.fixture(scope="module")
def rules() -> ComplianceChecker:
    return ComplianceChecker(packs=("general",), semantic=False)


@pytest.mark.parametrize(
    ("rule_id", "risky", "ordinary"),
    [
        ("edu.guarantee_shape", "孩子在我们这补三个月，保证提二十分", "我们不能保证提分，主要看孩子的投入"),
        ("edu.guarantee_shape", "冲刺班稳进市重点，进不了全额退", "孩子进了市重点，我们也替您高兴"),
        ("fin.guarantee_shape", "这只票下周肯定涨，现在上车", "下个月奶粉肯定涨价，您要囤的话这周下单"),
        ("fin.guarantee_shape", "放心投，亏了公司给您兜底", "基金过去的业绩不代表以后，亏了也要自己承担"),
        ("promise.result_refund", "这款瘦身茶喝半个月，瘦不下来退钱", "这款面霜效果因人而异，七天内可以退"),
        ("promise.result_refund", "孩子用了完全无刺激，放心", "我们不能保证百分之百不过敏，建议先试用小样"),
        ("promise.outcome", "这款奶粉喝了保证长高", "要保证睡眠充足，孩子才长得高"),
        ("promise.outcome", "坚持用一定会好转的，包你瘦十斤", "喝了一定能长高吗？"),
        ("promise.outcome", "用了我们的面霜保证一周美白", "我们不能保证一定能美白，因人而异"),
        ("med.outcome_shape", "这款钙片吃三个月，能长高5厘米", "孩子长高了两厘米，裤子要换大一码了"),
        ("med.outcome_shape", "泡脚包连泡七天，体内湿气全排掉", "这个泡脚包是艾草的，冬天泡着暖和"),
        ("superstition.fortune", "您八字缺水，买这款黑曜石补一补运势", "八字还没一撇呢，先看看款式"),
        ("fraud.authority_shape", "我是派出所的，你涉嫌一起诈骗案，配合调查", "我们的理赔流程是在官方小程序提交，不需要转账"),
        ("offplat.channel_shape", "有事直接打我私人手机，别在这聊", "有问题就在这里直接问我，我一直在线"),
        ("sens.harm_shape", "那家伙再来找麻烦，我就拿刀砍他", "刀具我们不卖，只卖厨房的收纳架"),
        ("porn.solicit_shape", "约吗？房已经开好了", "我们约个时间，周六上午视频给您讲一下用法"),
        ("harass.sexual_shape", "发几张你穿睡衣的照片给我看看", "这款睡衣面料是纯棉的，孩子穿着舒服"),
        ("political.assembly_shape", "有人在群里转发境外网站的帖子", "周末广场上有亲子集市，可以带孩子去"),
        ("abs.no_peer", "这款面霜在保湿里算天花板了", "家里天花板漏水了，这两天收货不方便"),
        ("abs.of_all", "旗舰中的旗舰，这台扫地机把能加的功能全加上了", "我们中的我们这个说法是歌词，这台扫地机是旗舰款"),
        ("abs.of_all", "蛋白粉里的爱马仕，高端到顶了", "这个包是爱马仕的配色，蛋白粉我们另外有"),
        ("offplat.elsewhere", "加个电报吧，TG上说话没人管，价格我给你放低", "钉钉是我们内部办公用的，您有事还是在这边找我哈"),
        ("offplat.elsewhere", "我们用WhatsApp联系吧，这边公司会看聊天记录", "这事板上钉钉了，周三准时发货"),
        ("offplat.elsewhere", "球球 827364519 私聊详谈", "订单号 827364519 已经发货了"),
        ("offplat.elsewhere", "佳微 nuomi0817 有内部券", "这款是 shop 会员价，V2 会员再减五元"),
        ("offplat.elsewhere", "跟公司说您取消订单，我这边私下按原价八折卖您", "这单我按会员价给您算，官方小程序下单就行"),
        ("comp.accuse", "F家的面霜用完满脸闭口，我们群里好几个姐妹都中招了", "您之前用的那个牌子面霜也挺好的，换不换都行"),
        ("comp.accuse", "他们老板欠了一屁股债，随时卷钱跑路，您那张卡悬了", "他们家的会员卡也能在我们这儿用积分抵扣"),
        ("med.recovery", "穿我们的护腰，腰痛第二天就好一大半", "腰痛这两天好一大半了吗？护腰还合适吧"),
        ("med.gone", "猫咪尿闭、尿血的，换我们的泌尿处方粮，结石能溶掉", "湿疹要遵医嘱用药，好利索之前先别换沐浴露"),
        ("comp.accuse", "X 宝上那种几十块的护眼灯，频闪严重，孩子用了眼睛更差", "我们的护眼灯在 X 宝上也有官方旗舰店，价格一样"),
        ("lex.off_platform", "猫粮这种小东西就别走系统了，钱直接交给我", "猫粮在官方小程序下单，系统会自动发优惠券"),
        ("offplat.channel_shape", "pdd 上我们也有店，价格更低", "京东上卖299，我们这边活动价269"),
        ("offplat.channel_shape", "狗东上那家是我朋友开的，报我名字给您再打九折", "报我名字就行，前台会给您登记"),
        ("offplat.channel_shape", "您去某音直播间拍，价格比这里低", "某音上的视频是我们拍的使用教程，您可以看看"),
        ("offplat.elsewhere", "➕V shop8899 有内部价", "V2 会员 shop8899 积分可以抵扣"),
        ("offplat.elsewhere", "寇寇 382910234 私聊", "订单 382910234 已经发出"),
        ("offplat.elsewhere", "有事加我卫星，这边不方便", "卫星发射成功了，新闻上说的"),
        ("offplat.elsewhere", "微同号，搜一下就能加", "订单号和手机号对得上，已经帮您登记"),
        ("offplat.elsewhere", "加下我的v，发你内部价", "加下我的vip会员，积分翻倍"),
        ("comp.disparage", "汤臣倍健的钙片都是假货，别给孩子吃", "汤臣倍健的钙片卖199，我们这款159"),
        ("comp.disparage", "戴森那个吹风机就是智商税", "戴森的吹风机也挺好，看您预算"),
        ("offplat.private_party", "月子餐的尾款给我侄女就行，她就在你们小区", "月子餐的尾款在小程序订单里补，我侄女也在那边订的"),
        ("offplat.private_party", "好评的话私下给您退点钱哈", "退款请在订单页面申请，别相信任何私下退款"),
        ("offplat.private_party", "在这下单系统会记录，走我这边就查不到", "这边下单系统会记录，售后也有保障"),
        ("offplat.private_party", "这个保险的保费您交给我，我帮您代缴", "保费在官方渠道缴纳，我可以提醒您缴费日期"),
        ("comp.accuse", "yl 家的儿童牙膏含氟量超了，小孩吞下去不好", "yl 家的儿童牙膏我们也有卖，含氟量都标在盒子上"),
        ("comp.accuse", "那几个直播带货的牌子，质检报告一张都拿不出来", "那几个牌子的质检报告我们也能帮您查，官网都有"),
        ("med.gone", "失眠的人晚上吃两颗，沾枕头就着", "失眠好几年了，有什么办法吗"),
        ("med.function", "学习压力大的孩子喝这个核桃饮，提高记忆力", "核桃饮是早餐饮品，没有提高记忆力的作用"),
        ("med.function", "这款月子茶催奶效果很好，奶水足", "这个月子茶是普通代用茶，没有催奶的作用"),
        ("med.function", "这款茶降压降脂，老人天天喝", "我妈吃降压药的，这个茶能一起喝吗"),
        ("med.function", "红糖姜茶暖宫调经，姐妹们冲起来", "红糖姜茶是冲饮，姜味比较重"),
        ("med.gone", "鼻塞的时候一喷就通", "鼻塞的话先去医院看看"),
        ("med.gone", "宝宝屁股上的疹子抹了这个第二天就没了", "宝宝屁股上的疹子是什么时候出的？"),
        ("med.gone", "这款铁剂吃两周，宝宝贫血就纠正了", "宝宝贫血的话先查一下血常规"),
        ("med.gone", "这个颈椎枕用了一个礼拜，颈椎病再没犯过", "颈椎病犯了的话先去医院看看"),
        ("med.gone", "胃溃疡的客户坚持下来都养好了", "胃溃疡要按时吃药，医生交代的饮食也要注意"),
        ("med.gone", "老寒腿的顾客泡完三回就缓过来了", "老寒腿的话冬天还是要注意保暖"),
        ("med.cure", "这款桑葚茶饭后喝一杯，稳血糖", "这款桑葚茶饭后喝一杯，酸甜口的"),
        ("offplat.side_deal", "我抖音上也开了个小店，同款便宜二十", "抖音上的直播回放我们官方号都有，您可以去看"),
        ("offplat.side_deal", "想拿员工价的私信我，名额不多", "员工价只有内部员工能用，我们这边是会员价"),
        ("offplat.side_deal", "定金别交给前台了，先放我这儿", "定金在前台交，收据请您收好"),
        ("offplat.side_deal", "公司流程太慢，咱俩直接交易吧", "公司流程我帮您催一下，今天能审完"),
        ("offplat.side_deal", "这个价只能私底下给您，别声张", "私底下问了几个老客户，都说这款好用"),
        ("offplat.side_deal", "不开票的话能便宜一百，您考虑下", "发票在订单完成后自动开，电子版在订单页下载"),
        ("comp.accuse", "某些进口大牌奶粉，懂的都懂，我就不多说了", "某些进口奶粉我们也有代理，您可以比比配方"),
        ("comp.accuse", "他们那套装修报价里藏了一堆隐形消费", "他们那套装修报价我看过，和我们差不多"),
        ("comp.smear_other", "外面好多店的蜜蜡都是压制料冒充的", "外面好多店也卖蜜蜡，您可以多比比"),
        ("comp.smear_other", "小区门口那家健身房没证，卫生一塌糊涂", "小区门口那家健身房周末人挺多的"),
        ("med.medicine_given_up", "睡了一个月我们的助眠枕，阿普唑仑都不用吃了", "医生开的阿普唑仑记得按时吃，枕头只是睡得舒服些"),
        ("med.drug_rival", "孩子喝了三个月我们的营养粉，比打生长激素便宜多了", "生长激素要不要打，请听内分泌科医生的"),
        ("med.medicine_given_up", "静脉曲张穿我们的压力袜三个月，手术可以不做", "静脉曲张做不做手术，要看血管外科的评估"),
        ("med.gone", "扁平足穿半年我们的鞋就正过来了", "扁平足的孩子穿鞋要选鞋底稍硬一点的"),
        ("med.testimony_shape", "有个孩子用了半年护眼灯，散光从150度降到50度", "孩子散光150度的话，要定期去医院复查"),
        ("med.health_necessity", "孕妇必须吃我们的DHA，不然孩子智力发育跟不上", "孕妇要不要补DHA，可以问问产检医生"),
        ("med.health_necessity", "我们的产品对失眠有很好的效果", "早睡早起对失眠有很大的帮助哦"),
        ("med.efficacy_rate", "这款贴有效率高达98%，好多宝妈反馈", "这款贴的好评率是98%，您可以看看评价"),
        ("comp.smear_other", "直播间那些低价燕窝基本都是糖水兑的", "直播间那些款我们店里也有，价格一样"),
        ("med.gone", "这款收腹带产后用，腹直肌分离能恢复", "腹直肌分离的话要去医院评估"),
        ("med.cure", "这款喷雾对过敏性鼻炎有奇效", "这款喷雾是生理海盐水，用来清洁鼻腔"),
        ("med.cure", "我们的保健品可以代替药物，慢慢就不用吃药了", "保健品不能代替药物，药还是要按时吃"),
        ("med.skin_condition", "这款眼霜是医学级修复，黑眼圈都能淡", "这款眼霜是普通保湿眼霜，质地比较清爽"),
        ("med.function", "我们的DHA能开发大脑，学龄前宝宝正合适", "DHA的含量每100克是80毫克"),
        ("med.function_paraphrase", "这款奶粉喝了，孩子智力明显提高", "孩子最近成绩提高了，您也放心了"),
        ("med.outcome_shape", "我们的钙片能让孩子长高十公分", "孩子今年长高了十公分，衣服都小了"),
        ("med.outcome_shape", "这款手环戴久了，血压还能降下来", "这款手环能测血压，数据同步到手机"),
        ("med.recovery", "这款褪黑素软糖比安眠药还好用", "褪黑素和安眠药不一样，用法请问医生"),
        ("offplat.channel_shape", "您转账到这个账户，户名是我本人", "付款页面的收款方是我们公司全称，您可以核对一下"),
        ("offplat.channel_shape", "不方便在这里讲，晚上我用自己手机给你打电话", "有问题就在这里说，我都在"),
        ("offplat.channel_shape", "不用在这里付款，线下见面给现金也可以", "门店线下也可以付款，支持刷卡"),
        ("offplat.channel_shape", "这周的课改到腾讯会议上，学费私下收", "谁私下收客户的钱，公司直接开除"),
        ("offplat.channel_shape", "关注下我的视频号，直播间里下单有隐藏价", "我们品牌的视频号每周三直播，您可以看看"),
        ("offplat.channel_shape", "在我这拿比在店里便宜，别让别人知道", "在店里买和在小程序买是一个价"),
        ("offplat.channel_shape", "给你发个拼团链接，不是我们官方的，但是便宜很多", "这个链接是我们官方小程序的拼团"),
        ("offplat.channel_shape", "想要赠品的话，去我们另外的抖店下单", "赠品在官方小程序下单就会自动送"),
        ("offplat.channel_shape", "平台退款太慢了，我直接微信退你吧", "退款会原路退回您的微信零钱"),
        ("offplat.channel_shape", "我在某鱼上挂了个链接，你去那拍", "我们没有在闲鱼上卖货，看到的都不是我们"),
        ("offplat.transfer", "公司的单子利润太低，我们私下做吧", "私下交易没有保障，我们都在官方下单"),
        ("offplat.personal_channel", "课程卡别在官网买，我手里有转让的", "课程卡在官网买就行，有发票"),
        ("offplat.channel_shape", "这事别让公司知道，咱们私下安排", "这事我跟公司报备一下，再给您安排"),
        ("offplat.channel_shape", "这单不入系统，提成我就不用分给公司了", "这单已经录入系统，明天发货"),
        ("offplat.channel_shape", "领导会翻聊天记录，后面的事换地方谈", "我在这里回复就可以，不需要换地方聊"),
        ("offplat.channel_shape", "这个号是公司的，私人的那个我平时回得快", "这个号就是我的工作号，有事都在这里找我"),
        ("offplat.channel_shape", "安装尾款直接给师傅现金就行", "安装尾款在小程序里付，师傅不收现金"),
        ("offplat.channel_shape", "钱打我家那口子的zhifubao上，一样的", "付款方式支持微信支付和银行卡"),
        ("offplat.channel_shape", "嫌运费贵的话，可以去我朋友那家拿，同一个仓的货", "嫌运费贵的话，满99就包邮"),
        ("offplat.channel_shape", "晚点我们QQ上说，这里不好展开", "我们的客服电话在官网上能查到"),
        ("offplat.contact", "加v吧，这边回得慢", "这个号就是工作号，没有其他私人号"),
        ("offplat.channel_shape", "能私下搞一单不，价格好商量", "私下交易不行哦，公司规定"),
        ("med.treat", "这款猫粮能治猫咪泪痕和软便", "这个益生菌是食品，不是药，不能治病哦"),
        ("med.cure", "这款营养包能帮腺样体缩小，不用做手术", "腺样体要不要做手术，请听医生的"),
        ("med.outcome_shape", "这是客户的化验单，胆固醇喝完就能降下来", "化验单上转氨酶是120，建议您复查"),
        ("med.function_paraphrase", "孩子吃了两个月益生菌，再也没去过医院", "孩子吃益生菌期间发烧了，及时去医院"),
        ("offplat.bypass_shape", "保洁阿姨我私下帮你介绍，不经过公司能省中介费", "保洁阿姨由公司统一派单，有保险"),
        ("offplat.bypass_shape", "这个拼团是我自己张罗的，跟公司没关系", "这个拼团是公司官方组织的，小程序里能看到"),
        ("offplat.bypass_shape", "开票的话走我自己那条渠道，便宜一点", "开票走公司财务，三个工作日内开好"),
        ("offplat.bypass_shape", "尾款我给您手写张收据就行", "尾款付完系统会自动发电子发票"),
        ("offplat.bypass_shape", "先别在小程序拍，找我这边拿更便宜", "先别急着拍，等周五小程序有满减"),
        ("offplat.bypass_shape", "这个工作号要注销了，您存一下我私人的", "这个工作号一直用，您有事随时找我"),
        ("offplat.bypass_shape", "门店那批货我自己的淘宝店也有卖，去那拍", "门店那批货官方旗舰店也有卖，同价"),
        ("competitor.smear_shape", "那家的爬爬垫被检出含塑化剂，别给宝宝用", "我们家的爬爬垫从未检出过塑化剂，报告可以发您"),
        ("competitor.smear_shape", "隔壁超市的牛肉是注水肉，一煮就缩", "隔壁超市的牛肉也是冷鲜的，各有各的渠道"),
        ("competitor.smear_shape", "那家早教中心的老师大多没有教师资格证", "我们的老师都有教师资格证，可以给您看"),
        ("med.testimony_shape", "我一个客户喝了半年，降糖药都停掉了", "降糖药要不要停请一定听医生的"),
        ("med.testimony_shape", "用了这款洗液，妇科都不用去了", "有炎症的话还是要去妇科看看"),
        ("med.testimony_shape", "老客户的血脂喝了三个月降到4点几", "血脂偏高的话建议先去医院查一下"),
        ("med.testimony_shape", "这个艾灸仪比去医院做理疗还管用", "这个艾灸仪是日常保暖用的，不是医疗器械"),
        ("med.drug_rival", "这款鱼油比阿司匹林还安全", "鱼油不是药，阿司匹林要不要吃请问医生"),
        ("med.drug_rival", "菊粉就是天然的降糖药，早上冲一杯", "菊粉是一种天然的膳食纤维，早上冲一杯"),
        ("med.drug_rival", "这款叶黄素能修复视神经", "视神经的问题要去眼科查，叶黄素只是营养补充"),
        ("med.drug_rival", "我妈喝了半年，老花镜都不用戴了", "老花镜我们店也能配，验光免费"),
        ("med.gone", "过敏性鼻炎喷了几天就不打喷嚏了", "鼻炎犯了打喷嚏多，要去耳鼻喉科看看"),
        ("med.gone", "宝宝的湿疹一抹就好，您放心", "宝宝的湿疹还没好的话，先别换新的面霜"),
        ("med.recovery", "用了我们的护臀霜，宝宝就不起红屁屁了", "勤换尿布，宝宝就不容易起红屁屁"),
        ("comp.accuse", "他们家的白酒都是勾兑的，喝了上头", "他们家的白酒我也喝过，口感偏甜"),
        ("comp.accuse", "那个代购的面霜来路不明，您小心点", "那个代购的面霜我们也有，可以对比一下成分"),
        ("comp.accuse", "别家说的续航是虚假宣传，根本跑不到", "别家说的续航是工况数据，我们的也是这么标的"),
        ("comp.accuse", "那个蓝色包装的奶粉，喝了就是交智商税", "那个蓝色包装的奶粉是我们的新品，喝着偏淡"),
        ("comp.accuse", "他们家的扫地机就是辣鸡，三天两头卡住", "他们家的辣鸡腿挺好吃的，我们这边没有卖"),
        ("comp.accuse", "隔壁那家健身房老板卷款跑了", "隔壁那家健身房老板人挺好的"),
        ("comp.accuse", "戴森那款吹风机的做工真不敢恭维，缝隙大得吓人", "戴森那款吹风机的做工挺好，就是贵一些"),
        ("comp.accuse", "海尔的售后现在就是踢皮球，修不好还收上门费", "海尔的售后也是上门安装，和我们差不多"),
        ("comp.accuse", "那家月子会所网上的好评，一半是托儿写的", "他们家旁边新开了一个托儿所，接送挺方便"),
        ("comp.accuse", "他们家去年被投诉了二十多次，您自己掂量", "他们家的投诉电话是400开头的，我发给您"),
        ("comp.accuse", "那个净水器牌子的滤芯，前阵子被曝出来用的是回收料", "那个净水器牌子我们也能装，滤芯通用"),
        ("comp.accuse", "那些二手车商卖的好多是事故车，您当心", "那些二手车商我们也合作过，车源挺多"),
        ("comp.accuse", "别家的中介最会吃差价，两头瞒", "别家的中介费和我们一样，都是百分之一"),
        ("competitor.smear_shape", "那家健身房资金链早断了，年卡别办了", "我们的资金链很稳，年卡放心办"),
        ("competitor.likeness", "他们家的床垫硬得跟木板一样，睡一晚腰就酸", "我们家的床垫软硬适中，不会硬得跟木板一样"),
        ("competitor.likeness", "别家的辅食泥稀得跟浆糊似的，宝宝不爱吃", "他们家宝宝长得跟洋娃娃一样，真可爱"),
        ("med.testimony_shape", "有位客户喝了两个月，血压从160降到130", "您上次量的血压是160，这次130，记得按时复查"),
        ("med.testimony_shape", "吃了一个疗程，糖化血红蛋白从9.2降到了6.5", "糖化血红蛋白9.2的话，要听医生的调整用药"),
        ("med.drug_rival", "官方不让写功效，不过好多糖尿病的客户都在喝", "官方不让写功效，我们就只介绍配料"),
        ("med.drug_rival", "这款眼霜去眼袋，效果跟做了手术差不多", "眼袋要做手术的话，请去正规医院咨询"),
        ("med.gone", "我们的学员练了三个月，高血压都降了", "高血压的学员，运动前先问问医生"),
        ("harass.insult_pattern", "妈的，跟你说了几遍了还问", "我妈的体检报告出来了，结节不大"),
        ("harass.insult_pattern", "一天到晚问问问，烦死了妈的", "她妈的生日快到了，想挑个礼物"),
    ],
)
def test_a_family_rule_flags_its_shape_and_not_the_ordinary_wording(
    rules: ComplianceChecker, rule_id: str, risky: str, ordinary: str
) -> None:
    assert rule_id in {f.rule_id for f in rules.check(risky).flags}
    assert rule_id not in {f.rule_id for f in rules.check(ordinary).flags}


@pytest.mark.parametrize(
    ("text", "quiet_rule"),
    [
        ("这件羊毛衫成分是100%美利奴羊毛，手洗或者干洗都行", "abs.percent"),
        ("亲，我们不承诺疗效哈，这款就是日常保湿", "med.cure"),
        ("这个价已经快贴着保本线了，真的再低不了", "fin.guarantee"),
        ("这个题型去年考过，我们课上讲思路，不是押题哈", "edu.leaked_questions"),
        ("这条围巾是100%山羊绒的，比上一季厚一点", "abs.percent"),
        ("暖宝贴就是贴着暖和，没有什么治疗作用哈", "med.treat"),
        ("钙片是膳食补充剂，不能代替药物治疗骨质疏松", "med.treat"),
        ("该研究显示，这种新药的总有效率达到85%", "med.efficacy_rate"),
        ("这款面霜不含药效成分，放心用", "lex.ad_medical"),
        ("我妈的体检报告出来了，结节不大", "harass.insult"),
    ],
)
def test_context_exceptions_keep_ordinary_sales_talk_quiet(rules: ComplianceChecker, text: str, quiet_rule: str) -> None:
    assert quiet_rule not in {f.rule_id for f in rules.check(text).flags}


@pytest.mark.parametrize(
    ("warning", "practice", "category"),
    [
        ("让您转我支付宝的都是骗子", "转我支付宝就行", "off_platform"),
        ("说用了绝对有效的都是假的，效果因人而异", "用了绝对有效", "false_promise"),
        ("这款不敢跟您保证绝对有效", "这款绝对有效", "false_promise"),
        ("网上说的包过班千万别信", "我们这个班包过", "ad_education"),
        ("请不要转到任何私人账户上", "钱转到我私人账户上", "off_platform"),
        ("广告法规定不能说销量第一", "我们这款销量第一", "ad_absolute"),
        ("这款乳液主要是保湿的，祛痘的话得找医生开药", "这款乳液祛痘", "ad_medical"),
        ("鱼油是普通食品，降血脂的话要遵医嘱", "这款鱼油降血脂", "ad_medical"),
        ("长个子主要还是靠营养和睡眠，钙片只是补充", "这款钙片帮助长个子", "ad_medical"),
        ("赌博害人，家里有人沉迷一定要劝", "来我们平台赌博", "sensitive_gambling"),
        ("有人在群里发赌博链接，已经踢出去了", "群里有赌博链接，快来", "sensitive_gambling"),
        ("治疗期间能不能吃这个，建议您问下主治医生", "这个能治疗湿疹", "ad_medical"),
        ("这款生发液主要是清洁，脱发严重要看医生", "这款生发液治疗脱发", "ad_medical"),
        ("押题这种事我们不做，老老实实复习", "我们押题很准", "ad_education"),
        ("这款理财不是保本保收益的，可能会亏", "这个产品保本保息", "ad_finance"),
        ("学校不会让家长转到个人账户", "学费转到我个人账户", "off_platform"),
        ("我们客服不会问您要验证码", "请把验证码发给我", "fraud"),
        ("遇到自称领导让转账的，先打电话核实", "我是你领导，先转两万到这个账户", "fraud"),
        ("口红有试色图，我发您", "发你几张色图", "sensitive_porn"),
        ("要是有人自称店长让您加他私人微信，先来问我", "加我私人微信，下单便宜点", "off_platform"),
        ("我们不会叫您把钱转到谁的个人账户", "钱直接转到我个人账户就行", "off_platform"),
        ("门店不会通过个人收款码收定金", "定金扫我个人收款码", "off_platform"),
    ],
)
def test_warnings_and_hedges_are_not_the_practice_they_name(
    rules: ComplianceChecker, warning: str, practice: str, category: str
) -> None:
    assert category in rules.check(practice).categories
    assert category not in rules.check(warning).categories


@pytest.mark.parametrize(
    ("claim", "ordinary"),
    [
        ("这个钥匙扣是招财的，装钱包里钱越来越多", "这个招财猫是摆件造型，做工挺可爱的"),
        ("八卦镜挂在阳台上，煞气都给挡回去", "阳台挂个晾衣架，衣服干得快"),
        ("聚宝盆放在财位上，聚财不漏财", "聚宝盆是个存钱罐，孩子挺喜欢"),
        ("新房住进去前放这个，能把晦气去掉", "今天快递丢了，真是晦气"),
        ("这串手链戴上，身上的霉运一扫而光", "最近真是霉运连连，买的快递都丢了"),
        ("孩子夜里哭闹，枕头底下放一包压惊米就安稳了", "快递丢了别着急，先喝杯奶茶压压惊，我给您补发"),
        ("剖腹产我们帮您算吉时，孩子出生就带福气", "婚礼吉时定在十一点十八分，花车我们九点到"),
    ],
)
def test_superstition_claim_words_flag_the_claim_not_the_object(
    rules: ComplianceChecker, claim: str, ordinary: str
) -> None:
    assert "ad_superstition" in rules.check(claim).categories
    assert "ad_superstition" not in rules.check(ordinary).categories


def test_placing_a_talisman_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    # No 这款/买/您 in sight: the placement itself is the pitch, so the ad-claim gate must let the claim through.
    assert "ad_superstition" in rules.check("放在床头能镇宅，晚上睡得踏实").categories
    assert "ad_superstition" not in rules.check("镇宅是古代建筑里的一种说法").categories


@pytest.mark.parametrize(
    ("question", "claim"),
    [
        ("这个奶粉能让宝宝少生病吗？", "这个奶粉能让宝宝少生病"),
        ("这个面霜用了能祛痘吗？", "这个面霜用了能祛痘"),
        ("这款钙片能帮助长个子吗？", "还在为宝宝长不高发愁吗？这款钙片帮助长个子"),
    ],
)
def test_a_customer_asking_what_a_product_can_do_makes_no_claim(
    rules: ComplianceChecker, question: str, claim: str
) -> None:
    assert "ad_medical" in rules.check(claim).categories
    assert "ad_medical" not in rules.check(question).categories


def test_a_drafts_rhetorical_hook_is_not_read_as_a_customer_question() -> None:
    from copilot.compliance.checker import _only_questions

    assert _only_questions("用了会不会过敏？") and _only_questions("这个能治湿疹吗😊")
    assert not _only_questions("想一个月瘦十斤吗？")  # a hook: the claim stays
    assert not _only_questions("两会代表都在用的护肝片，您说质量能差吗")  # the claim comes before the question
    assert not _only_questions("这个能治湿疹吗？能的，放心用")  # the answer makes the claim


@pytest.mark.parametrize(
    ("ordinary", "listed"),
    [
        ("那来两包夜安L码试试", "今晚包夜多少钱"),
        ("白小姐早～昨天问您脸红的情况，方便的时候说说就好", "六合彩白小姐特码今晚开"),
    ],
)
def test_a_listed_term_inside_ordinary_words_is_not_flagged(ordinary: str, listed: str) -> None:
    checker = ComplianceChecker(packs=("general",), semantic=False)
    assert checker.check(listed).flags
    assert not checker.check(ordinary).flags


def test_pointing_at_one_item_or_naming_goods_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    # No 这款/买/您: 这台 points at the item on sale, and a vacuum cleaner is goods, not a topic of prose.
    assert "ad_absolute" in rules.check("地表最强的儿童安全座椅，认准这台就对了").categories
    assert "ad_absolute" in rules.check("史上最牛的吸尘器，吸力大得能把地毯吸起来").categories
    assert "ad_absolute" not in rules.check("唐朝是中国历史上最强盛的朝代之一").categories
    assert "ad_absolute" not in rules.check("长江是中国第一长河，全长约六千三百公里").categories


def test_a_dose_or_a_remedy_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    # No 这款/买/您: a dose (每天一勺) or a remedy sold as goods (蜂胶, 减肥茶) is selling; a disease explained is not.
    assert "ad_medical" in rules.check("每天一勺蜂胶，慢性咽炎慢慢就断根了").categories
    assert "ad_medical" in rules.check("减肥茶不只是瘦，还能降血脂、治脂肪肝，一举两得").categories
    assert "ad_medical" not in rules.check("抑郁症是一种常见的心理疾病，通过规范治疗大多可以缓解。").categories


def test_using_a_remedy_or_telling_of_customers_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    # No 这款/买/您: lying on a mattress for a month or the students who practised is how a remedy is sold; a therapy
    # named in prose is not.
    assert "ad_medical" in rules.check("学员跟着练两周，失眠都能改善").categories
    assert "ad_medical" in rules.check("磁疗床垫躺一个月，腰腿疼都能缓解").categories
    assert "ad_medical" not in rules.check("针灸在一些国家被用来缓解偏头痛").categories


@pytest.mark.parametrize("question", ["阿姨的腿疼治好了吗？天冷注意保暖", "宝宝的湿疹好转了没，上次说要去复查"])
def test_asking_whether_an_illness_got_better_is_no_claim(rules: ComplianceChecker, question: str) -> None:
    # A caring question followed by other words is not only questions, so the rules themselves leave 了吗 and 了没
    # alone.
    assert "ad_medical" not in rules.check(question, sales=True).categories


def test_goods_a_remedy_comes_as_or_a_use_that_acts_at_once_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    # No 这款/买/您: a remedy named by its form (大豆肽, 护理液) or used once to act (一擦, 洗几次) is being sold; a
    # treatment described in prose is not.
    assert "ad_medical" in rules.check("大豆肽降血糖，效果看得见").categories
    assert "ad_medical" in rules.check("脚气一擦就好，连擦三天").categories
    assert "ad_medical" not in rules.check("降血糖的药物有很多种，作用机制各不相同").categories


def test_a_staff_send_is_sales_talk_without_sales_wording(rules: ComplianceChecker) -> None:
    # The gate that keeps 第一/治疗 in prose quiet does not apply to what staff send a customer.
    assert "ad_medical" in rules.check("部分湿疹可以根治", sales=True).categories
    assert "ad_medical" not in rules.check("部分湿疹可以根治").categories
    assert "ad_absolute" in rules.check("长江是中国第一长河", sales=True).categories


@pytest.mark.parametrize(
    "ordinary",
    [
        "增高鞋垫有两厘米和三厘米的，软硅胶不累脚",  # a product's name, not a claim
        "益智卡片是双面印刷的，边角做了圆角处理",
        "万能险的结算利率每个月公布",
        "今天直播间讲的是婴儿抚触，不涉及任何治疗",  # a denial
        "保健品不能代替治疗",
        "长个子主要看遗传、睡眠和营养",  # advice
        "上次演唱会抢票抢疯了哈哈",
    ],
)
def test_staff_small_talk_with_claim_words_is_not_a_claim(rules: ComplianceChecker, ordinary: str) -> None:
    assert not rules.check(ordinary, sales=True).categories & {"ad_medical", "ad_absolute"}


def test_a_named_accusation_stands_beside_a_neutral_word(rules: ComplianceChecker) -> None:
    # 差不多/不了解 only overrule the model's guess: a rule that found the accusation itself keeps its flag.
    assert "competitor" in rules.check("那家宠物粮的厂子我去过，车间跟猪圈差不多").categories
    assert "competitor" in rules.check("他们家的益生菌都是假货，我不了解别的，这个我清楚").categories


def test_ranking_a_product_among_others_counts_as_sales_wording(rules: ComplianceChecker) -> None:
    assert "ad_absolute" in rules.check("业内公认的天花板级别，没有之一").categories
    assert "ad_absolute" not in rules.check("珠穆朗玛峰是世界第一高峰").categories


@pytest.mark.parametrize(
    ("denied", "claimed", "category"),
    [
        ("我们不敢说这款面霜是最好的，口碑还可以", "这款面霜是最好的", "ad_absolute"),
        ("它不算全网最便宜的，但是正品", "这款是全网最便宜的", "ad_absolute"),
        ("这套茶具不是特供产品，就是普通款", "这套茶具是特供产品", "ad_endorsement"),
        ("店里没有好评返现，您照实评价", "好评返现五元，截图给我", "review_cashback"),
    ],
)
def test_a_claim_the_text_itself_denies_is_not_flagged(
    rules: ComplianceChecker, denied: str, claimed: str, category: str
) -> None:
    assert category in rules.check(claimed).categories
    assert category not in rules.check(denied).categories


def test_a_denial_elsewhere_in_the_text_does_not_excuse_the_claim(rules: ComplianceChecker) -> None:
    # Only the words just before the claim can deny it: 不是吹 after it, or a denial of something else, cannot.
    assert "ad_absolute" in rules.check("这款是最好的，不是吹").categories
    assert "ad_absolute" in rules.check("不是我夸，咱家这款奶粉在同类里是最好的").categories


@pytest.mark.parametrize(
    ("dismissed", "referral"),
    [
        ("维生素D滴剂可以治佝偻病，不用去医院", "维生素D滴剂能不能治佝偻病，还是要去医院问医生"),
        ("吃这个羊奶粉，湿疹不用看医生也能好", "湿疹用了这个霜没好的话，要看医生"),
        ("这款益生菌能缓解肠绞痛，省得跑医院", "缓解肠绞痛的办法，儿科医生会教您"),
        ("这个狗粮能治泪痕，不用再去宠物医院开药", "狗狗泪痕严重的话，要去宠物医院看看"),
    ],
)
def test_a_doctor_waved_away_is_no_referral(rules: ComplianceChecker, dismissed: str, referral: str) -> None:
    # Near a cure claim, 去医院 and 看医生 excuse it as advice; 不用去医院 makes the claim stronger instead.
    assert "ad_medical" in rules.check(dismissed, sales=True).categories
    assert "ad_medical" not in rules.check(referral, sales=True).categories


@pytest.mark.parametrize(
    "warning",
    [
        "提醒您：请勿向任何员工个人账户转账，付款认准官方收银台",
        "请不要添加自称是我们员工的个人微信，官方只通过企业微信联系",
        "我们的老师不可以私下收费，课时费请在前台交",
    ],
)
def test_a_warning_against_paying_or_adding_staff_privately_is_no_off_platform_move(
    rules: ComplianceChecker, warning: str
) -> None:
    assert "off_platform" not in rules.check(warning).categories


def test_a_question_asking_to_deal_privately_is_not_read_as_a_warning(rules: ComplianceChecker) -> None:
    assert "off_platform" in rules.check("教练不可以私下收费吗？钱转我支付宝就行", sales=True).categories


def test_an_a_not_a_question_is_no_denial(rules: ComplianceChecker) -> None:
    # 能不能加您私人微信 asks for the move; 不能加私人微信 refuses it.
    assert "off_platform" in rules.check("老师能不能加您私人微信？想单独约课").categories
    assert "off_platform" not in rules.check("老师不能加私人微信哦，有事在这边说就行").categories


@pytest.mark.parametrize(
    ("appointment", "proposition"),
    [
        ("你们那边做水光要提前约吗", "约吗？房已经开好了"),
        ("明天临时有事，能改约吗", "美女约吗，今晚有空"),
        ("洗澡要预约吗，泰迪", "帅哥约不约"),
        ("周六上午的私教课还能约吗", "小姐姐约吗😏"),
    ],
)
def test_booking_an_appointment_is_not_a_proposition(
    rules: ComplianceChecker, appointment: str, proposition: str
) -> None:
    """约吗 after a verb or a time books a slot; standing alone or after an address it is a proposition."""
    assert "porn.solicit_shape" not in {f.rule_id for f in rules.check(appointment).flags}
    assert "porn.solicit_shape" in {f.rule_id for f in rules.check(proposition).flags}


@pytest.mark.parametrize(
    ("across_words", "term", "category"),
    [
        ("宝宝今天医生说没事了", "这串手链带天医磁场，旺事业", "ad_superstition"),  # 今天|医生, not 天医
        ("出差带单片装的面膜方便", "老师带单，稳赚不赔", "fraud"),  # 带|单片, not 带单
    ],
)
def test_a_list_term_spelled_across_two_words_is_no_hit(
    rules: ComplianceChecker, across_words: str, term: str, category: str
) -> None:
    assert category not in rules.check(across_words, sales=True).categories
    assert category in rules.check(term, sales=True).categories
