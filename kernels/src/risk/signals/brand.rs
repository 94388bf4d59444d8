//! `brand_mention` and `unauthorized_seller`: which protected brand the
//! listing is about (named in a text, declared, or read through a
//! disguise), and whether its seller may sell it.

use crate::text::brands::MentionKind;
use crate::text::evasion::Transform;
use crate::text::normalize_text;

use super::evasion::span_evasion;
use super::{Findings, ReasonCode};
use crate::risk::assess::{ListingInput, Reason, Text};
use crate::risk::{KnowledgeBase, Weights};

/// Brand: the first direct mention in the title, then the description,
/// then the images' text, then the declared brand column; failing those, a
/// brand read through a disguise (homophone, masked letters).
pub(crate) fn resolve(
    kb: &KnowledgeBase,
    l: &ListingInput<'_>,
    texts: &[Text<'_>],
    f: &mut Findings,
) {
    for t in texts {
        let (source, text) = (&t.source, t.norm.as_str());
        for m in kb
            .brand_matcher
            .mentions(text, t.found.brands.iter().copied())
        {
            match m.kind {
                MentionKind::Direct if f.brand.is_none() => {
                    f.brand = Some(m.brand);
                    if let Some(image) = source.strip_prefix("ocr:") {
                        f.brand_source = format!("image {image}");
                    } else {
                        let undone = span_evasion(t, m.start..m.end, kb.brand_spellings(m.brand));
                        f.evasion(source, undone, || kb.brands[m.brand].name.clone());
                    }
                }
                MentionKind::Compatibility if f.compat_only.is_none() => {
                    f.compat_only = Some(m.brand)
                }
                _ => {}
            }
        }
    }
    for t in texts {
        let (source, raw, text) = (&t.source, t.raw, t.norm.as_str());
        if f.brand.is_some() || source.starts_with("ocr:") {
            break;
        }
        if let Some(d) = kb
            .brand_matcher
            .find_disguised(raw, text, &t.heard.brands, t.latin)
            .into_iter()
            .next()
        {
            f.brand = Some(d.brand);
            f.brand_by_sound = d.transform == Transform::Homophone;
            f.brand_source = format!("the {source}, disguised as \"{}\"", d.raw);
            f.evasion(source, Some((d.raw, vec![d.transform])), || {
                kb.brands[d.brand].name.clone()
            });
        }
    }
    if f.brand.is_none() && f.compat_only.is_none() {
        if let Some(b) = l
            .declared_brand
            .and_then(|d| kb.by_name.get(&normalize_text(d)))
        {
            f.brand = Some(*b);
            f.via_declared = true;
        }
    }
}

/// A protected brand named (`brand_mention`), and sold by a seller not on
/// its authorised list (`unauthorized_seller`; not for a brand only heard,
/// which may be a small brand of the same sound).
pub(crate) fn reasons(kb: &KnowledgeBase, w: &Weights, l: &ListingInput<'_>, f: &mut Findings) {
    let Some(bi) = f.brand else { return };
    let b = &kb.brands[bi];
    if !b.protected {
        return;
    }
    f.reasons.push(Reason {
        code: ReasonCode::BrandMention,
        detail: format!(
            "protected brand {} (id {}) {}",
            b.name,
            b.id,
            if f.via_declared {
                "declared by the seller".to_string()
            } else {
                format!("named in {}", f.brand_source)
            }
        ),
        weight: w.brand_mention,
    });
    if !b.authorized_sellers.contains(&l.seller_id) && !f.brand_by_sound {
        f.reasons.push(Reason {
            code: ReasonCode::UnauthorizedSeller,
            detail: format!(
                "seller {} is not authorised to sell {}",
                l.seller_id, b.name
            ),
            weight: w.unauthorized_seller,
        });
    }
}
