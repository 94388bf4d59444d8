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
//! Everything here is CPU (rayon at batch level); it is the reference that a
//! GPU backend must agree with.

pub mod image;
pub mod ocr;
pub mod risk;
pub mod text;
