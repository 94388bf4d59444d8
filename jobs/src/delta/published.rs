//! What readers see of an output: the table versions recorded by the last
//! scan that succeeded (its manifest in `OUT/runs/`), not whatever commit
//! came last. A run commits `risk_scores` and `rejects` one after the other;
//! if it is killed between them (or fails after the first), readers keep
//! seeing both tables as the last successful run left them, never new scores
//! beside old rejects. The next scan rolls such commits back (`roll_back`)
//! before it starts, so the latest versions agree again.
//!
//! Outputs written before manifests recorded their commits have no pin:
//! readers see the latest versions, as before. An output whose runs (with
//! recorded commits) never succeeded has nothing published: readers see no
//! output tables, and the next scan moves the unfinished tables aside.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use deltalake::DeltaTable;

/// The versions of the output tables under `out` that the last succeeded
/// run committed; an empty map when runs recorded commits but none
/// succeeded (nothing is published); `None` when the output predates
/// recorded commits (readers see the latest versions).
pub fn versions(out: &Path) -> Result<Option<BTreeMap<String, i64>>> {
    versions_except(out, None)
}

/// [`versions`], leaving out the manifest of run `except` (the run asking).
fn versions_except(out: &Path, except: Option<&str>) -> Result<Option<BTreeMap<String, i64>>> {
    let Ok(entries) = std::fs::read_dir(out.join("runs")) else {
        return Ok(None);
    };
    let mut best: Option<(Vec<i64>, BTreeMap<String, i64>)> = None;
    let (mut any_succeeded, mut any_recorded) = (false, false);
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        // A manifest that cannot be read is no evidence of success.
        let Ok(m) = std::fs::read(&p)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<serde_json::Value>(&b)?))
        else {
            tracing::warn!("{}: not a readable run manifest, ignored", p.display());
            continue;
        };
        if except.is_some() && m["run_id"].as_str() == except {
            continue;
        }
        // Other jobs' manifests (`dajia link`, `"job": "link"`) publish
        // their own tables in one commit each; only scans pin.
        if m["job"].as_str().is_some_and(|j| j != "scan") {
            continue;
        }
        // Written by a dajia that records its commits (even none yet).
        let recorded = m["commits"].is_object();
        any_recorded |= recorded;
        if m["outcome"] != "succeeded" {
            continue;
        }
        any_succeeded = true;
        let Some(commits) = m["commits"].as_object() else {
            continue;
        };
        let commits: BTreeMap<String, i64> = commits
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_i64()?)))
            .collect();
        // Runs of one output commit one at a time (the lease) and table
        // versions only grow, so the succeeded run with the highest versions
        // is the last (no clock involved).
        let key: Vec<i64> = SCAN_TABLES
            .iter()
            .map(|t| commits.get(*t).copied().unwrap_or(-1))
            .collect();
        if !commits.is_empty() && best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, commits));
        }
    }
    Ok(match best {
        Some((_, c)) => Some(c),
        None if any_recorded && !any_succeeded => Some(BTreeMap::new()),
        None => None,
    })
}

/// What readers see of one output table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pin {
    /// The output records no published versions (written before they were
    /// recorded): the latest version.
    Latest,
    At(i64),
    /// Nothing of it is published.
    Nothing,
}

/// The tables a scan commits together, pinned by its manifest. The other
/// output tables (`seller_clusters`, `leads`) are each written in one commit
/// by their own job, so their latest version is always a whole result.
pub const SCAN_TABLES: &[&str] = &["risk_scores", "rejects"];

/// What readers see of the table at `dir` (`OUT/TABLE`).
pub fn pin_of(dir: &Path) -> Result<Pin> {
    let (Some(out), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else {
        return Ok(Pin::Latest);
    };
    if !SCAN_TABLES.contains(&name) {
        return Ok(Pin::Latest);
    }
    Ok(match versions(out)? {
        None => Pin::Latest,
        Some(v) => v.get(name).map_or(Pin::Nothing, |&v| Pin::At(v)),
    })
}

/// Open the table at `dir` at its published version (the latest when the
/// output records none); `None` when nothing of it is published.
pub async fn open(dir: &Path) -> Result<Option<DeltaTable>> {
    let mut table = super::open(dir).await?;
    match pin_of(dir)? {
        Pin::Nothing => return Ok(None),
        Pin::Latest => {}
        Pin::At(v) => table
            .load_version(v as u64)
            .await
            .with_context(|| format!("loading version {v} of {}", dir.display()))?,
    }
    Ok(Some(table))
}

/// Undo commits to the output tables made after the published versions (by
/// runs that were killed or failed after a commit): each such table is
/// restored to its published version in a new commit naming `run_id`.
/// Called by a scan holding the output's lease, so no run is committing.
/// Returns the tables rolled back.
pub async fn roll_back(out: &Path, run_id: &str) -> Result<Vec<String>> {
    let Some(published) = versions_except(out, Some(run_id))? else {
        return Ok(vec![]);
    };
    let mut done = Vec::new();
    if published.is_empty() {
        // No run ever succeeded: every version of these tables is an
        // unfinished run's. Moved aside to `_unpublished/`, not deleted.
        for name in SCAN_TABLES {
            let dir = out.join(name);
            if dir.join("_delta_log").is_dir() {
                let aside = out.join("_unpublished").join(format!("{name}-{run_id}"));
                std::fs::create_dir_all(out.join("_unpublished"))?;
                tracing::warn!(
                    "{name}: written only by runs that did not finish; moved to {}",
                    aside.display()
                );
                std::fs::rename(&dir, &aside)
                    .with_context(|| format!("moving {} aside", dir.display()))?;
                done.push(name.to_string());
            }
        }
        return Ok(done);
    }
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
