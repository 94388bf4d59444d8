//! The model file `dajia train` writes and `--model FILE` reads: the
//! exponents and thresholds that score, plus what they were learned from
//! and how they did on the held-out slice (JSON, versioned).

use std::path::{Path, PathBuf};

use super::backing::Change;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use dajia_kernels::risk::{Learned, Rules, Thresholds, MODEL_VERSION};

use super::fit::Counts;
use crate::options::{DajiaOptions, Section};

/// The format this build reads and writes.
pub const FORMAT: &str = "dajia-model/1";

/// Labels of one slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    /// Label dates covered (`YYYY-MM-DD`; empty when none were dated).
    pub from: String,
    pub to: String,
    pub counterfeit: u64,
    pub genuine: u64,
}

/// How a set of rules did on a slice.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Flagged: review or takedown.
    pub flagged: Counts,
    pub precision: f64,
    pub recall: f64,
    pub takedown: Counts,
    pub takedown_precision: f64,
    pub takedown_recall: f64,
    /// Area under the ROC curve of the score.
    pub auc: f64,
}

impl Metrics {
    pub fn of(scored: &[(f64, bool)], t: &Thresholds) -> Metrics {
        let flagged = Counts::at(scored, f64::from(t.review));
        let takedown = Counts::at(scored, f64::from(t.takedown));
        Metrics {
            precision: flagged.precision(),
            recall: flagged.recall(),
            takedown_precision: takedown.precision(),
            takedown_recall: takedown.recall(),
            flagged,
            takedown,
            auc: super::fit::auc(scored),
        }
    }
}

/// One row of the calibration table: held-out listings by trained score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub score_from: f64,
    pub score_to: f64,
    pub listings: u64,
    pub counterfeit: u64,
    /// Observed counterfeit share (null when the bin is empty).
    pub rate: Option<f64>,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub format: String,
    /// The `model_version` rows scored with it carry.
    pub version: String,
    /// The default rules whose weights it scales.
    pub base_model_version: String,
    pub trained_at: String,
    pub model: Learned,
    pub thresholds: Thresholds,
    /// Rate of counterfeits with no reason at all (fitted, not scored).
    pub leak: f64,
    /// L2 penalty towards the defaults.
    pub l2: f64,
    pub train: Slice,
    pub holdout: Slice,
    /// The default rules and this model on the held-out slice.
    pub holdout_default: Metrics,
    pub holdout_trained: Metrics,
    pub calibration: Vec<Bin>,
    /// Labelled listings left out, and why.
    pub skipped: Vec<(String, u64)>,
    /// Listings of the night the model was checked on (`train::backing`).
    #[serde(default)]
    pub night_listings: u64,
    /// The decisions it changes on them, per pattern of reasons, each
    /// backed by verdicts.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// Changes that were not backed at the weaker pulls towards the
    /// defaults tried first (why `l2` is what it is).
    #[serde(default)]
    pub unbacked: Vec<Change>,
}

impl ModelFile {
    /// The rules the file scores with (default weights).
    pub fn rules(&self) -> Rules {
        Rules {
            weights: Default::default(),
            thresholds: self.thresholds.clone(),
            model: self.model.clone(),
        }
    }

    /// Read and check a model file.
    pub fn read(path: &Path) -> Result<ModelFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading model {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("model {}", path.display()))
    }

    /// Parse and check a model file's text.
    pub fn parse(text: &str) -> Result<ModelFile> {
        let v: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
        let format = v.get("format").and_then(|f| f.as_str()).unwrap_or("");
        if format != FORMAT {
            bail!("format {format:?} is not {FORMAT:?} (a model file from `dajia train`)");
        }
        let m: ModelFile = serde_json::from_value(v).context("not a dajia model")?;
        let rules = m.rules();
        rules.validate().map_err(anyhow::Error::msg)?;
        if m.model.name.is_empty() {
            bail!("the model has no name");
        }
        if rules.version() != m.version {
            bail!(
                "its values do not match its version {} (edited by hand?): they make {}",
                m.version,
                rules.version()
            );
        }
        if m.base_model_version != MODEL_VERSION {
            tracing::warn!(
                "model {} scales the weights of {}; this build's defaults are {MODEL_VERSION}",
                m.version,
                m.base_model_version
            );
        }
        Ok(m)
    }

    /// Make `o` score with this model: its exponents and thresholds.
    pub fn apply(&self, o: &mut DajiaOptions) {
        o.model = Section(self.model.clone());
        o.thresholds = Section(self.thresholds.clone());
    }

    /// Where `dajia train` keeps it under an output: `OUT/models/VERSION.json`
    /// (so a score's `model_version` leads to its model).
    pub fn path_under(out: &Path, version: &str) -> PathBuf {
        out.join("models").join(format!("{version}.json"))
    }

    /// Write it (atomically: a temporary file renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
