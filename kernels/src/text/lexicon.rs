//! One pass over a normalised text for several exact vocabularies (brand
//! names, replica spellings, contact keywords). Each vocabulary keeps its own
//! automaton for callers that need only it; the scan reads each text once
//! with all of them in one DFA and gives every vocabulary exactly the matches
//! its own leftmost-longest automaton would have found. (Each DFA pass costs
//! about the same whatever its size, so three passes cost three times one.)

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

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
    ac: AhoCorasick,
    /// Pattern of the automaton → (vocabulary, pattern index there).
    owners: Vec<(usize, usize)>,
}

impl<const N: usize> Lexicon<N> {
    /// `vocabularies[v]`: the patterns of vocabulary `v`, in the order of its
    /// own automaton (the order breaks ties between equal patterns).
    pub fn new(vocabularies: &[Vec<&str>; N]) -> Self {
        let mut owners = Vec::new();
        let mut patterns: Vec<&str> = Vec::new();
        for (v, list) in vocabularies.iter().enumerate() {
            for (i, p) in list.iter().enumerate() {
                owners.push((v, i));
                patterns.push(p);
            }
        }
        let ac = AhoCorasickBuilder::new()
            // Every occurrence: each vocabulary picks its own from them.
            .match_kind(MatchKind::Standard)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            // CJK patterns share leading UTF-8 bytes, so a prefilter finds a
            // candidate at almost every character: scanning the DFA is faster.
            .prefilter(false)
            .build(&patterns)
            .expect("vocabulary patterns build an automaton");
        Lexicon { ac, owners }
    }

    /// Each vocabulary's leftmost-longest, non-overlapping matches in `text`,
    /// left to right: `out[v]` for vocabulary `v`.
    pub fn scan(&self, text: &str) -> [Vec<Span>; N] {
        let mut out: [Vec<Span>; N] = std::array::from_fn(|_| Vec::new());
        // (vocabulary, start, longest first, pattern): the order in which
        // leftmost-longest semantics prefers matches.
        let mut all: Vec<(usize, usize, std::cmp::Reverse<usize>, usize, usize)> = self
            .ac
            .find_overlapping_iter(text)
            .map(|m| {
                let (v, p) = self.owners[m.pattern().as_usize()];
                (v, m.start(), std::cmp::Reverse(m.len()), p, m.end())
            })
            .collect();
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
        let a = vec!["gucci", "gu", "古驰", "驰", "lv", "lvmh"];
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
