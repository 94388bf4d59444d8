#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;

pub const DATE: &str = "2026-11-28";

pub fn date() -> NaiveDate {
    DATE.parse().unwrap()
}

pub fn gen(dir: &Path, listings: usize, seed: u64) {
    gen_with_images(dir, listings, seed, 0.0)
}

/// A catalog where `image_share` of the listings have a photo.
pub fn gen_with_images(dir: &Path, listings: usize, seed: u64, image_share: f64) {
    dajia::gen::generate(&dajia::gen::GenOptions {
        out: dir.to_path_buf(),
        listings,
        seed,
        date: date(),
        rows_per_file: listings.div_ceil(3).max(1),
        image_share,
        sellers: None,
    })
    .expect("generate a catalog");
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dajia"))
}

/// Run the binary, returning (success, stdout, stderr).
pub fn run(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().expect("run dajia");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Run the binary; panics (with its stderr) unless it succeeds; its stdout.
pub fn run_ok(args: &[&str]) -> String {
    let (ok, out, err) = run(args);
    assert!(ok, "dajia {}: {err}", args.join(" "));
    out
}

/// `dajia scan` of `cat` into `out` for `date`, without a progress bar.
pub fn scan_args(cat: &Path, out: &Path, date: &str) -> Vec<String> {
    [
        "scan",
        "--catalog",
        cat.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--date",
        date,
        "--no-progress",
    ]
    .map(String::from)
    .to_vec()
}

/// Run `dajia scan` for [`DATE`] with extra arguments.
pub fn scan_with(cat: &Path, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = scan_args(cat, out, DATE);
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Run `dajia scan` for [`DATE`].
pub fn scan(cat: &Path, out: &Path) -> (bool, String, String) {
    let args = scan_args(cat, out, DATE);
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// `dajia sql --out OUT --format csv -c SQL`; panics when the query fails.
pub fn sql_csv(out: &Path, sql: &str) -> String {
    sql_csv_with(out, &[], sql)
}

/// As [`sql_csv`], also reading files by path under `dir` (e.g. a
/// generated catalog's `ground_truth/`).
pub fn sql_csv_reading(out: &Path, dir: &Path, sql: &str) -> String {
    sql_csv_with(out, &["--read-files-under", dir.to_str().unwrap()], sql)
}

fn sql_csv_with(out: &Path, extra: &[&str], sql: &str) -> String {
    let mut args = vec!["sql", "--out", out.to_str().unwrap(), "--format", "csv"];
    args.extend_from_slice(extra);
    args.extend(["-c", sql]);
    let (ok, stdout, stderr) = run(&args);
    assert!(ok, "{stderr}");
    stdout
}

/// All rows of partition `dt` of risk_scores as sorted CSV lines.
pub fn scores_csv(out: &Path) -> String {
    sql_csv(
        out,
        &format!("SELECT listing_id, seller_id, score, action, brand_id, model_version FROM risk_scores WHERE dt = '{DATE}' ORDER BY listing_id"),
    )
}

pub fn delta_version(out: &Path) -> usize {
    std::fs::read_dir(out.join("risk_scores/_delta_log"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// The models folder when it holds `file` (`$DAJIA_MODELS`, else the repo's
/// `models/`); `None` (the test skips, saying so) when it does not, unless
/// `DAJIA_REQUIRE_MODELS` is set (CI), where a missing model fails the test.
pub fn models_with(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("DAJIA_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    if dir.join(file).exists() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("DAJIA_REQUIRE_MODELS").is_none(),
        "DAJIA_REQUIRE_MODELS is set but {} has no {file}",
        dir.display()
    );
    eprintln!(
        "skipped: no {file} in {} (run scripts/setup-models.sh)",
        dir.display()
    );
    None
}

/// Every column of every published row, in order, as JSON lines.
pub fn scores_json(out: &Path) -> String {
    let (ok, stdout, stderr) = run(&[
        "sql",
        "--out",
        out.to_str().unwrap(),
        "--format",
        "json",
        "-c",
        "SELECT listing_id, seller_id, score, action, reasons, brand_id, model_version, dt FROM risk_scores ORDER BY listing_id",
    ]);
    assert!(ok, "{stderr}");
    stdout
}

/// A real-looking 480×400 JPEG photo.
pub fn photo_jpeg(seed: u64) -> Vec<u8> {
    let img = image::imageops::resize(
        &dajia::gen::photos::photo(seed),
        480,
        400,
        image::imageops::FilterType::Triangle,
    );
    dajia::gen::photos::jpeg(&img, 88)
}

/// Adds unreadable images and `uri`s that must not be read; returns a local
/// listener that one of them points at (it must see no connection).
pub fn add_bad_images(cat: &Path) -> std::net::TcpListener {
    use arrow::array::{BinaryArray, Int64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    let good = photo_jpeg(1);
    let mut bomb = good.clone();
    let sof = bomb.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    bomb[sof + 5..sof + 7].copy_from_slice(&60_000u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
    // An image stored beside the catalog and referenced by `uri`.
    std::fs::create_dir_all(cat.join("blobs")).unwrap();
    std::fs::write(cat.join("blobs/good.jpg"), &good).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", cat.join("blobs/escape.jpg")).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let http = format!(
        "http://127.0.0.1:{}/x.jpg",
        listener.local_addr().unwrap().port()
    );
    let rows: Vec<(&str, Option<Vec<u8>>, Option<&str>)> = vec![
        ("bad-text", Some(b"this is not an image".to_vec()), None),
        ("bad-truncated", Some(good[..good.len() / 2].to_vec()), None),
        ("bad-bomb", Some(bomb), None),
        ("bad-empty", Some(Vec::new()), None),
        ("bad-null", None, None),
        ("bad-uri", None, Some("blobs/missing.jpg")),
        ("good-uri", None, Some("blobs/good.jpg")),
        ("bad-traversal", None, Some("../../etc/passwd")),
        ("bad-dev-zero", None, Some("/dev/zero")),
        ("bad-file-url", None, Some("file:///etc/hostname")),
        ("bad-symlink", None, Some("blobs/escape.jpg")),
        ("bad-http", None, Some(&http)),
        ("bad-bucket", None, Some("s3://other-bucket/x.jpg")),
    ];
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("image_id", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("listing_id", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("content", arrow::datatypes::DataType::Binary, true),
        arrow::datatypes::Field::new("uri", arrow::datatypes::DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            std::sync::Arc::new(Int64Array::from_iter_values(1..=rows.len() as i64)),
            std::sync::Arc::new(BinaryArray::from_iter(rows.iter().map(|r| r.1.as_deref()))),
            std::sync::Arc::new(StringArray::from_iter(rows.iter().map(|r| r.2))),
        ],
    )
    .unwrap();
    dajia::gen::write_parquet(&cat.join("images/part-bad.parquet"), &batch).unwrap();
    listener
}

/// Copy the first `rows` rows of `table`'s first file under `cat` to a new
/// file `name` of that table, with ids from `first_id` in its first column
/// and the string column `column` of the middle row holding bytes that are
/// not UTF-8 (as a buggy producer writes them). Returns the id of that row.
#[allow(dead_code)]
pub fn add_file_with_invalid_utf8(
    cat: &Path,
    table: &str,
    name: &str,
    rows: usize,
    first_id: i64,
    column: &str,
) -> i64 {
    use arrow::array::{Array, ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;
    let dir = cat.join(table);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(&files[0]).unwrap(),
    )
    .unwrap()
    .with_batch_size(rows)
    .build()
    .unwrap();
    let batch = reader.into_iter().next().unwrap().unwrap().slice(0, rows);
    let schema = batch.schema();
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[0] = Arc::new(Int64Array::from_iter_values(
        first_id..first_id + rows as i64,
    ));
    let k = schema.index_of(column).unwrap();
    let old = arrow::compute::cast(&cols[k], &arrow::datatypes::DataType::Utf8).unwrap();
    let old = old.as_any().downcast_ref::<StringArray>().unwrap();
    let mut bytes = Vec::new();
    let mut offsets = vec![0i32];
    for i in 0..rows {
        let v: &[u8] = if i == rows / 2 {
            b"broken \xff\xfe value"
        } else if old.is_null(i) {
            b""
        } else {
            old.value(i).as_bytes()
        };
        bytes.extend_from_slice(v);
        offsets.push(bytes.len() as i32);
    }
    // SAFETY: deliberately invalid UTF-8, only written to disk, never read as str here.
    let bad = unsafe {
        StringArray::new_unchecked(
            arrow::buffer::OffsetBuffer::new(offsets.into()),
            bytes.into(),
            old.nulls().cloned(),
        )
    };
    cols[k] = Arc::new(bad);
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            if f.name() == column {
                arrow::datatypes::Field::new(column, arrow::datatypes::DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let out = arrow::record_batch::RecordBatch::try_new(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        cols,
    )
    .unwrap();
    let f = std::fs::File::create(dir.join(name)).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, out.schema(), None).unwrap();
    w.write(&out).unwrap();
    w.close().unwrap();
    first_id + (rows / 2) as i64
}

/// `dajia serve --flight-sql 127.0.0.1:0 ARGS` with the bearer token
/// `token`: the server (its stderr as given) and the HOST:PORT it says it
/// listens on.
pub fn serve_flight_sql(
    args: &[&str],
    token: &str,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut server = bin()
        .args(["serve", "--flight-sql", "127.0.0.1:0"])
        .args(args)
        .env("DAJIA_FLIGHT_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines
        .next()
        .expect("dajia serve says where it listens")
        .unwrap();
    let addr = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("grpc://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_string();
    (server, addr)
}
