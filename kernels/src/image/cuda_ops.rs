//! The CUDA launcher of the image kernels (see [`super::kernels`]): a batch's
//! pixels go in with one copy from pinned memory, each kernel is one launch
//! over the whole batch, and a descriptor batch comes back as embeddings only
//! (thumbnails stay on the device). The
//! similarity matrix is cuBLAS sgemm; the reference set stays on the device
//! between batches (one copy per [`ReferenceSet::version`]).

use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::result::CublasError;
use cudarc::cublas::sys::{cublasOperation_t, cublasStatus_t};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PinnedHostSlice, PushKernelArg};
use image::RgbImage;

use super::descriptor;
use super::kernels::{self, KernelSource, BLOCK};
use super::matching::{Match, ReferenceSet};
use super::ops::{kernels_neg_inf, nothing_to_match, unpack_top_k, ImageOps, Output};
use super::resample::ResizeTables;
use crate::device::cuda::driver_err;
use crate::device::cuda::nvjpeg::NvJpeg;
use crate::device::{CudaDevice, DeviceError};

/// References per sgemm block: 16,384 columns × 4,096 queries of f32 is
/// 256 MiB of similarities.
const REF_BLOCK: usize = 16_384;
/// Queries per sgemm block.
const QUERY_BLOCK: usize = 4_096;

pub struct CudaOps {
    dev: Arc<CudaDevice>,
    refs: Mutex<Option<(u64, Arc<CudaSlice<f32>>)>>,
    /// Page-locked memory a batch's pixels are packed into, so that they
    /// reach the device in one DMA copy; grown, never shrunk.
    staging: Mutex<Option<PinnedHostSlice<u8>>>,
    nvjpeg: OnceLock<Result<NvJpeg, DeviceError>>,
    /// Nanoseconds in nvJPEG's batched decode (it synchronises at its end).
    jpeg_decode_ns: std::sync::atomic::AtomicU64,
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
            staging: Mutex::new(None),
            nvjpeg: OnceLock::new(),
            jpeg_decode_ns: Default::default(),
        }
    }

    fn function(&self, k: &KernelSource, entry: &str) -> Result<CudaFunction, DeviceError> {
        self.dev.function(k.name, &k.source(), entry)
    }

    /// A batch's pixels on the device: packed straight into pinned staging
    /// memory and copied in once. Returns them with each image's offset.
    /// Call with the launch lock held.
    fn upload(&self, images: &[RgbImage]) -> Result<(CudaSlice<u8>, Vec<u64>), DeviceError> {
        let s = &self.dev.stream;
        let total: usize = images
            .iter()
            .map(|i| i.as_raw().len())
            .sum::<usize>()
            .max(1);
        let mut offsets = Vec::with_capacity(images.len());
        let mut staging = self.staging.lock().expect("staging buffer");
        if staging.as_ref().is_none_or(|b| b.len() < total) {
            *staging = None; // free the smaller buffer first
                             // SAFETY: every byte copied to the device is written below.
            let b = unsafe { self.dev.ctx.alloc_pinned::<u8>(total.next_power_of_two()) }
                .map_err(driver_err)?;
            *staging = Some(b);
        }
        let buf = staging.as_mut().expect("allocated above");
        // The copy below reads the buffer as a plain slice (a pinned slice
        // cannot be cut to `total`), so cudarc records no event on it: wait
        // for the stream, and with it the previous batch's copy, before
        // writing. (Each batch ends in a blocking copy out anyway.)
        s.synchronize().map_err(driver_err)?;
        let host = buf.as_mut_slice().map_err(driver_err)?;
        let mut at = 0usize;
        for img in images {
            offsets.push(at as u64);
            let raw = img.as_raw();
            host[at..at + raw.len()].copy_from_slice(raw);
            at += raw.len();
        }
        // SAFETY: the first `total` bytes are copied in below.
        let mut d = unsafe { s.alloc::<u8>(total) }.map_err(driver_err)?;
        let mut view = d.slice_mut(0..total);
        s.memcpy_htod(&buf.as_slice().map_err(driver_err)?[..total], &mut view)
            .map_err(driver_err)?;
        Ok((d, offsets))
    }

    /// Resizes a packed batch already on the device (uploaded, or decoded
    /// there by nvJPEG) to `side`×`side`: the filter tables (a few KB) go in,
    /// both passes run as one launch each over the whole batch, the result
    /// stays on the device. Call with the launch lock held.
    fn resize_packed<T>(
        &self,
        src: &CudaSlice<u8>,
        offsets: &[u64],
        sizes: &[(u32, u32)],
        side: usize,
        entry: &str,
    ) -> Result<CudaSlice<T>, DeviceError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits,
    {
        let vertical = self.function(&kernels::RESIZE, "resize_vertical")?;
        let horizontal = self.function(&kernels::RESIZE, entry)?;
        let s = &self.dev.stream;
        let t = ResizeTables::new(sizes, side);
        let off = s.clone_htod(offsets).map_err(driver_err)?;
        let width = s.clone_htod(&t.width).map_err(driver_err)?;
        let tmp_first = s.clone_htod(&t.tmp_first).map_err(driver_err)?;
        let rows = s.clone_htod(&t.rows).map_err(driver_err)?;
        let precision = s.clone_htod(&t.precision).map_err(driver_err)?;
        let taps = s.clone_htod(&t.taps).map_err(driver_err)?;
        let mut tmp = s
            .alloc_zeros::<u8>(t.tmp_pixels() * 3)
            .map_err(driver_err)?;
        let mut dst = s
            .alloc_zeros::<T>(sizes.len() * side * side * 3)
            .map_err(driver_err)?;
        let (n_i, side_i) = (sizes.len() as i32, side as i32);
        let mut b = s.launch_builder(&vertical);
        b.arg(src)
            .arg(&off)
            .arg(&width)
            .arg(&tmp_first)
            .arg(&n_i)
            .arg(&side_i)
            .arg(&rows)
            .arg(&precision)
            .arg(&taps)
            .arg(&mut tmp);
        // SAFETY: the arguments match resize.cu's `resize_vertical`; buffers
        // are sized as it indexes them.
        unsafe { b.launch(launch_config(t.tmp_pixels())) }.map_err(driver_err)?;
        let mut b = s.launch_builder(&horizontal);
        b.arg(&tmp)
            .arg(&width)
            .arg(&tmp_first)
            .arg(&n_i)
            .arg(&side_i)
            .arg(&rows)
            .arg(&precision)
            .arg(&taps)
            .arg(&mut dst);
        // SAFETY: as above, for `resize_rgb8` / `resize_imagenet`.
        unsafe { b.launch(launch_config(sizes.len() * side * side)) }.map_err(driver_err)?;
        Ok(dst)
    }

    /// Uploads and resizes a batch of decoded images.
    fn resize_on_device<T>(
        &self,
        images: &[RgbImage],
        side: usize,
        entry: &str,
    ) -> Result<CudaSlice<T>, DeviceError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits,
    {
        let (src, offsets) = self.upload(images)?;
        let sizes: Vec<(u32, u32)> = images.iter().map(|i| (i.width(), i.height())).collect();
        self.resize_packed(&src, &offsets, &sizes, side, entry)
    }

    /// nvJPEG, opened on first use; `Err` says why JPEGs stay on the CPU.
    fn nvjpeg(&self) -> Result<&NvJpeg, &DeviceError> {
        self.nvjpeg
            .get_or_init(|| {
                let r = NvJpeg::open();
                match &r {
                    Ok(j) => tracing::info!(
                        "nvJPEG: {} backend decodes baseline JPEGs on {}",
                        j.backend,
                        self.dev.describe()
                    ),
                    Err(e) => {
                        tracing::info!("nvJPEG unavailable, JPEGs are decoded on the CPU: {e}")
                    }
                }
                r
            })
            .as_ref()
    }

    fn resize<T>(
        &self,
        images: &[RgbImage],
        side: usize,
        entry: &str,
    ) -> Result<Vec<T>, DeviceError>
    where
        T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits,
    {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let _one = self.dev.launch.lock().expect("launch lock");
        let d = self.resize_on_device::<T>(images, side, entry)?;
        self.dev.stream.clone_dtoh(&d).map_err(driver_err)
    }

    /// The descriptor of each thumbnail already on the device.
    fn describe_on_device(
        &self,
        thumbs: &CudaSlice<u8>,
        n: usize,
    ) -> Result<Vec<f32>, DeviceError> {
        let f = self.function(&kernels::DESCRIPTOR, "describe")?;
        let s = &self.dev.stream;
        let mut out = s
            .alloc_zeros::<f32>(n * descriptor::DIM)
            .map_err(driver_err)?;
        let n_i = n as i32;
        let mut b = s.launch_builder(&f);
        b.arg(thumbs).arg(&n_i).arg(&mut out);
        // SAFETY: matches descriptor.cu's `describe`: n thumbnails in, n × DIM out.
        unsafe { b.launch(launch_config(n)) }.map_err(driver_err)?;
        s.clone_dtoh(&out).map_err(driver_err)
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
        let _one = self.dev.launch.lock().expect("launch lock");
        let d = self.dev.stream.clone_htod(thumbs).map_err(driver_err)?;
        self.describe_on_device(&d, n)
    }

    fn describe_images(&self, images: &[RgbImage]) -> Result<Vec<f32>, DeviceError> {
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let _one = self.dev.launch.lock().expect("launch lock");
        let thumbs = self.resize_on_device::<u8>(images, descriptor::SIDE, "resize_rgb8")?;
        self.describe_on_device(&thumbs, images.len())
    }

    fn decodes_jpeg(&self, jpeg: &[u8], width: u32, height: u32) -> bool {
        self.nvjpeg().is_ok_and(|j| j.accepts(jpeg, width, height))
    }

    fn from_jpegs(
        &self,
        jpegs: &[&[u8]],
        sizes: &[(u32, u32)],
        output: Output,
    ) -> Result<Vec<f32>, DeviceError> {
        if jpegs.is_empty() {
            return Ok(Vec::new());
        }
        let j = self.nvjpeg().map_err(Clone::clone)?;
        let _one = self.dev.launch.lock().expect("launch lock");
        let t = std::time::Instant::now();
        let (pixels, offsets) = j.decode_batch(&self.dev.stream, jpegs, sizes)?;
        self.jpeg_decode_ns.fetch_add(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        match output {
            Output::Descriptor => {
                let thumbs = self.resize_packed::<u8>(
                    &pixels,
                    &offsets,
                    sizes,
                    descriptor::SIDE,
                    "resize_rgb8",
                )?;
                self.describe_on_device(&thumbs, jpegs.len())
            }
            Output::Imagenet(side) => {
                let d =
                    self.resize_packed::<f32>(&pixels, &offsets, sizes, side, "resize_imagenet")?;
                self.dev.stream.clone_dtoh(&d).map_err(driver_err)
            }
        }
    }

    fn jpeg_decode_seconds(&self) -> f64 {
        self.jpeg_decode_ns
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            * 1e-9
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
