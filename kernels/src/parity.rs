//! CPU-against-device parity checks, each with its stated tolerance: the
//! tests assert them (host launcher everywhere, CUDA where a GPU is) and
//! `dajia-gpu-bench` reports them from a GPU node.

use image::RgbImage;
use serde::Serialize;

use crate::device::DeviceError;
use crate::image::descriptor;
use crate::image::matching::ReferenceSet;
use crate::image::mobilenet::{self, MobileNet};
use crate::image::ops::{CpuOps, ImageOps};
use crate::image::thumbnail::resize_rgb;
use crate::image::{DecodeLimits, ImageError};
use crate::ocr::{accuracy, Ocr};

/// One comparison: `value` of `metric` against `tolerance`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub launcher: String,
    pub metric: &'static str,
    pub value: f64,
    pub tolerance: f64,
    /// `value <= tolerance` for differences, `>=` for similarities.
    pub pass: bool,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<22} {:<28} {} {:.6} (tolerance {}) {}",
            self.check,
            self.launcher,
            self.metric,
            self.value,
            self.tolerance,
            if self.pass { "ok" } else { "FAIL" }
        )
    }
}

/// A difference: passes at or under the tolerance.
fn at_most(
    check: &'static str,
    launcher: String,
    metric: &'static str,
    value: f64,
    tolerance: f64,
) -> Check {
    let pass = value <= tolerance;
    Check {
        check,
        launcher,
        metric,
        value,
        tolerance,
        pass,
    }
}

/// A similarity: passes at or over the tolerance.
fn at_least(
    check: &'static str,
    launcher: String,
    metric: &'static str,
    value: f64,
    tolerance: f64,
) -> Check {
    Check {
        pass: value >= tolerance,
        ..at_most(check, launcher, metric, value, tolerance)
    }
}

fn max_abs<T: Copy + Into<f64>>(a: &[T], b: &[T]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| ((*x).into() - (*y).into()).abs())
        .fold(0.0, f64::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let n =
        a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt();
    (d / n.max(1e-12)) as f64
}

/// Thumbnails: the reference's bytes (the kernels use its fixed-point taps,
/// `image::resample`).
pub fn thumbnails(ops: &dyn ImageOps, imgs: &[RgbImage]) -> Result<Check, DeviceError> {
    let want = CpuOps.thumbnails(imgs, descriptor::SIDE)?;
    let got = ops.thumbnails(imgs, descriptor::SIDE)?;
    Ok(at_most(
        "resize_rgb8",
        ops.name(),
        "max abs diff (levels)",
        max_abs(&got, &want),
        0.0,
    ))
}

/// ImageNet tensors at 224: the reference's bytes, normalised (f32
/// division on both sides; 1e-6 for a compiler's rounding).
pub fn imagenet(ops: &dyn ImageOps, imgs: &[RgbImage]) -> Result<Check, DeviceError> {
    let want = CpuOps.imagenet(imgs, mobilenet::SIDE)?;
    let got = ops.imagenet(imgs, mobilenet::SIDE)?;
    Ok(at_most(
        "resize_imagenet",
        ops.name(),
        "max abs diff",
        max_abs(&got, &want),
        1e-6,
    ))
}

/// The descriptor kernel on the reference's thumbnails (max |Δ| ≤ 1e-4), and
/// resize + descriptor end to end as the embedder runs it (every image's
/// cosine ≥ 0.99999: the thumbnails are the reference's bytes, only float
/// rounding in the descriptor differs).
pub fn descriptor(ops: &dyn ImageOps, imgs: &[RgbImage]) -> Result<[Check; 2], DeviceError> {
    let thumbs = CpuOps.thumbnails(imgs, descriptor::SIDE)?;
    let want = CpuOps.describe(&thumbs)?;
    let got = ops.describe(&thumbs)?;
    let kernel = at_most(
        "describe",
        ops.name(),
        "max abs diff",
        max_abs(&got, &want),
        1e-4,
    );
    let e2e = ops.describe_images(imgs)?;
    let min = e2e
        .chunks(descriptor::DIM)
        .zip(want.chunks(descriptor::DIM))
        .map(|(a, b)| cosine(a, b))
        .fold(1.0, f64::min);
    Ok([
        kernel,
        at_least("resize+describe", ops.name(), "min cosine", min, 0.99999),
    ])
}

/// Top-k: scores within 1e-5 and the same references, except where two
/// references score within 1e-5 of each other (GEMMs round differently).
/// `value` counts the disagreements that no near-tie explains.
pub fn top_k(
    ops: &dyn ImageOps,
    queries: &[f32],
    refs: &ReferenceSet,
    k: usize,
) -> Result<Check, DeviceError> {
    let want = CpuOps.top_k(queries, refs, k)?;
    let got = ops.top_k(queries, refs, k)?;
    let mut bad = (got.len() != want.len()) as usize;
    for (g, w) in got.iter().zip(&want) {
        bad += g.len().abs_diff(w.len());
        for (a, b) in g.iter().zip(w) {
            let near_tie = w
                .iter()
                .any(|o| o.index != b.index && (o.similarity - b.similarity).abs() <= 1e-5);
            if (a.similarity - b.similarity).abs() > 1e-5 || (a.index != b.index && !near_tie) {
                bad += 1;
            }
        }
    }
    Ok(at_most(
        "similarity+top_k",
        ops.name(),
        "unexplained mismatches",
        bad as f64,
        0.0,
    ))
}

/// mobilenet on two runtimes: every embedding's cosine ≥ 0.999.
pub fn mobilenet(
    reference: &MobileNet,
    other: &MobileNet,
    imgs: &[RgbImage],
    launcher: String,
) -> Result<Check, ImageError> {
    let mut min = 1.0f64;
    for img in imgs {
        let t = resize_rgb(img, mobilenet::SIDE as u32);
        min = min.min(cosine(&reference.embed(&t)?, &other.embed(&t)?));
    }
    Ok(at_least("mobilenet", launcher, "min cosine", min, 0.999))
}

/// OCR on two runtimes: characters of the other's text against the
/// reference's, 1 − edit distance / length, over all images: ≥ 0.99.
pub fn ocr_text(
    reference: &Ocr,
    other: &Ocr,
    images: &[&[u8]],
    launcher: String,
) -> Result<Check, ImageError> {
    let limits = DecodeLimits::default();
    let (mut errors, mut chars) = (0usize, 0usize);
    for b in images {
        let want = reference.read_bytes(b, &limits)?.text();
        let got = other.read_bytes(b, &limits)?.text();
        let (w, g) = (accuracy::normalise(&want), accuracy::normalise(&got));
        errors += accuracy::edit_distance(&g, &w);
        chars += w.len().max(g.len());
    }
    let agreement = if chars == 0 {
        1.0
    } else {
        1.0 - errors as f64 / chars as f64
    };
    Ok(at_least(
        "ocr text",
        launcher,
        "character agreement",
        agreement,
        0.99,
    ))
}

/// One of the ONNX models on dajia's runtime against the reference (tract
/// on the CPU, or the runtime's CPU executor), by each model's own measure;
/// `rows` is the output's last axis. MobileNetV2: every row's (image's)
/// cosine ≥ 0.999. PP-OCRv5 det: the probability map within 0.02. PP-OCRv5
/// rec: the same character (argmax of a row) at ≥ 99.5% of time steps.
pub fn runtime_output(
    model: &str,
    rows: usize,
    got: &[f32],
    reference: &[f32],
    launcher: String,
) -> Check {
    let rows = rows.max(1);
    let argmax = |r: &[f32]| {
        r.iter()
            .enumerate()
            .fold(0, |b, (i, x)| if *x > r[b] { i } else { b })
    };
    match model {
        "mobilenet_v2" => {
            let min = got
                .chunks(rows)
                .zip(reference.chunks(rows))
                .map(|(g, r)| cosine(g, r))
                .fold(1.0, f64::min);
            at_least("mobilenet_v2 runtime", launcher, "min cosine", min, 0.999)
        }
        "ppocrv5_rec" => {
            let steps = got.len() / rows;
            let same = got
                .chunks(rows)
                .zip(reference.chunks(rows))
                .filter(|(g, r)| argmax(g) == argmax(r))
                .count();
            let agreement = same as f64 / steps.max(1) as f64;
            at_least(
                "ppocrv5_rec runtime",
                launcher,
                "argmax agreement",
                agreement,
                0.995,
            )
        }
        _ => at_most(
            "ppocrv5_det runtime",
            launcher,
            "max abs diff",
            max_abs(got, reference),
            0.02,
        ),
    }
}
