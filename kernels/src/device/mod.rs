//! Where the heavy image work runs: the CPU (the reference: rayon, SIMD
//! resizing, matrixmultiply) or an NVIDIA GPU through CUDA (cudarc: the
//! project's own kernels compiled by NVRTC, cuBLAS; dajia's model runtime,
//! `crate::runtime`, for the ONNX models).
//!
//! The CUDA backend is behind the `cuda` cargo feature. Without it the same
//! API exists and [`CudaDevice::open`] returns [`DeviceError::NotBuilt`] (the
//! candle pattern), so callers compile everywhere. With it, libraries are
//! loaded at run time, so a build machine needs no CUDA toolkit and a GPU-less
//! machine gets an error naming the missing piece, never a panic.

pub mod batch;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "no_cuda.rs"]
pub mod cuda;

use std::sync::Arc;

pub use cuda::CudaDevice;

/// What the user asked for (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A working GPU if there is one, else the CPU (and say which).
    #[default]
    Auto,
    Cpu,
    /// A GPU or a one-line error naming what is missing.
    Cuda,
}

impl DeviceChoice {
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(format!("unknown device `{other}` (auto, cpu or cuda)")),
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The tract runtime ONNX models are prepared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    #[default]
    Cpu,
    Cuda,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Cpu => "cpu",
            Runtime::Cuda => "cuda",
        }
    }
}

/// Why the GPU cannot be used, or what went wrong on it. One line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "this dajia was built without CUDA; rebuild with `cargo build --release --features dajia/cuda`"
    )]
    NotBuilt,
    #[error("CUDA {what} library not found (looked for {file}); {hint}")]
    Library {
        what: &'static str,
        file: String,
        hint: &'static str,
    },
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    #[error("CUDA driver: {0}")]
    Driver(String),
    #[error("CUDA kernel {kernel} failed to compile for {arch}: {log}")]
    Compile {
        kernel: String,
        arch: String,
        log: String,
    },
    #[error("CUDA out of memory: {0}")]
    OutOfMemory(String),
    #[error("model {model} on {runtime}: {detail}")]
    Model {
        model: String,
        runtime: String,
        detail: String,
    },
}

impl DeviceError {
    /// Out-of-memory errors are retried with a smaller batch; others are not.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, DeviceError::OutOfMemory(_))
    }
}

/// The device a job runs its image work on.
#[derive(Clone, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(Arc<CudaDevice>),
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Device {
    /// `cpu` or `cuda`, as the manifest and the SQL setting spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda(_) => "cuda",
        }
    }

    /// `cpu (2 threads)` or `cuda:0 NVIDIA H200 (sm_90, 139.8 GiB)`.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!("cpu ({} threads)", rayon::current_num_threads()),
            Device::Cuda(d) => d.describe(),
        }
    }

    /// The tract runtime the ONNX models are prepared with.
    pub fn runtime(&self) -> Runtime {
        match self {
            Device::Cpu => Runtime::Cpu,
            Device::Cuda(_) => Runtime::Cuda,
        }
    }

    pub fn is_cuda(&self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

/// The chosen device and, for `auto`, why it was chosen.
#[derive(Debug, Clone)]
pub struct Selected {
    pub device: Device,
    /// For `auto`: "using cuda:0 …" or "no usable GPU (…); using the CPU".
    pub note: Option<String>,
}

/// Opens the device `choice` names. `cuda` fails with one line naming what is
/// missing (driver, library, device); `auto` falls back to the CPU and says why.
pub fn select(choice: DeviceChoice) -> Result<Selected, DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok(Selected {
            device: Device::Cpu,
            note: None,
        }),
        DeviceChoice::Cuda => Ok(Selected {
            device: Device::Cuda(CudaDevice::open(0)?),
            note: None,
        }),
        DeviceChoice::Auto => Ok(match CudaDevice::open(0) {
            Ok(d) => {
                let device = Device::Cuda(d);
                Selected {
                    note: Some(format!("device auto: using {}", device.describe())),
                    device,
                }
            }
            Err(e) => Selected {
                device: Device::Cpu,
                note: Some(format!("device auto: no usable GPU ({e}); using the CPU")),
            },
        }),
    }
}
