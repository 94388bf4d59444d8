//! The image work a device does, as one trait with a launcher per backend:
//! - [`CpuOps`]: the reference (fast_image_resize, `descriptor::describe`,
//!   matrixmultiply + running top-k, rayon);
//! - [`HostKernelOps`]: the `.cu` kernels themselves run on the CPU (see
//!   [`super::kernels`]), so that their parity with the reference is tested
//!   on every machine;
//! - `CudaOps` (feature `cuda`): the same kernels on a GPU, cuBLAS for the
//!   similarity matrix.

use std::sync::Arc;

use image::RgbImage;
use rayon::prelude::*;

use super::descriptor;
use super::kernels::host;
use super::matching::{similarity_block, top_k, Match, ReferenceSet, REF_BLOCK};
use super::resample::ResizeTables;
use super::thumbnail::{imagenet_chw, resize_rgb};
use crate::device::{Device, DeviceError};

/// Resizing, the descriptor and top-k matching on one device.
pub trait ImageOps: Send + Sync {
    /// `cpu`, `host-kernels` or `cuda:0 …`.
    fn name(&self) -> String;
    /// `side`×`side` RGB8 thumbnails of each image, back to back.
    fn thumbnails(&self, images: &[RgbImage], side: usize) -> Result<Vec<u8>, DeviceError>;
    /// `side`×`side` planar CHW ImageNet-normalised floats of each image.
    fn imagenet(&self, images: &[RgbImage], side: usize) -> Result<Vec<f32>, DeviceError>;
    /// The descriptor of each 32×32 thumbnail (`n × descriptor::DIM`).
    fn describe(&self, thumbs: &[u8]) -> Result<Vec<f32>, DeviceError>;
    /// Resize + descriptor of each image (`n × descriptor::DIM`); a device
    /// launcher keeps the thumbnails where they were made.
    fn describe_images(&self, images: &[RgbImage]) -> Result<Vec<f32>, DeviceError> {
        self.describe(&self.thumbnails(images, descriptor::SIDE)?)
    }
    /// Whether this launcher decodes `jpeg` (already through the decode
    /// guards, `width`×`height`) itself: nvJPEG on a GPU. The CPU decoder
    /// takes everything else.
    fn decodes_jpeg(&self, _jpeg: &[u8], _width: u32, _height: u32) -> bool {
        false
    }
    /// Decodes JPEGs this launcher [`decodes_jpeg`](Self::decodes_jpeg) and
    /// makes `output` of them without the pixels leaving the device.
    fn from_jpegs(
        &self,
        _jpegs: &[&[u8]],
        _sizes: &[(u32, u32)],
        _output: Output,
    ) -> Result<Vec<f32>, DeviceError> {
        Err(DeviceError::Driver(format!(
            "{} does not decode JPEGs",
            self.name()
        )))
    }
    /// Wall seconds spent in the device's JPEG decoder so far (0 where
    /// this launcher decodes none).
    fn jpeg_decode_seconds(&self) -> f64 {
        0.0
    }
    /// The `k` most similar references of each query, best first, ties to
    /// the lower index (as [`top_k`]).
    fn top_k(
        &self,
        queries: &[f32],
        refs: &ReferenceSet,
        k: usize,
    ) -> Result<Vec<Vec<Match>>, DeviceError>;
}

/// What [`ImageOps::from_jpegs`] makes of each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The descriptor embedding (`descriptor::DIM` floats).
    Descriptor,
    /// The ImageNet-normalised CHW tensor at `side`×`side` (mobilenet's input).
    Imagenet(usize),
}

/// The image operations of `device`.
pub fn for_device(device: &Device) -> Arc<dyn ImageOps> {
    match device {
        Device::Cpu => Arc::new(CpuOps),
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => Arc::new(super::cuda_ops::CudaOps::new(d.clone())),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("no CUDA device exists in a build without CUDA"),
    }
}

/// The CPU reference.
pub struct CpuOps;

impl ImageOps for CpuOps {
    fn name(&self) -> String {
        "cpu".into()
    }
    fn thumbnails(&self, images: &[RgbImage], side: usize) -> Result<Vec<u8>, DeviceError> {
        let parts: Vec<Vec<u8>> = images
            .par_iter()
            .map(|i| resize_rgb(i, side as u32))
            .collect();
        Ok(parts.concat())
    }
    fn imagenet(&self, images: &[RgbImage], side: usize) -> Result<Vec<f32>, DeviceError> {
        let parts: Vec<Vec<f32>> = images
            .par_iter()
            .map(|i| {
                let mut v = Vec::with_capacity(3 * side * side);
                imagenet_chw(&resize_rgb(i, side as u32), side, &mut v);
                v
            })
            .collect();
        Ok(parts.concat())
    }
    fn describe(&self, thumbs: &[u8]) -> Result<Vec<f32>, DeviceError> {
        let per = descriptor::SIDE * descriptor::SIDE * 3;
        let parts: Vec<Vec<f32>> = thumbs.par_chunks(per).map(descriptor::describe).collect();
        Ok(parts.concat())
    }
    fn top_k(
        &self,
        queries: &[f32],
        refs: &ReferenceSet,
        k: usize,
    ) -> Result<Vec<Vec<Match>>, DeviceError> {
        Ok(top_k(queries, refs, k))
    }
}

/// A batch of decoded images packed as the resize kernels read it: RGB8
/// pixels back to back, each image's byte offset, and the filter tables of
/// its resize to `side`×`side`.
pub struct Packed {
    pub pixels: Vec<u8>,
    pub offsets: Vec<u64>,
    pub tables: ResizeTables,
}

impl Packed {
    pub fn new(images: &[RgbImage], side: usize) -> Packed {
        let total: usize = images.iter().map(|i| i.as_raw().len()).sum();
        let mut pixels = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(images.len());
        for i in images {
            offsets.push(pixels.len() as u64);
            pixels.extend_from_slice(i.as_raw());
        }
        let sizes: Vec<(u32, u32)> = images.iter().map(|i| (i.width(), i.height())).collect();
        Packed {
            pixels,
            offsets,
            tables: ResizeTables::new(&sizes, side),
        }
    }
}

/// An output pointer shared by the host launcher's threads: each thread
/// index writes only its own elements, as on the GPU.
struct Out<T>(*mut T);
impl<T> Clone for Out<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Out<T> {}
// SAFETY: see above; the buffer outlives the parallel loop that uses it.
unsafe impl<T> Send for Out<T> {}
unsafe impl<T> Sync for Out<T> {}

/// Runs `threads` thread indices of a kernel on the rayon pool.
fn host_launch(threads: usize, kernel: impl Fn() + Sync) {
    (0..threads as u64).into_par_iter().for_each(|t| {
        // SAFETY: sets this OS thread's DJ_THREAD_ID for the call below.
        unsafe { host::dajia_host_set_thread_id(t) };
        kernel();
    });
}

/// The `.cu` kernels launched on the CPU.
pub struct HostKernelOps;

impl HostKernelOps {
    /// Both resize passes; `out` is `resize_rgb8` or `resize_imagenet`.
    fn resize<T: Default + Clone>(
        images: &[RgbImage],
        side: usize,
        out: unsafe extern "C" fn(
            *const u8,
            *const i32,
            *const u64,
            i32,
            i32,
            *const i32,
            *const i32,
            *const i16,
            *mut T,
        ),
    ) -> Vec<T> {
        let p = Packed::new(images, side);
        let t = &p.tables;
        let n = images.len() as i32;
        let mut tmp = vec![0u8; t.tmp_pixels() * 3];
        let o = Out(tmp.as_mut_ptr());
        host_launch(t.tmp_pixels(), || {
            let o = o;
            // SAFETY: buffers sized as resize.cu indexes them.
            unsafe {
                host::resize_vertical(
                    p.pixels.as_ptr(),
                    p.offsets.as_ptr(),
                    t.width.as_ptr(),
                    t.tmp_first.as_ptr(),
                    n,
                    side as i32,
                    t.rows.as_ptr(),
                    t.precision.as_ptr(),
                    t.taps.as_ptr(),
                    o.0,
                )
            }
        });
        let mut dst = vec![T::default(); images.len() * side * side * 3];
        let o = Out(dst.as_mut_ptr());
        host_launch(images.len() * side * side, || {
            let o = o;
            // SAFETY: as above.
            unsafe {
                out(
                    tmp.as_ptr(),
                    t.width.as_ptr(),
                    t.tmp_first.as_ptr(),
                    n,
                    side as i32,
                    t.rows.as_ptr(),
                    t.precision.as_ptr(),
                    t.taps.as_ptr(),
                    o.0,
                )
            }
        });
        dst
    }
}

impl ImageOps for HostKernelOps {
    fn name(&self) -> String {
        "host-kernels".into()
    }
    fn thumbnails(&self, images: &[RgbImage], side: usize) -> Result<Vec<u8>, DeviceError> {
        Ok(Self::resize(images, side, host::resize_rgb8))
    }
    fn imagenet(&self, images: &[RgbImage], side: usize) -> Result<Vec<f32>, DeviceError> {
        Ok(Self::resize(images, side, host::resize_imagenet))
    }
    fn describe(&self, thumbs: &[u8]) -> Result<Vec<f32>, DeviceError> {
        let n = thumbs.len() / (descriptor::SIDE * descriptor::SIDE * 3);
        let mut out = vec![0f32; n * descriptor::DIM];
        let o = Out(out.as_mut_ptr());
        host_launch(n, || {
            let o = o;
            // SAFETY: n thumbnails in, n × DIM floats out.
            unsafe { host::describe(thumbs.as_ptr(), n as i32, o.0) }
        });
        Ok(out)
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
        let mut best_sim = vec![kernels_neg_inf(); q * k];
        let mut best_idx = vec![u32::MAX; q * k];
        let mut c = vec![0f32; q * REF_BLOCK];
        for r0 in (0..refs.len()).step_by(REF_BLOCK) {
            let nb = REF_BLOCK.min(refs.len() - r0);
            similarity_block(
                queries,
                q,
                &refs.data()[r0 * dim..(r0 + nb) * dim],
                nb,
                dim,
                &mut c,
            );
            let (s, i) = (Out(best_sim.as_mut_ptr()), Out(best_idx.as_mut_ptr()));
            let cp = &c;
            host_launch(q, || {
                let (s, i) = (s, i);
                // SAFETY: q rows of nb similarities; q × k best arrays.
                unsafe {
                    host::top_k_merge(
                        cp.as_ptr(),
                        q as i32,
                        nb as i32,
                        r0 as u32,
                        k as i32,
                        s.0,
                        i.0,
                    )
                }
            });
        }
        Ok(unpack_top_k(&best_sim, &best_idx, k))
    }
}

/// Empty match lists for every query when there is nothing to search
/// (k = 0, no references, no queries); launchers return these unlaunched.
pub(crate) fn nothing_to_match(
    queries: &[f32],
    refs: &ReferenceSet,
    k: usize,
) -> Option<Vec<Vec<Match>>> {
    let q = queries.len() / refs.dim.max(1);
    (k == 0 || refs.is_empty() || q == 0).then(|| vec![Vec::new(); q])
}

/// The sentinel score of an empty top-k slot (DJ_NEG_INF in common.cuh).
pub(crate) fn kernels_neg_inf() -> f32 {
    -3.402823466e38
}

/// Rows of `k` (score, index) slots into match lists (empty slots dropped).
pub(crate) fn unpack_top_k(best_sim: &[f32], best_idx: &[u32], k: usize) -> Vec<Vec<Match>> {
    best_sim
        .chunks(k)
        .zip(best_idx.chunks(k))
        .map(|(s, i)| {
            s.iter()
                .zip(i)
                .filter(|(_, &i)| i != u32::MAX)
                .map(|(&similarity, &index)| Match { index, similarity })
                .collect()
        })
        .collect()
}
