//! The `mobilenet` embedder: torchvision's ImageNet MobileNetV2, converted to
//! ONNX by `scripts/setup-models.sh`, run with tract on the CPU. Its output
//! `embedding` is the 1280-d global-average-pooled feature before the
//! classifier; we L2-normalise it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::thumbnail::imagenet_chw;
use super::ImageError;

/// Input side of the network.
pub const SIDE: usize = 224;
/// Length of an embedding.
pub const DIM: usize = 1280;
/// File name under the models directory.
pub const FILE: &str = "mobilenet_v2.onnx";

pub struct MobileNet {
    plan: Arc<TypedRunnableModel>,
    pub path: PathBuf,
}

fn model_err(detail: impl std::fmt::Display) -> ImageError {
    ImageError::Model {
        model: "mobilenet".into(),
        detail: detail.to_string(),
    }
}

impl MobileNet {
    /// Loads and optimises the model for batches of one image (rayon runs
    /// images in parallel; the plan is shared).
    pub fn load(models_dir: &Path) -> Result<Self, ImageError> {
        let path = models_dir.join(FILE);
        if !path.is_file() {
            return Err(model_err(format!(
                "{} not found; run `scripts/setup-models.sh {}` to fetch and convert it",
                path.display(),
                models_dir.display()
            )));
        }
        let load = || -> TractResult<Arc<TypedRunnableModel>> {
            let mut m = tract_onnx::onnx().model_for_path(&path)?;
            m.set_input_fact(0, f32::fact([1, 3, SIDE, SIDE]).into())?;
            m.select_outputs_by_name(["embedding"])?;
            m.into_optimized()?.into_runnable()
        };
        let plan = load().map_err(|e| {
            model_err(format!(
                "{} could not be loaded ({e}); rerun `scripts/setup-models.sh` to replace it",
                path.display()
            ))
        })?;
        Ok(MobileNet { plan, path })
    }

    /// Embeds one `SIDE`×`SIDE` RGB8 image.
    pub fn embed(&self, rgb: &[u8]) -> Result<Vec<f32>, ImageError> {
        let mut chw = Vec::with_capacity(3 * SIDE * SIDE);
        imagenet_chw(rgb, SIDE, &mut chw);
        let input = Tensor::from_shape(&[1, 3, SIDE, SIDE], &chw).map_err(model_err)?;
        let out = self
            .plan
            .run(tvec!(input.into_tvalue()))
            .map_err(model_err)?;
        let view = out[0].to_plain_array_view::<f32>().map_err(model_err)?;
        let mut v: Vec<f32> = view.iter().copied().collect();
        if v.len() != DIM {
            return Err(model_err(format!(
                "embedding has {} values, expected {DIM}",
                v.len()
            )));
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= n);
        Ok(v)
    }
}
