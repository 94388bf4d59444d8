//! Variant characters learned from real spam: shape-similar and homophone
//! substitutes (宋 → 送, 唫 → 金, 筘 → q) that sellers write to get past word
//! filters. The table is data, `kernels/data/variant_chars.tsv`, written by
//! `dajia learn variants` from the spam pairs in `shared/data/` (see
//! `learn.rs` for how a substitution earns its place, and the README for
//! its held-out figures); normalisation applies it after traditional →
//! simplified conversion.

use std::collections::HashMap;

/// The reviewed table, embedded at build time.
pub const VARIANT_CHARS_TSV: &str = include_str!("../../data/variant_chars.tsv");

/// One learned substitution.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub from: char,
    pub to: char,
    /// Times the substitution was seen in the training pairs.
    pub count: u32,
    /// Of the times `from` was aligned to anything, the share aligned to `to`.
    pub share: f32,
    /// Times `from` occurs in the real product titles (the benign check).
    pub benign: u32,
}

/// Parse a table (`from	to	count	share	benign`, `#` comments, a header).
pub fn parse(tsv: &str) -> Result<Vec<Variant>, String> {
    let mut out = Vec::new();
    for (n, line) in tsv.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') || line.starts_with("from\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let one = |s: &str| {
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(format!("line {}: {s:?} is not one character", n + 1)),
            }
        };
        if cols.len() != 5 {
            return Err(format!(
                "line {}: expected 5 columns, got {}",
                n + 1,
                cols.len()
            ));
        }
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|e| format!("line {}: {s:?}: {e}", n + 1))
        };
        out.push(Variant {
            from: one(cols[0])?,
            to: one(cols[1])?,
            count: num(cols[2])? as u32,
            share: num(cols[3])? as f32,
            benign: num(cols[4])? as u32,
        });
    }
    Ok(out)
}

/// The embedded table as a map. A malformed embedded table is a build bug,
/// caught by this module's test.
pub fn table() -> HashMap<char, char> {
    parse(VARIANT_CHARS_TSV)
        .expect("kernels/data/variant_chars.tsv parses")
        .into_iter()
        .map(|v| (v.from, v.to))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_and_is_not_empty() {
        let t = parse(VARIANT_CHARS_TSV).unwrap();
        assert!(t.len() >= 20, "{} learned variants", t.len());
        for v in &t {
            assert_ne!(v.from, v.to);
        }
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(parse("宋\t送\t3\t0.9").is_err(), "missing column");
        assert!(parse("宋宋\t送\t3\t0.9\t0").is_err(), "two characters");
        assert!(parse("宋\t送\tmany\t0.9\t0").is_err(), "not a number");
        assert_eq!(
            parse("# comment\nfrom\tto\tcount\tshare\tbenign\n").unwrap(),
            vec![]
        );
    }
}
