//! Intermediate tables of an iterative job written out as Parquet and read
//! back, so that round k's plan starts from files instead of nesting every
//! earlier round's plan (which would grow without bound). In one process
//! DataFusion's own writer writes them; on a cluster each executor writes the
//! partitions it computes (`cluster::write_parts`), into a folder every node
//! can read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::dataframe::{DataFrame, DataFrameWriteOptions};
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::parquet::arrow::ArrowWriter;

/// Where a job's checkpoints go, and how they are written.
pub struct Checkpoints {
    dir: PathBuf,
    cluster: bool,
    written: usize,
}

impl Checkpoints {
    /// Checkpoints under `dir` (created; removed by [`Self::remove`]).
    /// `cluster`: the session is a Ballista client.
    pub fn new(dir: &Path, cluster: bool) -> Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Checkpoints {
            dir: std::fs::canonicalize(dir)?,
            cluster,
            written: 0,
        })
    }

    /// Write `df` and register what was written as table `name` (replacing
    /// any table of that name). Returns the rows written.
    pub async fn save(&mut self, ctx: &SessionContext, name: &str, df: DataFrame) -> Result<u64> {
        self.written += 1;
        let dir = self.dir.join(format!("{:03}-{name}", self.written));
        std::fs::create_dir_all(&dir)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let (files, rows) = if self.cluster {
            let parts = crate::cluster::write_parts::write(df, &dir)
                .await
                .with_context(|| format!("writing checkpoint {name} on the cluster"))?;
            let rows = parts.iter().map(|(_, n)| n).sum();
            (parts.into_iter().map(|(p, _)| p).collect(), rows)
        } else {
            let path = format!("{}/", dir.display());
            let done = df
                .write_parquet(&path, DataFrameWriteOptions::new(), None)
                .await
                .with_context(|| format!("writing checkpoint {name}"))?;
            // DataFusion's writers return one row: the count (UInt64).
            let rows = done
                .iter()
                .filter(|b| b.num_columns() > 0)
                .flat_map(|b| {
                    b.column(0)
                        .as_primitive_opt::<UInt64Type>()
                        .map(|c| c.values().to_vec())
                        .unwrap_or_default()
                })
                .sum();
            (parquet_files(&dir)?, rows)
        };
        ctx.deregister_table(name)?;
        if files.is_empty() {
            ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            crate::catalog::register_files_as(ctx, name, &files, Some(schema)).await?;
        }
        Ok(rows)
    }

    /// Write `batch` (computed in this process) as one Parquet file and
    /// register it as table `name`.
    pub async fn save_batch(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        batch: RecordBatch,
    ) -> Result<u64> {
        self.written += 1;
        let dir = self.dir.join(format!("{:03}-{name}", self.written));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("part-0.parquet");
        let mut w = ArrowWriter::try_new(std::fs::File::create(&path)?, batch.schema(), None)?;
        w.write(&batch)?;
        w.close()?;
        ctx.deregister_table(name)?;
        crate::catalog::register_files_as(ctx, name, &[path], Some(batch.schema())).await?;
        Ok(batch.num_rows() as u64)
    }

    /// Delete every checkpoint.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("could not remove {}: {e}", self.dir.display());
        }
    }
}

fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}
