//! `dajia learn variants`: learn the variant-character table from spam
//! pairs (`raw<TAB>normalised`, with a header), hold out every fifth pair,
//! and report how much of the held-out hand-normalised text and how many
//! of its contact ids the normaliser recovers before and after.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use dajia_kernels::text::contact::ContactMatcher;
use dajia_kernels::text::learn::{
    is_held_out, learn_variants, normalize_with_table, recovery, to_tsv, LearnOptions, Recovery,
};
use dajia_kernels::text::normalize::normalize_base;
use dajia_kernels::text::variants::Variant;

#[derive(Debug, Clone)]
pub struct VariantsOptions {
    /// Spam pairs: `raw<TAB>normalised` per line after a header.
    pub pairs: PathBuf,
    /// Real benign text (TSVs with a `title` or `brand` column: product
    /// titles, brand names): a variant occurring there is not learned.
    pub benign: Vec<PathBuf>,
    /// Where to write the learned table (None: only report).
    pub out: Option<PathBuf>,
    pub learn: LearnOptions,
}

#[derive(Debug, Serialize)]
pub struct VariantsReport {
    pub train_pairs: usize,
    pub held_out_pairs: usize,
    pub skipped_lines: usize,
    pub variants: usize,
    pub before: Recovery,
    pub after: Recovery,
    /// The most frequent learned substitutions, `from→to (count)`.
    pub top: Vec<String>,
    /// Every learned substitution.
    #[serde(skip)]
    pub learned: Vec<Variant>,
}

/// Read `raw<TAB>normalised` pairs; malformed lines are counted, not fatal.
pub fn read_pairs(path: &Path) -> Result<(Vec<(String, String)>, usize)> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text =
        String::from_utf8(text).with_context(|| format!("{} is not UTF-8 text", path.display()))?;
    let mut pairs = Vec::new();
    let mut skipped = 0;
    for line in text.lines().skip(1) {
        match line.split_once('\t') {
            Some((raw, norm)) if !raw.trim().is_empty() && !norm.contains('\t') => {
                pairs.push((raw.to_string(), norm.to_string()))
            }
            _ => skipped += 1,
        }
    }
    if pairs.is_empty() {
        bail!(
            "{}: no `raw<TAB>normalised` pairs after the header",
            path.display()
        );
    }
    Ok((pairs, skipped))
}

/// The `title` (or else `brand`) column of a TSV with a header.
pub fn read_texts(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = header
        .iter()
        .position(|c| *c == "title")
        .or_else(|| header.iter().position(|c| *c == "brand"))
        .with_context(|| {
            format!(
                "{}: no `title` or `brand` column in the header",
                path.display()
            )
        })?;
    Ok(lines
        .filter_map(|l| l.split('\t').nth(col).map(str::to_string))
        .collect())
}

pub fn run(o: &VariantsOptions) -> Result<VariantsReport> {
    let (pairs, skipped) = read_pairs(&o.pairs)?;
    let mut titles = Vec::new();
    for p in &o.benign {
        titles.extend(read_texts(p)?);
    }
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (i, (r, n)) in pairs.iter().enumerate() {
        if is_held_out(i) {
            held.push((r.as_str(), n.as_str()));
        } else {
            train.push((r.as_str(), n.as_str()));
        }
    }
    let benign: Vec<&str> = titles.iter().map(String::as_str).collect();
    let variants = learn_variants(&train, &benign, &o.learn);
    let table: HashMap<char, char> = variants.iter().map(|v| (v.from, v.to)).collect();
    let exact = ContactMatcher::new();
    // Before: the normaliser without learned variants and the contact
    // keywords matched as written; after: the learned table and keywords
    // matched by sound as well.
    let before_ids =
        |t: &str| -> Vec<String> { exact.find_heard(t, &[]).into_iter().map(|h| h.id).collect() };
    let after_ids = |t: &str| -> Vec<String> { exact.find(t).into_iter().map(|h| h.id).collect() };
    let before = recovery(&held, &normalize_base, &before_ids);
    let after = recovery(
        &held,
        &|t: &str| normalize_with_table(t, &table),
        &after_ids,
    );
    if let Some(out) = &o.out {
        let header = format!(
            "Variant characters learned by `dajia learn variants` from {} spam pairs\n(every fifth pair held out); min count {}, min share {}, at most {} times in {} real titles and brand names.",
            train.len(),
            o.learn.min_count,
            o.learn.min_share,
            o.learn.max_benign,
            titles.len()
        );
        std::fs::write(out, to_tsv(&variants, &header))
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(VariantsReport {
        train_pairs: train.len(),
        held_out_pairs: held.len(),
        skipped_lines: skipped,
        variants: variants.len(),
        top: variants.iter().take(20).map(show).collect(),
        before,
        after,
        learned: variants,
    })
}

fn show(v: &Variant) -> String {
    format!("{}→{} ({})", v.from, v.to, v.count)
}

impl std::fmt::Display for VariantsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dajia learn variants: {} training pairs, {} held out ({} malformed lines skipped); {} variants learned",
            self.train_pairs, self.held_out_pairs, self.skipped_lines, self.variants
        )?;
        writeln!(f, "  most frequent: {}", self.top.join(" "))?;
        writeln!(f, "  held-out pairs            before      after")?;
        writeln!(
            f,
            "  character accuracy        {:.4}      {:.4}",
            self.before.char_accuracy, self.after.char_accuracy
        )?;
        writeln!(
            f,
            "  recovered exactly         {:.4}      {:.4}",
            self.before.exact, self.after.exact
        )?;
        writeln!(
            f,
            "  contact ids recovered     {}/{} ({:.4})  {}/{} ({:.4})",
            self.before.contact_ids_recovered,
            self.before.contact_ids,
            ratio(self.before.contact_ids_recovered, self.before.contact_ids),
            self.after.contact_ids_recovered,
            self.after.contact_ids,
            ratio(self.after.contact_ids_recovered, self.after.contact_ids),
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b.max(1) as f64
}
