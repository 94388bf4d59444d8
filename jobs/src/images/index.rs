//! Image indexes on disk: one Parquet file per reference set and embedder,
//! `KB/<embedder>/official.parquet` (brands' official photos) and
//! `KB/<embedder>/known_fakes.parquet` (images of listings confirmed
//! counterfeit). The embedder is recorded in the file's metadata, so an index
//! is never searched with vectors of another embedder. The indexes
//! themselves, and matching against them, are `dajia_kernels::image::references`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{
    Array, BinaryArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use dajia_kernels::image::{EmbedderKind, ImageIndex, IndexEntry};
use dajia_kernels::risk::ImageMatchKind;

const EMBEDDER_KEY: &str = "dajia.embedder";

/// Both indexes of one embedder as read from a folder, and the hash of the
/// very bytes they were parsed from.
pub struct IndexFiles {
    pub official: Option<ImageIndex>,
    pub fakes: Option<ImageIndex>,
    /// sha256 (hex) of both files (see [`digest`]).
    pub digest: String,
}

/// Reads both indexes of `embedder` under `dir`, each file once: the hash
/// is of the bytes parsed, so a `dajia kb` rewriting the folder meanwhile
/// cannot pair one version's hash with another's entries.
pub fn read_all(dir: &Path, embedder: EmbedderKind) -> Result<IndexFiles> {
    let mut h = Sha256::new();
    let mut read = |kind| -> Result<Option<ImageIndex>> {
        let p = path(dir, kind, embedder);
        let bytes = file_bytes(&p)?;
        hash_part(&mut h, kind, bytes.as_deref());
        bytes
            .map(|b| parse(&p, kind, embedder, Bytes::from(b)))
            .transpose()
    };
    let official = read(ImageMatchKind::Official)?;
    let fakes = read(ImageMatchKind::KnownFake)?;
    Ok(IndexFiles {
        official,
        fakes,
        digest: format!("{:x}", h.finalize()),
    })
}

/// A content hash (sha256, hex) of the indexes of `embedder` under `dir`,
/// as [`read_all`] computes it: a node that loads them from a shared path
/// checks it read what the client read.
pub fn digest(dir: &Path, embedder: EmbedderKind) -> Result<String> {
    let mut h = Sha256::new();
    for kind in [ImageMatchKind::Official, ImageMatchKind::KnownFake] {
        hash_part(
            &mut h,
            kind,
            file_bytes(&path(dir, kind, embedder))?.as_deref(),
        );
    }
    Ok(format!("{:x}", h.finalize()))
}

fn hash_part(h: &mut Sha256, kind: ImageMatchKind, bytes: Option<&[u8]>) {
    h.update(kind.as_str().as_bytes());
    h.update(bytes.unwrap_or(b"absent"));
}

/// A file's bytes; `None` when it does not exist.
fn file_bytes(p: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(p) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading image index {}", p.display())),
    }
}

/// The file of the index of `kind` and `embedder` under a knowledge-base
/// directory.
pub fn path(dir: &Path, kind: ImageMatchKind, embedder: EmbedderKind) -> PathBuf {
    let file = match kind {
        ImageMatchKind::Official => "official.parquet",
        ImageMatchKind::KnownFake => "known_fakes.parquet",
    };
    dir.join(embedder.name()).join(file)
}

fn schema(dim: usize) -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("brand_id", DataType::Int64, true),
        Field::new("listing_id", DataType::Int64, true),
        Field::new("source", DataType::Utf8, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(
                Arc::new(Field::new_list_field(DataType::Float32, false)),
                dim as i32,
            ),
            false,
        ),
        Field::new("print", DataType::Binary, true),
    ]))
}

/// Writes `index` atomically (temporary file, then rename).
pub fn write(index: &ImageIndex, dir: &Path) -> Result<PathBuf> {
    let path = path(dir, index.kind, index.embedder);
    let parent = path.parent().expect("index path has a parent");
    std::fs::create_dir_all(parent)?;
    let dim = index.embedder.dim();
    let schema = schema(dim);
    let e = &index.entries;
    let values = Float32Array::from(index.refs.data().to_vec());
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.image_id))),
            Arc::new(Int64Array::from_iter(e.iter().map(|x| x.brand_id))),
            Arc::new(Int64Array::from_iter(e.iter().map(|x| x.listing_id))),
            Arc::new(StringArray::from_iter_values(e.iter().map(|x| &x.source))),
            Arc::new(FixedSizeListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Float32, false)),
                dim as i32,
                Arc::new(values),
                None,
            )?),
            Arc::new(BinaryArray::from_iter(e.iter().map(|x| x.print.as_deref()))),
        ],
    )?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            EMBEDDER_KEY.to_string(),
            index.embedder.name().to_string(),
        )]))
        .build();
    let written = (|| -> Result<()> {
        let mut w = ArrowWriter::try_new(File::create(&tmp)?, schema, Some(props))?;
        w.write(&batch)?;
        w.into_inner()?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|_| path)
}

/// Reads an index written by [`write`]; `Ok(None)` when the file does
/// not exist.
pub fn read(
    dir: &Path,
    kind: ImageMatchKind,
    embedder: EmbedderKind,
) -> Result<Option<ImageIndex>> {
    let p = path(dir, kind, embedder);
    file_bytes(&p)?
        .map(|b| parse(&p, kind, embedder, Bytes::from(b)))
        .transpose()
}

/// Parses the bytes of the index file at `path`.
fn parse(
    path: &Path,
    kind: ImageMatchKind,
    embedder: EmbedderKind,
    bytes: Bytes,
) -> Result<ImageIndex> {
    let ctx = || format!("reading image index {}", path.display());
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).with_context(ctx)?;
    let recorded = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == EMBEDDER_KEY))
        .and_then(|k| k.value.clone());
    if recorded.as_deref() != Some(embedder.name()) {
        bail!(
            "image index {} was built with embedder {}, not {embedder}",
            path.display(),
            recorded.as_deref().unwrap_or("(unknown)")
        );
    }
    let mut index = ImageIndex::new(kind, embedder);
    for batch in builder.build().with_context(ctx)? {
        let batch = batch.with_context(ctx)?;
        let col = |name: &str| batch.column_by_name(name).cloned();
        let (Some(ids), Some(brands), Some(listings), Some(sources), Some(emb)) = (
            col("image_id"),
            col("brand_id"),
            col("listing_id"),
            col("source"),
            col("embedding"),
        ) else {
            bail!("image index {} lacks one of its columns", path.display());
        };
        let ids = ids
            .as_any()
            .downcast_ref::<StringArray>()
            .context("image_id type")?;
        let brands = brands
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("brand_id type")?;
        let listings = listings
            .as_any()
            .downcast_ref::<Int64Array>()
            .context("listing_id type")?;
        let sources = sources
            .as_any()
            .downcast_ref::<StringArray>()
            .context("source type")?;
        let emb = emb
            .as_any()
            .downcast_ref::<FixedSizeListArray>()
            .filter(|a| a.value_length() as usize == embedder.dim())
            .with_context(|| format!("embedding is not {} floats", embedder.dim()))?;
        anyhow::ensure!(
            emb.value_type() == DataType::Float32,
            "embedding values are not Float32"
        );
        // Indexes written before the second check have no prints.
        let prints = col("print");
        let prints = match &prints {
            Some(p) => Some(
                p.as_any()
                    .downcast_ref::<BinaryArray>()
                    .context("print type")?,
            ),
            None => None,
        };
        for i in 0..batch.num_rows() {
            let row = emb.value(i);
            let row = row
                .as_any()
                .downcast_ref::<Float32Array>()
                .expect("checked Float32");
            index.push(
                IndexEntry {
                    image_id: ids.value(i).to_string(),
                    brand_id: (!brands.is_null(i)).then(|| brands.value(i)),
                    listing_id: (!listings.is_null(i)).then(|| listings.value(i)),
                    source: sources.value(i).to_string(),
                    print: prints
                        .filter(|p| !p.is_null(i))
                        .map(|p| p.value(i).to_vec()),
                },
                row.values(),
            );
        }
    }
    if index.entries.iter().any(|e| e.print.is_none()) {
        tracing::warn!(
            "image index {} has entries without verification prints: their matches are ignored until `dajia kb` rebuilds it",
            path.display()
        );
    }
    Ok(index)
}
