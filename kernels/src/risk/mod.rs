//! Risk assessment of one listing: the knowledge base, the signals and how
//! their reasons combine into a score and an action.

mod assess;
mod kb;
mod learned;
pub mod signals;
mod weights;

pub use assess::{
    assess_batch, Assessment, ImageHit, ImageMatchKind, ListingInput, OcrText, Reason, SellerLink,
};
pub use kb::{Brand, KnowledgeBase};
pub use learned::{scaled, Learned, MAX_SCALE};
pub use signals::{ReasonCode, Signal, SIGNALS};
pub use weights::{Action, Rules, Thresholds, Weights, MODEL_VERSION};
