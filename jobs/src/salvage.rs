//! Salvage of catalog files that cannot be decoded whole, for every table
//! and for files in object stores.
//!
//! The usual cause is a string column holding bytes that are not UTF-8:
//! Arrow refuses the whole page, so one bad byte would fail the night. Such
//! a file is read again one row group at a time (memory bounded by a row
//! group, never a whole file): the other columns with Arrow, each string
//! column as raw bytes with Parquet's column reader, checked value by value.
//! Rows with a bad value become rejects (with their key, e.g. `listing_id`);
//! a row group that cannot be read at all becomes one reject naming its
//! rows; the rest is written, row group by row group, to a staging file the
//! scan reads instead. A file whose footer cannot be read is not salvaged
//! (the caller rejects it whole).
//!
//! Hand-written because neither parquet nor DataFusion offers a lossy read:
//! both fail the batch on the first invalid string.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::catalog::{panic_message, parquet_reader};

/// What salvaging one file kept and rejected, in rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Salvage {
    pub kept: u64,
    pub rejected: u64,
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Salvage the readable rows of the local Parquet file `src` into `dest`.
/// `key` names the column that identifies a row in rejects; `on_reject`
/// gets `(key value, reason)` for every row (or lost row group) left out.
pub fn salvage_file(
    src: &Path,
    dest: &Path,
    key: Option<&str>,
    on_reject: &mut dyn FnMut(Option<String>, String),
) -> Result<Salvage> {
    // The Parquet readers are parsers of hostile bytes too: a panic in them
    // refuses the file (the caller rejects it whole), never the run.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        salvage_rows(src, dest, key, on_reject)
    }))
    .unwrap_or_else(|p| bail!("the Parquet reader panicked: {}", panic_message(&p)))
}

fn salvage_rows(
    src: &Path,
    dest: &Path,
    key: Option<&str>,
    on_reject: &mut dyn FnMut(Option<String>, String),
) -> Result<Salvage> {
    let builder = parquet_reader(File::open(src)?)?;
    let schema = builder.schema().clone();
    let metadata = builder.metadata().clone();
    let declared = metadata.file_metadata().num_rows();
    let groups: i64 = metadata.row_groups().iter().map(|g| g.num_rows()).sum();
    if declared < 0 || groups != declared {
        bail!("the footer declares {declared} rows but its row groups hold {groups}");
    }
    let descr = metadata.file_metadata().schema_descr_ptr();
    // Each string column's leaf in the Parquet schema (a flat column).
    let mut strings: Vec<(usize, usize)> = Vec::new();
    let mut others: Vec<usize> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        if is_string(f.data_type()) {
            let leaf = (0..descr.num_columns())
                .find(|&c| descr.column(c).path().parts() == [f.name().as_str()])
                .with_context(|| format!("column {} is not a flat string column", f.name()))?;
            strings.push((i, leaf));
        } else {
            others.push(i);
        }
    }
    let out_schema = schema.clone();
    let mut writer = ArrowWriter::try_new(File::create(dest)?, out_schema.clone(), None)?;
    let key_index = key.and_then(|k| schema.index_of(k).ok());
    let file_reader = SerializedFileReader::new(File::open(src)?)?;
    let mut tally = Salvage::default();
    for rg in 0..metadata.num_row_groups() {
        let rows = metadata.row_group(rg).num_rows() as usize;
        let read = read_row_group(src, &file_reader, rg, rows, &schema, &strings, &others);
        let (batch, bad) = match read {
            Ok(v) => v,
            Err(e) => {
                on_reject(
                    None,
                    format!("row group {rg} ({rows} rows) unreadable: {e:#}"),
                );
                tally.rejected += rows as u64;
                continue;
            }
        };
        let keys = key_index
            .map(|k| cast(batch.column(k), &DataType::Utf8))
            .transpose()?;
        let keys = keys
            .as_ref()
            .and_then(|k| k.as_any().downcast_ref::<StringArray>());
        for (i, why) in bad.iter().enumerate() {
            if let Some(why) = why {
                let id = keys.and_then(|k| (!k.is_null(i)).then(|| k.value(i).to_string()));
                on_reject(id, why.clone());
                tally.rejected += 1;
            }
        }
        let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<_>>());
        let kept = filter_record_batch(&batch, &keep)?;
        tally.kept += kept.num_rows() as u64;
        writer.write(&kept)?;
        // One row group out per row group in: the writer holds no more.
        writer.flush()?;
    }
    writer.close()?;
    Ok(tally)
}

/// One row group with every column, and per row why it is bad (`None`: good).
/// A string value that is not UTF-8 is read as null and marks its row bad.
fn read_row_group(
    src: &Path,
    file_reader: &SerializedFileReader<File>,
    rg: usize,
    rows: usize,
    schema: &SchemaRef,
    strings: &[(usize, usize)],
    others: &[usize],
) -> Result<(RecordBatch, Vec<Option<String>>)> {
    let mut columns: Vec<Option<ArrayRef>> = vec![None; schema.fields().len()];
    if !others.is_empty() {
        let builder = parquet_reader(File::open(src)?)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), others.iter().copied());
        let reader = builder
            .with_row_groups(vec![rg])
            .with_projection(mask)
            .with_batch_size(rows.clamp(1, 1 << 20))
            .build()?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        let projected = Arc::new(schema.project(others)?);
        let read = concat_batches(&projected, &batches)?;
        if read.num_rows() != rows {
            bail!("{} rows read for {rows} declared", read.num_rows());
        }
        for (k, &i) in others.iter().enumerate() {
            columns[i] = Some(read.column(k).clone());
        }
    }
    let mut bad: Vec<Option<String>> = vec![None; rows];
    for &(i, leaf) in strings {
        let field = schema.field(i);
        let values = read_strings(file_reader, rg, leaf, field.name(), &mut bad)?;
        if values.len() != rows {
            bail!(
                "column {}: {} values for {rows} rows",
                field.name(),
                values.len()
            );
        }
        let array: ArrayRef = Arc::new(StringArray::from(values));
        columns[i] = Some(cast(&array, field.data_type())?);
    }
    let columns = columns
        .into_iter()
        .map(|c| c.expect("every column read"))
        .collect();
    Ok((RecordBatch::try_new(schema.clone(), columns)?, bad))
}

/// One string column of one row group as raw bytes (the column reader does
/// not check UTF-8), checked row by row; a value that is not UTF-8 is
/// recorded in `bad` and read as null.
fn read_strings(
    reader: &SerializedFileReader<File>,
    rg: usize,
    leaf: usize,
    name: &str,
    bad: &mut [Option<String>],
) -> Result<Vec<Option<String>>> {
    use parquet::column::reader::ColumnReader;
    let descr = reader.metadata().file_metadata().schema_descr_ptr();
    let max_def = descr.column(leaf).max_def_level();
    let ColumnReader::ByteArrayColumnReader(mut r) =
        reader.get_row_group(rg)?.get_column_reader(leaf)?
    else {
        bail!("column {name} is not a byte array")
    };
    let mut out: Vec<Option<String>> = Vec::new();
    loop {
        let mut defs: Vec<i16> = Vec::new();
        let mut values = Vec::new();
        let (records, _, _) = r.read_records(8192, Some(&mut defs), None, &mut values)?;
        if records == 0 {
            break;
        }
        if out.len() + records > bad.len() {
            bail!("column {name}: more values than the row group's rows");
        }
        let mut next = values.into_iter();
        for k in 0..records {
            let present = max_def == 0 || defs.get(k).is_some_and(|d| *d == max_def);
            if !present {
                out.push(None);
                continue;
            }
            let v = next.next().map(|b| b.data().to_vec()).unwrap_or_default();
            match String::from_utf8(v) {
                Ok(s) => out.push(Some(s)),
                Err(e) => {
                    let i = out.len();
                    bad[i].get_or_insert_with(|| {
                        format!(
                            "{name} is not valid UTF-8 (byte {})",
                            e.utf8_error().valid_up_to()
                        )
                    });
                    out.push(None);
                }
            }
        }
    }
    Ok(out)
}

/// Files checked at once: object-store reads wait on the network, and a
/// local check holds one row group of one file in memory.
const CHECK_CONCURRENCY: usize = 8;

/// The files of `files` that cannot be read whole, with the error. Every
/// column is decoded except, with `skip_binary`, binary ones (image bytes,
/// whose problems the image stage rejects image by image). Files in an
/// object store are read where they are, fetching only the columns checked
/// (never copied: only a file that fails is downloaded, to be salvaged).
/// Only a store that cannot be reached is an error: that is the run's
/// problem, not the file's.
pub async fn find_unreadable(
    ctx: &SessionContext,
    files: &[PathBuf],
    skip_binary: bool,
) -> Result<Vec<(PathBuf, String)>> {
    let checks = futures::stream::iter(files.iter().cloned())
        .map(|f| async move {
            let verdict = if crate::catalog::is_remote_file(&f) {
                check_remote(ctx, &f, skip_binary).await?
            } else {
                let local = f.clone();
                tokio::task::spawn_blocking(move || read_local(&local, skip_binary))
                    .await?
                    .err()
                    .map(|e| format!("{e:#}"))
            };
            anyhow::Ok(verdict.map(|why| (f, format!("unreadable data: {why}"))))
        })
        .buffered(CHECK_CONCURRENCY);
    let verdicts: Vec<Option<(PathBuf, String)>> = checks.try_collect().await?;
    Ok(verdicts.into_iter().flatten().collect())
}

/// [`read_local`] for an object-store file, streamed from the store with
/// the same footer options and projection: `Ok(None)` when it reads whole,
/// `Ok(Some(why))` when its bytes are bad (a panic in the decoders
/// included), `Err` when the store cannot be reached.
async fn check_remote(ctx: &SessionContext, f: &Path, skip_binary: bool) -> Result<Option<String>> {
    use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
    let (store, path) = remote(ctx, f)?;
    // Not reachable (or not there) is the run's problem, not the file's.
    let reachable = || async {
        use object_store::ObjectStoreExt;
        store
            .head(&path)
            .await
            .with_context(|| format!("reading {}", f.display()))
    };
    let reader = StoreReader {
        store: store.clone(),
        path: path.clone(),
        size: reachable().await?.size,
    };
    // On its own task, so that a panic in the decoders ends only this check.
    let read = tokio::spawn(async move {
        let builder = ParquetRecordBatchStreamBuilder::new_with_options(
            reader,
            crate::catalog::reader_options(),
        )
        .await?;
        let roots = projection(builder.schema(), skip_binary);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut batches = builder.with_projection(mask).build()?;
        while let Some(b) = batches.next().await {
            b?;
        }
        Ok::<(), parquet::errors::ParquetError>(())
    })
    .await;
    let why = match read {
        Ok(Ok(())) => return Ok(None),
        Ok(Err(e)) => e.to_string(),
        Err(e) if e.is_panic() => {
            format!(
                "the Parquet reader panicked: {}",
                panic_message(&e.into_panic())
            )
        }
        Err(e) => return Err(e.into()),
    };
    // A read can also fail because the store went away mid-file: only a
    // store that still answers makes it the file's fault. (A file wrongly
    // called unreadable here is only salvaged whole, not lost.)
    reachable().await?;
    Ok(Some(why))
}

fn projection(schema: &Schema, skip_binary: bool) -> Vec<usize> {
    (0..schema.fields().len())
        .filter(|&i| !(skip_binary && is_binary(schema.field(i).data_type())))
        .collect()
}

/// A Parquet file in an object store, read by ranges. (Written here because
/// parquet 59's `ParquetObjectReader` is deprecated for this: its
/// documented replacement is an `AsyncFileReader` of one's own.)
struct StoreReader {
    store: Arc<dyn object_store::ObjectStore>,
    path: object_store::path::Path,
    /// From a `head`: the footer is then read with bounded ranges only.
    size: u64,
}

fn store_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for StoreReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        use object_store::ObjectStoreExt;
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(store_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// Decode every column of the local file `f` (but binary ones with
/// `skip_binary`): `Ok` when it reads whole. A panic in the decoders
/// (hostile bytes) is an error: the file is unreadable.
pub fn read_local(f: &Path, skip_binary: bool) -> Result<()> {
    std::panic::catch_unwind(|| -> Result<()> {
        let builder = parquet_reader(File::open(f)?)?;
        let roots = projection(builder.schema(), skip_binary);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        for b in builder.with_projection(mask).build()? {
            b?;
        }
        Ok(())
    })
    .unwrap_or_else(|p| bail!("the Parquet reader panicked: {}", panic_message(&p)))
}

/// The store and path of an `s3://` file, from `ctx`'s registry.
fn remote(
    ctx: &SessionContext,
    f: &Path,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)> {
    let url = url::Url::parse(&f.to_string_lossy())?;
    let store = ctx
        .runtime_env()
        .object_store(ObjectStoreUrl::parse(&url[..url::Position::BeforePath])?)?;
    Ok((store, object_store::path::Path::from_url_path(url.path())?))
}

/// Copy an object-store file to `dest`, chunk by chunk (never whole in
/// memory), so that it can be salvaged like a local one.
pub async fn download(ctx: &SessionContext, f: &Path, dest: &Path) -> Result<()> {
    use object_store::ObjectStoreExt;
    let (store, path) = remote(ctx, f)?;
    let mut stream = store.get(&path).await?.into_stream();
    let mut out = std::io::BufWriter::new(File::create(dest)?);
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Int64Array};
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::datatypes::Field;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::properties::WriterProperties;

    /// `(id, title, photo)` in row groups of 3 rows; the middle title of
    /// each group is not UTF-8 (as a buggy producer writes it).
    fn broken_file(path: &Path, groups: i64) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("listing_id", DataType::Int64, false),
            Field::new("title", DataType::Utf8, true),
            Field::new("photo", DataType::Binary, true),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(3))
            .build();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), schema.clone(), Some(props)).unwrap();
        for g in 0..groups {
            let values: [&[u8]; 3] = [b"ok", b"bad \xff\xfe", b"fine"];
            let mut offsets = vec![0i32];
            for v in values {
                offsets.push(offsets.last().unwrap() + v.len() as i32);
            }
            // SAFETY: deliberately invalid UTF-8, only written to disk.
            let titles = unsafe {
                StringArray::new_unchecked(
                    OffsetBuffer::new(offsets.into()),
                    values.concat().into(),
                    None,
                )
            };
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![g * 10, g * 10 + 1, g * 10 + 2])),
                    Arc::new(titles),
                    Arc::new(BinaryArray::from(vec![Some(b"\xff\x00".as_ref()); 3])),
                ],
            )
            .unwrap();
            w.write(&batch).unwrap();
        }
        w.close().unwrap();
    }

    /// An object store that counts the bytes it serves (heads excluded).
    #[derive(Debug)]
    struct Counting {
        inner: object_store::memory::InMemory,
        served: Arc<std::sync::atomic::AtomicU64>,
    }

    impl std::fmt::Display for Counting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counting({})", self.inner)
        }
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for Counting {
        async fn put_opts(
            &self,
            l: &object_store::path::Path,
            p: object_store::PutPayload,
            o: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            self.inner.put_opts(l, p, o).await
        }
        async fn put_multipart_opts(
            &self,
            l: &object_store::path::Path,
            o: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.inner.put_multipart_opts(l, o).await
        }
        async fn get_opts(
            &self,
            l: &object_store::path::Path,
            o: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            let head = o.head;
            let r = self.inner.get_opts(l, o).await?;
            if !head {
                let n = r.range.end - r.range.start;
                self.served
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(r)
        }
        fn delete_stream(
            &self,
            l: futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            self.inner.delete_stream(l)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            o: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }

    /// `rows` good rows whose `photo` holds 64 KiB each: the bulk of the file.
    fn file_with_photos(path: &Path, rows: i64) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("listing_id", DataType::Int64, false),
            Field::new("title", DataType::Utf8, true),
            Field::new("photo", DataType::Binary, true),
        ]));
        let photo: Vec<u8> = (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("title {i}")),
                )),
                Arc::new(BinaryArray::from_iter_values(
                    (0..rows).map(|_| photo.as_slice()),
                )),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    /// Object-store files are checked where they are: the image column is
    /// not fetched, nothing is downloaded, a bad file is found, and a
    /// missing object is the run's error, not a bad file.
    #[tokio::test]
    async fn object_store_files_are_checked_in_place_without_their_image_bytes() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().unwrap();
        let (good, broken) = (
            dir.path().join("good.parquet"),
            dir.path().join("broken.parquet"),
        );
        file_with_photos(&good, 40);
        broken_file(&broken, 2);
        let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let store = Counting {
            inner: object_store::memory::InMemory::new(),
            served: served.clone(),
        };
        let mut total = 0;
        for f in [&good, &broken] {
            let bytes = std::fs::read(f).unwrap();
            total += bytes.len() as u64;
            let name = f.file_name().unwrap().to_str().unwrap();
            store
                .put(&object_store::path::Path::from(name), bytes.into())
                .await
                .unwrap();
        }
        let ctx = SessionContext::new();
        ctx.register_object_store(&url::Url::parse("s3://cat").unwrap(), Arc::new(store));
        let files = [
            PathBuf::from("s3://cat/good.parquet"),
            PathBuf::from("s3://cat/broken.parquet"),
        ];

        let bad = find_unreadable(&ctx, &files, true).await.unwrap();
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].0, files[1]);
        assert!(bad[0].1.starts_with("unreadable data: "), "{}", bad[0].1);
        let fetched = served.load(std::sync::atomic::Ordering::Relaxed);
        // The photos are > 95% of the bytes; the old check downloaded all.
        assert!(fetched * 10 < total, "fetched {fetched} of {total} bytes");
        // With the image column, the good file still reads whole.
        assert_eq!(
            find_unreadable(&ctx, &files[..1], false).await.unwrap(),
            vec![]
        );

        let missing = [PathBuf::from("s3://cat/missing.parquet")];
        let err = find_unreadable(&ctx, &missing, true).await.unwrap_err();
        assert!(
            format!("{err:#}").contains("s3://cat/missing.parquet"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_rows_of_every_row_group_are_rejected_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        broken_file(&src, 3);
        assert!(read_local(&src, true).is_err(), "Arrow refuses the file");
        let mut rejects = Vec::new();
        let s = salvage_file(&src, &dest, Some("listing_id"), &mut |k, w| {
            rejects.push((k, w))
        })
        .unwrap();
        assert_eq!(
            s,
            Salvage {
                kept: 6,
                rejected: 3
            }
        );
        let keys: Vec<_> = rejects.iter().map(|(k, _)| k.clone().unwrap()).collect();
        assert_eq!(keys, ["1", "11", "21"]);
        assert_eq!(rejects[0].1, "title is not valid UTF-8 (byte 4)");
        // The staged file reads whole, binary bytes untouched, three row groups.
        let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&dest).unwrap()).unwrap();
        assert_eq!(b.metadata().num_row_groups(), 3);
        let rows = concat_batches(
            &b.schema().clone(),
            &b.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap(),
        )
        .unwrap();
        let ids = rows
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(ids.values().to_vec(), [0, 2, 10, 12, 20, 22]);
        let photo = rows
            .column(2)
            .as_any()
            .downcast_ref::<BinaryArray>()
            .unwrap();
        assert_eq!(photo.value(5), b"\xff\x00");
    }

    #[test]
    fn binary_columns_can_be_skipped_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.parquet");
        broken_file(&src, 1);
        // The title is the problem, whether or not the photos are decoded.
        assert!(read_local(&src, true).is_err());
        assert!(read_local(&src, false).is_err());
    }

    #[test]
    fn files_that_are_not_parquet_or_disagree_with_their_footer_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dest) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        std::fs::write(&src, b"PAR1 this is not a parquet file PAR1").unwrap();
        assert!(salvage_file(&src, &dest, None, &mut |_, _| {}).is_err());
        // Truncated: the footer is gone.
        broken_file(&src, 2);
        let bytes = std::fs::read(&src).unwrap();
        std::fs::write(&src, &bytes[..bytes.len() / 2]).unwrap();
        assert!(salvage_file(&src, &dest, None, &mut |_, _| {}).is_err());
    }

    /// The first fuzzing finding (`fuzz/parquet_salvage`): a footer whose
    /// embedded Arrow schema declares an Int64 of bit width 0x03000040
    /// makes parquet's default reader panic (arrow-ipc 59.3); dajia's
    /// readers take the types from the Parquet schema and read the file.
    #[test]
    fn a_damaged_embedded_arrow_schema_is_ignored_not_a_crash() {
        use base64::engine::general_purpose::STANDARD;
        use base64::Engine;
        use parquet::arrow::arrow_writer::ArrowWriterOptions;
        use parquet::file::metadata::KeyValue;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "listing_id",
            DataType::Int64,
            false,
        )]));
        let mut raw = STANDARD
            .decode(parquet::arrow::encode_arrow_schema(&schema))
            .unwrap();
        let at = raw
            .windows(4)
            .rposition(|w| w == [64, 0, 0, 0])
            .expect("the Int64's bit width");
        raw[at + 3] = 3;
        let damaged = KeyValue::new("ARROW:schema".into(), STANDARD.encode(&raw));
        let props = WriterProperties::builder()
            .set_key_value_metadata(Some(vec![damaged]))
            .build();
        let opts = ArrowWriterOptions::new()
            .with_properties(props)
            .with_skip_arrow_metadata(true);
        let mut w =
            ArrowWriter::try_new_with_options(File::create(&src).unwrap(), schema.clone(), opts)
                .unwrap();
        let ids = Arc::new(Int64Array::from(vec![7, 8]));
        w.write(&RecordBatch::try_new(schema, vec![ids]).unwrap())
            .unwrap();
        w.close().unwrap();
        let f = File::open(&src).unwrap();
        let default =
            std::panic::catch_unwind(|| ParquetRecordBatchReaderBuilder::try_new(f).is_ok());
        assert!(
            default.is_err(),
            "parquet's default reader no longer panics here"
        );
        let b = parquet_reader(File::open(&src).unwrap()).unwrap();
        assert_eq!(b.metadata().file_metadata().num_rows(), 2);
        assert!(read_local(&src, false).is_ok());
        let s = salvage_file(&src, &dir.path().join("b.parquet"), None, &mut |_, _| {}).unwrap();
        assert_eq!(
            s,
            Salvage {
                kept: 2,
                rejected: 0
            }
        );
    }

    /// The second fuzzing finding (`fuzz/findings/parquet_salvage/crash-38d2…`):
    /// a dictionary page declaring no values over a non-empty buffer makes
    /// parquet 59.3's string reader divide by zero. Reading it is an error
    /// (the file is then salvaged or rejected), never a crash.
    #[test]
    fn a_decoder_panic_on_a_damaged_page_makes_the_file_unreadable_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.parquet");
        std::fs::write(
            &src,
            include_bytes!("../tests/fixtures/fuzz-dictionary-page-divide-by-zero.parquet"),
        )
        .unwrap();
        let e = read_local(&src, false).unwrap_err().to_string();
        assert!(
            e.contains("panicked") && e.contains("divide by zero"),
            "{e}"
        );
        // Salvage reads string pages itself: it keeps what it can or refuses.
        let mut lost = Vec::new();
        match salvage_file(
            &src,
            &dir.path().join("b.parquet"),
            Some("listing_id"),
            &mut |k, w| lost.push((k, w)),
        ) {
            Ok(s) => assert!(s.kept + s.rejected <= 64, "{s:?}"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }

    // The `parquet_salvage` fuzz target's property (fuzz/): a damaged or
    // cut file is refused or salvaged into a file that reads back whole.
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn damaged_files_are_refused_or_salvaged_into_readable_ones(
            groups in 1i64..4,
            damage in proptest::collection::vec((proptest::prelude::any::<u32>(), proptest::prelude::any::<u8>()), 0..6),
            cut in proptest::option::of(proptest::prelude::any::<u32>()),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let (src, dest) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
            broken_file(&src, groups);
            let mut bytes = std::fs::read(&src).unwrap();
            for (at, v) in damage {
                let i = at as usize % bytes.len();
                bytes[i] = v;
            }
            if let Some(c) = cut {
                bytes.truncate(c as usize % (bytes.len() + 1));
            }
            std::fs::write(&src, &bytes).unwrap();
            if let Ok(s) = salvage_file(&src, &dest, Some("listing_id"), &mut |_, _| {}) {
                let declared = parquet_reader(File::open(&src).unwrap())
                    .unwrap()
                    .metadata()
                    .file_metadata()
                    .num_rows();
                proptest::prop_assert!(s.kept + s.rejected <= declared as u64);
                let b = ParquetRecordBatchReaderBuilder::try_new(File::open(&dest).unwrap()).unwrap();
                let rows: usize = b.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
                proptest::prop_assert_eq!(rows as u64, s.kept);
            }
        }
    }
}
