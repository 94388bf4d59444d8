//! The run manifest: one JSON file per run in `runs/`, written when the run
//! starts (`running`), after each commit, and at its end (`succeeded` or
//! `failed`), each time durably (fsynced, then renamed into place). A run
//! killed midway leaves `running`. Readers see the output tables at the
//! versions of the last `succeeded` manifest (`delta::published`).

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
    /// The table versions this run committed (`risk_scores`, `rejects`):
    /// what readers open once the run has succeeded. Every row of both
    /// carries this run's `run_id`, and each commit names it too.
    pub commits: std::collections::BTreeMap<String, i64>,
    /// Identity values shared by more than `scan.max_sellers_per_identity`
    /// sellers, left out of the seller links (the most shared first).
    pub hot_identity_values: Vec<crate::link::HotValue>,
    /// The seller networks the scan linked (`dajia link`'s figures).
    pub links: Option<crate::link::LinkSummary>,
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
            commits: Default::default(),
            hot_identity_values: vec![],
            links: None,
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
    pub fn committed(&mut self, table: &str, version: i64) {
        self.commits.insert(table.into(), version);
    }
    /// Write (or replace) this run's manifest in `dir`, durably: the bytes
    /// are synced before the rename, and the folder after it.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_json(dir, &self.run_id, self)
    }
}

/// Write `value` as `dir/NAME.json`, durably: the bytes are synced before
/// the rename over any older file, and the folder after it.
pub fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.json"));
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(value)?)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}
