//! One ONNX model, optimised by tract once per input shape.
//!
//! Why not one plan with symbolic dimensions: the PP-OCRv5 detector does not
//! type-check with a symbolic height/width in tract 0.23 (its FPN concat cannot
//! unify `8*((H+31)/32)` with `4*(2*((H+31)/32))`), and the recogniser runs
//! ~10x slower with a symbolic width than with a concrete one (measured:
//! 452 ms against 41 ms for 1x3x48x320). Optimising a concrete plan takes
//! ~0.2 s, so plans are cached per shape; callers snap shapes to a coarse grid
//! (multiples of 32) to keep the cache small.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tract_onnx::prelude::*;

use crate::image::ImageError;

/// Plans kept per model; past this the cache is cleared (shapes are snapped
/// to a grid, so a catalog of ordinary photos stays far below it).
const MAX_PLANS: usize = 48;

pub struct ShapedModel {
    name: &'static str,
    path: PathBuf,
    model: InferenceModel,
    plans: Mutex<HashMap<Vec<usize>, Arc<TypedRunnableModel>>>,
}

pub(crate) fn model_err(name: &str, detail: impl std::fmt::Display) -> ImageError {
    ImageError::Model {
        model: name.to_string(),
        detail: detail.to_string(),
    }
}

impl ShapedModel {
    /// Parses `dir/file`; a missing or unreadable file names the set-up script.
    pub fn load(name: &'static str, dir: &Path, file: &str) -> Result<Self, ImageError> {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(model_err(
                name,
                format!(
                    "{} not found; run `scripts/setup-models.sh {}` to fetch it",
                    path.display(),
                    dir.parent().unwrap_or(dir).display()
                ),
            ));
        }
        let model = tract_onnx::onnx().model_for_path(&path).map_err(|e| {
            model_err(
                name,
                format!(
                    "{} could not be loaded ({e}); rerun `scripts/setup-models.sh` to replace it",
                    path.display()
                ),
            )
        })?;
        let m = ShapedModel {
            name,
            path,
            model,
            plans: Mutex::new(HashMap::new()),
        };
        Ok(m)
    }

    /// The optimised plan for `shape` (built on first use).
    pub fn plan(&self, shape: &[usize]) -> Result<Arc<TypedRunnableModel>, ImageError> {
        if let Some(p) = self.plans.lock().expect("plan cache").get(shape) {
            return Ok(p.clone());
        }
        let build = || -> TractResult<Arc<TypedRunnableModel>> {
            let mut m = self.model.clone();
            m.set_input_fact(0, f32::fact(shape).into())?;
            m.into_optimized()?.into_runnable()
        };
        let plan = build().map_err(|e| {
            model_err(
                self.name,
                format!(
                    "{} cannot run on input {shape:?} ({e}); rerun `scripts/setup-models.sh` to replace it",
                    self.path.display()
                ),
            )
        })?;
        let mut plans = self.plans.lock().expect("plan cache");
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }

    /// Runs the model on one f32 tensor; returns the first output's shape and values.
    pub fn run(&self, shape: &[usize], data: &[f32]) -> Result<(Vec<usize>, Vec<f32>), ImageError> {
        let plan = self.plan(shape)?;
        let input = Tensor::from_shape(shape, data).map_err(|e| model_err(self.name, e))?;
        let out = plan
            .run(tvec!(input.into_tvalue()))
            .map_err(|e| model_err(self.name, e))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| model_err(self.name, e))?;
        Ok((view.shape().to_vec(), view.iter().copied().collect()))
    }
}
