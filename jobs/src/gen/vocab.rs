//! The generator's vocabulary: real data embedded from `jobs/data/`, the
//! brand knowledge base built from it, and the evasion catalogue.

use std::collections::HashMap;

pub const TITLES_TSV: &str = include_str!("../../data/product_titles_train.tsv");
pub const BRANDS_TSV: &str = include_str!("../../data/brands_en_zh.tsv");
/// Real spam (as sent): a pool of characters people write, for homophones.
pub const SPAM_TSV: &str = include_str!("../../data/spam_variant_pairs_train.tsv");

/// Categories used for listings and brand price floors.
pub const CATEGORIES: &[&str] = &[
    "箱包",
    "鞋靴",
    "服饰",
    "手表",
    "手机",
    "配饰",
    "美妆",
    "手机配件",
    "玩具",
    "食品",
    "家居",
    "数码",
    "其他",
];

/// A real title with the category inferred from its words.
pub struct RealTitle {
    pub title: String,
    pub category: &'static str,
}

pub fn real_titles() -> Vec<RealTitle> {
    TITLES_TSV
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').nth(1))
        .filter(|t| t.chars().count() >= 4)
        .map(|t| RealTitle {
            title: t.to_string(),
            category: category_of(t),
        })
        .collect()
}

/// Infer a category from title words (the data carries no category).
pub fn category_of(title: &str) -> &'static str {
    let t = title.replace("包邮", "");
    let rules: &[(&[&str], &str)] = &[
        (
            &["手机壳", "保护套", "钢化膜", "充电", "数据线", "耳机"],
            "手机配件",
        ),
        (&["鞋", "靴"], "鞋靴"),
        (&["手表", "腕表", "表带"], "手表"),
        (&["包", "箱"], "箱包"),
        (
            &["衣", "裤", "裙", "衫", "外套", "马甲", "帽", "袜"],
            "服饰",
        ),
        (&["项链", "戒指", "手链", "耳环", "饰品", "墨镜"], "配饰"),
        (&["口红", "面膜", "香水", "精华", "护肤"], "美妆"),
        (&["手机"], "手机"),
        (&["玩具", "模型", "积木"], "玩具"),
        (&["零食", "茶", "奶粉", "特产", "蛋糕"], "食品"),
        (&["音箱", "音响", "电脑", "相机", "键盘"], "数码"),
        (&["床", "柜", "椅", "灯", "摆件"], "家居"),
    ];
    for (words, cat) in rules {
        if words.iter().any(|w| t.contains(w)) {
            return cat;
        }
    }
    "其他"
}

/// A brand of the generated knowledge base.
#[derive(Clone, Debug)]
pub struct GenBrand {
    pub id: i64,
    pub name: String,
    pub zh: String,
    pub aliases: Vec<String>,
    pub categories: Vec<&'static str>,
    pub min_price_cents: Option<i64>,
    pub protected: bool,
    pub authorized: Vec<i64>,
    /// Products this brand is counterfeited as, e.g. 手提包.
    pub products: Vec<&'static str>,
}

/// Extra aliases a knowledge base carries for well-known brands: other
/// scripts (traditional Chinese), nicknames and common misspellings.
fn known_aliases() -> HashMap<&'static str, &'static [&'static str]> {
    [
        (
            "Louis Vuitton",
            &["LV", "路易威登", "路易威頓", "驴牌", "LouisVuitton"][..],
        ),
        ("Gucci", &["古驰", "古馳", "古奇", "GUCCl"][..]),
        ("Chanel", &["香奈儿", "香奈兒", "夏奈尔"][..]),
        ("Hermes", &["爱马仕", "愛馬仕", "Hermès", "HERMES"][..]),
        ("Rolex", &["劳力士", "勞力士", "rolx"][..]),
        ("Prada", &["普拉达", "普拉達"][..]),
        ("Dior", &["迪奥", "迪奧", "christian dior"][..]),
        ("Cartier", &["卡地亚", "卡地亞"][..]),
        ("Burberry", &["博柏利", "巴宝莉", "巴寶莉"][..]),
        ("NIKE", &["耐克", "Nike"][..]),
        ("Adidas", &["阿迪达斯", "阿迪達斯", "阿迪"][..]),
        (
            "Apple",
            &["苹果", "蘋果", "iPhone", "iPad", "MacBook", "AirPods"][..],
        ),
        ("Air Jordan", &["AJ", "乔丹篮球鞋"][..]),
        ("Balenciaga", &["巴黎世家"][..]),
        ("Bvlgari", &["宝格丽", "寶格麗", "Bulgari"][..]),
        ("Samsung", &["三星"][..]),
    ]
    .into_iter()
    .collect()
}

/// Category set and floor (yuan) by brand, for the well-known ones.
fn known_profile(name: &str) -> Option<(&'static [&'static str], i64, &'static [&'static str])> {
    let bags: &[&str] = &["手提包", "单肩包", "钱包", "双肩包", "腰带", "丝巾"];
    Some(match name {
        "Louis Vuitton" | "Gucci" | "Prada" | "Hermes" | "Chanel" | "Dior" | "Balenciaga"
        | "Burberry" => (&["箱包", "服饰", "配饰"][..], 3000, bags),
        "Rolex" | "Cartier" | "Bvlgari" | "Audemars Piguet" => (
            &["手表", "配饰"][..],
            20000,
            &["手表", "腕表", "机械表"][..],
        ),
        "NIKE" | "Adidas" | "Air Jordan" => (
            &["鞋靴", "服饰"][..],
            400,
            &["运动鞋", "篮球鞋", "跑鞋", "板鞋"][..],
        ),
        "Apple" | "Samsung" => (
            &["手机", "数码"][..],
            2500,
            &["手机", "平板电脑", "笔记本电脑"][..],
        ),
        _ => return None,
    })
}

/// The knowledge base: every brand of the data, international ones protected
/// with categories, floors and 2-4 authorised sellers each.
pub fn brands(rng: &mut impl rand::Rng, authorized_pool: &[i64]) -> Vec<GenBrand> {
    use rand::seq::IndexedRandom;
    let aliases = known_aliases();
    let mut out = Vec::new();
    for (i, line) in BRANDS_TSV.lines().skip(1).enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 5 {
            continue;
        }
        let (en, zh, group) = (cols[0].trim(), cols[1].trim(), cols[4].trim());
        let protected = group == "international_brands";
        let mut al: Vec<String> = Vec::new();
        let zh_compact: String = zh.chars().filter(|c| !c.is_whitespace()).collect();
        // "阿玛尼旗下品牌" (a sub-brand of Armani) is a description, not a name.
        if !zh_compact.contains("旗下") && zh_compact.chars().count() >= 2 {
            al.push(zh_compact);
        }
        if let Some(extra) = aliases.get(en) {
            al.extend(extra.iter().map(|s| s.to_string()));
        }
        let (categories, floor, products): (Vec<&'static str>, Option<i64>, Vec<&'static str>) =
            match known_profile(en) {
                Some((c, f, p)) => (c.to_vec(), Some(f * 100), p.to_vec()),
                None if protected => (
                    vec!["箱包", "服饰", "配饰", "鞋靴"],
                    Some(rng.random_range(8..30) * 10_000),
                    vec!["手提包", "外套", "钱包", "皮鞋", "卫衣", "围巾"],
                ),
                None => (vec![], None, vec![]),
            };
        let authorized = if protected {
            let k = rng.random_range(2..=4);
            authorized_pool.choose_multiple(rng, k).copied().collect()
        } else {
            vec![]
        };
        out.push(GenBrand {
            id: 1000 + i as i64,
            name: en.to_string(),
            zh: zh.to_string(),
            aliases: al,
            categories,
            min_price_cents: floor,
            protected,
            authorized,
            products,
        });
    }
    out
}

// ---- Evasion catalogue ----------------------------------------------------

/// Replica vocabulary as sellers write it, before obfuscation.
pub const REPLICA_WORDS: &[&str] = &[
    "高仿",
    "搞仿",
    "gao仿",
    "A货",
    "超A",
    "顶级A货",
    "1:1",
    "一比一",
    "1比1",
    "复刻",
    "覆刻",
    "原单",
    "外贸原单",
    "精仿",
    "仿品",
    "莆田纯原",
    "莆田鞋",
    "纯原",
    "公司级",
    "顶级复刻",
    "replica",
    "AAA",
    "高仿货",
    "山寨",
];

/// Replica slang the scan's seed vocabulary does not hold: a test purchase
/// programme can learn these (`dajia learn terms`); until reviewed in, the
/// scan misses them unless another signal fires.
pub const UNSEEN_REPLICA_WORDS: &[&str] = &["高版本", "顶级做工", "原厂品质", "档口货"];

/// Contact keywords with variant words.
pub const CONTACT_KEYWORDS: &[&str] = &[
    "加V信", "薇信", "威信", "V信", "vx", "VX:", "wx", "➕V", "+v", "微 信", "扣扣", "企鹅", "QQ",
    "电话", "联系",
];

/// Low-price words of price-led counterfeits.
pub const CHEAP_WORDS: &[&str] = &["特价", "清仓", "工厂直销", "亏本", "秒杀", "批发", "低价"];

pub const GENUINE_WORDS: &[&str] = &["正品", "官方旗舰店", "专柜正品", "国行", "授权", "全球购"];

pub const SUFFIXES: &[&str] = &[
    "2024新款",
    "男女同款",
    "包邮",
    "送礼",
    "现货",
    "经典款",
    "潮流",
    "时尚",
];
