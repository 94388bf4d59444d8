//! `image_matches_official` and `image_matches_known_fake`: a listing image
//! copies a brand's official photo (and the seller is not authorised for
//! that brand), or an image of a listing confirmed counterfeit.

use super::{Findings, ReasonCode};
use crate::risk::assess::{ImageHit, ImageMatchKind, ListingInput, Reason};
use crate::risk::{KnowledgeBase, Weights};

/// One reason per kind, from the most similar hit of that kind.
pub(crate) fn reasons(kb: &KnowledgeBase, w: &Weights, l: &ListingInput<'_>, f: &mut Findings) {
    let brand_of = |hit: &ImageHit| {
        hit.brand_id
            .and_then(|id| kb.by_id.get(&id))
            .map(|&i| &kb.brands[i])
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
                f.image_brand = f.image_brand.or(hit.brand_id);
                f.reasons.push(Reason {
                    code: ReasonCode::ImageMatchesOfficial,
                    detail: format!(
                        "image {} copies official photo {} of {name}, similarity {:.3}; seller {} is not authorised",
                        hit.image_id, hit.matched_image_id, hit.similarity, l.seller_id
                    ),
                    weight: w.image_matches_official,
                });
            }
            ImageMatchKind::KnownFake => {
                f.reasons.push(Reason {
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
