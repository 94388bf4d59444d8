//! `replica_vocabulary`: 高仿, A货, 1:1, 复刻, replica ... and their
//! disguises, outside benign contexts (`text::replica` holds the families).

use crate::text::evasion::Transform;
use crate::text::replica::FAMILIES;

use super::evasion::span_evasion;
use super::{Findings, ReasonCode};
use crate::risk::assess::{Reason, Text};
use crate::risk::{KnowledgeBase, Weights};

/// The replica terms of one text: each family's own weight times
/// `replica_factor`; disguises undone to read them become evasions.
pub(crate) fn on_text(kb: &KnowledgeBase, w: &Weights, t: &Text<'_>, f: &mut Findings) {
    let (source, raw, text) = (&t.source, t.raw, t.norm.as_str());
    let from_image = source.starts_with("ocr:");
    let replica = kb.replica.hits(
        text,
        t.found.replica.iter().copied(),
        &t.heard.replica,
        |pos| kb.brand_matcher.starts_at(text, pos),
    );
    for hit in replica {
        // A replica term only heard (膏访) counts beside a brand: on its
        // own, a word of the same sound is too often a real one the
        // dictionary lacks (微单 "mirrorless camera" for 尾单).
        if hit.sounds_like.is_some() && f.brand.is_none() && f.compat_only.is_none() {
            continue;
        }
        let fam = &FAMILIES[hit.family];
        let shown = match &hit.sounds_like {
            Some(like) => format!("\"{}\" (sounds like {like}; {})", hit.spelling, fam.name),
            None => format!("\"{}\" ({})", hit.spelling, fam.name),
        };
        f.reasons.push(Reason {
            code: ReasonCode::ReplicaVocabulary,
            detail: format!("{source}: {shown}"),
            weight: (fam.weight * w.replica_factor).min(1.0),
        });
        if from_image {
            continue;
        }
        let e = match &hit.sounds_like {
            Some(_) => Some((hit.spelling.clone(), vec![Transform::Homophone])),
            None => span_evasion(t, hit.range.clone(), kb.replica.spellings(hit.family)),
        };
        f.evasion(source, e, || {
            hit.sounds_like
                .clone()
                .unwrap_or_else(|| hit.spelling.clone())
        });
    }
    if !from_image && t.latin {
        for (family, written, spelling, how) in kb.replica.find_disguised_latin(raw) {
            let fam = &FAMILIES[family];
            if f.reasons
                .iter()
                .any(|r| r.code == ReasonCode::ReplicaVocabulary && r.detail.contains(fam.name))
            {
                continue;
            }
            f.reasons.push(Reason {
                code: ReasonCode::ReplicaVocabulary,
                detail: format!("{source}: \"{written}\" ({spelling}; {})", fam.name),
                weight: (fam.weight * w.replica_factor).min(1.0),
            });
            f.evasion(source, Some((written, vec![how])), || spelling);
        }
    }
}
