//! `normalize_text`: the canonical form every text signal matches against.
//!
//! Steps, in order, each chosen so a variant spelling lands on the plain one:
//! 1. NFKC (`unicode-normalization`): full-width → half-width, ① → 1, ligatures.
//! 2. Traditional → simplified Chinese (`fast2s`): 復刻 → 复刻.
//! 3. Per character: case folding; confusable skeletons (`unicode-security`,
//!    UTS #39) for non-ASCII letters that imitate ASCII (Cyrillic а, Greek ο);
//!    dingbat and financial numerals to digits; ➕/✚ to `+`.
//! 4. Separators inside words removed: a run of spaces, punctuation, emoji or
//!    invisible characters disappears between two CJK characters or between
//!    single spaced-out letters/digits (高 仿, G.U.C.C.I, 1 3 8), and becomes
//!    one space elsewhere, so Latin word boundaries survive (`lv 包`).
//!    `:` and `.` between digits are kept (1:1, 0.15mm).
//! 5. Runs of four or more Chinese numerals and digits read as digits
//!    (一三八零零 → 13800); isolated numerals stay words (三星).

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::numerals::{always_digit, fold_numeral_runs};
use super::{is_cjk, is_latin_word};

/// Normalise text for matching. Total: never fails, whatever the input.
pub fn normalize_text(input: &str) -> String {
    let nfkc: std::borrow::Cow<str> = match is_nfkc_quick(input.chars()) {
        IsNormalized::Yes => input.into(),
        _ => input.nfkc().collect::<String>().into(),
    };
    let simplified = fast2s::convert(&nfkc);

    let mut chars: Vec<char> = Vec::with_capacity(simplified.len());
    for c in simplified.chars() {
        map_char(c, &mut chars);
    }
    let mut out = remove_separators(&chars);
    fold_numeral_runs(&mut out);
    out.into_iter().collect()
}

/// Step 3 for one character, pushing its replacement(s).
fn map_char(c: char, out: &mut Vec<char>) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    if let Some(d) = always_digit(c) {
        out.push(d);
        return;
    }
    match c {
        '➕' | '✚' | '✙' | '﹢' => {
            out.push('+');
            return;
        }
        _ => {}
    }
    if is_cjk(c) || !c.is_alphanumeric() {
        out.push(c);
        return;
    }
    // A non-ASCII letter or digit: fold it to ASCII when its UTS #39 skeleton
    // is plain ASCII (Cyrillic 'о' → 'o'); keep it otherwise (é, ß, ж).
    let mut buf = [0u8; 4];
    let skel: String =
        unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf)).collect();
    if !skel.is_empty() && skel.chars().all(|s| s.is_ascii_alphanumeric()) {
        out.extend(skel.chars().map(|s| s.to_ascii_lowercase()));
    } else {
        out.extend(c.to_lowercase());
    }
}

/// Characters that are part of words: letters, digits, CJK, and the two
/// symbols that carry meaning in listings (`+` as in "+V", `_` inside ids).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '+' || c == '_'
}

/// Step 4.
fn remove_separators(chars: &[char]) -> Vec<char> {
    let n = chars.len();
    let mut out: Vec<char> = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if is_word(c) {
            out.push(c);
            i += 1;
            continue;
        }
        // `:` or `.` between digits is part of a number or ratio.
        if (c == ':' || c == '.')
            && i > 0
            && i + 1 < n
            && chars[i - 1].is_ascii_digit()
            && chars[i + 1].is_ascii_digit()
        {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < n && !is_word(chars[i]) {
            i += 1;
        }
        if start == 0 || i == n {
            continue; // leading/trailing separators vanish
        }
        // A ratio written with noise around its colon ("1 : 1", "1✨:✨1").
        if chars[start..i].contains(&':')
            && chars[start - 1].is_ascii_digit()
            && chars[i].is_ascii_digit()
        {
            out.push(':');
            continue;
        }
        let left_joinable = joinable_left(&chars[..start]);
        let right_joinable = joinable_right(&chars[i..]);
        if !(left_joinable && right_joinable) {
            out.push(' ');
        }
    }
    out
}

/// The word before a separator (in the input) is a CJK character or a single
/// Latin letter/digit (a spaced-out spelling), so the separator can go.
fn joinable_left(before: &[char]) -> bool {
    match before.last() {
        Some(&c) if is_cjk(c) => true,
        Some(&c) if is_latin_word(c) => {
            before.len() < 2 || !is_latin_word(before[before.len() - 2])
        }
        _ => false,
    }
}

fn joinable_right(rest: &[char]) -> bool {
    match rest.first() {
        Some(&c) if is_cjk(c) => true,
        Some(&c) if is_latin_word(c) => rest.len() < 2 || !is_latin_word(rest[1]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_text as n;

    #[test]
    fn table() {
        let cases: &[(&str, &str, &str)] = &[
            ("full-width latin", "ＧＵＣＣＩ包", "gucci包"),
            ("full-width digits", "１２３４５", "12345"),
            ("circled digits", "①③⑧", "138"),
            ("dingbat digits", "❶➂➑", "138"),
            ("traditional", "復刻版", "复刻版"),
            ("case folding", "GuCcI", "gucci"),
            ("cyrillic homoglyph", "gucсi", "gucci"),
            ("greek homoglyph", "rοlex", "rolex"),
            ("separators inside cjk", "高 仿", "高仿"),
            ("emoji inside cjk", "高🔥仿", "高仿"),
            ("zero-width inside cjk", "高\u{200b}仿", "高仿"),
            ("spaced latin", "G.U.C.C.I", "gucci"),
            ("spaced digits", "1 3 8 0 0", "13800"),
            ("latin word boundary kept", "高仿 LV 包", "高仿 lv 包"),
            ("latin words kept apart", "iPhone 15 Pro", "iphone 15 pro"),
            ("ratio kept", "1:1 复刻", "1:1复刻"),
            ("ratio with noise", "1✨:✨1", "1:1"),
            ("decimal kept", "0.15mm", "0.15mm"),
            ("financial numerals", "壹叁捌", "138"),
            (
                "chinese numeral run",
                "一三八零零一三八零零零",
                "13800138000",
            ),
            ("isolated numeral stays a word", "三星手机", "三星手机"),
            ("short numeral run stays", "一次性", "一次性"),
            ("plus sign variant", "➕V", "+v"),
            ("mixed numerals", "13八零零", "13800"),
            ("full-width colon", "微信：abc", "微信 abc"),
            ("trim", "  hello  ", "hello"),
            ("empty", "", ""),
        ];
        for (name, input, want) in cases {
            assert_eq!(n(input), *want, "{name}: {input:?}");
        }
    }

    #[test]
    fn total_on_odd_input() {
        for s in [
            "\u{0}",
            "\u{FFFF}",
            "🔥🔥🔥",
            "a\u{301}",
            "ǅ",
            &"长".repeat(100_000),
        ] {
            let _ = n(s);
        }
    }
}
