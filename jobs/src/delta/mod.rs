//! Output tables as Delta Lake tables (delta-rs). A run publishes each table
//! with a single commit that replaces the run's `dt` partition: readers see
//! the previous complete result or the new one, never a mix, and a killed run
//! leaves only unreferenced Parquet files that no reader of the table sees.
//! A cluster run's parts, written by the executors, are published by
//! `publish`.

pub mod publish;
pub mod published;

use std::path::{Path, PathBuf};
use std::sync::Arc;

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

/// Commit metadata naming the run that made a commit (`dajia.run_id`, in
/// the table's history next to the operation).
pub fn commit_properties(run_id: &str) -> deltalake::kernel::transaction::CommitProperties {
    deltalake::kernel::transaction::CommitProperties::default()
        .with_metadata([("dajia.run_id".to_string(), serde_json::json!(run_id))])
}

/// Publish `columns` (in the contract's column order) as partition `dt` of
/// the contract table `table` under `out`, replacing what the date had:
/// the small tables a client assembles itself (`purchase_plan`, `leads`).
pub async fn replace_partition_with_columns(
    out: &Path,
    table: &str,
    columns: Vec<datafusion::arrow::array::ArrayRef>,
    dt: &str,
    run_id: &str,
) -> Result<i64> {
    let def =
        dajia_schemas::table(table).with_context(|| format!("{table} is not in the contract"))?;
    // The contract's fields without their metadata, as the writers expect.
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(
        def.schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_metadata(Default::default()))
            .collect::<Vec<_>>(),
    ));
    let batch = datafusion::arrow::array::RecordBatch::try_new(schema, columns)
        .with_context(|| format!("assembling {table}"))?;
    let local = SessionContext::new();
    let plan = local.read_batch(batch)?.into_optimized_plan()?;
    replace_partition(&output_dir(out, table), plan, dt, run_id, Some(&local))
        .await
        .with_context(|| format!("publishing {table}"))
}

/// Replace partition `dt` of the table at `dir` with the rows of `plan`, in
/// one commit naming `run_id`. Returns the new table version. `session`
/// runs the plan (its object stores serve the plan's inputs, e.g. an
/// `s3://` catalog); without one delta-rs uses its own.
pub async fn replace_partition(
    dir: &Path,
    plan: LogicalPlan,
    dt: &str,
    run_id: &str,
    session: Option<&SessionContext>,
) -> Result<i64> {
    let plan_schema = plan.schema().inner().clone();
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
        .with_writer_properties(writer_properties(plan_schema.as_ref()))
        .with_commit_properties(commit_properties(run_id))
        // Tables written before a column was added to the contract (e.g.
        // `run_id`) take it on; their older partitions read it as null.
        .with_schema_mode(deltalake::operations::write::SchemaMode::Merge);
    if exists {
        write = write.with_replace_where(col("dt").eq(lit(dt.to_string())));
    }
    if let Some(ctx) = session {
        // The caller's session (its object stores and functions) with
        // delta-rs's planner, which plans delta-rs's own write nodes.
        let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
            ctx.state(),
        )
        .with_query_planner(deltalake::delta_datafusion::planner::DeltaPlanner::new())
        .build();
        write = write.with_session_state(Arc::new(state));
    }
    let table = write
        .await
        .with_context(|| format!("writing Delta table {}", dir.display()))?;
    Ok(table.version().unwrap_or(0) as i64)
}

/// Snappy-compressed Parquet with page statistics on the top-level scalar
/// columns of `schema` only: readers skip files by ids, scores and dates;
/// nobody filters on nested values (reason details, evidence), and their
/// statistics cost time.
pub(crate) fn writer_properties(
    schema: &datafusion::arrow::datatypes::Schema,
) -> parquet::file::properties::WriterProperties {
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;
    let mut b = WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_statistics_enabled(EnabledStatistics::None);
    for f in schema
        .fields()
        .iter()
        .filter(|f| !f.data_type().is_nested())
    {
        b = b.set_column_statistics_enabled(
            ColumnPath::from(f.name().as_str()),
            EnabledStatistics::Page,
        );
    }
    b.build()
}

/// Register the Delta table at `dir` as `name` in `ctx`, at its published
/// version (see [`published`]).
pub async fn register(ctx: &SessionContext, name: &str, dir: &Path) -> Result<bool> {
    if !dir.join("_delta_log").is_dir() {
        return Ok(false);
    }
    let Some(table) = published::open(dir).await? else {
        return Ok(false);
    };
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    ctx.register_table(name, provider)?;
    Ok(true)
}

/// Names of every output table of the contract (`risk_scores`, `rejects`,
/// `seller_clusters`, `leads`, ...).
pub fn output_tables() -> Vec<&'static str> {
    dajia_schemas::tables()
        .into_iter()
        .filter(|t| t.kind == dajia_schemas::TableKind::Output)
        .map(|t| t.name)
        .collect()
}

/// Register the Delta table at `dir` as `name` the way a session reads
/// it: file-backed on a cluster ([`register_committed_files`]), Delta's own
/// provider in one process ([`register`]). False when it does not exist.
pub async fn register_for(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
    cluster: bool,
) -> Result<bool> {
    if cluster {
        register_committed_files(ctx, name, dir).await
    } else {
        register(ctx, name, dir).await
    }
}

/// The output tables under an output prefix.
pub fn output_dir(out: &Path, table: &str) -> PathBuf {
    out.join(table)
}

/// Register the committed files of the Delta table at `dir` as `name`, for
/// sessions whose tables must be file-backed (a cluster's: Delta's own table
/// provider does not travel in a distributed plan). One Parquet table per
/// `dt` partition, of exactly the files the published version references
/// (see [`published`]), in a view that adds `dt` back as a column.
pub async fn register_committed_files(
    ctx: &SessionContext,
    name: &str,
    dir: &Path,
) -> Result<bool> {
    if !dir.join("_delta_log").is_dir() {
        return Ok(false);
    }
    let Some(table) = published::open(dir).await? else {
        return Ok(false);
    };
    let mut by_dt: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for f in table.snapshot()?.log_data() {
        let dt = f
            .partition_values_map()
            .get("dt")
            .cloned()
            .flatten()
            .unwrap_or_default();
        by_dt
            .entry(dt)
            .or_default()
            .push(dir.join(f.path().as_ref()));
    }
    if by_dt.is_empty() {
        return Ok(false);
    }
    let mut parts = Vec::new();
    for (i, (dt, files)) in by_dt.iter().enumerate() {
        let part = format!("{name}__dt{i}");
        crate::catalog::register_files(ctx, &part, files).await?;
        parts.push(format!(
            "SELECT *, '{}' AS dt FROM {part}",
            dt.replace('\'', "''")
        ));
    }
    ctx.sql(&format!(
        "CREATE VIEW {name} AS {}",
        parts.join(" UNION ALL ")
    ))
    .await?
    .collect()
    .await?;
    Ok(true)
}
