//! One batch of catalog images through the image stage's per-image work:
//! the bytes (inline, or fetched by `uri`), decode + embed + match against
//! the reference indexes, and OCR. The scan's in-process stage and the
//! `image_signals` SQL function (which runs the stage on a cluster's
//! executors) both call [`read`], so they give the same per-image results.

use std::time::Instant;

use anyhow::Result;
use datafusion::arrow::array::{Array, BinaryArray, StringArray};

use dajia_kernels::ocr::Ocr;
use dajia_kernels::risk::ImageHit;

use super::fetch::Fetcher;
use super::ImageRefs;

/// What one image gave.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOutcome {
    /// Why the image, or the text in it, could not be read (a `rejects` row).
    pub reject: Option<String>,
    /// Reference images it copies, best first (only for images of a listing).
    pub hits: Vec<ImageHit>,
    /// The text read in it (only for images of a listing, with OCR on).
    pub ocr: Option<OcrRead>,
}

/// The text OCR read in one image, and what reading it took.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrRead {
    /// Lines in reading order joined by `\n`; empty when the image has none.
    pub text: String,
    pub lines: usize,
    /// The text-presence gate saw no text (neither model ran in full).
    pub gated_out: bool,
    /// Detection + recognition seconds on the thread that read it.
    pub thread_seconds: f64,
}

/// Wall seconds a batch spent in each part.
#[derive(Debug, Default, Clone, Copy)]
pub struct BatchTimes {
    pub fetch: f64,
    pub embed_match: f64,
    pub ocr: f64,
}

/// A batch's image bytes that are not inline: fetched ones by row, and rows
/// that have none (with the reason).
pub struct Fetched {
    bytes: Vec<Option<Vec<u8>>>,
    missing: Vec<Option<String>>,
}

impl Fetched {
    /// The rows to fetch by `uri` (those without inline content).
    pub fn plan(content: &BinaryArray, uri: &StringArray) -> (Self, Vec<(usize, String)>) {
        let n = content.len();
        let mut missing = vec![None; n];
        let mut wanted = Vec::new();
        for i in (0..n).filter(|&i| content.is_null(i)) {
            if uri.is_null(i) {
                missing[i] = Some("image has neither content nor uri".into());
            } else {
                wanted.push((i, uri.value(i).to_string()));
            }
        }
        let bytes = vec![None; n];
        (Fetched { bytes, missing }, wanted)
    }

    /// Records what fetching the planned rows gave.
    pub fn settle(&mut self, results: Vec<(usize, Result<Vec<u8>>)>, uri: &StringArray) {
        for (i, r) in results {
            match r {
                Ok(b) => self.bytes[i] = Some(b),
                Err(e) => self.missing[i] = Some(format!("uri {}: {e:#}", uri.value(i))),
            }
        }
    }

    /// Plans and fetches the batch's `uri` rows (bounded concurrency).
    pub async fn fetch(fetcher: &Fetcher, content: &BinaryArray, uri: &StringArray) -> Self {
        let (mut f, wanted) = Self::plan(content, uri);
        if !wanted.is_empty() {
            f.settle(fetcher.fetch_all(wanted).await, uri);
        }
        f
    }
}

/// The image id as the stage reports it.
pub fn image_id(ids: &StringArray, i: usize) -> &str {
    if ids.is_null(i) {
        "(null)"
    } else {
        ids.value(i)
    }
}

/// Reads a batch: row i's outcome. A model or device failing is the run's
/// error (`Err`), not the image's.
pub fn read(
    kb: &ImageRefs,
    ocr: Option<&Ocr>,
    ids: &StringArray,
    listing_ids: &[Option<i64>],
    content: &BinaryArray,
    fetched: &Fetched,
    times: &mut BatchTimes,
) -> Result<Vec<ImageOutcome>> {
    let bytes: Vec<&[u8]> = (0..content.len())
        .map(|i| {
            if !content.is_null(i) {
                content.value(i)
            } else {
                fetched.bytes[i].as_deref().unwrap_or(&[])
            }
        })
        .collect();
    let t = Instant::now();
    let matched = kb.match_listing_images(&bytes, listing_ids);
    times.embed_match += t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut pages: Vec<Option<_>> = match ocr {
        Some(o) => o
            .read_batch(&bytes, &kb.limits())
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None; bytes.len()],
    };
    times.ocr += t.elapsed().as_secs_f64();

    let mut out = Vec::with_capacity(bytes.len());
    for (i, r) in matched.into_iter().enumerate() {
        let id = image_id(ids, i);
        let mut o = ImageOutcome {
            reject: None,
            hits: Vec::new(),
            ocr: None,
        };
        if let Some(why) = &fetched.missing[i] {
            o.reject = Some(why.clone());
            out.push(o);
            continue;
        }
        match r {
            Err(e) if e.is_run_failure() => anyhow::bail!("embedding image {id}: {e}"),
            Err(e) => o.reject = Some(e.to_string()),
            // Images of no listing are read (and rejected when unreadable)
            // but give the scoring nothing.
            Ok(_) if listing_ids[i].is_none() => {}
            Ok(ms) => {
                match pages[i].take() {
                    Some(Ok(page)) => {
                        o.ocr = Some(OcrRead {
                            text: page.text(),
                            lines: page.lines.len(),
                            gated_out: page.gated_out,
                            thread_seconds: page.det_seconds + page.rec_seconds,
                        })
                    }
                    Some(Err(e)) if e.is_run_failure() => {
                        anyhow::bail!("OCR of image {id}: {e}")
                    }
                    Some(Err(e)) => o.reject = Some(format!("ocr: {e}")),
                    None => {}
                }
                o.hits = ms
                    .into_iter()
                    .map(|m| ImageHit {
                        kind: m.kind,
                        image_id: id.to_string(),
                        matched_image_id: m.entry.image_id,
                        brand_id: m.entry.brand_id,
                        matched_listing_id: m.entry.listing_id,
                        similarity: m.similarity,
                    })
                    .collect();
            }
        }
        out.push(o);
    }
    Ok(out)
}
