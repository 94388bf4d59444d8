//! One options layer: every setting of dajia's jobs and SQL functions, with a
//! doc comment and a default, under `dajia.*` in DataFusion's session
//! configuration (a config extension, as DataFusion's own
//! `extensions_options!` ones).
//!
//! - Resolved once ([`resolve::resolve`]): defaults < TOML file < environment
//!   < flags (`--set KEY=VALUE` and the named ones).
//! - Carried in the session config: functions read it at each call
//!   (`ScalarFunctionArgs::config_options`), so `SET dajia.ocr.box_thresh =
//!   0.5` works in `dajia sql`, and Ballista ships it with every job to the
//!   scheduler and executors (which register the extension, so the values
//!   parse there).
//! - Where work runs (`images.device`, `images.models_dir`) belongs to the
//!   process: on a cluster each executor keeps its own `--device`/`--models`.
//!
//! Sections are the option structs themselves ([`section::Section`]): adding
//! an option is adding a documented field to one of them.

pub mod flags;
pub mod resolve;
pub mod section;

use std::any::Any;

use anyhow::Result;
use datafusion::common::config::{
    ConfigEntry, ConfigExtension, ConfigField, ConfigOptions, ExtensionOptions, Visit,
};
use datafusion::common::DataFusionError;

use dajia_kernels::risk::{Learned, Rules, Thresholds, Weights};

use crate::cluster::ClusterSettings;
use crate::images::ImageOptions;
use crate::ocr::OcrConfig;
use crate::scan::ScanSettings;
pub use flags::OptionFlags;
pub use resolve::{resolve, resolve_with};
pub use section::Section;

/// Every dajia setting (`dajia.<section>.<field>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DajiaOptions {
    /// Image embedding and matching (`[images]`).
    pub images: Section<ImageOptions>,
    /// Reading the text inside images (`[ocr]`).
    pub ocr: Section<OcrConfig>,
    /// What each reason weighs (`[weights]`).
    pub weights: Section<Weights>,
    /// Where review and takedown start (`[thresholds]`).
    pub thresholds: Section<Thresholds>,
    /// A trained model's exponents on the weights (`[model]`, from
    /// `dajia train`; `--model FILE` sets it and the thresholds).
    pub model: Section<Learned>,
    /// The nightly scan's own settings (`[scan]`).
    pub scan: Section<ScanSettings>,
    /// Planning for a Ballista cluster (`[cluster]`).
    pub cluster: Section<ClusterSettings>,
}

/// The sections, as the TOML file and `SET` name them.
pub const SECTIONS: [&str; 7] = [
    "images",
    "ocr",
    "weights",
    "thresholds",
    "model",
    "scan",
    "cluster",
];

impl ConfigExtension for DajiaOptions {
    const PREFIX: &'static str = "dajia";
}

impl ConfigField for DajiaOptions {
    fn visit<V: Visit>(&self, v: &mut V, key_prefix: &str, _description: &'static str) {
        let at = |section: &str| {
            if key_prefix.is_empty() {
                section.to_string()
            } else {
                format!("{key_prefix}.{section}")
            }
        };
        self.images.visit(v, &at("images"), "");
        self.ocr.visit(v, &at("ocr"), "");
        self.weights.visit(v, &at("weights"), "");
        self.thresholds.visit(v, &at("thresholds"), "");
        self.model.visit(v, &at("model"), "");
        self.scan.visit(v, &at("scan"), "");
        self.cluster.visit(v, &at("cluster"), "");
    }

    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        let (section, rest) = key.split_once('.').unwrap_or((key, ""));
        let r = match section {
            "images" => self.images.set(rest, value),
            "ocr" => self.ocr.set(rest, value),
            "weights" => self.weights.set(rest, value),
            "thresholds" => self.thresholds.set(rest, value),
            "model" => self.model.set(rest, value),
            "scan" => self.scan.set(rest, value),
            "cluster" => self.cluster.set(rest, value),
            _ => {
                return Err(DataFusionError::Configuration(format!(
                    "unknown option `dajia.{key}` (sections: {})",
                    SECTIONS.map(|s| format!("dajia.{s}.*")).join(", ")
                )))
            }
        };
        r.map_err(|e| match e {
            DataFusionError::Configuration(m) => {
                DataFusionError::Configuration(format!("dajia.{section}: {m}"))
            }
            other => other,
        })
    }

    fn reset(&mut self, key: &str) -> datafusion::common::Result<()> {
        let (section, rest) = key.split_once('.').unwrap_or((key, ""));
        match section {
            "images" => self.images.reset(rest),
            "ocr" => self.ocr.reset(rest),
            "weights" => self.weights.reset(rest),
            "thresholds" => self.thresholds.reset(rest),
            "model" => self.model.reset(rest),
            "scan" => self.scan.reset(rest),
            "cluster" => self.cluster.reset(rest),
            _ => Err(DataFusionError::Configuration(format!(
                "unknown option `dajia.{key}`"
            ))),
        }
    }
}

impl ExtensionOptions for DajiaOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        ConfigField::set(self, key, value)
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        struct Entries(Vec<ConfigEntry>);
        impl Visit for Entries {
            fn some<V: std::fmt::Display>(
                &mut self,
                key: &str,
                value: V,
                description: &'static str,
            ) {
                self.0.push(ConfigEntry {
                    key: key.to_string(),
                    value: Some(value.to_string()),
                    description,
                })
            }
            fn none(&mut self, key: &str, description: &'static str) {
                self.0.push(ConfigEntry {
                    key: key.to_string(),
                    value: None,
                    description,
                })
            }
        }
        // Entries carry the prefix (DataFusion's `ConfigOptions::entries`
        // adds none for extensions), so `information_schema.df_settings`
        // lists `dajia.*` and Ballista ships keys that `set` accepts.
        let mut e = Entries(Vec::new());
        self.visit(&mut e, Self::PREFIX, "");
        e.0
    }
}

impl DajiaOptions {
    /// The options a session carries (the defaults when it carries none: a
    /// plain DataFusion context with dajia's functions registered).
    pub fn of(config: &ConfigOptions) -> DajiaOptions {
        config
            .extensions
            .get::<DajiaOptions>()
            .cloned()
            .unwrap_or_default()
    }

    /// Set `key` (with or without the `dajia.` prefix) to `value`.
    pub fn set_key(&mut self, key: &str, value: &str) -> Result<()> {
        let key = key.strip_prefix("dajia.").unwrap_or(key);
        ConfigField::set(self, key, value).map_err(|e| anyhow::anyhow!(strip_df(&e)))
    }

    /// The scoring rules the options make.
    pub fn rules(&self) -> Rules {
        Rules {
            weights: self.weights.0.clone(),
            thresholds: self.thresholds.0.clone(),
            model: self.model.0.clone(),
        }
    }

    /// `model_version` of every row these options score: the default
    /// version, or it plus a hash of non-default weights and thresholds.
    pub fn model_version(&self) -> String {
        self.rules().version()
    }

    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        self.images.validate()?;
        self.ocr.validate()?;
        self.scan.validate()?;
        self.cluster.validate()?;
        self.rules().validate().map_err(anyhow::Error::msg)
    }

    /// Every setting as `(key, value, doc)`, keys with their `dajia.` prefix.
    pub fn listing(&self) -> Vec<(String, String, &'static str)> {
        self.entries()
            .into_iter()
            .map(|e| {
                (
                    e.key,
                    e.value.unwrap_or_else(|| "(unset)".into()),
                    e.description,
                )
            })
            .collect()
    }
}

/// DataFusion's "Invalid or Unsupported Configuration: " prefix off a message.
fn strip_df(e: &DataFusionError) -> String {
    match e {
        DataFusionError::Configuration(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_set_and_refused_with_the_known_ones() {
        let mut o = DajiaOptions::default();
        o.set_key("dajia.ocr.box_thresh", "0.45").unwrap();
        o.set_key("weights.brand_mention", "0.2").unwrap();
        o.set_key("images.embedder", "mobilenet").unwrap();
        o.set_key("images.threshold", "0.9").unwrap();
        assert_eq!(o.ocr.box_thresh, 0.45);
        assert_eq!(o.weights.brand_mention, 0.2);
        assert_eq!(o.images.threshold, Some(0.9));
        let list = o.listing();
        assert!(list
            .iter()
            .any(|(k, v, _)| k == "dajia.ocr.box_thresh" && v == "0.45"));
        assert!(list
            .iter()
            .any(|(k, v, _)| k == "dajia.images.embedder" && v == "mobilenet"));
        assert!(
            list.iter().all(|(_, _, doc)| !doc.is_empty()),
            "an option without a doc comment"
        );
        let e = o
            .set_key("dajia.ocr.box_tresh", "0.5")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown option `box_tresh`") && e.contains("box_thresh"),
            "{e}"
        );
        let e = o
            .set_key("dajia.ocrs.box_thresh", "0.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dajia.ocr.*"), "{e}");
        let e = o
            .set_key("images.embedder", "resnet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("resnet"), "{e}");
    }

    #[test]
    fn scan_and_cluster_settings_are_options() {
        let mut o = DajiaOptions::default();
        assert_eq!(o.scan.max_text_bytes, 16 * 1024);
        assert_eq!(o.cluster.partitions, 16);
        o.set_key("scan.max_text_bytes", "100").unwrap();
        o.set_key("dajia.cluster.partitions", "64").unwrap();
        assert_eq!((o.scan.max_text_bytes, o.cluster.partitions), (100, 64));
        o.set_key("cluster.partitions", "0").unwrap();
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster.partitions"));
        let e = o.set_key("scan.max_text", "1").unwrap_err().to_string();
        assert!(e.contains("max_text_bytes"), "{e}");
        // Neither is a scoring rule.
        assert_eq!(o.model_version(), dajia_kernels::risk::MODEL_VERSION);
        let flags = OptionFlags {
            cluster_partitions: Some(8),
            ..Default::default()
        };
        let o = resolve_with(&flags, vec![("scan.max_text_bytes", "64".into())]).unwrap();
        assert_eq!((o.scan.max_text_bytes, o.cluster.partitions), (64, 8));
    }

    #[test]
    fn model_version_names_the_rules() {
        let mut o = DajiaOptions::default();
        assert_eq!(o.model_version(), dajia_kernels::risk::MODEL_VERSION);
        o.set_key("weights.contact_diversion", "0.7").unwrap();
        let v = o.model_version();
        assert!(
            v.starts_with(dajia_kernels::risk::MODEL_VERSION)
                && v.len() == dajia_kernels::risk::MODEL_VERSION.len() + 9,
            "{v}"
        );
        let mut p = DajiaOptions::default();
        p.set_key("weights.contact_diversion", "0.7").unwrap();
        assert_eq!(p.model_version(), v, "same rules, same version");
        p.set_key("thresholds.review", "0.6").unwrap();
        assert_ne!(p.model_version(), v);
        // OCR and image settings are not rules.
        o.set_key("ocr.box_thresh", "0.45").unwrap();
        assert_eq!(o.model_version(), v);
    }
}
