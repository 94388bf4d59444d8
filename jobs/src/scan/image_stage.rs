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

use super::fetch::Fetcher;
use crate::images::ImageRefs;
use crate::udf::{image_hit_fields, ocr_text_fields};

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
    let has_uri = ctx
        .table("images")
        .await?
        .schema()
        .field_with_unqualified_name("uri")
        .is_ok();
    let sql = format!(
        "SELECT CAST(image_id AS VARCHAR) AS image_id, CAST(listing_id AS BIGINT) AS listing_id, content, {} AS uri FROM images",
        if has_uri { "CAST(uri AS VARCHAR)" } else { "CAST(NULL AS VARCHAR)" }
    );
    // Bounded memory: the reader hands over `batch_rows` images at a time.
    let state = ctx.state();
    let config = state.config().clone().with_batch_size(batch_rows);
    let small = SessionContext::new_with_state(
        datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .build(),
    );
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
        let mut fetched: Vec<Option<Vec<u8>>> = vec![None; batch.num_rows()];
        let mut missing: Vec<Option<String>> = vec![None; batch.num_rows()];
        let mut wanted = Vec::new();
        for i in 0..batch.num_rows() {
            if content.is_null(i) {
                if uri.is_null(i) {
                    missing[i] = Some("image has neither content nor uri".into());
                } else {
                    wanted.push((i, uri.value(i).to_string()));
                }
            }
        }
        let t = Instant::now();
        for (i, r) in fetcher.fetch_all(wanted).await {
            match r {
                Ok(b) => fetched[i] = Some(b),
                Err(e) => missing[i] = Some(format!("uri {}: {e:#}", uri.value(i))),
            }
        }
        s.fetch_seconds += t.elapsed().as_secs_f64();
        let bytes: Vec<&[u8]> = (0..batch.num_rows())
            .map(|i| {
                if !content.is_null(i) {
                    content.value(i)
                } else {
                    fetched[i].as_deref().unwrap_or(&[])
                }
            })
            .collect();
        let lids: Vec<Option<i64>> = (0..batch.num_rows())
            .map(|i| (!listing.is_null(i)).then(|| listing.value(i)))
            .collect();
        let t = Instant::now();
        let results = kb.match_listing_images(&bytes, &lids);
        s.embed_match_seconds += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut pages = match ocr {
            Some(o) => o
                .read_batch(&bytes, &kb.limits())
                .into_iter()
                .map(Some)
                .collect(),
            None => vec![None; bytes.len()],
        };
        s.ocr_seconds += t.elapsed().as_secs_f64();
        for (i, r) in results.into_iter().enumerate() {
            s.images += 1;
            let image_id = if ids.is_null(i) {
                "(null)"
            } else {
                ids.value(i)
            };
            if let Some(why) = &missing[i] {
                s.rejected += 1;
                rejects.push((image_id.to_string(), why.clone()));
                continue;
            }
            match r {
                // The model or the GPU failing is the run's problem, not the image's.
                Err(e) if e.is_run_failure() => {
                    anyhow::bail!("embedding image {image_id}: {e}")
                }
                Err(e) => {
                    s.rejected += 1;
                    rejects.push((image_id.to_string(), e.to_string()));
                }
                Ok(ms) => {
                    let Some(lid) = lids[i] else { continue };
                    match pages[i].take() {
                        Some(Ok(page)) => {
                            s.ocr_thread_seconds += page.det_seconds + page.rec_seconds;
                            s.ocr_gated_out += page.gated_out as u64;
                            let text = page.text();
                            if !text.is_empty() {
                                s.ocr_images_with_text += 1;
                                s.ocr_lines += page.lines.len() as u64;
                                s.ocr_chars += text.chars().filter(|c| *c != '\n').count() as u64;
                                staged.entry(lid).or_default().ocr.push(OcrText {
                                    image_id: image_id.to_string(),
                                    text,
                                });
                            }
                        }
                        // The model failing is the run's problem, not the image's.
                        Some(Err(e)) if e.is_run_failure() => {
                            anyhow::bail!("OCR of image {image_id}: {e}")
                        }
                        Some(Err(e)) => {
                            s.rejected += 1;
                            rejects.push((image_id.to_string(), format!("ocr: {e}")));
                        }
                        None => {}
                    }
                    for m in ms {
                        match m.kind {
                            ImageMatchKind::Official => s.matched_official += 1,
                            ImageMatchKind::KnownFake => s.matched_known_fake += 1,
                        }
                        staged.entry(lid).or_default().hits.push(ImageHit {
                            kind: m.kind,
                            image_id: image_id.to_string(),
                            matched_image_id: m.entry.image_id,
                            brand_id: m.entry.brand_id,
                            matched_listing_id: m.entry.listing_id,
                            similarity: m.similarity,
                        });
                    }
                }
            }
        }
    }
    s.listings_matched = staged.values().filter(|l| !l.hits.is_empty()).count();
    write_hits(hits_file, &staged)?;
    crate::catalog::register_files(ctx, "image_hits", &[hits_file.to_path_buf()]).await?;
    s.gpu = kb.refs.embedder.times();
    s.seconds = started.elapsed().as_secs_f64();
    s.images_per_second = s.images as f64 / s.seconds.max(1e-9);
    Ok(StageOutput {
        summary: s,
        rejects,
    })
}

fn write_hits(path: &Path, staged: &BTreeMap<i64, ListingImages>) -> Result<()> {
    let item = Arc::new(Field::new_list_field(
        DataType::Struct(image_hit_fields()),
        true,
    ));
    let mut b = ListBuilder::new(StructBuilder::from_fields(image_hit_fields(), staged.len()))
        .with_field(item.clone());
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
        for h in &l.hits {
            let s = b.values();
            s.field_builder::<StringBuilder>(0)
                .unwrap()
                .append_value(h.kind.as_str());
            s.field_builder::<StringBuilder>(1)
                .unwrap()
                .append_value(&h.image_id);
            s.field_builder::<StringBuilder>(2)
                .unwrap()
                .append_value(&h.matched_image_id);
            s.field_builder::<Int64Builder>(3)
                .unwrap()
                .append_option(h.brand_id);
            s.field_builder::<Int64Builder>(4)
                .unwrap()
                .append_option(h.matched_listing_id);
            s.field_builder::<Float32Builder>(5)
                .unwrap()
                .append_value(h.similarity);
            s.append(true);
        }
        b.append(true);
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("listing_id", DataType::Int64, false),
        Field::new("hits", DataType::List(item), true),
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
