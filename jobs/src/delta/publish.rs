//! Outputs of a cluster run: the executors write Parquet parts into the
//! run's staging folder (outside the table, so no reader of the table sees
//! them), then this process moves them into the table and publishes them with
//! one Delta Lake commit that replaces the run's `dt` partition. A run that
//! fails or is killed before that commit publishes nothing: readers keep the
//! previous version, and the staging folder is removed by the scan (or, after
//! a kill, by the next run's clean-up of `_staging`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use datafusion::dataframe::DataFrame;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::{CommitBuilder, TableReference};
use deltalake::kernel::{Action, Add, StructType};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::logstore::parquet_reader::ParquetObjectReader;
use deltalake::parquet::arrow::async_reader::AsyncFileReader;
use deltalake::parquet::file::metadata::ParquetMetaData;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{FilterOp, FilterValue, ObjectStore};
use futures::TryStreamExt;
use serde_json::{json, Map, Value};

/// What published `risk_scores` rows hold: counts by action and by reason
/// code (the scan's summary; also tallied as rows stream, in one process).
#[derive(Default, Debug, Clone)]
pub struct Tally {
    pub actions: HashMap<String, u64>,
    pub reasons: HashMap<String, u64>,
}

/// What a distributed write published.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: i64,
    /// Counts by action and reason code of the published rows (for a
    /// table with `action` and `reasons` columns, `risk_scores`).
    pub tally: Option<Tally>,
    pub files: usize,
    pub rows: u64,
}

/// What must hold of the written parts before they are published.
#[derive(Default)]
pub struct Expect {
    /// Exactly this many rows (e.g. the valid listings).
    pub rows: Option<u64>,
    /// No value of this column twice (e.g. `listing_id`), by a query over
    /// the parts.
    pub unique: Option<&'static str>,
    /// A check by whoever saw the rows written (in one process, the scan
    /// counts each listing as it writes it), run after the writing.
    pub counted: Option<Box<dyn FnOnce() -> Result<()> + Send>>,
}

/// Who computes and writes the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// The cluster's tasks (the session is a Ballista client's).
    Cluster,
    /// This process, one part per partition of the query; the rows are not
    /// tallied here (the scan's counting function tallies them as they
    /// stream).
    Here,
}

/// Write `df` (whose last column is `dt`) into `staging`, part by part where
/// the rows are computed, check the parts meet `expect`, then replace
/// partition `dt` of the Delta table at `table_dir` with those parts in one
/// commit naming `run_id`. Nothing is published when the check fails.
pub async fn replace_partition(
    df: DataFrame,
    table_dir: &Path,
    staging: &Path,
    dt: &str,
    run_id: &str,
    expect: Expect,
    writers: Writers,
) -> Result<Published> {
    let schema: Schema = df.schema().as_arrow().clone();
    let ctx = datafusion::prelude::SessionContext::new_with_state(df.clone().into_parts().0);
    if staging.exists() {
        std::fs::remove_dir_all(staging)?;
    }
    std::fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let staging_abs = std::fs::canonicalize(staging)?;
    // Each task writes the partition it computes (no single writer); the
    // parts to publish are exactly those the job returned.
    let rows_df = df.drop_columns(&["dt"])?;
    let written = match writers {
        Writers::Cluster => crate::cluster::write_parts::write(rows_df, &staging_abs)
            .await
            .context("writing the rows on the cluster")?,
        Writers::Here => crate::cluster::write_parts::write_here(rows_df, &staging_abs)
            .await
            .context("writing the rows")?,
    };
    let rows = written.iter().map(|(_, n)| n).sum();
    let mut parts: Vec<PathBuf> = written.into_iter().map(|(p, _)| p).collect();
    parts.sort();
    check(&ctx, &parts, rows, expect).await?;
    let scored =
        schema.field_with_name("action").is_ok() && schema.field_with_name("reasons").is_ok();
    let tally = if scored && writers == Writers::Cluster {
        Some(tally_of(&parts).await?)
    } else {
        None
    };

    let version = publish_parts(table_dir, &schema, dt, &parts, run_id).await?;
    Ok(Published {
        version,
        tally,
        files: parts.len(),
        rows,
    })
}

/// Move `parts` (Parquet files without a `dt` column) into the table at
/// `table_dir` and replace partition `dt` with them in one commit naming
/// `run_id`. Returns the version.
async fn publish_parts(
    table_dir: &Path,
    schema: &Schema,
    dt: &str,
    parts: &[PathBuf],
    run_id: &str,
) -> Result<i64> {
    // Unique names per run: a retried commit never overwrites a file that
    // an earlier version of the table references.
    std::fs::create_dir_all(table_dir.join(format!("dt={dt}")))?;
    let mut rels = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        let rel = format!("dt={dt}/part-{k:05}-{run_id}.parquet");
        std::fs::rename(part, table_dir.join(&rel))
            .with_context(|| format!("moving {} into the table", part.display()))?;
        rels.push(rel);
    }
    match commit_replace_partition(table_dir, schema, dt, &rels, run_id).await {
        Ok(version) => Ok(version),
        // The commit may be durable though a step after it failed (e.g.
        // delta-rs's checkpoint at every 100th version): its files are then
        // the table's, and deleting them would break every reader.
        Err(e) => match referencing_version(table_dir, &rels).await {
            Ok(Some(version)) => {
                tracing::warn!(
                    "{}: version {version} is committed, but a step after the commit failed: {e:#}",
                    table_dir.display()
                );
                Ok(version)
            }
            Ok(None) => {
                // Unreferenced: do not leave them for readers that list
                // folders instead of reading the log.
                for rel in &rels {
                    let _ = std::fs::remove_file(table_dir.join(rel));
                }
                Err(e)
            }
            // Cannot tell: keep them (an orphan costs space, `dajia vacuum`
            // removes it; a deleted referenced file loses data).
            Err(why) => Err(e.context(format!(
                "the commit failed and whether it is durable could not be read ({why:#}); its files are kept"
            ))),
        },
    }
}

/// The latest version of the table when it references the first of `rels`
/// (all of a commit's files are in it or none are).
async fn referencing_version(table_dir: &Path, rels: &[String]) -> Result<Option<i64>> {
    let Some(first) = rels.first() else {
        return Ok(None);
    };
    let table = crate::delta::open(table_dir).await?;
    let Some(version) = table.version() else {
        return Ok(None);
    };
    let found = table
        .snapshot()?
        .log_data()
        .into_iter()
        .any(|f| f.path().as_ref() == first.as_str());
    Ok(found.then_some(version as i64))
}

/// Fail, publishing nothing, unless the written parts hold the expected
/// rows: a retried task that wrote twice, or a join that multiplied rows,
/// stops here. The uniqueness check runs on the cluster (over the parts,
/// which every node can read).
async fn check(
    ctx: &datafusion::prelude::SessionContext,
    parts: &[PathBuf],
    rows: u64,
    expect: Expect,
) -> Result<()> {
    if let Some(want) = expect.rows {
        anyhow::ensure!(
            rows == want,
            "{rows} rows were written where {want} were expected; publishing nothing"
        );
    }
    if let Some(counted) = expect.counted {
        counted()?;
    }
    let (Some(col), false) = (expect.unique, parts.is_empty()) else {
        return Ok(());
    };
    let name = "dajia_written_parts";
    crate::catalog::register_files(ctx, name, parts).await?;
    let sql = format!("SELECT count({col}) - count(DISTINCT {col}) FROM {name}");
    // Deregistered whatever happens: the session is the run's.
    let b = crate::session::counts(ctx, &sql).await;
    ctx.deregister_table(name)?;
    let dups = b?[0];
    anyhow::ensure!(
        dups == 0,
        "{dups} rows repeat a `{col}` already written; publishing nothing"
    );
    Ok(())
}

/// Counts by action and by reason code of the rows in `parts`.
async fn tally_of(parts: &[PathBuf]) -> Result<Tally> {
    let mut t = Tally::default();
    if parts.is_empty() {
        return Ok(t);
    }
    let ctx = datafusion::prelude::SessionContext::new();
    crate::catalog::register_files(&ctx, "parts", parts).await?;
    let count = |b: &RecordBatch, into: &mut HashMap<String, u64>| {
        let k = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).expect("to Utf8");
        let n = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if !k.is_null(i) {
                let key = k.as_string::<i32>().value(i).to_string();
                *into.entry(key).or_default() += n.value(i) as u64;
            }
        }
    };
    for b in ctx
        .sql("SELECT action, count(*) FROM parts GROUP BY action")
        .await?
        .collect()
        .await?
    {
        count(&b, &mut t.actions);
    }
    for b in ctx
        .sql("SELECT r['code'], count(*) FROM (SELECT unnest(reasons) AS r FROM parts) GROUP BY 1")
        .await?
        .collect()
        .await?
    {
        count(&b, &mut t.reasons);
    }
    Ok(t)
}

/// One commit that removes every file of partition `dt` and adds `rels`
/// (paths relative to the table root, files without a `dt` column); creates
/// the table (schema `schema`, partitioned by `dt`) when it does not exist.
async fn commit_replace_partition(
    table_dir: &Path,
    schema: &Schema,
    dt: &str,
    rels: &[String],
    run_id: &str,
) -> Result<i64> {
    let table = crate::delta::open(table_dir).await?;
    let store = table.object_store();
    let pv = HashMap::from([("dt".to_string(), Some(dt.to_string()))]);
    let mut adds = Vec::with_capacity(rels.len());
    for rel in rels {
        adds.push(Action::Add(
            add_for_file(store.clone(), rel, pv.clone()).await?,
        ));
    }
    if table.version().is_none() {
        let columns: StructType = schema.try_into_kernel()?;
        let table = table
            .create()
            .with_columns(columns.fields().cloned())
            .with_partition_columns(["dt"])
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(adds)
            .with_commit_properties(crate::delta::commit_properties(run_id))
            .await
            .with_context(|| format!("creating Delta table {}", table_dir.display()))?;
        return Ok(table.version().unwrap_or(0) as i64);
    }
    let filter = [("dt", FilterOp::Eq, FilterValue::Scalar(dt))];
    let mut actions: Vec<Action> = table
        .get_active_add_actions_by_partitions(&filter)
        .map_ok(|f| Action::Remove(f.remove_action(true)))
        .try_collect()
        .await?;
    actions.extend(adds);
    let snapshot = table.snapshot()?;
    let op = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec!["dt".to_string()]),
        predicate: Some(format!("dt = '{dt}'")),
    };
    // Tables written before a column joined the contract (e.g. `run_id`)
    // take it on, nullable, in the same commit; their older files read it
    // as null.
    let have = table.snapshot()?.schema();
    let missing: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != "dt" && have.field(f.name()).is_none())
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if !missing.is_empty() {
        use deltalake::kernel::MetadataExt;
        let added: StructType = (&Schema::new(missing)).try_into_kernel()?;
        let merged = StructType::try_new(have.fields().cloned().chain(added.fields().cloned()))?;
        let metadata = table.snapshot()?.metadata().clone().with_schema(&merged)?;
        actions.push(Action::Metadata(metadata));
    }
    let commit = CommitBuilder::from(crate::delta::commit_properties(run_id))
        .with_actions(actions)
        .build(Some(snapshot as &dyn TableReference), table.log_store(), op)
        .await
        .with_context(|| format!("committing to Delta table {}", table_dir.display()))?;
    Ok(commit.version() as i64)
}

/// The Add action of a file already in the table folder.
async fn add_for_file(
    store: Arc<dyn ObjectStore>,
    rel: &str,
    partition_values: HashMap<String, Option<String>>,
) -> Result<Add> {
    let path = deltalake::Path::parse(rel)?;
    let meta = store.head(&path).await?;
    let mut reader = ParquetObjectReader::new(store, path).with_file_size(meta.size);
    let pq = reader.get_metadata(None).await?;
    Ok(Add {
        path: rel.to_string(),
        partition_values,
        size: meta.size as i64,
        modification_time: meta.last_modified.timestamp_millis(),
        data_change: true,
        stats: Some(stats_json(&pq).to_string()),
        ..Default::default()
    })
}

/// Delta per-file statistics from a Parquet footer: `numRecords`,
/// `nullCount`, and min/max of top-level integer, float and string columns.
/// Written here because delta-rs keeps its own (`writer::stats`) private;
/// readers use these to skip files (e.g. `WHERE listing_id = ...`).
fn stats_json(pq: &ParquetMetaData) -> Value {
    use deltalake::parquet::basic::{ConvertedType, LogicalType};
    use deltalake::parquet::file::statistics::Statistics as S;
    #[derive(PartialEq, PartialOrd)]
    enum K {
        I(i64),
        F(f64),
        S(String),
    }
    let schema = pq.file_metadata().schema_descr();
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    for i in 0..schema.num_columns() {
        let d = schema.column(i);
        if d.path().parts().len() != 1 || d.max_rep_level() > 0 {
            continue; // nested: no statistics (the protocol allows it)
        }
        let int_ok = match d.logical_type_ref() {
            None => d.converted_type() == ConvertedType::NONE,
            Some(LogicalType::Integer(t)) => t.is_signed,
            _ => false,
        };
        let is_str = matches!(d.logical_type_ref(), Some(LogicalType::String))
            || d.converted_type() == ConvertedType::UTF8;
        let (mut lo, mut hi): (Option<K>, Option<K>) = (None, None);
        let (mut bounds_ok, mut null_total) = (true, Some(0u64));
        for rg in pq.row_groups() {
            let cc = rg.column(i);
            let Some(st) = cc.statistics() else {
                (bounds_ok, null_total) = (false, None);
                continue;
            };
            null_total = null_total.zip(st.null_count_opt()).map(|(a, b)| a + b);
            let fin = |x: f64| x.is_finite().then_some(K::F(x));
            let pair = match st {
                S::Int32(v) if int_ok => v
                    .min_opt()
                    .zip(v.max_opt())
                    .map(|(a, b)| (K::I(*a as i64), K::I(*b as i64))),
                S::Int64(v) if int_ok => v
                    .min_opt()
                    .zip(v.max_opt())
                    .map(|(a, b)| (K::I(*a), K::I(*b))),
                S::Float(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .and_then(|(a, b)| fin(*a as f64).zip(fin(*b as f64))),
                S::Double(v) => v
                    .min_opt()
                    .zip(v.max_opt())
                    .and_then(|(a, b)| fin(*a).zip(fin(*b))),
                // A truncated maximum is no upper bound.
                S::ByteArray(v) if is_str && st.max_is_exact() => {
                    v.min_opt().zip(v.max_opt()).and_then(|(a, b)| {
                        Some((
                            K::S(a.as_utf8().ok()?.to_owned()),
                            K::S(b.as_utf8().ok()?.to_owned()),
                        ))
                    })
                }
                _ => {
                    bounds_ok = false;
                    continue;
                }
            };
            match pair {
                Some((a, b)) => {
                    lo = Some(match lo {
                        Some(l) if l <= a => l,
                        _ => a,
                    });
                    hi = Some(match hi {
                        Some(h) if h >= b => h,
                        _ => b,
                    });
                }
                // An all-null row group has no bounds and loses nothing.
                None if st.null_count_opt() == Some(cc.num_values() as u64) => {}
                None => bounds_ok = false,
            }
        }
        let name = d.name().to_string();
        if let Some(n) = null_total {
            nulls.insert(name.clone(), json!(n));
        }
        let to_json = |k: K| match k {
            K::I(x) => json!(x),
            K::F(x) => json!(x),
            K::S(x) => json!(x),
        };
        if let (true, Some(l), Some(h)) = (bounds_ok, lo, hi) {
            mins.insert(name.clone(), to_json(l));
            maxs.insert(name, to_json(h));
        }
    }
    json!({
        "numRecords": pq.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxs,
        "nullCount": nulls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::Field;

    fn part(dir: &Path, name: &str, ids: Vec<i64>) -> (Schema, PathBuf) {
        let schema = Schema::new(vec![Field::new("listing_id", DataType::Int64, false)]);
        let b = RecordBatch::try_new(
            Arc::new(schema.clone()),
            vec![Arc::new(Int64Array::from(ids))],
        )
        .unwrap();
        let p = dir.join(name);
        crate::gen::write_parquet(&p, &b).unwrap();
        let with_dt = Schema::new(vec![
            schema.field(0).clone(),
            Field::new("dt", DataType::Utf8, false),
        ]);
        (with_dt, p)
    }

    /// A table written before a column joined the contract takes it on in
    /// the commit that first writes it; its older files read it as null.
    #[tokio::test]
    async fn a_table_takes_on_a_column_it_did_not_have() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        let (schema, p) = part(dir.path(), "a.parquet", vec![1, 2]);
        publish_parts(&table, &schema, "d1", &[p], "run-a")
            .await
            .unwrap();
        let wider = Schema::new(vec![
            Field::new("listing_id", DataType::Int64, false),
            Field::new("run_id", DataType::Utf8, false),
        ]);
        let b = RecordBatch::try_new(
            Arc::new(wider.clone()),
            vec![
                Arc::new(Int64Array::from(vec![3])),
                Arc::new(datafusion::arrow::array::StringArray::from(vec!["run-b"])),
            ],
        )
        .unwrap();
        let p = dir.path().join("b.parquet");
        crate::gen::write_parquet(&p, &b).unwrap();
        let with_dt = Schema::new(vec![
            wider.field(0).clone(),
            wider.field(1).clone(),
            Field::new("dt", DataType::Utf8, false),
        ]);
        assert_eq!(
            publish_parts(&table, &with_dt, "d2", &[p], "run-b")
                .await
                .unwrap(),
            1
        );
        let ctx = datafusion::prelude::SessionContext::new();
        let t = crate::delta::open(&table).await.unwrap();
        ctx.register_table("t", t.table_provider().await.unwrap())
            .unwrap();
        let rows = crate::report::figures::rows(
            &ctx,
            "SELECT listing_id, run_id, dt FROM t ORDER BY listing_id",
        )
        .await
        .unwrap();
        let got: Vec<(i64, Option<&str>, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r["listing_id"].as_i64().unwrap(),
                    r.get("run_id").and_then(Value::as_str),
                    r["dt"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [(1, None, "d1"), (2, None, "d1"), (3, Some("run-b"), "d2")]
        );
    }

    /// delta-rs checkpoints after some commits; when that fails the commit
    /// is still durable, and its files must stay.
    #[tokio::test]
    async fn files_of_a_durable_commit_stay_when_a_step_after_it_fails() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t");
        let (schema, p) = part(dir.path(), "a.parquet", vec![1, 2]);
        assert_eq!(
            publish_parts(&table, &schema, "d", &[p], "run-a")
                .await
                .unwrap(),
            0
        );
        crate::delta::open(&table)
            .await
            .unwrap()
            .set_tbl_properties()
            .with_properties(HashMap::from([(
                "delta.checkpointInterval".to_string(),
                "1".to_string(),
            )]))
            .await
            .unwrap();
        // Version 2's checkpoint cannot be written: a folder is in its way.
        let blocker = table.join("_delta_log/00000000000000000002.checkpoint.parquet");
        std::fs::create_dir_all(blocker.join("x")).unwrap();
        let (_, p) = part(dir.path(), "b.parquet", vec![3]);
        let v = publish_parts(&table, &schema, "d", &[p], "run-b")
            .await
            .unwrap();
        assert_eq!(v, 2);
        let t = crate::delta::open(&table).await.unwrap();
        let files: Vec<String> = t
            .snapshot()
            .unwrap()
            .log_data()
            .into_iter()
            .map(|f| f.path().to_string())
            .collect();
        assert_eq!(files, vec!["dt=d/part-00000-run-b.parquet"]);
        assert!(table.join(&files[0]).exists(), "the committed file is kept");
    }
}
