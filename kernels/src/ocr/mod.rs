//! OCR: read the text inside listing images with PaddleOCR's PP-OCRv5 mobile
//! models (ONNX, run by tract on the CPU).
//!
//! Pipeline per image: [`det`] (probability map → rotated line boxes) →
//! [`crop_line`] (perspective crop of each box) → optional [`cls`] (turn
//! upside-down lines) → [`rec`] (batched recognition, CTC greedy decoding).
//! A cheap gate runs the detector on a small copy of large images first and
//! skips them when nothing in the map looks like text.
//!
//! Models come from `scripts/setup-models.sh` into `<models>/ppocrv5/`.

pub mod accuracy;
pub mod cls;
pub mod det;
pub mod rec;

use std::path::Path;
use std::time::Instant;

use image::RgbImage;
use imageproc::geometric_transformations::{warp_into, Interpolation, Projection};
use rayon::prelude::*;

use crate::device::Runtime;
use crate::image::{decode, DecodeLimits, ImageError};
use crate::plans::{self, Placement, ShapedModel};
pub use det::{DetOptions, Quad};

/// Sub-folder of the models directory holding the PP-OCRv5 files.
pub const DIR: &str = "ppocrv5";
pub const DET_FILE: &str = "ppocrv5_det.onnx";

#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    pub det: DetOptions,
    /// Lines recognised per model run. On the CPU one at a time is fastest
    /// with tract (a batch of 8 costs 1.6x eight single runs, measured); GPUs
    /// want large batches.
    pub rec_batch: usize,
    /// Run the orientation classifier on each line.
    pub use_cls: bool,
    /// Lines recognised with a lower mean character probability are dropped.
    pub min_confidence: f32,
    /// Images whose longer side is at least twice this are first checked on
    /// a copy this size; 0 disables the gate.
    pub gate_side: u32,
    /// Where the models run (tract's CPU runtime or tract-cuda).
    pub runtime: Runtime,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            det: DetOptions::default(),
            rec_batch: 1,
            use_cls: false,
            min_confidence: 0.5,
            gate_side: 480,
            runtime: Runtime::Cpu,
        }
    }
}

/// One line of text found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrLine {
    pub text: String,
    /// Mean probability of the line's characters.
    pub confidence: f32,
    /// Corners in image pixels: top-left, top-right, bottom-right, bottom-left.
    pub quad: Quad,
}

/// What OCR found in one image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OcrPage {
    pub lines: Vec<OcrLine>,
    /// The gate saw no text; neither full detection nor recognition ran.
    pub gated_out: bool,
    pub det_seconds: f64,
    pub rec_seconds: f64,
}

impl OcrPage {
    /// Lines joined by `\n`, in reading order.
    pub fn text(&self) -> String {
        self.lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub struct Ocr {
    det: ShapedModel,
    rec: rec::Recognizer,
    cls: Option<cls::Orientation>,
    pub opts: OcrOptions,
    models_dir: std::path::PathBuf,
    /// CPU engine for the out-of-memory fallback of a GPU one.
    cpu: std::sync::OnceLock<Box<Ocr>>,
}

impl Ocr {
    /// Loads the models from `<models_dir>/ppocrv5/`.
    pub fn load(models_dir: &Path, opts: OcrOptions) -> Result<Self, ImageError> {
        let dir = models_dir.join(DIR);
        let det = ShapedModel::load("ppocrv5_det", &dir, DET_FILE, &[], opts.runtime)?;
        let rec = rec::Recognizer::load(&dir, opts.runtime)?;
        let cls = if opts.use_cls {
            Some(cls::Orientation::load(&dir, opts.runtime)?)
        } else {
            None
        };
        let ocr = Ocr {
            det,
            rec,
            cls,
            opts,
            models_dir: models_dir.to_path_buf(),
            cpu: std::sync::OnceLock::new(),
        };
        // Fail now, not at the first image, if a file is not the model it
        // claims to be.
        ocr.probability_map(&RgbImage::new(32, 32), &ocr.opts.det)?;
        ocr.rec.recognize(&[RgbImage::new(48, 48)], 1)?;
        Ok(ocr)
    }

    /// Where the detector's and recogniser's nodes run (after a first image).
    pub fn placements(&self) -> Vec<(&'static str, Placement)> {
        let mut v = Vec::new();
        if let Some(p) = self.det.placement() {
            v.push(("ppocrv5_det", p));
        }
        if let Some(p) = self.rec.placement() {
            v.push(("ppocrv5_rec", p));
        }
        v
    }

    /// The detector's text probability map for `img` resized per `opts`.
    pub fn probability_map(
        &self,
        img: &RgbImage,
        opts: &DetOptions,
    ) -> Result<det::ProbMap, ImageError> {
        let (w, h) = det::input_size(img.width(), img.height(), opts);
        let input = det::input_tensor(img, w, h);
        let (shape, data) = self.det.run(&[1, 3, h as usize, w as usize], &input)?;
        if shape.len() != 4 || shape[2] != h as usize || shape[3] != w as usize {
            return Err(plans::model_err(
                "ppocrv5_det",
                format!("output shape {shape:?} for input 1x3x{h}x{w}"),
            ));
        }
        Ok(det::ProbMap {
            width: w as usize,
            height: h as usize,
            data,
        })
    }

    /// Text-line boxes of `img` in reading order, with their box scores.
    pub fn detect(&self, img: &RgbImage) -> Result<Vec<(Quad, f32)>, ImageError> {
        let map = self.probability_map(img, &self.opts.det)?;
        Ok(det::boxes_from_map(
            &map,
            &self.opts.det,
            img.width(),
            img.height(),
        ))
    }

    /// Does the small copy of a large image show anything like text?
    fn passes_gate(&self, img: &RgbImage) -> Result<bool, ImageError> {
        let side = self.opts.gate_side;
        if side == 0 || img.width().max(img.height()) < 2 * side {
            return Ok(true);
        }
        let small = DetOptions {
            max_side: side,
            ..self.opts.det.clone()
        };
        Ok(self.probability_map(img, &small)?.max() >= self.opts.det.thresh)
    }

    /// Recognises given line crops (batched by width).
    pub fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<rec::Recognized>, ImageError> {
        self.rec.recognize(crops, self.opts.rec_batch)
    }

    /// Reads the text of one image.
    pub fn read(&self, img: &RgbImage) -> Result<OcrPage, ImageError> {
        let started = Instant::now();
        let mut page = OcrPage::default();
        if !self.passes_gate(img)? {
            page.gated_out = true;
            page.det_seconds = started.elapsed().as_secs_f64();
            return Ok(page);
        }
        let boxes = self.detect(img)?;
        page.det_seconds = started.elapsed().as_secs_f64();
        if boxes.is_empty() {
            return Ok(page);
        }
        let started = Instant::now();
        let mut crops: Vec<RgbImage> = boxes.iter().map(|(q, _)| crop_line(img, q)).collect();
        if let Some(cls) = &self.cls {
            let upside_down = cls.upside_down(&crops)?;
            for (crop, p) in crops.iter_mut().zip(upside_down) {
                if p > cls::THRESHOLD {
                    image::imageops::rotate180_in_place(crop);
                }
            }
        }
        let texts = self.recognize(&crops)?;
        page.rec_seconds = started.elapsed().as_secs_f64();
        page.lines = boxes
            .into_iter()
            .zip(texts)
            .filter(|(_, r)| !r.text.trim().is_empty() && r.confidence >= self.opts.min_confidence)
            .map(|((quad, _), r)| OcrLine {
                text: r.text,
                confidence: r.confidence,
                quad,
            })
            .collect();
        Ok(page)
    }

    /// Decodes (with the image guards) and reads one image.
    pub fn read_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<OcrPage, ImageError> {
        self.read(&decode(bytes, limits)?)
    }

    /// Reads many images in parallel (rayon), results in input order.
    ///
    /// On a GPU, images that ran out of device memory while others ran
    /// beside them are read again one at a time; one that still does not fit
    /// is read on the CPU with a warning (the models are loaded there on
    /// first need).
    pub fn read_batch(
        &self,
        images: &[&[u8]],
        limits: &DecodeLimits,
    ) -> Vec<Result<OcrPage, ImageError>> {
        let mut pages: Vec<Result<OcrPage, ImageError>> = images
            .par_iter()
            .map(|b| self.read_bytes(b, limits))
            .collect();
        let oom = |r: &Result<OcrPage, ImageError>| matches!(r, Err(ImageError::Device(e)) if e.is_out_of_memory());
        for (i, b) in images.iter().enumerate() {
            if !oom(&pages[i]) {
                continue;
            }
            pages[i] = self.read_bytes(b, limits);
            if oom(&pages[i]) {
                tracing::warn!(
                    "OCR: an image does not fit on the GPU alone; reading it on the CPU"
                );
                pages[i] = match self.cpu_fallback() {
                    Ok(cpu) => cpu.read_bytes(b, limits),
                    Err(e) => Err(e),
                };
            }
        }
        pages
    }

    /// The same engine on the CPU, for images that do not fit on the GPU.
    fn cpu_fallback(&self) -> Result<&Ocr, ImageError> {
        if let Some(o) = self.cpu.get() {
            return Ok(o);
        }
        let o = Ocr::load(
            &self.models_dir,
            OcrOptions {
                runtime: Runtime::Cpu,
                rec_batch: 1,
                ..self.opts.clone()
            },
        )?;
        Ok(self.cpu.get_or_init(|| Box::new(o)))
    }
}

/// Perspective crop of a text line, straightened to a rectangle as wide as
/// the box's longer top/bottom edge and as high as its longer left/right
/// edge; boxes much taller than wide (vertical text) are turned to lie flat.
pub fn crop_line(img: &RgbImage, q: &Quad) -> RgbImage {
    let d = |a: [f32; 2], b: [f32; 2]| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
    let w = d(q[0], q[1]).max(d(q[3], q[2])).round().max(1.0);
    let h = d(q[0], q[3]).max(d(q[1], q[2])).round().max(1.0);
    let mut out = RgbImage::new(w as u32, h as u32);
    let to = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    let from = q.map(|p| (p[0], p[1]));
    match Projection::from_control_points(from, to) {
        Some(p) => warp_into(
            img,
            &p,
            Interpolation::Bilinear,
            image::Rgb([0, 0, 0]),
            &mut out,
        ),
        None => return out, // degenerate box: an empty crop reads as no text
    }
    if h >= 1.5 * w {
        image::imageops::rotate270(&out)
    } else {
        out
    }
}
