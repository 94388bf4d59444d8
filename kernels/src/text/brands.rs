//! Brand mentions: Aho-Corasick over the normalised names and aliases of the
//! knowledge base, with word boundaries for Latin names and a compatibility
//! context ("适用于 iPhone", "for iPhone") that marks accessories.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::evasion::{LatinDisguises, Transform};
use super::homophones::{fold, is_real_word, Heard, HomophoneMatcher};
use super::lexicon::Span;
use super::{head_chars, is_latin_word, normalize_text, tail_chars};

use std::sync::LazyLock;

/// How a brand is mentioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MentionKind {
    /// The listing presents itself as the brand's product.
    Direct,
    /// The listing names the brand as what it fits ("for iPhone", "华为专用"):
    /// an accessory, not a claim to be the brand.
    Compatibility,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mention {
    /// Index of the brand in the list the matcher was built from.
    pub brand: usize,
    /// The alias as it matched (normalised).
    pub alias: String,
    pub kind: MentionKind,
    /// Byte range in the normalised text.
    pub start: usize,
    pub end: usize,
}

/// A brand read only through a disguise normalisation does not undo: a
/// homophone of its Chinese name (牢力士) or a Latin name with masks or
/// digits for letters (G*cci, R0lex).
#[derive(Debug, Clone, PartialEq)]
pub struct DisguisedMention {
    pub brand: usize,
    /// The name it stands for (normalised).
    pub name: String,
    /// As written.
    pub raw: String,
    pub transform: Transform,
}

/// Words that turn a following brand name into a compatibility statement.
const COMPAT_BEFORE: &[&str] = &[
    "适用于",
    "适用",
    "适配",
    "兼容",
    "for ",
    "fit ",
    "fits ",
    "compatible with ",
    "用于",
    "配",
];
/// Words that do the same right after the brand name.
const COMPAT_AFTER: &[&str] = &[
    "专用",
    "通用",
    "适用",
    "兼容",
    "配件",
    "手机壳",
    "保护壳",
    "保护套",
    "钢化膜",
    "贴膜",
    "充电器",
    "数据线",
    "表带",
    "替换",
    "case",
    "charger",
    "cable",
    "strap",
];

pub struct BrandMatcher {
    ac: AhoCorasick,
    /// Pattern index → (brand index, normalised alias).
    patterns: Vec<(usize, String)>,
    /// Chinese names of three syllables or more, by sound (two-syllable
    /// names collide with too many real words: 耐克 and 耐磕).
    homophones: HomophoneMatcher<usize>,
    latin: LatinDisguises<usize>,
}

/// Fewest ideographs of a brand name matched by sound.
pub const BRAND_HOMOPHONE_SYLLABLES: usize = 3;

impl BrandMatcher {
    /// Build from `(brand index, names and aliases)`. Names shorter than two
    /// characters after normalisation are skipped (they match everywhere).
    pub fn new<'a>(brands: impl IntoIterator<Item = (usize, Vec<&'a str>)>) -> Self {
        let mut patterns: Vec<(usize, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (idx, names) in brands {
            for name in names {
                let norm = normalize_text(name);
                // Multi-word names also match with the spaces gone: letters
                // spaced out one by one ("A.l.e.x.a.n.d.e.r w.a.n.g") join
                // into one word in normalisation.
                let joined: String = norm.chars().filter(|c| *c != ' ').collect();
                for p in [norm, joined] {
                    if p.chars().count() < 2 || !seen.insert((idx, p.clone())) {
                        continue;
                    }
                    patterns.push((idx, p));
                }
            }
        }
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            // A full DFA: a few MB at most, and the fastest search.
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            // CJK patterns share leading UTF-8 bytes, so a prefilter finds a
            // candidate at almost every character: scanning the DFA is faster.
            .prefilter(false)
            .start_kind(aho_corasick::StartKind::Both)
            .build(patterns.iter().map(|(_, p)| p.as_str()))
            .expect("brand patterns build an automaton");
        let homophones = HomophoneMatcher::new(
            patterns.iter().map(|(b, p)| (*b, p.clone())),
            BRAND_HOMOPHONE_SYLLABLES,
        );
        let latin = LatinDisguises::new(patterns.iter().map(|(b, p)| (*b, p.clone())));
        BrandMatcher {
            ac,
            patterns,
            homophones,
            latin,
        }
    }

    /// Brand names heard in normalised `text` (by this matcher's own
    /// automaton; the knowledge base hears all vocabularies in one pass).
    pub fn hear(&self, text: &str) -> Vec<Heard> {
        self.homophones.heard(text, fold(text).as_deref())
    }

    /// The names matched by sound (brand index, normalised name).
    pub fn sound_terms(&self) -> &[(usize, String)] {
        self.homophones.terms()
    }

    /// Brands read through a disguise: names `heard` in normalised `text`
    /// that are not real words, and masked or leetspeak Latin names in the
    /// input `raw`. Compatibility statements ("适用于 ...") are left out.
    /// `latin`: whether `raw` may hold a masked or leetspeak word at all
    /// (`evasion::has_candidate`).
    pub fn find_disguised(
        &self,
        raw: &str,
        text: &str,
        heard: &[Heard],
        latin: bool,
    ) -> Vec<DisguisedMention> {
        let mut out = Vec::new();
        for h in heard {
            if is_compat_context(text, h.range.start, h.range.end) || is_real_word(text, &h.range) {
                continue;
            }
            // Another brand's own name is not a disguise of this one.
            if self
                .find(&text[h.range.clone()])
                .iter()
                .any(|m| m.kind == MentionKind::Direct)
            {
                continue;
            }
            out.push(DisguisedMention {
                brand: h.term,
                name: h.canonical.clone(),
                raw: text[h.range.clone()].to_string(),
                transform: Transform::Homophone,
            });
        }
        if latin {
            for h in self.latin.find_candidate(raw) {
                out.push(DisguisedMention {
                    brand: *h.term,
                    name: h.name.to_string(),
                    raw: h.raw,
                    transform: h.transform,
                });
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Does a brand name start at byte `pos` (no boundary checks)? For
    /// matchers that accept a brand glued to a word ("replicaGucci").
    pub fn starts_at(&self, text: &str, pos: usize) -> bool {
        let input = aho_corasick::Input::new(text)
            .range(pos..)
            .anchored(aho_corasick::Anchored::Yes);
        self.ac.find(input).is_some()
    }

    /// The names and aliases as the automaton holds them, in its order
    /// (for a [`Lexicon`](super::lexicon::Lexicon) that scans several vocabularies at once).
    pub fn patterns(&self) -> Vec<&str> {
        self.patterns.iter().map(|(_, p)| p.as_str()).collect()
    }

    /// Brand mentions in normalised text, left to right.
    pub fn find(&self, text: &str) -> Vec<Mention> {
        self.mentions(text, self.ac.find_iter(text).map(Span::from))
    }

    /// As [`find`](Self::find), from this matcher's leftmost-longest
    /// `spans` in `text` found by the caller ([`Lexicon::scan`](super::lexicon::Lexicon::scan)).
    pub fn mentions(&self, text: &str, spans: impl IntoIterator<Item = Span>) -> Vec<Mention> {
        let mut out = Vec::new();
        for m in spans {
            let (brand, alias) = &self.patterns[m.pattern];
            if !latin_boundaries_ok(text, m.start, m.end, alias) {
                continue;
            }
            let kind = if is_compat_context(text, m.start, m.end) {
                MentionKind::Compatibility
            } else {
                MentionKind::Direct
            };
            out.push(Mention {
                brand: *brand,
                alias: alias.clone(),
                kind,
                start: m.start,
                end: m.end,
            });
        }
        out
    }
}

/// A Latin alias must not sit inside a longer Latin word ("lv" in "silver");
/// a digit may follow (model numbers: "iphone15").
fn latin_boundaries_ok(text: &str, start: usize, end: usize, alias: &str) -> bool {
    let first_latin = alias.chars().next().is_some_and(is_latin_word);
    let last_latin = alias.chars().last().is_some_and(is_latin_word);
    if first_latin {
        let mut before = text[..start].chars().rev();
        if let Some(p) = before.next() {
            // A lone digit glued on after other script is the end of
            // something else ("1比1coach"), not part of the name.
            let lone_digit =
                p.is_ascii_digit() && !before.next().is_some_and(|q| q.is_ascii_alphanumeric());
            if is_latin_word(p) && !lone_digit {
                return false;
            }
        }
    }
    if last_latin {
        if let Some(n) = text[end..].chars().next() {
            if n.is_ascii_alphabetic() {
                return false;
            }
        }
    }
    true
}

fn is_compat_context(text: &str, start: usize, end: usize) -> bool {
    // One automaton per side instead of a substring search per word: this
    // runs for every brand mention and heard name (it was 3.8% of the text
    // path's time as 30 `contains` calls).
    static BEFORE: LazyLock<AhoCorasick> =
        LazyLock::new(|| AhoCorasick::new(COMPAT_BEFORE).expect("compatibility words"));
    static AFTER: LazyLock<AhoCorasick> =
        LazyLock::new(|| AhoCorasick::new(COMPAT_AFTER).expect("compatibility words"));
    BEFORE.is_match(tail_chars(&text[..start], 12)) || AFTER.is_match(head_chars(&text[end..], 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> BrandMatcher {
        BrandMatcher::new(vec![
            (0, vec!["Louis Vuitton", "LV", "路易威登", "驴牌"]),
            (1, vec!["Apple", "iPhone", "苹果"]),
            (2, vec!["Gucci", "古驰", "古馳"]),
            (3, vec!["X"]),
        ])
    }

    fn found(text: &str) -> Vec<(usize, MentionKind)> {
        matcher()
            .find(&normalize_text(text))
            .into_iter()
            .map(|m| (m.brand, m.kind))
            .collect()
    }

    #[test]
    fn table() {
        use MentionKind::*;
        let cases: &[(&str, &str, Vec<(usize, MentionKind)>)] = &[
            ("plain latin", "LV 老花 手袋", vec![(0, Direct)]),
            ("inside a latin word", "silver necklace", vec![]),
            ("chinese alias", "路易威登男士皮带", vec![(0, Direct)]),
            ("nickname", "驴牌包包", vec![(0, Direct)]),
            ("obfuscated with dots", "G.U.C.C.I 包", vec![(2, Direct)]),
            ("full-width", "ＧＵＣＣＩ包", vec![(2, Direct)]),
            ("traditional alias", "古馳包", vec![(2, Direct)]),
            ("homoglyph", "Guссi bag", vec![(2, Direct)]),
            (
                "model number after latin",
                "iPhone15 Pro",
                vec![(1, Direct)],
            ),
            (
                "compat before",
                "适用于苹果iPhone15手机壳",
                vec![(1, Compatibility), (1, Compatibility)],
            ),
            (
                "compat english",
                "Case for iPhone 15",
                vec![(1, Compatibility)],
            ),
            ("compat after", "苹果专用充电线", vec![(1, Compatibility)]),
            ("single-letter alias skipped", "X 光片", vec![]),
            (
                "glued after a replica ratio",
                "1比1Gucci 包",
                vec![(2, Direct)],
            ),
            ("model number before", "x1gucci", vec![]),
            (
                "multi-word spaced out",
                "L.o.u.i.s V.u.i.t.t.o.n 包",
                vec![(0, Direct)],
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(&found(text), want, "{name}: {text}");
        }
    }
}
