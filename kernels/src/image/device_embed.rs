//! Embedding on a GPU: decoding stays on the CPU (rayon) and feeds the device
//! through a bounded queue, so the next batch is decoded while the GPU works
//! on this one and memory stays bounded (at most `QUEUE_DEPTH` decoded
//! batches wait). Each batch is resized and embedded on the device (the
//! `descriptor` kernels, or mobilenet on tract-cuda), in batches sized from
//! free device memory and split on out-of-memory (see `device::batch`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;

use super::decode::{decode, DecodeLimits};
use super::embed::{Embedder, EmbedderKind};
use super::mobilenet::{self, MobileNet};
use super::ops::{CpuOps, ImageOps};
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
    /// Resize + embed on the device, wall seconds.
    pub device_seconds: f64,
    pub batches: u64,
    pub splits: u64,
    pub cpu_fallback: u64,
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
    stats: Mutex<EmbedTimes>,
}

impl DeviceEmbedder {
    pub fn new(
        kind: EmbedderKind,
        device: Device,
        mobilenet: Option<(MobileNet, MobileNet)>,
    ) -> Self {
        let (gpu, cpu) = match mobilenet {
            Some((g, c)) => (Some(g), Some(c)),
            None => (None, None),
        };
        DeviceEmbedder {
            kind,
            ops: super::ops::for_device(&device),
            device,
            mobilenet: gpu,
            cpu_mobilenet: cpu,
            decode_ns: AtomicU64::new(0),
            device_ns: AtomicU64::new(0),
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
                let net = self
                    .mobilenet
                    .as_ref()
                    .expect("mobilenet loaded for its kind");
                // Pad to a power of two: one tract plan per batch size.
                let chw = self.ops.imagenet(imgs, mobilenet::SIDE)?;
                let padded = imgs.len().next_power_of_two();
                let mut input = chw;
                input.resize(padded * 3 * mobilenet::SIDE * mobilenet::SIDE, 0.0);
                let mut v = net.embed_batch(&input).map_err(|e| match e {
                    ImageError::Device(d) => d,
                    other => DeviceError::Model {
                        model: "mobilenet".into(),
                        runtime: "cuda".into(),
                        detail: other.to_string(),
                    },
                })?;
                v.truncate(imgs.len());
                v
            }
        };
        self.device_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(out)
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
            let (tx, rx) = sync_channel::<Vec<Result<RgbImage, ImageError>>>(QUEUE_DEPTH);
            scope.spawn(move || {
                for chunk in images.chunks(batch) {
                    let decoded: Vec<_> = chunk
                        .par_iter()
                        .map(|b| {
                            let t = Instant::now();
                            let r = decode(b, limits);
                            self.decode_ns
                                .fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                            r
                        })
                        .collect();
                    if tx.send(decoded).is_err() {
                        break; // the consumer stopped
                    }
                }
            });
            for decoded in rx {
                let mut ok = Vec::new();
                let mut slots = Vec::with_capacity(decoded.len());
                for r in decoded {
                    match r {
                        Ok(img) => {
                            slots.push(Ok(ok.len()));
                            ok.push(img);
                        }
                        Err(e) => slots.push(Err(e)),
                    }
                }
                let mut split = SplitStats::default();
                let embedded = run_split(
                    &ok,
                    batch,
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
                    Ok(mut vs) => {
                        let mut it = vs.drain(..).map(Some).collect::<Vec<_>>();
                        for slot in slots {
                            out.push(slot.map(|i| it[i].take().expect("each embedding once")));
                        }
                    }
                    // The device failing is the run's failure: every image of
                    // the batch carries it, and callers stop on it.
                    Err(e) => out.extend(slots.into_iter().map(|s| match s {
                        Ok(_) => Err(ImageError::Device(e.clone())),
                        Err(err) => Err(err),
                    })),
                }
            }
        });
        out
    }
}
