//! Text normalisation and the matchers that run on normalised text.

pub mod brands;
pub mod contact;
pub mod evasion;
pub mod homophones;
pub mod learn;
pub mod lexicon;
pub mod normalize;
mod numerals;
pub mod replica;
pub mod variants;

pub use normalize::normalize_text;

/// Han ideographs, kana and hangul: scripts written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F
        | 0x3040..=0x30FF | 0xAC00..=0xD7AF | 0x3005 | 0x3007)
}

/// Latin letters and digits after normalisation (ASCII only: homoglyphs and
/// full-width forms are folded to ASCII first).
pub fn is_latin_word(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// The first `max_bytes` of `s`, cut at a character boundary.
pub fn truncate_at_char(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The last `n` characters of `s` (all of it when shorter).
pub(crate) fn tail_chars(s: &str, n: usize) -> &str {
    match s.char_indices().rev().nth(n.saturating_sub(1)) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// The first `n` characters of `s` (all of it when shorter).
pub(crate) fn head_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Real titles and real spam (raw and hand-normalised) of `jobs/data`: the
/// texts tests compare two ways of computing the same thing on.
#[cfg(test)]
pub(crate) fn real_texts() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs/data/");
    let mut texts = Vec::new();
    for f in ["product_titles_train.tsv", "spam_variant_pairs_train.tsv"] {
        let data = std::fs::read_to_string(format!("{root}{f}")).unwrap();
        texts.extend(
            data.lines()
                .skip(1)
                .flat_map(|l| l.split('\t').map(str::to_string)),
        );
    }
    texts
}

/// xorshift64: a fixed, repeatable sequence of draws for tests that
/// generate their inputs.
#[cfg(test)]
pub(crate) struct XorShift(pub u64);

#[cfg(test)]
impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A draw below `n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
