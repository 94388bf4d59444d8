//! Intermediate tables of an iterative job, materialised so that round k's
//! plan starts from a table instead of nesting every earlier round's plan
//! (which would grow without bound). On a cluster each executor writes the
//! partitions it computes as Parquet (`cluster::write_parts`), into a folder
//! every node can read. In one process they are kept in memory up to
//! [`IN_MEMORY_BYTES`] (all held checkpoints together) and written to
//! Parquet beyond it: at a catalog's usual size every round then costs its
//! query alone, not a write, a listing and a read of files (the seller
//! linking of a 1M-listing scan is twenty such rounds), and at 10 million
//! sellers memory stays bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// Bytes of checkpoints one process keeps in memory at once ([`batch_bytes`]);
/// a checkpoint that would pass it is written to Parquet instead. While a
/// checkpoint replacing one of the same name is computed (a round of
/// connected components reads the last), both are held.
pub const IN_MEMORY_BYTES: usize = 512 << 20;

/// Where a job's checkpoints go, and how they are written.
pub struct Checkpoints {
    dir: PathBuf,
    cluster: bool,
    written: usize,
    /// Bytes of each checkpoint now held in memory, by table name (a
    /// checkpoint saved again under its name replaces the old one).
    held: HashMap<String, usize>,
    /// [`IN_MEMORY_BYTES`] unless set by [`Self::with_memory_budget`].
    memory_budget: usize,
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
            held: HashMap::new(),
            memory_budget: IN_MEMORY_BYTES,
        })
    }

    /// Keep at most `bytes` of checkpoints in memory (0: write every one).
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }

    /// Materialise `df` and register it as table `name` (replacing any
    /// table of that name). Returns the rows.
    pub async fn save(&mut self, ctx: &SessionContext, name: &str, df: DataFrame) -> Result<u64> {
        self.written += 1;
        let dir = self.dir.join(format!("{:03}-{name}", self.written));
        if !self.cluster {
            let stream = df
                .execute_stream()
                .await
                .with_context(|| format!("computing checkpoint {name}"))?;
            let budget = self.room_for(name);
            return self.keep_or_write(ctx, name, stream, &dir, budget).await;
        }
        std::fs::create_dir_all(&dir)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let parts = crate::cluster::write_parts::write(df, &dir)
            .await
            .with_context(|| format!("writing checkpoint {name} on the cluster"))?;
        let rows = parts.iter().map(|(_, n)| n).sum();
        let files: Vec<PathBuf> = parts.into_iter().map(|(p, _)| p).collect();
        ctx.deregister_table(name)?;
        if files.is_empty() {
            ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            crate::catalog::register_files_as(ctx, name, &files, Some(schema)).await?;
        }
        Ok(rows)
    }

    /// Register `stream`'s batches as table `name`: in memory while they
    /// stay within `budget` bytes, else (those read so far, then the rest as
    /// they come) as one Parquet file under `dir`.
    async fn keep_or_write(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        mut stream: SendableRecordBatchStream,
        dir: &Path,
        budget: usize,
    ) -> Result<u64> {
        let schema = stream.schema();
        let (mut batches, mut bytes, mut rows) = (Vec::new(), 0usize, 0u64);
        while let Some(b) = stream.next().await {
            let b = b.with_context(|| format!("computing checkpoint {name}"))?;
            rows += b.num_rows() as u64;
            bytes += batch_bytes(&b);
            batches.push(b);
            if bytes > budget {
                break;
            }
        }
        // The table is replaced only once its successor is built: a failure
        // leaves the earlier one registered.
        if bytes <= budget {
            // Spread over the session's partitions, as files would be.
            let n = ctx.state().config().target_partitions().max(1);
            let mut parts = vec![Vec::new(); n];
            for (i, b) in batches.into_iter().enumerate() {
                parts[i % n].push(b);
            }
            let table = MemTable::try_new(schema, parts)?;
            ctx.deregister_table(name)?;
            ctx.register_table(name, Arc::new(table))?;
            self.held.insert(name.to_string(), bytes);
            return Ok(rows);
        }
        std::fs::create_dir_all(dir)?;
        let path = dir.join("part-0.parquet");
        let read = batches.into_iter().map(Ok);
        let rest = futures::stream::iter(read).chain(stream);
        let all = Box::pin(RecordBatchStreamAdapter::new(schema.clone(), rest));
        // `write_part` counts every row, the ones read above included, and
        // writes no file when there are none.
        let rows = crate::cluster::write_parts::write_part(all, &path, None)
            .await
            .with_context(|| format!("writing checkpoint {name}"))? as u64;
        ctx.deregister_table(name)?;
        self.held.remove(name);
        if rows == 0 {
            ctx.register_table(name, Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
        } else {
            crate::catalog::register_files_as(ctx, name, &[path], Some(schema)).await?;
        }
        Ok(rows)
    }

    /// Register `batch` (computed in this process) as table `name`, as
    /// [`Self::save`] does: in memory within the budget, else as one Parquet
    /// file; always a file on a cluster, whose executors read it.
    pub async fn save_batch(
        &mut self,
        ctx: &SessionContext,
        name: &str,
        batch: RecordBatch,
    ) -> Result<u64> {
        self.written += 1;
        let dir = self.dir.join(format!("{:03}-{name}", self.written));
        let budget = if self.cluster { 0 } else { self.room_for(name) };
        let schema = batch.schema();
        let stream = futures::stream::iter([Ok(batch)]);
        let stream = Box::pin(RecordBatchStreamAdapter::new(schema, stream));
        self.keep_or_write(ctx, name, stream, &dir, budget).await
    }

    /// Bytes of the memory budget a checkpoint `name` may take: what the
    /// others hold is taken (an earlier one of that name it replaces).
    fn room_for(&self, name: &str) -> usize {
        let others: usize = self
            .held
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(_, b)| b)
            .sum();
        self.memory_budget.saturating_sub(others)
    }

    /// Whether the checkpoints are written for a cluster.
    pub fn on_cluster(&self) -> bool {
        self.cluster
    }

    /// Delete every checkpoint.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// The bytes of `b`'s data. Aggregates hand out slices of one large batch,
/// and `get_array_memory_size` counts the whole buffer under every slice:
/// summed over the slices that grows with the square of the rows.
fn batch_bytes(b: &RecordBatch) -> usize {
    b.columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}
