//! The CUDA backend's device: one context and stream on one GPU, cuBLAS, and
//! the project's kernels compiled by NVRTC for the device's architecture on
//! first use ([`nvrtc`], cached on disk by content hash).
//!
//! cudarc loads libcuda, libnvrtc and libcublas at run time and panics if a
//! call is made without them, so [`CudaDevice::open`] checks each library
//! first and turns a missing one into [`DeviceError::Library`].

pub mod nvjpeg;
pub mod nvrtc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUresult;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream, DriverError};

use super::DeviceError;

/// Whether the CUDA backend is compiled in.
pub const BUILT: bool = true;

const LIB_HINT: &str = "install it or add its directory to LD_LIBRARY_PATH (scripts/gpu-bench.sh finds PyTorch's copies)";

/// Checks that the libraries the backend calls can be loaded.
pub fn check_libraries() -> Result<(), DeviceError> {
    // SAFETY: each probe only dlopens the library by name and drops it.
    let present = unsafe {
        [
            (
                "driver",
                "libcuda.so",
                cudarc::driver::sys::is_culib_present(),
            ),
            (
                "NVRTC",
                "libnvrtc.so.13",
                cudarc::nvrtc::sys::is_culib_present(),
            ),
            (
                "cuBLAS",
                "libcublas.so.13",
                cudarc::cublas::sys::is_culib_present(),
            ),
        ]
    };
    for (what, file, ok) in present {
        if !ok {
            return Err(DeviceError::Library {
                what,
                file: file.to_string(),
                hint: if what == "driver" {
                    "install the NVIDIA driver (CUDA 13 or newer) or add libcuda's directory to LD_LIBRARY_PATH"
                } else {
                    LIB_HINT
                },
            });
        }
    }
    Ok(())
}

/// Checks that NVRTC alone can be loaded (compiling kernels needs no GPU).
pub fn check_nvrtc() -> Result<(), DeviceError> {
    // SAFETY: dlopens the library by name and drops it.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(DeviceError::Library {
            what: "NVRTC",
            file: "libnvrtc.so.13".into(),
            hint: LIB_HINT,
        })
    }
}

/// A CUDA driver error as a [`DeviceError`]: out-of-memory is told apart so
/// that batches can be split and retried.
pub fn driver_err(e: DriverError) -> DeviceError {
    if e.0 == CUresult::CUDA_ERROR_OUT_OF_MEMORY {
        DeviceError::OutOfMemory(format!("{e:?}"))
    } else {
        DeviceError::Driver(format!("{e:?}"))
    }
}

pub struct CudaDevice {
    pub ordinal: usize,
    pub name: String,
    /// `sm_90` for an H100/H200: what NVRTC compiles for.
    pub arch: String,
    pub total_memory: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    /// One batch at a time on the stream: callers from several rayon threads
    /// queue here rather than interleaving their copies and launches.
    pub(crate) launch: Mutex<()>,
}

impl CudaDevice {
    /// Opens GPU `ordinal`: driver, NVRTC and cuBLAS loaded, a context and a
    /// stream created. Errors name what is missing.
    ///
    /// One per GPU per process: the image stage, the models' plans and the
    /// runtime share its stream, module cache and launch lock.
    pub fn open(ordinal: usize) -> Result<Arc<CudaDevice>, DeviceError> {
        static OPEN: Mutex<Vec<(usize, Arc<CudaDevice>)>> = Mutex::new(Vec::new());
        let mut open = OPEN.lock().expect("open devices");
        if let Some((_, d)) = open.iter().find(|(o, _)| *o == ordinal) {
            return Ok(d.clone());
        }
        let d = Self::open_new(ordinal)?;
        open.push((ordinal, d.clone()));
        Ok(d)
    }

    fn open_new(ordinal: usize) -> Result<Arc<CudaDevice>, DeviceError> {
        check_libraries()?;
        let count = CudaContext::device_count().map_err(|e| {
            if e.0 == CUresult::CUDA_ERROR_NO_DEVICE {
                DeviceError::NoDevice("the CUDA driver found no GPU".into())
            } else {
                DeviceError::Driver(format!("cuInit/cuDeviceGetCount: {e:?}"))
            }
        })?;
        if count <= ordinal as i32 {
            return Err(DeviceError::NoDevice(format!(
                "GPU {ordinal} asked for, the driver reports {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver_err)?;
        let name = ctx.name().map_err(driver_err)?;
        let (major, minor) = ctx.compute_capability().map_err(driver_err)?;
        let total_memory = ctx.total_mem().map_err(driver_err)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| DeviceError::Driver(format!("cuBLAS: {e:?}")))?;
        Ok(Arc::new(CudaDevice {
            ordinal,
            name,
            arch: format!("sm_{major}{minor}"),
            total_memory,
            ctx,
            stream,
            blas,
            modules: Mutex::new(HashMap::new()),
            launch: Mutex::new(()),
        }))
    }

    pub fn describe(&self) -> String {
        format!(
            "cuda:{} {} ({}, {:.1} GiB)",
            self.ordinal,
            self.name,
            self.arch,
            self.total_memory as f64 / (1u64 << 30) as f64
        )
    }

    /// Free device memory now, in bytes.
    pub fn free_memory(&self) -> Result<usize, DeviceError> {
        self.ctx
            .mem_get_info()
            .map(|(free, _)| free)
            .map_err(driver_err)
    }

    /// Entry point `entry` of kernel source `name` (compiled, or read from
    /// the cubin cache, on first use; loaded once per device).
    pub(crate) fn function(
        &self,
        name: &'static str,
        source: &str,
        entry: &str,
    ) -> Result<CudaFunction, DeviceError> {
        let module = {
            let mut modules = self.modules.lock().expect("module cache");
            match modules.get(name) {
                Some(m) => m.clone(),
                None => {
                    let cubin = nvrtc::cached_cubin(name, source, &self.arch, &nvrtc::cache_dir())?;
                    let m = self
                        .ctx
                        .load_module(cudarc::nvrtc::Ptx::from_binary(cubin))
                        .map_err(driver_err)?;
                    modules.insert(name, m.clone());
                    m
                }
            }
        };
        module.load_function(entry).map_err(driver_err)
    }
}
