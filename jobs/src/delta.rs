//! Output tables as Delta Lake tables (delta-rs). A run publishes each table
//! with a single commit that replaces the run's `dt` partition: readers see
//! the previous complete result or the new one, never a mix, and a killed run
//! leaves only unreferenced Parquet files that no reader of the table sees.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{col, lit};
use deltalake::protocol::SaveMode;
use deltalake::DeltaTable;

fn url_of(dir: &Path) -> Result<url::Url> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let abs = std::fs::canonicalize(dir)?;
    url::Url::from_directory_path(&abs)
        .map_err(|_| anyhow::anyhow!("cannot make a URL of {}", abs.display()))
}

/// Open a table, or an empty handle for one that does not exist yet.
pub async fn open(dir: &Path) -> Result<DeltaTable> {
    let url = url_of(dir)?;
    DeltaTable::try_from_url(url)
        .await
        .with_context(|| format!("opening Delta table {}", dir.display()))
}

/// Replace partition `dt` of the table at `dir` with the rows of `plan`, in
/// one commit. Returns the new table version.
pub async fn replace_partition(dir: &Path, plan: LogicalPlan, dt: &str) -> Result<i64> {
    let table = open(dir).await?;
    let exists = table.version().is_some();
    let mut write = table
        .write(vec![])
        .with_input_plan(plan)
        .with_save_mode(SaveMode::Overwrite)
        .with_partition_columns(["dt"])
        // delta-rs hands the Parquet writer 1024 rows at a time by default;
        // whole DataFusion batches are cheaper to encode.
        .with_write_batch_size(8192)
        .with_writer_properties(writer_properties());
    if exists {
        write = write.with_replace_where(col("dt").eq(lit(dt.to_string())));
    }
    let table = write
        .await
        .with_context(|| format!("writing Delta table {}", dir.display()))?;
    Ok(table.version().unwrap_or(0) as i64)
}

/// Snappy-compressed Parquet with page statistics on the scalar columns
/// only: nobody filters on reason details, and their statistics cost time.
fn writer_properties() -> parquet::file::properties::WriterProperties {
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::None);
    for c in [
        "listing_id",
        "seller_id",
        "score",
        "action",
        "brand_id",
        "model_version",
        "table_name",
        "file",
        "row_key",
        "reason",
    ] {
        b = b.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::Page);
    }
    b.build()
}

/// Register the Delta table at `dir` as `name` in `ctx` (committed data only).
pub async fn register(ctx: &SessionContext, name: &str, dir: &Path) -> Result<bool> {
    if !dir.join("_delta_log").is_dir() {
        return Ok(false);
    }
    let table = open(dir).await?;
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(name, provider)?;
    Ok(true)
}

/// The output tables under an output prefix.
pub fn output_dir(out: &Path, table: &str) -> PathBuf {
    out.join(table)
}
