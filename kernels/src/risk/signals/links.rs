//! `linked_to_closed_seller`: the seller is linked to a seller closed for
//! counterfeiting through identity attributes they share (ID number or
//! photo, bank account, phone, device, address, name), directly or through a
//! chain of other sellers (`dajia link` finds the chain).

use super::{Findings, ReasonCode};
use crate::risk::assess::{ListingInput, Reason};
use crate::risk::Weights;

/// One step per seller reached, in order; consecutive entries naming the
/// same seller are one step that shares all their attributes.
fn steps(shared: &[(String, i64)]) -> Vec<(Vec<&str>, i64)> {
    let mut out: Vec<(Vec<&str>, i64)> = Vec::new();
    for (attrs, seller) in shared {
        let attrs = attrs.split('+').map(str::trim).filter(|a| !a.is_empty());
        match out.last_mut() {
            Some((a, s)) if s == seller => a.extend(attrs),
            _ => out.push((attrs.collect(), *seller)),
        }
    }
    for (a, _) in &mut out {
        a.sort();
        a.dedup();
    }
    out
}

/// The weight of the chain (`Weights::link_path_weight`: its weakest step,
/// decayed per hop); the detail names each step and when the last seller was
/// closed, e.g. `phone → seller 55 → bank_account → seller 99, closed for
/// counterfeiting 2026-10-02`.
pub(crate) fn reason(w: &Weights, l: &ListingInput<'_>, f: &mut Findings) {
    let Some(link) = &l.link else { return };
    let steps = steps(&link.steps);
    let joined: Vec<String> = steps.iter().map(|(a, _)| a.join("+")).collect();
    let weight = w.link_path_weight(joined.iter().map(String::as_str));
    if weight <= 0.0 || steps.is_empty() {
        return;
    }
    let shown: Vec<String> = steps
        .iter()
        .map(|(attrs, seller)| {
            let names: Vec<&str> = attrs.iter().map(|a| a.trim_end_matches("_hash")).collect();
            format!("{} → seller {seller}", names.join(" + "))
        })
        .collect();
    let when = link
        .closed_on
        .as_deref()
        .map(|d| format!(" {d}"))
        .unwrap_or_default();
    f.reasons.push(Reason {
        code: ReasonCode::LinkedToClosedSeller,
        detail: format!("{}, closed for counterfeiting{when}", shown.join(" → ")),
        weight,
    });
}
