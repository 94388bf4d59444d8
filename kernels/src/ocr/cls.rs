//! Optional text-line orientation classifier (PP-LCNet, 0° or 180°): lines
//! it finds upside down are turned before recognition. Off by default (most
//! product photos are upright; it costs one more model run per line).

use std::path::Path;

use image::RgbImage;

use crate::device::Runtime;
use crate::image::thumbnail::resize_to;
use crate::image::ImageError;
use crate::plans::ShapedModel;

pub const MODEL_FILE: &str = "ppocrv5_cls.onnx";
const WIDTH: u32 = 160;
const HEIGHT: u32 = 80;
/// Probability of "180°" above which a line is turned.
pub const THRESHOLD: f32 = 0.9;

pub struct Orientation {
    model: ShapedModel,
}

impl Orientation {
    pub fn load(dir: &Path, runtime: Runtime) -> Result<Self, ImageError> {
        Ok(Orientation {
            model: ShapedModel::load("ppocrv5_cls", dir, MODEL_FILE, &[], runtime)?,
        })
    }

    /// Probability that each crop is upside down.
    pub fn upside_down(&self, crops: &[RgbImage]) -> Result<Vec<f32>, ImageError> {
        const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
        const STD: [f32; 3] = [0.229, 0.224, 0.225];
        let plane = (WIDTH * HEIGHT) as usize;
        let mut out = Vec::with_capacity(crops.len());
        for crop in crops {
            let r = resize_to(crop, WIDTH, HEIGHT);
            let mut input = vec![0f32; 3 * plane];
            for (i, p) in r.pixels().enumerate() {
                for c in 0..3 {
                    input[c * plane + i] = (p.0[2 - c] as f32 / 255.0 - MEAN[c]) / STD[c];
                }
            }
            let (_, probs) = self
                .model
                .run(&[1, 3, HEIGHT as usize, WIDTH as usize], &input)?;
            out.push(probs.get(1).copied().unwrap_or(0.0));
        }
        Ok(out)
    }
}
