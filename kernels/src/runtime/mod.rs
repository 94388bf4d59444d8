//! dajia's own runtime for its ONNX models (MobileNetV2, PP-OCRv5 det/rec).
//!
//! tract stays the front end: it parses the ONNX file, types the graph for
//! one concrete input shape and declutters it. [`lower`] turns that graph into
//! a [`Program`] of a few ops with concrete shapes; [`fuse`] folds batch
//! norms, biases, activations and residual additions into the convolutions;
//! [`MemoryPlan`] lays every intermediate value out in one arena from the
//! values' lifetimes. Executors run the program: [`cpu`] (plain Rust, the
//! reference, tested against tract) and, with the `cuda` feature, the CUDA
//! executor (cuDNN convolutions, cuBLAS matmuls, NVRTC kernels for the rest).

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod fuse;
pub mod host;
pub mod launch;
pub mod lower;
pub mod memory;
pub mod program;

use std::path::Path;

use tract_onnx::prelude::*;

pub use memory::MemoryPlan;

/// The runtime's kernels (`cuda/ops.cu`): NVRTC compiles them for the GPU,
/// `build.rs` for the host.
pub const OPS: crate::image::kernels::KernelSource = crate::image::kernels::KernelSource {
    name: "runtime_ops",
    body: include_str!("cuda/ops.cu"),
    entries: &[
        "rt_epilogue",
        "rt_map",
        "rt_binary",
        "rt_copy",
        "rt_reduce",
        "rt_reduce_part",
        "rt_reduce_combine",
        "rt_reduce_scale",
        "rt_pool",
        "rt_deconv",
        "rt_convert",
    ],
};
pub use program::Program;

/// How the runtime's executors store the values of a program (weights,
/// activations): f32, or IEEE half with every kernel, convolution and matmul
/// still computing and accumulating in f32. Half moves half the bytes and
/// lets cuDNN and cuBLAS use tensor cores at full rate; the models' parity
/// against tract's f32 CPU output is tested in both (`tests/runtime.rs`,
/// on the host kernels, which round exactly as the GPU does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    /// Bytes per stored value.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }

    /// The flag the kernels of `cuda/ops.cu` take (`half`).
    pub fn half_flag(self) -> i32 {
        (self == Precision::F16) as i32
    }

    /// The precision `model` runs in on the GPU: `DAJIA_GPU_PRECISION`
    /// (`f16` or `f32` for every model), else (`auto`, the default) half
    /// where the model keeps its parity measure in half (`tests/runtime.rs`:
    /// MobileNetV2 cosine 0.99998, the recogniser's characters all the same)
    /// and f32 for the PP-OCRv5 detector: in half its probability map moves
    /// by up to 0.125 at the edges of text (the same boxes, but past the
    /// 0.02 bound).
    pub fn for_model(model: &str) -> Result<Self, RuntimeError> {
        match std::env::var("DAJIA_GPU_PRECISION").as_deref() {
            Err(_) | Ok("") | Ok("auto") if model == "ppocrv5_det" => Ok(Precision::F32),
            Err(_) | Ok("") | Ok("auto") | Ok("f16") => Ok(Precision::F16),
            Ok("f32") => Ok(Precision::F32),
            Ok(other) => Err(RuntimeError::Input(format!(
                "DAJIA_GPU_PRECISION={other}: expected auto, f16 or f32"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error("model {model}: node {node}: {detail}")]
    Unsupported {
        model: String,
        node: String,
        detail: String,
    },
    #[error("model {0}: {1}")]
    Model(String, String),
    #[error("{0}")]
    Input(String),
    /// The GPU, its driver or libraries failed (one line).
    #[error("{0}")]
    Device(String),
}

/// tract's declutter passes except the one that changes axes: it removes a
/// batch axis of 1 and moves channels last where it suits tract's own
/// kernels; the runtime keeps the ONNX layout (NCHW) its executors expect.
pub fn declutter(mut model: TypedModel) -> TractResult<TypedModel> {
    let mut optimizer = tract_onnx::tract_core::optim::Optimizer::declutter();
    optimizer
        .passes
        .retain(|p| !format!("{p:?}").starts_with("ChangeAxes"));
    optimizer.session().optimize(&mut model)?;
    Ok(model)
}

/// A model lowered and fused for one input shape, with its memory plan.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: Program,
    pub plan: MemoryPlan,
}

impl Compiled {
    /// Lowers, fuses and plans a typed, decluttered model.
    pub fn new(name: &str, model: &TypedModel) -> Result<Self, RuntimeError> {
        let program = fuse::fuse(lower::lower(name, model)?);
        let plan = MemoryPlan::new(&program);
        Ok(Compiled { program, plan })
    }

    /// Parses `path` and compiles it for `shape` (tests and tools).
    pub fn from_onnx(name: &str, path: &Path, shape: &[usize]) -> Result<Self, RuntimeError> {
        let typed = (|| -> TractResult<TypedModel> {
            let mut m = tract_onnx::onnx().model_for_path(path)?;
            m.set_input_fact(0, f32::fact(shape).into())?;
            declutter(m.into_typed()?)
        })()
        .map_err(|e| RuntimeError::Model(name.to_string(), format!("{e:#}")))?;
        Self::new(name, &typed)
    }

    /// Runs with the kernels the GPU runs, compiled for the host, storing
    /// values in f32.
    pub fn run_host_kernels(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        host::run(&self.program, &self.plan, input, Precision::F32)
    }

    /// As [`run_host_kernels`](Self::run_host_kernels), storing values in
    /// `precision` and rounding where the GPU rounds.
    pub fn run_host_kernels_in(
        &self,
        input: &[f32],
        precision: Precision,
    ) -> Result<Vec<Vec<f32>>, RuntimeError> {
        host::run(&self.program, &self.plan, input, precision)
    }

    /// Runs on the CPU reference executor.
    pub fn run_cpu(&self, input: &[f32]) -> Result<Vec<Vec<f32>>, RuntimeError> {
        cpu::run(&self.program, &self.plan, input)
    }
}
