//! The scan's image stage on a cluster: the executors do the image work and
//! the client only sends plans and reads back small answers.
//!
//! 1. `image_signals` runs over the `images` partitions on the executors
//!    (each with its own `--device` and `--models`); each task writes its
//!    per-image results as a Parquet part in the run's staging folder
//!    (`image_results/`, [`write_parts`]).
//! 2. A second distributed query groups those results per listing into the
//!    `image_hits` parts the scoring query joins: hits and OCR texts in
//!    image id order, as the in-process stage stages them.
//! 3. The stage's counts are a query over `image_results`; its rejects (one
//!    row per unreadable image) are published from it by the executors,
//!    with the scan's other rejects.
//!
//! The reference indexes reach each executor once per run, by path and
//! hash (the plan codec): indexes the client built from the catalog are
//! saved to the staging folder first.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{col, Expr, Partitioning};

use super::image_stage::{
    process_cpu_seconds, uri_column, ImageStageSummary, StageOutput, PER_LISTING,
};
use crate::cluster::write_parts;
use crate::images::ImageRefs;
use crate::ocr::OcrMode;

/// Runs the stage on the cluster session `ctx` (the catalog registered);
/// registers `image_hits` there. `reads_text`: the client's OCR is on (the
/// executors then read text too, and fail without the models).
pub async fn run(
    ctx: &SessionContext,
    mut kb: ImageRefs,
    ocr_status: &str,
    reads_text: bool,
    catalog_root: String,
    staging: &Path,
) -> Result<StageOutput> {
    let started = Instant::now();
    let cpu = process_cpu_seconds();
    if kb.source.is_none() {
        kb.save(&staging.join("image_refs"))
            .context("saving the reference images for the executors")?;
    }
    let mut s = ImageStageSummary {
        embedder: kb.refs.embedder.kind().to_string(),
        references_official: kb.refs.official.len(),
        references_known_fakes: kb.refs.fakes.len(),
        ocr: ocr_status.to_string(),
        device: "the executors' (each its own --device)".into(),
        on_cluster: true,
        ..Default::default()
    };
    let batch_rows = kb.options.batch_rows;
    // The client decided whether text is read (its `auto` found models or
    // not): executors follow it rather than their own folders.
    let mode = if reads_text {
        OcrMode::On
    } else {
        OcrMode::Off
    };
    crate::udf::register_image_signals(ctx, Arc::new(kb), Some(catalog_root), Some(mode));
    let result = stage(ctx, batch_rows, staging, &mut s).await;
    result?;
    s.seconds = started.elapsed().as_secs_f64();
    s.process_cpu_seconds = process_cpu_seconds() - cpu;
    s.images_per_second = s.images as f64 / s.seconds.max(1e-9);
    // The rejects stay on the cluster: the scan publishes them from
    // `image_results` with the others.
    Ok(StageOutput { summary: s })
}

/// Steps 1–3.
async fn stage(
    ctx: &SessionContext,
    batch_rows: usize,
    staging: &Path,
    s: &mut ImageStageSummary,
) -> Result<()> {
    // 1. Per-image results, written where they are computed. The images
    //    are spread over `cluster.partitions` tasks by a hash of their id
    //    (Ballista drops round-robin repartitions, and a catalog of `uri`s
    //    may be one small file): one shuffle of the rows, then the work.
    let results_dir = fresh_dir(&staging.join("image_results"))?;
    let rows = format!(
        "SELECT COALESCE(CAST(image_id AS VARCHAR), '(null)') AS image_id, CAST(listing_id AS BIGINT) AS listing_id, \
                content, {uri} AS uri FROM images",
        uri = uri_column(ctx).await?
    );
    // Bounded memory: `batch_rows` rows per batch where the setting
    // reaches (the function itself also decodes at most that many at once).
    let batch_size = |n: usize| -> Result<usize> {
        let state = ctx.state_ref();
        let mut state = state.write();
        let before = state.config().batch_size();
        state
            .config_mut()
            .options_mut()
            .set("datafusion.execution.batch_size", &n.to_string())?;
        Ok(before)
    };
    let before = batch_size(batch_rows)?;
    let partitions = ctx.state().config().target_partitions();
    let written = async {
        let signals = datafusion::execution::FunctionRegistry::udf(ctx, "image_signals")?;
        let per_image = ctx
            .sql(&rows)
            .await?
            .repartition(Partitioning::Hash(vec![col("image_id")], partitions))?
            .select(vec![
                col("image_id"),
                col("listing_id"),
                signals
                    .call(vec![
                        col("image_id"),
                        col("listing_id"),
                        col("content"),
                        col("uri"),
                    ])
                    .alias("s"),
            ])?
            .unnest_columns(&["s"])?;
        // The struct's fields, unnested as `s.reject`, ... under their names.
        let named: Vec<Expr> = per_image
            .schema()
            .columns()
            .into_iter()
            .map(|c| {
                let name = c.name.strip_prefix("s.").unwrap_or(&c.name).to_string();
                Expr::Column(c).alias(name)
            })
            .collect();
        write_parts::write(per_image.select(named)?, &results_dir).await
    }
    .await;
    batch_size(before)?;
    let parts: Vec<_> = written
        .context("reading the images on the cluster")?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if parts.is_empty() {
        return Ok(()); // no images
    }
    crate::catalog::register_files(ctx, "image_results", &parts).await?;

    // 2. Per listing, in image id order; listings with nothing to add are
    //    left out, as in process.
    let hits_dir = fresh_dir(&staging.join("image_hits"))?;
    let grouped = ctx.sql(PER_LISTING).await?;
    let hit_parts: Vec<_> = write_parts::write(grouped, &hits_dir)
        .await
        .context("grouping the image hits on the cluster")?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    if !hit_parts.is_empty() {
        crate::catalog::register_files(ctx, "image_hits", &hit_parts).await?;
    }

    // 3. The counts and the rejects.
    let one = |b: &[RecordBatch], i: usize| -> Result<f64> {
        let Some(b) = b.iter().find(|b| b.num_rows() > 0) else {
            return Ok(0.0);
        };
        let c = cast(b.column(i), &DataType::Float64)?;
        let c = c.as_primitive::<Float64Type>();
        Ok(if c.is_null(0) { 0.0 } else { c.value(0) })
    };
    let counts = ctx
        .sql(
            "SELECT count(*), count(reject), count(ocr), sum(CASE WHEN ocr IS NULL THEN 0 ELSE ocr_lines END), \
                    sum(character_length(replace(ocr, chr(10), ''))), sum(CASE WHEN ocr_gated_out THEN 1 ELSE 0 END), \
                    sum(ocr_seconds), count(DISTINCT CASE WHEN cardinality(hits) > 0 THEN listing_id END) \
             FROM image_results",
        )
        .await?
        .collect()
        .await?;
    s.images = one(&counts, 0)? as u64;
    s.rejected = one(&counts, 1)? as u64;
    s.ocr_images_with_text = one(&counts, 2)? as u64;
    s.ocr_lines = one(&counts, 3)? as u64;
    s.ocr_chars = one(&counts, 4)? as u64;
    s.ocr_gated_out = one(&counts, 5)? as u64;
    s.ocr_thread_seconds = one(&counts, 6)?;
    s.listings_matched = one(&counts, 7)? as usize;
    let kinds = ctx
        .sql("SELECT CAST(h['kind'] AS VARCHAR), count(*) FROM (SELECT unnest(hits) AS h FROM image_results) GROUP BY 1")
        .await?
        .collect()
        .await?;
    for b in &kinds {
        let kind = b.column(0).as_string::<i32>();
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            match kind.value(i) {
                "official" => s.matched_official += n.value(i) as u64,
                _ => s.matched_known_fake += n.value(i) as u64,
            }
        }
    }
    Ok(())
}

/// `dir`, created empty (a retried run's leftovers removed).
fn fresh_dir(dir: &Path) -> Result<std::path::PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(std::fs::canonicalize(dir)?)
}
