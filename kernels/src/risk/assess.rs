//! Per-listing signals and their combination.

use rayon::prelude::*;

use std::borrow::Cow;
use std::ops::Range;

use crate::text::brands::MentionKind;
use crate::text::evasion::{evaded_in, has_candidate, Transform};
use crate::text::normalize::normalize_traced;
use crate::text::normalize_text;
use crate::text::replica::FAMILIES;

use super::kb::{FoundTerms, HeardTerms, KnowledgeBase};
use super::signals::ReasonCode;
use super::weights::{noisy_or, Action, Rules, Weights};

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
    pub shared: Vec<(String, i64)>,
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

/// Assess many listings in parallel (rayon), preserving order.
pub fn assess_batch(
    kb: &KnowledgeBase,
    rules: &Rules,
    inputs: &[ListingInput<'_>],
) -> Vec<Assessment> {
    inputs
        .par_iter()
        .with_min_len(256)
        .map(|l| kb.assess(rules, l))
        .collect()
}

fn yuan(cents: i64) -> String {
    format!("¥{}.{:02}", cents / 100, (cents % 100).abs())
}

impl KnowledgeBase {
    /// All signals of one listing, its score and action under `rules`
    /// (the knowledge base says what is found; the rules what it weighs).
    pub fn assess(&self, rules: &Rules, l: &ListingInput<'_>) -> Assessment {
        let w = &rules.weights;
        let mut reasons: Vec<Reason> = Vec::new();

        // Every text of the listing with something in it, as written,
        // normalised, and what the knowledge base finds and hears in it.
        let mut texts: Vec<Text<'_>> = Vec::with_capacity(2 + l.ocr.len());
        texts.extend(self.text("title".into(), l.title));
        texts.extend(self.text("description".into(), l.description.unwrap_or_default()));
        for o in &l.ocr {
            texts.extend(self.text(format!("ocr:{}", o.image_id).into(), &o.text));
        }
        // Disguises undone to read a term: (source, as written, reads as, how).
        let mut evasions: Vec<Evasion> = Vec::new();

        // Brand: the first direct mention in the title, then the description,
        // then the images' text, then the declared brand column; failing
        // those, a brand read through a disguise (homophone, masked letters).
        let mut brand: Option<usize> = None;
        let mut brand_source = "the text".to_string();
        // A brand only heard (a homophone of its name) may be another,
        // small brand of the same sound (艾玛诗 for 爱马仕): it counts as a
        // mention and an evasion, not as proof the seller sells the brand.
        let mut brand_by_sound = false;
        let mut compat_only: Option<usize> = None;
        for t in &texts {
            let (source, raw, text) = (&t.source, t.raw, t.norm.as_str());
            for m in self
                .brand_matcher
                .mentions(text, t.found.brands.iter().copied())
            {
                match m.kind {
                    MentionKind::Direct if brand.is_none() => {
                        brand = Some(m.brand);
                        if let Some(image) = source.strip_prefix("ocr:") {
                            brand_source = format!("image {image}");
                        } else if let Some(e) =
                            span_evasion(raw, text, m.start..m.end, self.brand_spellings(m.brand))
                        {
                            evasions.push(Evasion {
                                source: source.to_string(),
                                raw: e.0,
                                reads_as: self.brands[m.brand].name.clone(),
                                how: e.1,
                            });
                        }
                    }
                    MentionKind::Compatibility if compat_only.is_none() => {
                        compat_only = Some(m.brand)
                    }
                    _ => {}
                }
            }
        }
        for t in &texts {
            let (source, raw, text) = (&t.source, t.raw, t.norm.as_str());
            if brand.is_some() || source.starts_with("ocr:") {
                break;
            }
            if let Some(d) = self
                .brand_matcher
                .find_disguised(raw, text, &t.heard.brands, t.latin)
                .into_iter()
                .next()
            {
                brand = Some(d.brand);
                brand_by_sound = d.transform == Transform::Homophone;
                brand_source = format!("the {source}, disguised as \"{}\"", d.raw);
                evasions.push(Evasion {
                    source: source.to_string(),
                    raw: d.raw,
                    reads_as: self.brands[d.brand].name.clone(),
                    how: vec![d.transform],
                });
            }
        }
        let mut via_declared = false;
        if brand.is_none() && compat_only.is_none() {
            if let Some(b) = l
                .declared_brand
                .and_then(|d| self.by_name.get(&normalize_text(d)))
            {
                brand = Some(*b);
                via_declared = true;
            }
        }

        if let Some(bi) = brand {
            let b = &self.brands[bi];
            if b.protected {
                reasons.push(Reason {
                    code: ReasonCode::BrandMention,
                    detail: format!(
                        "protected brand {} (id {}) {}",
                        b.name,
                        b.id,
                        if via_declared {
                            "declared by the seller".to_string()
                        } else {
                            format!("named in {brand_source}")
                        }
                    ),
                    weight: w.brand_mention,
                });
                if !b.authorized_sellers.contains(&l.seller_id) && !brand_by_sound {
                    reasons.push(Reason {
                        code: ReasonCode::UnauthorizedSeller,
                        detail: format!(
                            "seller {} is not authorised to sell {}",
                            l.seller_id, b.name
                        ),
                        weight: w.unauthorized_seller,
                    });
                }
            }
            if let (Some(floor), Some(price)) = (b.min_price_cents, l.price_cents) {
                let in_category = b.categories.is_empty()
                    || l.category.is_some_and(|c| {
                        b.categories
                            .iter()
                            .any(|bc| c.contains(bc.as_str()) || bc.contains(c))
                    });
                let ratio = price as f64 / floor.max(1) as f64;
                if in_category && price >= 0 && ratio < w.floor_ratio as f64 {
                    let depth = 1.0 - (ratio / w.floor_ratio as f64) as f32;
                    reasons.push(Reason {
                        code: ReasonCode::PriceBelowFloor,
                        detail: format!(
                            "{} is {:.0}% of {}'s floor {}",
                            yuan(price),
                            ratio * 100.0,
                            b.name,
                            yuan(floor)
                        ),
                        weight: w.price_min + (w.price_max - w.price_min) * depth,
                    });
                }
            }
        }

        for t in &texts {
            let (source, raw, text) = (&t.source, t.raw, t.norm.as_str());
            let from_image = source.starts_with("ocr:");
            let replica = self.replica.hits(
                text,
                t.found.replica.iter().copied(),
                &t.heard.replica,
                |pos| self.brand_matcher.starts_at(text, pos),
            );
            for hit in replica {
                // A replica term only heard (膏访) counts beside a brand: on
                // its own, a word of the same sound is too often a real one
                // the dictionary lacks (微单 "mirrorless camera" for 尾单).
                if hit.sounds_like.is_some() && brand.is_none() && compat_only.is_none() {
                    continue;
                }
                let f = &FAMILIES[hit.family];
                let shown = match &hit.sounds_like {
                    Some(like) => format!("\"{}\" (sounds like {like}; {})", hit.spelling, f.name),
                    None => format!("\"{}\" ({})", hit.spelling, f.name),
                };
                reasons.push(Reason {
                    code: ReasonCode::ReplicaVocabulary,
                    detail: format!("{source}: {shown}"),
                    weight: (f.weight * w.replica_factor).min(1.0),
                });
                if from_image {
                    continue;
                }
                let e = match &hit.sounds_like {
                    Some(_) => Some((hit.spelling.clone(), vec![Transform::Homophone])),
                    None => span_evasion(
                        raw,
                        text,
                        hit.range.clone(),
                        self.replica.spellings(hit.family),
                    ),
                };
                if let Some((raw_span, how)) = e {
                    evasions.push(Evasion {
                        source: source.to_string(),
                        raw: raw_span,
                        reads_as: hit
                            .sounds_like
                            .clone()
                            .unwrap_or_else(|| hit.spelling.clone()),
                        how,
                    });
                }
            }
            if !from_image && t.latin {
                for (family, written, spelling, how) in self.replica.find_disguised_latin(raw) {
                    let f = &FAMILIES[family];
                    if reasons
                        .iter()
                        .any(|r| r.code == "replica_vocabulary" && r.detail.contains(f.name))
                    {
                        continue;
                    }
                    reasons.push(Reason {
                        code: ReasonCode::ReplicaVocabulary,
                        detail: format!("{source}: \"{written}\" ({spelling}; {})", f.name),
                        weight: (f.weight * w.replica_factor).min(1.0),
                    });
                    evasions.push(Evasion {
                        source: source.to_string(),
                        raw: written,
                        reads_as: spelling,
                        how: vec![how],
                    });
                }
            }
            let contacts =
                self.contact
                    .hits(text, t.found.contact.iter().copied(), &t.heard.contact);
            for hit in contacts {
                reasons.push(Reason {
                    code: ReasonCode::ContactDiversion,
                    detail: format!(
                        "{source}: {} contact {} offered off-platform",
                        hit.channel,
                        mask(&hit.id)
                    ),
                    weight: w.contact_diversion,
                });
                if from_image || hit.keyword.is_empty() {
                    continue;
                }
                let keyword = &text[hit.keyword.clone()];
                let e = match hit.sounds_like {
                    Some(_) => Some((keyword.to_string(), vec![Transform::Homophone])),
                    None => span_evasion(raw, text, hit.keyword.clone(), self.contact.keywords()),
                };
                if let Some((raw_span, how)) = e {
                    evasions.push(Evasion {
                        source: source.to_string(),
                        raw: raw_span,
                        reads_as: hit
                            .sounds_like
                            .map_or_else(|| keyword.to_string(), str::to_string),
                        how,
                    });
                }
            }
        }
        if let Some(r) = evasion_reason(&evasions, w) {
            reasons.push(r);
        }

        if let Some(link) = &l.link {
            if let Some(r) = self.link_reason(w, link) {
                reasons.push(r);
            }
        }

        let mut image_brand: Option<i64> = None;
        let brand_of = |hit: &ImageHit| {
            hit.brand_id
                .and_then(|id| self.by_id.get(&id))
                .map(|&i| &self.brands[i])
        };
        // Authorised sellers are expected to use their brand's official
        // photos; only other brands' photos count against them.
        let hits: Vec<ImageHit> = l
            .images
            .iter()
            .filter(|h| {
                h.kind != ImageMatchKind::Official
                    || !brand_of(h).is_some_and(|b| b.authorized_sellers.contains(&l.seller_id))
            })
            .cloned()
            .collect();
        for (kind, hit) in best_image_hits(&hits) {
            match kind {
                ImageMatchKind::Official => {
                    let b = brand_of(hit);
                    let name = b.map_or_else(
                        || "a brand".to_string(),
                        |b| format!("{} (id {})", b.name, b.id),
                    );
                    image_brand = image_brand.or(hit.brand_id);
                    reasons.push(Reason {
                        code: ReasonCode::ImageMatchesOfficial,
                        detail: format!(
                            "image {} copies official photo {} of {name}, similarity {:.3}; seller {} is not authorised",
                            hit.image_id, hit.matched_image_id, hit.similarity, l.seller_id
                        ),
                        weight: w.image_matches_official,
                    });
                }
                ImageMatchKind::KnownFake => {
                    reasons.push(Reason {
                        code: ReasonCode::ImageMatchesKnownFake,
                        detail: format!(
                            "image {} copies image {}{} confirmed counterfeit, similarity {:.3}",
                            hit.image_id,
                            hit.matched_image_id,
                            hit.matched_listing_id
                                .map_or(String::new(), |id| format!(" of listing {id}")),
                            hit.similarity
                        ),
                        weight: w.image_matches_known_fake,
                    });
                }
            }
        }

        let score = noisy_or(reasons.iter().map(|r| r.weight));
        Assessment {
            score,
            action: rules.thresholds.action(score),
            brand_id: brand
                .or(compat_only)
                .map(|b| self.brands[b].id)
                .or(image_brand),
            reasons,
        }
    }

    /// One text of a listing, normalised, with what the vocabularies find
    /// and hear in it; `None` when it is empty.
    fn text<'t>(&self, source: Cow<'static, str>, raw: &'t str) -> Option<Text<'t>> {
        if raw.is_empty() {
            return None;
        }
        let norm = normalize_text(raw);
        Some(Text {
            source,
            raw,
            found: self.found(&norm),
            heard: self.hear(&norm),
            latin: has_candidate(raw),
            norm,
        })
    }

    /// A brand's name and aliases as the knowledge base writes them.
    fn brand_spellings(&self, b: usize) -> Vec<&str> {
        let b = &self.brands[b];
        std::iter::once(b.name.as_str())
            .chain(b.aliases.iter().map(String::as_str))
            .collect()
    }

    fn link_reason(&self, w: &Weights, link: &SellerLink) -> Option<Reason> {
        let mut attrs: Vec<&str> = link.shared.iter().map(|(a, _)| a.as_str()).collect();
        attrs.sort();
        attrs.dedup();
        let weight = noisy_or(attrs.iter().map(|a| w.link_weight(a))).min(0.95);
        if weight <= 0.0 {
            return None;
        }
        let mut closed: Vec<i64> = link.shared.iter().map(|(_, s)| *s).collect();
        closed.sort();
        closed.dedup();
        let shown: Vec<String> = closed.iter().take(5).map(|s| s.to_string()).collect();
        Some(Reason {
            code: ReasonCode::LinkedToClosedSeller,
            detail: format!(
                "shares {} with seller{} {}{} closed for counterfeiting",
                attrs.join(", "),
                if closed.len() > 1 { "s" } else { "" },
                shown.join(", "),
                if closed.len() > 5 {
                    format!(" and {} more", closed.len() - 5)
                } else {
                    String::new()
                }
            ),
            weight,
        })
    }
}

/// A text of a listing (title, description, text in an image).
struct Text<'t> {
    /// `title`, `description` or `ocr:<image id>`.
    source: Cow<'static, str>,
    /// As written.
    raw: &'t str,
    norm: String,
    /// The vocabularies as written in `norm`.
    found: FoundTerms,
    /// The vocabularies by sound in `norm`.
    heard: HeardTerms,
    /// Whether a masked or leetspeak Latin word may be in `raw`.
    latin: bool,
}

/// A disguise undone to read a term.
struct Evasion {
    source: String,
    /// The span as the seller wrote it.
    raw: String,
    /// The term it reads as.
    reads_as: String,
    how: Vec<Transform>,
}

/// One `evasion` reason for all the disguises in a listing: strong ones
/// (separators, symbols, masking, homoglyphs, learned variants, numerals,
/// leetspeak, homophones) weigh `evasion_strong`, weak ones only
/// (traditional, full-width) `evasion_weak`.
fn evasion_reason(evasions: &[Evasion], w: &super::Weights) -> Option<Reason> {
    if evasions.is_empty() {
        return None;
    }
    let strong = evasions.iter().any(|e| e.how.iter().any(|t| !t.is_weak()));
    let shown: Vec<String> = evasions
        .iter()
        .take(3)
        .map(|e| {
            let how: Vec<&str> = e.how.iter().map(|t| t.as_str()).collect();
            format!(
                "{}: \"{}\" reads as {} ({})",
                e.source,
                e.raw,
                e.reads_as,
                how.join(", ")
            )
        })
        .collect();
    Some(Reason {
        code: ReasonCode::Evasion,
        detail: shown.join("; "),
        weight: if strong {
            w.evasion_strong
        } else {
            w.evasion_weak
        },
    })
}

/// The disguises undone in the input text `raw` to read `norm[range]` (a
/// match in its normalised form), unless the input writes it as one of the
/// term's own `spellings`. Returns the input span and the disguises.
fn span_evasion<'s>(
    raw: &str,
    norm: &str,
    range: Range<usize>,
    spellings: impl IntoIterator<Item = impl AsRef<str>>,
) -> Option<(String, Vec<Transform>)> {
    let term = norm.get(range.clone())?;
    // The common case, the term written plainly in simplified text: no tracing.
    if raw.contains(term) || (term.is_ascii() && raw.to_ascii_lowercase().contains(term)) {
        return None;
    }
    // (Also a listed traditional alias is traced: `evaded_in` judges it.)
    let traced = normalize_traced(raw);
    let r = if traced.text == norm {
        range
    } else {
        let s = traced.text.find(term)?;
        s..s + term.len()
    };
    let range = traced.input_range(r.start, r.end)?;
    let spellings: Vec<String> = spellings
        .into_iter()
        .map(|s| s.as_ref().to_string())
        .collect();
    evaded_in(raw, range.clone(), spellings.iter().map(String::as_str))
        .map(|t| (raw[range].to_string(), t))
}

/// The most similar hit of each kind (one reason per kind, however many of
/// the listing's images match).
fn best_image_hits(hits: &[ImageHit]) -> Vec<(ImageMatchKind, &ImageHit)> {
    let mut out: Vec<(ImageMatchKind, &ImageHit)> = Vec::new();
    for h in hits {
        match out.iter_mut().find(|(k, _)| *k == h.kind) {
            Some(slot) if slot.1.similarity < h.similarity => slot.1 = h,
            Some(_) => {}
            None => out.push((h.kind, h)),
        }
    }
    out.sort_by_key(|(k, _)| *k as u8);
    out
}

/// Contact ids are personal data: show enough for a reviewer to recognise
/// the pattern, not the whole id.
fn mask(id: &str) -> String {
    let n = id.chars().count();
    let keep = (n / 3).clamp(2, 4);
    let head: String = id.chars().take(keep).collect();
    let tail: String = id.chars().skip(n.saturating_sub(2)).collect();
    format!("{head}{}{tail}", "*".repeat(n.saturating_sub(keep + 2)))
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
            shared: vec![("id_photo_hash".into(), 99), ("id_name_hash".into(), 99)],
        });
        let a = kb.assess(&Rules::default(), &l);
        assert_eq!(codes(&a), vec!["linked_to_closed_seller"]);
        assert!(a.reasons[0].detail.contains("99"));
        assert_eq!(a.action, Action::Review);
        // Sharing only an address is weak evidence.
        l.link = Some(SellerLink {
            shared: vec![("address_hash".into(), 99)],
        });
        assert_eq!(kb.assess(&Rules::default(), &l).action, Action::Allow);
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
        assert_eq!(mask("13800138000"), "138******00");
        assert_eq!(mask("abc12345"), "ab****45");
    }
}
