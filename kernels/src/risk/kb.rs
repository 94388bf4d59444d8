//! The brand knowledge base and the matchers built from it, once per run.

use std::collections::{HashMap, HashSet};

use crate::text::brands::BrandMatcher;
use crate::text::contact::ContactMatcher;
use crate::text::normalize_text;
use crate::text::replica::ReplicaMatcher;

use super::{Thresholds, Weights};

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Brand {
    pub id: i64,
    pub name: String,
    pub aliases: Vec<String>,
    pub categories: Vec<String>,
    pub min_price_cents: Option<i64>,
    pub protected: bool,
    pub authorized_sellers: HashSet<i64>,
}

pub struct KnowledgeBase {
    pub brands: Vec<Brand>,
    pub weights: Weights,
    pub thresholds: Thresholds,
    pub(crate) brand_matcher: BrandMatcher,
    pub(crate) replica: ReplicaMatcher,
    pub(crate) contact: ContactMatcher,
    /// Normalised name or alias → brand index, for the declared `brand` column.
    pub(crate) by_name: HashMap<String, usize>,
    /// Brand id → brand index.
    pub(crate) by_id: HashMap<i64, usize>,
}

impl KnowledgeBase {
    pub fn new(brands: Vec<Brand>, weights: Weights, thresholds: Thresholds) -> Self {
        let brand_matcher = BrandMatcher::new(brands.iter().enumerate().map(|(i, b)| {
            let mut names = vec![b.name.as_str()];
            names.extend(b.aliases.iter().map(String::as_str));
            (i, names)
        }));
        let mut by_name = HashMap::new();
        for (i, b) in brands.iter().enumerate() {
            for n in std::iter::once(&b.name).chain(b.aliases.iter()) {
                by_name.entry(normalize_text(n)).or_insert(i);
            }
        }
        let by_id = brands.iter().enumerate().map(|(i, b)| (b.id, i)).collect();
        KnowledgeBase {
            by_id,
            brands,
            weights,
            thresholds,
            brand_matcher,
            replica: ReplicaMatcher::new(),
            contact: ContactMatcher::new(),
            by_name,
        }
    }

    /// Number of brand name/alias patterns in the matcher.
    pub fn pattern_count(&self) -> usize {
        self.brand_matcher.len()
    }

    /// Brand ids mentioned directly in a text (for the `brand_mentions` UDF).
    pub fn mentioned_brand_ids(&self, text: &str) -> Vec<i64> {
        let mut ids: Vec<i64> = Vec::new();
        for m in self.brand_matcher.find(&normalize_text(text)) {
            if m.kind != crate::text::brands::MentionKind::Direct {
                continue;
            }
            let id = self.brands[m.brand].id;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }
}
