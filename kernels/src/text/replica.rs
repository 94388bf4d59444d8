//! Replica vocabulary: the words sellers use to say "this is a copy", with
//! their variant spellings, and the contexts in which they mean something else
//! (高仿真花 is an artificial flower, 1:18 a scale model, AAA电池 a battery).
//!
//! Patterns are matched on normalised text, so spacing, emoji, full-width,
//! traditional and homoglyph variants need no entries of their own; entries
//! here are the *lexical* variants: homophones, pinyin, abbreviations.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::evasion::{LatinDisguises, Transform};
use super::homophones::{is_real_word, Heard, HomophoneMatcher};
use super::lexicon::Span;
use super::{is_latin_word, normalize_text};

/// Terms learned from labelled listings (`dajia learn terms`: terms
/// over-represented in listings confirmed counterfeit against confirmed
/// genuine ones), reviewed into this file with their counts. Columns:
/// `family` (the family's name up to its first space), `spelling`,
/// `counterfeit`, `genuine` (listings holding it), `source`.
pub const LEARNED_TERMS_TSV: &str = include_str!("../../data/replica_terms.tsv");

/// `(family index, spelling)` of the learned terms; lines naming no family
/// or malformed are refused by the test below, skipped here.
pub fn learned_terms() -> Vec<(usize, String)> {
    parse_learned(LEARNED_TERMS_TSV).unwrap_or_default()
}

pub fn parse_learned(tsv: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in tsv.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with("family\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 5 {
            return Err(format!(
                "line {}: expected 5 columns, got {}",
                n + 1,
                cols.len()
            ));
        }
        let family = FAMILIES
            .iter()
            .position(|f| f.name.split(' ').next() == Some(cols[0]))
            .ok_or_else(|| format!("line {}: no family {:?}", n + 1, cols[0]))?;
        for c in &cols[2..4] {
            c.parse::<u64>()
                .map_err(|e| format!("line {}: count {c:?}: {e}", n + 1))?;
        }
        if cols[1].trim().is_empty() {
            return Err(format!("line {}: empty spelling", n + 1));
        }
        out.push((family, cols[1].to_string()));
    }
    Ok(out)
}

/// One vocabulary family: spellings that mean the same thing, with a weight.
pub struct Family {
    pub name: &'static str,
    pub weight: f32,
    pub spellings: &'static [&'static str],
    /// The match is ignored when one of these follows it closely.
    pub not_before: &'static [&'static str],
    /// The match is ignored when one of these precedes it closely.
    pub not_after: &'static [&'static str],
}

/// Contexts in which "1:1" describes size, not a copy.
const SCALE_CONTEXT: &[&str] = &[
    "比例",
    "模型",
    "scale",
    "model",
    "手办",
    "等身",
    "雕像",
    "车模",
    "实物大小",
    "尺寸",
    "打印",
    "图纸",
];

pub const FAMILIES: &[Family] = &[
    Family {
        name: "高仿 (high imitation)",
        weight: 0.9,
        spellings: &[
            "高仿",
            "搞仿",
            "膏仿",
            "稿仿",
            "高彷",
            "高fang",
            "gao仿",
            "gaofang",
            "高访货",
            "高仿货",
            "高f货",
            "高f",
            "gf货",
        ],
        not_before: &["真"],
        not_after: &[],
    },
    Family {
        name: "仿品 (imitation goods)",
        weight: 0.85,
        spellings: &[
            "仿品", "仿牌", "仿货", "精仿", "超仿", "顶仿", "原仿", "仿款", "山寨", "shanzhai",
            "彷品", "仿版",
        ],
        not_before: &["真"],
        not_after: &[],
    },
    Family {
        name: "复刻 (replica)",
        // Also a legitimate "retro re-release" (红白机复刻, AJ1 复刻): weak alone.
        weight: 0.45,
        spellings: &[
            "复刻",
            "覆刻",
            "复克",
            "付刻",
            "腹刻",
            "复k",
            "fuke",
            "复刻版",
        ],
        not_before: &[],
        not_after: &[],
    },
    Family {
        name: "A货 (A-grade copy)",
        weight: 0.85,
        // Not "4a"/"a级货": model numbers (红米 4a) and material grades.
        spellings: &[
            "a货",
            "aa货",
            "aaa货",
            "a+货",
            "超a",
            "顶级a",
            "超级a",
            "a版",
            "5a货",
            "顶a",
            "顶级复刻",
        ],
        // In jade trade "A货" is untreated natural jadeite: genuine.
        not_before: &["股", "级景区", "景区", "翡翠", "冰种", "玉"],
        not_after: &["翡翠", "缅甸", "天然", "玉", "冰种"],
    },
    Family {
        name: "AAA (grade)",
        weight: 0.55,
        spellings: &["aaa", "aaaa", "aaaaa"],
        not_before: &[
            "电池",
            "号",
            "battery",
            "级",
            "景区",
            "级景区",
            "纸",
            "game",
        ],
        not_after: &["电池", "号", "7号", "5号", "南孚", "gp"],
    },
    Family {
        name: "原单 (factory surplus)",
        // Export surplus is a grey market: weak alone, strong with a brand.
        weight: 0.45,
        spellings: &[
            "原单",
            "外贸原单",
            "原单货",
            "yuandan",
            "跟单货",
            "尾单货",
            "工厂尾单",
            "原厂尾单",
            "原厂尾货",
            "工厂尾货",
            "尾单",
            "跟单",
            "余单",
        ],
        not_before: &[],
        not_after: &[],
    },
    Family {
        name: "1:1 (one-to-one copy)",
        weight: 0.85,
        spellings: &["1:1", "1比1", "一比一", "1:1原版", "1:1复刻"],
        not_before: SCALE_CONTEXT,
        not_after: SCALE_CONTEXT,
    },
    Family {
        name: "莆田 (Putian copies)",
        weight: 0.8,
        spellings: &[
            "莆田鞋",
            "莆田货",
            "莆田纯原",
            "莆田工厂",
            "蒲田鞋",
            "甫田鞋",
            "putian",
            "莆田版",
            "莆田",
        ],
        not_before: &[
            "特产", "市", "桂圆", "荔枝", "龙眼", "卤面", "小吃", "美食", "学院", "大学",
        ],
        not_after: &["福建省"],
    },
    Family {
        name: "纯原/公司级 (factory-grade copy)",
        weight: 0.75,
        spellings: &[
            "纯原",
            "公司级",
            "顶级版本",
            "原厂版",
            "过验版",
            "过验",
            "真标",
            "原鞋开模",
            "原版开模",
            "同厂同料",
            "同厂出品",
            "同厂代工",
            "原厂代工",
            "代工厂货",
            "正品级",
            "正品品质",
            "专柜品质",
            "专柜级",
            "最高版本",
            "天花板版本",
            "og版",
            "ljr版",
            "pk版",
        ],
        not_before: &[],
        not_after: &[],
    },
    Family {
        name: "replica (English)",
        weight: 0.9,
        spellings: &[
            "replica",
            "rep1ica",
            "repl1ca",
            "superfake",
            "super fake",
            "mirror quality",
            "1:1 quality",
            "top quality copy",
            "fake",
            "reps",
            "1to1",
        ],
        not_before: &[],
        not_after: &[],
    },
    Family {
        name: "非正品 (not genuine)",
        weight: 0.45,
        spellings: &["非正品", "不是正品", "非原装正品", "不保真"],
        not_before: &[],
        not_after: &[],
    },
];

#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaHit {
    pub family: usize,
    /// As matched in the normalised text.
    pub spelling: String,
    /// Byte range in the normalised text.
    pub range: Range<usize>,
    /// For a homophone: the vocabulary spelling it sounds like.
    pub sounds_like: Option<String>,
}

pub struct ReplicaMatcher {
    ac: AhoCorasick,
    patterns: Vec<(usize, String)>,
    homophones: HomophoneMatcher<usize>,
    /// Latin spellings written with masks or digits for letters (r*plica).
    latin: LatinDisguises<usize>,
}

impl Default for ReplicaMatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplicaMatcher {
    pub fn new() -> Self {
        let mut patterns = Vec::new();
        for (i, f) in FAMILIES.iter().enumerate() {
            for s in f.spellings {
                patterns.push((i, normalize_text(s)));
            }
        }
        for (i, s) in learned_terms() {
            patterns.push((i, normalize_text(&s)));
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            // A full DFA: a few MB at most, and the fastest search.
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            // CJK patterns share leading UTF-8 bytes, so a prefilter finds a
            // candidate at almost every character: scanning the DFA is faster.
            .prefilter(false)
            .build(patterns.iter().map(|(_, p)| p.as_str()))
            .expect("replica patterns build an automaton");
        let homophones = HomophoneMatcher::new(patterns.iter().cloned(), 2);
        let latin = LatinDisguises::new(patterns.iter().cloned());
        ReplicaMatcher {
            ac,
            patterns,
            homophones,
            latin,
        }
    }

    /// Latin spellings in the input text `raw` written with masking
    /// characters or digits for letters: `(family, as written, spelling, how)`.
    /// Without the `evasion::has_candidate` fast reject: the caller checked.
    pub fn find_disguised_latin(&self, raw: &str) -> Vec<(usize, String, String, Transform)> {
        self.latin
            .find_candidate(raw)
            .into_iter()
            .map(|h| (*h.term, h.raw, h.name.to_string(), h.transform))
            .collect()
    }

    /// Every spelling of family `f` as the vocabulary writes it.
    pub fn spellings(&self, f: usize) -> impl Iterator<Item = &str> {
        self.patterns
            .iter()
            .filter(move |(i, _)| *i == f)
            .map(|(_, s)| s.as_str())
    }

    /// Replica vocabulary in normalised text (at most one hit per family).
    pub fn find(&self, text: &str) -> Vec<ReplicaHit> {
        self.find_glued(text, &self.hear(text), |_| false)
    }

    /// Spellings heard in normalised `text` (this matcher's own automaton).
    pub fn hear(&self, text: &str) -> Vec<Heard> {
        self.homophones
            .heard(text, super::homophones::fold(text).as_deref())
    }

    /// The spellings matched by sound (family, normalised spelling).
    pub fn sound_terms(&self) -> &[(usize, String)] {
        self.homophones.terms()
    }

    /// As [`find`](Self::find), also accepting a Latin word glued to what
    /// follows when `glued_ok(end)` says a brand name starts there
    /// ("replicaGucci", "1:1Prada").
    ///
    /// Spellings `heard` by sound (膏访 for 高仿; `term` is the family)
    /// count too, unless they are real words or their context rules them
    /// out, as for the spellings themselves.
    pub fn find_glued(
        &self,
        text: &str,
        heard: &[Heard],
        glued_ok: impl Fn(usize) -> bool,
    ) -> Vec<ReplicaHit> {
        self.hits(
            text,
            self.ac.find_iter(text).map(Span::from),
            heard,
            glued_ok,
        )
    }

    /// The spellings as the automaton holds them, in its order (for a
    /// [`Lexicon`](super::lexicon::Lexicon) that scans several vocabularies at once).
    pub fn patterns(&self) -> Vec<&str> {
        self.patterns.iter().map(|(_, p)| p.as_str()).collect()
    }

    /// As [`find_glued`](Self::find_glued), from this matcher's
    /// leftmost-longest `spans` in `text` found by the caller.
    pub fn hits(
        &self,
        text: &str,
        spans: impl IntoIterator<Item = Span>,
        heard: &[Heard],
        glued_ok: impl Fn(usize) -> bool,
    ) -> Vec<ReplicaHit> {
        let mut hits: Vec<ReplicaHit> = Vec::new();
        for m in spans {
            let (family, spelling) = &self.patterns[m.pattern];
            let f = &FAMILIES[*family];
            let before = &text[..m.start];
            let after = &text[m.end..];
            // Latin spellings must stand as words; "1:1" must not be "1:18".
            if spelling.chars().next().is_some_and(is_latin_word)
                && before
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_alphabetic())
            {
                continue;
            }
            // A digit must not continue a number ("1:18"); a letter must not
            // continue a word ("rep" in "report") unless a brand starts there.
            let last = spelling.chars().last().unwrap_or(' ');
            let next = after.chars().next().unwrap_or(' ');
            if (last.is_ascii_digit() && next.is_ascii_digit())
                || (last.is_ascii_alphabetic() && next.is_ascii_alphabetic() && !glued_ok(m.end))
            {
                continue;
            }
            if excluded_by_context(f, before, after) {
                continue;
            }
            if !hits.iter().any(|h| h.family == *family) {
                hits.push(ReplicaHit {
                    family: *family,
                    spelling: spelling.clone(),
                    range: m.start..m.end,
                    sounds_like: None,
                });
            }
        }
        for h in heard {
            let f = &FAMILIES[h.term];
            let r = h.range.clone();
            if hits.iter().any(|x| x.family == h.term)
                || excluded_by_context(f, &text[..r.start], &text[r.end..])
                || is_real_word(text, &r)
            {
                continue;
            }
            hits.push(ReplicaHit {
                family: h.term,
                spelling: text[r.clone()].to_string(),
                range: r,
                sounds_like: Some(h.canonical.clone()),
            });
        }
        hits
    }
}

/// The family's context rules: a word close after (`not_before`) or before
/// (`not_after`) the match that gives it another meaning.
fn excluded_by_context(f: &Family, before: &str, after: &str) -> bool {
    let near_after = super::head_chars(after, 8);
    let near_before = super::tail_chars(before, 8);
    f.not_before
        .iter()
        .any(|w| near_after.starts_with(w) || (w.chars().count() > 1 && near_after.contains(w)))
        || f.not_after
            .iter()
            .any(|w| near_before.ends_with(w) || (w.chars().count() > 1 && near_before.contains(w)))
}

impl ReplicaMatcher {
    /// Number of spellings (seed and learned).
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families(text: &str) -> Vec<&'static str> {
        ReplicaMatcher::new()
            .find(&normalize_text(text))
            .into_iter()
            .map(|h| FAMILIES[h.family].name.split(' ').next().unwrap())
            .collect()
    }

    #[test]
    fn variants_are_found() {
        let cases: &[(&str, &str)] = &[
            ("高仿LV包", "高仿"),
            ("高 仿 包", "高仿"),
            ("高🔥仿 女包", "高仿"),
            ("搞仿名表", "高仿"),
            ("gao仿 手表", "高仿"),
            ("ＧＡＯＦＡＮＧ watch", "高仿"),
            ("復刻 aj1", "复刻"),
            ("A货 包包", "A货"),
            ("超A 手表", "A货"),
            ("AAA 包包", "AAA"),
            ("1:1 做工 女包", "1:1"),
            ("一比一 原版", "1:1"),
            ("１：１版本", "1:1"),
            ("莆田纯原 空军一号", "莆田"),
            ("外贸原单 羽绒服", "原单"),
            ("Replica watch", "replica"),
            ("R E P L I C A bag", "replica"),
            ("精仿 名表", "仿品"),
            ("膏访 女包", "高仿"),
            ("同厂同料 女包", "纯原/公司级"),
            ("原厂尾单 羽绒服", "原单"),
        ];
        for (text, want) in cases {
            let got = families(text);
            assert!(got.contains(want), "{text}: got {got:?}, want {want}");
        }
    }

    #[test]
    fn hard_negatives_are_not_found() {
        for text in [
            "高仿真绿植 假花 客厅摆件",
            "仿真花 高仿真玫瑰",
            "1:18 合金车模 法拉利",
            "1:1 比例 仿真 模型 手办",
            "南孚 AAA 7号电池 4粒",
            "AAA级景区 门票",
            "福建莆田特产 桂圆干 500g",
            "1:12 娃娃屋",
            "正品 专柜 新款",
            "rep movement 健身",
            "缅甸a货天然翡翠 冰种阳绿心形戒面",
            "天然a货冰种翡翠金龟子",
            "红米 4a手游无线游戏手柄",
            "元旦礼物 女包",
            "妇科 护理液",
            "提高访问量",
        ] {
            assert!(families(text).is_empty(), "{text}: {:?}", families(text));
        }
    }

    #[test]
    fn learned_terms_file_parses() {
        parse_learned(LEARNED_TERMS_TSV).unwrap();
        assert!(parse_learned("nofamily\tx\t1\t0\tlearned").is_err());
        assert!(parse_learned("高仿\tx\tmany\t0\tlearned").is_err());
        assert!(parse_learned("高仿\tx\t1\t0").is_err());
        assert_eq!(
            parse_learned("高仿\t搞fang\t9\t0\tlearned").unwrap(),
            vec![(0, "搞fang".to_string())]
        );
    }
}
