//! Evasion techniques: how counterfeit sellers disguise words and numbers.
//! Each function takes plain text and returns the disguised spelling; the
//! scan's normalisation must see through all of them.

use rand::seq::IndexedRandom;
use rand::Rng;

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

/// Apply one to three of the disguises above, chosen at random.
pub fn disguise(s: &str, rng: &mut impl Rng) -> (String, &'static str) {
    match rng.random_range(0..6) {
        0 => (separate(s, rng), "separators"),
        1 => (full_width(s), "full_width"),
        2 => (homoglyph(s), "homoglyph"),
        3 => (traditional(s), "traditional"),
        4 => (separate(&traditional(s), rng), "traditional+separators"),
        _ => (s.to_string(), "plain"),
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
