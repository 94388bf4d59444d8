//! `normalize_text`: the canonical form every text signal matches against.
//!
//! Steps, in order, each chosen so a variant spelling lands on the plain one:
//! 1. NFKC (`unicode-normalization`): full-width → half-width, ① → 1, ligatures.
//! 2. Traditional → simplified Chinese (`fast2s`): 復刻 → 复刻; then the
//!    variant characters learned from real spam (`variants.rs`: 宋 → 送,
//!    氺 → 水, 筘 → q), only those rare in real product titles.
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

use std::borrow::Cow;
use std::sync::LazyLock;

use unicode_normalization::{is_nfkc_quick, IsNormalized, UnicodeNormalization};

use super::numerals::{always_digit, fold_numeral_runs, run_digit};
use super::{is_cjk, is_latin_word};

/// Normalise text for matching. Total: never fails, whatever the input.
pub fn normalize_text(input: &str) -> String {
    normalize_with::<true>(input, false).0
}

/// [`normalize_text`] and its folded form for homophone matching
/// ([`super::homophones::fold`] of it), computed from the characters at
/// hand rather than by decoding the text again.
pub(crate) fn normalize_folded(input: &str) -> (String, Option<Vec<u8>>) {
    normalize_with::<true>(input, true)
}

/// [`normalize_text`] without the learned variant characters: what the
/// normaliser did before it learned them (the learner's baseline).
pub fn normalize_base(input: &str) -> String {
    normalize_with::<false>(input, false).0
}

fn normalize_with<const VARIANTS: bool>(input: &str, fold: bool) -> (String, Option<Vec<u8>>) {
    // Two character buffers per text: kept per thread and reused, since
    // allocating and freeing them was a visible share of the scan's
    // allocator time (one listing's texts are a few dozen characters).
    thread_local! {
        static SCRATCH: std::cell::RefCell<(Vec<char>, Vec<char>)> = Default::default();
    }
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let (chars, out) = &mut *scratch;
        let text = normalize_into::<VARIANTS>(input, chars, out);
        let folded = (fold && !text.is_ascii())
            .then(|| super::homophones::fold_chars(out.iter().copied(), out.len()));
        // A rare huge text does not keep its buffers for the thread's life.
        const KEEP: usize = 1 << 16;
        if chars.capacity() > KEEP {
            *chars = Vec::new();
            *out = Vec::new();
        }
        (text, folded)
    })
}

fn normalize_into<const VARIANTS: bool>(
    input: &str,
    chars: &mut Vec<char>,
    out: &mut Vec<char>,
) -> String {
    chars.clear();
    out.clear();
    chars.reserve(input.len());
    let mut numerals = false;
    // The tables once per text, not once per character (each `LazyLock`
    // access is a check the loop would repeat).
    let (stable, han) = (&STABLE[..], &HAN[..]);
    // Most titles are ASCII, common ideographs without context-dependent
    // conversions and punctuation: stable characters (【】) and `SIMPLE`
    // ones (，！ and full-width letters), each its own NFKC whatever the
    // others, simplified per character. Steps 1–3 then happen in this one
    // pass; anything else starts over below.
    let simple = &SIMPLE[..];
    let mut plain = true;
    for c in input.chars() {
        if c.is_ascii() || is_stable_in(stable, c) {
            numerals |= map_char_in::<VARIANTS>(han, c, chars);
        } else if let Some(nfkc) = simple_nfkc(simple, c) {
            for &d in nfkc {
                numerals |= map_char_in::<VARIANTS>(han, d, chars);
            }
        } else {
            plain = false;
            break;
        }
    }
    if !plain {
        chars.clear();
        numerals = false;
        // Step 2 happens per character in `map_char_in` through `HAN`, except
        // for the few strings that need fast2s's context rules (see `HAN`).
        let nfkc = nfkc(input);
        let simplified: Cow<str> = if needs_fast2s(&nfkc) {
            fast2s::convert(&nfkc).into()
        } else {
            nfkc
        };
        for c in simplified.chars() {
            numerals |= map_char_in::<VARIANTS>(han, c, chars);
        }
    }
    out.reserve(chars.len());
    remove_separators(chars, out, &mut ());
    if numerals {
        fold_numeral_runs(out);
    }
    string_of(out)
}

/// `chars` as a `String`. `String: FromIterator<char>` (and `String::push`)
/// checks capacity and branches per byte, then the bytes are known to be
/// UTF-8 only by construction; this was a tenth of the text path's
/// instructions. Here each character's encoding (`char::encode_utf8`) is one
/// 4-byte store into a buffer sized for the worst case, and the UTF-8 is not
/// validated again.
fn string_of(chars: &[char]) -> String {
    // Four bytes per character, the most one takes (texts are short-lived
    // and a few dozen characters: not worth a pass to size them exactly).
    let mut buf = vec![0u8; chars.len() * 4];
    let mut at = 0;
    for &c in chars {
        let mut word = [0u8; 4];
        let n = c.encode_utf8(&mut word).len();
        buf[at..at + 4].copy_from_slice(&word);
        at += n;
    }
    buf.truncate(at);
    debug_assert!(std::str::from_utf8(&buf).is_ok());
    // SAFETY: `buf` is exactly the UTF-8 encodings of `chars`, one after
    // another (each store puts a character's bytes first; the bytes past
    // them are overwritten by the next character's or cut off).
    unsafe { String::from_utf8_unchecked(buf) }
}

/// Normalised text with, for each of its characters, the byte range of the
/// input character it came from: how a match in normalised text is traced
/// back to what the seller wrote (`evasion.rs`). Only run on text where a
/// signal fired, so it works character by character (NFKC and fast2s per
/// character); its text can differ from [`normalize_text`] on combining
/// sequences and context-dependent conversions, which callers allow for.
pub struct Traced {
    pub text: String,
    /// Per character of `text`: its byte offset in `text` and the input byte range.
    pub origins: Vec<(usize, std::ops::Range<usize>)>,
}

impl Traced {
    /// The input byte range that produced `text[start..end]`.
    pub fn input_range(&self, start: usize, end: usize) -> Option<std::ops::Range<usize>> {
        let first = self.origins.iter().find(|(o, _)| *o >= start)?;
        let last = self.origins.iter().rev().find(|(o, _)| *o < end)?;
        (first.0 < end).then(|| first.1.start..last.1.end.max(first.1.start))
    }
}

pub fn normalize_traced(input: &str) -> Traced {
    let mut chars: Vec<char> = Vec::with_capacity(input.len());
    let mut from: Vec<std::ops::Range<usize>> = Vec::with_capacity(input.len());
    let mut numerals = false;
    let mut buf = [0u8; 4];
    let (stable, han) = (&STABLE[..], &HAN[..]);
    // Step 3 for `c`, each output character remembering the input range.
    let mut map = |c: char, range: std::ops::Range<usize>| {
        let before = chars.len();
        numerals |= map_char_in::<true>(han, c, &mut chars);
        from.extend((before..chars.len()).map(|_| range.clone()));
    };
    for (i, c) in input.char_indices() {
        let end = i + c.len_utf8();
        // A stable character is its own NFKC and simplified form: mapped
        // as it is (nearly every character of a listing).
        if is_stable_in(stable, c) {
            map(c, i..end);
            continue;
        }
        let one = nfkc(c.encode_utf8(&mut buf)).into_owned();
        let one: Cow<str> = if needs_fast2s(&one) {
            fast2s::convert(&one).into()
        } else {
            one.into()
        };
        for c2 in one.chars() {
            map(c2, i..end);
        }
    }
    let mut out = Vec::with_capacity(chars.len());
    let mut kept: Vec<usize> = Vec::with_capacity(chars.len());
    remove_separators(&chars, &mut out, &mut kept);
    if numerals {
        fold_numeral_runs(&mut out);
    }
    let mut text = String::with_capacity(out.len() * 3);
    let mut origins = Vec::with_capacity(out.len());
    for (c, k) in out.into_iter().zip(kept) {
        origins.push((text.len(), from[k].clone()));
        text.push(c);
    }
    Traced { text, origins }
}

/// Steps 1 and 2 leave `c` as it is whatever surrounds it: ASCII; an
/// ideograph of the main block that fast2s converts without context; or a
/// starter (combining class 0) that NFKC's quick check passes ("Yes") and
/// that fast2s is not run on (`needs_fast2s_char`). A text made only of
/// these is in NFKC (the quick check would say "Yes" for all of it: no
/// character is "Maybe" or "No", no combining classes to misorder) and
/// needs no fast2s, so each character can be mapped on its own. Characters
/// past plane 1 (the BMP and the plane of emoji and mathematical letters)
/// always go the general way.
///
/// `stable` is the [`STABLE`] table, read once by the caller.
#[inline(always)]
fn is_stable_in(stable: &[u64], c: char) -> bool {
    (c as usize) < STABLE_END && has_bit(stable, c)
}

/// Where [`STABLE`] and [`SIMPLE`] end: planes 0 and 1 (16 KiB of bits).
const STABLE_END: usize = 0x20000;

/// [`is_stable_in`]'s table for planes 0 and 1, one bit per character: the Unicode lookups
/// behind it cost more than the rest of the pass per character.
static STABLE: LazyLock<Vec<u64>> = LazyLock::new(|| {
    bit_table(|c| {
        c.is_ascii()
            || (!needs_fast2s_char(c)
                && unicode_normalization::char::canonical_combining_class(c) == 0
                && is_nfkc_quick(std::iter::once(c)) == IsNormalized::Yes)
    })
});

/// One bit per character of planes 0 and 1: whether `holds`.
fn bit_table(holds: impl Fn(char) -> bool) -> Vec<u64> {
    let mut bits = vec![0u64; STABLE_END / 64];
    for c in (0..STABLE_END as u32).filter_map(char::from_u32) {
        if holds(c) {
            bits[c as usize / 64] |= 1 << (c as usize % 64);
        }
    }
    bits
}

/// Bit `c` of a [`bit_table`]; `c` below [`STABLE_END`].
#[inline(always)]
fn has_bit(bits: &[u64], c: char) -> bool {
    let u = c as usize;
    bits[u / 64] & (1 << (u % 64)) != 0
}

/// Characters of planes 0 and 1 that are not stable but whose NFKC is the same
/// wherever they stand next to stable characters or each other, with that
/// NFKC: the full-width punctuation (，！：（）) and letters of real
/// listings, which would otherwise send a whole title through
/// `unicode-normalization` (9.5% of the text path's instructions on real
/// titles and spam); also circled numbers (① → 1), compatibility
/// ideographs, Hangul compatibility letters and mathematical letters.
///
/// Why it holds: a character's NFKC decomposes it fully, then composes. Its
/// decomposition here starts with a starter that NFKC's quick check passes
/// ("Yes"), so nothing is reordered across it and nothing before can compose
/// with it (only "Maybe" characters are the second of a composition); a
/// stable character, or another of these, after it is likewise neither
/// reordered nor composed with what comes before. And the NFKC is itself
/// made of stable characters, so steps 2 and 3 map it per character, as the
/// general way would. Sorted, for binary search.
static SIMPLE: LazyLock<Vec<(char, Box<[char]>)>> = LazyLock::new(|| {
    use unicode_normalization::char::canonical_combining_class as ccc;
    let stable = &STABLE[..];
    (0x80..STABLE_END as u32)
        .filter_map(char::from_u32)
        .filter(|&c| !is_stable_in(stable, c))
        .filter_map(|c| {
            let first = c.nfkd().next()?;
            let nfkc: Box<[char]> = std::iter::once(c).nfkc().collect();
            let starts_clean =
                ccc(first) == 0 && is_nfkc_quick(std::iter::once(first)) == IsNormalized::Yes;
            (starts_clean && !nfkc.is_empty() && nfkc.iter().all(|&d| is_stable_in(stable, d)))
                .then_some((c, nfkc))
        })
        .collect()
});

/// `c`'s NFKC when `c` is in [`SIMPLE`] (read once by the caller).
#[inline]
fn simple_nfkc(simple: &[(char, Box<[char]>)], c: char) -> Option<&[char]> {
    simple
        .binary_search_by_key(&c, |(k, _)| *k)
        .ok()
        .map(|i| &simple[i].1[..])
}

/// NFKC, borrowing text that is already in that form.
pub(crate) fn nfkc(input: &str) -> Cow<'_, str> {
    // A text of stable characters is in NFKC (see `is_stable_in`). One bit
    // per character instead of `is_nfkc_quick`, whose lookups cost ~2,300
    // instructions per call from `evasion.rs` on real spam. Texts already in
    // NFKC that hold a character stable only for NFKC (an extension or
    // contextual ideograph such as 乾, a combining mark the quick check
    // passes, as in Thai, Hebrew or Arabic) come out of `nfkc_pieces` as
    // they went in, in a new string.
    let stable = &STABLE[..];
    if input
        .chars()
        .all(|c| c.is_ascii() || is_stable_in(stable, c))
    {
        input.into()
    } else {
        nfkc_pieces(input).into()
    }
}

/// NFKC of `input`, normalising only the pieces that can change. A text
/// may be cut before any [`is_stable_in`] character (combining class 0 and
/// NFKC quick check "Yes": it composes with nothing before it, which is
/// where ICU's `hasBoundaryBefore` cuts too) and each piece normalised on
/// its own. Runs of stable characters are copied; a piece from the stable
/// character before an unstable one (which may compose with it) up to the
/// next stable character goes through `unicode-normalization`. A title
/// with one full-width comma normalises two characters, not all of them
/// (on 20,000 catalog listings, `nfkc` took 10.7M of the text path's 276M
/// instructions with whole-text NFKC, 5.0M by pieces).
fn nfkc_pieces(input: &str) -> String {
    let stable = &STABLE[..];
    let mut out = String::with_capacity(input.len());
    // `input[..copied]` is in `out`; `from`, while set, starts the piece
    // being normalised; `last_stable` is the latest stable character's.
    let simple = &SIMPLE[..];
    let (mut copied, mut from, mut last_stable) = (0, None, None);
    let mut chars = input.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_stable_in(stable, c) {
            if let Some(s) = from.take() {
                out.extend(input[s..i].nfkc());
                copied = i;
            }
            last_stable = Some(i);
        } else if let Some(nfkc) = simple_nfkc(simple, c).filter(|_| {
            // Outside a piece and before a stable or `SIMPLE` character (or
            // the text's end): its own NFKC. Not before another unstable
            // one, which may compose with it (Ａ + U+0301 → Á): then it
            // starts that one's piece.
            from.is_none()
                && chars.peek().is_none_or(|&(_, n)| {
                    is_stable_in(stable, n) || simple_nfkc(simple, n).is_some()
                })
        }) {
            out.push_str(&input[copied..i]);
            out.extend(nfkc);
            copied = i + c.len_utf8();
        } else if from.is_none() {
            // The piece starts at the latest place nothing before composes
            // with: a stable character not yet copied, or where copying
            // stopped (a stable or `SIMPLE` character: see the peek above).
            let s = last_stable.map_or(copied, |l| l.max(copied));
            out.push_str(&input[copied..s]);
            from = Some(s);
        }
    }
    match from {
        Some(s) => out.extend(input[s..].nfkc()),
        None => out.push_str(&input[copied..]),
    }
    out
}

const HAN_BASE: u32 = 0x4E00;
const HAN_END: u32 = 0x9FFF;
/// `HAN` flags.
const CONTEXTUAL: u8 = 1;
const RUN_DIGIT: u8 = 2;
const ALWAYS_DIGIT: u8 = 4;
/// A learned variant character (`variants.rs`): its replacement is `HAN.2`.
const VARIANT: u8 = 8;

/// Per character of the CJK Unified Ideographs block: its simplified form and
/// flags. `fast2s` owns the traditional→simplified mapping; calling it per
/// string costs two or three hash lookups per Han character, so its
/// single-character mapping is read once into this dense table. Characters it
/// converts depending on their neighbours (乾隆 vs 乾燥, 回覆 vs 覆盖) are
/// flagged CONTEXTUAL: a string holding one goes through `fast2s::convert`
/// whole. RUN_DIGIT marks numerals that may belong to a spelled-out number.
/// The third field is the learned variant's replacement (VARIANT).
static HAN: LazyLock<Vec<(char, u8, char)>> = LazyLock::new(|| {
    let variants = super::variants::table();
    const CONTEXT: &[char] = &[
        '兒', '覆', '夥', '藉', '瞭', '麽', '幺', '於', '乾', '著', '苧', '闔', '鍾', '讎', '畫',
    ];
    (HAN_BASE..=HAN_END)
        .map(|u| {
            let c = char::from_u32(u).expect("BMP ideograph");
            let s = fast2s::convert(c.encode_utf8(&mut [0u8; 4]))
                .chars()
                .next()
                .unwrap_or(c);
            let mut flags = 0;
            if CONTEXT.contains(&c) {
                flags |= CONTEXTUAL;
            }
            if run_digit(s).is_some() || run_digit(c).is_some() {
                flags |= RUN_DIGIT;
            }
            if always_digit(s).is_some() {
                flags |= ALWAYS_DIGIT;
            }
            let v = variants.get(&s).or_else(|| variants.get(&c)).copied();
            if v.is_some() {
                flags |= VARIANT;
            }
            (s, flags, v.unwrap_or(s))
        })
        .collect()
});

/// Learned variants outside the main ideograph block (extension A
/// ideographs, kana, bopomofo, Greek letters), sorted for binary search.
static OTHER_VARIANTS: LazyLock<Vec<(char, char)>> = LazyLock::new(|| {
    let mut v: Vec<(char, char)> = super::variants::table()
        .into_iter()
        .filter(|(from, _)| !(HAN_BASE..=HAN_END).contains(&(*from as u32)))
        .collect();
    v.sort();
    v
});

fn other_variant(c: char) -> Option<char> {
    let v = &*OTHER_VARIANTS;
    v.binary_search_by_key(&c, |(f, _)| *f).ok().map(|i| v[i].1)
}

/// What step 2 does to one character of the main ideograph block: its
/// replacement and whether that is a learned variant (else traditional →
/// simplified). `None` when the character stays. For naming evasions.
pub(crate) fn han_change(c: char) -> Option<(char, bool)> {
    let u = c as u32;
    if !(HAN_BASE..=HAN_END).contains(&u) {
        return other_variant(c).map(|v| (v, true));
    }
    let (s, flags, v) = HAN[(u - HAN_BASE) as usize];
    if flags & VARIANT != 0 && v != c {
        Some((v, true))
    } else if flags & CONTEXTUAL == 0 && s != c {
        Some((s, false))
    } else {
        None
    }
}

fn needs_fast2s(s: &str) -> bool {
    s.chars().any(needs_fast2s_char)
}

/// A character step 2 leaves to fast2s: extension and compatibility
/// ideographs, and the main block's CONTEXTUAL ones.
fn needs_fast2s_char(c: char) -> bool {
    let u = c as u32;
    u >= 0x3400
        && (matches!(u, 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
            || ((HAN_BASE..=HAN_END).contains(&u)
                && HAN[(u - HAN_BASE) as usize].1 & CONTEXTUAL != 0))
}

/// Step 3 for one character, pushing its replacement(s); `han` is the
/// [`HAN`] table, read once by the caller. Returns whether it may be part
/// of a spelled-out number (so step 5 is needed). ASCII and the main
/// ideograph block (nearly every character of a listing) inline, the rest
/// out of line.
#[inline(always)]
fn map_char_in<const VARIANTS: bool>(
    han: &[(char, u8, char)],
    c: char,
    out: &mut Vec<char>,
) -> bool {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        // Step 5 rewrites only runs holding Chinese numerals.
        return false;
    }
    let u = c as u32;
    if (HAN_BASE..=HAN_END).contains(&u) {
        let (s, flags, v) = han[(u - HAN_BASE) as usize];
        if flags & (VARIANT | ALWAYS_DIGIT | CONTEXTUAL) == 0 {
            out.push(s);
            return flags & RUN_DIGIT != 0;
        }
        // A CONTEXTUAL character is already converted by fast2s: keep it.
        let s = if flags & CONTEXTUAL != 0 { c } else { s };
        if VARIANTS && flags & VARIANT != 0 {
            out.push(v);
            return run_digit(v).is_some();
        }
        if flags & ALWAYS_DIGIT != 0 {
            out.push(always_digit(s).unwrap_or(s));
            return true;
        }
        out.push(s);
        return flags & RUN_DIGIT != 0;
    }
    map_other::<VARIANTS>(c, out)
}

/// [`map_char_in`] outside ASCII and the main ideograph block.
#[inline(never)]
fn map_other<const VARIANTS: bool>(c: char, out: &mut Vec<char>) -> bool {
    if let Some(d) = always_digit(c) {
        out.push(d);
        return true;
    }
    if VARIANTS {
        if let Some(v) = other_variant(c) {
            out.push(v);
            return run_digit(v).is_some() || v.is_ascii_digit();
        }
    }
    if matches!(c, '➕' | '✚' | '✙' | '﹢') {
        out.push('+');
        return false;
    }
    if is_cjk(c) || !c.is_alphanumeric() {
        out.push(c);
        return run_digit(c).is_some();
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
    false
}

/// Characters that are part of words: letters, digits, CJK, and the two
/// symbols that carry meaning in listings (`+` as in "+V", `_` inside ids).
#[inline(always)]
fn is_word(c: char) -> bool {
    if c.is_ascii() {
        ASCII_WORD & (1 << c as u32) != 0
    } else if (HAN_BASE..=HAN_END).contains(&(c as u32)) {
        true // the main ideograph block: most of a listing's characters
    } else if (c as usize) < STABLE_END {
        has_bit(&WORD, c)
    } else {
        is_word_slow(c)
    }
}

fn is_word_slow(c: char) -> bool {
    is_cjk(c) || c.is_alphanumeric()
}

/// [`is_word_slow`] for planes 0 and 1, one bit per character: the
/// punctuation of real listings (，。【】“”) otherwise costs a binary search
/// of Unicode's alphabetic table each (2.5% of the text path's instructions
/// on real titles and spam).
static WORD: LazyLock<Vec<u64>> = LazyLock::new(|| bit_table(is_word_slow));

/// [`is_word`] for ASCII, one bit per character.
const ASCII_WORD: u128 = {
    let mut bits = 0u128;
    let mut c = 0u8;
    while c < 128 {
        if c.is_ascii_alphanumeric() || c == b'+' || c == b'_' {
            bits |= 1 << c;
        }
        c += 1;
    }
    bits
};

/// Where each output character of step 4 came from: nothing in the hot
/// path (`()`), its index in the input for [`normalize_traced`].
trait Track {
    fn push(&mut self, index: usize);
    fn extend(&mut self, indices: std::ops::Range<usize>);
}
impl Track for () {
    #[inline(always)]
    fn push(&mut self, _: usize) {}
    #[inline(always)]
    fn extend(&mut self, _: std::ops::Range<usize>) {}
}
impl Track for Vec<usize> {
    #[inline(always)]
    fn push(&mut self, index: usize) {
        Vec::push(self, index)
    }
    #[inline(always)]
    fn extend(&mut self, indices: std::ops::Range<usize>) {
        Extend::extend(self, indices)
    }
}

/// Masking characters: written in place of a letter or inside a word
/// ("G*cci", "Gu*cci"); between two Latin letters they join the word.
pub(crate) fn is_mask(c: char) -> bool {
    matches!(c, '*' | '×' | '✱' | '✲' | '⁎' | '∗' | '※')
}

/// Step 4.
fn remove_separators(chars: &[char], out: &mut Vec<char>, track: &mut impl Track) {
    let n = chars.len();
    let mut i = 0;
    // The last separator run removed and the output length after it: one
    // character later, the same (non-space) separator again is a word
    // spelled out character by character ("1.比.1Coach", "A·A·ACoach"),
    // whatever follows the last one.
    let mut last_join: Option<(&[char], usize)> = None;
    while i < n {
        let c = chars[i];
        if is_word(c) {
            // The whole run of word characters at once.
            let start = i;
            i += 1;
            while i < n && is_word(chars[i]) {
                i += 1;
            }
            out.extend_from_slice(&chars[start..i]);
            track.extend(start..i);
            continue;
        }
        // A masking character inside a Latin word ("gu*cci") is not a word break.
        if is_mask(c)
            && i > 0
            && i + 1 < n
            && chars[i - 1].is_ascii_alphabetic()
            && chars[i + 1].is_ascii_alphabetic()
        {
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
            track.push(i);
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
            track.push(start);
            continue;
        }
        let sep = &chars[start..i];
        let left_joinable = joinable_left(&chars[..start]);
        let right_joinable = joinable_right(&chars[i..]);
        let spelled_out = left_joinable
            && last_join.is_some_and(|(prev, len)| {
                prev == sep && len + 1 == out.len() && !sep.iter().all(|c| c.is_whitespace())
            });
        if left_joinable && (right_joinable || spelled_out) {
            last_join = Some((sep, out.len()));
        } else {
            out.push(' ');
            track.push(start);
            last_join = None;
        }
    }
}

/// The word before a separator (in the input) is a CJK character or a single
/// Latin letter/digit (a spaced-out spelling), so the separator can go.
fn joinable_left(before: &[char]) -> bool {
    match before.last() {
        Some(&c) if is_cjk(c) => true,
        Some(&c) if is_letter(c) => before.len() < 2 || !is_letter(before[before.len() - 2]),
        _ => false,
    }
}

fn joinable_right(rest: &[char]) -> bool {
    match rest.first() {
        Some(&c) if is_cjk(c) => true,
        Some(&c) if is_letter(c) => rest.len() < 2 || !is_letter(rest[1]),
        _ => false,
    }
}

/// A letter or digit of an alphabetic script (ASCII, or one kept as itself
/// such as è in H.e.r.m.è.s).
fn is_letter(c: char) -> bool {
    is_latin_word(c) || (c.is_alphanumeric() && !is_cjk(c))
}

#[cfg(test)]
mod tests {
    use super::normalize_text as n;

    /// Steps 1–5 done the general way for every text: NFKC and fast2s over
    /// the whole string, then each character mapped.
    fn general(input: &str) -> String {
        use unicode_normalization::UnicodeNormalization;
        // Whole-text NFKC, as `unicode-normalization` does it.
        let nfkc: String = input.nfkc().collect();
        let simplified: String = if super::needs_fast2s(&nfkc) {
            fast2s::convert(&nfkc)
        } else {
            nfkc
        };
        let mut chars = Vec::new();
        let mut numerals = false;
        for c in simplified.chars() {
            numerals |= super::map_char_in::<true>(&super::HAN, c, &mut chars);
        }
        let mut out = Vec::new();
        super::remove_separators(&chars, &mut out, &mut ());
        if numerals {
            super::fold_numeral_runs(&mut out);
        }
        out.into_iter().collect()
    }

    #[test]
    fn the_one_pass_gives_what_the_general_way_gives() {
        // Real titles and real spam (raw and hand-normalised), plus texts
        // with what sends a text the general way: combining marks after a
        // punctuation-free starter, compatibility forms, contextual and
        // extension ideographs, next to the punctuation the one pass takes.
        let mut texts = crate::text::real_texts();
        for t in [
            "【正品】e\u{301}té，包",
            "【】cafe\u{301}",
            "Ａ【】",
            "①【高仿】",
            "乾隆【】",
            "㐀【】",
            "豈【】",
            "𠀀【】",
            "ﬁ【】",
            "“高仿”…",
            "—¥￥·",
            "\u{300}【】",
            "《微信》",
        ] {
            texts.push(t.to_string());
        }
        let mut checked = 0;
        for t in &texts {
            assert_eq!(n(t), general(t), "{t:?}");
            checked += 1;
        }
        assert!(checked > 10_000, "{checked} texts");
    }

    #[test]
    fn nfkc_by_pieces_is_nfkc_of_the_whole() {
        use unicode_normalization::UnicodeNormalization;
        // Real titles and spam, then strings drawn from characters that
        // compose, reorder or decompose next to stable ones: combining marks
        // (in and out of canonical order), Hangul jamo and syllables,
        // compatibility forms, full-width punctuation, astral ideographs.
        let mut texts = crate::text::real_texts();
        let pool: Vec<char> = "ae高仿包，、。！（）【】Ａ１①ﬁ㍿ᄀ\u{1161}\u{11A8}가각\u{300}\u{301}\u{316}\u{327}\u{308}\u{3099}か\u{FF9E}ｶ\u{0F73}\u{0F71}𠀀豈乾 .:x\u{200B}🔥𝐀🄰\u{1F3FB}"
            .chars()
            .collect();
        let mut rng = crate::text::XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..60_000 {
            let len = (rng.0 >> 60) as usize + 1;
            let t: String = (0..len).map(|_| pool[rng.below(pool.len())]).collect();
            texts.push(t);
        }
        for t in &texts {
            let whole: String = t.nfkc().collect();
            assert_eq!(super::nfkc(t), whole, "{t:?}");
            assert_eq!(super::nfkc_pieces(t), whole, "{t:?}");
        }
    }

    /// Every [`super::SIMPLE`] character between neighbours of each kind:
    /// stable ones, and ones that compose with what is before them (jamo,
    /// combining and voicing marks), decompose, or need fast2s. Whole-text
    /// NFKC and the general way are the references.
    #[test]
    fn simple_characters_are_their_own_nfkc_between_stable_ones() {
        use unicode_normalization::UnicodeNormalization;
        let around = [
            "",
            "a",
            "高",
            "가",
            "\u{1100}",
            "ｶ",
            "，",
            "\u{301}",
            "\u{1161}",
            "\u{11A8}",
            "\u{3099}",
            "\u{FF9E}",
            "乾",
            "𠀀",
            "🔥",
            "\u{1F3FB}",
        ];
        let simple = &*super::SIMPLE;
        // The full-width forms alone are 200; the compatibility ideographs
        // and Hangul letters many more.
        assert!(simple.len() > 1_000, "{}", simple.len());
        assert!(super::simple_nfkc(simple, '，') == Some(&[','][..]));
        assert!(super::simple_nfkc(simple, 'Ａ') == Some(&['A'][..]));
        assert!(super::simple_nfkc(simple, 'ｶ') == Some(&['カ'][..]));
        assert!(super::simple_nfkc(simple, '\u{301}').is_none());
        for (c, _) in simple {
            for a in around {
                for b in around {
                    let t = format!("{a}{c}{b}");
                    let whole: String = t.nfkc().collect();
                    assert_eq!(super::nfkc(&t), whole, "{t:?}");
                    assert_eq!(super::nfkc_pieces(&t), whole, "{t:?}");
                    assert_eq!(n(&t), general(&t), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn word_characters_are_read_from_the_table_as_computed() {
        for c in (0..0x30000u32).filter_map(char::from_u32) {
            let expected = if c.is_ascii() {
                c.is_ascii_alphanumeric() || c == '+' || c == '_'
            } else {
                super::is_word_slow(c)
            };
            assert_eq!(super::is_word(c), expected, "{c:?}");
        }
    }

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
            ("spaced latin with accents", "H.e.r.m.è.s", "hermès"),
            ("spaced digits", "1 3 8 0 0", "13800"),
            ("latin word boundary kept", "高仿 LV 包", "高仿 lv 包"),
            (
                "spelled out up to a glued word",
                "1.比.1Coach 包",
                "1比1coach 包",
            ),
            ("spelled out latin glued", "A·A·ACoach", "aaacoach"),
            ("spaces keep the word apart", "A A ACoach", "aa acoach"),
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
    fn simplified_table_agrees_with_fast2s() {
        for t in [
            "復刻版 愛馬仕 勞力士 古馳 貨單純級",
            "乾隆年間 乾燥劑",
            "回覆 覆蓋",
            "看著 著名",
            "㐀𠀀 繁體",
        ] {
            let ours: String = t
                .chars()
                .map(|c| {
                    let u = c as u32;
                    if super::needs_fast2s(t) || !(super::HAN_BASE..=super::HAN_END).contains(&u) {
                        c
                    } else {
                        super::HAN[(u - super::HAN_BASE) as usize].0
                    }
                })
                .collect();
            let want = fast2s::convert(t);
            if !super::needs_fast2s(t) {
                assert_eq!(ours, want, "{t}");
            }
            assert_eq!(
                super::normalize_text(t),
                super::normalize_text(&want),
                "{t}"
            );
        }
    }

    #[test]
    fn strings_are_built_as_collect_builds_them() {
        // Every UTF-8 length, its edges, and long runs of each.
        let one: Vec<char> = "\u{0}a\u{7F}\u{80}é\u{7FF}\u{800}长\u{FFFF}\u{10000}𠀀\u{10FFFF}"
            .chars()
            .collect();
        let mut texts = vec![Vec::new(), one.clone()];
        for &c in &one {
            texts.push(vec![c; 1000]);
        }
        texts.push(one.iter().cycle().take(10_001).copied().collect());
        for chars in texts {
            assert_eq!(super::string_of(&chars), chars.iter().collect::<String>());
        }
    }

    #[test]
    fn the_folded_form_is_the_fold_of_the_text() {
        let data = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../jobs/data/spam_variant_pairs_train.tsv"
        ))
        .unwrap();
        let extra = [
            "",
            "abc",
            "高仿 13800138000",
            "一三八零零",
            "Ｇ①🔥é",
            "乾隆",
        ];
        let mut checked = 0;
        for t in data.lines().flat_map(|l| l.split('\t')).chain(extra) {
            let (text, folded) = super::normalize_folded(t);
            assert_eq!(text, n(t), "{t:?}");
            assert_eq!(folded, crate::text::homophones::fold(&text), "{t:?}");
            checked += 1;
        }
        assert!(checked > 5_000, "{checked} texts");
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
