//! `dajia learn`: vocabulary learned from real data rather than written by
//! hand.
//!
//! - [`variants`]: variant characters from real spam aligned with its
//!   hand-normalised text, measured on pairs held out of training;
//! - [`terms`]: candidate replica terms over-represented in listings
//!   confirmed counterfeit by test purchases against confirmed genuine ones,
//!   for a person to review into `kernels/data/replica_terms.tsv`.

pub mod terms;
pub mod variants;
