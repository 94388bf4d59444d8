//! Text-line recognition: PP-OCRv5's SVTR recogniser reads 48-pixel-high
//! line crops and emits per-column character probabilities, decoded by CTC
//! greedy search with the model's dictionary.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::device::Runtime;
use crate::image::thumbnail::resize_to;
use crate::image::ImageError;
use crate::plans::{model_err, Placement, ShapedModel};

pub const HEIGHT: u32 = 48;
/// Lines are padded to at least this width. PaddleOCR pads to 320 (its
/// training shape 3×48×320); on the OCR benchmark set 128 reads as well
/// (character accuracy 0.9860 against 0.9856) and recognises 23% more lines
/// per second (17.8 against 14.5), short lines being most of a product photo's.
pub const MIN_WIDTH: u32 = 128;
/// Batch widths are rounded up to a multiple of this: each width is its own
/// tract plan (~0.2 s to build), so coarser steps mean fewer plans for a
/// little more padding.
pub const WIDTH_STEP: u32 = 64;
/// Longer lines are squeezed to this width (aspect ratio 40:1).
pub const MAX_WIDTH: u32 = 1920;
pub const MODEL_FILE: &str = "ppocrv5_rec.onnx";
pub const KEYS_FILE: &str = "ppocr_keys_v5.txt";

pub struct Recognizer {
    model: ShapedModel,
    /// Output index → character; index 0 is the CTC blank.
    keys: Vec<String>,
}

/// One recognised line.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognized {
    pub text: String,
    /// Mean probability of the emitted characters (0 when none).
    pub confidence: f32,
}

impl Recognizer {
    pub fn load(dir: &Path, runtime: Runtime) -> Result<Self, ImageError> {
        let model = ShapedModel::load("ppocrv5_rec", dir, MODEL_FILE, &[], runtime)?;
        let keys_path = dir.join(KEYS_FILE);
        let text = std::fs::read_to_string(&keys_path).map_err(|e| {
            model_err(
                "ppocrv5_rec",
                format!(
                    "dictionary {}: {e}; run `scripts/setup-models.sh` to fetch it",
                    keys_path.display()
                ),
            )
        })?;
        // The file lists every output class in order: "blank", the
        // characters, and a final space (a line of its own).
        let keys: Vec<String> = text
            .strip_suffix('\n')
            .unwrap_or(&text)
            .split('\n')
            .map(str::to_string)
            .collect();
        if keys.len() < 2 || keys[0] != "blank" {
            return Err(model_err(
                "ppocrv5_rec",
                format!(
                    "dictionary {} is not a PP-OCR key list (first line {:?}); rerun `scripts/setup-models.sh`",
                    keys_path.display(),
                    keys.first()
                ),
            ));
        }
        Ok(Recognizer { model, keys })
    }

    pub fn classes(&self) -> usize {
        self.keys.len()
    }

    pub fn placement(&self) -> Option<Placement> {
        self.model.placement()
    }

    /// Plans built so far.
    pub fn plan_count(&self) -> usize {
        self.model.plan_count()
    }

    /// Builds the plan for `batch` lines of width `width` (warm-up).
    pub fn plan(&self, batch: usize, width: u32) -> Result<(), ImageError> {
        self.model
            .plan(&[batch, 3, HEIGHT as usize, width as usize])
            .map(|_| ())
    }

    /// Recognises line crops, `batch` at a time; lines of similar width are
    /// batched together so that little of each batch is padding, and the
    /// batches run in parallel (rayon). Results are in the order of `crops`.
    pub fn recognize(
        &self,
        crops: &[RgbImage],
        batch: usize,
    ) -> Result<Vec<Recognized>, ImageError> {
        Ok(self.recognize_counted(crops, batch)?.0)
    }

    /// As [`recognize`](Self::recognize), with the number of model runs.
    pub fn recognize_counted(
        &self,
        crops: &[RgbImage],
        batch: usize,
    ) -> Result<(Vec<Recognized>, usize), ImageError> {
        let widths: Vec<u32> = crops.iter().map(line_width).collect();
        let mut order: Vec<usize> = (0..crops.len()).collect();
        order.sort_by_key(|&i| widths[i]);
        let groups: Vec<&[usize]> = order.chunks(batch.max(1)).collect();
        let done: Vec<Vec<(usize, Recognized)>> = groups
            .par_iter()
            .map(|group| self.recognize_group(crops, &widths, group, batch))
            .collect::<Result<_, ImageError>>()?;
        let mut out = vec![
            Recognized {
                text: String::new(),
                confidence: 0.0
            };
            crops.len()
        ];
        for (i, r) in done.into_iter().flatten() {
            out[i] = r;
        }
        Ok((out, groups.len()))
    }

    /// One model run over the lines `group` (indices into `crops`).
    fn recognize_group(
        &self,
        crops: &[RgbImage],
        widths: &[u32],
        group: &[usize],
        batch: usize,
    ) -> Result<Vec<(usize, Recognized)>, ImageError> {
        let w = group
            .iter()
            .map(|&i| widths[i])
            .max()
            .unwrap_or(MIN_WIDTH)
            .max(MIN_WIDTH)
            .div_ceil(WIDTH_STEP)
            * WIDTH_STEP;
        let plane = (HEIGHT * w) as usize;
        let rows = super::batch::padded_batch(group.len(), batch);
        // Zero is mid-grey after normalisation: the padding value
        // PaddleOCR uses.
        let mut input = vec![0f32; rows * 3 * plane];
        for (k, &i) in group.iter().enumerate() {
            let line = resize_to(&crops[i], widths[i].min(w), HEIGHT);
            let base = k * 3 * plane;
            for (x, y, p) in line.enumerate_pixels() {
                let at = (y * w + x) as usize;
                for c in 0..3 {
                    // BGR, (x/255 - 0.5) / 0.5
                    input[base + c * plane + at] = p.0[2 - c] as f32 / 127.5 - 1.0;
                }
            }
        }
        let shape = [rows, 3, HEIGHT as usize, w as usize];
        let (oshape, probs) = self.model.run(&shape, &input)?;
        if oshape.len() != 3 || oshape[0] != rows || oshape[2] != self.keys.len() {
            return Err(model_err(
                "ppocrv5_rec",
                format!(
                    "output shape {oshape:?} does not match {} dictionary entries",
                    self.keys.len()
                ),
            ));
        }
        let (t, c) = (oshape[1], oshape[2]);
        Ok(group
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                (
                    i,
                    ctc_greedy(&probs[k * t * c..(k + 1) * t * c], c, &self.keys),
                )
            })
            .collect())
    }
}

/// Width of a line crop scaled to `HEIGHT`, capped at `MAX_WIDTH`.
pub fn line_width(crop: &RgbImage) -> u32 {
    let ratio = crop.width() as f32 / crop.height().max(1) as f32;
    ((HEIGHT as f32 * ratio).ceil() as u32).clamp(1, MAX_WIDTH)
}

/// CTC greedy decoding: the most probable class per column, repeats merged,
/// blanks (class 0) dropped; confidence is the mean probability of the
/// emitted characters.
pub fn ctc_greedy(probs: &[f32], classes: usize, keys: &[String]) -> Recognized {
    let mut text = String::new();
    let (mut sum, mut n) = (0f32, 0usize);
    let mut prev = usize::MAX;
    for col in probs.chunks_exact(classes) {
        let (best, p) =
            col.iter().enumerate().fold(
                (0usize, f32::MIN),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        if best != 0 && best != prev {
            if let Some(k) = keys.get(best) {
                text.push_str(k);
                sum += p;
                n += 1;
            }
        }
        prev = best;
    }
    Recognized {
        text,
        confidence: if n == 0 { 0.0 } else { sum / n as f32 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctc_merges_repeats_and_drops_blanks() {
        let keys: Vec<String> = ["blank", "a", "b", "高"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let col = |k: usize, p: f32| {
            let mut v = vec![(1.0 - p) / 3.0; 4];
            v[k] = p;
            v
        };
        // a a _ a b b _ _ 高  -> "aab高"
        let cols = [
            col(1, 0.9),
            col(1, 0.8),
            col(0, 0.9),
            col(1, 0.7),
            col(2, 0.6),
            col(2, 0.9),
            col(0, 0.9),
            col(0, 0.9),
            col(3, 0.5),
        ];
        let flat: Vec<f32> = cols.concat();
        let r = ctc_greedy(&flat, 4, &keys);
        assert_eq!(r.text, "aab高");
        assert!((r.confidence - (0.9 + 0.7 + 0.6 + 0.5) / 4.0).abs() < 1e-6);
        let blank = ctc_greedy(&[col(0, 0.9), col(0, 0.8)].concat(), 4, &keys);
        assert_eq!(blank.text, "");
        assert_eq!(blank.confidence, 0.0);
    }

    #[test]
    fn line_widths_keep_aspect_and_are_capped() {
        assert_eq!(line_width(&RgbImage::new(200, 24)), 400);
        assert_eq!(line_width(&RgbImage::new(10, 48)), 10);
        assert_eq!(line_width(&RgbImage::new(100_000, 10)), MAX_WIDTH);
    }
}
