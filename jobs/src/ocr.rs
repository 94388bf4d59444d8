//! OCR on the jobs side: the `[ocr]` options (config and flags) and loading
//! the PP-OCRv5 models they point at.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use documented::DocumentedFields;

use dajia_kernels::device::{DeviceChoice, Runtime};
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

/// Reading the text inside images: `dajia.ocr.*` of the options layer
/// (`crate::options`), set by `[ocr]` in the TOML config, flags and `SET`.
/// Where the models run is not here: it follows the device of the process
/// (the client's `--device`, or each executor's own).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct OcrConfig {
    /// `auto` (default: on when the models are installed), `on`, `off`.
    #[serde(with = "mode_serde")]
    pub mode: OcrMode,
    /// Longest image side the detector sees (default 960).
    pub det_max_side: u32,
    /// Shortest image side the detector sees: smaller images are enlarged to
    /// it, up to `det_max_side` (default 64). 736, as RapidOCR does, finds
    /// small and faint lines more often at ~2.5x the detection time.
    pub det_min_side: u32,
    /// Mean text probability a detected box needs (default 0.5).
    pub box_thresh: f32,
    /// How far detected boxes are grown (default 1.5).
    pub unclip_ratio: f32,
    /// Text lines recognised per model run (default 1: fastest on a CPU;
    /// on a GPU, 1 means `GPU_REC_BATCH`).
    pub rec_batch: usize,
    /// Images per detector run (default 1 on a CPU; on a GPU, 1 means
    /// `GPU_DET_BATCH`).
    pub det_batch: usize,
    /// Detector inputs are padded to sides in multiples of this, a
    /// multiple of 32 (default 32, no padding, on a CPU; on a GPU, 32 means
    /// `GPU_DET_BUCKET`, so few shapes and plans exist).
    pub det_bucket: u32,
    /// Turn upside-down lines with the orientation classifier (default off).
    pub use_cls: bool,
    /// Lines read with a lower mean character probability are dropped (default 0.5).
    pub min_confidence: f32,
    /// Large images are first checked for text at this size; 0 disables (default 480).
    pub gate_side: u32,
}

mod mode_serde {
    use super::OcrMode;
    use serde::Deserialize;
    pub fn serialize<S: serde::Serializer>(m: &OcrMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OcrMode, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl OcrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OcrMode::Auto => "auto",
            OcrMode::On => "on",
            OcrMode::Off => "off",
        }
    }
}

/// Lines per recognition run on a GPU when `rec_batch` is left at 1.
pub const GPU_REC_BATCH: usize = 128;
/// Images per detector run on a GPU when `det_batch` is left at 1.
pub const GPU_DET_BATCH: usize = 16;
/// Detection bucket side on a GPU when `det_bucket` is left at 32: with
/// `det_max_side` 960 at most 8 × 8 shapes.
pub const GPU_DET_BUCKET: u32 = 128;

impl Default for OcrConfig {
    fn default() -> Self {
        let o = OcrOptions::default();
        OcrConfig {
            mode: OcrMode::Auto,
            det_max_side: o.det.max_side,
            det_min_side: o.det.min_side,
            box_thresh: o.det.box_thresh,
            unclip_ratio: o.det.unclip_ratio,
            rec_batch: o.rec_batch,
            det_batch: o.det_batch,
            det_bucket: o.det.bucket,
            use_cls: o.use_cls,
            min_confidence: o.min_confidence,
            gate_side: o.gate_side,
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
            (32..=self.det_max_side).contains(&self.det_min_side),
            "ocr det_min_side {} is not in 32..=det_max_side ({})",
            self.det_min_side,
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
            (1..=256).contains(&self.det_batch),
            "ocr det_batch {} is not in 1..=256",
            self.det_batch
        );
        anyhow::ensure!(
            (32..=1024).contains(&self.det_bucket) && self.det_bucket % 32 == 0,
            "ocr det_bucket {} is not a multiple of 32 in 32..=1024",
            self.det_bucket
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.min_confidence),
            "ocr min_confidence {} is not a probability",
            self.min_confidence
        );
        Ok(())
    }

    /// The engine's options when the models run on `runtime`.
    pub fn options(&self, runtime: Runtime) -> OcrOptions {
        // One image or line at a time is fastest on a CPU; a GPU wants
        // batches, and few shapes.
        let gpu = runtime == Runtime::Cuda;
        OcrOptions {
            det: DetOptions {
                max_side: self.det_max_side,
                min_side: self.det_min_side,
                box_thresh: self.box_thresh,
                unclip_ratio: self.unclip_ratio,
                bucket: if gpu && self.det_bucket == 32 {
                    GPU_DET_BUCKET
                } else {
                    self.det_bucket
                },
                ..DetOptions::default()
            },
            det_batch: if gpu && self.det_batch == 1 {
                GPU_DET_BATCH
            } else {
                self.det_batch
            },
            rec_batch: if gpu && self.rec_batch == 1 {
                GPU_REC_BATCH
            } else {
                self.rec_batch
            },
            use_cls: self.use_cls,
            min_confidence: self.min_confidence,
            gate_side: self.gate_side,
            runtime,
        }
    }

    /// Why the mode reads no text with the models in `models_dir` (`off`,
    /// or `auto` without models), or `None` when it reads text.
    pub fn off_reason(&self, models_dir: &Path) -> Result<Option<String>> {
        self.validate()?;
        Ok(match self.mode {
            OcrMode::Off => Some("off".into()),
            OcrMode::Auto if !models_present(models_dir) => Some(format!(
                "off (no models in {}; run `scripts/setup-models.sh`)",
                models_dir.join(ocr::DIR).display()
            )),
            _ => None,
        })
    }

    /// The OCR engine the mode asks for: `None` when off, or when `auto`
    /// finds no models (the reason is returned for the summary).
    pub fn load(&self, models_dir: &Path, runtime: Runtime) -> Result<(Option<Arc<Ocr>>, String)> {
        match self.off_reason(models_dir)? {
            Some(why) => Ok((None, why)),
            None => {
                let o = Ocr::load(models_dir, self.options(runtime))?;
                // Bucketed inputs (a GPU): every plan built now, none while
                // the night's images are read.
                let t = std::time::Instant::now();
                let plans = o.warm_up()?;
                if plans > 0 {
                    tracing::info!(
                        "OCR warm-up: {plans} plans in {:.1}s",
                        t.elapsed().as_secs_f64()
                    );
                }
                // Which runtime the models run on (the GPU runtime logs
                // each plan's steps and precision).
                let status = format!("PP-OCRv5 mobile on {}", runtime.name());
                Ok((Some(Arc::new(o)), status))
            }
        }
    }
}

/// Whether `models_dir` holds the OCR models (`auto` reads text only then).
fn models_present(models_dir: &Path) -> bool {
    models_dir.join(ocr::DIR).join(ocr::DET_FILE).is_file()
}

/// The OCR engines of one process, loaded on first use (SQL sessions that
/// never call `ocr` neither pay for the models nor need them installed).
/// Where they run and where the models are belong to the process (a client's
/// `--device`/`--models`, an executor's own); what they do comes with each
/// call (`dajia.ocr.*` of the session), so `SET dajia.ocr.box_thresh` and a
/// client's `[ocr]` reach every node. One engine per distinct setting.
pub struct OcrEngines {
    models_dir: PathBuf,
    device: DeviceChoice,
    loaded: Mutex<Vec<(OcrConfig, Result<Arc<Ocr>, String>)>>,
}

/// Engines kept per process: a session rarely tries more settings than
/// this, and each holds its own plans.
const ENGINES_KEPT: usize = 4;

impl std::fmt::Debug for OcrEngines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrEngines")
            .field("models_dir", &self.models_dir)
            .field("device", &self.device)
            .finish()
    }
}

impl OcrEngines {
    pub fn new(models_dir: PathBuf, device: DeviceChoice) -> Self {
        OcrEngines {
            models_dir,
            device,
            loaded: Mutex::new(Vec::new()),
        }
    }

    /// The engine `config`'s mode asks for on this process: none when
    /// `off`, or `auto` without models here (as [`OcrConfig::load`]).
    pub fn for_mode(&self, config: &OcrConfig) -> Result<Option<Arc<Ocr>>> {
        match config.off_reason(&self.models_dir)? {
            Some(_) => Ok(None),
            None => self.get(config).map(Some),
        }
    }

    /// The engine for `config` (loaded now when it is the first call with
    /// these settings; a failure is kept, not retried per batch).
    pub fn get(&self, config: &OcrConfig) -> Result<Arc<Ocr>> {
        let mut loaded = self.loaded.lock().expect("OCR engines");
        if let Some((_, r)) = loaded.iter().find(|(c, _)| c == config) {
            return r.clone().map_err(anyhow::Error::msg);
        }
        let r = config
            .validate()
            .and_then(|_| crate::images::open_device(self.device))
            .and_then(|d| Ok(Ocr::load(&self.models_dir, config.options(d.runtime()))?))
            .map(Arc::new)
            .map_err(|e| format!("{e:#}"));
        if loaded.len() >= ENGINES_KEPT {
            drop(loaded.remove(0));
        }
        loaded.push((config.clone(), r.clone()));
        r.map_err(anyhow::Error::msg)
    }
}
