//! The run manifest: one JSON file per run in `runs/`, written last, for
//! success and failure alike.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::catalog::Catalog;

use super::{ScanOptions, ScanSummary};

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub run_id: String,
    pub job: &'static str,
    pub date: String,
    pub catalog: String,
    pub out: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: String,
    pub error: Option<String>,
    /// Where the image work ran (`cpu (N threads)`, `cuda:0 NVIDIA H200 (sm_90, …)`);
    /// per-stage device and CPU/GPU seconds are in `summary.images`.
    pub device: String,
    pub versions: serde_json::Value,
    /// Every effective setting (`dajia.*`), so a `model_version` can be
    /// traced to the weights and thresholds that made it.
    pub options: std::collections::BTreeMap<String, String>,
    pub inputs: Vec<serde_json::Value>,
    pub stages_seconds: Vec<(String, f64)>,
    pub summary: Option<ScanSummary>,
}

impl Manifest {
    pub fn start(o: &ScanOptions) -> Manifest {
        let now = chrono::Utc::now();
        Manifest {
            run_id: format!("{}-{}", o.date, now.format("%Y%m%dT%H%M%S%.3fZ")),
            job: "scan",
            date: o.date.to_string(),
            catalog: o.catalog.clone(),
            out: o.out.clone(),
            started_at: now.to_rfc3339(),
            finished_at: None,
            outcome: "running".into(),
            error: None,
            device: format!(
                "{} (not opened: no image work ran)",
                o.options.images.device
            ),
            versions: serde_json::json!({
                "dajia": env!("CARGO_PKG_VERSION"),
                "model_version": o.options.model_version(),
                "datafusion": datafusion::DATAFUSION_VERSION,
            }),
            options: o
                .options
                .listing()
                .into_iter()
                .map(|(k, v, _)| (k, v))
                .collect(),
            inputs: vec![],
            stages_seconds: vec![],
            summary: None,
        }
    }
    pub fn stage(&mut self, name: &str, d: Duration) {
        self.stages_seconds.push((name.into(), d.as_secs_f64()));
    }
    pub fn inputs(&mut self, c: &Catalog) {
        self.inputs = c
            .tables
            .iter()
            .map(|t| serde_json::json!({"table": t.name, "files": t.files.len(), "rows": t.rows, "corrupt_files": t.corrupt.len()}))
            .collect();
    }
    pub fn finish_ok(&mut self, s: &ScanSummary) {
        self.outcome = "succeeded".into();
        self.summary = Some(s.clone());
        self.finished_at = Some(chrono::Utc::now().to_rfc3339());
    }
    pub fn finish_err(&mut self, e: &anyhow::Error) {
        self.outcome = "failed".into();
        self.error = Some(format!("{e:#}"));
        self.finished_at = Some(chrono::Utc::now().to_rfc3339());
    }
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", self.run_id));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }
}
