//! The brand knowledge base and the matchers built from it, once per run.

use std::collections::{HashMap, HashSet};

use crate::text::brands::BrandMatcher;
use crate::text::contact::ContactMatcher;
use crate::text::homophones::{Heard, HomophoneMatcher, MinLength};
use crate::text::lexicon::{Lexicon, Span};
use crate::text::normalize_text;
use crate::text::replica::ReplicaMatcher;

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
    pub(crate) brand_matcher: BrandMatcher,
    pub(crate) replica: ReplicaMatcher,
    pub(crate) contact: ContactMatcher,
    /// Normalised name or alias → brand index, for the declared `brand` column.
    pub(crate) by_name: HashMap<String, usize>,
    /// Brand id → brand index.
    pub(crate) by_id: HashMap<i64, usize>,
    /// The three vocabularies' sound terms in one automaton: one pass over
    /// a text hears them all (`Vocab`, term index).
    sound: HomophoneMatcher<(Vocab, usize)>,
    /// The three vocabularies as written, in one automaton: one pass over a
    /// text finds them all (`Lexicon` vocabularies in `Vocab` order).
    exact: Lexicon<3>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vocab {
    Brand,
    Replica,
    Contact,
}

/// What one pass found written in a text, by vocabulary: each matcher's
/// leftmost-longest spans over its own patterns.
#[derive(Debug, Default)]
pub(crate) struct FoundTerms {
    pub brands: Vec<Span>,
    pub replica: Vec<Span>,
    pub contact: Vec<Span>,
}

/// What one pass heard in a text, by vocabulary.
#[derive(Debug, Default)]
pub(crate) struct HeardTerms {
    pub brands: Vec<Heard>,
    pub replica: Vec<Heard>,
    pub contact: Vec<Heard>,
}

impl KnowledgeBase {
    /// The matchers of `brands`' names and aliases, built once per run. What
    /// a finding weighs is not here but in the [`super::Rules`] each
    /// assessment is given (session options may change them mid-session).
    pub fn new(brands: Vec<Brand>) -> Self {
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
        let replica = ReplicaMatcher::new();
        let contact = ContactMatcher::new();
        // Each matcher chose its terms (lengths differ by vocabulary); they
        // are all kept here.
        let sound = HomophoneMatcher::overlapping(
            brand_matcher
                .sound_terms()
                .iter()
                .map(|(i, s)| ((Vocab::Brand, *i), s.clone()))
                .chain(
                    replica
                        .sound_terms()
                        .iter()
                        .map(|(i, s)| ((Vocab::Replica, *i), s.clone())),
                )
                .chain(
                    contact
                        .sound_terms()
                        .iter()
                        .map(|(i, s)| ((Vocab::Contact, *i), s.clone())),
                ),
            MinLength {
                syllables: 1,
                latin: 0,
            },
        );
        let exact = Lexicon::new(&[
            brand_matcher.patterns(),
            replica.patterns(),
            contact.keywords().iter().map(String::as_str).collect(),
        ]);
        KnowledgeBase {
            sound,
            exact,
            by_id,
            brands,
            brand_matcher,
            replica,
            contact,
            by_name,
        }
    }

    /// The vocabularies' terms written in normalised `text` (one pass).
    pub(crate) fn found(&self, text: &str) -> FoundTerms {
        let [brands, replica, contact] = self.exact.scan(text);
        FoundTerms {
            brands,
            replica,
            contact,
        }
    }

    /// The vocabularies' terms heard in normalised `text` (one pass).
    /// `folded` is `homophones::fold(text)`.
    pub(crate) fn hear(&self, text: &str, folded: Option<&[u8]>) -> HeardTerms {
        let mut out = HeardTerms::default();
        if folded.is_none() {
            return out;
        }
        for h in self.sound.find(text, folded) {
            let (vocab, term) = *h.term;
            let heard = Heard {
                term,
                range: h.range,
                canonical: h.canonical.to_string(),
            };
            match vocab {
                Vocab::Brand => out.brands.push(heard),
                Vocab::Replica => out.replica.push(heard),
                Vocab::Contact => out.contact.push(heard),
            }
        }
        out
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
