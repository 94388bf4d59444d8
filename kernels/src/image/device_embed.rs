//! Embedding on a GPU. Each image is routed after the decode guards
//! (`decode::check`): baseline JPEGs that the device's decoder takes (nvJPEG)
//! are decoded on the device, straight into the buffer the resize kernels
//! read; everything else (PNG, WebP, progressive or CMYK JPEGs, or every JPEG
//! when nvJPEG is missing) is decoded on the CPU (rayon) and copied in with
//! one pinned copy per batch. Routing and CPU decoding feed the device
//! through a bounded queue, so the next batch is prepared while the GPU works
//! on this one and memory stays bounded (at most `QUEUE_DEPTH` batches wait).
//! Each batch is resized and embedded on the device (the `descriptor`
//! kernels, or mobilenet on the model runtime), in batches sized from free
//! device memory and split on out-of-memory (see `device::batch`); a batch
//! whose device decode fails is decoded on the CPU instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;

use super::decode::{check, decode, decode_checked, DecodeLimits};
use super::embed::{Embedder, EmbedderKind};
use super::jpeg_frame::frame;
use super::mobilenet::{self, MobileNet};
use super::ops::{CpuOps, ImageOps, Output};
use super::{descriptor, ImageError};
use crate::device::batch::{batch_for_memory, run_split, SplitStats};
use crate::device::{Device, DeviceError};

/// Decoded batches waiting for the device.
pub const QUEUE_DEPTH: usize = 2;
/// Device memory one image may take, for batch sizing: a decoded
/// 1-megapixel photo plus its outputs; mobilenet adds its activations.
const BYTES_PER_IMAGE: usize = 3 << 20;
const MOBILENET_BYTES_PER_IMAGE: usize = 40 << 20;
/// Largest batches (decoding a batch is the queue's unit of work).
const MAX_BATCH: usize = 4096;
const MAX_MOBILENET_BATCH: usize = 256;

/// Where the time of the embedding stage went, summed over calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct EmbedTimes {
    /// Decoding on the CPU, thread-seconds.
    pub decode_thread_seconds: f64,
    /// Resize + embed on the device, wall seconds (with nvJPEG's decode).
    pub device_seconds: f64,
    /// Of which nvJPEG's batched decode, wall seconds.
    pub device_jpeg_decode_seconds: f64,
    /// Of which the mobilenet model's runs (with their copies), wall seconds.
    pub device_model_seconds: f64,
    pub batches: u64,
    pub splits: u64,
    pub cpu_fallback: u64,
    /// Images decoded on the device (nvJPEG); the rest on the CPU.
    pub device_decoded: u64,
    /// Device-decodable JPEGs decoded on the CPU after the device's decode
    /// of their batch failed.
    pub device_decode_fallback: u64,
}

/// One image of a batch after routing: decoded on the CPU, left for the
/// device's JPEG decoder, or refused by the guards.
enum Routed {
    Cpu(RgbImage),
    Device { width: u32, height: u32 },
    Failed(ImageError),
}

pub struct DeviceEmbedder {
    kind: EmbedderKind,
    device: Device,
    ops: Arc<dyn ImageOps>,
    mobilenet: Option<MobileNet>,
    /// CPU mobilenet for the out-of-memory fallback of single images.
    cpu_mobilenet: Option<MobileNet>,
    decode_ns: AtomicU64,
    device_ns: AtomicU64,
    model_ns: AtomicU64,
    stats: Mutex<EmbedTimes>,
}

impl DeviceEmbedder {
    pub fn new(
        kind: EmbedderKind,
        device: Device,
        mobilenet: Option<(MobileNet, MobileNet)>,
    ) -> Self {
        Self::with_ops(kind, super::ops::for_device(&device), device, mobilenet)
    }

    /// As [`new`](Self::new) with the launcher given (the host launcher in
    /// tests of the pipeline's routing).
    pub fn with_ops(
        kind: EmbedderKind,
        ops: Arc<dyn ImageOps>,
        device: Device,
        mobilenet: Option<(MobileNet, MobileNet)>,
    ) -> Self {
        let (gpu, cpu) = match mobilenet {
            Some((g, c)) => (Some(g), Some(c)),
            None => (None, None),
        };
        DeviceEmbedder {
            kind,
            ops,
            device,
            mobilenet: gpu,
            cpu_mobilenet: cpu,
            decode_ns: AtomicU64::new(0),
            device_ns: AtomicU64::new(0),
            model_ns: AtomicU64::new(0),
            stats: Mutex::new(EmbedTimes::default()),
        }
    }

    /// Images per device batch, from the memory free now.
    pub fn batch_size(&self) -> usize {
        let (per, cap) = match self.kind {
            EmbedderKind::Descriptor => (BYTES_PER_IMAGE, MAX_BATCH),
            EmbedderKind::Mobilenet => (MOBILENET_BYTES_PER_IMAGE, MAX_MOBILENET_BATCH),
        };
        match &self.device {
            Device::Cuda(d) => match d.free_memory() {
                Ok(free) => batch_for_memory(free, per, 0.5, cap),
                Err(_) => 64,
            },
            Device::Cpu => 256,
        }
    }

    /// Embeds decoded images on the device.
    fn embed_on_device(&self, imgs: &[RgbImage]) -> Result<Vec<Vec<f32>>, DeviceError> {
        let started = Instant::now();
        let out = match self.kind {
            EmbedderKind::Descriptor => {
                let flat = self.ops.describe_images(imgs)?;
                flat.chunks(descriptor::DIM).map(|c| c.to_vec()).collect()
            }
            EmbedderKind::Mobilenet => {
                self.mobilenet_on_device(self.ops.imagenet(imgs, mobilenet::SIDE)?, imgs.len())?
            }
        };
        self.device_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Decodes JPEGs on the device and embeds them there.
    fn embed_jpegs(
        &self,
        jpegs: &[&[u8]],
        sizes: &[(u32, u32)],
    ) -> Result<Vec<Vec<f32>>, DeviceError> {
        let started = Instant::now();
        let out = match self.kind {
            EmbedderKind::Descriptor => self
                .ops
                .from_jpegs(jpegs, sizes, Output::Descriptor)?
                .chunks(descriptor::DIM)
                .map(|c| c.to_vec())
                .collect(),
            EmbedderKind::Mobilenet => self.mobilenet_on_device(
                self.ops
                    .from_jpegs(jpegs, sizes, Output::Imagenet(mobilenet::SIDE))?,
                jpegs.len(),
            )?,
        };
        self.device_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// mobilenet on the device over `n` CHW tensors.
    fn mobilenet_on_device(&self, chw: Vec<f32>, n: usize) -> Result<Vec<Vec<f32>>, DeviceError> {
        let net = self
            .mobilenet
            .as_ref()
            .expect("mobilenet loaded for its kind");
        // Pad to a power of two: one plan per batch size.
        let padded = n.next_power_of_two();
        let mut input = chw;
        input.resize(padded * 3 * mobilenet::SIDE * mobilenet::SIDE, 0.0);
        let started = Instant::now();
        let v = net.embed_batch(&input);
        self.model_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let mut v = v.map_err(|e| match e {
            ImageError::Device(d) => d,
            other => DeviceError::Model {
                model: "mobilenet".into(),
                runtime: "cuda".into(),
                detail: other.to_string(),
            },
        })?;
        v.truncate(n);
        Ok(v)
    }

    /// Decodes on the CPU, or leaves for the device's JPEG decoder what it
    /// takes; the guards run first either way.
    fn route(&self, bytes: &[u8], limits: &DecodeLimits) -> Routed {
        let checked = match check(bytes, limits) {
            Ok(c) => c,
            Err(e) => return Routed::Failed(e),
        };
        let jpeg = checked.format == image::ImageFormat::Jpeg
            && frame(bytes).is_some_and(|f| f.gpu_decodable());
        if jpeg && self.ops.decodes_jpeg(bytes, checked.width, checked.height) {
            return Routed::Device {
                width: checked.width,
                height: checked.height,
            };
        }
        let t = Instant::now();
        let r = decode_checked(bytes, checked.format, limits);
        self.decode_ns
            .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match r {
            Ok(img) => Routed::Cpu(img),
            Err(e) => Routed::Failed(e),
        }
    }

    /// The CPU reference for one image that does not fit on the device.
    fn embed_on_cpu(&self, imgs: &[RgbImage]) -> Result<Vec<Vec<f32>>, DeviceError> {
        imgs.iter()
            .map(|img| match self.kind {
                EmbedderKind::Descriptor => {
                    let t = CpuOps.thumbnails(std::slice::from_ref(img), descriptor::SIDE)?;
                    Ok(descriptor::describe(&t))
                }
                EmbedderKind::Mobilenet => self
                    .cpu_mobilenet
                    .as_ref()
                    .expect("mobilenet loaded for its kind")
                    .embed(&super::thumbnail::resize_rgb(img, mobilenet::SIDE as u32))
                    .map_err(|e| DeviceError::Model {
                        model: "mobilenet".into(),
                        runtime: "cpu".into(),
                        detail: e.to_string(),
                    }),
            })
            .collect()
    }

    /// Splitting and timing figures so far.
    pub fn times(&self) -> EmbedTimes {
        let mut t = *self.stats.lock().expect("stats");
        t.decode_thread_seconds = self.decode_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        t.device_seconds = self.device_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        t.device_jpeg_decode_seconds = self.ops.jpeg_decode_seconds();
        t.device_model_seconds = self.model_ns.load(Ordering::Relaxed) as f64 * 1e-9;
        t
    }
}

impl Embedder for DeviceEmbedder {
    fn kind(&self) -> EmbedderKind {
        self.kind
    }

    fn device(&self) -> String {
        self.device.describe()
    }

    fn times(&self) -> Option<EmbedTimes> {
        Some(DeviceEmbedder::times(self))
    }

    fn embed_rgb(&self, img: &RgbImage) -> Result<Vec<f32>, ImageError> {
        let mut v = self.embed_on_device(std::slice::from_ref(img))?;
        Ok(v.pop().expect("one image in, one out"))
    }

    fn embed_batch(
        &self,
        images: &[&[u8]],
        limits: &DecodeLimits,
    ) -> Vec<Result<Vec<f32>, ImageError>> {
        let batch = self.batch_size();
        let mut out: Vec<Result<Vec<f32>, ImageError>> = Vec::with_capacity(images.len());
        std::thread::scope(|scope| {
            let (tx, rx) = sync_channel::<(usize, Vec<Routed>)>(QUEUE_DEPTH);
            scope.spawn(move || {
                for (c, chunk) in images.chunks(batch).enumerate() {
                    let routed: Vec<Routed> =
                        chunk.par_iter().map(|b| self.route(b, limits)).collect();
                    if tx.send((c * batch, routed)).is_err() {
                        break; // the consumer stopped
                    }
                }
            });
            for (first, routed) in rx {
                out.extend(self.embed_routed(&images[first..first + routed.len()], routed, limits));
            }
        });
        out
    }
}

impl DeviceEmbedder {
    /// Embeds one routed batch, results in input order.
    fn embed_routed(
        &self,
        bytes: &[&[u8]],
        routed: Vec<Routed>,
        limits: &DecodeLimits,
    ) -> Vec<Result<Vec<f32>, ImageError>> {
        // The device's JPEGs first: if their decode fails as a batch, they
        // are decoded on the CPU and join the others.
        let mut on_device: Vec<usize> = Vec::new();
        let mut sizes = Vec::new();
        for (i, r) in routed.iter().enumerate() {
            if let Routed::Device { width, height } = r {
                on_device.push(i);
                sizes.push((*width, *height));
            }
        }
        let mut results: Vec<Option<Result<Vec<f32>, ImageError>>> =
            (0..routed.len()).map(|_| None).collect();
        let mut routed: Vec<Option<Routed>> = routed.into_iter().map(Some).collect();
        if !on_device.is_empty() {
            let jpegs: Vec<&[u8]> = on_device.iter().map(|&i| bytes[i]).collect();
            match self.embed_jpegs(&jpegs, &sizes) {
                Ok(vs) => {
                    self.stats.lock().expect("stats").device_decoded += vs.len() as u64;
                    for (&i, v) in on_device.iter().zip(vs) {
                        results[i] = Some(Ok(v));
                        routed[i] = None;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "device JPEG decode of {} images failed ({e}); decoding them on the CPU",
                        on_device.len()
                    );
                    self.stats.lock().expect("stats").device_decode_fallback +=
                        on_device.len() as u64;
                    for &i in &on_device {
                        routed[i] = Some(match decode(bytes[i], limits) {
                            Ok(img) => Routed::Cpu(img),
                            Err(e) => Routed::Failed(e),
                        });
                    }
                }
            }
        }
        let mut ok = Vec::new();
        let mut slots = Vec::new();
        for (i, r) in routed.iter_mut().enumerate() {
            match r.take() {
                Some(Routed::Cpu(img)) => {
                    slots.push(i);
                    ok.push(img);
                }
                Some(Routed::Failed(e)) => results[i] = Some(Err(e)),
                Some(Routed::Device { .. }) => unreachable!("device JPEGs handled above"),
                None => {}
            }
        }
        let mut split = SplitStats::default();
        let embedded = run_split(
            &ok,
            self.batch_size(),
            &mut |b| self.embed_on_device(b),
            &mut |b| self.embed_on_cpu(b),
            &mut split,
        );
        {
            let mut s = self.stats.lock().expect("stats");
            s.batches += 1;
            s.splits += split.splits as u64;
            s.cpu_fallback += split.cpu_fallback as u64;
        }
        match embedded {
            Ok(vs) => {
                for (i, v) in slots.into_iter().zip(vs) {
                    results[i] = Some(Ok(v));
                }
            }
            // The device failing is the run's failure: every image of the
            // batch carries it, and callers stop on it.
            Err(e) => {
                for i in slots {
                    results[i] = Some(Err(ImageError::Device(e.clone())));
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every image of the batch has a result"))
            .collect()
    }
}
