//! The scan's image stage: every image of the snapshot is decoded, embedded
//! and matched against the image indexes in bounded batches
//! (`images.batch_rows` at a time). Each batch's per-image results (hits,
//! text read by OCR, why an image is unreadable) are appended to a staged
//! Parquet file `image_results`, so memory does not grow with the catalog;
//! unreadable images are published as rejects from it. A query then groups
//! the results per listing into `image_hits` (hits and OCR texts in image id
//! order, the same query as on a cluster), which the scoring query joins.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use datafusion::arrow::array::*;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::context::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use dajia_kernels::ocr::Ocr;
use dajia_kernels::risk::{ImageHit, ImageMatchKind};

use crate::images::fetch::Fetcher;
use crate::images::signals::{self, BatchTimes, Fetched};
use crate::images::ImageRefs;
use crate::udf::{append_image_hits, image_hits_builder};

/// Groups `image_results` per listing into the `image_hits` rows the scoring
/// query joins: hits and OCR texts in image id order (an image's hits stay
/// best first); listings with nothing to add are left out. In process and
/// on a cluster alike.
pub(super) const PER_LISTING: &str = "SELECT listing_id, flatten(array_agg(hits ORDER BY image_id)) AS hits, \
        array_agg(named_struct('image_id', image_id, 'text', ocr) ORDER BY image_id) FILTER (WHERE ocr IS NOT NULL) AS ocr \
     FROM image_results WHERE listing_id IS NOT NULL AND (cardinality(hits) > 0 OR ocr IS NOT NULL) \
     GROUP BY listing_id";

/// Rows per row group of the staged per-image results: what the writer
/// buffers before flushing to disk.
const RESULTS_ROW_GROUP: usize = 16 * 1024;

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

pub struct StageOutput {
    pub summary: ImageStageSummary,
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

/// Runs the stage; writes `staging/image_results.parquet` and
/// `staging/image_hits.parquet` and registers them by those names.
pub async fn run(
    ctx: &SessionContext,
    kb: &ImageRefs,
    ocr: Option<&Ocr>,
    ocr_status: &str,
    batch_rows: usize,
    catalog_root: &Path,
    staging: &Path,
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

    std::fs::create_dir_all(staging)?;
    let results_file = staging.join("image_results.parquet");
    let mut results = ResultsWriter::create(&results_file)?;
    let mut s = ImageStageSummary {
        embedder: kb.refs.embedder.kind().to_string(),
        references_official: kb.refs.official.len(),
        references_known_fakes: kb.refs.fakes.len(),
        ocr: ocr_status.to_string(),
        device: kb.device.describe(),
        ..Default::default()
    };
    let mut times = BatchTimes::default();
    // A panic in the Parquet decoders (a damaged `images` file) fails the
    // run with a message, rather than the process.
    while let Some(batch) = next_batch(&mut stream).await? {
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
        let mut rows = ResultRows::default();
        for (i, o) in outcomes.into_iter().enumerate() {
            s.images += 1;
            let image_id = signals::image_id(ids, i);
            if o.reject.is_some() {
                s.rejected += 1;
            }
            let mut text = None;
            if let Some(read) = o.ocr {
                s.ocr_thread_seconds += read.thread_seconds;
                s.ocr_gated_out += read.gated_out as u64;
                if !read.text.is_empty() {
                    s.ocr_images_with_text += 1;
                    s.ocr_lines += read.lines as u64;
                    s.ocr_chars += read.text.chars().filter(|c| *c != '\n').count() as u64;
                    text = Some(read.text);
                }
            }
            for h in &o.hits {
                match h.kind {
                    ImageMatchKind::Official => s.matched_official += 1,
                    ImageMatchKind::KnownFake => s.matched_known_fake += 1,
                }
            }
            rows.push(image_id, lids[i], o.reject, o.hits, text);
        }
        results.write(rows)?;
    }
    s.fetch_seconds = times.fetch;
    s.embed_match_seconds = times.embed_match;
    s.ocr_seconds = times.ocr;
    results.close()?;
    crate::catalog::register_files(ctx, "image_results", &[results_file]).await?;
    let hits_file = staging.join("image_hits.parquet");
    // Written as the grouping streams out (DataFusion's aggregate holds the
    // groups, within the session's memory pool).
    ctx.sql(PER_LISTING)
        .await?
        .write_parquet(
            &hits_file.to_string_lossy(),
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await?;
    crate::catalog::register_files(ctx, "image_hits", &[hits_file]).await?;
    s.listings_matched = crate::session::counts(
        ctx,
        "SELECT count(*) FROM image_hits WHERE cardinality(hits) > 0",
    )
    .await?[0] as usize;
    s.gpu = kb.refs.embedder.times();
    s.seconds = started.elapsed().as_secs_f64();
    s.process_cpu_seconds = process_cpu_seconds() - cpu;
    s.images_per_second = s.images as f64 / s.seconds.max(1e-9);
    Ok(StageOutput { summary: s })
}

async fn next_batch(
    stream: &mut datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<Option<RecordBatch>> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(stream.next())
        .catch_unwind()
        .await
    {
        Ok(b) => Ok(b.transpose()?),
        Err(p) => anyhow::bail!(
            "reading the images panicked: {}",
            crate::catalog::panic_message(&p)
        ),
    }
}

/// One batch's per-image results, as columns.
#[derive(Default)]
struct ResultRows {
    image_id: Vec<String>,
    listing_id: Vec<Option<i64>>,
    reject: Vec<Option<String>>,
    hits: Vec<Vec<ImageHit>>,
    ocr: Vec<Option<String>>,
}

impl ResultRows {
    fn push(
        &mut self,
        image_id: &str,
        listing_id: Option<i64>,
        reject: Option<String>,
        hits: Vec<ImageHit>,
        ocr: Option<String>,
    ) {
        self.image_id.push(image_id.to_string());
        self.listing_id.push(listing_id);
        self.reject.push(reject);
        self.hits.push(hits);
        self.ocr.push(ocr);
    }
}

/// The staged `image_results` file (the columns the cluster's stage writes
/// that the scan reads), appended batch by batch.
struct ResultsWriter {
    schema: Arc<Schema>,
    writer: parquet::arrow::ArrowWriter<File>,
}

impl ResultsWriter {
    fn create(path: &Path) -> Result<Self> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("image_id", DataType::Utf8, false),
            Field::new("listing_id", DataType::Int64, true),
            Field::new("reject", DataType::Utf8, true),
            Field::new("hits", crate::udf::image_hits_type(), true),
            Field::new("ocr", DataType::Utf8, true),
        ]));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(RESULTS_ROW_GROUP))
            .build();
        let writer =
            parquet::arrow::ArrowWriter::try_new(File::create(path)?, schema.clone(), Some(props))?;
        Ok(ResultsWriter { schema, writer })
    }

    fn write(&mut self, rows: ResultRows) -> Result<()> {
        let mut hits = image_hits_builder(rows.hits.len());
        for h in &rows.hits {
            append_image_hits(&mut hits, h);
        }
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from(rows.image_id)),
                Arc::new(Int64Array::from(rows.listing_id)),
                Arc::new(StringArray::from(rows.reject)),
                Arc::new(hits.finish()),
                Arc::new(StringArray::from(rows.ocr)),
            ],
        )?;
        self.writer.write(&batch)?;
        Ok(())
    }

    fn close(self) -> Result<()> {
        self.writer.close()?;
        Ok(())
    }
}
