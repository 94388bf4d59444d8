//! Evasion as evidence: when a brand, replica or contact term matches only
//! because normalisation undid a disguise (separators, inserted symbols or
//! emoji, masking characters, full-width forms, traditional characters,
//! learned variant characters, homoglyphs, disguised digits, leetspeak,
//! homophones), the disguise itself is a signal: nobody selling the genuine
//! article writes 古 驰, G*cci or R0lex. This module names what was undone
//! in the input span of a match ([`classify`], [`evaded`]) and reads Latin
//! words written with masks or digits for letters ([`LatinDisguises`]).

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

use super::is_cjk;
use super::normalize::{han_change, is_mask};
use super::numerals::always_digit;

/// One kind of disguise normalisation undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transform {
    /// Spaces between the characters of a word (古 驰, G U C C I).
    Separators,
    /// Punctuation, emoji or invisible characters inside a word (高🔥仿).
    Symbols,
    /// A masking character for or between letters (G*cci, Gu*cci).
    Masking,
    /// Full-width letters and digits (ＧＵＣＣＩ).
    Width,
    /// Traditional characters (古馳).
    Traditional,
    /// Shape-similar or homophone characters learned from real spam (宋 for 送).
    VariantChars,
    /// Letters of other scripts that look Latin (Cyrillic с in Guссi).
    Homoglyph,
    /// Digits written as circled, dingbat or financial numerals.
    Numerals,
    /// Digits and symbols for letters (R0lex, Pr@da).
    Leetspeak,
    /// Other characters of the same sound (威信 for 微信).
    Homophone,
}

impl Transform {
    pub fn as_str(self) -> &'static str {
        match self {
            Transform::Separators => "separators",
            Transform::Symbols => "symbols",
            Transform::Masking => "masking",
            Transform::Width => "full_width",
            Transform::Traditional => "traditional",
            Transform::VariantChars => "variant_chars",
            Transform::Homoglyph => "homoglyph",
            Transform::Numerals => "numerals",
            Transform::Leetspeak => "leetspeak",
            Transform::Homophone => "homophone",
        }
    }

    /// Weak disguises are also how some genuine sellers type (traditional
    /// characters in Hong Kong and Taiwan, full-width letters from an input
    /// method); they weigh less (`Weights::evasion_weak`).
    pub fn is_weak(self) -> bool {
        matches!(self, Transform::Traditional | Transform::Width)
    }
}

/// What normalisation undid in `raw`, the input span of a match, in order
/// of first appearance.
pub fn classify(raw: &str) -> Vec<Transform> {
    let mut out: Vec<Transform> = Vec::new();
    let mut add = |t: Transform| {
        if !out.contains(&t) {
            out.push(t)
        }
    };
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            add(Transform::Separators);
        } else if is_mask(c) || (c == '＊') {
            add(Transform::Masking);
        } else if ('\u{FF01}'..='\u{FF5E}').contains(&c) {
            add(Transform::Width);
        } else if let Some((_, variant)) = han_change(c) {
            add(if variant {
                Transform::VariantChars
            } else {
                Transform::Traditional
            });
        } else if is_cjk(c) || c.is_ascii_alphanumeric() {
        } else if always_digit(c).is_some()
            || (c.is_numeric() && c.nfkc().all(|d| d.is_ascii_digit()))
        {
            add(Transform::Numerals);
        } else if c.is_alphanumeric() {
            if c.nfkc().all(|d| d.is_ascii_alphanumeric()) {
                add(Transform::Width);
            } else {
                let mut buf = [0u8; 4];
                let skel: String =
                    unicode_security::confusable_detection::skeleton(c.encode_utf8(&mut buf))
                        .collect();
                if skel.chars().all(|s| s.is_ascii_alphanumeric()) {
                    add(Transform::Homoglyph);
                }
            }
        } else if i > 0 && i + 1 < chars.len() {
            // Punctuation, emoji, zero-width characters inside the span.
            add(Transform::Symbols);
        }
    }
    out
}

/// A traditional character (one fast2s simplifies).
pub fn is_traditional(c: char) -> bool {
    matches!(han_change(c), Some((_, false)))
}

/// The disguises of a match's input span `raw[span]`, judged against the
/// whole input text: traditional characters are a disguise only in text
/// otherwise written in simplified characters (a Hong Kong or Taiwan
/// seller writes the whole title in traditional ones, and so may the
/// knowledge base's alias); the rest as [`evaded`].
pub fn evaded_in<'a>(
    raw: &str,
    span: std::ops::Range<usize>,
    spellings: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<Transform>> {
    let s = &raw[span.clone()];
    let traditional_elsewhere = raw[..span.start]
        .chars()
        .chain(raw[span.end..].chars())
        .any(is_traditional);
    let mut t = match evaded(s, spellings) {
        Some(t) => t,
        // Written as a listed alias, but a traditional one amid simplified text.
        None if s.chars().any(is_traditional) && !traditional_elsewhere => {
            vec![Transform::Traditional]
        }
        None => return None,
    };
    if traditional_elsewhere {
        t.retain(|x| *x != Transform::Traditional);
    }
    (!t.is_empty()).then_some(t)
}

/// Lowercase, whitespace runs as one space.
fn plain(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Whether [`plain`] leaves `s` as it is: no whitespace, and every
/// character its own lower case.
fn is_plain_word(s: &str) -> bool {
    s.chars().all(|c| {
        if c.is_ascii() {
            return !c.is_ascii_uppercase() && !c.is_whitespace();
        }
        let mut lower = c.to_lowercase();
        !c.is_whitespace() && lower.next() == Some(c) && lower.next().is_none()
    })
}

/// The disguises in `raw` (the input span of a match) when it is not
/// written as one of the term's own `spellings` (names and aliases as the
/// knowledge base or vocabulary writes them): `None` when it is plain.
pub fn evaded<'a>(
    raw: &str,
    spellings: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<Transform>> {
    let p = plain(raw);
    for s in spellings {
        // Most spellings are already plain (lower case, one word): compared
        // as they are. Building the plain form of every one of a
        // vocabulary's spellings for each traced match was a tenth of the
        // text path's instructions on a generated catalog.
        if is_plain_word(s) {
            if p == s {
                return None;
            }
            continue;
        }
        let s = plain(s);
        // A name of several words may also be written without its spaces
        // (亚历山大麦昆, LouisVuitton); spaces the name lacks are a disguise.
        if p == s || (!p.contains(' ') && p == s.replace(' ', "")) {
            return None;
        }
    }
    let t = classify(raw);
    (!t.is_empty()).then_some(t)
}

/// Leetspeak letters: what a digit or symbol inside a Latin word stands for.
fn leet(c: char) -> &'static [char] {
    match c {
        '0' => &['o'],
        '1' => &['i', 'l'],
        '3' => &['e'],
        '4' | '@' => &['a'],
        '5' | '$' => &['s'],
        '7' => &['t'],
        '8' => &['b'],
        _ => &[],
    }
}

/// Bytes that may start what [`has_candidate`] looks for.
static FIRST_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let starts = b"*@$0134578\xC3\xE2\xEF";
    let mut i = 0;
    while i < starts.len() {
        t[starts[i] as usize] = true;
        i += 1;
    }
    t
};

/// A cheap first look: a masking character or `@`/`$` anywhere, or a
/// leetspeak digit between two ASCII letters (r0lex); plain text stops here
/// (callers with several finders check once and skip them all).
pub fn has_candidate(raw: &str) -> bool {
    let b = raw.as_bytes();
    let alpha = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_alphabetic());
    // One pass over the bytes. Multi-byte masks are found by their UTF-8
    // bytes: × C3 97; ✱ ✲ E2 9C B1/B2; ⁎ E2 81 8E; ∗ E2 88 97; ※ E2 80 BB;
    // ＊ ＠ ＄ EF BC 8A/A0/84.
    for i in 0..b.len() {
        let c = b[i];
        // Most bytes (ideographs, plain letters) start nothing: one lookup.
        if !FIRST_BYTES[c as usize] {
            continue;
        }
        let hit = match c {
            b'*' | b'@' | b'$' => true,
            b'0'..=b'9' => {
                i > 0
                    && alpha(i - 1)
                    && !leet(c as char).is_empty()
                    // inside a word (r0lex), or ending one of 2+ letters (gucc1)
                    && (alpha(i + 1)
                        || (i >= 2
                            && alpha(i - 2)
                            && !b.get(i + 1).is_some_and(|n| n.is_ascii_alphanumeric())))
            }
            0xC3 => b.get(i + 1) == Some(&0x97),
            0xE2 => matches!(
                (b.get(i + 1), b.get(i + 2)),
                (Some(0x9C), Some(0xB1 | 0xB2))
                    | (Some(0x81), Some(0x8E))
                    | (Some(0x88), Some(0x97))
                    | (Some(0x80), Some(0xBB))
            ),
            0xEF => matches!(
                (b.get(i + 1), b.get(i + 2)),
                (Some(0xBC), Some(0x8A | 0xA0 | 0x84))
            ),
            _ => false,
        };
        if hit {
            return true;
        }
    }
    false
}

/// Latin names (single words of four letters or more) read when written
/// with masking characters for letters (G*cci) or digits and symbols for
/// letters (R0lex, Pr@da). Runs on the input text, only on words that hold
/// such a character, so plain text costs one scan.
pub struct LatinDisguises<T> {
    /// Name length → (payload, lowercase name).
    by_len: HashMap<usize, Vec<(T, String)>>,
}

/// A disguised Latin name in input text.
#[derive(Debug, Clone, PartialEq)]
pub struct LatinHit<'t, T> {
    pub term: &'t T,
    pub name: &'t str,
    /// The word as written.
    pub raw: String,
    pub transform: Transform,
}

impl<T> LatinDisguises<T> {
    pub fn new(names: impl IntoIterator<Item = (T, String)>) -> Self {
        let mut by_len: HashMap<usize, Vec<(T, String)>> = HashMap::new();
        for (t, n) in names {
            let n = n.to_lowercase();
            if n.len() >= 4 && n.chars().all(|c| c.is_ascii_alphabetic()) {
                let v = by_len.entry(n.len()).or_default();
                if !v.iter().any(|(_, m)| *m == n) {
                    v.push((t, n));
                }
            }
        }
        LatinDisguises { by_len }
    }

    pub fn find(&self, raw: &str) -> Vec<LatinHit<'_, T>> {
        if !has_candidate(raw) {
            return Vec::new();
        }
        self.find_candidate(raw)
    }

    /// [`find`](Self::find) without the [`has_candidate`] fast reject (the
    /// same answer on any text; callers with several finders check once).
    pub fn find_candidate(&self, raw: &str) -> Vec<LatinHit<'_, T>> {
        let mut out = Vec::new();
        if self.by_len.is_empty() {
            return out;
        }
        // Full-width forms of the word are read as ASCII (NFKC, which also
        // turns `＊` into `*`), letters lowercased. The text is cut into words and each word counted in one pass over the NFKC
        // text as it is; only a word that may be a disguised name is
        // written out read (lowercasing and collecting the whole text first
        // cost ~6,000 instructions per spam message, most of it for words
        // of one or two characters that could never be a name).
        let read = |c: char| c.to_ascii_lowercase();
        let word_char = |c: char| c.is_ascii_alphanumeric() || is_mask(c) || matches!(c, '@' | '$');
        let text = super::normalize::nfkc(raw);
        for word in text.split(|c: char| !word_char(c)) {
            let (mut n, mut letters, mut masks, mut leets) = (0, 0, 0, 0);
            for c in word.chars().map(read) {
                n += 1;
                if c.is_ascii_alphabetic() {
                    letters += 1;
                } else if is_mask(c) {
                    masks += 1;
                } else if !leet(c).is_empty() {
                    leets += 1;
                }
            }
            if letters < 3 || masks + leets == 0 {
                continue;
            }
            let Some(names) = self.by_len.get(&n) else {
                continue;
            };
            // At most a third of the name hidden.
            if (masks + leets) * 3 > n {
                continue;
            }
            let w: Vec<char> = word.chars().map(read).collect();
            for (t, name) in names {
                let ok = w
                    .iter()
                    .zip(name.chars())
                    .all(|(&c, a)| c == a || is_mask(c) || leet(c).contains(&a));
                if ok {
                    out.push(LatinHit {
                        term: t,
                        name,
                        raw: w.iter().collect(),
                        transform: if masks > 0 {
                            Transform::Masking
                        } else {
                            Transform::Leetspeak
                        },
                    });
                    break;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Transform::*;

    #[test]
    fn a_plain_word_is_its_own_plain_form() {
        // The shortcut in `evaded` must agree with `plain` on every string
        // it takes as already plain, and refuse those `plain` changes.
        for s in [
            "gucci",
            "古驰",
            "lv",
            "1:1",
            "a货",
            "Gucci",
            "louis vuitton",
            "ǅ",
            "ǆ",
            "Σ",
            "σ",
            "İ",
            "Ⅰ",
            "ⓐ",
            "Ⓐ",
            "x\u{b}y",
            "a\u{3000}b",
            "ß",
            "é",
            "É",
            "ﬁ",
            "",
        ] {
            assert_eq!(
                is_plain_word(s),
                plain(s) == s && !s.chars().any(char::is_whitespace),
                "{s:?}"
            );
        }
    }

    #[test]
    fn disguises_are_named() {
        let cases: &[(&str, &[Transform])] = &[
            ("古 驰", &[Separators]),
            ("古❤驰", &[Symbols]),
            ("高\u{200b}仿", &[Symbols]),
            ("古馳", &[Traditional]),
            ("ＧＵＣＣＩ", &[Width]),
            ("Guссi", &[Homoglyph]),
            ("G.U.C.C.I", &[Symbols]),
            ("Gu*cci", &[Masking]),
            ("①③⑧", &[Numerals]),
            ("古驰", &[]),
        ];
        for (raw, want) in cases {
            assert_eq!(classify(raw), *want, "{raw}");
        }
    }

    #[test]
    fn own_spellings_are_not_evasions() {
        assert_eq!(evaded("古驰", ["Gucci", "古驰"]), None);
        assert_eq!(evaded("GUCCI", ["Gucci"]), None);
        assert_eq!(evaded("亚历山大 麦昆", ["亚历山大 麦昆"]), None);
        assert_eq!(evaded("亚历山大麦昆", ["亚历山大 麦昆"]), None);
        assert_eq!(evaded("Louis  Vuitton", ["Louis Vuitton"]), None);
        // A traditional alias the knowledge base lists is its own spelling.
        assert_eq!(evaded("古馳", ["古驰", "古馳"]), None);
        assert_eq!(evaded("古馳", ["古驰"]), Some(vec![Traditional]));
        assert_eq!(evaded("古 驰", ["古驰"]), Some(vec![Separators]));
    }

    #[test]
    fn traditional_counts_only_amid_simplified_text() {
        let listed = ["古驰", "古馳"];
        // Amid simplified text, even a listed traditional alias.
        assert_eq!(
            evaded_in("古馳 腰带 包邮", 0..6, listed),
            Some(vec![Traditional])
        );
        // A title written in traditional characters throughout.
        assert_eq!(evaded_in("古馳 腰帶 包郵", 0..6, listed), None);
        assert_eq!(
            evaded_in("古 馳 腰帶", 0..7, ["古驰"]),
            Some(vec![Separators])
        );
    }

    #[test]
    fn masked_and_leet_latin_names_are_read() {
        let m = LatinDisguises::new(
            [(1, "Gucci"), (2, "Rolex"), (3, "Prada"), (4, "LV")].map(|(t, s)| (t, s.to_string())),
        );
        let found = |s: &str| -> Vec<(i32, Transform)> {
            m.find(s)
                .into_iter()
                .map(|h| (*h.term, h.transform))
                .collect()
        };
        assert_eq!(found("G*cci 女包 特价"), vec![(1, Masking)]);
        assert_eq!(found("Ｇ＊ＣＣＩ"), vec![(1, Masking)]);
        assert_eq!(found("R0lex 机械表"), vec![(2, Leetspeak)]);
        assert_eq!(found("pr@da bag"), vec![(3, Leetspeak)]);
        assert_eq!(found("GUCC1 女包"), vec![(1, Leetspeak)]);
        assert_eq!(found("G×cci ※ Pra※a"), vec![(1, Masking), (3, Masking)]);
        // Plain names, model numbers and mostly hidden words are not read.
        assert!(found("Gucci iphone15 a7").is_empty());
        assert!(found("g**** r0l3x").is_empty());
        assert!(found("l*v").is_empty());
    }

    /// `find_candidate` as it was first written: the whole NFKC text
    /// lowercased and collected, then every word counted four times.
    fn find_by_collecting<'m, T>(m: &'m LatinDisguises<T>, raw: &str) -> Vec<LatinHit<'m, T>> {
        let mut out = Vec::new();
        let word_char = |c: char| c.is_ascii_alphanumeric() || is_mask(c) || matches!(c, '@' | '$');
        let text: String = crate::text::normalize::nfkc(raw)
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .collect();
        for word in text.split(|c: char| !word_char(c)) {
            let letters = word.chars().filter(|c| c.is_ascii_alphabetic()).count();
            let masks = word.chars().filter(|c| is_mask(*c)).count();
            let leets = word
                .chars()
                .filter(|c| !c.is_ascii_alphabetic() && !leet(*c).is_empty())
                .count();
            if letters < 3 || masks + leets == 0 {
                continue;
            }
            let n = word.chars().count();
            let Some(names) = m.by_len.get(&n) else {
                continue;
            };
            if (masks + leets) * 3 > n {
                continue;
            }
            let w: Vec<char> = word.chars().collect();
            for (t, name) in names {
                if w.iter()
                    .zip(name.chars())
                    .all(|(&c, a)| c == a || is_mask(c) || leet(c).contains(&a))
                {
                    out.push(LatinHit {
                        term: t,
                        name,
                        raw: word.to_string(),
                        transform: if masks > 0 { Masking } else { Leetspeak },
                    });
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn words_are_read_as_the_whole_text_collected_reads_them() {
        // The knowledge base's Latin brand names, and texts that disguise
        // them every way the finder reads (masks, leetspeak, full-width,
        // capitals, `＊`) amid real titles and spam.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs/data/");
        let names: Vec<String> = std::fs::read_to_string(format!("{root}brands_en_zh.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next().map(str::to_string))
            .collect();
        let m = LatinDisguises::new(names.iter().cloned().enumerate());
        let mut texts = crate::text::real_texts();
        let mut rng = crate::text::XorShift(0x9E37_79B9_7F4A_7C15);
        let mut next = move |n: usize| rng.below(n);
        let swaps = [
            '*', '＊', '×', '※', '0', '1', '3', '4', '@', '$', '5', '7', '8', '-', ' ',
        ];
        for _ in 0..20_000 {
            let name = &names[next(names.len())];
            let mut s = String::new();
            for c in name.chars() {
                match next(6) {
                    0 => s.push(swaps[next(swaps.len())]),
                    1 => s.extend(c.to_uppercase()),
                    // Full-width letters: NFKC reads them as ASCII.
                    2 if c.is_ascii_alphanumeric() => {
                        s.push(char::from_u32(c as u32 - 0x21 + 0xFF01).expect("full-width form"))
                    }
                    _ => s.push(c),
                }
            }
            let around = &texts[next(texts.len())];
            let cut = crate::text::head_chars(around, next(12));
            texts.push(format!("{cut}{s}{}", &around[cut.len()..]));
        }
        let mut found = 0;
        for t in &texts {
            let want = find_by_collecting(&m, t);
            let got = m.find_candidate(t);
            assert_eq!(got, want, "{t}");
            found += got.len();
        }
        assert!(
            found > 1_000,
            "only {found} disguised names: the test saw too little"
        );
    }
}
