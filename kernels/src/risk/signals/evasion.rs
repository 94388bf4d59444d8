//! `evasion`: a brand, replica or contact term read only by undoing a
//! disguise. The other signals record each disguise they undo; this one
//! weighs them all as one reason: nobody genuine writes a brand that way.

use std::ops::Range;

use crate::text::evasion::{evaded_in, Transform};
use crate::text::normalize::normalize_traced;

use super::{Findings, ReasonCode};
use crate::risk::assess::{Reason, Text};
use crate::risk::Weights;

/// A disguise undone to read a term.
pub(crate) struct Evasion {
    pub source: String,
    /// The span as the seller wrote it.
    pub raw: String,
    /// The term it reads as.
    pub reads_as: String,
    pub how: Vec<Transform>,
}

/// One `evasion` reason for all the disguises in a listing: strong ones
/// (separators, symbols, masking, homoglyphs, learned variants, numerals,
/// leetspeak, homophones) weigh `evasion_strong`, weak ones only
/// (traditional, full-width) `evasion_weak`.
pub(crate) fn reason(w: &Weights, f: &mut Findings) {
    if f.evasions.is_empty() {
        return;
    }
    let strong = f
        .evasions
        .iter()
        .any(|e| e.how.iter().any(|t| !t.is_weak()));
    let shown: Vec<String> = f
        .evasions
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
    f.reasons.push(Reason {
        code: ReasonCode::Evasion,
        detail: shown.join("; "),
        weight: if strong {
            w.evasion_strong
        } else {
            w.evasion_weak
        },
    });
}

/// The disguises undone in the input text `t.raw` to read `t.norm[range]` (a
/// match in its normalised form), unless the input writes it as one of the
/// term's own `spellings`. Returns the input span and the disguises.
pub(crate) fn span_evasion(
    t: &Text<'_>,
    range: Range<usize>,
    spellings: impl IntoIterator<Item = impl AsRef<str>>,
) -> Option<(String, Vec<Transform>)> {
    let (raw, norm) = (t.raw, t.norm.as_str());
    let term = norm.get(range.clone())?;
    // The common case, the term written plainly in simplified text: no tracing.
    if raw.contains(term) || (term.is_ascii() && raw.to_ascii_lowercase().contains(term)) {
        return None;
    }
    // (Also a listed traditional alias is traced: `evaded_in` judges it.)
    // Traced once per text, however many of its matches need it.
    let traced = t.traced.get_or_init(|| normalize_traced(raw));
    let r = if traced.text == norm {
        range
    } else {
        let s = traced.text.find(term)?;
        s..s + term.len()
    };
    let range = traced.input_range(r.start, r.end)?;
    // Borrowed as they are (a contact keyword has dozens of spellings, each
    // copied per traced match before).
    let spellings: Vec<_> = spellings.into_iter().collect();
    evaded_in(raw, range.clone(), spellings.iter().map(AsRef::as_ref))
        .map(|t| (raw[range].to_string(), t))
}
