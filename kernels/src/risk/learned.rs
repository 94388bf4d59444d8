//! What `dajia train` learns on top of the weights: one exponent per reason
//! code. A reason of weight `w` weighs `1 − (1 − w)^scale`: its share of the
//! noisy-OR score's log-odds-of-innocence, `−ln(1 − w)`, times `scale`. The
//! score stays a noisy-OR of probabilities, each reason keeps its detail
//! and its place in the explanation, and scale 1 (the default) leaves a
//! weight exactly as configured.

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};

use super::signals::ReasonCode;

/// The trained model's name and its exponent per reason code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct Learned {
    /// Name of the trained model (`dajia train`); empty: no model, the
    /// configured weights as they are.
    pub name: String,
    /// Exponent on `brand_mention` weights (1: unchanged).
    pub brand_mention: f32,
    /// Exponent on `unauthorized_seller` weights.
    pub unauthorized_seller: f32,
    /// Exponent on `price_below_floor` weights.
    pub price_below_floor: f32,
    /// Exponent on `replica_vocabulary` weights.
    pub replica_vocabulary: f32,
    /// Exponent on `contact_diversion` weights.
    pub contact_diversion: f32,
    /// Exponent on `evasion` weights.
    pub evasion: f32,
    /// Exponent on `linked_to_closed_seller` weights.
    pub linked_to_closed_seller: f32,
    /// Exponent on `image_matches_official` weights.
    pub image_matches_official: f32,
    /// Exponent on `image_matches_known_fake` weights.
    pub image_matches_known_fake: f32,
}

impl Default for Learned {
    fn default() -> Self {
        Learned {
            name: String::new(),
            brand_mention: 1.0,
            unauthorized_seller: 1.0,
            price_below_floor: 1.0,
            replica_vocabulary: 1.0,
            contact_diversion: 1.0,
            evasion: 1.0,
            linked_to_closed_seller: 1.0,
            image_matches_official: 1.0,
            image_matches_known_fake: 1.0,
        }
    }
}

/// The largest exponent accepted: a reason of weight 0.1 then weighs 0.9999.
pub const MAX_SCALE: f32 = 100.0;

impl Learned {
    /// The exponent of `code`'s reasons.
    pub fn scale(&self, code: ReasonCode) -> f32 {
        match code {
            ReasonCode::BrandMention => self.brand_mention,
            ReasonCode::UnauthorizedSeller => self.unauthorized_seller,
            ReasonCode::PriceBelowFloor => self.price_below_floor,
            ReasonCode::ReplicaVocabulary => self.replica_vocabulary,
            ReasonCode::ContactDiversion => self.contact_diversion,
            ReasonCode::Evasion => self.evasion,
            ReasonCode::LinkedToClosedSeller => self.linked_to_closed_seller,
            ReasonCode::ImageMatchesOfficial => self.image_matches_official,
            ReasonCode::ImageMatchesKnownFake => self.image_matches_known_fake,
        }
    }

    /// Set the exponent of `code`'s reasons.
    pub fn set_scale(&mut self, code: ReasonCode, scale: f32) {
        let s = match code {
            ReasonCode::BrandMention => &mut self.brand_mention,
            ReasonCode::UnauthorizedSeller => &mut self.unauthorized_seller,
            ReasonCode::PriceBelowFloor => &mut self.price_below_floor,
            ReasonCode::ReplicaVocabulary => &mut self.replica_vocabulary,
            ReasonCode::ContactDiversion => &mut self.contact_diversion,
            ReasonCode::Evasion => &mut self.evasion,
            ReasonCode::LinkedToClosedSeller => &mut self.linked_to_closed_seller,
            ReasonCode::ImageMatchesOfficial => &mut self.image_matches_official,
            ReasonCode::ImageMatchesKnownFake => &mut self.image_matches_known_fake,
        };
        *s = scale;
    }

    /// `w` as the model weighs a reason of `code` (exactly `w` at scale 1).
    pub fn apply(&self, code: ReasonCode, w: f32) -> f32 {
        let s = self.scale(code);
        if s == 1.0 {
            return w;
        }
        scaled(w, s)
    }

    /// Checks the values apart from any I/O.
    pub fn validate(&self) -> Result<(), String> {
        for code in super::SIGNALS.iter().map(|s| s.code) {
            let s = self.scale(code);
            if !(s.is_finite() && (0.0..=MAX_SCALE).contains(&s)) {
                return Err(format!("model.{code} = {s} is not in [0, {MAX_SCALE}]"));
            }
        }
        if self.name.chars().any(|c| c.is_control() || c == '\'') {
            return Err(format!(
                "model.name {:?} has a quote or control character",
                self.name
            ));
        }
        Ok(())
    }
}

/// `1 − (1 − w)^s`, computed in log space so that weights near 0 keep
/// their precision.
pub fn scaled(w: f32, s: f32) -> f32 {
    let w = f64::from(w.clamp(0.0, 1.0));
    if w >= 1.0 {
        return if s > 0.0 { 1.0 } else { 0.0 };
    }
    (-(f64::from(s) * (-w).ln_1p()).exp_m1()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_one_is_the_identity_and_scales_act_in_log_space() {
        let mut m = Learned::default();
        assert_eq!(m.apply(ReasonCode::Evasion, 0.4), 0.4);
        m.set_scale(ReasonCode::Evasion, 2.0);
        // 1 − 0.6² = 0.64: two independent reasons of 0.4.
        assert!((m.apply(ReasonCode::Evasion, 0.4) - 0.64).abs() < 1e-6);
        m.set_scale(ReasonCode::Evasion, 0.0);
        assert_eq!(m.apply(ReasonCode::Evasion, 0.4), 0.0);
        assert_eq!(m.apply(ReasonCode::BrandMention, 0.1), 0.1);
        assert!((scaled(1e-7, 3.0) - 3e-7).abs() < 1e-12);
        assert!(m.validate().is_ok());
        m.set_scale(ReasonCode::PriceBelowFloor, f32::NAN);
        assert!(m.validate().unwrap_err().contains("price_below_floor"));
    }

    #[test]
    fn every_reason_code_has_a_field() {
        let mut m = Learned::default();
        for (i, s) in super::super::SIGNALS.iter().enumerate() {
            m.set_scale(s.code, 2.0 + i as f32);
        }
        for (i, s) in super::super::SIGNALS.iter().enumerate() {
            assert_eq!(m.scale(s.code), 2.0 + i as f32, "{}", s.code);
        }
        // One field per code, plus the name.
        assert_eq!(Learned::FIELD_NAMES.len(), super::super::SIGNALS.len() + 1);
        for s in super::super::SIGNALS {
            assert!(
                Learned::FIELD_NAMES.contains(&s.code.as_str()),
                "{}",
                s.code
            );
        }
    }
}
