//! `price_below_floor`: the brand's goods offered far below its floor price
//! in its categories.

use super::{Findings, ReasonCode};
use crate::risk::assess::{ListingInput, Reason};
use crate::risk::{KnowledgeBase, Weights};

/// Below `floor_ratio` × the floor, the weight rises linearly from
/// `price_min` to `price_max` at a price of zero.
pub(crate) fn reason(kb: &KnowledgeBase, w: &Weights, l: &ListingInput<'_>, f: &mut Findings) {
    let Some(bi) = f.brand else { return };
    let b = &kb.brands[bi];
    let (Some(floor), Some(price)) = (b.min_price_cents, l.price_cents) else {
        return;
    };
    let in_category = b.categories.is_empty()
        || l.category.is_some_and(|c| {
            b.categories
                .iter()
                .any(|bc| c.contains(bc.as_str()) || bc.contains(c))
        });
    let ratio = price as f64 / floor.max(1) as f64;
    if in_category && price >= 0 && ratio < w.floor_ratio as f64 {
        let depth = 1.0 - (ratio / w.floor_ratio as f64) as f32;
        f.reasons.push(Reason {
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

fn yuan(cents: i64) -> String {
    format!("¥{}.{:02}", cents / 100, (cents % 100).abs())
}
