//! dajia's compute kernels. This crate owns the per-row work of the nightly
//! scan, independent of DataFusion so that benchmarks and other engines can
//! call it directly:
//!
//! - [`text`]: `normalize_text` and the text matchers (brands, replica
//!   vocabulary, contact diversion);
//! - [`image`]: guarded decoding, thumbnails, the `descriptor` and
//!   `mobilenet` embedders, exact top-k matching against reference sets;
//! - [`ocr`]: PP-OCRv5 text detection (DB post-processing) and recognition
//!   (CTC) of the text inside images;
//! - [`risk`]: the knowledge base, per-listing signals, reasons and scoring.
//!
//! - [`device`]: CPU or CUDA (`--device`), batch sizing and out-of-memory
//!   splitting; the CUDA backend is the `cuda` feature.
//!
//! The CPU code (rayon at batch level) is the reference; the CUDA backend
//! runs the same kernels (`image/cuda/*.cu`) and models and is tested for
//! parity against it.

pub mod device;
pub mod image;
pub mod ocr;
pub mod parity;
pub mod plans;
pub mod risk;
pub mod runtime;
pub mod text;
