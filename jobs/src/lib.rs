//! dajia's jobs and DataFusion functions. The `dajia` binary (`main.rs`) only
//! parses options and calls into these modules.
//!
//! - [`catalog`]: find, validate and register a catalog's tables;
//! - [`udf`]: the SQL functions (`normalize_text`, `assess_listing`, ...),
//!   registered in one place for every session;
//! - [`images`]: image indexes, matching, and the `dajia kb` job;
//! - [`scan`]: the nightly job; [`gen`], [`eval`], [`sql`]: the others;
//! - [`learn`]: variant characters and replica terms learned from real data;
//! - [`link`], [`leads`]: seller networks and leads for law enforcement;
//! - [`train`], [`sample`]: reason weights and thresholds learned from
//!   verdicts; which listings to test-buy under a budget.

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod cluster;
pub mod delta;
pub mod eval;
pub mod file_tables;
pub mod gen;
pub mod images;
pub mod kb;
pub mod leads;
pub mod learn;
pub mod lease;
pub mod link;
pub mod ocr;
pub mod options;
pub mod report;
pub mod salvage;
pub mod sample;
pub mod scan;
pub mod serve;
pub mod session;
pub mod sql;
pub mod store;
pub mod train;
pub mod udf;
pub mod vacuum;
