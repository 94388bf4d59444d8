//! Reading many images at once, the way a GPU wants the work and a CPU does
//! not mind it:
//! 1. detection inputs are letterboxed into a few shape buckets (each side
//!    rounded up to a multiple of `DetOptions::bucket`), so a catalog of any
//!    photo sizes needs a handful of plans, built at warm-up;
//! 2. images of one bucket share a detector run (`OcrOptions::det_batch`);
//!    the padded part of each probability map is cut off before DB
//!    post-processing, which runs per image on the rayon pool while other
//!    detector runs proceed;
//! 3. the lines of all images are recognised together, grouped by width
//!    bucket (`OcrOptions::rec_batch` lines per run), groups in parallel.
//!
//! The single-image [`Ocr::read`] is this path with one image, so both give
//! the same lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;

use super::det::{self, DetOptions, ProbMap, Quad};
use super::{cls, crop_line, Ocr, OcrLine, OcrPage};
use crate::image::ImageError;

/// Where reading time went, summed over calls (thread-seconds: stages run
/// in parallel, so they may add up to more than the wall time).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct OcrTimes {
    pub images: u64,
    pub det_runs: u64,
    pub rec_runs: u64,
    pub lines: u64,
    /// Detector runs (including input tensors and the gate's small pass).
    pub det_seconds: f64,
    /// DB post-processing, line crops and the orientation classifier.
    pub post_seconds: f64,
    /// Recogniser runs and CTC decoding.
    pub rec_seconds: f64,
}

/// Counters behind [`OcrTimes`].
#[derive(Default)]
pub(crate) struct Counters {
    images: AtomicU64,
    det_runs: AtomicU64,
    rec_runs: AtomicU64,
    lines: AtomicU64,
    det_ns: AtomicU64,
    post_ns: AtomicU64,
    rec_ns: AtomicU64,
}

impl Counters {
    fn add(n: &AtomicU64, v: u64) {
        n.fetch_add(v, Ordering::Relaxed);
    }
    fn since(n: &AtomicU64, t: Instant) {
        Self::add(n, t.elapsed().as_nanos() as u64);
    }
    pub(crate) fn snapshot(&self) -> OcrTimes {
        let s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 * 1e-9;
        OcrTimes {
            images: self.images.load(Ordering::Relaxed),
            det_runs: self.det_runs.load(Ordering::Relaxed),
            rec_runs: self.rec_runs.load(Ordering::Relaxed),
            lines: self.lines.load(Ordering::Relaxed),
            det_seconds: s(&self.det_ns),
            post_seconds: s(&self.post_ns),
            rec_seconds: s(&self.rec_ns),
        }
    }
}

/// Model runs over `n` items of at most `max` are padded to a power of two
/// (when batching at all), so that a few batch sizes, and plans, exist.
pub fn padded_batch(n: usize, max: usize) -> usize {
    if max <= 1 {
        n
    } else {
        n.next_power_of_two()
    }
}

/// The bucket a detector input of `w`×`h` (multiples of 32) is padded to.
pub fn det_bucket(w: u32, h: u32, opts: &DetOptions) -> (u32, u32) {
    let step = opts.bucket.max(32);
    (w.div_ceil(step) * step, h.div_ceil(step) * step)
}

impl Ocr {
    /// Builds the plans reading will need before it starts, when inputs
    /// are bucketed (`DetOptions::bucket` over 32, as on a GPU): the
    /// detector at every bucket up to `max_side` (and the gate's) at the
    /// full detector batch, the recogniser at every width bucket at the full
    /// recognition batch. Returns how many plans. Without buckets, plans are
    /// built on first use (one image per run needs no warm-up).
    pub fn warm_up(&self) -> Result<usize, ImageError> {
        let d = &self.opts.det;
        if d.bucket <= 32 {
            return Ok(0);
        }
        let top = d.max_side.div_ceil(d.bucket) * d.bucket;
        let sides: Vec<usize> = (1..=top / d.bucket)
            .map(|k| (k * d.bucket) as usize)
            .collect();
        let mut n = 0;
        let det_batch = padded_batch(self.opts.det_batch, self.opts.det_batch);
        for &h in &sides {
            for &w in &sides {
                self.det.plan(&[det_batch, 3, h, w])?;
                n += 1;
            }
        }
        let rec_batch = padded_batch(self.opts.rec_batch, self.opts.rec_batch);
        let mut w = super::rec::MIN_WIDTH;
        while w <= super::rec::MAX_WIDTH {
            self.rec.plan(rec_batch, w)?;
            n += 1;
            w += super::rec::WIDTH_STEP;
        }
        Ok(n)
    }

    /// Plans built so far: (detector, recogniser).
    pub fn plan_counts(&self) -> (usize, usize) {
        (self.det.plan_count(), self.rec.plan_count())
    }

    /// Probability maps of `imgs` at the detector sizes `opts` gives, each
    /// cut to its own size: images of one bucket share detector runs of up
    /// to `det_batch` images, runs in parallel.
    pub(crate) fn maps(
        &self,
        imgs: &[&RgbImage],
        opts: &DetOptions,
    ) -> Result<Vec<ProbMap>, ImageError> {
        let sizes: Vec<(u32, u32)> = imgs
            .iter()
            .map(|i| det::input_size(i.width(), i.height(), opts))
            .collect();
        let mut order: Vec<usize> = (0..imgs.len()).collect();
        order.sort_by_key(|&i| det_bucket(sizes[i].0, sizes[i].1, opts));
        let mut runs: Vec<&[usize]> = Vec::new();
        for group in order.chunk_by(|&a, &b| {
            det_bucket(sizes[a].0, sizes[a].1, opts) == det_bucket(sizes[b].0, sizes[b].1, opts)
        }) {
            runs.extend(group.chunks(self.opts.det_batch.max(1)));
        }
        let done: Vec<Vec<(usize, ProbMap)>> = runs
            .par_iter()
            .map(|run| {
                let started = Instant::now();
                let (bw, bh) = det_bucket(sizes[run[0]].0, sizes[run[0]].1, opts);
                let plane = (bw * bh) as usize;
                let (bw_, bh_) = (bw as usize, bh as usize);
                let batch = padded_batch(run.len(), self.opts.det_batch);
                let mut input = vec![0f32; batch * 3 * plane];
                for (k, &i) in run.iter().enumerate() {
                    let (w, h) = (sizes[i].0 as usize, sizes[i].1 as usize);
                    let t = det::input_tensor(imgs[i], w as u32, h as u32);
                    let n = w * h;
                    // The margin repeats the image's last column and row:
                    // a flat continuation, where a constant fill would draw
                    // an edge the detector can mistake for a text stroke
                    // (measured: 2 lines on the text-free photos).
                    for c in 0..3 {
                        let dst = &mut input[k * 3 * plane + c * plane..][..plane];
                        for y in 0..h {
                            let src = &t[c * n + y * w..][..w];
                            let row = &mut dst[y * bw_..][..bw_];
                            row[..w].copy_from_slice(src);
                            row[w..].fill(src[w - 1]);
                        }
                        for y in h..bh_ {
                            dst.copy_within((h - 1) * bw_..h * bw_, y * bw_);
                        }
                    }
                }
                let shape = [batch, 3, bh as usize, bw as usize];
                let (oshape, data) = self.det.run(&shape, &input)?;
                if oshape.len() != 4
                    || oshape[0] != batch
                    || oshape[2] != bh as usize
                    || oshape[3] != bw as usize
                {
                    return Err(crate::plans::model_err(
                        "ppocrv5_det",
                        format!("output shape {oshape:?} for input {shape:?}"),
                    ));
                }
                let maps = run
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| {
                        let (w, h) = (sizes[i].0 as usize, sizes[i].1 as usize);
                        let base = k * plane;
                        let mut m = Vec::with_capacity(w * h);
                        for y in 0..h {
                            m.extend_from_slice(&data[base + y * bw as usize..][..w]);
                        }
                        (
                            i,
                            ProbMap {
                                width: w,
                                height: h,
                                data: m,
                            },
                        )
                    })
                    .collect();
                Counters::add(&self.counters.det_runs, 1);
                Counters::since(&self.counters.det_ns, started);
                Ok(maps)
            })
            .collect::<Result<_, ImageError>>()?;
        let mut out: Vec<Option<ProbMap>> = (0..imgs.len()).map(|_| None).collect();
        for (i, m) in done.into_iter().flatten() {
            out[i] = Some(m);
        }
        Ok(out
            .into_iter()
            .map(|m| m.expect("every image has a map"))
            .collect())
    }

    /// Reads the text of decoded images, detection batched per bucket and
    /// recognition batched across all of them; pages in input order.
    pub fn read_images(&self, imgs: &[&RgbImage]) -> Result<Vec<OcrPage>, ImageError> {
        Counters::add(&self.counters.images, imgs.len() as u64);
        let started = Instant::now();
        let mut pages: Vec<OcrPage> = vec![OcrPage::default(); imgs.len()];
        // The gate: large images whose small copy shows nothing like text
        // are done.
        let side = self.opts.gate_side;
        let gated: Vec<usize> = (0..imgs.len())
            .filter(|&i| side > 0 && imgs[i].width().max(imgs[i].height()) >= 2 * side)
            .collect();
        if !gated.is_empty() {
            let small = DetOptions {
                max_side: side,
                ..self.opts.det.clone()
            };
            let g: Vec<&RgbImage> = gated.iter().map(|&i| imgs[i]).collect();
            for (&i, m) in gated.iter().zip(self.maps(&g, &small)?) {
                pages[i].gated_out = m.max() < self.opts.det.thresh;
            }
        }
        let kept: Vec<usize> = (0..imgs.len()).filter(|&i| !pages[i].gated_out).collect();
        let k_imgs: Vec<&RgbImage> = kept.iter().map(|&i| imgs[i]).collect();
        let maps = self.maps(&k_imgs, &self.opts.det)?;
        let det_s = started.elapsed().as_secs_f64();

        // Boxes and line crops, per image in parallel.
        let started = Instant::now();
        let found: Vec<(Vec<(Quad, f32)>, Vec<RgbImage>)> = maps
            .into_par_iter()
            .zip(k_imgs.par_iter())
            .map(|(m, img)| {
                let t = Instant::now();
                let boxes = det::boxes_from_map(&m, &self.opts.det, img.width(), img.height());
                let crops: Vec<RgbImage> = boxes.iter().map(|(q, _)| crop_line(img, q)).collect();
                Counters::since(&self.counters.post_ns, t);
                (boxes, crops)
            })
            .collect();
        let mut owner: Vec<usize> = Vec::new();
        let mut quads: Vec<Quad> = Vec::new();
        let mut crops: Vec<RgbImage> = Vec::new();
        for (&i, (boxes, cs)) in kept.iter().zip(found) {
            owner.extend(std::iter::repeat_n(i, boxes.len()));
            quads.extend(boxes.into_iter().map(|(q, _)| q));
            crops.extend(cs);
        }
        if let Some(c) = &self.cls {
            let t = Instant::now();
            let upside_down = c.upside_down(&crops)?;
            for (crop, p) in crops.iter_mut().zip(upside_down) {
                if p > cls::THRESHOLD {
                    image::imageops::rotate180_in_place(crop);
                }
            }
            Counters::since(&self.counters.post_ns, t);
        }
        let t = Instant::now();
        let (texts, runs) = self.rec.recognize_counted(&crops, self.opts.rec_batch)?;
        Counters::add(&self.counters.rec_runs, runs as u64);
        Counters::since(&self.counters.rec_ns, t);
        let rec_s = started.elapsed().as_secs_f64();
        Counters::add(&self.counters.lines, crops.len() as u64);

        for ((i, quad), r) in owner.into_iter().zip(quads).zip(texts) {
            if r.text.trim().is_empty() || r.confidence < self.opts.min_confidence {
                continue;
            }
            pages[i].lines.push(OcrLine {
                text: r.text,
                confidence: r.confidence,
                quad,
            });
        }
        // Per page, its share of the batch's wall time.
        let n = imgs.len().max(1) as f64;
        for p in &mut pages {
            p.det_seconds = det_s / n;
            p.rec_seconds = if p.gated_out { 0.0 } else { rec_s / n };
        }
        Ok(pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pad_to_powers_of_two_only_when_batching() {
        assert_eq!(padded_batch(3, 1), 3);
        assert_eq!(padded_batch(1, 1), 1);
        assert_eq!(padded_batch(3, 16), 4);
        assert_eq!(padded_batch(16, 16), 16);
        assert_eq!(padded_batch(9, 16), 16);
    }

    #[test]
    fn buckets_round_sides_up() {
        let o = DetOptions {
            bucket: 128,
            ..Default::default()
        };
        assert_eq!(det_bucket(480, 352, &o), (512, 384));
        assert_eq!(det_bucket(512, 384, &o), (512, 384));
        assert_eq!(det_bucket(32, 960, &o), (128, 1024));
        let exact = DetOptions {
            bucket: 32,
            ..Default::default()
        };
        assert_eq!(det_bucket(480, 352, &exact), (480, 352));
    }
}
