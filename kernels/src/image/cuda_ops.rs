//! The CUDA launcher of the image kernels (see [`super::kernels`]): copies a
//! batch in, starts one GPU thread per item, copies the result out. The
//! similarity matrix is cuBLAS sgemm; the reference set stays on the device
//! between batches (one copy per [`ReferenceSet::version`]).

use std::sync::{Arc, Mutex};

use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::{cublasOperation_t, cublasStatus_t};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
use image::RgbImage;

use super::descriptor;
use super::kernels::{self, KernelSource, BLOCK};
use super::matching::{Match, ReferenceSet};
use super::ops::{kernels_neg_inf, nothing_to_match, unpack_top_k, ImageOps, Packed};
use crate::device::cuda::driver_err;
use crate::device::{CudaDevice, DeviceError};

/// References per sgemm block: 16,384 columns × 4,096 queries of f32 is
/// 256 MiB of similarities.
const REF_BLOCK: usize = 16_384;
/// Queries per sgemm block.
const QUERY_BLOCK: usize = 4_096;

pub struct CudaOps {
    dev: Arc<CudaDevice>,
    refs: Mutex<Option<(u64, Arc<CudaSlice<f32>>)>>,
}

fn launch_config(threads: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: ((threads as u64).div_ceil(BLOCK as u64) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn blas_err(e: CublasError) -> DeviceError {
    if e.0 == cublasStatus_t::CUBLAS_STATUS_ALLOC_FAILED {
        DeviceError::OutOfMemory(format!("cuBLAS: {e:?}"))
    } else {
        DeviceError::Driver(format!("cuBLAS: {e:?}"))
    }
}

impl CudaOps {
    pub fn new(dev: Arc<CudaDevice>) -> Self {
        CudaOps {
            dev,
            refs: Mutex::new(None),
        }
    }

    fn function(&self, k: &KernelSource, entry: &str) -> Result<CudaFunction, DeviceError> {
        self.dev.function(k.name, &k.source(), entry)
    }

    fn resize<T>(
        &self,
        images: &[RgbImage],
        side: usize,
        entry: &str,
    ) -> Result<Vec<T>, DeviceError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Default + Clone,
    {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.function(&kernels::RESIZE, entry)?;
        let p = Packed::new(images);
        let n = images.len();
        let threads = n * side * side;
        let _one = self.dev.launch.lock().expect("launch lock");
        let s = &self.dev.stream;
        let src = s.clone_htod(&p.pixels).map_err(driver_err)?;
        let off = s.clone_htod(&p.offsets).map_err(driver_err)?;
        let w = s.clone_htod(&p.widths).map_err(driver_err)?;
        let h = s.clone_htod(&p.heights).map_err(driver_err)?;
        let mut dst = s.alloc_zeros::<T>(threads * 3).map_err(driver_err)?;
        let (n_i, side_i) = (n as i32, side as i32);
        let mut b = s.launch_builder(&f);
        b.arg(&src)
            .arg(&off)
            .arg(&w)
            .arg(&h)
            .arg(&n_i)
            .arg(&side_i)
            .arg(&mut dst);
        // SAFETY: the arguments match resize.cu's signature; buffers are
        // sized as it indexes them.
        unsafe { b.launch(launch_config(threads)) }.map_err(driver_err)?;
        s.clone_dtoh(&dst).map_err(driver_err)
    }

    /// The reference set on the device, uploaded once per version.
    fn device_refs(&self, refs: &ReferenceSet) -> Result<Arc<CudaSlice<f32>>, DeviceError> {
        let mut cached = self.refs.lock().expect("reference cache");
        if let Some((v, d)) = cached.as_ref() {
            if *v == refs.version() {
                return Ok(d.clone());
            }
        }
        *cached = None; // free the old copy before uploading the new one
        let d = Arc::new(
            self.dev
                .stream
                .clone_htod(refs.data())
                .map_err(driver_err)?,
        );
        *cached = Some((refs.version(), d.clone()));
        Ok(d)
    }
}

impl ImageOps for CudaOps {
    fn name(&self) -> String {
        self.dev.describe()
    }

    fn thumbnails(&self, images: &[RgbImage], side: usize) -> Result<Vec<u8>, DeviceError> {
        self.resize::<u8>(images, side, "resize_rgb8")
    }

    fn imagenet(&self, images: &[RgbImage], side: usize) -> Result<Vec<f32>, DeviceError> {
        self.resize::<f32>(images, side, "resize_imagenet")
    }

    fn describe(&self, thumbs: &[u8]) -> Result<Vec<f32>, DeviceError> {
        let n = thumbs.len() / (descriptor::SIDE * descriptor::SIDE * 3);
        if n == 0 {
            return Ok(Vec::new());
        }
        let f = self.function(&kernels::DESCRIPTOR, "describe")?;
        let _one = self.dev.launch.lock().expect("launch lock");
        let s = &self.dev.stream;
        let src = s.clone_htod(thumbs).map_err(driver_err)?;
        let mut out = s
            .alloc_zeros::<f32>(n * descriptor::DIM)
            .map_err(driver_err)?;
        let n_i = n as i32;
        let mut b = s.launch_builder(&f);
        b.arg(&src).arg(&n_i).arg(&mut out);
        // SAFETY: matches descriptor.cu's `describe`.
        unsafe { b.launch(launch_config(n)) }.map_err(driver_err)?;
        s.clone_dtoh(&out).map_err(driver_err)
    }

    fn top_k(
        &self,
        queries: &[f32],
        refs: &ReferenceSet,
        k: usize,
    ) -> Result<Vec<Vec<Match>>, DeviceError> {
        if let Some(empty) = nothing_to_match(queries, refs, k) {
            return Ok(empty);
        }
        let dim = refs.dim;
        let q = queries.len() / dim;
        let merge = self.function(&kernels::TOP_K, "top_k_merge")?;
        let d_refs = self.device_refs(refs)?;
        let _one = self.dev.launch.lock().expect("launch lock");
        let s = &self.dev.stream;
        let mut out = Vec::with_capacity(q);
        for qb in queries.chunks(QUERY_BLOCK * dim) {
            let m = qb.len() / dim;
            let d_q = s.clone_htod(qb).map_err(driver_err)?;
            let mut best_sim = s
                .clone_htod(&vec![kernels_neg_inf(); m * k])
                .map_err(driver_err)?;
            let mut best_idx = s.clone_htod(&vec![u32::MAX; m * k]).map_err(driver_err)?;
            let nb_max = REF_BLOCK.min(refs.len());
            let mut c = s.alloc_zeros::<f32>(m * nb_max).map_err(driver_err)?;
            for r0 in (0..refs.len()).step_by(REF_BLOCK) {
                let nb = REF_BLOCK.min(refs.len() - r0);
                let r = d_refs.slice(r0 * dim..(r0 + nb) * dim);
                // Row-major C[m×nb] = Q·Rᵀ is column-major Cᵀ[nb×m] = R·Qᵀ:
                // A = R (stored dim×nb column-major, transposed), B = Q.
                let cfg = GemmConfig {
                    transa: cublasOperation_t::CUBLAS_OP_T,
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: nb as i32,
                    n: m as i32,
                    k: dim as i32,
                    alpha: 1.0f32,
                    lda: dim as i32,
                    ldb: dim as i32,
                    beta: 0.0f32,
                    ldc: nb as i32,
                };
                // SAFETY: R is nb×dim, Q is m×dim, C holds at least m×nb.
                unsafe { self.dev.blas.gemm(cfg, &r, &d_q, &mut c) }.map_err(blas_err)?;
                let (rows, cols, off, kk) = (m as i32, nb as i32, r0 as u32, k as i32);
                let mut b = s.launch_builder(&merge);
                b.arg(&c)
                    .arg(&rows)
                    .arg(&cols)
                    .arg(&off)
                    .arg(&kk)
                    .arg(&mut best_sim)
                    .arg(&mut best_idx);
                // SAFETY: matches topk.cu's `top_k_merge`.
                unsafe { b.launch(launch_config(m)) }.map_err(driver_err)?;
            }
            let bs = s.clone_dtoh(&best_sim).map_err(driver_err)?;
            let bi = s.clone_dtoh(&best_idx).map_err(driver_err)?;
            out.extend(unpack_top_k(&bs, &bi, k));
        }
        Ok(out)
    }
}
