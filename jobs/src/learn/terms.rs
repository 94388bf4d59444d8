//! `dajia learn terms`: candidate replica terms from the catalog's labels.
//! Listings bought in test purchases and found counterfeit are compared
//! with those found genuine; terms over-represented among the counterfeit
//! ones, not already in the vocabulary and not brand names, are written
//! with their counts for a person to review into
//! `kernels/data/replica_terms.tsv` (which the scan reads).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use serde::Serialize;

use dajia_kernels::text::contact::ContactMatcher;
use dajia_kernels::text::learn::{candidate_terms, Candidate};
use dajia_kernels::text::normalize_text;
use dajia_kernels::text::replica::ReplicaMatcher;

use crate::catalog::Catalog;
use crate::session;

#[derive(Debug, Clone)]
pub struct TermsOptions {
    pub catalog: String,
    /// Listings partition to read (hive `dt=`), as for the scan.
    pub date: Option<chrono::NaiveDate>,
    /// Write the candidates here as TSV (`term counterfeit genuine log_odds`).
    pub out: Option<PathBuf>,
    pub min_count: u64,
    pub min_log_odds: f64,
    /// Candidates printed.
    pub top: usize,
}

#[derive(Debug, Serialize)]
pub struct TermsReport {
    pub counterfeit_listings: u64,
    pub genuine_listings: u64,
    pub candidates: Vec<Candidate>,
    #[serde(skip)]
    pub top: usize,
}

pub async fn run(o: &TermsOptions) -> Result<TermsReport> {
    let catalog = Catalog::open_any(&o.catalog, o.date).await?;
    catalog.require(&["listings", "test_purchases", "brands"])?;
    let ctx = session::new_session(&Default::default(), None);
    catalog.register(&ctx).await?;
    let kb = crate::kb::load(&ctx).await?;
    // The latest verdict per listing.
    let sql = "SELECT CAST(l.title AS VARCHAR), CAST(l.description AS VARCHAR), CAST(t.verdict AS VARCHAR) \
               FROM listings l JOIN (SELECT listing_id, last_value(verdict ORDER BY purchased_at) AS verdict \
               FROM test_purchases GROUP BY listing_id) t ON l.listing_id = t.listing_id \
               WHERE t.verdict IN ('counterfeit', 'genuine')";
    let mut docs: Vec<(String, bool)> = Vec::new();
    for b in ctx
        .sql(sql)
        .await?
        .collect()
        .await
        .context("reading test purchases")?
    {
        let title = cast(b.column(0), &DataType::Utf8)?;
        let title = title.as_string::<i32>();
        let desc = cast(b.column(1), &DataType::Utf8)?;
        let desc = desc.as_string::<i32>();
        let verdict = cast(b.column(2), &DataType::Utf8)?;
        let verdict = verdict.as_string::<i32>();
        for i in 0..b.num_rows() {
            let mut text = if title.is_null(i) { "" } else { title.value(i) }.to_string();
            if !desc.is_null(i) {
                text.push(' ');
                text.push_str(desc.value(i));
            }
            docs.push((normalize_text(&text), verdict.value(i) == "counterfeit"));
        }
    }
    let fakes = docs.iter().filter(|d| d.1).count() as u64;
    let genuine = docs.len() as u64 - fakes;
    if fakes == 0 || genuine == 0 {
        bail!(
            "test_purchases holds {fakes} counterfeit and {genuine} genuine verdicts on listings of this catalog: both are needed"
        );
    }
    let replica = ReplicaMatcher::new();
    let contact = ContactMatcher::new();
    let contact_keywords = contact.keywords();
    let candidates: Vec<Candidate> = candidate_terms(&docs, o.min_count, o.min_log_odds)
        .into_iter()
        // Already known: vocabulary, brand names, contact keywords, numbers.
        .filter(|c| replica.find(&c.term).is_empty())
        .filter(|c| kb.mentioned_brand_ids(&c.term).is_empty())
        .filter(|c| !contact_keywords.iter().any(|k| c.term.contains(k.as_str())))
        .filter(|c| !c.term.chars().all(|ch| ch.is_ascii_digit()))
        .collect();
    if let Some(out) = &o.out {
        let mut s = String::from("term\tcounterfeit\tgenuine\tlog_odds\n");
        for c in &candidates {
            s.push_str(&format!(
                "{}\t{}\t{}\t{:.3}\n",
                c.term, c.counterfeit, c.genuine, c.log_odds
            ));
        }
        std::fs::write(out, s).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(TermsReport {
        counterfeit_listings: fakes,
        genuine_listings: genuine,
        candidates,
        top: o.top,
    })
}

impl std::fmt::Display for TermsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "dajia learn terms: {} listings confirmed counterfeit, {} confirmed genuine; {} candidate terms",
            self.counterfeit_listings,
            self.genuine_listings,
            self.candidates.len()
        )?;
        writeln!(f, "  term                 counterfeit  genuine  log odds")?;
        for c in self.candidates.iter().take(self.top) {
            writeln!(
                f,
                "  {:<20} {:>11}  {:>7}  {:>8.2}",
                c.term, c.counterfeit, c.genuine, c.log_odds
            )?;
        }
        write!(
            f,
            "  review: add the true replica terms to kernels/data/replica_terms.tsv (family, spelling, counts, source)"
        )
    }
}
