//! Writing a query's rows where they are computed: one Parquet part
//! per partition, by the task that computes the partition.
//!
//! DataFusion's own file sink (`DataFrame::write_parquet`, `COPY`) wants its
//! input as one partition, so on Ballista every scored row would cross a
//! shuffle into a single writer task whose work grows with the catalog. The
//! `WriteParts` node instead keeps the input's partitioning: each task writes
//! `DIR/part-PPPPP-<uuid>.parquet` for its own partition and returns one row
//! (path, rows). The client then commits exactly the parts the job returned
//! (a part left by a failed and retried task is in no result, so it is never
//! published). The scheduler plans the node through [`WritePartsPlanner`]
//! (installed by `cluster::state_with_functions`); both codecs carry it.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, DFSchemaRef, Result};
use datafusion::error::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::StreamExt;

/// Prefix of the node's encoding in both codecs.
pub const TAG: &[u8] = b"dajia.write_parts:";

/// The (path, rows) schema of what the node returns.
fn result_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
    ]))
}

/// Runs `df` with each partition written as a Parquet part under `dir`
/// (a folder every node can write to) by the task that computes it; the
/// parts the job returned (a failed attempt's part is in none), with their
/// rows.
pub async fn write(
    df: datafusion::dataframe::DataFrame,
    dir: &std::path::Path,
) -> Result<Vec<(std::path::PathBuf, u64)>> {
    let (state, input) = df.into_parts();
    let plan = WritePartsNode::plan(input, dir.to_string_lossy().into_owned())?;
    let written = datafusion::dataframe::DataFrame::new(state, plan)
        .collect()
        .await?;
    let mut parts = Vec::new();
    for b in &written {
        let bad = || DataFusionError::Internal("WriteParts returned an unexpected schema".into());
        let paths = b
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(bad)?;
        let rows = b
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .ok_or_else(bad)?;
        parts.extend((0..b.num_rows()).map(|i| {
            (
                std::path::PathBuf::from(paths.value(i)),
                rows.value(i) as u64,
            )
        }));
    }
    Ok(parts)
}

/// [`write`] for a query run by this process (whose planner does not know
/// the node; a cluster client's is Ballista's, which ships it): each
/// partition written by the thread that computes it.
pub async fn write_here(
    df: datafusion::dataframe::DataFrame,
    dir: &std::path::Path,
) -> Result<Vec<(std::path::PathBuf, u64)>> {
    let (state, plan) = df.into_parts();
    let state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
        .with_query_planner(Arc::new(DajiaQueryPlanner))
        .build();
    write(datafusion::dataframe::DataFrame::new(state, plan), dir).await
}

/// Logical node: write `input`'s partitions as Parquet parts under `dir`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WritePartsNode {
    pub input: LogicalPlan,
    /// A folder every node can write to (the run's staging folder).
    pub dir: String,
    schema: DFSchemaRef,
}

impl WritePartsNode {
    pub fn new(input: LogicalPlan, dir: String) -> Result<Self> {
        Ok(WritePartsNode {
            input,
            dir,
            schema: Arc::new(DFSchema::try_from(result_schema())?),
        })
    }

    /// `input` wrapped in the node, as a plan.
    pub fn plan(input: LogicalPlan, dir: String) -> Result<LogicalPlan> {
        Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(Self::new(input, dir)?),
        }))
    }
}

// Ordered by folder, then input (the schema is the same for every node).
impl PartialOrd for WritePartsNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match self.dir.partial_cmp(&other.dir) {
            Some(std::cmp::Ordering::Equal) => self.input.partial_cmp(&other.input),
            o => o,
        }
    }
}

impl UserDefinedLogicalNodeCore for WritePartsNode {
    fn name(&self) -> &str {
        "WriteParts"
    }
    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }
    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }
    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }
    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WriteParts: dir={}", self.dir)
    }
    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        Self::new(inputs.swap_remove(0), self.dir.clone())
    }
}

/// Encodes the node (the codec adds its input); false for another node.
pub fn encode_node(node: &dyn UserDefinedLogicalNode, buf: &mut Vec<u8>) -> bool {
    let Some(n) = node.as_any().downcast_ref::<WritePartsNode>() else {
        return false;
    };
    encode_dir(&n.dir, buf);
    true
}

/// Encodes the physical plan (the codec adds its input); false for another.
pub fn encode_exec(plan: &dyn ExecutionPlan, buf: &mut Vec<u8>) -> bool {
    let Some(w) = plan.downcast_ref::<WritePartsExec>() else {
        return false;
    };
    encode_dir(&w.dir, buf);
    true
}

/// Node and plan alike are the tag and their folder.
fn encode_dir(dir: &str, buf: &mut Vec<u8>) {
    buf.extend_from_slice(TAG);
    buf.extend_from_slice(dir.as_bytes());
}

/// The folder of an encoded node or plan, when `buf` is one.
pub fn decode_dir(buf: &[u8]) -> Option<Result<String>> {
    let rest = buf.strip_prefix(TAG)?;
    Some(
        String::from_utf8(rest.to_vec())
            .map_err(|_| DataFusionError::Internal("write_parts: folder is not UTF-8".into())),
    )
}

/// Physical plan: runs on the executor that computes each partition.
#[derive(Debug)]
pub struct WritePartsExec {
    pub input: Arc<dyn ExecutionPlan>,
    pub dir: String,
    properties: Arc<PlanProperties>,
}

impl WritePartsExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, dir: String) -> Self {
        let partitions = input.properties().partitioning.partition_count();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(result_schema()),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(partitions),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        WritePartsExec {
            input,
            dir,
            properties,
        }
    }
}

impl DisplayAs for WritePartsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WritePartsExec: dir={}", self.dir)
    }
}

impl ExecutionPlan for WritePartsExec {
    fn name(&self) -> &str {
        "WritePartsExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }
    // Each partition is written where it is computed: no repartitioning
    // or coalescing of the input for this node's sake.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }
    #[allow(deprecated)]
    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(WritePartsExec::new(
            children.swap_remove(0),
            self.dir.clone(),
        )))
    }
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let observer = context.session_config().get_extension::<WrittenBatches>();
        let input = self.input.execute(partition, context)?;
        // Unique per attempt: a retried task never writes over the part of
        // an earlier attempt (which then belongs to no result).
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::path::Path::new(&self.dir).join(format!(
            "part-{partition:05}-{:x}-{nanos:x}.parquet",
            std::process::id()
        ));
        let written = async move {
            let rows = write_part(input, &path, observer.as_deref()).await?;
            // An empty partition wrote nothing and reports nothing.
            let (paths, counts) = if rows > 0 {
                (vec![path.to_string_lossy().into_owned()], vec![rows as i64])
            } else {
                (vec![], vec![])
            };
            Ok(RecordBatch::try_new(
                result_schema(),
                vec![
                    Arc::new(StringArray::from(paths)),
                    Arc::new(Int64Array::from(counts)),
                ],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            result_schema(),
            futures::stream::once(written),
        )))
    }
}

/// Writes every batch of `input` to `path` (snappy Parquet), showing each
/// to `observer` first; the rows written. Nothing is left behind for an
/// empty partition.
pub(crate) async fn write_part(
    mut input: SendableRecordBatchStream,
    path: &std::path::Path,
    observer: Option<&WrittenBatches>,
) -> Result<usize> {
    use datafusion::parquet::arrow::AsyncArrowWriter;
    let mut writer: Option<AsyncArrowWriter<tokio::fs::File>> = None;
    let mut rows = 0;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if writer.is_none() {
            let file = tokio::fs::File::create(path).await.map_err(|e| {
                DataFusionError::Execution(format!("creating {}: {e}", path.display()))
            })?;
            writer = Some(AsyncArrowWriter::try_new(
                file,
                batch.schema(),
                Some(crate::delta::writer_properties(&batch.schema())),
            )?);
        }
        rows += batch.num_rows();
        if let Some(o) = observer {
            (o.0)(&batch)?;
        }
        writer.as_mut().expect("opened").write(&batch).await?;
    }
    if let Some(w) = writer {
        w.close().await?;
    }
    Ok(rows)
}

/// Sees every batch a partition writes, before it is written: figures of
/// the written rows without reading them again (the scan's report). A
/// session config extension ([`observe_writes`]): it reaches the parts this
/// process writes, never a cluster's executors, whose sessions are their own.
pub struct WrittenBatches(pub Box<dyn Fn(&RecordBatch) -> Result<()> + Send + Sync>);

/// `df` with `observer` shown every batch that [`write_here`] writes of it.
pub fn observe_writes(
    df: datafusion::dataframe::DataFrame,
    observer: WrittenBatches,
) -> datafusion::dataframe::DataFrame {
    let (mut state, plan) = df.into_parts();
    state.config_mut().set_extension(Arc::new(observer));
    datafusion::dataframe::DataFrame::new(state, plan)
}

/// Plans [`WritePartsNode`] as [`WritePartsExec`].
pub struct WritePartsPlanner;

#[async_trait]
impl ExtensionPlanner for WritePartsPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _ctx: &datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        Ok(node.as_any().downcast_ref::<WritePartsNode>().map(|n| {
            Arc::new(WritePartsExec::new(
                physical_inputs[0].clone(),
                n.dir.clone(),
            )) as Arc<dyn ExecutionPlan>
        }))
    }
}

/// DataFusion's planner with [`WritePartsPlanner`] added (the scheduler's,
/// and an in-process cluster's).
#[derive(Debug)]
pub struct DajiaQueryPlanner;

#[async_trait]
impl QueryPlanner for DajiaQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn datafusion::catalog::Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(WritePartsPlanner)])
            .create_physical_plan(logical_plan, session)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    fn numbers(parts: usize, rows: i64) -> (SchemaRef, Vec<Vec<RecordBatch>>) {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batches = (0..parts as i64)
            .map(|p| {
                let v: Vec<i64> = (0..rows).map(|i| p * rows + i).collect();
                vec![
                    RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))])
                        .unwrap(),
                ]
            })
            .collect();
        (schema, batches)
    }

    #[tokio::test]
    async fn an_observer_sees_every_written_row_once_and_its_error_fails_the_write() {
        let ctx = SessionContext::new();
        let (schema, batches) = numbers(4, 250);
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, batches).unwrap()))
            .unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = seen.clone();
        let df = observe_writes(
            ctx.table("t").await.unwrap(),
            WrittenBatches(Box::new(move |b| {
                let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                into.lock().unwrap().extend(n.values().iter().copied());
                Ok(())
            })),
        );
        let dir = tempfile::tempdir().unwrap();
        let parts = write_here(df, dir.path()).await.unwrap();
        assert_eq!(parts.iter().map(|(_, n)| n).sum::<u64>(), 1000);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, (0..1000).collect::<Vec<i64>>());
        // An observer's error fails the write.
        let df = observe_writes(
            ctx.table("t").await.unwrap(),
            WrittenBatches(Box::new(|_| {
                Err(DataFusionError::Execution("the tally is full".into()))
            })),
        );
        let err = write_here(df, tempfile::tempdir().unwrap().path())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the tally is full"), "{err}");
    }

    #[tokio::test]
    async fn each_partition_is_written_by_its_own_task() {
        let dir = tempfile::tempdir().unwrap();
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_query_planner(Arc::new(DajiaQueryPlanner))
            .build();
        let ctx = SessionContext::new_with_state(state);
        let (schema, batches) = numbers(4, 250);
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, batches).unwrap()))
            .unwrap();
        let input = ctx.table("t").await.unwrap().into_unoptimized_plan();
        let plan = WritePartsNode::plan(input, dir.path().to_string_lossy().into_owned()).unwrap();
        let df = datafusion::dataframe::DataFrame::new(ctx.state(), plan);
        let physical = df.clone().create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(physical.as_ref())
            .indent(false)
            .to_string();
        // The writer sits on the input's partitions: nothing merges them first.
        assert!(shown.starts_with("WritePartsExec"), "{shown}");
        assert!(!shown.contains("Coalesce"), "{shown}");
        assert_eq!(physical.properties().partitioning.partition_count(), 4);
        let out = df.collect().await.unwrap();
        let mut paths = Vec::new();
        let mut total = 0;
        for b in &out {
            let p = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let r = b.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                paths.push(p.value(i).to_string());
                total += r.value(i);
            }
        }
        assert_eq!(paths.len(), 4, "{paths:?}");
        assert_eq!(total, 1000);
        // The parts hold every row once.
        let read = SessionContext::new();
        crate::catalog::register_files(
            &read,
            "parts",
            &paths
                .iter()
                .map(std::path::PathBuf::from)
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
        let b = read
            .sql("SELECT count(*), count(DISTINCT n), min(n), max(n) FROM parts")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let s = datafusion::arrow::util::pretty::pretty_format_batches(&b)
            .unwrap()
            .to_string();
        assert!(
            s.contains("| 1000     | 1000") && s.contains("| 0 ") && s.contains("999"),
            "{s}"
        );
    }

    #[test]
    fn the_node_travels_through_both_codecs() {
        let mut buf = Vec::new();
        let node = WritePartsNode::new(
            LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::empty()),
            }),
            "/staging/x".into(),
        )
        .unwrap();
        assert!(encode_node(&node, &mut buf));
        assert_eq!(decode_dir(&buf).unwrap().unwrap(), "/staging/x");
        assert!(decode_dir(b"something else").is_none());
        assert!(decode_dir(&[TAG, &[0xff, 0xfe][..]].concat())
            .unwrap()
            .is_err());
    }
}
