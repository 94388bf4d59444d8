//! `dajia bench`: measurements that are not tests. Each writes its inputs
//! where a peer tool can read the same data, prints figures, and writes JSON.

pub mod images;
pub mod ocr;
