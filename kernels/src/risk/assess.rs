//! Per-listing signals and their combination.

use rayon::prelude::*;

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::text::evasion::has_candidate;
use crate::text::normalize::normalize_folded;

use super::kb::{FoundTerms, HeardTerms, KnowledgeBase};
use super::signals::{self, Findings, ReasonCode};
use super::weights::{noisy_or, Action, Rules};

/// What the scan knows of one listing.
#[derive(Debug, Clone, Default)]
pub struct ListingInput<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub declared_brand: Option<&'a str>,
    pub category: Option<&'a str>,
    pub price_cents: Option<i64>,
    pub seller_id: i64,
    pub link: Option<SellerLink>,
    /// Matches of the listing's images in the image indexes.
    pub images: Vec<ImageHit>,
    /// Text read (OCR) from the listing's images.
    pub ocr: Vec<OcrText>,
}

/// The text OCR read in one of the listing's images. It goes through
/// `normalize_text` and the same text signals as the title, with reasons
/// whose detail starts `ocr:<image_id>:`.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrText {
    pub image_id: String,
    pub text: String,
}

/// Which reference set an image matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMatchKind {
    /// A brand's official photo (`brand_images`).
    Official,
    /// An image of a listing confirmed counterfeit.
    KnownFake,
}

impl ImageMatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageMatchKind::Official => "official",
            ImageMatchKind::KnownFake => "known_fake",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "official" => Some(ImageMatchKind::Official),
            "known_fake" => Some(ImageMatchKind::KnownFake),
            _ => None,
        }
    }
}

/// One of the listing's images matched a reference image.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageHit {
    pub kind: ImageMatchKind,
    /// The listing's image.
    pub image_id: String,
    /// The reference image it copies.
    pub matched_image_id: String,
    pub brand_id: Option<i64>,
    /// For known fakes: the confirmed listing.
    pub matched_listing_id: Option<i64>,
    pub similarity: f32,
}

/// Identity attributes the listing's seller shares with sellers closed for
/// counterfeiting: `(attribute column, closed seller id)` pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SellerLink {
    /// The chain from the listing's seller to a seller closed for
    /// counterfeiting, one step per seller reached: the attributes shared at
    /// that step (`phone_hash`, or `device_hash+address_hash`) and the seller
    /// they are shared with. The last step's seller is the closed one; one
    /// step is a direct link. Several steps to the same seller are one step
    /// sharing all their attributes (the one-hop form, one row per
    /// attribute).
    pub steps: Vec<(String, i64)>,
    /// When the last step's seller was closed (`YYYY-MM-DD`), when known.
    pub closed_on: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
    pub weight: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub score: f32,
    pub action: Action,
    pub reasons: Vec<Reason>,
    pub brand_id: Option<i64>,
}

/// Assess many listings, preserving order: in parallel (rayon) while fewer
/// batches are being assessed at once than rayon has threads, else on the
/// calling thread.
///
/// DataFusion calls this from one task per partition, and a scan has as
/// many partitions as cores: there, handing each batch to rayon blocked the
/// partition's thread (which would otherwise decode and write the next
/// batch) while rayon's threads did the same work, and the cores idled at
/// every hand-over. At 1M listings on 2 cores `score_and_publish` took
/// 1.58–1.69 s that way and 1.39–1.52 s on the callers' threads. A plan
/// with one partition (one file of one row group, or `target_partitions =
/// 1`) still gets every core: 300,000 listings in 0.63 s, against 0.88 s on
/// the one thread.
pub fn assess_batch(
    kb: &KnowledgeBase,
    rules: &Rules,
    inputs: &[ListingInput<'_>],
) -> Vec<Assessment> {
    let _caller = Caller::enter();
    if Caller::count() >= rayon::current_num_threads() {
        return inputs.iter().map(|l| kb.assess(rules, l)).collect();
    }
    inputs
        .par_iter()
        .with_min_len(256)
        .map(|l| kb.assess(rules, l))
        .collect()
}

/// Callers of [`assess_batch`] now, process-wide (a count, not a lock: a
/// caller that reads a stale count only picks the other way to run).
static CALLERS: AtomicUsize = AtomicUsize::new(0);

/// One caller of [`assess_batch`], counted while it lives.
struct Caller;

impl Caller {
    fn enter() -> Self {
        CALLERS.fetch_add(1, Ordering::Relaxed);
        Caller
    }

    fn count() -> usize {
        CALLERS.load(Ordering::Relaxed)
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        CALLERS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl KnowledgeBase {
    /// All signals of one listing, its score and action under `rules`
    /// (the knowledge base says what is found; the rules what it weighs).
    /// The signal modules run in the registry's order (`signals::MODULES`); each
    /// adds its reasons to what the earlier ones found.
    pub fn assess(&self, rules: &Rules, l: &ListingInput<'_>) -> Assessment {
        let w = &rules.weights;
        // Every text of the listing with something in it, as written,
        // normalised, and what the knowledge base finds and hears in it.
        let mut texts: Vec<Text<'_>> = Vec::with_capacity(2 + l.ocr.len());
        texts.extend(self.text("title".into(), l.title));
        texts.extend(self.text("description".into(), l.description.unwrap_or_default()));
        for o in &l.ocr {
            texts.extend(self.text(format!("ocr:{}", o.image_id).into(), &o.text));
        }
        let mut f = Findings::default();
        f.brand_source = "the text".to_string();
        signals::run_all(self, w, l, &texts, &mut f);

        // A trained model's exponents (identity by default).
        for r in &mut f.reasons {
            r.weight = rules.model.apply(r.code, r.weight);
        }
        let score = noisy_or(f.reasons.iter().map(|r| r.weight));
        Assessment {
            score,
            action: rules.thresholds.action(score),
            brand_id: f
                .brand
                .or(f.compat_only)
                .map(|b| self.brands[b].id)
                .or(f.image_brand),
            reasons: f.reasons,
        }
    }

    /// One text of a listing, normalised, with what the vocabularies find
    /// and hear in it; `None` when it is empty.
    fn text<'t>(&self, source: Cow<'static, str>, raw: &'t str) -> Option<Text<'t>> {
        if raw.is_empty() {
            return None;
        }
        let (norm, folded) = normalize_folded(raw);
        Some(Text {
            source,
            raw,
            found: self.found(&norm),
            heard: self.hear(&norm, folded.as_deref()),
            latin: has_candidate(raw),
            norm,
            traced: Default::default(),
        })
    }

    /// A brand's name and aliases as the knowledge base writes them.
    pub(crate) fn brand_spellings(&self, b: usize) -> Vec<&str> {
        let b = &self.brands[b];
        std::iter::once(b.name.as_str())
            .chain(b.aliases.iter().map(String::as_str))
            .collect()
    }
}

/// A text of a listing (title, description, text in an image).
pub(crate) struct Text<'t> {
    /// `title`, `description` or `ocr:<image id>`.
    pub source: Cow<'static, str>,
    /// As written.
    pub raw: &'t str,
    pub norm: String,
    /// The vocabularies as written in `norm`.
    pub found: FoundTerms,
    /// The vocabularies by sound in `norm`.
    pub heard: HeardTerms,
    /// Whether a masked or leetspeak Latin word may be in `raw`.
    pub latin: bool,
    /// `raw` normalised with each character's origin, when a signal needs
    /// to trace a match back to what was written (`signals::evasion`).
    pub traced: std::cell::OnceCell<crate::text::normalize::Traced>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::Brand;

    fn kb() -> KnowledgeBase {
        KnowledgeBase::new(vec![
            Brand {
                id: 1,
                name: "Gucci".into(),
                aliases: vec!["古驰".into(), "古奇".into()],
                categories: vec!["箱包".into()],
                min_price_cents: Some(500_000),
                protected: true,
                authorized_sellers: [7].into_iter().collect(),
            },
            Brand {
                id: 2,
                name: "Apple".into(),
                aliases: vec!["苹果".into(), "iPhone".into()],
                categories: vec!["手机".into()],
                min_price_cents: Some(300_000),
                protected: true,
                authorized_sellers: [8].into_iter().collect(),
            },
        ])
    }

    fn codes(a: &Assessment) -> Vec<&'static str> {
        a.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    fn listing<'a>(title: &'a str, category: &'a str, price: i64, seller: i64) -> ListingInput<'a> {
        ListingInput {
            title,
            category: Some(if category.is_empty() {
                "箱包/女包"
            } else {
                category
            }),
            price_cents: Some(price),
            seller_id: seller,
            ..Default::default()
        }
    }

    #[test]
    fn signals_table() {
        use Action::*;
        let kb = kb();
        // (name, listing, codes that must fire, expected action)
        let cases: Vec<(&str, ListingInput, Vec<&str>, Action)> = vec![
            (
                "replica word",
                listing("高仿古驰女包 新款", "", 60_000, 1),
                vec!["replica_vocabulary", "unauthorized_seller"],
                Takedown,
            ),
            (
                "price far below floor",
                listing("Gucci 马衔扣 手提包", "", 20_000, 1),
                vec!["price_below_floor", "unauthorized_seller"],
                Takedown,
            ),
            (
                "contact diversion",
                listing("古驰 包包 加V信 lux8888a 看实物", "", 600_000, 1),
                vec!["contact_diversion"],
                Review,
            ),
            (
                "authorised seller at full price",
                listing("Gucci 马衔扣 手提包 正品", "", 800_000, 7),
                vec!["brand_mention"],
                Allow,
            ),
            (
                "genuine discount",
                listing("Gucci 专柜正品 清仓折扣", "", 420_000, 1),
                vec!["unauthorized_seller"],
                Allow,
            ),
            (
                "accessory for iPhone",
                listing("适用于苹果iPhone15手机壳 透明", "手机配件", 1_900, 1),
                vec![],
                Allow,
            ),
            (
                "wechat pay",
                listing("支持微信支付 棉麻 女包", "", 9_900, 1),
                vec![],
                Allow,
            ),
            (
                "scale model",
                listing("1:18 合金车模 收藏", "玩具", 9_900, 1),
                vec![],
                Allow,
            ),
            (
                "obfuscated brand and low price",
                listing("G.U.C.C.I 女包 特价", "", 30_000, 1),
                vec!["price_below_floor"],
                Takedown,
            ),
        ];
        for (name, l, want, action) in cases {
            let a = kb.assess(&Rules::default(), &l);
            let got = codes(&a);
            for w in &want {
                assert!(got.contains(w), "{name}: {got:?} lacks {w}");
            }
            if want.is_empty() {
                assert!(
                    !got.iter().any(|c| *c != "brand_mention"),
                    "{name}: {got:?}"
                );
            }
            assert_eq!(
                a.action, action,
                "{name}: score {} reasons {:?}",
                a.score, a.reasons
            );
        }
    }

    #[test]
    fn linked_seller() {
        let kb = kb();
        let mut l = listing("棉麻 女包", "", 9_900, 3);
        l.link = Some(SellerLink {
            steps: vec![("id_photo_hash".into(), 99), ("id_name_hash".into(), 99)],
            closed_on: None,
        });
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["linked_to_closed_seller"]);
        assert!(a.reasons[0].detail.contains("99"));
        assert_eq!(a.action, Action::Review);
        // Sharing only an address is weak evidence.
        l.link = Some(SellerLink {
            steps: vec![("address_hash".into(), 99)],
            closed_on: None,
        });
        assert_eq!(kb.assess(&Rules::default(), &l).action, Action::Allow);
        // A chain: a phone shared with seller 55, who shares a bank account
        // with the closed 99: the weakest link (phone, 0.6), whatever the hops.
        l.link = Some(SellerLink {
            steps: vec![("phone_hash".into(), 55), ("bank_account_hash".into(), 99)],
            closed_on: Some("2026-10-02".into()),
        });
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["linked_to_closed_seller"]);
        assert!((a.reasons[0].weight - 0.6).abs() < 1e-5, "{:?}", a.reasons);
        assert_eq!(
            a.reasons[0].detail,
            "phone → seller 55 → bank_account → seller 99, closed for counterfeiting 2026-10-02"
        );
        assert_eq!(a.action, Action::Review);
        // Two soft values in one step count together (at least
        // link_two_values), not as two steps.
        l.link = Some(SellerLink {
            steps: vec![("id_name_hash+address_hash".into(), 99)],
            closed_on: None,
        });
        let a = kb.assess(&Rules::default(), &l);
        assert!((a.reasons[0].weight - 0.6).abs() < 1e-5, "{:?}", a.reasons);
        assert_eq!(
            a.reasons[0].detail,
            "address + id_name → seller 99, closed for counterfeiting"
        );
        // A decay per hop, when configured.
        let mut rules = Rules::default();
        rules.weights.link_hop = 0.5;
        l.link = Some(SellerLink {
            steps: vec![("phone_hash".into(), 55), ("phone_hash".into(), 99)],
            closed_on: None,
        });
        assert!((kb.assess(&rules, &l).reasons[0].weight - 0.3).abs() < 1e-5);
    }

    #[test]
    fn image_hits_become_reasons_and_authorised_sellers_are_exempt() {
        let kb = kb();
        let hit = |kind, sim| ImageHit {
            kind,
            image_id: "img-5-0".into(),
            matched_image_id: "brand-1-0".into(),
            brand_id: Some(1),
            matched_listing_id: (kind == ImageMatchKind::KnownFake).then_some(42),
            similarity: sim,
        };
        let mut l = listing("棉麻 女包", "", 9_900, 3);
        l.images = vec![
            hit(ImageMatchKind::Official, 0.93),
            hit(ImageMatchKind::Official, 0.97),
        ];
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["image_matches_official"]);
        assert!(
            a.reasons[0].detail.contains("similarity 0.970"),
            "{}",
            a.reasons[0].detail
        );
        assert!(a.reasons[0].detail.contains("Gucci (id 1)"));
        assert_eq!(a.brand_id, Some(1), "brand taken from the matched photo");
        // Seller 7 is authorised for Gucci: its use of official photos is fine.
        l.seller_id = 7;
        assert!(codes(&kb.assess(&Rules::default(), &l)).is_empty());
        // ... but a copy of another brand's photo still counts.
        let mut other = hit(ImageMatchKind::Official, 0.95);
        other.brand_id = Some(2);
        l.images.push(other);
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["image_matches_official"]);
        assert!(
            a.reasons[0].detail.contains("Apple (id 2)"),
            "{}",
            a.reasons[0].detail
        );
        l.images.pop();
        // ... but a copy of another brand's photo still counts.
        let mut other = hit(ImageMatchKind::Official, 0.95);
        other.brand_id = Some(2);
        l.images.push(other);
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["image_matches_official"]);
        assert!(
            a.reasons[0].detail.contains("Apple (id 2)"),
            "{}",
            a.reasons[0].detail
        );
        l.images.pop();
        // Known fakes count whoever the seller is.
        l.images.push(hit(ImageMatchKind::KnownFake, 0.95));
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["image_matches_known_fake"]);
        assert!(a.reasons[0].detail.contains("of listing 42"));
        assert_eq!(a.action, Action::Review);
    }

    #[test]
    fn contact_ids_are_masked() {
        use crate::risk::signals::contact::mask;
        assert_eq!(mask("13800138000"), "138******00");
        assert_eq!(mask("abc12345"), "ab****45");
    }

    #[test]
    fn a_batch_gets_the_same_assessments_in_order_on_rayon_and_on_the_caller() {
        let kb = kb();
        let titles: Vec<String> = (0..2000)
            .map(|i| match i % 4 {
                0 => format!("高仿古驰女包 {i}"),
                1 => format!("Gucci 马衔扣 手提包 正品 {i}"),
                2 => format!("古驰 包包 加V信 lux{i}a 看实物"),
                _ => format!("适用于苹果iPhone15手机壳 {i}"),
            })
            .collect();
        let inputs: Vec<ListingInput> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| listing(t, "", 20_000 + i as i64 * 500, i as i64 % 9))
            .collect();
        let one_by_one: Vec<Assessment> = inputs
            .iter()
            .map(|l| kb.assess(&Rules::default(), l))
            .collect();
        // Alone, the batch goes to rayon's threads.
        assert_eq!(assess_batch(&kb, &Rules::default(), &inputs), one_by_one);
        // With as many callers as rayon has threads, on the caller's thread.
        let busy: Vec<Caller> = (0..rayon::current_num_threads())
            .map(|_| Caller::enter())
            .collect();
        assert!(Caller::count() >= rayon::current_num_threads());
        assert_eq!(assess_batch(&kb, &Rules::default(), &inputs), one_by_one);
        drop(busy);
    }
}
