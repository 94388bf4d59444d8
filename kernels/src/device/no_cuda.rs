//! Stand-in for the CUDA backend in builds without the `cuda` feature: the
//! same names, and every entry point says the build has no CUDA.

use std::sync::Arc;

use super::DeviceError;

/// Never constructed in a build without CUDA.
pub struct CudaDevice {
    _private: (),
}

impl CudaDevice {
    pub fn open(_ordinal: usize) -> Result<Arc<CudaDevice>, DeviceError> {
        Err(DeviceError::NotBuilt)
    }

    pub fn describe(&self) -> String {
        unreachable!("no CudaDevice exists in a build without CUDA")
    }

    pub fn free_memory(&self) -> Result<usize, DeviceError> {
        Err(DeviceError::NotBuilt)
    }
}

/// Whether the CUDA backend is compiled in.
pub const BUILT: bool = false;
