//! One trait over the embedders, chosen by configuration (`descriptor` by
//! default, `mobilenet` with a model file).

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use rayon::prelude::*;

use super::decode::{decode, decode_then, DecodeLimits, Rgb8};
use super::device_embed::{DeviceEmbedder, EmbedTimes};
use super::mobilenet::MobileNet;
use super::thumbnail::{resize_rgb, resize_rgb8};
use super::{descriptor, mobilenet, ImageError};
use crate::device::{Device, Runtime};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EmbedderKind {
    #[default]
    Descriptor,
    Mobilenet,
}

impl EmbedderKind {
    pub const ALL: [EmbedderKind; 2] = [EmbedderKind::Descriptor, EmbedderKind::Mobilenet];

    pub fn name(self) -> &'static str {
        match self {
            EmbedderKind::Descriptor => "descriptor",
            EmbedderKind::Mobilenet => "mobilenet",
        }
    }

    pub fn dim(self) -> usize {
        match self {
            EmbedderKind::Descriptor => descriptor::DIM,
            EmbedderKind::Mobilenet => mobilenet::DIM,
        }
    }

    /// Default cosine similarity above which two images count as copies of
    /// one photo (measured by `dajia bench images`: copies vs unrelated).
    pub fn default_threshold(self) -> f32 {
        match self {
            EmbedderKind::Descriptor => 0.92,
            EmbedderKind::Mobilenet => 0.935,
        }
    }
}

impl std::str::FromStr for EmbedderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EmbedderKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown embedder `{s}` (descriptor or mobilenet)"))
    }
}

impl std::fmt::Display for EmbedderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Turns decoded images into L2-normalised vectors of `kind().dim()` floats.
pub trait Embedder: Send + Sync {
    fn kind(&self) -> EmbedderKind;

    /// Where the embedding runs (`cpu (N threads)`, `cuda:0 …`).
    fn device(&self) -> String {
        Device::Cpu.describe()
    }

    /// Decode/device time split and out-of-memory figures (device embedders).
    fn times(&self) -> Option<EmbedTimes> {
        None
    }

    /// Embeds one decoded image.
    fn embed_rgb(&self, img: &RgbImage) -> Result<Vec<f32>, ImageError>;

    /// Decodes and embeds one encoded image.
    fn embed_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<f32>, ImageError> {
        self.embed_rgb(&decode(bytes, limits)?)
    }

    /// Decodes and embeds a batch in parallel (rayon), in order.
    fn embed_batch(
        &self,
        images: &[&[u8]],
        limits: &DecodeLimits,
    ) -> Vec<Result<Vec<f32>, ImageError>> {
        images
            .par_iter()
            .map(|b| self.embed_bytes(b, limits))
            .collect()
    }
}

pub struct DescriptorEmbedder;

impl Embedder for DescriptorEmbedder {
    fn kind(&self) -> EmbedderKind {
        EmbedderKind::Descriptor
    }
    fn embed_rgb(&self, img: &RgbImage) -> Result<Vec<f32>, ImageError> {
        Ok(describe_rgb8(img.into()))
    }
    /// Described on the decoder's thread, from its reused buffer.
    fn embed_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<f32>, ImageError> {
        decode_then(bytes, limits, describe_rgb8)
    }
}

/// The descriptor of an image: its thumbnail, described.
fn describe_rgb8(img: Rgb8<'_>) -> Vec<f32> {
    descriptor::describe(&resize_rgb8(img, descriptor::SIDE as u32))
}

pub struct MobileNetEmbedder(pub MobileNet);

impl Embedder for MobileNetEmbedder {
    fn kind(&self) -> EmbedderKind {
        EmbedderKind::Mobilenet
    }
    fn embed_rgb(&self, img: &RgbImage) -> Result<Vec<f32>, ImageError> {
        self.0.embed(&resize_rgb(img, mobilenet::SIDE as u32))
    }
    /// Resized on the decoder's thread: only the thumbnail leaves it.
    fn embed_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<Vec<f32>, ImageError> {
        self.0.embed(&decode_then(bytes, limits, |img| {
            resize_rgb8(img, mobilenet::SIDE as u32)
        })?)
    }
}

/// The CPU embedder of `kind`; `models_dir` holds the model files of the
/// learned ones.
pub fn load(kind: EmbedderKind, models_dir: &Path) -> Result<Arc<dyn Embedder>, ImageError> {
    load_on(kind, models_dir, &Device::Cpu)
}

/// The embedder of `kind` on `device`.
pub fn load_on(
    kind: EmbedderKind,
    models_dir: &Path,
    device: &Device,
) -> Result<Arc<dyn Embedder>, ImageError> {
    Ok(match (kind, device) {
        (EmbedderKind::Descriptor, Device::Cpu) => Arc::new(DescriptorEmbedder),
        (EmbedderKind::Mobilenet, Device::Cpu) => Arc::new(MobileNetEmbedder(MobileNet::load(
            models_dir,
            Runtime::Cpu,
        )?)),
        (EmbedderKind::Descriptor, Device::Cuda(_)) => {
            Arc::new(DeviceEmbedder::new(kind, device.clone(), None))
        }
        (EmbedderKind::Mobilenet, Device::Cuda(_)) => Arc::new(DeviceEmbedder::new(
            kind,
            device.clone(),
            Some((
                MobileNet::load(models_dir, Runtime::Cuda)?,
                MobileNet::load(models_dir, Runtime::Cpu)?,
            )),
        )),
    })
}

/// Cosine similarity of two vectors (not assumed normalised); 0 when either
/// is all zeros or their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut ab, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa <= 0.0 || bb <= 0.0 {
        0.0
    } else {
        ab / (aa.sqrt() * bb.sqrt())
    }
}
