//! The signals: one module per signal with its matcher's use and its
//! reasons, and the registry of every reason code an assessment can give,
//! with the weights (`Weights` fields) that price it and what it means.
//! `assess` runs the modules in the registry's order; codes are an enum, not
//! string literals; `dajia sql`'s help lists them from here, and the
//! README's signals table is checked against it
//! (`the_readme_table_lists_every_signal`), so they cannot drift.
//!
//! Adding a signal: a module here with its entry in [`MODULES`] (what
//! `assess` walks), its code in [`ReasonCode`] and [`SIGNALS`], its weight
//! in `Weights`, its README row.

pub(crate) mod brand;
pub(crate) mod contact;
pub(crate) mod evasion;
pub(crate) mod images;
pub(crate) mod links;
pub(crate) mod price;
pub(crate) mod replica;

use super::assess::{ListingInput, Reason, Text};
use super::kb::KnowledgeBase;
use super::weights::Weights;

/// How a signal module runs within one assessment.
#[derive(Clone, Copy)]
pub(crate) enum Run {
    /// Once per listing, seeing every text of it.
    Listing(fn(&KnowledgeBase, &Weights, &ListingInput<'_>, &[Text<'_>], &mut Findings)),
    /// Once per text (title, description, each image's text). Consecutive
    /// per-text modules run text by text, so that their reasons keep the
    /// order of the texts.
    PerText(fn(&KnowledgeBase, &Weights, &Text<'_>, &mut Findings)),
}

/// A signal module: its name, the codes it can give, how it runs.
pub(crate) struct Module {
    pub name: &'static str,
    pub codes: &'static [ReasonCode],
    pub run: Run,
}

/// Every signal module in the order `assess` runs them; each reads what the
/// earlier ones found (`Findings`) and adds its reasons.
pub(crate) const MODULES: &[Module] = &[
    Module {
        name: "brand",
        codes: &[ReasonCode::BrandMention, ReasonCode::UnauthorizedSeller],
        run: Run::Listing(|kb, w, l, texts, f| {
            brand::resolve(kb, l, texts, f);
            brand::reasons(kb, w, l, f);
        }),
    },
    Module {
        name: "price",
        codes: &[ReasonCode::PriceBelowFloor],
        run: Run::Listing(|kb, w, l, _, f| price::reason(kb, w, l, f)),
    },
    Module {
        name: "replica",
        codes: &[ReasonCode::ReplicaVocabulary],
        run: Run::PerText(replica::on_text),
    },
    Module {
        name: "contact",
        codes: &[ReasonCode::ContactDiversion],
        run: Run::PerText(contact::on_text),
    },
    Module {
        name: "evasion",
        codes: &[ReasonCode::Evasion],
        run: Run::Listing(|_, w, _, _, f| evasion::reason(w, f)),
    },
    Module {
        name: "links",
        codes: &[ReasonCode::LinkedToClosedSeller],
        run: Run::Listing(|_, w, l, _, f| links::reason(w, l, f)),
    },
    Module {
        name: "images",
        codes: &[
            ReasonCode::ImageMatchesOfficial,
            ReasonCode::ImageMatchesKnownFake,
        ],
        run: Run::Listing(|kb, w, l, _, f| images::reasons(kb, w, l, f)),
    },
];

/// Runs every module of [`MODULES`] on one listing.
pub(crate) fn run_all(
    kb: &KnowledgeBase,
    w: &Weights,
    l: &ListingInput<'_>,
    texts: &[Text<'_>],
    f: &mut Findings,
) {
    let mut i = 0;
    while i < MODULES.len() {
        match MODULES[i].run {
            Run::Listing(run) => {
                let before = f.reasons.len();
                run(kb, w, l, texts, f);
                declared(&MODULES[i], &f.reasons[before..]);
                i += 1;
            }
            Run::PerText(_) => {
                let end = (i..MODULES.len())
                    .find(|&k| matches!(MODULES[k].run, Run::Listing(_)))
                    .unwrap_or(MODULES.len());
                for t in texts {
                    for m in &MODULES[i..end] {
                        if let Run::PerText(run) = m.run {
                            let before = f.reasons.len();
                            run(kb, w, t, f);
                            declared(m, &f.reasons[before..]);
                        }
                    }
                }
                i = end;
            }
        }
    }
}

/// In debug builds (every test), a module giving a code its registry entry
/// does not declare is a bug: the registry would no longer say which
/// module gives a code.
fn declared(m: &Module, added: &[Reason]) {
    debug_assert!(
        added.iter().all(|r| m.codes.contains(&r.code)),
        "signal module `{}` gave a code it does not declare: {:?}",
        m.name,
        added.iter().map(|r| r.code).collect::<Vec<_>>()
    );
}

/// What one assessment has found so far: each signal reads it and adds to
/// it, in the registry's order.
#[derive(Default)]
pub(crate) struct Findings {
    /// The brand the listing is about (index into the knowledge base).
    pub brand: Option<usize>,
    /// Where it was found ("the title", "image img-1", ...).
    pub brand_source: String,
    /// Found only by sound: may be another brand of the same sound.
    pub brand_by_sound: bool,
    /// Named only as what an accessory is for ("for iPhone").
    pub compat_only: Option<usize>,
    /// Taken from the seller's declared brand column.
    pub via_declared: bool,
    /// The brand of an official photo the listing's image copies.
    pub image_brand: Option<i64>,
    /// Disguises undone to read terms (the `evasion` signal weighs them).
    pub evasions: Vec<evasion::Evasion>,
    pub reasons: Vec<Reason>,
}

impl Findings {
    /// Record the disguise `undone` (the span as written, the transforms),
    /// if any, of a term in `source` that reads as `reads_as`.
    pub fn evasion(
        &mut self,
        source: &str,
        undone: Option<(String, Vec<crate::text::evasion::Transform>)>,
        reads_as: impl FnOnce() -> String,
    ) {
        if let Some((raw, how)) = undone {
            self.evasions.push(evasion::Evasion {
                source: source.to_string(),
                raw,
                reads_as: reads_as(),
                how,
            });
        }
    }
}

/// A reason code (written as `ReasonCode::as_str` in `risk_scores.reasons`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    BrandMention,
    UnauthorizedSeller,
    PriceBelowFloor,
    ReplicaVocabulary,
    ContactDiversion,
    Evasion,
    LinkedToClosedSeller,
    ImageMatchesOfficial,
    ImageMatchesKnownFake,
}

/// One signal: its code, the `Weights` fields that weigh it, its meaning.
#[derive(Debug, Clone, Copy)]
pub struct Signal {
    pub code: ReasonCode,
    pub weights: &'static [&'static str],
    pub doc: &'static str,
}

/// Every signal, in the order reasons are usually listed.
pub const SIGNALS: &[Signal] = &[
    Signal {
        code: ReasonCode::BrandMention,
        weights: &["brand_mention"],
        doc: "A protected brand is named in the title, description or an image's text.",
    },
    Signal {
        code: ReasonCode::UnauthorizedSeller,
        weights: &["unauthorized_seller"],
        doc: "The brand named is sold by a seller not on its authorised list.",
    },
    Signal {
        code: ReasonCode::PriceBelowFloor,
        weights: &["price_min", "price_max", "floor_ratio"],
        doc: "The price is below floor_ratio x the brand's floor price in its categories.",
    },
    Signal {
        code: ReasonCode::ReplicaVocabulary,
        weights: &["replica_factor"],
        doc: "Replica vocabulary (高仿, A货, 1:1, replica ...) outside benign contexts.",
    },
    Signal {
        code: ReasonCode::ContactDiversion,
        weights: &["contact_diversion"],
        doc: "A WeChat/QQ/Telegram id or phone number offered off-platform.",
    },
    Signal {
        code: ReasonCode::Evasion,
        weights: &["evasion_strong", "evasion_weak"],
        doc: "A brand, replica or contact term read only by undoing a disguise.",
    },
    Signal {
        code: ReasonCode::LinkedToClosedSeller,
        weights: &[
            "link_id_number",
            "link_id_photo",
            "link_bank_account",
            "link_phone",
            "link_device",
            "link_address",
            "link_id_name",
            "link_two_values",
            "link_hop",
        ],
        doc: "The seller is linked to a seller closed for counterfeiting through shared identity attributes, directly or through a chain of linked sellers.",
    },
    Signal {
        code: ReasonCode::ImageMatchesOfficial,
        weights: &["image_matches_official"],
        doc: "A listing image copies a brand's official photo; the seller is not authorised.",
    },
    Signal {
        code: ReasonCode::ImageMatchesKnownFake,
        weights: &["image_matches_known_fake"],
        doc: "A listing image copies an image of a listing confirmed counterfeit.",
    },
];

impl ReasonCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::BrandMention => "brand_mention",
            ReasonCode::UnauthorizedSeller => "unauthorized_seller",
            ReasonCode::PriceBelowFloor => "price_below_floor",
            ReasonCode::ReplicaVocabulary => "replica_vocabulary",
            ReasonCode::ContactDiversion => "contact_diversion",
            ReasonCode::Evasion => "evasion",
            ReasonCode::LinkedToClosedSeller => "linked_to_closed_seller",
            ReasonCode::ImageMatchesOfficial => "image_matches_official",
            ReasonCode::ImageMatchesKnownFake => "image_matches_known_fake",
        }
    }

    pub fn parse(s: &str) -> Option<ReasonCode> {
        SIGNALS.iter().map(|s| s.code).find(|c| c.as_str() == s)
    }

    pub fn signal(self) -> &'static Signal {
        SIGNALS
            .iter()
            .find(|s| s.code == self)
            .expect("every code is in SIGNALS (tested)")
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ReasonCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::Weights;

    /// Every code is given by exactly one module `assess` runs.
    #[test]
    fn every_code_has_one_module() {
        for s in SIGNALS {
            let by: Vec<&str> = MODULES
                .iter()
                .filter(|m| m.codes.contains(&s.code))
                .map(|m| m.name)
                .collect();
            assert_eq!(by.len(), 1, "{} is given by {by:?}", s.code);
        }
        let codes: usize = MODULES.iter().map(|m| m.codes.len()).sum();
        assert_eq!(codes, SIGNALS.len(), "a module lists a code twice");
    }

    #[test]
    fn every_code_is_registered_once_with_real_weights() {
        let names: Vec<&str> = Weights::default().named().iter().map(|(n, _)| *n).collect();
        let mut seen = std::collections::HashSet::new();
        let mut priced = std::collections::HashSet::new();
        for s in SIGNALS {
            assert!(seen.insert(s.code), "{} twice", s.code);
            assert_eq!(ReasonCode::parse(s.code.as_str()), Some(s.code));
            assert_eq!(s.code.signal().code, s.code);
            assert!(!s.doc.is_empty() && !s.weights.is_empty());
            for w in s.weights {
                assert!(names.contains(w), "{}: no weight `{w}`", s.code);
                priced.insert(*w);
            }
        }
        // Every weight prices some signal.
        for n in names {
            assert!(priced.contains(n), "weight `{n}` belongs to no signal");
        }
    }

    #[test]
    fn the_readme_table_lists_every_signal() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("README.md");
        // Rows of the signals table: "| `code` | meaning | weight |".
        let listed: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split_once("` |").map(|(c, _)| c))
            .collect();
        for s in SIGNALS {
            assert!(
                listed.contains(&s.code.as_str()),
                "README's signals table lacks `{}`",
                s.code
            );
        }
    }
}
