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
pub mod batch;
pub mod cls;
pub mod confusables;
pub mod det;
pub mod rec;

use std::path::Path;

use image::RgbImage;
use imageproc::geometric_transformations::{warp_into, Interpolation, Projection};
use rayon::prelude::*;

use crate::device::Runtime;
use crate::image::{decode, DecodeLimits, ImageError};
use crate::plans::{self, Placement, ShapedModel};
pub use batch::OcrTimes;
pub use det::{DetOptions, Quad};

/// Sub-folder of the models directory holding the PP-OCRv5 files.
pub const DIR: &str = "ppocrv5";
pub const DET_FILE: &str = "ppocrv5_det.onnx";

#[derive(Debug, Clone, PartialEq)]
pub struct OcrOptions {
    pub det: DetOptions,
    /// Images of one detection bucket per detector run. One on the CPU
    /// (tract gains nothing from batches there); GPUs want many.
    pub det_batch: usize,
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
    /// Where the models run (tract's CPU runtime or dajia's GPU runtime).
    pub runtime: Runtime,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            det: DetOptions::default(),
            det_batch: 1,
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
    counters: batch::Counters,
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
            counters: batch::Counters::default(),
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

    /// Recognises given line crops (batched by width).
    pub fn recognize(&self, crops: &[RgbImage]) -> Result<Vec<rec::Recognized>, ImageError> {
        self.rec.recognize(crops, self.opts.rec_batch)
    }

    /// Reads the text of one image (the batch path with one image).
    pub fn read(&self, img: &RgbImage) -> Result<OcrPage, ImageError> {
        Ok(self.read_images(&[img])?.pop().expect("one page per image"))
    }

    /// Where reading time went so far ([`batch`]).
    pub fn times(&self) -> OcrTimes {
        self.counters.snapshot()
    }

    /// Decodes (with the image guards) and reads one image.
    pub fn read_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<OcrPage, ImageError> {
        self.read(&decode(bytes, limits)?)
    }

    /// Reads many images, results in input order: decoded in parallel
    /// (rayon), then read together ([`read_images`](Self::read_images)).
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
        let decoded: Vec<Result<RgbImage, ImageError>> =
            images.par_iter().map(|b| decode(b, limits)).collect();
        let ok: Vec<&RgbImage> = decoded.iter().filter_map(|d| d.as_ref().ok()).collect();
        // One pass over the decoded images; if the device fails it as a
        // whole, every image carries the error (out-of-memory ones are read
        // again below, one at a time).
        let read = self.read_images(&ok);
        let mut read_pages = match &read {
            Ok(p) => p
                .clone()
                .into_iter()
                .map(Ok)
                .collect::<Vec<_>>()
                .into_iter(),
            Err(e) => vec![Err(e.clone()); ok.len()].into_iter(),
        };
        let mut pages: Vec<Result<OcrPage, ImageError>> = decoded
            .iter()
            .map(|d| match d {
                Ok(_) => read_pages.next().expect("one page per decoded image"),
                Err(e) => Err(e.clone()),
            })
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
