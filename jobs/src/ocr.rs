//! OCR on the jobs side: the `[ocr]` options (config and flags) and loading
//! the PP-OCRv5 models they point at.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::{bail, Result};

use dajia_kernels::device::Runtime;
use dajia_kernels::ocr::{self, DetOptions, Ocr, OcrOptions};

/// Whether the scan reads the text inside images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcrMode {
    /// On when the models are installed (the scan summary says which).
    #[default]
    Auto,
    On,
    Off,
}

impl std::str::FromStr for OcrMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(OcrMode::Auto),
            "on" => Ok(OcrMode::On),
            "off" => Ok(OcrMode::Off),
            _ => Err(format!("unknown OCR mode `{s}` (auto, on, off)")),
        }
    }
}

/// `[ocr]` in the TOML config; flags override.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OcrConfig {
    /// `auto` (default: on when the models are installed), `on`, `off`.
    #[serde(deserialize_with = "mode_serde")]
    pub mode: OcrMode,
    /// Longest image side the detector sees (default 960).
    pub det_max_side: u32,
    /// Mean text probability a detected box needs (default 0.6).
    pub box_thresh: f32,
    /// How far detected boxes are grown (default 1.5).
    pub unclip_ratio: f32,
    /// Text lines recognised per model run (default 1: fastest on a CPU).
    pub rec_batch: usize,
    /// Turn upside-down lines with the orientation classifier (default off).
    pub use_cls: bool,
    /// Lines read with a lower mean character probability are dropped (default 0.5).
    pub min_confidence: f32,
    /// Large images are first checked for text at this size; 0 disables (default 320).
    pub gate_side: u32,
    /// Where the models run: set from the job's device, not the file.
    #[serde(skip)]
    pub runtime: Runtime,
}

fn mode_serde<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OcrMode, D::Error> {
    use serde::Deserialize;
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

/// Lines per recognition run on a GPU when `rec_batch` is left at 1.
pub const GPU_REC_BATCH: usize = 32;

impl Default for OcrConfig {
    fn default() -> Self {
        let o = OcrOptions::default();
        OcrConfig {
            mode: OcrMode::Auto,
            det_max_side: o.det.max_side,
            box_thresh: o.det.box_thresh,
            unclip_ratio: o.det.unclip_ratio,
            rec_batch: o.rec_batch,
            use_cls: o.use_cls,
            min_confidence: o.min_confidence,
            gate_side: o.gate_side,
            runtime: Runtime::Cpu,
        }
    }
}

impl OcrConfig {
    /// Checks values, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(
            (32..=4096).contains(&self.det_max_side),
            "ocr det_max_side {} is not in 32..=4096",
            self.det_max_side
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.box_thresh),
            "ocr box_thresh {} is not a probability",
            self.box_thresh
        );
        anyhow::ensure!(
            self.unclip_ratio > 0.0 && self.unclip_ratio <= 5.0,
            "ocr unclip_ratio {} is not in (0, 5]",
            self.unclip_ratio
        );
        anyhow::ensure!(
            (1..=256).contains(&self.rec_batch),
            "ocr rec_batch {} is not in 1..=256",
            self.rec_batch
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.min_confidence),
            "ocr min_confidence {} is not a probability",
            self.min_confidence
        );
        Ok(())
    }

    pub fn options(&self) -> OcrOptions {
        OcrOptions {
            det: DetOptions {
                max_side: self.det_max_side,
                box_thresh: self.box_thresh,
                unclip_ratio: self.unclip_ratio,
                ..DetOptions::default()
            },
            // One line at a time is fastest on a CPU; a GPU wants batches.
            rec_batch: if self.runtime == Runtime::Cuda && self.rec_batch == 1 {
                GPU_REC_BATCH
            } else {
                self.rec_batch
            },
            use_cls: self.use_cls,
            min_confidence: self.min_confidence,
            gate_side: self.gate_side,
            runtime: self.runtime,
        }
    }

    /// The OCR engine the mode asks for: `None` when off, or when `auto`
    /// finds no models (the reason is returned for the summary).
    pub fn load(&self, models_dir: &Path) -> Result<(Option<Arc<Ocr>>, String)> {
        self.validate()?;
        let present = models_dir.join(ocr::DIR).join(ocr::DET_FILE).is_file();
        match self.mode {
            OcrMode::Off => Ok((None, "off".into())),
            OcrMode::Auto if !present => Ok((
                None,
                format!(
                    "off (no models in {}; run `scripts/setup-models.sh`)",
                    models_dir.join(ocr::DIR).display()
                ),
            )),
            _ => {
                let o = Ocr::load(models_dir, self.options())?;
                // Which tract runtime the models run on (tract-cuda logs
                // per plan which nodes stayed on the CPU).
                let status = format!("PP-OCRv5 mobile on {}", self.runtime.name());
                Ok((Some(Arc::new(o)), status))
            }
        }
    }
}

/// An OCR engine loaded on first use (SQL sessions that never call `ocr`
/// do not pay for loading the models, nor fail without them).
pub struct LazyOcr {
    config: OcrConfig,
    models_dir: PathBuf,
    cell: OnceLock<Result<Arc<Ocr>, String>>,
}

impl std::fmt::Debug for LazyOcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyOcr")
            .field("models_dir", &self.models_dir)
            .field("loaded", &self.cell.get().is_some())
            .finish()
    }
}

impl LazyOcr {
    pub fn new(config: OcrConfig, models_dir: PathBuf) -> Self {
        LazyOcr {
            config,
            models_dir,
            cell: OnceLock::new(),
        }
    }

    pub fn get(&self) -> Result<Arc<Ocr>> {
        let r = self.cell.get_or_init(|| {
            self.config
                .validate()
                .and_then(|_| Ok(Ocr::load(&self.models_dir, self.config.options())?))
                .map(Arc::new)
                .map_err(|e| format!("{e:#}"))
        });
        match r {
            Ok(o) => Ok(o.clone()),
            Err(e) => bail!("{e}"),
        }
    }
}
