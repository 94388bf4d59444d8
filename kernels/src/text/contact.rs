//! Contact diversion: an off-platform contact (WeChat/QQ id, phone number)
//! offered in the listing, however it is disguised. The mere mention of a
//! messenger ("支持微信支付", "WeChat Pay accepted") is not diversion: an id or
//! a number must follow the keyword, or a mobile number stands on its own.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::homophones::{fold, Heard, HomophoneMatcher, MinLength};
use super::lexicon::Span;
use super::normalize_text;

/// Keywords that introduce a contact, with the channel they name. Variant
/// words (V信, 薇信, 威信, 扣扣, 企鹅, ...) are the ones sellers use to dodge
/// the literal "微信"/"QQ" filters.
const KEYWORDS: &[(&str, &str)] = &[
    ("微信", "wechat"),
    ("威信", "wechat"),
    ("薇信", "wechat"),
    ("徽信", "wechat"),
    ("维信", "wechat"),
    ("卫信", "wechat"),
    ("魏信", "wechat"),
    ("危信", "wechat"),
    ("伟信", "wechat"),
    ("v信", "wechat"),
    ("vx", "wechat"),
    ("wx", "wechat"),
    ("weixin", "wechat"),
    ("wechat", "wechat"),
    ("加v", "wechat"),
    ("+v", "wechat"),
    ("加微", "wechat"),
    ("加微信", "wechat"),
    ("薇", "wechat"),
    ("嶶", "wechat"),
    ("溦", "wechat"),
    ("wei信", "wechat"),
    // Slang names of the messengers.
    ("绿泡泡", "wechat"),
    ("小绿泡", "wechat"),
    ("绿色软件", "wechat"),
    ("v", "wechat"),
    ("微x", "wechat"),
    ("q号", "qq"),
    ("秋秋", "qq"),
    ("纸飞机", "telegram"),
    ("飞机号", "telegram"),
    ("电报", "telegram"),
    ("tg", "telegram"),
    ("qq", "qq"),
    ("扣扣", "qq"),
    // 筘/叩/抠 are learned variants of 扣 written as q (扣扣 → qq): a pair
    // with one of each reads 扣q or q扣.
    ("扣q", "qq"),
    ("q扣", "qq"),
    ("企鹅", "qq"),
    ("球球", "qq"),
    ("口口", "qq"),
    ("抠抠", "qq"),
    ("电话", "phone"),
    ("手机", "mobile"),
    ("tel", "phone"),
    ("热线", "phone"),
    ("联系", "contact"),
    ("whatsapp", "whatsapp"),
    ("telegram", "telegram"),
    ("line", "line"),
];

/// Characters allowed between a keyword and the id: punctuation became
/// spaces in normalisation; these are the filler words.
const FILLERS: &[char] = &[
    ' ', ':', '号', '是', '为', '加', '搜', '同', '+', '码', '我', '私', '聊', '联', '系', '哦',
    '@', '-', '咨', '询', '信', '微',
];

#[derive(Debug, Clone, PartialEq)]
pub struct ContactHit {
    pub channel: &'static str,
    /// The id as written after normalisation (digits folded).
    pub id: String,
    /// Byte range of the keyword in the normalised text (empty for a
    /// mobile number standing alone).
    pub keyword: Range<usize>,
    /// For a keyword heard by sound (危芯 for 微信): the keyword.
    pub sounds_like: Option<&'static str>,
}

pub struct ContactMatcher {
    ac: AhoCorasick,
    /// The keywords normalised, as the automaton holds them.
    keywords: Vec<String>,
    /// Keywords by sound: an id must follow them too, so any homophone
    /// counts, real word or not (威信 is "prestige", 威信 13800138000 is not).
    homophones: HomophoneMatcher<usize>,
}

impl Default for ContactMatcher {
    fn default() -> Self {
        Self::new()
    }
}

impl ContactMatcher {
    pub fn new() -> Self {
        let keywords: Vec<String> = KEYWORDS.iter().map(|(k, _)| normalize_text(k)).collect();
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            // A full DFA: a few MB at most, and the fastest search.
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            // CJK patterns share leading UTF-8 bytes, so a prefilter finds a
            // candidate at almost every character: scanning the DFA is faster.
            .prefilter(false)
            .build(&keywords)
            .expect("contact keywords build an automaton");
        let homophones = HomophoneMatcher::overlapping(
            keywords.iter().cloned().enumerate(),
            // An id must follow: two syllables, or one and a letter (q扣).
            MinLength {
                syllables: 2,
                latin: 1,
            },
        );
        ContactMatcher {
            ac,
            keywords,
            homophones,
        }
    }

    /// The keywords as the list writes them (normalised).
    pub fn keywords(&self) -> &[String] {
        &self.keywords
    }

    /// Contacts offered in normalised text.
    pub fn find(&self, text: &str) -> Vec<ContactHit> {
        self.find_heard(text, &self.hear(text))
    }

    /// Keywords heard in normalised `text` (this matcher's own automaton).
    pub fn hear(&self, text: &str) -> Vec<Heard> {
        self.homophones.heard(text, fold(text).as_deref())
    }

    /// The keywords matched by sound (keyword index, normalised keyword).
    pub fn sound_terms(&self) -> &[(usize, String)] {
        self.homophones.terms()
    }

    /// As [`find`](Self::find), with the keywords `heard` by the caller
    /// (the knowledge base hears all vocabularies in one pass; none: only
    /// keywords as written).
    pub fn find_heard(&self, text: &str, heard: &[Heard]) -> Vec<ContactHit> {
        self.hits(text, self.ac.find_iter(text).map(Span::from), heard)
    }

    /// As [`find_heard`](Self::find_heard), from this matcher's
    /// leftmost-longest keyword `spans` in `text` found by the caller
    /// ([`Lexicon::scan`](super::lexicon::Lexicon::scan) over [`keywords`](Self::keywords)).
    pub fn hits(
        &self,
        text: &str,
        spans: impl IntoIterator<Item = Span>,
        heard: &[Heard],
    ) -> Vec<ContactHit> {
        let mut hits = Vec::new();
        for m in spans {
            let (kw, channel) = KEYWORDS[m.pattern];
            // Latin keywords must be words of their own ("tel" not in "hotel").
            if kw.is_ascii() {
                let prev = text[..m.start].chars().next_back();
                if prev.is_some_and(|c| c.is_ascii_alphabetic()) {
                    continue;
                }
                // A lone "v" ("V❤ 12345678", "V: abc123") only as a word of
                // its own, set apart: "vivo x7", "dc110v", "(v2252)" are not.
                // Glued digits count when they are long enough for a phone
                // or QQ number (V❤ 一三八… joins up as v138…).
                let rest = &text[m.end..];
                let glued_number = rest.bytes().take_while(u8::is_ascii_digit).count() >= 8;
                if kw == "v"
                    && (prev.is_some_and(|c| c.is_ascii_alphanumeric())
                        || !(rest.starts_with([' ', ':']) || glued_number))
                {
                    continue;
                }
            }
            if let Some(id) = id_after(&text[m.end..], channel) {
                if !hits.iter().any(|h: &ContactHit| h.id == id) {
                    hits.push(ContactHit {
                        channel,
                        id,
                        keyword: m.start..m.end,
                        sounds_like: None,
                    });
                }
            }
        }
        for h in heard {
            let (kw, channel) = KEYWORDS[h.term];
            if let Some(id) = id_after(&text[h.range.end..], channel) {
                if !hits.iter().any(|x: &ContactHit| x.id == id) {
                    hits.push(ContactHit {
                        channel,
                        id,
                        keyword: h.range.clone(),
                        sounds_like: Some(kw),
                    });
                }
            }
        }
        // A mobile number on its own is an offer of contact too.
        for id in mobile_numbers(text) {
            if !hits.iter().any(|h| h.id == id) {
                hits.push(ContactHit {
                    channel: "phone",
                    id,
                    keyword: 0..0,
                    sounds_like: None,
                });
            }
        }
        hits
    }
}

/// The id right after a keyword: skip fillers, then read a digit id (5-15
/// digits, groups joined across spaces and dashes; o/l/i read as 0/1/1 once there
/// are three real digits) or, for messengers, an account name of 6-20 letters,
/// digits, `_` or `-` starting with a letter and holding a digit.
///
/// Read over the window's bytes (an id is ASCII): the first version
/// collected the window's characters and four intermediate strings per
/// keyword, ~2,400 instructions a call on real spam.
fn id_after(rest: &str, channel: &str) -> Option<String> {
    let window = super::head_chars(rest, 40);
    let mut at = 0;
    for c in window.chars().take(6) {
        if !FILLERS.contains(&c) {
            break;
        }
        at += c.len_utf8();
    }
    // A keyword right inside a word (微信支付) has no id.
    let run = window[at..]
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b' '))
        .count();
    let tok = window[at..at + run].trim_end_matches(' ');
    if tok.is_empty() {
        return None;
    }
    // Digit id, possibly written in groups; o/l/i read as digits once
    // there are three real ones.
    let real_digits = tok.bytes().filter(u8::is_ascii_digit).count();
    let compact = tok
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'-'))
        .map(|b| match b {
            b'o' if real_digits >= 3 => b'0',
            b'l' | b'i' if real_digits >= 3 => b'1',
            b => b,
        });
    let digits = compact.clone().take_while(u8::is_ascii_digit).count();
    // Digits running into letters are a part number (vx28123100j0g), not a contact.
    let glued = compact
        .clone()
        .nth(digits)
        .is_some_and(|b| b.is_ascii_alphabetic());
    if (5..=15).contains(&digits) && !glued {
        return Some(compact.take(digits).map(char::from).collect());
    }
    // "手机 iphone15pro" is a product, not an account: after 手机 only
    // numbers count.
    if channel == "mobile" {
        return None;
    }
    // Account names: the first space-free word.
    let word = tok.split(' ').next().unwrap_or_default();
    let ok = (6..=20).contains(&word.len())
        && word.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic());
    ok.then(|| word.to_string())
}

/// How many ASCII digits `bytes` holds. Counted in blocks of at most 255
/// into a byte-wide sum, which the compiler turns into vector compares and
/// adds; `filter(..).count()` was counted byte by byte (4% of the text
/// path's instructions, every text is counted).
fn ascii_digits(bytes: &[u8]) -> usize {
    bytes
        .chunks(255)
        .map(|block| {
            block
                .iter()
                .fold(0u8, |n, b| n + (b.wrapping_sub(b'0') < 10) as u8) as usize
        })
        .sum()
}

/// Chinese mobile numbers (1[3-9] and nine more digits) standing alone,
/// possibly written as 3-4-4 groups.
fn mobile_numbers(text: &str) -> Vec<String> {
    if ascii_digits(text.as_bytes()) < 11 {
        return Vec::new();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() || (i > 0 && chars[i - 1].is_ascii_alphanumeric()) {
            i += 1;
            continue;
        }
        let mut digits = String::new();
        let mut j = i;
        while j < chars.len() && digits.len() <= 11 {
            let c = chars[j];
            if c.is_ascii_digit() {
                digits.push(c);
                j += 1;
            } else if (c == ' ' || c == '-')
                && j + 1 < chars.len()
                && chars[j + 1].is_ascii_digit()
                && !digits.is_empty()
            {
                j += 1;
            } else {
                break;
            }
        }
        let ends_clean = j >= chars.len() || !chars[j].is_ascii_alphanumeric();
        let b = digits.as_bytes();
        if digits.len() == 11 && ends_clean && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
            out.push(digits);
        }
        i = j.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_counted_in_blocks_as_one_by_one() {
        let unit = "a1/9:0 高13800138000 ９①";
        for n in [0, 1, 7, 8, 9, 40, 300] {
            let text = unit.repeat(n);
            let want = text.bytes().filter(u8::is_ascii_digit).count();
            assert_eq!(ascii_digits(text.as_bytes()), want, "{n} repeats");
        }
        assert_eq!(ascii_digits(&[b'7'; 1000]), 1000);
    }

    fn ids(text: &str) -> Vec<String> {
        ContactMatcher::new()
            .find(&normalize_text(text))
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    #[test]
    fn disguised_contacts_are_found() {
        let cases: &[(&str, &str)] = &[
            ("加微信: abc12345 看实物", "abc12345"),
            ("V信 tb8888x 咨询", "tb8888x"),
            ("薇信号 shop_2024a", "shop_2024a"),
            ("➕V：lux9988", "lux9988"),
            ("vx 13800138000", "13800138000"),
            ("QQ 12345678", "12345678"),
            ("扣扣 ①②③④⑤⑥⑦⑧", "12345678"),
            ("企鹅 壹贰叁肆伍陆", "123456"),
            ("微 信 一三八零零一三八零零零", "13800138000"),
            ("威信 138 0013 8000", "13800138000"),
            ("电话 138-0013-8000", "13800138000"),
            ("联系我 13800138000", "13800138000"),
            ("正品 13912345678 看图", "13912345678"),
            ("联系 mall3807x", "mall3807x"),
            ("wx: 138OO138OOO", "13800138000"),
            ("WhatsApp +8613800138000", "8613800138000"),
            ("危芯 lux8899a", "lux8899a"),
            ("绿泡泡: shop2024x", "shop2024x"),
            ("V❤ 12345678", "12345678"),
            ("纸飞机 abc12345", "abc12345"),
            ("伽薇 13800138000", "13800138000"),
            ("加危芯 lux8888a", "lux8888a"),
            ("扣叩 zp39489x", "zp39489x"),
            ("叩窛 二三四三二四三九三六", "2343243936"),
            ("V❤ 1 0 5 7 1 0 4 1 5 5", "1057104155"),
            ("V❤ 七六七八八零三八一", "767880381"),
        ];
        for (text, want) in cases {
            let got = ids(text);
            assert!(
                got.iter().any(|g| g == want),
                "{text}: got {got:?}, want {want}"
            );
        }
    }

    #[test]
    fn mentions_without_an_id_are_not_diversion() {
        for text in [
            "支持微信支付 支付宝",
            "可微信付款 顺丰包邮",
            "微信扫码 领券",
            "WeChat Pay accepted",
            "手机壳 iPhone15 透明",
            "苹果手机 iphone15pro 256g",
            "QQ音乐 会员",
            "hotel 12345678 room",
            "戴森 v8 吸尘器",
            "条码 6901234567890",
            "加微信群享优惠",
            "vx28123100j0g 平板电脑零部件",
            "威信 很高",
            "戴森 v8 吸尘器 v10",
            "纸飞机 玩具 儿童",
            "vivox7plus数据线保护套",
            "dc110v-ac220v 逆变器",
            "维达抽取纸面巾(v2252)130抽",
            "vans/范斯衬衣 vn0a33urwht",
        ] {
            assert!(ids(text).is_empty(), "{text}: {:?}", ids(text));
        }
    }
    /// `id_after` as first written, over collected characters and strings.
    fn id_after_by_collecting(rest: &str, channel: &str) -> Option<String> {
        let chars: Vec<char> = rest.chars().take(40).collect();
        let mut i = 0;
        let mut skipped = 0;
        while i < chars.len() && FILLERS.contains(&chars[i]) && skipped < 6 {
            i += 1;
            skipped += 1;
        }
        let tok: String = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
            .collect();
        let tok = tok.trim_end();
        if tok.is_empty() {
            return None;
        }
        let compact: String = tok.chars().filter(|c| *c != ' ' && *c != '-').collect();
        let real_digits = compact.chars().filter(|c| c.is_ascii_digit()).count();
        let folded: String = compact
            .chars()
            .map(|c| match c {
                'o' if real_digits >= 3 => '0',
                'l' | 'i' if real_digits >= 3 => '1',
                c => c,
            })
            .collect();
        let digit_prefix: String = folded.chars().take_while(|c| c.is_ascii_digit()).collect();
        let glued = folded[digit_prefix.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if (5..=15).contains(&digit_prefix.len()) && !glued {
            return Some(digit_prefix);
        }
        if channel == "mobile" {
            return None;
        }
        let word: String = tok.chars().take_while(|c| *c != ' ').collect();
        let ok = (6..=20).contains(&word.len())
            && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && word.chars().any(|c| c.is_ascii_digit())
            && word.chars().any(|c| c.is_ascii_alphabetic());
        ok.then_some(word)
    }

    #[test]
    fn ids_are_read_as_the_collecting_version_read_them() {
        // Every suffix of real spam and titles (normalised, as the matcher
        // sees them) after each character, and ids built to sit on every
        // edge: fillers past the sixth, the 40-character window, 5 and 15
        // digits, o/l/i next to two or three digits, glued letters.
        let mut rests: Vec<String> = Vec::new();
        let long = "长".repeat(40);
        for fill in [
            "",
            ":",
            "号是",
            "加微信+",
            "::::::",
            ":::::::",
            " ",
            "  @  ",
            "我",
        ] {
            for id in [
                "12345",
                "1234",
                "123456789012345",
                "1234567890123456",
                "12o45",
                "1o2l3i",
                "o12",
                "13800138000abc",
                "wxid_abc123",
                "abc123",
                "abcdef",
                "a1b2c3d4e5f6g7h8i9j0k",
                "12 345 678",
                "12-345-678",
                "123 abc",
                "_abc1234",
                "ab-cd-12",
                "lol123456",
                // Past the 40-character window.
                "1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2",
                "12345678 12345678 12345678 12345678 123456",
                "a1bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            ] {
                for tail in ["", " ", "货", "x", "-", "✨", long.as_str()] {
                    rests.push(format!("{fill}{id}{tail}"));
                }
            }
        }
        for t in crate::text::real_texts().iter().step_by(3) {
            let n = crate::text::normalize_text(t);
            rests.extend(n.char_indices().map(|(i, _)| n[i..].to_string()));
        }
        let mut read = 0;
        for r in &rests {
            for channel in ["wechat", "qq", "mobile"] {
                let want = id_after_by_collecting(r, channel);
                assert_eq!(id_after(r, channel), want, "{r:?} {channel}");
                read += want.is_some() as usize;
            }
        }
        assert!(
            read > 1_000,
            "only {read} ids read: the test saw too little"
        );
    }
}
