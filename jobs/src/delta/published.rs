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

use anyhow::{bail, Context, Result};
use deltalake::DeltaTable;

/// The versions of the output tables under `out` that the last succeeded
/// run committed; an empty map when runs recorded commits but none
/// succeeded (nothing is published); `None` when the output predates
/// recorded commits (readers see the latest versions).
pub fn versions(out: &Path) -> Result<Option<BTreeMap<String, i64>>> {
    versions_except(out, None)
}

/// The scan manifests in `OUT/runs/` (`None` when there is no such
/// folder). Other jobs' manifests (`dajia link`, `"job": "link"`) publish
/// their own tables in one commit each; only scans pin.
pub fn scan_manifests(out: &Path) -> Option<Vec<serde_json::Value>> {
    let entries = std::fs::read_dir(out.join("runs")).ok()?;
    let mut found = Vec::new();
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
        if m["job"].as_str().is_none_or(|j| j == "scan") {
            found.push(m);
        }
    }
    Some(found)
}

/// [`versions`], leaving out the manifest of run `except` (the run asking).
fn versions_except(out: &Path, except: Option<&str>) -> Result<Option<BTreeMap<String, i64>>> {
    let Some(manifests) = scan_manifests(out) else {
        return Ok(None);
    };
    let mut best: Option<(Vec<i64>, BTreeMap<String, i64>)> = None;
    let (mut any_succeeded, mut any_recorded) = (false, false);
    for m in manifests {
        if except.is_some() && m["run_id"].as_str() == except {
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
    let succeeded: Vec<String> = scan_manifests(out)
        .unwrap_or_default()
        .iter()
        .filter(|m| m["outcome"] == "succeeded")
        .filter_map(|m| m["run_id"].as_str().map(String::from))
        .collect();
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
        if latest <= v || !undoable_commits_after(&table, name, v, latest, &succeeded).await? {
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

/// Whether the commits of `table` after its published version `v` (up to
/// `latest`) hold a change to undo, checked commit by commit (newest
/// first) against the run that made it (`dajia.run_id`):
/// - a vacuum's commits change no rows and are kept;
/// - a restore to `v` (an earlier roll-back) means everything older is
///   already undone;
/// - a commit of a dajia run that did not succeed is undone;
/// - a commit of a run whose manifest says it succeeded, or one that no
///   dajia run made (another writer, or a manifest lost), is never undone
///   silently: the roll-back fails, naming the version, for an operator to
///   look at. Restoring over it would throw away rows nobody can recompute.
async fn undoable_commits_after(
    table: &DeltaTable,
    name: &str,
    v: i64,
    latest: i64,
    succeeded: &[String],
) -> Result<bool> {
    use futures::TryStreamExt;
    let commits: Vec<_> = table
        .history(Some((latest - v) as usize))
        .try_collect()
        .await
        .with_context(|| format!("reading the history of {name}"))?;
    if commits.len() < (latest - v) as usize {
        bail!(
            "{name}: a commit after the published version {v} has no commit information \
             (not written by dajia); not rolling it back over: inspect the table"
        );
    }
    let mut undo = false;
    for (i, c) in commits.iter().enumerate() {
        let version = latest - i as i64;
        let op = c.operation.as_deref().unwrap_or("(no operation)");
        let run = c.info.get("dajia.run_id").and_then(|r| r.as_str());
        match (op, run) {
            ("VACUUM START" | "VACUUM END", _) => {}
            ("RESTORE", Some(_)) if restored_to(c) == Some(v) => break,
            (_, Some(r)) if succeeded.iter().any(|s| s == r) => bail!(
                "{name}: version {version} ({op}) was committed by run {r}, which succeeded, \
                 after the published version {v}: the manifests in runs/ disagree with the \
                 table; not rolling back"
            ),
            (_, Some(_)) => undo = true,
            (_, None) => bail!(
                "{name}: version {version} ({op}) was not written by a dajia run; \
                 not rolling it back over: inspect the table (its published version is {v})"
            ),
        }
    }
    Ok(undo)
}

/// The version a RESTORE commit went back to (its operation parameters
/// hold it as a number or, as delta-rs writes them, a string).
fn restored_to(c: &deltalake::kernel::CommitInfo) -> Option<i64> {
    let p = c.operation_parameters.as_ref()?.get("version")?;
    p.as_i64().or_else(|| p.as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn commit(dir: &Path, run_id: Option<&str>) {
        let ctx = SessionContext::new();
        let df = ctx.sql("SELECT 1 AS x, '2026-01-01' AS dt").await.unwrap();
        match run_id {
            Some(r) => {
                let plan = df.into_optimized_plan().unwrap();
                super::super::replace_partition(dir, plan, "2026-01-01", r, Some(&ctx))
                    .await
                    .unwrap();
            }
            // Another writer: no `dajia.run_id`.
            None => {
                let batches = df.collect().await.unwrap();
                super::super::open(dir)
                    .await
                    .unwrap()
                    .write(batches)
                    .with_save_mode(deltalake::protocol::SaveMode::Append)
                    .await
                    .unwrap();
            }
        }
    }

    fn manifest(out: &Path, run_id: &str, outcome: &str, commits: serde_json::Value) {
        std::fs::create_dir_all(out.join("runs")).unwrap();
        let m = serde_json::json!({"run_id": run_id, "job": "scan", "outcome": outcome, "commits": commits});
        std::fs::write(
            out.join("runs").join(format!("{run_id}.json")),
            m.to_string(),
        )
        .unwrap();
    }

    async fn latest(dir: &Path) -> i64 {
        super::super::open(dir).await.unwrap().version().unwrap() as i64
    }

    /// An output whose `risk_scores` version 0 is published by run `ok`.
    async fn published_once() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let scores = dir.path().join("risk_scores");
        commit(&scores, Some("ok")).await;
        let commits = serde_json::json!({"risk_scores": 0});
        manifest(dir.path(), "ok", "succeeded", commits);
        (dir, scores)
    }

    #[tokio::test]
    async fn only_unfinished_runs_commits_are_undone_and_only_once() {
        let (dir, scores) = published_once().await;
        let out = dir.path();
        commit(&scores, Some("killed")).await;
        manifest(out, "killed", "running", serde_json::json!({}));
        assert_eq!(roll_back(out, "next").await.unwrap(), ["risk_scores"]);
        assert_eq!(latest(&scores).await, 2, "one RESTORE commit");
        // Already restored to the published version: nothing more to undo
        // (no new RESTORE commit on every later run).
        assert!(roll_back(out, "after").await.unwrap().is_empty());
        assert_eq!(latest(&scores).await, 2);
    }

    #[tokio::test]
    async fn a_commit_no_dajia_run_made_is_never_rolled_over() {
        let (dir, scores) = published_once().await;
        let out = dir.path();
        commit(&scores, None).await;
        let e = roll_back(out, "next").await.unwrap_err().to_string();
        assert!(
            e.contains("version 1") && e.contains("not written by a dajia run"),
            "{e}"
        );
        assert_eq!(latest(&scores).await, 1, "left as it was");
    }
}
