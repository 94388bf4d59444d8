//! Characters print makes alike: `1` and `l`, `0` and `O`. The recogniser
//! reads each glyph alone and, on small Latin text, takes `l` for `1`
//! ("Sel1er", "1ux8547488"). Where it was unsure, the line's reading is
//! chosen as a whole (Viterbi) by the recogniser's probabilities times a
//! character model learned from real product titles
//! (`jobs/data/product_titles_train.tsv`): how often a letter, a digit,
//! punctuation or a boundary (space, CJK, start, end) follows each of these
//! ("Sel1er" puts a digit between letters, which real titles almost never
//! do), and how common each look-alike is among its kind (`1` is 15% of
//! digits, `l` 4% of letters).
//!
//! No crate does this (a word-level language model would, at far more cost
//! and with a vocabulary the marketplace's IDs and brand names defeat); the
//! model is learned when first used, from the titles compiled in.

use std::sync::OnceLock;

/// Pairs of look-alikes: a digit and a letter; a character belongs to at
/// most one.
pub const PAIRS: [[char; 2]; 2] = [['1', 'l'], ['0', 'O']];

/// Kinds of character.
const BOUNDARY: usize = 0;
const LETTER: usize = 1;
const DIGIT: usize = 2;
const PUNCT: usize = 3;
const KINDS: usize = 4;

fn kind(c: char) -> usize {
    if c.is_ascii_alphabetic() {
        LETTER
    } else if c.is_ascii_digit() {
        DIGIT
    } else if c.is_ascii_punctuation() {
        PUNCT
    } else {
        BOUNDARY
    }
}

/// The pair `c` belongs to and which of the two it is.
pub fn pair_of(c: char) -> Option<(usize, usize)> {
    PAIRS
        .iter()
        .enumerate()
        .find_map(|(p, pair)| pair.iter().position(|&m| m == c).map(|m| (p, m)))
}

/// A character model of real text: kind-to-kind transitions, and how often
/// each look-alike is among the characters of its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct TextModel {
    /// `transitions[a][b]`: a character of kind `b` after one of kind `a`
    /// (texts begin and end at a boundary).
    transitions: [[u32; KINDS]; KINDS],
    /// Characters of each kind.
    of_kind: [u32; KINDS],
    /// Occurrences of each pair's members (`O` counted with `o`: the titles
    /// are mostly lower case, and the question is letter or digit).
    members: [[u32; 2]; PAIRS.len()],
}

impl TextModel {
    /// Counted over `texts`.
    pub fn learn<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut m = TextModel {
            transitions: [[0; KINDS]; KINDS],
            of_kind: [0; KINDS],
            members: [[0; 2]; PAIRS.len()],
        };
        for t in texts {
            let mut prev = BOUNDARY;
            for c in t.chars() {
                let k = kind(c);
                m.transitions[prev][k] += 1;
                m.of_kind[k] += 1;
                if let Some((p, i)) = pair_of(if c == 'o' { 'O' } else { c }) {
                    m.members[p][i] += 1;
                }
                prev = k;
            }
            m.transitions[prev][BOUNDARY] += 1;
        }
        m
    }

    /// Learned from the real product titles compiled into dajia.
    pub fn real_titles() -> &'static TextModel {
        static MODEL: OnceLock<TextModel> = OnceLock::new();
        MODEL.get_or_init(|| {
            let tsv = include_str!("../../../jobs/data/product_titles_train.tsv");
            TextModel::learn(tsv.lines().skip(1).filter_map(|l| l.split('\t').nth(1)))
        })
    }

    /// ln P(kind `b` | kind `a`), add-one smoothed.
    fn ln_transition(&self, a: usize, b: usize) -> f32 {
        let row = self.transitions[a];
        ((row[b] as f32 + 1.0) / (row.iter().sum::<u32>() as f32 + KINDS as f32)).ln()
    }

    /// ln P(member | its kind), add-one smoothed.
    fn ln_member(&self, pair: usize, member: usize) -> f32 {
        let k = kind(PAIRS[pair][member]);
        ((self.members[pair][member] as f32 + 1.0) / (self.of_kind[k] as f32 + 2.0)).ln()
    }

    /// Re-decides the look-alikes of `chars`: `probs[i]` holds the
    /// recogniser's probabilities of the two members of `chars[i]`'s pair
    /// (`None` for every other character, which stays). The choice
    /// maximises the product of those probabilities and the model's over
    /// the whole line.
    pub fn decide(&self, chars: &mut [char], probs: &[Option<[f32; 2]>]) {
        // The candidates at each position, with their log score.
        let options: Vec<Vec<(char, f32)>> = chars
            .iter()
            .zip(probs)
            .map(|(&c, p)| match (pair_of(c), p) {
                (Some((pair, _)), Some(p)) => (0..2)
                    .map(|m| {
                        let ln_p = p[m].max(f32::MIN_POSITIVE).ln();
                        (PAIRS[pair][m], ln_p + self.ln_member(pair, m))
                    })
                    .collect(),
                _ => vec![(c, 0.0)],
            })
            .collect();
        // Viterbi over at most two candidates a position: the best score
        // ending in each candidate, and which candidate before it gave it.
        let mut best: Vec<f32> = vec![0.0];
        let mut prev_kinds = vec![BOUNDARY];
        let mut back: Vec<Vec<usize>> = Vec::with_capacity(chars.len());
        // The best of the previous candidates to go on to kind `k` from.
        let step = |best: &[f32], prev_kinds: &[usize], k: usize| {
            (0..best.len())
                .map(|j| (best[j] + self.ln_transition(prev_kinds[j], k), j))
                .fold((f32::NEG_INFINITY, 0), |a, b| if b.0 > a.0 { b } else { a })
        };
        for opts in &options {
            let (scores, from): (Vec<f32>, Vec<usize>) = opts
                .iter()
                .map(|&(c, s)| {
                    let (score, j) = step(&best, &prev_kinds, kind(c));
                    (score + s, j)
                })
                .unzip();
            best = scores;
            prev_kinds = opts.iter().map(|&(c, _)| kind(c)).collect();
            back.push(from);
        }
        // Lines end at a boundary.
        let (_, mut at) = step(&best, &prev_kinds, BOUNDARY);
        for i in (0..chars.len()).rev() {
            chars[i] = options[i][at].0;
            at = back[i][at];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(text: &str, alt: f32) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        let probs: Vec<Option<[f32; 2]>> = chars
            .iter()
            .map(|&c| {
                pair_of(c).map(|(_, m)| {
                    let mut p = [alt; 2];
                    p[m] = 1.0 - alt;
                    p
                })
            })
            .collect();
        TextModel::real_titles().decide(&mut chars, &probs);
        chars.into_iter().collect()
    }

    #[test]
    fn real_titles_keep_to_one_kind_within_a_word() {
        let m = TextModel::real_titles();
        assert!(m.transitions[LETTER][LETTER] > 10 * m.transitions[LETTER][DIGIT]);
        assert!(m.transitions[DIGIT][DIGIT] > 4 * m.transitions[DIGIT][LETTER]);
        // `1` is a larger share of the digits than `l` of the letters.
        assert!(m.ln_member(0, 0) > m.ln_member(0, 1));
    }

    #[test]
    fn an_unsure_read_follows_its_neighbours() {
        // The model put 40% on the other member.
        for (read, meant) in [
            ("Sel1er", "Seller"),
            ("Danie1We11ington", "DanielWellington"),
            ("1ux8547488", "lux8547488"),
            ("Origina1", "Original"),
            ("2l3", "213"),
            ("20O8", "2008"),
            ("L0GO", "LOGO"),
            // Already right: kept.
            ("1:1 Peak", "1:1 Peak"),
            ("tb10747a", "tb10747a"),
        ] {
            assert_eq!(decided(read, 0.4), meant, "{read}");
        }
    }

    #[test]
    fn a_sure_read_stays() {
        // 0.1% on the other member: what the model saw wins.
        assert_eq!(decided("Sel1er", 0.001), "Sel1er");
        assert_eq!(decided("ksr10", 0.001), "ksr10");
        assert_eq!(decided("2l3", 0.001), "2l3");
        assert_eq!(decided("", 0.3), "");
    }
}
