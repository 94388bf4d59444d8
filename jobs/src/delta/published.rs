//! What readers see of an output: the table versions recorded by the last
//! scan that succeeded (its manifest in `OUT/runs/`), not whatever commit
//! came last. A run commits `risk_scores` and `rejects` one after the other;
//! if it is killed between them (or fails after the first), readers keep
//! seeing both tables as the last successful run left them, never new scores
//! beside old rejects. The next scan rolls such commits back (`roll_back`)
//! before it starts, so the latest versions agree again.
//!
//! Outputs written before manifests recorded their commits have no pin:
//! readers see the latest versions, as before.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use deltalake::DeltaTable;

/// The versions of the output tables under `out` that the last succeeded
/// run committed; `None` when no succeeded run recorded any.
pub fn versions(out: &Path) -> Result<Option<BTreeMap<String, i64>>> {
    let Ok(entries) = std::fs::read_dir(out.join("runs")) else {
        return Ok(None);
    };
    let mut best: Option<(String, BTreeMap<String, i64>)> = None;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        // A manifest that cannot be read is no evidence of success.
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p)?) else {
            tracing::warn!("{}: not a readable run manifest, ignored", p.display());
            continue;
        };
        if m["outcome"] != "succeeded" {
            continue;
        }
        let (Some(finished), Some(commits)) = (m["finished_at"].as_str(), m["commits"].as_object())
        else {
            continue;
        };
        let commits: BTreeMap<String, i64> = commits
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
            .collect();
        // Runs of one output commit one at a time (the lease), so the one
        // that finished last holds the latest published versions.
        let finished = chrono::DateTime::parse_from_rfc3339(finished)
            .map(|t| t.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
            .unwrap_or_default();
        if !commits.is_empty() && best.as_ref().is_none_or(|(f, _)| finished > *f) {
            best = Some((finished, commits));
        }
    }
    Ok(best.map(|(_, c)| c))
}

/// The published version of the table at `dir` (`OUT/TABLE`), if pinned.
pub fn version_of(dir: &Path) -> Result<Option<i64>> {
    let (Some(out), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else {
        return Ok(None);
    };
    Ok(versions(out)?.and_then(|v| v.get(name).copied()))
}

/// Open the table at `dir` at its published version (the latest when the
/// output records none).
pub async fn open(dir: &Path) -> Result<DeltaTable> {
    let mut table = super::open(dir).await?;
    if let Some(v) = version_of(dir)? {
        table
            .load_version(v as u64)
            .await
            .with_context(|| format!("loading version {v} of {}", dir.display()))?;
    }
    Ok(table)
}

/// Undo commits to the output tables made after the published versions (by
/// runs that were killed or failed after a commit): each such table is
/// restored to its published version in a new commit naming `run_id`.
/// Called by a scan holding the output's lease, so no run is committing.
/// Returns the tables rolled back.
pub async fn roll_back(out: &Path, run_id: &str) -> Result<Vec<String>> {
    let Some(published) = versions(out)? else {
        return Ok(vec![]);
    };
    let mut done = Vec::new();
    for (name, &v) in &published {
        let dir = out.join(name);
        if !dir.join("_delta_log").is_dir() {
            continue;
        }
        let table = super::open(&dir).await?;
        let latest = table.version().map_or(-1, |l| l as i64);
        if latest <= v {
            continue;
        }
        tracing::warn!(
            "{name}: versions {}..={latest} were committed by a run that did not finish; restoring version {v}",
            v + 1
        );
        table
            .restore()
            .with_version_to_restore(v as u64)
            .with_commit_properties(super::commit_properties(run_id))
            .await
            .with_context(|| format!("restoring {} to version {v}", dir.display()))?;
        done.push(name.clone());
    }
    Ok(done)
}
