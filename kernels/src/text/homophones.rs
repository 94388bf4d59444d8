//! Homophone matching: a vocabulary term (微信, 高仿, 劳力士) also matches
//! when written with other characters of the same sound (威信, 膏访, 牢力士),
//! including homophones no list has seen. Both sides are folded to toneless
//! pinyin syllables (`pinyin` crate) and matched with Aho-Corasick over the
//! folded bytes.
//!
//! A homophone spelling that is itself a word of the language (元旦 sounds
//! like 原单, 妇科 like 复刻) is not an evasion: [`is_real_word`] checks
//! jieba's 350k-word dictionary, and whether the span's edges are glued to
//! its neighbours as words (提高访问 holds 高访 only by accident).

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use pinyin::ToPinyin;

const HAN_BASE: u32 = 0x4E00;
const HAN_END: u32 = 0x9FFF;

/// Syllable id + 1 of each ideograph of the main block (0: no reading).
/// Ids fit 12 bits (there are about 420 toneless syllables).
static SYLLABLE: LazyLock<Vec<u16>> = LazyLock::new(|| {
    let mut ids: std::collections::HashMap<&'static str, u16> = Default::default();
    (HAN_BASE..=HAN_END)
        .map(|u| {
            let c = char::from_u32(u).expect("BMP ideograph");
            match c.to_pinyin() {
                Some(p) => {
                    let n = ids.len() as u16;
                    *ids.entry(p.plain()).or_insert(n) + 1
                }
                None => 0,
            }
        })
        .collect()
});

/// The toneless syllable of an ideograph of the main block, as an id.
pub fn syllable(c: char) -> Option<u16> {
    syllable_in(&SYLLABLE, c)
}

/// [`syllable`] with the table at hand (a loop reads it once).
#[inline(always)]
fn syllable_in(syllables: &[u16], c: char) -> Option<u16> {
    let u = c as u32;
    if !(HAN_BASE..=HAN_END).contains(&u) {
        return None;
    }
    match syllables[(u - HAN_BASE) as usize] {
        0 => None,
        s => Some(s - 1),
    }
}

/// The two folded bytes of a syllable id: shaped like a UTF-8 lead and
/// continuation byte, so a match can only start on a character.
#[inline(always)]
fn syllable_bytes(s: u16) -> [u8; 2] {
    [0xC0 | (s >> 6) as u8, 0x80 | (s & 63) as u8]
}

/// A digit sounds like its numeral (肆 in 公肆级, already read as 4, still
/// sounds like 司 in 公司级): each digit's folded bytes.
static DIGITS: LazyLock<[Option<[u8; 2]>; 10]> =
    LazyLock::new(|| DIGIT_NUMERALS.map(|n| syllable(n).map(syllable_bytes)));

const DIGIT_NUMERALS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Ideographs (digits count as their numerals) and other letters of a term.
fn units(s: &str) -> (usize, usize) {
    let syl = s
        .chars()
        .filter(|c| c.is_ascii_digit() || syllable(*c).is_some())
        .count();
    let other = s.chars().filter(|c| c.is_ascii_alphabetic()).count();
    (syl, other)
}

/// The folded form of normalised text; `None` when it has no ideograph (no
/// homophone can match).
pub fn fold(text: &str) -> Option<Vec<u8>> {
    if text.is_ascii() {
        return None;
    }
    // At most one character per byte of `text`.
    Some(fold_chars(text.chars(), text.len()))
}

/// The folded form of normalised text given as its characters, at most
/// `max_chars` of them. An ideograph becomes its syllable's two bytes, a
/// digit its numeral's, an ASCII letter stays (lower case); anything else is
/// a space (no term spans it).
pub(crate) fn fold_chars(chars: impl Iterator<Item = char>, max_chars: usize) -> Vec<u8> {
    // The tables once per text, not per character.
    let (syllables, digits) = (&SYLLABLE[..], &*DIGITS);
    // Each character is one 2-byte store into a buffer sized for the worst
    // case (two bytes each), advanced by the bytes it takes: pushing byte by
    // byte checked capacity per byte, a twentieth of the text path.
    let mut out = vec![0u8; max_chars * 2];
    let mut at = 0;
    for c in chars {
        let u = c as u32;
        let (pair, n) = if u < 0x80 {
            let b = u as u8;
            if b.is_ascii_digit() {
                match digits[(b - b'0') as usize] {
                    Some(pair) => (pair, 2),
                    None => ([b' ', 0], 1),
                }
            } else if b.is_ascii_alphabetic() {
                ([b.to_ascii_lowercase(), 0], 1)
            } else {
                ([b' ', 0], 1)
            }
        } else if let Some(s) = syllable_in(syllables, c) {
            (syllable_bytes(s), 2)
        } else {
            ([b' ', 0], 1)
        };
        out[at..at + 2].copy_from_slice(&pair);
        at += n;
    }
    out.truncate(at);
    out
}

/// The byte range in `text` of the folded range `start..end`.
fn unfold_range(text: &str, start: usize, end: usize) -> Range<usize> {
    let (mut f, mut s, mut e) = (0usize, text.len(), text.len());
    for (i, c) in text.char_indices() {
        if f == start {
            s = i;
        }
        if f == end {
            e = i;
            break;
        }
        f += if syllable(c).is_some() || c.is_ascii_digit() {
            2
        } else {
            1
        };
    }
    s..e
}

/// Terms of one vocabulary, matched by sound. `T` says which term.
pub struct HomophoneMatcher<T> {
    ac: Option<AhoCorasick>,
    terms: Vec<(T, String)>,
    overlapping: bool,
}

/// Which terms are matched by sound: at least `syllables` ideographs, or
/// one and at least `latin` Latin letters (gao仿; q扣 for contacts).
#[derive(Debug, Clone, Copy)]
pub struct MinLength {
    pub syllables: usize,
    pub latin: usize,
}

/// A term of a vocabulary (its index there) heard in normalised text,
/// written differently; what the matchers take (`BrandMatcher`,
/// `ReplicaMatcher`, `ContactMatcher`), whether they heard it themselves or
/// the knowledge base heard all three vocabularies in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    pub term: usize,
    /// Byte range in the normalised text.
    pub range: Range<usize>,
    /// The normalised term it sounds like.
    pub canonical: String,
}

/// A term heard in normalised text, written differently.
#[derive(Debug, Clone, PartialEq)]
pub struct HomophoneHit<'t, T> {
    pub term: &'t T,
    /// The normalised term.
    pub canonical: &'t str,
    /// Byte range in the normalised text.
    pub range: Range<usize>,
}

impl<T> HomophoneMatcher<T> {
    /// `terms`: normalised terms with their payload. Only terms with at
    /// least `min_syllables` ideographs (digits count as their numerals),
    /// or one ideograph and two or more Latin letters (gao仿), are kept:
    /// shorter ones collide with too many real words.
    pub fn new(terms: impl IntoIterator<Item = (T, String)>, min_syllables: usize) -> Self {
        Self::build(
            terms,
            MinLength {
                syllables: min_syllables,
                latin: 2,
            },
            false,
        )
    }

    /// As [`new`](Self::new), reporting overlapping matches too (加危芯 holds
    /// both 加微 and 微信 by sound; the caller decides which one counts).
    pub fn overlapping(terms: impl IntoIterator<Item = (T, String)>, min: MinLength) -> Self {
        Self::build(terms, min, true)
    }

    fn build(
        terms: impl IntoIterator<Item = (T, String)>,
        min: MinLength,
        overlapping: bool,
    ) -> Self {
        let mut kept: Vec<(T, String)> = Vec::new();
        for (t, s) in terms {
            let (n, latin) = units(&s);
            let has_ideograph = s.chars().any(|c| syllable(c).is_some());
            let long_enough = n >= min.syllables || (n >= 1 && latin >= min.latin);
            if has_ideograph && long_enough && !s.contains(' ') {
                kept.push((t, s));
            }
        }
        let ac = (!kept.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(if overlapping {
                    MatchKind::Standard
                } else {
                    MatchKind::LeftmostLongest
                })
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(kept.iter().map(|(_, s)| fold(s).unwrap_or_default()))
                .expect("homophone patterns build an automaton")
        });
        HomophoneMatcher {
            ac,
            terms: kept,
            overlapping,
        }
    }

    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// The terms kept, with their payloads.
    pub fn terms(&self) -> &[(T, String)] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Terms heard in `text` (normalised; `folded` is `fold(text)`) but not
    /// written as the term itself (the exact matchers see those).
    pub fn find(&self, text: &str, folded: Option<&[u8]>) -> Vec<HomophoneHit<'_, T>> {
        let (Some(ac), Some(folded)) = (&self.ac, folded) else {
            return Vec::new();
        };
        let mut out: Vec<HomophoneHit<'_, T>> = Vec::new();
        let matches: Vec<aho_corasick::Match> = if self.overlapping {
            ac.find_overlapping_iter(folded).collect()
        } else {
            ac.find_iter(folded).collect()
        };
        for m in matches {
            let (term, canonical) = &self.terms[m.pattern().as_usize()];
            let range = unfold_range(text, m.start(), m.end());
            if &text[range.clone()] == canonical.as_str() {
                continue;
            }
            out.push(HomophoneHit {
                term,
                canonical,
                range,
            });
        }
        out
    }
}

impl HomophoneMatcher<usize> {
    /// [`find`](Self::find) as [`Heard`] terms.
    pub fn heard(&self, text: &str, folded: Option<&[u8]>) -> Vec<Heard> {
        self.find(text, folded)
            .into_iter()
            .map(|h| Heard {
                term: *h.term,
                range: h.range,
                canonical: h.canonical.to_string(),
            })
            .collect()
    }
}

static DICTIONARY: LazyLock<jieba_rs::Jieba> = LazyLock::new(jieba_rs::Jieba::new);

/// Load what [`is_real_word`] and the sound tables load on first use
/// (jieba's dictionary alone is ~0.35 CPU seconds). A job calls this on a
/// thread of its own while it reads its inputs, so that the first
/// listings scored do not wait for it.
pub fn warm_up() {
    LazyLock::force(&SYLLABLE);
    LazyLock::force(&DICTIONARY);
    LazyLock::force(&GAZETTEER);
}

/// 37,400 Chinese brand names seen on Taobao (`kernels/data/SOURCES.md`):
/// a homophone of a protected brand that is another real brand's name
/// (艾玛诗 sounds like 爱马仕, 芭宝丽 like 巴宝莉) is that brand, not a disguise.
pub(crate) const GAZETTEER_TSV: &str = include_str!("../../data/brand_gazetteer_zh.tsv");
static GAZETTEER: LazyLock<std::collections::HashSet<&'static str>> = LazyLock::new(|| {
    GAZETTEER_TSV
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .filter(|n| n.chars().count() >= 2)
        .collect()
});

/// Is `text[range]` a real word rather than a disguise? It is when the
/// dictionary or the brand gazetteer has it, or when a word of two or more
/// characters of its context (jieba's segmentation of up to six characters
/// on each side) crosses one of its edges: 家居服可 is 家居服 + 可, so 服可
/// is no spelling of 复刻; 提高访问 holds 高访 only as the seam of two words.
pub fn is_real_word(text: &str, range: &Range<usize>) -> bool {
    let span = &text[range.clone()];
    if DICTIONARY.has_word(span) || GAZETTEER.contains(span) {
        return true;
    }
    let start = text[..range.start]
        .char_indices()
        .rev()
        .take_while(|(_, c)| super::is_cjk(*c))
        .take(6)
        .last()
        .map_or(range.start, |(i, _)| i);
    let end = range.end
        + text[range.end..]
            .char_indices()
            .take_while(|(_, c)| super::is_cjk(*c))
            .take(6)
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
    let window = &text[start..end];
    let (s, e) = (range.start - start, range.end - start);
    let mut pos = 0;
    for token in DICTIONARY.cut(window, false) {
        let (ts, te) = (pos, pos + token.len());
        pos = te;
        if token.chars().count() >= 2 && ((ts < s && te > s) || (ts < e && te > e)) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> HomophoneMatcher<&'static str> {
        HomophoneMatcher::new(
            [
                ("wechat", "微信"),
                ("replica", "高仿"),
                ("rolex", "劳力士"),
                ("x", "v"),
            ]
            .map(|(t, s)| (t, s.to_string())),
            2,
        )
    }

    fn heard(text: &str) -> Vec<(&'static str, String)> {
        let m = m();
        let f = fold(text);
        m.find(text, f.as_deref())
            .into_iter()
            .map(|h| (*h.term, text[h.range].to_string()))
            .collect()
    }

    #[test]
    fn homophones_are_heard() {
        assert_eq!(heard("加威信abc123"), vec![("wechat", "威信".to_string())]);
        assert_eq!(heard("膏访 包包"), vec![("replica", "膏访".to_string())]);
        assert_eq!(heard("牢力士手表"), vec![("rolex", "牢力士".to_string())]);
        // The term itself is left to the exact matchers.
        assert!(heard("微信 高仿").is_empty());
        assert!(heard("plain ascii").is_empty());
        // Short terms are not matched by sound at all.
        assert_eq!(m().len(), 3);
    }

    #[test]
    fn real_words_are_not_disguises() {
        let t = "元旦礼物";
        assert!(is_real_word(t, &(0..6)), "元旦 is a word");
        let t = "提高访问量";
        assert!(
            is_real_word(t, &(3..9)),
            "高访 is the seam of 提高 and 访问"
        );
        let t = "膏访包包";
        assert!(!is_real_word(t, &(0..6)));
        let t = "女士家居服可";
        assert!(is_real_word(t, &(12..18)), "服可 ends 家居服");
        let t = "艾玛女鞋";
        assert!(is_real_word(t, &(0..6)), "艾玛 is a brand of the gazetteer");
    }
}
