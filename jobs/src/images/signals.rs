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
    let limits = kb.limits();
    let mut matched = Vec::with_capacity(bytes.len());
    let mut pages: Vec<Option<_>> = Vec::with_capacity(bytes.len());
    for part in budget_parts(&bytes, &limits, kb.options.decode_budget_bytes) {
        let t = Instant::now();
        matched.extend(kb.match_listing_images(&bytes[part.clone()], &listing_ids[part.clone()]));
        times.embed_match += t.elapsed().as_secs_f64();
        let t = Instant::now();
        match ocr {
            Some(o) => pages.extend(o.read_batch(&bytes[part], &limits).into_iter().map(Some)),
            None => pages.extend(part.map(|_| None)),
        }
        times.ocr += t.elapsed().as_secs_f64();
    }

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

/// Consecutive parts of `bytes` whose decoded pixels fit `budget` bytes
/// (each image's size from its header; one over the budget is a part of its
/// own; images the guards refuse count nothing, they are never decoded).
pub fn budget_parts(
    bytes: &[&[u8]],
    limits: &dajia_kernels::image::DecodeLimits,
    budget: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut parts = Vec::new();
    let (mut start, mut held) = (0, 0u64);
    for (i, b) in bytes.iter().enumerate() {
        let need = dajia_kernels::image::decode::decoded_bytes(b, limits);
        if i > start && held.saturating_add(need) > budget {
            parts.push(start..i);
            (start, held) = (i, 0);
        }
        held = held.saturating_add(need);
    }
    if start < bytes.len() {
        parts.push(start..bytes.len());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use dajia_kernels::image::DecodeLimits;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        image::RgbImage::new(w, h)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_batch_is_decoded_in_parts_that_fit_the_budget_in_bytes() {
        let (small, big) = (png(100, 100), png(1000, 1000));
        let junk = b"not an image".to_vec();
        let all: Vec<&[u8]> = vec![&small, &small, &big, &junk, &small, &small, &small];
        let limits = DecodeLimits::default();
        // 40,000 bytes each small one, 4,000,000 the big one, 0 the junk.
        assert_eq!(
            budget_parts(&all, &limits, 100_000),
            vec![0..2, 2..3, 3..6, 6..7]
        );
        assert_eq!(budget_parts(&all, &limits, u64::MAX), vec![0..7]);
        assert!(budget_parts(&[], &limits, 1).is_empty());
        // Every image in exactly one part, in order, even with a tiny budget.
        let parts = budget_parts(&all, &limits, 1);
        assert_eq!(parts.len(), 7);
        assert!(parts.iter().all(|p| p.len() == 1));
    }
}
