//! The scan's image stage: every image of the snapshot is decoded, embedded
//! and matched against the image indexes in bounded batches
//! (`images.batch_rows` at a time); unreadable images become rejects; the
//! matches are staged as a Parquet file `image_hits` (one row per listing)
//! that the scoring query joins. With OCR on, the text inside each image is
//! read too and staged in the same file (`ocr` column) for the text signals.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use datafusion::arrow::array::*;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::context::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use dajia_kernels::ocr::Ocr;
use dajia_kernels::risk::{ImageHit, ImageMatchKind, OcrText};

use crate::images::fetch::Fetcher;
use crate::images::signals::{self, BatchTimes, Fetched};
use crate::images::ImageRefs;
use crate::udf::{append_image_hits, image_hits_builder, ocr_text_fields};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageStageSummary {
    pub embedder: String,
    pub references_official: usize,
    pub references_known_fakes: usize,
    pub images: u64,
    pub rejected: u64,
    pub matched_official: u64,
    pub matched_known_fake: u64,
    /// Listings with at least one matched image.
    pub listings_matched: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    /// OCR: the engine, or why it is off.
    pub ocr: String,
    pub ocr_images_with_text: u64,
    pub ocr_lines: u64,
    pub ocr_chars: u64,
    /// Images the text-presence gate skipped.
    pub ocr_gated_out: u64,
    /// OCR seconds summed over the threads that ran it.
    pub ocr_thread_seconds: f64,
    /// Where embedding, matching and OCR ran (`cpu (2 threads)`, `cuda:0 …`).
    pub device: String,
    /// Wall seconds fetching images by `uri`.
    pub fetch_seconds: f64,
    /// Wall seconds of decode + embed + match, and of OCR.
    pub embed_match_seconds: f64,
    pub ocr_seconds: f64,
    /// On a GPU: decoding's CPU thread-seconds, the device's seconds, batches
    /// split after running out of memory, images embedded on the CPU instead.
    pub gpu: Option<dajia_kernels::image::EmbedTimes>,
    /// CPU seconds (user + system) this process spent during the stage: on
    /// a cluster the client's, which only plans and reads back counts.
    pub process_cpu_seconds: f64,
    /// The executors of a cluster did the work (the wall seconds by part
    /// above are then not measured: 0).
    pub on_cluster: bool,
}

/// CPU seconds (user + system) this process has used so far.
pub(super) fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// What the stage stages for one listing.
#[derive(Default)]
struct ListingImages {
    hits: Vec<ImageHit>,
    ocr: Vec<OcrText>,
}

pub struct StageOutput {
    pub summary: ImageStageSummary,
    /// (image_id, reason) of unreadable images.
    pub rejects: Vec<(String, String)>,
}

/// The `images` table's `uri` as a string column (NULL when it has none).
pub(super) async fn uri_column(ctx: &SessionContext) -> Result<&'static str> {
    let has_uri = ctx
        .table("images")
        .await?
        .schema()
        .field_with_unqualified_name("uri")
        .is_ok();
    Ok(if has_uri {
        "CAST(uri AS VARCHAR)"
    } else {
        "CAST(NULL AS VARCHAR)"
    })
}

/// `ctx` reading `batch_rows` rows per batch: the stage holds that many
/// images' bytes at a time (per partition).
fn with_batch_size(ctx: &SessionContext, batch_rows: usize) -> SessionContext {
    // The same state (its catalogs and tables) with one setting changed; a
    // state rebuilt from a copied config would replace the default catalog
    // with an empty one.
    let mut state = ctx.state();
    let config = state.config().clone().with_batch_size(batch_rows);
    *state.config_mut() = config;
    SessionContext::new_with_state(state)
}

/// Runs the stage; writes `hits_file` and registers it as `image_hits`.
pub async fn run(
    ctx: &SessionContext,
    kb: &ImageRefs,
    ocr: Option<&Ocr>,
    ocr_status: &str,
    batch_rows: usize,
    catalog_root: &Path,
    hits_file: &Path,
) -> Result<StageOutput> {
    let started = Instant::now();
    let cpu = process_cpu_seconds();
    let sql = format!(
        "SELECT CAST(image_id AS VARCHAR) AS image_id, CAST(listing_id AS BIGINT) AS listing_id, content, {} AS uri FROM images",
        uri_column(ctx).await?
    );
    let small = with_batch_size(ctx, batch_rows);
    let mut stream = small.sql(&sql).await?.execute_stream().await?;
    let fetcher = Fetcher::new(
        &catalog_root.to_string_lossy(),
        &kb.options.uri_allow,
        kb.limits().max_bytes,
        kb.options.fetch_concurrency,
    )?;

    let mut staged: BTreeMap<i64, ListingImages> = BTreeMap::new();
    let mut rejects = Vec::new();
    let mut s = ImageStageSummary {
        embedder: kb.refs.embedder.kind().to_string(),
        references_official: kb.refs.official.len(),
        references_known_fakes: kb.refs.fakes.len(),
        ocr: ocr_status.to_string(),
        device: kb.device.describe(),
        ..Default::default()
    };
    let mut times = BatchTimes::default();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_any().downcast_ref::<StringArray>().expect("Utf8");
        let listing = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("BIGINT");
        let content = cast(batch.column(2), &DataType::Binary)?;
        let content = content
            .as_any()
            .downcast_ref::<BinaryArray>()
            .expect("Binary");
        let uri = cast(batch.column(3), &DataType::Utf8)?;
        let uri = uri.as_any().downcast_ref::<StringArray>().expect("Utf8");

        // Bytes inline, else fetched by `uri` (concurrently, within limits).
        let t = Instant::now();
        let fetched = Fetched::fetch(&fetcher, content, uri).await;
        times.fetch += t.elapsed().as_secs_f64();
        let lids: Vec<Option<i64>> = (0..batch.num_rows())
            .map(|i| (!listing.is_null(i)).then(|| listing.value(i)))
            .collect();
        let outcomes = signals::read(kb, ocr, ids, &lids, content, &fetched, &mut times)?;
        for (i, o) in outcomes.into_iter().enumerate() {
            s.images += 1;
            let image_id = signals::image_id(ids, i);
            if let Some(why) = o.reject {
                s.rejected += 1;
                rejects.push((image_id.to_string(), why));
            }
            let Some(lid) = lids[i] else { continue };
            if let Some(read) = o.ocr {
                s.ocr_thread_seconds += read.thread_seconds;
                s.ocr_gated_out += read.gated_out as u64;
                if !read.text.is_empty() {
                    s.ocr_images_with_text += 1;
                    s.ocr_lines += read.lines as u64;
                    s.ocr_chars += read.text.chars().filter(|c| *c != '\n').count() as u64;
                    staged.entry(lid).or_default().ocr.push(OcrText {
                        image_id: image_id.to_string(),
                        text: read.text,
                    });
                }
            }
            for h in o.hits {
                match h.kind {
                    ImageMatchKind::Official => s.matched_official += 1,
                    ImageMatchKind::KnownFake => s.matched_known_fake += 1,
                }
                staged.entry(lid).or_default().hits.push(h);
            }
        }
    }
    s.fetch_seconds = times.fetch;
    s.embed_match_seconds = times.embed_match;
    s.ocr_seconds = times.ocr;
    // Each listing's images in image id order (as the cluster's stage
    // aggregates them); an image's hits stay best first.
    for l in staged.values_mut() {
        l.hits.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        l.ocr.sort_by(|a, b| a.image_id.cmp(&b.image_id));
    }
    s.listings_matched = staged.values().filter(|l| !l.hits.is_empty()).count();
    write_hits(hits_file, &staged)?;
    crate::catalog::register_files(ctx, "image_hits", &[hits_file.to_path_buf()]).await?;
    s.gpu = kb.refs.embedder.times();
    s.seconds = started.elapsed().as_secs_f64();
    s.process_cpu_seconds = process_cpu_seconds() - cpu;
    s.images_per_second = s.images as f64 / s.seconds.max(1e-9);
    Ok(StageOutput {
        summary: s,
        rejects,
    })
}

fn write_hits(path: &Path, staged: &BTreeMap<i64, ListingImages>) -> Result<()> {
    let mut b = image_hits_builder(staged.len());
    let ocr_item = Arc::new(Field::new_list_field(
        DataType::Struct(ocr_text_fields()),
        true,
    ));
    let mut ob = ListBuilder::new(StructBuilder::from_fields(ocr_text_fields(), staged.len()))
        .with_field(ocr_item.clone());
    for l in staged.values() {
        for t in &l.ocr {
            let s = ob.values();
            s.field_builder::<StringBuilder>(0)
                .unwrap()
                .append_value(&t.image_id);
            s.field_builder::<StringBuilder>(1)
                .unwrap()
                .append_value(&t.text);
            s.append(true);
        }
        ob.append(true);
        append_image_hits(&mut b, &l.hits);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("listing_id", DataType::Int64, false),
        Field::new("hits", crate::udf::image_hits_type(), true),
        Field::new("ocr", DataType::List(ocr_item), true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(staged.keys().copied())),
            Arc::new(b.finish()),
            Arc::new(ob.finish()),
        ],
    )?;
    crate::gen::write_parquet(path, &batch)
}
