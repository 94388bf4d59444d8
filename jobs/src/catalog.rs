//! A catalog: one folder of Parquet files per table. Opening one lists the
//! files, reads each footer, validates its schema against the contract and
//! registers the tables in a DataFusion session.
//!
//! A catalog is a local folder (`/path`, `file:///path`) or an object-store
//! prefix (`s3://bucket/prefix`, see [`crate::store`]); the files of an S3
//! catalog are kept as their `s3://` URLs.
//!
//! A file whose footer cannot be read is *corrupt*: it is set aside (the scan
//! writes it to `rejects/`) and the rest of the table is used. A file whose
//! schema breaks the contract is an error: the catalog is misconfigured and
//! a run on it would publish wrong results.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::SessionContext;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use std::sync::Arc;

/// One table of a catalog: its readable files and the ones set aside.
#[derive(Debug, Clone)]
pub struct TableFiles {
    pub name: String,
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub corrupt: Vec<(PathBuf, String)>,
    /// The table's schema over all its files ([`merged_schema`]).
    pub schema: Option<SchemaRef>,
}

/// A table's schema over all its (valid) files, not the first one's: every
/// contract column that any file has, with the contract's type (files with
/// another accepted type, e.g. `Utf8View`, are cast) and nullable, so a file
/// without it reads nulls for its own rows only; then the columns outside
/// the contract, as found, when every file that has one agrees on its type
/// (one that does not is left out, with a warning: nothing reads it).
pub fn merged_schema(def: &dajia_schemas::TableDef, schemas: &[SchemaRef]) -> SchemaRef {
    use datafusion::arrow::datatypes::{Field, Schema};
    let contract = def.schema();
    let mut fields: Vec<Field> = contract
        .fields()
        .iter()
        .filter(|c| schemas.iter().any(|s| s.field_with_name(c.name()).is_ok()))
        .map(|c| c.as_ref().clone().with_nullable(true))
        .collect();
    let mut extra: Vec<(Field, bool)> = Vec::new();
    for s in schemas {
        for f in s.fields() {
            if contract.field_with_name(f.name()).is_ok() {
                continue;
            }
            match extra.iter_mut().find(|(e, _)| e.name() == f.name()) {
                None => extra.push((f.as_ref().clone().with_nullable(true), true)),
                Some((e, agree)) => *agree &= e.data_type() == f.data_type(),
            }
        }
    }
    for (f, agree) in extra {
        if agree {
            fields.push(f);
        } else {
            tracing::warn!(
                "table `{}`: column `{}` (outside the contract) has different types in different files; left out",
                def.name,
                f.name()
            );
        }
    }
    Arc::new(Schema::new(fields))
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub root: PathBuf,
    pub tables: Vec<TableFiles>,
}

/// A local path from a catalog URI (`/path`, `./path` or `file:///path`).
pub fn local_path(uri: &str) -> Result<PathBuf> {
    if let Some(rest) = uri.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        bail!(
            "`{uri}`: `{scheme}://` is not supported here (use a local path or file://; catalogs may also be s3://)"
        );
    }
    Ok(PathBuf::from(uri))
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if name.ends_with(".parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The folder of `table` for a snapshot date: `table/dt=DATE` when the table
/// is hive-partitioned by date, the folder itself otherwise.
fn table_dir(root: &Path, table: &str, date: Option<NaiveDate>) -> Result<Option<PathBuf>> {
    let dir = root.join(table);
    if !dir.is_dir() {
        return Ok(None);
    }
    let partitioned = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("dt="));
    if partitioned {
        let Some(d) = date else { return Ok(Some(dir)) };
        let p = dir.join(format!("dt={d}"));
        if !p.is_dir() {
            bail!(
                "table `{table}` is partitioned by dt but has no partition dt={d} under {}",
                dir.display()
            );
        }
        return Ok(Some(p));
    }
    Ok(Some(dir))
}

/// How dajia reads every catalog footer: Arrow types from the Parquet
/// schema, not from the `ARROW:schema` metadata a writer may embed (as
/// DataFusion reads files: `skip_metadata`). Fuzzing found that a damaged
/// embedded schema makes arrow-ipc 59 panic (`fuzz/parquet_salvage`,
/// "Int type with bit width of 50331712 ... not supported").
pub fn reader_options() -> ArrowReaderOptions {
    ArrowReaderOptions::new().with_skip_arrow_metadata(true)
}

/// A reader of the Parquet file `f`: footer parsed with [`reader_options`],
/// and a panic while parsing it (a parser bug met by hostile bytes) turned
/// into an error, so that the file is rejected and the night goes on.
pub fn parquet_reader(f: File) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let parsed = std::panic::catch_unwind(|| {
        ParquetRecordBatchReaderBuilder::try_new_with_options(f, reader_options())
    });
    match parsed {
        Ok(r) => Ok(r?),
        Err(p) => bail!("the footer parser panicked: {}", panic_message(&p)),
    }
}

pub use dajia_kernels::image::decode::panic_message;

/// Read a file's footer and schema, or say why it cannot be read.
fn footer(path: &Path) -> std::result::Result<(SchemaRef, u64), String> {
    let f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let b = parquet_reader(f).map_err(|e| format!("not a readable Parquet file: {e:#}"))?;
    Ok((
        b.schema().clone(),
        b.metadata().file_metadata().num_rows() as u64,
    ))
}

/// Whether a catalog file is an object-store URL rather than a local path.
pub fn is_remote_file(f: &Path) -> bool {
    f.to_str().is_some_and(crate::store::is_s3)
}

impl Catalog {
    /// Open a local or `s3://` catalog.
    pub async fn open_any(uri: &str, date: Option<NaiveDate>) -> Result<Catalog> {
        if crate::store::is_s3(uri) {
            Self::open_s3(uri, date).await
        } else {
            Self::open(uri, date)
        }
    }

    /// Open the catalog under an `s3://bucket/prefix`: list each table's
    /// objects, read each footer (a few KB per file) and validate it, as for a
    /// local folder.
    async fn open_s3(uri: &str, date: Option<NaiveDate>) -> Result<Catalog> {
        use deltalake::logstore::parquet_reader::ParquetObjectReader;
        use futures::{FutureExt, TryStreamExt};
        use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;

        let (bucket, prefix) = crate::store::split_s3(uri)?;
        let store = crate::store::s3_store(&bucket)?;
        let mut tables = Vec::new();
        let mut any = false;
        for def in dajia_schemas::tables()
            .into_iter()
            .filter(|t| t.kind == dajia_schemas::TableKind::Input)
        {
            let table_prefix = object_store::path::Path::from(if prefix.is_empty() {
                def.name.to_string()
            } else {
                format!("{prefix}/{}", def.name)
            });
            let objects: Vec<object_store::ObjectMeta> = store
                .list(Some(&table_prefix))
                .try_collect()
                .await
                .with_context(|| format!("listing {bucket}/{table_prefix}"))?;
            let rel = |o: &object_store::ObjectMeta| -> Vec<String> {
                o.location
                    .prefix_match(&table_prefix)
                    .map(|p| p.map(|x| x.as_ref().to_string()).collect())
                    .unwrap_or_default()
            };
            let mut objects: Vec<_> = objects
                .into_iter()
                .filter(|o| {
                    let parts = rel(o);
                    o.location.as_ref().ends_with(".parquet")
                        && !parts
                            .iter()
                            .any(|p| p.starts_with('.') || p.starts_with('_'))
                })
                .collect();
            if objects.is_empty() {
                continue;
            }
            any = true;
            // Hive-partitioned by date: only the snapshot's partition.
            if objects.iter().any(|o| rel(o)[0].starts_with("dt=")) {
                if let Some(d) = date {
                    let want = format!("dt={d}");
                    objects.retain(|o| rel(o)[0] == want);
                    if objects.is_empty() {
                        bail!("table `{}` is partitioned by dt but has no partition {want} under {uri}/{}", def.name, def.name);
                    }
                }
            }
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            let mut t = TableFiles {
                name: def.name.to_string(),
                files: vec![],
                rows: 0,
                corrupt: vec![],
                schema: None,
            };
            let mut schemas = Vec::new();
            for o in objects {
                let file = PathBuf::from(format!(
                    "{}/{}",
                    bucket.as_str().trim_end_matches('/'),
                    o.location
                ));
                let reader = ParquetObjectReader::new(store.clone(), o.location.clone())
                    .with_file_size(o.size);
                let parsed = std::panic::AssertUnwindSafe(
                    ParquetRecordBatchStreamBuilder::new_with_options(reader, reader_options()),
                )
                .catch_unwind()
                .await
                .unwrap_or_else(|p| {
                    Err(parquet::errors::ParquetError::General(format!(
                        "the footer parser panicked: {}",
                        panic_message(&p)
                    )))
                });
                match parsed {
                    Err(e) => t
                        .corrupt
                        .push((file, format!("not a readable Parquet file: {e}"))),
                    Ok(b) => {
                        let errs = dajia_schemas::validate_schema(
                            &def,
                            &file.display().to_string(),
                            b.schema(),
                        );
                        if let Some(first) = errs.first() {
                            bail!("{first}");
                        }
                        t.rows += b.metadata().file_metadata().num_rows() as u64;
                        schemas.push(b.schema().clone());
                        t.files.push(file);
                    }
                }
            }
            t.schema = Some(merged_schema(&def, &schemas));
            tables.push(t);
        }
        if !any {
            bail!("catalog {uri} has no Parquet files under any table prefix (listings/, sellers/, brands/, ...)");
        }
        Ok(Catalog {
            root: PathBuf::from(uri),
            tables,
        })
    }

    /// Open the catalog at `uri`, validating every file of every known table.
    pub fn open(uri: &str, date: Option<NaiveDate>) -> Result<Catalog> {
        let root = local_path(uri)?;
        if !root.is_dir() {
            bail!("catalog {} is not a directory", root.display());
        }
        let mut tables = Vec::new();
        for def in dajia_schemas::tables()
            .into_iter()
            .filter(|t| t.kind == dajia_schemas::TableKind::Input)
        {
            let Some(dir) = table_dir(&root, def.name, date)? else {
                continue;
            };
            let mut t = TableFiles {
                name: def.name.to_string(),
                files: vec![],
                rows: 0,
                corrupt: vec![],
                schema: None,
            };
            let mut schemas = Vec::new();
            for file in parquet_files(&dir)? {
                match footer(&file) {
                    Err(reason) => t.corrupt.push((file, reason)),
                    Ok((schema, rows)) => {
                        let errs = dajia_schemas::validate_schema(
                            &def,
                            &file.display().to_string(),
                            &schema,
                        );
                        if let Some(first) = errs.first() {
                            let more = if errs.len() > 1 {
                                format!(" (and {} more problems)", errs.len() - 1)
                            } else {
                                String::new()
                            };
                            bail!("{first}{more}");
                        }
                        t.rows += rows;
                        schemas.push(schema);
                        t.files.push(file);
                    }
                }
            }
            t.schema = Some(merged_schema(&def, &schemas));
            tables.push(t);
        }
        Ok(Catalog { root, tables })
    }

    pub fn table(&self, name: &str) -> Option<&TableFiles> {
        self.tables
            .iter()
            .find(|t| t.name == name && !t.files.is_empty())
    }

    /// Forget every table but `names` (a job that reads only some).
    pub fn keep(&mut self, names: &[&str]) {
        self.tables.retain(|t| names.contains(&t.name.as_str()));
    }

    /// Fail unless the tables the scan needs are present.
    pub fn require(&self, names: &[&str]) -> Result<()> {
        for n in names {
            if self.table(n).is_none() {
                bail!(
                    "catalog {} has no readable `{n}` table (expected Parquet files under {}/{n}/)",
                    self.root.display(),
                    self.root.display()
                );
            }
        }
        Ok(())
    }

    /// Register every table with readable files in `ctx`, by name.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        crate::store::register(ctx, &self.root.to_string_lossy())?;
        for t in self.tables.iter().filter(|t| !t.files.is_empty()) {
            register_files_as(ctx, &t.name, &t.files, t.schema.clone()).await?;
        }
        Ok(())
    }
}

/// Register an explicit list of Parquet files, all written alike (by dajia),
/// as one table; its schema is read from the first.
pub async fn register_files(ctx: &SessionContext, name: &str, files: &[PathBuf]) -> Result<()> {
    register_files_as(ctx, name, files, None).await
}

/// Register Parquet files as one table with `schema` (the catalog's merged
/// schema; files lacking a column read it as null), or the first file's.
pub async fn register_files_as(
    ctx: &SessionContext,
    name: &str,
    files: &[PathBuf],
    schema: Option<SchemaRef>,
) -> Result<()> {
    let urls = files
        .iter()
        .map(|f| {
            if is_remote_file(f) {
                return ListingTableUrl::parse(f.to_string_lossy()).map_err(anyhow::Error::from);
            }
            let abs =
                std::fs::canonicalize(f).with_context(|| format!("resolving {}", f.display()))?;
            ListingTableUrl::parse(abs.to_string_lossy()).map_err(anyhow::Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    // A listing table reads all its files through one object store (its
    // first path's): files in several stores (an S3 catalog's objects and
    // the rows salvaged from one of them to a local folder) are one table
    // per store, joined by a view.
    let mut groups: Vec<(String, Vec<ListingTableUrl>)> = Vec::new();
    for u in urls {
        let store = u.object_store().as_str().to_string();
        match groups.iter_mut().find(|(s, _)| *s == store) {
            Some((_, g)) => g.push(u),
            None => groups.push((store, vec![u])),
        }
    }
    let state = ctx.state();
    let table = |urls: Vec<ListingTableUrl>, schema: Option<SchemaRef>| {
        let state = &state;
        async move {
            let format =
                ParquetFormat::default().with_options(state.table_options().parquet.clone());
            let opts = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(opts);
            let config = match schema {
                Some(s) => config.with_schema(s),
                None => config.infer_schema(state).await?,
            };
            anyhow::Ok(ListingTable::try_new(config)?)
        }
    };
    if groups.len() <= 1 {
        let urls = groups.pop().map(|(_, g)| g).unwrap_or_default();
        ctx.register_table(name, Arc::new(table(urls, schema).await?))?;
        return Ok(());
    }
    let mut schema = schema;
    let mut parts = Vec::new();
    for (k, (_, urls)) in groups.into_iter().enumerate() {
        let t = table(urls, schema.clone()).await?;
        schema.get_or_insert_with(|| datafusion::catalog::TableProvider::schema(&t));
        let part = format!("{name}__store{k}");
        ctx.deregister_table(part.as_str())?;
        ctx.register_table(part.as_str(), Arc::new(t))?;
        parts.push(format!("SELECT * FROM \"{part}\""));
    }
    let view = ctx.sql(&parts.join(" UNION ALL ")).await?.into_view();
    ctx.register_table(name, view)?;
    Ok(())
}
