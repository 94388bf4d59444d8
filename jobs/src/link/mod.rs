//! `dajia link`: the seed report's "same-person" model at network scale.
//! Sellers are linked by the identity values they share (`edges`), the links
//! are closed into clusters, one per person or ring (`components`), and each
//! seller of a cluster with a member closed for counterfeiting gets its
//! strongest chain of links to that member (`paths`), which the scan's
//! `linked_to_closed_seller` names and weighs. The same SQL runs in one
//! process and on a Ballista cluster; iterations go through Parquet
//! checkpoints (`checkpoint`).
//!
//! Published as `seller_clusters` (Delta, partition `dt`), with a summary in
//! `OUT/runs/link-…json` (hot values left out, rounds, sizes).

mod checkpoint;
pub mod components;
pub mod edges;
pub mod paths;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch, StringBuilder,
};
use datafusion::arrow::array::{Date32Builder, Int64Builder};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

use dajia_kernels::risk::Weights;

pub use checkpoint::Checkpoints;
pub use components::Rounds;
pub use edges::HotValue;

use crate::catalog::{local_path, Catalog};
use crate::cluster::Target;
use crate::delta;
use crate::options::DajiaOptions;

/// What a link computation found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LinkSummary {
    /// Identity values shared by two sellers or more (hot ones included).
    pub shared_values: u64,
    /// Values shared by more than the limit: left out, the most shared
    /// listed (at most `edges::REPORTED`), `hot_values_total` in all.
    pub hot_values: Vec<HotValue>,
    pub hot_values_total: u64,
    pub edges: u64,
    pub rounds: Rounds,
    pub clusters: u64,
    pub clustered_sellers: u64,
    pub largest_cluster: u64,
    pub clusters_with_closed: u64,
    /// Sellers with a chain of links to a member closed for counterfeiting.
    pub linked_to_closed: u64,
}

/// `sellers` rows closed for counterfeiting (any closed seller when the
/// table has no `closed_reason`).
async fn closed_condition(ctx: &SessionContext) -> Result<String> {
    let schema = ctx.table("sellers").await?.schema().clone();
    Ok(
        if schema.field_with_unqualified_name("closed_reason").is_ok() {
            "status = 'closed' AND closed_reason = 'counterfeit'".into()
        } else {
            "status = 'closed'".into()
        },
    )
}

/// Sellers per partition when linking in one process. Linking is about
/// twenty queries one after another; below this size each extra partition
/// costs more in exchanges between partitions than it computes. Measured
/// with `dajia link` on 2 cores (one partition against two): 25,000 sellers
/// 0.20 s against 0.25 s wall and a third less CPU; 100,000 sellers 0.46 s
/// against 0.53 s; 300,000 sellers the same wall (1.31 s), a quarter less
/// CPU; 1,000,000 sellers 5.6 s against 4.75 s.
const SELLERS_PER_PARTITION: u64 = 250_000;

/// A session sharing `ctx`'s tables and functions, with one partition per
/// [`SELLERS_PER_PARTITION`] sellers (at least one, at most `ctx`'s).
async fn sized_session(ctx: &SessionContext) -> Result<SessionContext> {
    let sellers = crate::session::counts(ctx, "SELECT count(*) FROM sellers").await?[0];
    let most = ctx.state().config().target_partitions().max(1);
    let n = (sellers.div_ceil(SELLERS_PER_PARTITION) as usize).clamp(1, most);
    // `new_from_existing` keeps the catalog list (tables registered on
    // either session are seen by both), the functions and the options.
    let mut state =
        datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state()).build();
    state.config_mut().options_mut().execution.target_partitions = n;
    Ok(SessionContext::new_with_state(state))
}

const TS_UTC: &str = "'Timestamp(Microsecond, Some(\"UTC\"))'";

/// Link the sellers of `ctx`'s `sellers` table, registering
/// `seller_clusters_rows` (the columns of `seller_clusters` but `run_id`
/// and `dt`) and `link_paths(seller_id, path_attributes, path_sellers)`.
/// Values shared by more than `max_per_value` sellers link nobody.
pub async fn compute(
    ctx: &SessionContext,
    max_per_value: u64,
    weights: &Weights,
    cp: &mut Checkpoints,
) -> Result<LinkSummary> {
    anyhow::ensure!(
        max_per_value >= 2,
        "the limit of sellers per identity value must be at least 2"
    );
    // In one process, on a session sized to the sellers (the tables it
    // registers land in the same catalog, so `ctx` sees them).
    let sized;
    let ctx = if cp.on_cluster() {
        ctx
    } else {
        sized = sized_session(ctx).await?;
        &sized
    };
    let mut s = LinkSummary::default();
    let attrs = edges::present_attributes(ctx).await?;
    let closed = closed_condition(ctx).await?;
    if attrs.is_empty() {
        tracing::warn!("sellers has no identity columns: nobody is linked");
        let none = ctx
            .sql("SELECT CAST(NULL AS BIGINT) AS seller_id, CAST(NULL AS BIGINT) AS cluster_id WHERE false")
            .await?;
        cp.save(ctx, "link_components", none).await?;
        let none = ctx.sql("SELECT CAST(NULL AS BIGINT) AS seller_id, 'x' AS attr, 'x' AS v, CAST(NULL AS BIGINT) AS n, CAST(NULL AS BIGINT) AS a, CAST(NULL AS BIGINT) AS b, 'x' AS attrs WHERE false").await?;
        cp.save(
            ctx,
            "link_values",
            none.clone()
                .select_columns(&["seller_id", "attr", "v", "n"])?,
        )
        .await?;
        cp.save(
            ctx,
            "link_edges",
            none.select_columns(&["a", "b", "attrs"])?,
        )
        .await?;
    } else {
        s.shared_values = edges::shared_values(ctx, &attrs, cp).await?;
        (s.hot_values, s.hot_values_total) = edges::hot_values(ctx, max_per_value).await?;
        s.edges = edges::edges(ctx, max_per_value, cp).await?;
        s.rounds = components::components(ctx, "link_edges", "link_components", cp).await?;
    }
    let has_closed_at = ctx
        .table("sellers")
        .await?
        .schema()
        .field_with_unqualified_name("closed_at")
        .is_ok();
    let closed_at = if has_closed_at {
        format!("CASE WHEN {closed} THEN arrow_cast(closed_at, {TS_UTC}) END")
    } else {
        format!("arrow_cast(NULL, {TS_UTC})")
    };
    // Evidence sorted after aggregating (`array_sort`): DataFusion 55's
    // ordered `array_agg(... ORDER BY ...)` keeps one sorting accumulator
    // per group and took minutes for 33,000 clusters where this takes a
    // second.
    let clusters = ctx
        .sql(&format!(
            "WITH s AS (SELECT CAST(seller_id AS BIGINT) AS seller_id, \
                               max(CASE WHEN {closed} THEN 1 ELSE 0 END) AS closed, \
                               max({closed_at}) AS closed_at \
                        FROM sellers GROUP BY seller_id), \
                  m AS (SELECT c.cluster_id, coalesce(s.closed, 0) AS closed, s.closed_at \
                        FROM link_components c LEFT JOIN s ON c.seller_id = s.seller_id), \
                  stats AS (SELECT cluster_id, count(*) AS cluster_size, CAST(sum(closed) AS BIGINT) AS closed_members, \
                                   max(closed_at) AS last_closed_at FROM m GROUP BY cluster_id), \
                  ev AS (SELECT c.cluster_id, v.attr, v.v, max(v.n) AS n FROM link_values v \
                         JOIN link_components c ON v.seller_id = c.seller_id WHERE v.n <= {max_per_value} \
                         GROUP BY c.cluster_id, v.attr, v.v HAVING count(*) >= 2), \
                  evidence AS (SELECT cluster_id, array_sort(array_agg(named_struct('attribute', attr, \
                                      'value_hash', CAST(v AS VARCHAR), 'sellers', n))) AS evidence \
                               FROM ev GROUP BY cluster_id) \
             SELECT stats.*, evidence.evidence FROM stats LEFT JOIN evidence ON stats.cluster_id = evidence.cluster_id"
        ))
        .await?;
    s.clusters = cp.save(ctx, "link_clusters", clusters).await?;
    let c = crate::session::counts(
        ctx,
        "SELECT coalesce(sum(cluster_size), 0), coalesce(max(cluster_size), 0), \
                count(*) FILTER (WHERE closed_members > 0) FROM link_clusters",
    )
    .await?;
    (
        s.clustered_sellers,
        s.largest_cluster,
        s.clusters_with_closed,
    ) = (c[0], c[1], c[2]);

    let chains = chains(ctx, &closed, &closed_at, weights).await?;
    s.linked_to_closed = chains.num_rows() as u64;
    cp.save_batch(ctx, "link_paths", chains).await?;
    let rows = ctx
        .sql(
            "SELECT c.seller_id, c.cluster_id, k.cluster_size, k.closed_members, k.last_closed_at, \
                    k.evidence, p.path_attributes, p.path_sellers \
             FROM link_components c JOIN link_clusters k ON c.cluster_id = k.cluster_id \
             LEFT JOIN link_paths p ON c.seller_id = p.seller_id",
        )
        .await?;
    ctx.deregister_table("seller_clusters_rows")?;
    ctx.register_table("seller_clusters_rows", rows.into_view())?;
    Ok(s)
}

/// The strongest chain of every seller in a cluster with a member closed
/// for counterfeiting, as rows `(seller_id, path_attributes,
/// path_sellers, closed_on)` (`closed_on`: the day the chain's last seller
/// was closed, when `sellers` says). Only those clusters' edges are read into memory.
async fn chains(
    ctx: &SessionContext,
    closed: &str,
    closed_at: &str,
    weights: &Weights,
) -> Result<RecordBatch> {
    // The closed members and the day each was closed (named in the reason).
    let mut closed_on: HashMap<i64, Option<i32>> = HashMap::new();
    for b in ctx
        .sql(&format!(
            "SELECT CAST(s.seller_id AS BIGINT), CAST(max({closed_at}) AS DATE) FROM sellers s \
             JOIN link_components c ON CAST(s.seller_id AS BIGINT) = c.seller_id WHERE {closed} \
             GROUP BY 1"
        ))
        .await?
        .collect()
        .await?
    {
        let (id, day) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Date32Type>(),
        );
        for i in 0..b.num_rows() {
            closed_on.insert(id.value(i), day.is_valid(i).then(|| day.value(i)));
        }
    }
    let closed_ids: HashSet<i64> = closed_on.keys().copied().collect();
    let mut edge_list = Vec::new();
    for b in ctx
        .sql(
            "SELECT e.a, e.b, e.attrs FROM link_edges e \
             JOIN link_components c ON e.a = c.seller_id \
             JOIN link_clusters k ON c.cluster_id = k.cluster_id WHERE k.closed_members > 0",
        )
        .await?
        .collect()
        .await?
    {
        let (a, bb) = (
            b.column(0).as_primitive::<Int64Type>(),
            b.column(1).as_primitive::<Int64Type>(),
        );
        let attrs = datafusion::arrow::compute::cast(b.column(2), &DataType::Utf8)?;
        let attrs = attrs.as_string::<i32>();
        for i in 0..b.num_rows() {
            edge_list.push((a.value(i), bb.value(i), attrs.value(i).to_string()));
        }
    }
    let found = paths::strongest_chains(&edge_list, &closed_ids, weights);
    let mut ids: Vec<i64> = found.keys().copied().collect();
    ids.sort_unstable();
    let mut attrs = ListBuilder::new(StringBuilder::new());
    let mut sellers = ListBuilder::new(Int64Builder::new());
    let mut days = Date32Builder::with_capacity(ids.len());
    for id in &ids {
        for (a, s) in &found[id] {
            attrs.values().append_value(a);
            sellers.values().append_value(*s);
        }
        attrs.append(true);
        sellers.append(true);
        let end = found[id].last().map(|(_, s)| *s);
        days.append_option(end.and_then(|s| closed_on.get(&s).copied().flatten()));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(attrs.finish()),
        Arc::new(sellers.finish()),
        Arc::new(days.finish()),
    ];
    Ok(RecordBatch::try_new(paths_schema(), columns)?)
}

fn paths_schema() -> Arc<Schema> {
    let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
    Arc::new(Schema::new(vec![
        Field::new("seller_id", DataType::Int64, false),
        Field::new("path_attributes", list(DataType::Utf8), true),
        Field::new("path_sellers", list(DataType::Int64), true),
        Field::new("closed_on", DataType::Date32, true),
    ]))
}

/// The scan's linking: [`compute`] on `ctx`, checkpoints under `staging`,
/// then the view `seller_links(seller_id, link_attrs, link_sellers,
/// link_closed_on)` that `assess_listing` reads: one row per seller with a
/// chain to a seller closed for counterfeiting.
pub async fn register_seller_links(
    ctx: &SessionContext,
    options: &DajiaOptions,
    staging: &Path,
    cluster: bool,
) -> Result<LinkSummary> {
    // Checkpoints stay until the run's staging folder goes: the view reads
    // the last of them.
    let mut cp = Checkpoints::new(&staging.join("link"), cluster)?;
    let s = compute(
        ctx,
        options.scan.max_sellers_per_identity,
        &options.weights,
        &mut cp,
    )
    .await?;
    ctx.sql(
        "CREATE OR REPLACE VIEW seller_links AS SELECT seller_id, path_attributes AS link_attrs, \
         path_sellers AS link_sellers, closed_on AS link_closed_on FROM link_paths",
    )
    .await?
    .collect()
    .await?;
    Ok(s)
}

/// Options of `dajia link`.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    pub catalog: String,
    pub out: String,
    pub date: NaiveDate,
    pub options: DajiaOptions,
    pub cluster: Target,
}

/// What `dajia link` did: the computation, and what it published.
#[derive(Debug, Clone, Serialize)]
pub struct LinkRun {
    pub job: &'static str,
    pub run_id: String,
    pub date: String,
    pub outcome: String,
    pub sellers: u64,
    pub max_sellers_per_value: u64,
    #[serde(flatten)]
    pub summary: LinkSummary,
    pub version: i64,
    pub seconds: f64,
}

impl std::fmt::Display for LinkRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "linked {} sellers into {} clusters (largest {}, {} rounds, {} edges) in {:.1} s",
            s.clustered_sellers,
            s.clusters,
            s.largest_cluster,
            s.rounds.rounds,
            s.edges,
            self.seconds
        )?;
        writeln!(
            f,
            "{} clusters hold a seller closed for counterfeiting; {} sellers are linked to one",
            s.clusters_with_closed, s.linked_to_closed
        )?;
        write!(
            f,
            "{} identity values shared by more than {} sellers link nobody",
            s.hot_values_total, self.max_sellers_per_value
        )?;
        for h in s.hot_values.iter().take(5) {
            write!(f, "\n  {} {} ({} sellers)", h.attribute, h.value, h.sellers)?;
        }
        write!(
            f,
            "\nseller_clusters dt={} version {} (run {})",
            self.date, self.version, self.run_id
        )
    }
}

/// Run `dajia link`: link the catalog's sellers and publish partition
/// `date` of `OUT/seller_clusters` in one commit.
pub async fn run(o: &LinkOptions) -> Result<LinkRun> {
    let t = Instant::now();
    o.options.validate()?;
    let out = local_path(&o.out)?;
    let mut catalog = Catalog::open_any(&o.catalog, Some(o.date)).await?;
    catalog.require(&["sellers"])?;
    // Only the sellers are needed.
    catalog.keep(&["sellers"]);
    let ctx = crate::cluster::session(&o.cluster, &o.options, None).await?;
    catalog.register(&ctx).await?;
    let now = chrono::Utc::now();
    let run_id = format!("link-{}-{}", o.date, now.format("%Y%m%dT%H%M%S%.3fZ"));
    let dt = o.date.to_string();
    // One job at a time on an output (as the scan and vacuum).
    let _lease = crate::lease::Lease::acquire(&out, &run_id, o.options.scan.lease_seconds)?;
    let staging = out.join("_staging").join(&run_id);
    let mut cp = Checkpoints::new(&staging.join("checkpoints"), o.cluster.is_cluster())?;
    let max = o.options.scan.max_sellers_per_identity;
    let result = publish(&ctx, o, &mut cp, &out, &staging, &run_id, &dt, max).await;
    cp.remove();
    let _ = std::fs::remove_dir_all(&staging);
    let (summary, version) = result?;
    let sellers =
        crate::session::counts(&ctx, "SELECT count(DISTINCT seller_id) FROM sellers").await?[0];
    let run = LinkRun {
        job: "link",
        run_id: run_id.clone(),
        date: dt,
        outcome: "succeeded".into(),
        sellers,
        max_sellers_per_value: max,
        summary,
        version,
        seconds: t.elapsed().as_secs_f64(),
    };
    crate::scan::write_json(&out.join("runs"), &run_id, &run)?;
    Ok(run)
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    ctx: &SessionContext,
    o: &LinkOptions,
    cp: &mut Checkpoints,
    out: &Path,
    staging: &Path,
    run_id: &str,
    dt: &str,
    max: u64,
) -> Result<(LinkSummary, i64)> {
    let summary = compute(ctx, max, &o.options.weights, cp).await?;
    let df = ctx
        .sql(&format!(
            "SELECT *, '{run_id}' AS run_id, '{dt}' AS dt FROM seller_clusters_rows"
        ))
        .await?;
    let dir = delta::output_dir(out, "seller_clusters");
    let version = if o.cluster.is_cluster() {
        let expect = delta::publish::Expect {
            rows: Some(summary.clustered_sellers),
            unique: Some("seller_id"),
            counted: None,
        };
        let p = delta::publish::replace_partition(
            df,
            &dir,
            &staging.join("seller_clusters"),
            dt,
            run_id,
            expect,
            delta::publish::Writers::Cluster,
        )
        .await?;
        p.version
    } else {
        delta::replace_partition(&dir, df.into_optimized_plan()?, dt, run_id, Some(ctx))
            .await
            .context("publishing seller_clusters")?
    };
    Ok((summary, version))
}
