//! Learning variant characters from real spam: each message as sent is
//! aligned, character by character, with its hand-normalised version
//! (Levenshtein alignment); a substitution `x → y` seen often enough, that
//! is what `x` usually becomes, and whose `x` is rare in real product titles
//! (a character sellers of genuine goods don't write) joins the table
//! `variants.rs` applies. The same code measures, on pairs held out of
//! training, how much of the hand-normalised text and how many contact ids
//! the normaliser recovers, before and after.

use std::collections::HashMap;

use super::contact::ContactMatcher;
use super::variants::Variant;
use super::{is_cjk, normalize::normalize_base};

/// One step of an alignment of `a` (as sent) with `b` (hand-normalised).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Same(char),
    Sub(char, char),
    /// A character of `a` the hand version dropped (noise, separators).
    Drop(char),
    /// A character the hand version added.
    Add(char),
}

/// Minimum-edit alignment (unit costs), O(|a|·|b|): messages are short.
pub fn align(a: &[char], b: &[char]) -> Vec<Step> {
    let (n, m) = (a.len(), b.len());
    let w = m + 1;
    let mut d = vec![0u32; (n + 1) * w];
    for i in 0..=n {
        d[i * w] = i as u32;
    }
    for j in 0..=m {
        d[j] = j as u32;
    }
    for i in 1..=n {
        for j in 1..=m {
            let sub = d[(i - 1) * w + j - 1] + (a[i - 1] != b[j - 1]) as u32;
            d[i * w + j] = sub.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
        }
    }
    let (mut i, mut j) = (n, m);
    let mut steps = Vec::with_capacity(n.max(m));
    while i > 0 || j > 0 {
        if i > 0 && j > 0 && d[i * w + j] == d[(i - 1) * w + j - 1] + (a[i - 1] != b[j - 1]) as u32
        {
            steps.push(if a[i - 1] == b[j - 1] {
                Step::Same(a[i - 1])
            } else {
                Step::Sub(a[i - 1], b[j - 1])
            });
            i -= 1;
            j -= 1;
        } else if i > 0 && d[i * w + j] == d[(i - 1) * w + j] + 1 {
            steps.push(Step::Drop(a[i - 1]));
            i -= 1;
        } else {
            steps.push(Step::Add(b[j - 1]));
            j -= 1;
        }
    }
    steps.reverse();
    steps
}

/// Thresholds of [`learn_variants`].
#[derive(Debug, Clone)]
pub struct LearnOptions {
    /// Times a substitution must be seen.
    pub min_count: u32,
    /// Share of the variant's aligned occurrences that become the target.
    pub min_share: f32,
    /// Most occurrences of the variant allowed in the real product titles.
    pub max_benign: u32,
}

impl Default for LearnOptions {
    fn default() -> Self {
        LearnOptions {
            min_count: 2,
            min_share: 0.6,
            max_benign: 0,
        }
    }
}

/// Text as compared: normalised, spaces dropped (the hand versions drop them).
fn compact(s: &str, normalise: &dyn Fn(&str) -> String) -> Vec<char> {
    normalise(s).chars().filter(|c| *c != ' ').collect()
}

/// Learn substitutions from `(as sent, hand-normalised)` pairs. The baseline
/// normaliser (without any learned table) runs on both sides first, so only
/// what it misses is learned. `benign` is real text of genuine listings.
pub fn learn_variants(
    pairs: &[(&str, &str)],
    benign: &[&str],
    opts: &LearnOptions,
) -> Vec<Variant> {
    let mut subs: HashMap<(char, char), u32> = HashMap::new();
    let mut seen: HashMap<char, u32> = HashMap::new();
    for (raw, hand) in pairs {
        let a = compact(raw, &normalize_base);
        let b = compact(hand, &normalize_base);
        for step in align(&a, &b) {
            match step {
                Step::Same(x) => *seen.entry(x).or_default() += 1,
                Step::Sub(x, y) => {
                    *seen.entry(x).or_default() += 1;
                    *subs.entry((x, y)).or_default() += 1;
                }
                _ => {}
            }
        }
    }
    let mut benign_count: HashMap<char, u32> = HashMap::new();
    for t in benign {
        for c in normalize_base(t).chars() {
            *benign_count.entry(c).or_default() += 1;
        }
    }
    // The most frequent target of each variant.
    let mut best: HashMap<char, (char, u32)> = HashMap::new();
    for (&(x, y), &n) in &subs {
        let e = best.entry(x).or_insert((y, 0));
        if n > e.1 || (n == e.1 && y < e.0) {
            *e = (y, n);
        }
    }
    let mut out: Vec<Variant> = best
        .into_iter()
        .filter_map(|(x, (y, n))| {
            // Variants are ideographs or other non-ASCII letters; targets are
            // ideographs or ASCII letters and digits (筘 → q, θ → 0).
            let from_ok = is_cjk(x) || (!x.is_ascii() && x.is_alphanumeric());
            let to_ok = is_cjk(y) || y.is_ascii_alphanumeric();
            let share = n as f32 / seen[&x].max(1) as f32;
            let benign = benign_count.get(&x).copied().unwrap_or(0);
            (from_ok
                && to_ok
                && n >= opts.min_count
                && share >= opts.min_share
                && benign <= opts.max_benign)
                .then_some(Variant {
                    from: x,
                    to: y,
                    count: n,
                    share,
                    benign,
                })
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.from.cmp(&b.from)));
    out
}

/// The table file `variants.rs` reads.
pub fn to_tsv(variants: &[Variant], header_comment: &str) -> String {
    let mut s = String::new();
    for line in header_comment.lines() {
        s.push_str("# ");
        s.push_str(line);
        s.push('\n');
    }
    s.push_str("from\tto\tcount\tshare\tbenign\n");
    for v in variants {
        s.push_str(&format!(
            "{}\t{}\t{}\t{:.3}\t{}\n",
            v.from, v.to, v.count, v.share, v.benign
        ));
    }
    s
}

/// How much of the hand-normalised text a normaliser recovers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recovery {
    pub pairs: usize,
    /// 1 − edit distance / hand-normalised characters, over all pairs.
    pub char_accuracy: f64,
    /// Pairs recovered exactly.
    pub exact: f64,
    /// Contact ids (WeChat/QQ/phone) found in the hand-normalised text.
    pub contact_ids: usize,
    /// Of those, found in the message as sent.
    pub contact_ids_recovered: usize,
}

/// Measure [`Recovery`] of `normalise` followed by `contacts` (which finds
/// contact ids in normalised text) on `pairs`.
pub fn recovery(
    pairs: &[(&str, &str)],
    normalise: &dyn Fn(&str) -> String,
    contacts: &dyn Fn(&str) -> Vec<String>,
) -> Recovery {
    let mut r = Recovery {
        pairs: pairs.len(),
        ..Default::default()
    };
    let (mut edits, mut total, mut exact) = (0usize, 0usize, 0usize);
    let reference = ContactMatcher::new();
    for (raw, hand) in pairs {
        // The hand side through the baseline only: the figures do not
        // move with the table built in.
        let want = compact(hand, &normalize_base);
        let got = compact(raw, normalise);
        let steps = align(&got, &want);
        let e = steps.iter().filter(|s| !matches!(s, Step::Same(_))).count();
        edits += e;
        total += want.len();
        exact += (e == 0) as usize;
        let hand_ids: Vec<String> = reference
            .find(&normalize_base(hand))
            .into_iter()
            .map(|h| h.id)
            .collect();
        if hand_ids.is_empty() {
            continue;
        }
        let found = contacts(&normalise(raw));
        for id in hand_ids {
            r.contact_ids += 1;
            r.contact_ids_recovered += found.contains(&id) as usize;
        }
    }
    r.char_accuracy = 1.0 - edits as f64 / total.max(1) as f64;
    r.exact = exact as f64 / pairs.len().max(1) as f64;
    r
}

/// Normalisation with an explicit variant table (one being learned, not
/// the one built in): the baseline, the table's substitutions, and the
/// baseline again (a substitution can complete a numeral run or a word).
pub fn normalize_with_table(input: &str, table: &HashMap<char, char>) -> String {
    let base = normalize_base(input);
    if !base.chars().any(|c| table.contains_key(&c)) {
        return base;
    }
    let mapped: String = base.chars().map(|c| *table.get(&c).unwrap_or(&c)).collect();
    normalize_base(&mapped)
}

/// A term over-represented in listings confirmed counterfeit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Candidate {
    pub term: String,
    /// Confirmed-counterfeit listings holding it.
    pub counterfeit: u64,
    /// Confirmed-genuine listings holding it.
    pub genuine: u64,
    /// Smoothed log odds ratio, counterfeit against genuine.
    pub log_odds: f64,
}

/// Terms of normalised text: character 2- to 6-grams of each run without
/// spaces that hold an ideograph (高版本, og版), and whole Latin words.
pub fn terms_of(text: &str) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let chars: Vec<char> = word.chars().collect();
        if chars.iter().all(|c| c.is_ascii()) {
            if chars.len() >= 2 && chars.iter().any(|c| c.is_ascii_alphabetic()) {
                out.insert(word.to_string());
            }
            continue;
        }
        for n in 2..=6 {
            for w in chars.windows(n) {
                if w.iter().any(|c| is_cjk(*c)) {
                    out.insert(w.iter().collect());
                }
            }
        }
    }
    out
}

/// Terms over-represented in counterfeit documents (`(normalised text,
/// confirmed counterfeit)`): in at least `min_count` of them and with a
/// smoothed log odds ratio of at least `min_log_odds`. A term whose longer
/// form has the same counts is left out (看实 inside 看实物).
pub fn candidate_terms(
    docs: &[(String, bool)],
    min_count: u64,
    min_log_odds: f64,
) -> Vec<Candidate> {
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    let (mut nc, mut ng) = (0u64, 0u64);
    for (text, fake) in docs {
        if *fake {
            nc += 1
        } else {
            ng += 1
        }
        for t in terms_of(text) {
            let e = counts.entry(t).or_default();
            if *fake {
                e.0 += 1
            } else {
                e.1 += 1
            }
        }
    }
    let lor = |c: u64, g: u64| {
        let (c, g, nc, ng) = (c as f64, g as f64, nc as f64, ng as f64);
        ((c + 0.5) / (nc - c + 0.5)).ln() - ((g + 0.5) / (ng - g + 0.5)).ln()
    };
    let mut out: Vec<Candidate> = counts
        .iter()
        .filter(|(_, (c, _))| *c >= min_count)
        .map(|(t, &(c, g))| Candidate {
            term: t.clone(),
            counterfeit: c,
            genuine: g,
            log_odds: lor(c, g),
        })
        .filter(|c| c.log_odds >= min_log_odds)
        .collect();
    let keep: Vec<bool> = out
        .iter()
        .map(|a| {
            !out.iter().any(|b| {
                b.term.len() > a.term.len()
                    && b.term.contains(&a.term)
                    && b.counterfeit == a.counterfeit
                    && b.genuine == a.genuine
            })
        })
        .collect();
    let mut i = 0;
    out.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    out.sort_by(|a, b| {
        b.log_odds
            .partial_cmp(&a.log_odds)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.counterfeit.cmp(&a.counterfeit))
            .then(a.term.cmp(&b.term))
    });
    out
}

/// The deterministic split: every fifth pair (index ≡ 4 mod 5) is held out.
pub fn is_held_out(index: usize) -> bool {
    index % 5 == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn alignment_finds_substitutions_and_drops() {
        let steps = align(&chars("加wei宋你"), &chars("加微送你"));
        assert!(steps.contains(&Step::Sub('宋', '送')), "{steps:?}");
        assert_eq!(
            steps.iter().filter(|s| matches!(s, Step::Same(_))).count(),
            2
        );
        assert_eq!(
            align(&[], &chars("ab")),
            vec![Step::Add('a'), Step::Add('b')]
        );
        assert_eq!(align(&chars("a"), &[]), vec![Step::Drop('a')]);
    }

    #[test]
    fn learns_frequent_rare_substitutions_only() {
        let pairs: Vec<(&str, &str)> = vec![
            ("宋你彩金", "送你彩金"),
            ("宋你大礼", "送你大礼"),
            ("宋你好运", "送你好运"),
            // 松 is usually itself: not learned.
            ("松你", "送你"),
            ("松树", "松树"),
            ("松鼠", "松鼠"),
            // 扣 is common in real titles (纽扣, 折扣): not learned.
            ("扣扣 12345", "qq12345"),
            ("扣扣 23456", "qq23456"),
        ];
        let benign = ["纽扣 衬衫", "折扣 女装", "扣子"];
        let v = learn_variants(&pairs, &benign, &LearnOptions::default());
        let got: Vec<(char, char)> = v.iter().map(|v| (v.from, v.to)).collect();
        assert_eq!(got, vec![('宋', '送')], "{v:?}");
        assert_eq!(v[0].count, 3);
        let tsv = to_tsv(&v, "test");
        assert_eq!(super::super::variants::parse(&tsv).unwrap(), v);
    }

    #[test]
    fn over_represented_terms_are_candidates() {
        let mut docs: Vec<(String, bool)> = Vec::new();
        for i in 0..20 {
            docs.push((format!("高版本 女包 {i}"), true));
            docs.push((format!("女包 正品 {i}"), false));
        }
        docs.push(("高版本 钱包".into(), false));
        let c = candidate_terms(&docs, 5, 2.0);
        let terms: Vec<&str> = c.iter().map(|c| c.term.as_str()).collect();
        assert_eq!(terms.first(), Some(&"高版本"), "{c:?}");
        assert_eq!((c[0].counterfeit, c[0].genuine), (20, 1));
        // 女包 is in both; 高版/版本 have the same counts as 高版本.
        assert!(
            !terms.contains(&"女包") && !terms.contains(&"高版"),
            "{terms:?}"
        );
        assert!(terms_of("og版 replica 1").contains("og版"));
        assert!(terms_of("og版 replica 1").contains("replica"));
    }

    #[test]
    fn recovery_counts_text_and_contact_ids() {
        let pairs = [("加 微 13800138000 宋", "加微13800138000送")];
        let contacts = |t: &str| -> Vec<String> {
            ContactMatcher::new()
                .find(t)
                .into_iter()
                .map(|h| h.id)
                .collect()
        };
        let r = recovery(&pairs, &normalize_base, &contacts);
        assert_eq!((r.contact_ids, r.contact_ids_recovered), (1, 1));
        assert!(r.char_accuracy < 1.0);
    }
}
