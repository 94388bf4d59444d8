//! The `mobilenet` embedder: torchvision's ImageNet MobileNetV2, converted to
//! ONNX by `scripts/setup-models.sh`, run with tract on the CPU or dajia's GPU runtime. Its output
//! `embedding` is the 1280-d global-average-pooled feature before the
//! classifier; we L2-normalise it.

use super::thumbnail::imagenet_chw;
use super::ImageError;
use crate::device::Runtime;
use crate::plans::{Placement, ShapedModel};
use std::path::{Path, PathBuf};

/// Input side of the network.
pub const SIDE: usize = 224;
/// Length of an embedding.
pub const DIM: usize = 1280;
/// File name under the models directory.
pub const FILE: &str = "mobilenet_v2.onnx";

pub struct MobileNet {
    model: ShapedModel,
    pub path: PathBuf,
}

fn model_err(detail: impl std::fmt::Display) -> ImageError {
    ImageError::Model {
        model: "mobilenet".into(),
        detail: detail.to_string(),
    }
}

impl MobileNet {
    /// Loads the model for `runtime` and builds its one-image plan (rayon
    /// runs images in parallel on the CPU; GPUs get batches, see
    /// [`MobileNet::embed_batch`]).
    pub fn load(models_dir: &Path, runtime: Runtime) -> Result<Self, ImageError> {
        let path = models_dir.join(FILE);
        if !path.is_file() {
            return Err(model_err(format!(
                "{} not found; run `scripts/setup-models.sh {}` to fetch and convert it",
                path.display(),
                models_dir.display()
            )));
        }
        let model = ShapedModel::load("mobilenet", models_dir, FILE, &["embedding"], runtime)?;
        model.plan(&[1, 3, SIDE, SIDE])?;
        Ok(MobileNet { model, path })
    }

    pub fn placement(&self) -> Option<Placement> {
        self.model.placement()
    }

    /// Embeds one `SIDE`×`SIDE` RGB8 image.
    pub fn embed(&self, rgb: &[u8]) -> Result<Vec<f32>, ImageError> {
        let mut chw = Vec::with_capacity(3 * SIDE * SIDE);
        imagenet_chw(rgb, SIDE, &mut chw);
        Ok(self
            .embed_batch(&chw)?
            .pop()
            .expect("one image in, one out"))
    }

    /// Embeds a batch of planar CHW ImageNet-normalised `SIDE`×`SIDE` inputs
    /// (`n × 3 × SIDE × SIDE` floats) in one model run.
    pub fn embed_batch(&self, chw: &[f32]) -> Result<Vec<Vec<f32>>, ImageError> {
        let per = 3 * SIDE * SIDE;
        let n = chw.len() / per;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (shape, out) = self.model.run(&[n, 3, SIDE, SIDE], chw)?;
        if out.len() != n * DIM {
            return Err(model_err(format!("output {shape:?}, expected {n}x{DIM}")));
        }
        Ok(out
            .chunks(DIM)
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter().map(|x| x / norm).collect()
            })
            .collect())
    }
}
