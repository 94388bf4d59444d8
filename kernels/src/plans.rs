//! One ONNX model, prepared once per input shape on the runtime of the
//! device: tract's CPU runtime, or (`cuda` feature) dajia's own runtime
//! (`kernels/src/runtime/`: tract's typed graph lowered to dajia's ops, run
//! on cuDNN, cuBLAS and NVRTC kernels, in each model's precision:
//! `runtime::Precision::for_model`). An op the lowering does not know is an
//! error naming the op and the model when the plan is built; nothing falls
//! back to the CPU. (tract-cuda, the GPU runtime before it, was removed once
//! dajia's runtime had passed its parity checks on an H200: it was 16-80x
//! slower than PyTorch and did not speed up with batch size.)
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
use tract_onnx::tract_core::runtime::Runnable;

use crate::device::{DeviceError, Runtime};
use crate::image::ImageError;

/// Where a plan's nodes run, for the log and the benchmark. dajia's GPU
/// runtime runs every step on the GPU (an op it cannot lower is an error),
/// so nothing is left on the CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub runtime: &'static str,
    pub device_nodes: usize,
}

impl std::fmt::Display for Placement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.runtime == "cpu" {
            return f.write_str("cpu");
        }
        write!(
            f,
            "{}: {} nodes on the GPU, 0 on the CPU",
            self.runtime, self.device_nodes
        )
    }
}

/// Plans kept per model; past this the cache is cleared (shapes are snapped
/// to a grid, so a catalog of ordinary photos stays far below it). On a GPU
/// the OCR warm-up builds one plan per shape bucket (64 detector shapes at
/// the default 128-px buckets), so the cache holds more there.
const MAX_PLANS: usize = 48;
const MAX_GPU_PLANS: usize = 160;

/// A prepared model for one input shape.
#[derive(Clone)]
pub enum Plan {
    /// tract's CPU runtime.
    Tract(Arc<dyn Runnable>),
    /// dajia's own runtime on the GPU (`runtime::cuda`).
    #[cfg(feature = "cuda")]
    Dajia(Arc<crate::runtime::cuda::CudaProgram>),
}

pub struct ShapedModel {
    name: &'static str,
    path: PathBuf,
    model: InferenceModel,
    runtime: Runtime,
    plans: Mutex<HashMap<Vec<usize>, Plan>>,
    last_placement: Mutex<Option<Placement>>,
}

pub(crate) fn model_err(name: &str, detail: impl std::fmt::Display) -> ImageError {
    ImageError::Model {
        model: name.to_string(),
        detail: detail.to_string(),
    }
}

impl ShapedModel {
    /// Parses `dir/file` (keeping only `outputs` when given) for plans on
    /// `runtime`; a missing or unreadable file names the set-up script.
    pub fn load(
        name: &'static str,
        dir: &Path,
        file: &str,
        outputs: &[&str],
        runtime: Runtime,
    ) -> Result<Self, ImageError> {
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
        let parse = || -> TractResult<InferenceModel> {
            let mut m = tract_onnx::onnx().model_for_path(&path)?;
            if !outputs.is_empty() {
                m.select_outputs_by_name(outputs)?;
            }
            Ok(m)
        };
        let model = parse().map_err(|e| {
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
            runtime,
            plans: Mutex::new(HashMap::new()),
            last_placement: Mutex::new(None),
        };
        Ok(m)
    }

    /// Plans built so far (kept in the cache).
    pub fn plan_count(&self) -> usize {
        self.plans.lock().expect("plan cache").len()
    }

    /// The optimised plan for `shape` (built on first use).
    pub fn plan(&self, shape: &[usize]) -> Result<Plan, ImageError> {
        if let Some(p) = self.plans.lock().expect("plan cache").get(shape) {
            return Ok(p.clone());
        }
        let mut m = self.model.clone();
        let fact = m.set_input_fact(0, f32::fact(shape).into());
        let bad_model = |e: TractError| {
            model_err(
                self.name,
                format!(
                    "{} cannot run on input {shape:?} ({e}); rerun `scripts/setup-models.sh` to replace it",
                    self.path.display()
                ),
            )
        };
        fact.map_err(bad_model)?;
        let plan: Plan = match self.runtime {
            Runtime::Cpu => Plan::Tract(Arc::new(
                m.into_optimized()
                    .and_then(|m| m.into_runnable())
                    .map_err(bad_model)?,
            )),
            Runtime::Cuda => self.dajia_plan(m, shape)?,
        };
        let mut plans = self.plans.lock().expect("plan cache");
        let max = match self.runtime {
            Runtime::Cpu => MAX_PLANS,
            Runtime::Cuda => MAX_GPU_PLANS,
        };
        if plans.len() >= max {
            plans.clear();
        }
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }

    /// The model lowered to dajia's runtime and prepared on the GPU.
    #[cfg(feature = "cuda")]
    fn dajia_plan(&self, m: InferenceModel, shape: &[usize]) -> Result<Plan, ImageError> {
        let device_err = |detail: String| {
            ImageError::Device(DeviceError::Model {
                model: self.name.to_string(),
                runtime: "dajia-cuda".into(),
                detail,
            })
        };
        let typed = m
            .into_typed()
            .and_then(crate::runtime::declutter)
            .map_err(|e| device_err(format!("{e:#}")))?;
        let compiled = crate::runtime::Compiled::new(self.name, &typed)
            .map_err(|e| device_err(e.to_string()))?;
        let precision = crate::runtime::Precision::for_model(self.name)
            .map_err(|e| device_err(e.to_string()))?;
        let steps = compiled.program.steps.len();
        let dev = crate::device::CudaDevice::open(0).map_err(ImageError::Device)?;
        let program = crate::runtime::cuda::CudaProgram::new(dev, compiled, precision).map_err(
            |e| match e {
                crate::runtime::RuntimeError::Device(d)
                    if d.to_ascii_lowercase().contains("out of memory") =>
                {
                    ImageError::Device(DeviceError::OutOfMemory(d))
                }
                e => device_err(e.to_string()),
            },
        )?;
        let p = Placement {
            runtime: match precision {
                crate::runtime::Precision::F16 => "dajia-cuda f16",
                crate::runtime::Precision::F32 => "dajia-cuda f32",
            },
            device_nodes: steps,
        };
        tracing::info!("model {} {shape:?} on {p}", self.name);
        *self.last_placement.lock().expect("placement") = Some(p);
        Ok(Plan::Dajia(Arc::new(program)))
    }

    #[cfg(not(feature = "cuda"))]
    fn dajia_plan(&self, _: InferenceModel, _: &[usize]) -> Result<Plan, ImageError> {
        Err(ImageError::Device(DeviceError::NotBuilt))
    }

    /// The runtime plans are prepared on.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// Where the nodes of the last plan built run (None before the first).
    pub fn placement(&self) -> Option<Placement> {
        if self.runtime == Runtime::Cpu {
            self.plan_any()?;
            return Some(Placement {
                runtime: "cpu",
                device_nodes: 0,
            });
        }
        self.last_placement.lock().expect("placement").clone()
    }

    fn plan_any(&self) -> Option<Plan> {
        self.plans
            .lock()
            .expect("plan cache")
            .values()
            .next()
            .cloned()
    }

    /// Runs the model on one f32 tensor; returns the first output's shape and values.
    pub fn run(&self, shape: &[usize], data: &[f32]) -> Result<(Vec<usize>, Vec<f32>), ImageError> {
        let plan = self.plan(shape)?;
        let plan = match plan {
            Plan::Tract(p) => p,
            #[cfg(feature = "cuda")]
            Plan::Dajia(p) => {
                let mut out = p.run(data).map_err(|e| match e {
                    crate::runtime::RuntimeError::Device(d)
                        if d.to_ascii_lowercase().contains("out of memory") =>
                    {
                        ImageError::Device(DeviceError::OutOfMemory(format!("{}: {d}", self.name)))
                    }
                    e => model_err(self.name, e),
                })?;
                let shape = p
                    .compiled()
                    .program
                    .shape(p.compiled().program.outputs[0])
                    .to_vec();
                return Ok((shape, out.swap_remove(0)));
            }
        };
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
