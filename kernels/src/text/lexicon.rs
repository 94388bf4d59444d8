//! One pass over a normalised text for several exact vocabularies (brand
//! names, replica spellings, contact keywords). Each vocabulary keeps its own
//! automaton for callers that need only it; the scan reads each text once
//! with all of them in one automaton and gives every vocabulary exactly the
//! matches its own leftmost-longest automaton would have found.
//!
//! The combined automaton is daachorse's character-wise double array, not
//! aho-corasick's byte DFA: with thousands of CJK terms the DFA's search was
//! the largest single cost of `dajia scan` under perf (13.9% of samples);
//! the double array steps once per character over a compact table. On real
//! titles, one thread, `assess_throughput` went from 226,920 to
//! 343,000–363,000 listings/s with this change. (The homophone matcher's
//! folded-pinyin pass was tried on a byte-wise double array too and measured
//! no faster, so it stays on aho-corasick.)

use std::collections::HashMap;

use daachorse::CharwiseDoubleArrayAhoCorasick;

/// A match of one of a vocabulary's patterns (its index there) in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub pattern: usize,
    pub start: usize,
    pub end: usize,
}

impl From<aho_corasick::Match> for Span {
    fn from(m: aho_corasick::Match) -> Self {
        Span {
            pattern: m.pattern().as_usize(),
            start: m.start(),
            end: m.end(),
        }
    }
}

/// `N` vocabularies in one automaton.
pub struct Lexicon<const N: usize> {
    /// Each distinct pattern once (daachorse refuses duplicates); its value
    /// indexes `owners`. `None` when no vocabulary has a pattern.
    ac: Option<CharwiseDoubleArrayAhoCorasick<u32>>,
    /// Distinct pattern → every (vocabulary, pattern index there) that
    /// spells it (one pattern may be in several vocabularies, or twice in
    /// one).
    owners: Vec<Vec<(usize, usize)>>,
}

impl<const N: usize> Lexicon<N> {
    /// `vocabularies[v]`: the patterns of vocabulary `v`, in the order of its
    /// own automaton (the order breaks ties between equal patterns). Empty
    /// patterns match nothing.
    pub fn new(vocabularies: &[Vec<&str>; N]) -> Self {
        let mut index: HashMap<&str, u32> = HashMap::new();
        let mut owners: Vec<Vec<(usize, usize)>> = Vec::new();
        for (v, list) in vocabularies.iter().enumerate() {
            for (i, p) in list.iter().enumerate() {
                if p.is_empty() {
                    continue;
                }
                let id = *index.entry(p).or_insert_with(|| {
                    owners.push(Vec::new());
                    (owners.len() - 1) as u32
                });
                owners[id as usize].push((v, i));
            }
        }
        let ac = (!index.is_empty()).then(|| {
            CharwiseDoubleArrayAhoCorasick::with_values(index)
                .expect("vocabulary patterns build an automaton")
        });
        Lexicon { ac, owners }
    }

    /// Each vocabulary's leftmost-longest, non-overlapping matches in `text`,
    /// left to right: `out[v]` for vocabulary `v`.
    pub fn scan(&self, text: &str) -> [Vec<Span>; N] {
        let mut out: [Vec<Span>; N] = std::array::from_fn(|_| Vec::new());
        let Some(ac) = &self.ac else {
            return out;
        };
        // Every occurrence, as (vocabulary, start, longest first, pattern,
        // end): the order in which leftmost-longest semantics prefers
        // matches. Titles hold a few at most.
        let mut all: Vec<(usize, usize, std::cmp::Reverse<usize>, usize, usize)> = Vec::new();
        for m in ac.find_overlapping_iter(text) {
            for &(v, p) in &self.owners[m.value() as usize] {
                all.push((
                    v,
                    m.start(),
                    std::cmp::Reverse(m.end() - m.start()),
                    p,
                    m.end(),
                ));
            }
        }
        if all.is_empty() {
            return out;
        }
        all.sort_unstable();
        // Per vocabulary: the leftmost match, the longest there, then the
        // same again from its end.
        let mut resume = [0usize; N];
        for (v, start, _, pattern, end) in all {
            if start < resume[v] {
                continue;
            }
            resume[v] = end;
            out[v].push(Span {
                pattern,
                start,
                end,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aho_corasick::{AhoCorasickBuilder, MatchKind};

    fn own(patterns: &[&str], text: &str) -> Vec<Span> {
        AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(patterns)
            .unwrap()
            .find_iter(text)
            .map(Span::from)
            .collect()
    }

    #[test]
    fn same_matches_as_each_vocabulary_alone() {
        let a = vec!["gucci", "gu", "古驰", "驰", "lv", "lvmh", "驰"];
        let b = vec!["高仿", "仿", "a货", "1:1", "高仿货", "gu"];
        let c = vec!["微信", "v", "vx", "加微", "微"];
        let lex = Lexicon::new(&[a.clone(), b.clone(), c.clone()]);
        for text in [
            "",
            "gucci 古驰 高仿货 加微信 vx123",
            "lvmhlv 高仿仿 a货1:1 v微信微",
            "gugugucci驰驰",
            "无关的标题 没有任何词",
        ] {
            let got = lex.scan(text);
            assert_eq!(got[0], own(&a, text), "{text}");
            assert_eq!(got[1], own(&b, text), "{text}");
            assert_eq!(got[2], own(&c, text), "{text}");
        }
    }

    #[test]
    fn real_titles_scan_as_the_vocabularies_alone() {
        // The knowledge base's own vocabularies over real titles: the
        // combined pass must change nothing a single matcher finds.
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs/data/");
        let titles = std::fs::read_to_string(format!("{root}product_titles_train.tsv")).unwrap();
        let brands: Vec<String> = std::fs::read_to_string(format!("{root}brands_en_zh.tsv"))
            .unwrap()
            .lines()
            .skip(1)
            .flat_map(|l| l.split('\t').take(2).map(crate::text::normalize_text))
            .filter(|s| s.chars().count() >= 2)
            .collect();
        let replica: Vec<String> = crate::text::replica::FAMILIES
            .iter()
            .flat_map(|f| f.spellings.iter().map(|s| crate::text::normalize_text(s)))
            .collect();
        let vocab: [Vec<&str>; 2] = [
            brands.iter().map(String::as_str).collect(),
            replica.iter().map(String::as_str).collect(),
        ];
        let lex = Lexicon::new(&vocab);
        let mut matched = 0;
        for line in titles.lines().skip(1).take(5000) {
            let Some(t) = line.split('\t').nth(1) else {
                continue;
            };
            let text = crate::text::normalize_text(t);
            let got = lex.scan(&text);
            for (v, list) in vocab.iter().enumerate() {
                assert_eq!(got[v], own(list, &text), "{text}");
                matched += got[v].len();
            }
        }
        assert!(
            matched > 100,
            "only {matched} matches: the test saw too little"
        );
    }
}
