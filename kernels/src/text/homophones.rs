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
    let u = c as u32;
    if !(HAN_BASE..=HAN_END).contains(&u) {
        return None;
    }
    match SYLLABLE[(u - HAN_BASE) as usize] {
        0 => None,
        s => Some(s - 1),
    }
}

/// Bytes of one character in the folded form: an ideograph becomes two
/// bytes shaped like a UTF-8 lead and continuation byte (so a match can only
/// start on a character), ASCII letters and digits stay, anything else is a
/// space (no term spans it).
#[inline]
fn fold_char(c: char, out: &mut Vec<u8>) {
    if c.is_ascii() {
        out.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase() as u8
        } else {
            b' '
        });
    } else if let Some(s) = syllable(c) {
        out.push(0xC0 | (s >> 6) as u8);
        out.push(0x80 | (s & 63) as u8);
    } else {
        out.push(b' ');
    }
}

/// The folded form of normalised text; `None` when it has no ideograph (no
/// homophone can match).
pub fn fold(text: &str) -> Option<Vec<u8>> {
    if text.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        fold_char(c, &mut out);
    }
    Some(out)
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
        f += if syllable(c).is_some() { 2 } else { 1 };
    }
    s..e
}

/// Terms of one vocabulary, matched by sound. `T` says which term.
pub struct HomophoneMatcher<T> {
    ac: Option<AhoCorasick>,
    terms: Vec<(T, String)>,
    overlapping: bool,
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
    /// least `min_syllables` ideographs are kept: shorter ones collide with
    /// too many real words.
    pub fn new(terms: impl IntoIterator<Item = (T, String)>, min_syllables: usize) -> Self {
        Self::build(terms, min_syllables, false)
    }

    /// As [`new`](Self::new), reporting overlapping matches too (加危芯 holds
    /// both 加微 and 微信 by sound; the caller decides which one counts).
    pub fn overlapping(terms: impl IntoIterator<Item = (T, String)>, min_syllables: usize) -> Self {
        Self::build(terms, min_syllables, true)
    }

    fn build(
        terms: impl IntoIterator<Item = (T, String)>,
        min_syllables: usize,
        overlapping: bool,
    ) -> Self {
        let mut kept: Vec<(T, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (t, s) in terms {
            let n = s.chars().filter(|c| syllable(*c).is_some()).count();
            if n >= min_syllables && !s.contains(' ') && seen.insert(s.clone()) {
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

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Terms heard in `text` (normalised; `folded` is `fold(text)`) but not
    /// written as the term itself (the exact matchers see those).
    pub fn find(&self, text: &str, folded: Option<&[u8]>) -> Vec<HomophoneHit<'_, T>> {
        let (Some(ac), Some(folded)) = (&self.ac, folded) else {
            return Vec::new();
        };
        let mut out = Vec::new();
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

static DICTIONARY: LazyLock<jieba_rs::Jieba> = LazyLock::new(jieba_rs::Jieba::new);

/// Is `text[range]` a real word rather than a disguise? It is when the
/// dictionary has it, or when either edge reads as a word with its
/// neighbour (提高访问: 提高 and 访问 are words, 高访 is their seam).
pub fn is_real_word(text: &str, range: &Range<usize>) -> bool {
    let span = &text[range.clone()];
    if DICTIONARY.has_word(span) {
        return true;
    }
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    let first = span.chars().next();
    let last = span.chars().next_back();
    let pair = |a: Option<char>, b: Option<char>| match (a, b) {
        (Some(a), Some(b)) if super::is_cjk(a) && super::is_cjk(b) => {
            DICTIONARY.has_word(&format!("{a}{b}"))
        }
        _ => false,
    };
    pair(before, first) || pair(last, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> HomophoneMatcher<&'static str> {
        HomophoneMatcher::new(
            [("wechat", "微信"), ("replica", "高仿"), ("rolex", "劳力士"), ("x", "v")]
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
        assert!(is_real_word(t, &(3..9)), "高访 is the seam of 提高 and 访问");
        let t = "膏访包包";
        assert!(!is_real_word(t, &(0..6)));
    }
}
