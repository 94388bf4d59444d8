//! Reason weights and action thresholds. These are the documented defaults
//! (README, "Scoring"); `model_version` changes whenever they do, so a score
//! can always be traced to the rules that produced it: the defaults are
//! [`MODEL_VERSION`], other values add a hash of themselves
//! ([`Rules::version`]).

use documented::DocumentedFields;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::learned::Learned;

/// Version of the default rules and weights, written with every score.
pub const MODEL_VERSION: &str = "rules-2026.12.1";

/// What a finding weighs and where the actions start: the part of the
/// assessment that configuration may change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub weights: Weights,
    pub thresholds: Thresholds,
    /// A trained model's exponents on the weights (`dajia train`).
    #[serde(default)]
    pub model: Learned,
}

impl Rules {
    /// [`MODEL_VERSION`] for the defaults; otherwise it (or the trained
    /// model's name) plus `+` and the first 8 hex digits of a SHA-256 of the
    /// effective values, so two runs with the same `model_version` scored
    /// by the same rules.
    pub fn version(&self) -> String {
        if *self == Rules::default() {
            return MODEL_VERSION.to_string();
        }
        // `Debug` of the structs: every field by name, floats in their
        // shortest round-trip form; stable for given values. Without a
        // model, the digest is the one of weights and thresholds alone (as
        // before models existed).
        let mut text = format!("{:?}{:?}", self.weights, self.thresholds);
        if self.model != Learned::default() {
            text.push_str(&format!("{:?}", self.model));
        }
        let digest = Sha256::digest(text);
        let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        let base = if self.model.name.is_empty() {
            MODEL_VERSION
        } else {
            &self.model.name
        };
        format!("{base}+{hex}")
    }

    /// Checks the values apart from any I/O: weights are probabilities,
    /// and review does not start above takedown.
    pub fn validate(&self) -> Result<(), String> {
        let w = &self.weights;
        for (name, v) in w.named() {
            let ok = if name == "floor_ratio" || name == "replica_factor" {
                v.is_finite() && v >= 0.0
            } else {
                (0.0..=1.0).contains(&v)
            };
            if !ok {
                return Err(format!("weights.{name} = {v} is out of range"));
            }
        }
        let t = &self.thresholds;
        for (name, v) in [("review", t.review), ("takedown", t.takedown)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("thresholds.{name} = {v} is not in [0, 1]"));
            }
        }
        if t.review > t.takedown {
            return Err(format!(
                "thresholds.review ({}) must not exceed thresholds.takedown ({})",
                t.review, t.takedown
            ));
        }
        self.model.validate()
    }
}

/// Weight of each signal: the probability, on its own, that the listing is
/// counterfeit. Reasons combine by noisy-OR: score = 1 − Π(1 − wᵢ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// A protected brand is named (informational on its own).
    pub brand_mention: f32,
    /// Replica vocabulary: the family's own weight (see `text::replica`) times this factor.
    pub replica_factor: f32,
    /// A contact id or number offered off-platform.
    pub contact_diversion: f32,
    /// Price below `floor_ratio` × the brand's floor: weight rises linearly
    /// from `price_min` at the ratio to `price_max` at a price of zero.
    pub price_min: f32,
    /// Weight of a price of zero (see `price_min`).
    pub price_max: f32,
    /// Prices below this share of the brand's floor price are suspicious.
    pub floor_ratio: f32,
    /// A protected brand sold by a seller not on its authorised list.
    pub unauthorized_seller: f32,
    /// Identity attributes shared with a seller closed for counterfeiting,
    /// per attribute; several attributes combine by noisy-OR, capped at 0.95.
    /// This one: the same ID card number.
    pub link_id_number: f32,
    /// The same ID card photo (shared link, see `link_id_number`).
    pub link_id_photo: f32,
    /// The same bank account (shared link).
    pub link_bank_account: f32,
    /// The same phone number (shared link).
    pub link_phone: f32,
    /// The same device (shared link; default device ids are common).
    pub link_device: f32,
    /// The same address (shared link; warehouses and hubs are shared).
    pub link_address: f32,
    /// The same name on the ID (shared link; names repeat).
    pub link_id_name: f32,
    /// Two sellers sharing two identity values or more at once (a device
    /// and an address, a name and an address): such a link weighs at least
    /// this, since two values together point to one person far more than
    /// either alone (a hub shares an address, a family a name).
    pub link_two_values: f32,
    /// A chain of links through other sellers (A shares a phone with B, B a
    /// bank account with the closed C) weighs as its weakest link, times
    /// this for each link after the first. 1 (the default): a network is
    /// one, however many accounts lie between.
    pub link_hop: f32,
    /// A listing image is a copy of a brand's official photo and the seller
    /// is not authorised for the brand.
    pub image_matches_official: f32,
    /// A listing image is a copy of an image of a listing confirmed
    /// counterfeit (test purchase or earlier takedown).
    pub image_matches_known_fake: f32,
    /// A brand, replica or contact term read only after undoing a disguise
    /// (`text::evasion`): separators, symbols, masking, homoglyphs, learned
    /// variant characters, disguised digits, leetspeak, homophones.
    pub evasion_strong: f32,
    /// The same when the only disguises are traditional characters or
    /// full-width forms, which some genuine sellers type too.
    pub evasion_weak: f32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            brand_mention: 0.1,
            replica_factor: 1.0,
            contact_diversion: 0.75,
            price_min: 0.45,
            price_max: 0.9,
            floor_ratio: 0.5,
            unauthorized_seller: 0.3,
            link_id_number: 0.8,
            link_id_photo: 0.7,
            link_bank_account: 0.7,
            link_phone: 0.6,
            link_device: 0.5,
            link_address: 0.15,
            link_id_name: 0.2,
            link_two_values: 0.6,
            link_hop: 1.0,
            image_matches_official: 0.6,
            image_matches_known_fake: 0.8,
            evasion_strong: 0.4,
            evasion_weak: 0.3,
        }
    }
}

impl Weights {
    /// Every weight by field name, in declaration order.
    pub fn named(&self) -> Vec<(&'static str, f32)> {
        let Weights {
            brand_mention,
            replica_factor,
            contact_diversion,
            price_min,
            price_max,
            floor_ratio,
            unauthorized_seller,
            link_id_number,
            link_id_photo,
            link_bank_account,
            link_phone,
            link_device,
            link_address,
            link_id_name,
            link_two_values,
            link_hop,
            image_matches_official,
            image_matches_known_fake,
            evasion_strong,
            evasion_weak,
        } = self.clone();
        vec![
            ("brand_mention", brand_mention),
            ("replica_factor", replica_factor),
            ("contact_diversion", contact_diversion),
            ("price_min", price_min),
            ("price_max", price_max),
            ("floor_ratio", floor_ratio),
            ("unauthorized_seller", unauthorized_seller),
            ("link_id_number", link_id_number),
            ("link_id_photo", link_id_photo),
            ("link_bank_account", link_bank_account),
            ("link_phone", link_phone),
            ("link_device", link_device),
            ("link_address", link_address),
            ("link_id_name", link_id_name),
            ("link_two_values", link_two_values),
            ("link_hop", link_hop),
            ("image_matches_official", image_matches_official),
            ("image_matches_known_fake", image_matches_known_fake),
            ("evasion_strong", evasion_strong),
            ("evasion_weak", evasion_weak),
        ]
    }

    /// Weight of sharing one identity attribute (column name) with a closed seller.
    pub fn link_weight(&self, attribute: &str) -> f32 {
        match attribute {
            "id_number_hash" => self.link_id_number,
            "id_photo_hash" => self.link_id_photo,
            "bank_account_hash" => self.link_bank_account,
            "phone_hash" => self.link_phone,
            "device_hash" => self.link_device,
            "address_hash" => self.link_address,
            "id_name_hash" => self.link_id_name,
            _ => 0.0,
        }
    }

    /// Weight of one step of a chain of links: the attributes two sellers
    /// share, written `a` or `a+b`, combined by noisy-OR, at least
    /// `link_two_values` for two or more, capped at 0.95.
    pub fn link_step_weight(&self, attributes: &str) -> f32 {
        let mut attrs: Vec<&str> = attributes
            .split('+')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect();
        attrs.sort();
        attrs.dedup();
        let w = noisy_or(attrs.iter().map(|a| self.link_weight(a)));
        let floor = if attrs.len() >= 2 {
            self.link_two_values
        } else {
            0.0
        };
        w.max(floor).min(0.95)
    }

    /// Weight of a chain of steps (each as [`Self::link_step_weight`] reads
    /// it): its weakest step, times `link_hop` per step after the first.
    pub fn link_path_weight<'a>(&self, steps: impl IntoIterator<Item = &'a str>) -> f32 {
        let (mut weakest, mut n) = (f32::INFINITY, 0i32);
        for s in steps {
            weakest = weakest.min(self.link_step_weight(s));
            n += 1;
        }
        if n == 0 {
            return 0.0;
        }
        weakest * self.link_hop.clamp(0.0, 1.0).powi(n - 1)
    }
}

/// Score thresholds of the actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// At or above: a person reviews the listing.
    pub review: f32,
    /// At or above: the listing is taken down.
    pub takedown: f32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            review: 0.5,
            takedown: 0.85,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Review,
    Takedown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Review => "review",
            Action::Takedown => "takedown",
        }
    }
}

impl Thresholds {
    pub fn action(&self, score: f32) -> Action {
        if score >= self.takedown {
            Action::Takedown
        } else if score >= self.review {
            Action::Review
        } else {
            Action::Allow
        }
    }
}

/// Noisy-OR of independent reason weights, in [0, 1].
pub fn noisy_or(weights: impl IntoIterator<Item = f32>) -> f32 {
    let keep: f32 = weights
        .into_iter()
        .map(|w| 1.0 - w.clamp(0.0, 1.0))
        .product();
    (1.0 - keep).clamp(0.0, 1.0)
}

#[cfg(test)]
mod vocabulary_version {
    use super::*;
    use crate::text::{homophones, replica, variants};

    /// The built-in vocabularies (`kernels/data/*.tsv`) change scores as much
    /// as the weights do, but the default `model_version` does not hash
    /// them: this pins their digest to the version, so a change to them
    /// fails here until MODEL_VERSION is bumped and the digest recorded.
    #[test]
    fn model_version_moves_with_the_vocabularies() {
        let mut h = Sha256::new();
        for tsv in [
            homophones::GAZETTEER_TSV,
            replica::LEARNED_TERMS_TSV,
            variants::VARIANT_CHARS_TSV,
        ] {
            h.update(tsv.as_bytes());
            h.update([0u8]);
        }
        let hex: String = h.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (MODEL_VERSION, hex.as_str()),
            ("rules-2026.12.1", "6c74cf39"),
            "kernels/data vocabularies changed: bump MODEL_VERSION and record their new digest here"
        );
    }
}
