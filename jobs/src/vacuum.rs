//! `dajia vacuum`: delete the output tables' files that no version readers
//! can see needs any more. A scan that replaces a partition leaves the old
//! files in place (earlier versions and readers still on them use them), and
//! a killed scan leaves files it never committed; without this they pile up.
//!
//! Safe with readers: it holds the output's lease (no scan commits
//! meanwhile), first rolls back commits of unfinished runs (so the latest
//! version is the published one), keeps every file of the published and
//! latest versions, and deletes others only once they have been out of the
//! table for longer than the retention (a reader that opened an older
//! version less than that ago still finds its files).

use std::path::Path;

use anyhow::{bail, Context, Result};
use deltalake::operations::vacuum::VacuumMode;

use crate::delta;

/// What one table's vacuum removed (or would, for a dry run).
#[derive(Debug, Clone)]
pub struct Vacuumed {
    pub table: String,
    pub files: Vec<String>,
}

/// A retention such as `7d`, `36h` or `90m`.
pub fn parse_retention(s: &str) -> Result<chrono::Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .with_context(|| format!("retention `{s}`: expected a number and a unit, e.g. 7d"))?;
    let d = match unit {
        "d" => chrono::Duration::try_days(n),
        "h" => chrono::Duration::try_hours(n),
        "m" => chrono::Duration::try_minutes(n),
        _ => bail!("retention `{s}`: the unit is d, h or m (e.g. 7d)"),
    };
    d.with_context(|| format!("retention `{s}` is too long"))
}

pub async fn run(out: &Path, retain: chrono::Duration, dry_run: bool) -> Result<Vec<Vacuumed>> {
    let run_id = format!("vacuum-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let _lease = crate::lease::Lease::acquire(out, &run_id, 600)?;
    if !dry_run {
        delta::published::roll_back(out, &run_id).await?;
    }
    let published = delta::published::versions(out)?.unwrap_or_default();
    let mut done = Vec::new();
    for name in delta::output_tables() {
        let dir = delta::output_dir(out, name);
        if !dir.join("_delta_log").is_dir() {
            continue;
        }
        let table = delta::open(&dir).await?;
        let mut keep: Vec<u64> = table.version().into_iter().map(|v| v as u64).collect();
        keep.extend(published.get(name).map(|&v| v as u64));
        let (_, metrics) = table
            .vacuum()
            .with_retention_period(retain)
            // The retention is the operator's choice (the table's default
            // of 7 days would refuse shorter ones).
            .with_enforce_retention_duration(false)
            .with_keep_versions(&keep)
            // Also files no version ever referenced (left by killed runs).
            .with_mode(VacuumMode::Full)
            .with_dry_run(dry_run)
            .with_commit_properties(delta::commit_properties(&run_id))
            .await
            .with_context(|| format!("vacuuming {}", dir.display()))?;
        done.push(Vacuumed {
            table: name.into(),
            files: metrics.files_deleted,
        });
    }
    // Staging folders of killed runs (never part of a table).
    if !dry_run {
        if let Ok(entries) = std::fs::read_dir(out.join("_staging")) {
            for e in entries.flatten() {
                let age = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok());
                if age.is_some_and(|a| a.as_secs() as i64 > retain.num_seconds()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    Ok(done)
}
