//! A catalog: one folder of Parquet files per table. Opening one lists the
//! files, reads each footer, validates its schema against the contract and
//! registers the tables in a DataFusion session.
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
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;

/// One table of a catalog: its readable files and the ones set aside.
#[derive(Debug, Clone)]
pub struct TableFiles {
    pub name: String,
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub corrupt: Vec<(PathBuf, String)>,
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
            "catalog URI scheme `{scheme}://` is not supported yet (use a local path or file://)"
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

/// Read a file's footer and schema, or say why it cannot be read.
fn footer(path: &Path) -> std::result::Result<(SchemaRef, u64), String> {
    let f = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let b = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    Ok((
        b.schema().clone(),
        b.metadata().file_metadata().num_rows() as u64,
    ))
}

impl Catalog {
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
            };
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
                        t.files.push(file);
                    }
                }
            }
            tables.push(t);
        }
        Ok(Catalog { root, tables })
    }

    pub fn table(&self, name: &str) -> Option<&TableFiles> {
        self.tables
            .iter()
            .find(|t| t.name == name && !t.files.is_empty())
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
        for t in self.tables.iter().filter(|t| !t.files.is_empty()) {
            register_files(ctx, &t.name, &t.files).await?;
        }
        Ok(())
    }
}

/// Register an explicit list of Parquet files as one table.
pub async fn register_files(ctx: &SessionContext, name: &str, files: &[PathBuf]) -> Result<()> {
    let urls = files
        .iter()
        .map(|f| {
            let abs =
                std::fs::canonicalize(f).with_context(|| format!("resolving {}", f.display()))?;
            ListingTableUrl::parse(abs.to_string_lossy()).map_err(anyhow::Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    let state = ctx.state();
    let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
    let opts = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(opts)
        .infer_schema(&state)
        .await?;
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}
