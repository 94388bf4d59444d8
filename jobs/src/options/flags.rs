//! The command line's share of the options: named flags for the common
//! settings and `--set KEY=VALUE` for any of them. Each becomes a
//! `(key, value)` pair applied after the config file ([`super::resolve`]);
//! nothing here is validated or read, so parsing stays apart from I/O.

use std::path::PathBuf;

/// Option flags shared by the jobs; each overrides the config file's value.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OptionFlags {
    /// TOML file with [images], [ocr], [weights], [thresholds], [model], [scan] and [cluster] sections.
    #[arg(long, env = "DAJIA_CONFIG")]
    pub config: Option<PathBuf>,
    /// A model file from `dajia train`: its exponents on the weights and its
    /// thresholds, applied after the config file and before the flags.
    #[arg(long, env = "DAJIA_MODEL")]
    pub model: Option<PathBuf>,
    /// Any option as KEY=VALUE (e.g. `--set ocr.box_thresh=0.5`; `dajia sql
    /// -c '\set'` lists them); repeatable, applied after the named flags.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Image embedder: descriptor (default, no weights) or mobilenet.
    #[arg(long, env = "DAJIA_EMBEDDER")]
    pub embedder: Option<String>,
    /// Folder of model files (scripts/setup-models.sh). Default $DAJIA_MODELS or ./models.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Cosine similarity at or above which an image is a copy (default per embedder).
    #[arg(long)]
    pub image_threshold: Option<f32>,
    /// Images whose header declares more pixels are rejected (decompression-bomb guard).
    #[arg(long)]
    pub max_image_pixels: Option<u64>,
    /// Images decoded and embedded at once.
    #[arg(long)]
    pub image_batch: Option<usize>,
    /// Read the text inside images: auto (when the OCR models are installed), on, off.
    #[arg(long, env = "DAJIA_OCR")]
    pub ocr: Option<String>,
    /// Text lines recognised per OCR model run (1 is fastest on a CPU).
    #[arg(long)]
    pub ocr_rec_batch: Option<usize>,
    /// Images per OCR detector run (1 is fastest on a CPU).
    #[arg(long)]
    pub ocr_det_batch: Option<usize>,
    /// OCR detector inputs padded to sides in multiples of this (32: none).
    #[arg(long)]
    pub ocr_det_bucket: Option<u32>,
    /// Turn upside-down text lines with PP-OCR's orientation classifier.
    #[arg(long)]
    pub ocr_cls: bool,
    /// Where image embedding, matching and OCR run: auto (a working GPU,
    /// else the CPU, and says which), cpu, or cuda (a GPU or an error).
    #[arg(long, env = "DAJIA_DEVICE")]
    pub device: Option<String>,
    /// Tasks per stage of a query on a cluster (`--cluster`; default 16).
    #[arg(long, env = "DAJIA_CLUSTER_PARTITIONS")]
    pub cluster_partitions: Option<usize>,
}

impl OptionFlags {
    /// The flags given, as option keys and values, in the order they apply.
    pub fn pairs(&self) -> Result<Vec<(String, String)>, String> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                p.push((k.to_string(), v));
            }
        };
        put("images.embedder", self.embedder.clone());
        put(
            "images.models_dir",
            self.models
                .as_ref()
                .map(|m| m.to_string_lossy().into_owned()),
        );
        put(
            "images.threshold",
            self.image_threshold.map(|v| v.to_string()),
        );
        put(
            "images.max_pixels",
            self.max_image_pixels.map(|v| v.to_string()),
        );
        put("images.batch_rows", self.image_batch.map(|v| v.to_string()));
        put("images.device", self.device.clone());
        put("ocr.mode", self.ocr.clone());
        put("ocr.rec_batch", self.ocr_rec_batch.map(|v| v.to_string()));
        put("ocr.det_batch", self.ocr_det_batch.map(|v| v.to_string()));
        put("ocr.det_bucket", self.ocr_det_bucket.map(|v| v.to_string()));
        put("ocr.use_cls", self.ocr_cls.then(|| "true".to_string()));
        put(
            "cluster.partitions",
            self.cluster_partitions.map(|v| v.to_string()),
        );
        for s in &self.set {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| format!("--set {s}: expected KEY=VALUE"))?;
            p.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(p)
    }
}
