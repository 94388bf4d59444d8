//! `linked_to_closed_seller`: the seller shares identity attributes (ID
//! number or photo, bank account, phone, device, address, name) with a
//! seller closed for counterfeiting.

use super::{Findings, ReasonCode};
use crate::risk::assess::{ListingInput, Reason};
use crate::risk::weights::noisy_or;
use crate::risk::Weights;

/// One weight per shared attribute (`link_*`), combined by noisy-OR and
/// capped at 0.95.
pub(crate) fn reason(w: &Weights, l: &ListingInput<'_>, f: &mut Findings) {
    let Some(link) = &l.link else { return };
    let mut attrs: Vec<&str> = link.shared.iter().map(|(a, _)| a.as_str()).collect();
    attrs.sort();
    attrs.dedup();
    let weight = noisy_or(attrs.iter().map(|a| w.link_weight(a))).min(0.95);
    if weight <= 0.0 {
        return;
    }
    let mut closed: Vec<i64> = link.shared.iter().map(|(_, s)| *s).collect();
    closed.sort();
    closed.dedup();
    let shown: Vec<String> = closed.iter().take(5).map(|s| s.to_string()).collect();
    f.reasons.push(Reason {
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
    });
}
