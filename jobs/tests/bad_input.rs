//! Bad input: the night goes on (rejects with reasons) or, for a broken
//! contract, fails with one line naming table, file and column, publishing
//! nothing.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use common::*;

fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// A listings batch of `titles` (None = null title), ids from `first_id`.
fn listings(first_id: i64, titles: Vec<Option<String>>, seller: Option<i64>) -> RecordBatch {
    let n = titles.len();
    let schema = Arc::new(Schema::new(vec![
        Field::new("listing_id", DataType::Int64, true),
        Field::new("seller_id", DataType::Int64, true),
        Field::new("title", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("price_cents", DataType::Int64, true),
        Field::new("extra_column", DataType::Float64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(first_id..first_id + n as i64)),
            Arc::new(Int64Array::from(vec![seller; n])),
            Arc::new(StringArray::from(titles)),
            Arc::new(StringArray::from(vec![Some("箱包"); n])),
            Arc::new(Int64Array::from(vec![Some(10_000); n])),
            Arc::new(Float64Array::from(vec![Some(1.0); n])),
        ],
    )
    .unwrap()
}

/// A generated catalog whose listings are replaced by `files`.
fn catalog_with(dir: &Path, files: &[(&str, RecordBatch)]) -> std::path::PathBuf {
    let cat = dir.join("catalog");
    gen(&cat, 500, 1);
    std::fs::remove_dir_all(cat.join("listings")).unwrap();
    for (name, b) in files {
        write_parquet(&cat.join("listings").join(name), b);
    }
    cat
}

fn rejects(out: &Path) -> String {
    sql_csv(
        out,
        "SELECT table_name, file, row_key, reason FROM rejects ORDER BY row_key, file",
    )
}

fn good(n: usize) -> Vec<Option<String>> {
    (0..n).map(|i| Some(format!("棉麻 女包 款式{i}"))).collect()
}

#[test]
fn missing_required_column_is_a_one_line_error_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = listings(1, good(3), Some(300));
    let b = b.project(&[0, 1, 3, 4]).unwrap(); // no title
    let cat = catalog_with(dir.path(), &[("part-0.parquet", b)]);
    let out = dir.path().join("out");
    let (ok, _, err) = scan(&cat, &out);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("`listings`") && err.contains("part-0.parquet") && err.contains("`title`"),
        "{err}"
    );
    assert!(!out.join("risk_scores/_delta_log").exists());
    // The failed run is recorded.
    let m = std::fs::read_dir(out.join("runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(std::fs::read_to_string(m)
        .unwrap()
        .contains("\"outcome\": \"failed\""));
}

#[test]
fn wrong_type_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = listings(1, good(3), Some(300));
    let mut cols = b.columns().to_vec();
    cols[4] = Arc::new(StringArray::from(vec!["100", "200", "x"]));
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[4] = Field::new("price_cents", DataType::Utf8, true);
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let cat = catalog_with(dir.path(), &[("part-0.parquet", b)]);
    let (ok, _, err) = scan(&cat, &dir.path().join("out"));
    assert!(!ok);
    assert!(
        err.contains("`price_cents` has type Utf8, expected Int64"),
        "{err}"
    );
}

#[test]
fn corrupt_truncated_and_empty_files_are_rejected_and_the_rest_scored() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog_with(
        dir.path(),
        &[("part-0.parquet", listings(1, good(10), Some(300)))],
    );
    let valid = std::fs::read(cat.join("listings/part-0.parquet")).unwrap();
    std::fs::write(
        cat.join("listings/part-1.parquet"),
        &valid[..valid.len() / 2],
    )
    .unwrap();
    std::fs::write(
        cat.join("listings/part-2.parquet"),
        b"this is not parquet at all",
    )
    .unwrap();
    std::fs::write(cat.join("listings/part-3.parquet"), b"").unwrap();
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    assert!(stdout.contains("10 listings scored"), "{stdout}");
    let r = rejects(&out);
    for f in ["part-1.parquet", "part-2.parquet", "part-3.parquet"] {
        assert!(
            r.lines()
                .any(|l| l.contains(f) && l.contains("not a readable Parquet file")),
            "{f} missing from rejects:\n{r}"
        );
    }
}

#[test]
fn null_keys_and_oversized_titles_go_to_rejects_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let mut titles = good(5);
    titles[1] = None;
    titles[2] = Some("长".repeat(100_000 / 3 + 1)); // ~100 kB
    let with_null_seller = listings(100, good(1), None);
    let cat = catalog_with(
        dir.path(),
        &[
            ("part-0.parquet", listings(1, titles, Some(300))),
            ("part-1.parquet", with_null_seller),
        ],
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    assert!(stdout.contains("3 listings scored"), "{stdout}");
    let r = rejects(&out);
    assert!(r.contains("2,title is null"), "{r}");
    assert!(
        r.contains("3,\"title is 100002 bytes, over max_text_bytes=16384\""),
        "{r}"
    );
    assert!(r.contains("100,seller_id is null"), "{r}");
}

#[test]
fn the_text_limit_is_an_option_from_the_flag_or_the_config_file() {
    // "棉麻 女包 款式N" is 21 bytes: over a limit of 20, under 16 KiB.
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog_with(
        dir.path(),
        &[("part-0.parquet", listings(1, good(3), Some(300)))],
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan_with(&cat, &out, &["--max-text-bytes", "20"]);
    assert!(ok, "{err}");
    assert!(stdout.contains("0 listings scored"), "{stdout}");
    assert!(rejects(&out).contains("over max_text_bytes=20"));
    let config = dir.path().join("dajia.toml");
    std::fs::write(&config, "[scan]\nmax_text_bytes = 10\n").unwrap();
    let (ok, _, err) = scan_with(&cat, &out, &["--config", config.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(rejects(&out).contains("over max_text_bytes=10"));
    // The flag wins over the file; a limit of 0 is refused before any work.
    let (ok, _, err) = scan_with(
        &cat,
        &out,
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-text-bytes",
            "0",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("scan.max_text_bytes must be at least 1"),
        "{err}"
    );
}

#[test]
fn rows_with_non_utf8_text_are_rejected_and_the_rest_of_their_file_scored() {
    let dir = tempfile::tempdir().unwrap();
    // A Utf8 column holding invalid bytes in its middle row, as a buggy
    // producer would write it.
    let values: [&[u8]; 3] = [
        b"good title one",
        b"broken \xff\xfe title",
        b"good title three",
    ];
    let bytes: Vec<u8> = values.concat();
    let mut offsets = vec![0i32];
    for v in values {
        offsets.push(offsets.last().unwrap() + v.len() as i32);
    }
    // SAFETY: deliberately invalid UTF-8, only written to disk, never read as str here.
    let bad = unsafe {
        StringArray::new_unchecked(
            arrow::buffer::OffsetBuffer::new(offsets.into()),
            bytes.into(),
            None,
        )
    };
    let base = listings(50, vec![Some(String::new()); 3], Some(300));
    let mut cols = base.columns().to_vec();
    cols[2] = Arc::new(bad);
    let bad_batch = RecordBatch::try_new(base.schema(), cols).unwrap();
    let cat = catalog_with(
        dir.path(),
        &[
            ("part-0.parquet", listings(1, good(4), Some(300))),
            ("part-9.parquet", bad_batch),
        ],
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    let r = rejects(&out);
    assert!(
        stdout.contains("6 listings scored"),
        "4 + the 2 readable rows of part-9: {stdout}{r}"
    );
    assert!(
        r.lines()
            .any(|l| l.contains("part-9.parquet")
                && l.contains(",51,title is not valid UTF-8 (byte 7)")),
        "{r}"
    );
    assert!(
        !out.join("_staging").exists(),
        "staging files are removed after publishing"
    );
    let ids = sql_csv(
        &out,
        "SELECT listing_id FROM risk_scores WHERE listing_id >= 50 ORDER BY 1",
    );
    assert_eq!(ids.lines().skip(1).collect::<Vec<_>>(), vec!["50", "52"]);
}

#[test]
fn catalog_without_required_table_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog_with(
        dir.path(),
        &[("part-0.parquet", listings(1, good(2), Some(300)))],
    );
    std::fs::remove_dir_all(cat.join("brands")).unwrap();
    let (ok, _, err) = scan(&cat, &dir.path().join("out"));
    assert!(!ok);
    assert!(err.contains("no readable `brands` table"), "{err}");
}

/// `batch` with `name` (Utf8) appended.
fn with_column(batch: &RecordBatch, name: &str, values: Vec<Option<&str>>) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(name, DataType::Utf8, true));
    let mut cols = batch.columns().to_vec();
    cols.push(Arc::new(StringArray::from(values)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

/// Files of one table need not have the same columns: the table has every
/// contract column any file has (null for the rows of files without it),
/// not just the first file's; a column outside the contract whose type
/// differs between files is left out instead of failing the night.
#[test]
fn a_column_missing_from_the_first_file_is_kept_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let first = listings(1, good(3), Some(300)); // no description
    let second = with_column(
        &listings(10, good(2), Some(300)),
        "description",
        vec![Some("工厂直销 原单 尾单"), None],
    );
    // extra_column is Float64 in the first file, Utf8 here.
    let mut cols = second.columns().to_vec();
    let mut fields: Vec<Field> = second
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[5] = Field::new("extra_column", DataType::Utf8, true);
    cols[5] = Arc::new(StringArray::from(vec![Some("x"), Some("y")]));
    let second = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let cat = catalog_with(
        dir.path(),
        &[("part-0.parquet", first), ("part-1.parquet", second)],
    );
    let (ok, stdout, stderr) = run(&[
        "sql",
        "--catalog",
        cat.to_str().unwrap(),
        "--format",
        "csv",
        "-c",
        "SELECT listing_id, description FROM listings WHERE listing_id IN (1, 10, 11) ORDER BY 1",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        vec![
            "listing_id,description",
            "1,",
            "10,工厂直销 原单 尾单",
            "11,"
        ]
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    assert!(stdout.contains("5 listings scored"), "{stdout}");
}

/// A listing the catalog lists twice would be published twice: the scan
/// checks, as it writes, that each valid listing is written once, and else
/// fails before it commits, leaving readers on the previous result.
#[test]
fn a_listing_id_listed_twice_fails_the_run_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cat = catalog_with(
        dir.path(),
        &[
            ("part-0.parquet", listings(1, good(3), Some(300))),
            ("part-1.parquet", listings(3, good(2), Some(300))),
        ],
    );
    let out = dir.path().join("out");
    let (ok, _, err) = scan(&cat, &out);
    assert!(!ok);
    assert!(
        err.contains("`listing_id` 3 is written twice; publishing nothing"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "sql",
        "--out",
        out.to_str().unwrap(),
        "-c",
        "SELECT * FROM risk_scores",
    ]);
    assert!(
        !ok && err.contains("risk_scores"),
        "nothing published: {err}"
    );
}

#[test]
fn rows_with_non_utf8_text_in_any_table_the_scan_reads_are_rejected_and_the_rest_read() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog");
    gen(&cat, 300, 5);
    let seller =
        add_file_with_invalid_utf8(&cat, "sellers", "part-bad.parquet", 3, 9_000_001, "region");
    let brand =
        add_file_with_invalid_utf8(&cat, "brands", "part-bad.parquet", 3, 8_000_001, "name");
    // `orders` is read by `leads` and `sample`, not by the scan: its damage
    // is theirs to report, and the scan does not decode it.
    add_file_with_invalid_utf8(
        &cat,
        "orders",
        "part-bad.parquet",
        3,
        7_000_001,
        "ship_to_region",
    );
    let out = dir.path().join("out");
    let (ok, stdout, err) = scan(&cat, &out);
    assert!(ok, "{err}");
    assert!(stdout.contains("300 listings scored"), "{stdout}");
    let r = rejects(&out);
    assert!(!r.lines().any(|l| l.starts_with("orders,")), "{r}");
    for (table, id, column) in [("sellers", seller, "region"), ("brands", brand, "name")] {
        assert!(
            r.lines().any(|l| l.starts_with(&format!("{table},"))
                && l.contains("part-bad.parquet")
                && l.contains(&format!(",{id},{column} is not valid UTF-8 (byte 7)"))),
            "{table}: {r}"
        );
    }
}
