//! Parquet footers and row salvage on any bytes: the footer reader and a
//! full read either succeed or fail with an error; salvage either refuses
//! the file or writes a file that reads back whole, with as many rows as it
//! says it kept, and never accounts for more rows than the file declares.
//!
//! Self-seeding: each input also writes a small valid listings-like file
//! (ids, titles whose bytes may not be UTF-8, a binary column) with
//! fuzzer-chosen row groups, encodings and compression, then damages it.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use dajia::catalog::parquet_reader;
use dajia::salvage::{read_local, salvage_file};
use datafusion::arrow::array::{BinaryArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use libfuzzer_sys::fuzz_target;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

#[derive(Debug, Arbitrary)]
struct Input {
    titles: Vec<Option<Vec<u8>>>,
    row_group: u8,
    dictionary: bool,
    snappy: bool,
    damage: Vec<(u16, u8)>,
    cut: Option<u16>,
    raw: Vec<u8>,
}

fn write(inp: &Input) -> Option<Vec<u8>> {
    let n = inp.titles.len().min(64);
    if n == 0 {
        return None;
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("listing_id", DataType::Int64, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("photo", DataType::Binary, true),
    ]));
    let mut bytes = Vec::new();
    let mut offsets = vec![0i32];
    for t in &inp.titles[..n] {
        bytes.extend_from_slice(t.as_deref().unwrap_or_default());
        offsets.push(bytes.len() as i32);
    }
    let nulls = inp.titles[..n]
        .iter()
        .map(|t| t.is_some())
        .collect::<Vec<_>>();
    // SAFETY: bytes that may not be UTF-8 are the point; they are only
    // written to the file, never read as str.
    let titles = unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new(offsets.into()),
            bytes.into(),
            Some(nulls.into()),
        )
    };
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n as i64)),
            Arc::new(titles),
            Arc::new(BinaryArray::from_iter_values((0..n).map(|i| [i as u8; 3]))),
        ],
    )
    .ok()?;
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(inp.row_group as usize % 16 + 1))
        .set_dictionary_enabled(inp.dictionary)
        .set_compression(if inp.snappy {
            Compression::SNAPPY
        } else {
            Compression::UNCOMPRESSED
        })
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props)).ok()?;
    w.write(&batch).ok()?;
    w.close().ok()?;
    Some(out)
}

fn exercise(data: &[u8]) {
    // DAJIA_FUZZ_DUMP=FILE keeps the bytes last exercised: the Parquet file
    // behind a finding, for a regression test.
    if let Some(dump) = std::env::var_os("DAJIA_FUZZ_DUMP") {
        std::fs::write(dump, data).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.parquet");
    std::fs::write(&src, data).unwrap();
    // dajia's footer reader (the catalog's and salvage's) and its full read
    // (the check before salvage): an error or a result, never a panic.
    let declared = parquet_reader(std::fs::File::open(&src).unwrap())
        .map(|b| b.metadata().file_metadata().num_rows())
        .ok();
    let _ = read_local(&src, false);
    let dest = dir.path().join("out.parquet");
    if let Ok(s) = salvage_file(&src, &dest, Some("listing_id"), &mut |_, _| {}) {
        let declared = declared.expect("a salvaged file has a readable footer");
        assert!(
            s.kept + s.rejected <= declared.max(0) as u64,
            "{s:?} of {declared}"
        );
        let back = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&dest).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let rows: usize = back.map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows as u64, s.kept);
    }
}

fuzz_target!(
    init: {
        // libfuzzer-sys aborts on every panic, even one dajia catches (its
        // readers isolate the Parquet decoders, which panic on some damaged
        // pages: fuzz/findings). Panics dajia catches are handled input;
        // one that escapes still aborts (libfuzzer-sys's catch_unwind).
        drop(std::panic::take_hook());
    },
    |inp: Input| {
    exercise(&inp.raw);
    if let Some(mut bytes) = write(&inp) {
        exercise(&bytes);
        for (at, value) in &inp.damage {
            let i = *at as usize % bytes.len();
            bytes[i] = *value;
        }
        if let Some(cut) = inp.cut {
            bytes.truncate(cut as usize % (bytes.len() + 1));
        }
        exercise(&bytes);
    }
    }
);
