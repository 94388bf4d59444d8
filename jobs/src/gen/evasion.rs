//! Evasion techniques: how counterfeit sellers disguise words and numbers.
//! Each function takes plain text and returns the disguised spelling; the
//! scan's normalisation must see through all of them.
//!
//! Two kinds of family: those drawn from what the scan learned (variant
//! characters from real spam, `variant_chars`) and those it was never
//! trained on (homophones drawn from a pinyin table over a pool of common
//! characters, masking characters, leetspeak, symbol decoration), so a
//! catalog is not only the detector's own training data played back.

use std::collections::HashMap;
use std::sync::LazyLock;

use rand::seq::IndexedRandom;
use rand::Rng;

use dajia_kernels::text::homophones::syllable;

/// Insert a separator, emoji or invisible character between characters.
pub fn separate(s: &str, rng: &mut impl Rng) -> String {
    let seps = [" ", ".", "*", "-", "🔥", "\u{200b}", "·", "|", "✨", "/"];
    let sep = *seps.choose(rng).unwrap();
    let chars: Vec<String> = s.chars().map(|c| c.to_string()).collect();
    chars.join(sep)
}

/// ASCII letters and digits to their full-width forms.
pub fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() {
                char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// Latin letters to look-alike Cyrillic letters.
pub fn homoglyph(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a' => 'а',
            'o' => 'о',
            'e' => 'е',
            'c' => 'с',
            'p' => 'р',
            'x' => 'х',
            'i' => 'і',
            'A' => 'А',
            'O' => 'О',
            'E' => 'Е',
            'C' => 'С',
            'P' => 'Р',
            'T' => 'Т',
            'M' => 'М',
            'H' => 'Н',
            c => c,
        })
        .collect()
}

/// Simplified to traditional for the characters of the vocabulary.
pub fn traditional(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '复' => '復',
            '货' => '貨',
            '单' => '單',
            '纯' => '純',
            '级' => '級',
            '顶' => '頂',
            '驰' => '馳',
            '迪' => '迪',
            '达' => '達',
            '鲁' => '魯',
            '奥' => '奧',
            '亚' => '亞',
            '劳' => '勞',
            '尔' => '爾',
            '马' => '馬',
            '爱' => '愛',
            '鞋' => '鞋',
            '厂' => '廠',
            '价' => '價',
            '联' => '聯',
            '系' => '繫',
            '电' => '電',
            '话' => '話',
            c => c,
        })
        .collect()
}

/// Common characters by sound: the characters of the real titles and
/// spam messages, grouped by toneless syllable. Homophones are drawn from
/// here, so they are characters people actually write.
static BY_SOUND: LazyLock<HashMap<u16, Vec<char>>> = LazyLock::new(|| {
    let mut m: HashMap<u16, Vec<char>> = HashMap::new();
    let text = [super::vocab::TITLES_TSV, super::vocab::SPAM_TSV];
    let mut seen = std::collections::HashSet::new();
    for t in text {
        for c in t.chars() {
            if let Some(s) = syllable(c) {
                if seen.insert(c) {
                    m.entry(s).or_default().push(c);
                }
            }
        }
    }
    m
});

/// Replace ideographs with others of the same sound (劳力士 → 牢力氏); at
/// least one is replaced when any has a homophone.
pub fn homophone(s: &str, rng: &mut impl Rng) -> String {
    let chars: Vec<char> = s.chars().collect();
    let options: Vec<(usize, Vec<char>)> = chars
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let others: Vec<char> = BY_SOUND
                .get(&syllable(*c)?)?
                .iter()
                .copied()
                .filter(|o| o != c)
                .collect();
            (!others.is_empty()).then_some((i, others))
        })
        .collect();
    let mut out = chars.clone();
    if let Some((i, others)) = options.choose(rng) {
        out[*i] = *others.choose(rng).unwrap();
    }
    for (i, others) in &options {
        if rng.random_bool(0.3) {
            out[*i] = *others.choose(rng).unwrap();
        }
    }
    out.into_iter().collect()
}

/// Characters replaced by variants the scan learned from real spam (送 →
/// 宋), where the table has one.
pub fn learned_variant(s: &str, rng: &mut impl Rng) -> Option<String> {
    static INVERSE: LazyLock<HashMap<char, Vec<char>>> = LazyLock::new(|| {
        let mut m: HashMap<char, Vec<char>> = HashMap::new();
        for (from, to) in dajia_kernels::text::variants::table() {
            m.entry(to).or_default().push(from);
        }
        for v in m.values_mut() {
            v.sort();
        }
        m
    });
    let mut hit = false;
    let out: String = s
        .chars()
        .map(|c| match INVERSE.get(&c) {
            Some(v) => {
                hit = true;
                *v.choose(rng).unwrap()
            }
            None => c,
        })
        .collect();
    hit.then_some(out)
}

/// A masking character for a letter or after the first one (G*cci, G*ucci).
pub fn mask(s: &str, rng: &mut impl Rng) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 4 || !chars.iter().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let mut out = chars.clone();
    if rng.random_bool(0.5) {
        out[rng.random_range(1..chars.len() - 1)] = '*';
    } else {
        out.insert(1, '*');
    }
    Some(out.into_iter().collect())
}

/// Digits and symbols for letters (Rolex → R0lex, Prada → Pr@da).
pub fn leetspeak(s: &str, rng: &mut impl Rng) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 4 || !chars.iter().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let swaps: Vec<usize> = (1..chars.len())
        .filter(|&i| matches!(chars[i].to_ascii_lowercase(), 'o' | 'e' | 'a' | 'i' | 's'))
        .collect();
    let i = *swaps.choose(rng)?;
    let mut out = chars.clone();
    out[i] = match chars[i].to_ascii_lowercase() {
        'o' => '0',
        'e' => '3',
        'a' => *['4', '@'].choose(rng).unwrap(),
        'i' => '1',
        _ => '5',
    };
    Some(out.into_iter().collect())
}

/// Decorations between characters: hearts, stars, arrows, brackets.
pub fn decorate(s: &str, rng: &mut impl Rng) -> String {
    let deco = ["❤", "★", "→", "【", "】", "♡", "☆", "~", "^"];
    let chars: Vec<String> = s.chars().map(|c| c.to_string()).collect();
    chars.join(deco.choose(rng).unwrap())
}

/// One disguise, chosen at random among the families that apply to `s`.
pub fn disguise(s: &str, rng: &mut impl Rng) -> (String, &'static str) {
    for _ in 0..8 {
        let got = match rng.random_range(0..11) {
            0 => Some((separate(s, rng), "separators")),
            1 => Some((full_width(s), "full_width")),
            2 => Some((homoglyph(s), "homoglyph")),
            3 => Some((traditional(s), "traditional")),
            4 => Some((separate(&traditional(s), rng), "traditional+separators")),
            5 => Some((homophone(s, rng), "homophone")),
            6 => learned_variant(s, rng).map(|v| (v, "variant_chars")),
            7 => mask(s, rng).map(|v| (v, "masking")),
            8 => leetspeak(s, rng).map(|v| (v, "leetspeak")),
            9 => Some((decorate(s, rng), "symbols")),
            _ => Some((s.to_string(), "plain")),
        };
        if let Some((d, how)) = got {
            if d != s || how == "plain" {
                return (d, how);
            }
        }
    }
    (s.to_string(), "plain")
}

/// A contact keyword as sellers write it: plain variants, slang names of
/// the messengers, homophones of 微信 and 加微 drawn from the pinyin table,
/// learned variant characters, or symbols around it.
pub fn contact_keyword(rng: &mut impl Rng) -> (String, &'static str) {
    let plain = *super::vocab::CONTACT_KEYWORDS.choose(rng).unwrap();
    match rng.random_range(0..6) {
        0 => (
            ["绿泡泡", "纸飞机", "小绿泡", "Q号"]
                .choose(rng)
                .unwrap()
                .to_string(),
            "keyword_slang",
        ),
        1 => (
            homophone(["微信", "加微信", "扣扣"].choose(rng).unwrap(), rng),
            "keyword_homophone",
        ),
        2 => match learned_variant(["加微", "加微信"].choose(rng).unwrap(), rng) {
            Some(v) => (v, "keyword_variant_chars"),
            None => (plain.to_string(), "keyword_plain"),
        },
        3 => (
            format!("{}❤", ["➕V", "+V", "V"].choose(rng).unwrap()),
            "keyword_symbols",
        ),
        _ => (plain.to_string(), "keyword_plain"),
    }
}

/// A Chinese mobile number.
pub fn phone(rng: &mut impl Rng) -> String {
    let second = rng.random_range(3..=9);
    let rest: String = (0..9)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    format!("1{second}{rest}")
}

/// A WeChat-style account name: a letter, then letters and digits.
pub fn wechat_id(rng: &mut impl Rng) -> String {
    let words = [
        "lux", "shop", "vip", "bag", "best", "tb", "zp", "mall", "top", "xiao",
    ];
    format!(
        "{}{}{}",
        words.choose(rng).unwrap(),
        rng.random_range(100..99999),
        ["", "a", "x", "_hk", "88"].choose(rng).unwrap()
    )
}

/// Digits disguised as other characters.
pub fn disguise_digits(d: &str, rng: &mut impl Rng) -> (String, &'static str) {
    const CIRCLED: [char; 10] = ['⓪', '①', '②', '③', '④', '⑤', '⑥', '⑦', '⑧', '⑨'];
    const CHINESE: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];
    const FINANCIAL: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
    let map = |table: &[char; 10]| -> String {
        d.chars()
            .map(|c| c.to_digit(10).map(|v| table[v as usize]).unwrap_or(c))
            .collect()
    };
    match rng.random_range(0..8) {
        0 => (map(&CIRCLED), "circled_digits"),
        1 => (map(&CHINESE), "chinese_numerals"),
        2 => {
            // Financial numerals with 零 as zero, mixed with plain digits.
            let s: String = d
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        c.to_digit(10).map(|v| FINANCIAL[v as usize]).unwrap_or(c)
                    } else {
                        c
                    }
                })
                .collect();
            (s, "financial_numerals")
        }
        3 => (full_width(d), "full_width_digits"),
        4 => (
            d.chars()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            "spaced_digits",
        ),
        5 if d.len() == 11 => (
            format!("{}-{}-{}", &d[..3], &d[3..7], &d[7..]),
            "grouped_digits",
        ),
        6 if d.len() >= 8 => (d.replace('0', "O"), "letter_o_for_zero"),
        _ => (d.to_string(), "plain_digits"),
    }
}
