//! Image signals: decode with guards, resize into thumbnails and tensors,
//! embed (a hand-designed `descriptor` or the learned `mobilenet`), and match
//! embeddings against reference sets by exact top-k cosine similarity.
//!
//! Each stage is a plain function over batches so that a second launcher
//! (CUDA) can run the same kernels: `decode` → `thumbnail` → `embed` →
//! `matching`; `references` matches listing images against brands' official
//! photos and known fakes with them.

#[cfg(feature = "cuda")]
mod cuda_ops;
pub mod decode;
pub mod descriptor;
pub mod device_embed;
pub mod embed;
pub mod jpeg_frame;
pub mod kernels;
pub mod matching;
pub mod mobilenet;
pub mod ops;
pub mod references;
pub mod resample;
pub mod thumbnail;
pub mod verify;

pub use decode::{check, decode, Checked, DecodeLimits};
pub use device_embed::EmbedTimes;
pub use embed::{Embedder, EmbedderKind};
pub use matching::{top_k, Match, ReferenceSet};
pub use ops::ImageOps;
pub use references::{ImageIndex, IndexEntry, MatchRules, RefMatch, References};

use crate::device::DeviceError;

/// Why an image could not be embedded. One line each: the scan writes them
/// to `rejects` as they are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    #[error("image is empty (0 bytes)")]
    Empty,
    #[error("image is {bytes} bytes, over max_image_bytes={max}")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("not an image (first bytes {0})")]
    NotAnImage(String),
    #[error("unsupported image format {0} (JPEG, PNG and WebP are accepted)")]
    Unsupported(String),
    #[error("image header declares {width}x{height} = {pixels} pixels, over max_image_pixels={max} (decompression bomb guard)")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        max: u64,
    },
    #[error("corrupt or truncated {format}: {detail}")]
    Corrupt { format: String, detail: String },
    #[error("decoding this {format} took longer than {seconds} s (images.decode_timeout_ms); its decoder was abandoned")]
    TimedOut { format: String, seconds: f64 },
    #[error("{abandoned} image decoders are still running past their time limit: stopping rather than piling up more (a decoder bug met by hostile images?)")]
    DecodersStuck { abandoned: usize },
    #[error("model {model}: {detail}")]
    Model { model: String, detail: String },
    #[error("{0}")]
    Device(#[from] DeviceError),
}

impl ImageError {
    /// A failure of the run's machinery (a model, the GPU) rather than of one
    /// image: the job stops and publishes nothing instead of rejecting rows.
    pub fn is_run_failure(&self) -> bool {
        matches!(
            self,
            ImageError::Model { .. } | ImageError::Device(_) | ImageError::DecodersStuck { .. }
        )
    }
}
