//! `contact_diversion`: a WeChat/QQ/Telegram id or phone number offered
//! off-platform (`text::contact` holds the channels and their disguises).

use crate::text::evasion::Transform;

use super::evasion::span_evasion;
use super::{Findings, ReasonCode};
use crate::risk::assess::{Reason, Text};
use crate::risk::{KnowledgeBase, Weights};

/// The contact offers of one text; a disguised channel keyword becomes an
/// evasion.
pub(crate) fn on_text(kb: &KnowledgeBase, w: &Weights, t: &Text<'_>, f: &mut Findings) {
    let (source, text) = (&t.source, t.norm.as_str());
    let from_image = source.starts_with("ocr:");
    let contacts = kb
        .contact
        .hits(text, t.found.contact.iter().copied(), &t.heard.contact);
    for hit in contacts {
        f.reasons.push(Reason {
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
            None => span_evasion(t, hit.keyword.clone(), kb.contact.keywords()),
        };
        f.evasion(source, e, || {
            hit.sounds_like
                .map_or_else(|| keyword.to_string(), str::to_string)
        });
    }
}

/// Contact ids are personal data: show enough for a reviewer to recognise
/// the pattern, not the whole id.
pub(crate) fn mask(id: &str) -> String {
    let n = id.chars().count();
    let keep = (n / 3).clamp(2, 4);
    let head: String = id.chars().take(keep).collect();
    let tail: String = id.chars().skip(n.saturating_sub(2)).collect();
    format!("{head}{}{tail}", "*".repeat(n.saturating_sub(keep + 2)))
}
