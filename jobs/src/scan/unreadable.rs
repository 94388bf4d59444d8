//! Catalog files that cannot be read whole, in any table and in object
//! stores: their readable rows are salvaged into the run's staging folder
//! ([`crate::salvage`]), the table is registered again over the salvaged
//! copies, and the bad rows (or whole files, when not even the footer reads)
//! become rejects with their reason.

use std::path::{Path, PathBuf};

use anyhow::Result;
use datafusion::prelude::SessionContext;

use crate::catalog::{is_remote_file, register_files_as, Catalog};
use crate::salvage::{download, find_unreadable, salvage_file};

/// A rejects row: (table, file, key, reason).
pub(super) type RejectRow = [Option<String>; 4];

/// The tables the scan reads besides `listings`: sellers (linking), brands
/// (the knowledge base), and the image stage's images, brand images and
/// test purchases (known fakes). Only these are decoded ahead. `orders` and
/// `complaints` are read by other jobs (`leads`, `sample`, `train`), not by
/// the scan: decoding them every night cost the scan a read of the
/// catalog's largest tables for nothing (`orders` alone was a fifth of the
/// load stage at 1M listings and most of it at 4M).
const READ_BY_THE_SCAN: &[&str] = &[
    "sellers",
    "brands",
    "images",
    "brand_images",
    "test_purchases",
];

/// Tables whose every file is decoded before the scan starts: those the scan
/// reads ([`READ_BY_THE_SCAN`]), without `listings` (the bulk of the
/// catalog, checked only when its read fails) and image bytes (which the
/// image stage rejects image by image).
pub(super) async fn salvage_tables(
    ctx: &SessionContext,
    catalog: &mut Catalog,
    staging: &Path,
    rejects: &mut Vec<RejectRow>,
) -> Result<()> {
    for t in catalog
        .tables
        .iter_mut()
        .filter(|t| READ_BY_THE_SCAN.contains(&t.name.as_str()) && !t.files.is_empty())
    {
        let bad = find_unreadable(ctx, &t.files, true).await?;
        if bad.is_empty() {
            continue;
        }
        tracing::warn!(
            "{} {} file(s) unreadable: salvaging their readable rows",
            bad.len(),
            t.name
        );
        t.files = salvage_files(ctx, &t.name, &t.files, &bad, staging, rejects).await?;
        ctx.deregister_table(t.name.as_str())?;
        if !t.files.is_empty() {
            register_files_as(ctx, &t.name, &t.files, t.schema.clone()).await?;
        }
    }
    Ok(())
}

/// `files` with each of `bad` replaced by its salvaged copy (or left out
/// when it could not be salvaged); the lost rows go to `rejects`.
pub(super) async fn salvage_files(
    ctx: &SessionContext,
    table: &str,
    files: &[PathBuf],
    bad: &[(PathBuf, String)],
    staging: &Path,
    rejects: &mut Vec<RejectRow>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(staging)?;
    let key = dajia_schemas::table(table).and_then(|d| d.columns.first().map(|c| c.name));
    let mut kept: Vec<PathBuf> = files
        .iter()
        .filter(|f| !bad.iter().any(|(b, _)| b == *f))
        .cloned()
        .collect();
    for (k, (file, reason)) in bad.iter().enumerate() {
        let shown = file.display().to_string();
        let dest = staging.join(format!("salvaged-{table}-{k:05}.parquet"));
        let copy = staging.join(format!("download-{table}-{k:05}.parquet"));
        let result = async {
            let src = if is_remote_file(file) {
                download(ctx, file, &copy).await?;
                copy.as_path()
            } else {
                file.as_path()
            };
            let mut lost = Vec::new();
            salvage_file(src, &dest, key, &mut |id, why| lost.push((id, why)))?;
            anyhow::Ok(lost)
        }
        .await;
        let _ = std::fs::remove_file(&copy);
        match result {
            Ok(lost) => {
                for (id, why) in lost {
                    rejects.push([Some(table.into()), Some(shown.clone()), id, Some(why)]);
                }
                kept.push(dest);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                rejects.push([
                    Some(table.into()),
                    Some(shown),
                    None,
                    Some(format!("{reason}; rows could not be salvaged: {e:#}")),
                ]);
            }
        }
    }
    Ok(kept)
}
