//! `dajia leads`: seller networks whose estimated counterfeit sales pass a
//! threshold (default CNY 50,000, the seed report's bar for a criminal
//! case), per region and ranked, each with an evidence pack a case handler
//! can read: the linking identity values, the members, the listings with
//! their reasons and test-purchase verdicts, and sales by month.
//!
//! Estimated counterfeit sales of a cluster: the orders of its members'
//! listings in the window, each listing weighted by its counterfeit
//! evidence: 1 for a test purchase judged counterfeit, 0 for one judged
//! genuine, otherwise the night's risk score when the scan flagged it
//! (review or takedown), and 0 when it did not.
//!
//! Reads `seller_clusters` (`dajia link`) and `risk_scores` (`dajia scan`)
//! of the date from the output, `orders` (required), `listings`, `sellers`
//! and `test_purchases` from the catalog. Aggregations run on the session
//! (in process or on a cluster); the leads themselves are few and are
//! assembled here. Published as `leads` (Delta, partition `dt`), one commit.

mod export;
mod pack;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, AsArray, Int64Array, Int64Builder, ListBuilder, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

use crate::catalog::{local_path, Catalog};
use crate::cluster::Target;
use crate::delta;

pub use pack::EvidencePack;

/// Options of `dajia leads`.
#[derive(Debug, Clone)]
pub struct LeadsOptions {
    pub catalog: String,
    pub out: String,
    pub date: NaiveDate,
    /// Estimated counterfeit sales (minor units) a cluster must reach.
    pub threshold_cents: i64,
    /// Orders of this many days up to the date count.
    pub window_days: u32,
    /// Also write `leads.csv` and one Markdown page per lead here.
    pub export: Option<PathBuf>,
    pub cluster: Target,
}

impl LeadsOptions {
    pub fn new(catalog: &str, out: &str, date: NaiveDate) -> Self {
        LeadsOptions {
            catalog: catalog.into(),
            out: out.into(),
            date,
            threshold_cents: 5_000_000,
            window_days: 365,
            export: None,
            cluster: Target::Local,
        }
    }

    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.threshold_cents > 0, "--threshold must be above 0");
        anyhow::ensure!(self.window_days > 0, "--window-days must be at least 1");
        Ok(())
    }
}

/// One lead.
#[derive(Debug, Clone, Serialize)]
pub struct Lead {
    pub cluster_id: i64,
    pub region: String,
    pub sellers: Vec<i64>,
    pub listings: i64,
    pub estimated_counterfeit_sales_cents: i64,
    pub confirmed_purchases: i64,
    pub rank: i64,
    pub evidence: EvidencePack,
}

/// What `dajia leads` did.
#[derive(Debug, Clone, Serialize)]
pub struct LeadsRun {
    pub job: &'static str,
    pub run_id: String,
    pub date: String,
    pub outcome: String,
    pub clusters: u64,
    pub threshold_cents: i64,
    pub leads: Vec<LeadLine>,
    pub version: i64,
    pub export: Option<String>,
    pub seconds: f64,
}

/// A lead as the summary lists it.
#[derive(Debug, Clone, Serialize)]
pub struct LeadLine {
    pub cluster_id: i64,
    pub region: String,
    pub rank: i64,
    pub sellers: usize,
    pub estimated_counterfeit_sales_cents: i64,
    pub confirmed_purchases: i64,
}

impl std::fmt::Display for LeadsRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} of {} seller clusters estimated above CNY {:.0} of counterfeit sales (dt={}):",
            self.leads.len(),
            self.clusters,
            self.threshold_cents as f64 / 100.0,
            self.date
        )?;
        for l in &self.leads {
            writeln!(
                f,
                "  {} #{:<3} cluster {:<8} {:>3} sellers  CNY {:>12.2}  {} confirmed purchases",
                l.region,
                l.rank,
                l.cluster_id,
                l.sellers,
                l.estimated_counterfeit_sales_cents as f64 / 100.0,
                l.confirmed_purchases
            )?;
        }
        if let Some(e) = &self.export {
            writeln!(f, "evidence packs: {e}")?;
        }
        write!(f, "leads version {} (run {})", self.version, self.run_id)
    }
}

/// Run `dajia leads`.
pub async fn run(o: &LeadsOptions) -> Result<LeadsRun> {
    let t = Instant::now();
    o.validate()?;
    let out = local_path(&o.out)?;
    let dt = o.date.to_string();
    let mut catalog = Catalog::open_any(&o.catalog, Some(o.date)).await?;
    catalog.require(&["orders", "listings", "sellers"])?;
    catalog.keep(&["orders", "listings", "sellers", "test_purchases"]);
    let ctx = crate::cluster::session(&o.cluster, &Default::default(), None).await?;
    catalog.register(&ctx).await?;
    let cluster = o.cluster.is_cluster();
    for (table, job) in [
        ("seller_clusters", "dajia link"),
        ("risk_scores", "dajia scan"),
    ] {
        if !delta::register_for(&ctx, table, &delta::output_dir(&out, table), cluster).await? {
            bail!(
                "{} has no {table} table (run `{job}` for {dt} first)",
                out.display()
            );
        }
        let n = crate::session::counts(
            &ctx,
            &format!("SELECT count(*) FROM {table} WHERE dt = '{dt}'"),
        )
        .await?[0];
        anyhow::ensure!(
            n > 0,
            "{table} has no rows for {dt} (run `{job}` for {dt} first)"
        );
    }
    if catalog.table("test_purchases").is_none() {
        ctx.sql("CREATE VIEW test_purchases AS SELECT CAST(NULL AS BIGINT) AS listing_id, CAST(NULL AS VARCHAR) AS verdict WHERE false")
            .await?
            .collect()
            .await?;
    }
    let run_id = format!(
        "leads-{}-{}",
        dt,
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let _lease = crate::lease::Lease::acquire(&out, &run_id, 600)?;
    register_views(&ctx, o).await?;
    let clusters = crate::session::counts(
        &ctx,
        &format!("SELECT count(DISTINCT cluster_id) FROM seller_clusters WHERE dt = '{dt}'"),
    )
    .await?[0];
    let mut leads = select_leads(&ctx, o.threshold_cents).await?;
    for l in &mut leads {
        l.evidence = pack::build(&ctx, l.cluster_id, &dt).await?;
    }
    rank(&mut leads);
    let version = publish(&out, &dt, &run_id, &leads).await?;
    let export = match &o.export {
        Some(dir) => {
            export::write(dir, &dt, &leads)?;
            Some(dir.display().to_string())
        }
        None => None,
    };
    let run = LeadsRun {
        job: "leads",
        run_id: run_id.clone(),
        date: dt,
        outcome: "succeeded".into(),
        clusters,
        threshold_cents: o.threshold_cents,
        leads: leads
            .iter()
            .map(|l| LeadLine {
                cluster_id: l.cluster_id,
                region: l.region.clone(),
                rank: l.rank,
                sellers: l.sellers.len(),
                estimated_counterfeit_sales_cents: l.estimated_counterfeit_sales_cents,
                confirmed_purchases: l.confirmed_purchases,
            })
            .collect(),
        version,
        export,
        seconds: t.elapsed().as_secs_f64(),
    };
    crate::scan::write_json(&out.join("runs"), &run_id, &run)?;
    Ok(run)
}

/// `lead_listings(cluster_id, listing_id, seller_id, cents, p, confirmed)`:
/// every listing of a clustered seller with its orders in the window and
/// its counterfeit evidence `p`.
async fn register_views(ctx: &SessionContext, o: &LeadsOptions) -> Result<()> {
    let dt = o.date;
    let end = dt.succ_opt().unwrap_or(dt);
    let start = dt - chrono::Duration::days(o.window_days as i64 - 1);
    let sql = format!(
        "CREATE OR REPLACE VIEW lead_listings AS \
         WITH m AS (SELECT seller_id, cluster_id FROM seller_clusters WHERE dt = '{dt}'), \
              r AS (SELECT listing_id, seller_id, score, action FROM risk_scores WHERE dt = '{dt}'), \
              tp AS (SELECT listing_id, max(CASE WHEN verdict = 'counterfeit' THEN 1 ELSE 0 END) AS fake, \
                            max(CASE WHEN verdict = 'genuine' THEN 1 ELSE 0 END) AS genuine \
                     FROM test_purchases GROUP BY listing_id), \
              o AS (SELECT listing_id, sum(amount_cents) AS cents FROM orders \
                    WHERE ordered_at >= TIMESTAMP '{start} 00:00:00' AND ordered_at < TIMESTAMP '{end} 00:00:00' \
                    GROUP BY listing_id) \
         SELECT m.cluster_id, r.listing_id, r.seller_id, CAST(coalesce(o.cents, 0) AS BIGINT) AS cents, \
                CASE WHEN tp.fake = 1 THEN 1.0 WHEN tp.genuine = 1 THEN 0.0 \
                     WHEN r.action <> 'allow' THEN CAST(r.score AS DOUBLE) ELSE 0.0 END AS p, \
                CAST(coalesce(tp.fake, 0) AS BIGINT) AS confirmed \
         FROM r JOIN m ON r.seller_id = m.seller_id \
         LEFT JOIN o ON r.listing_id = o.listing_id LEFT JOIN tp ON r.listing_id = tp.listing_id"
    );
    ctx.sql(&sql).await?.collect().await?;
    Ok(())
}

/// Clusters at or above the threshold, with their region (most members'),
/// members and totals; ranks are set by [`rank`].
async fn select_leads(ctx: &SessionContext, threshold: i64) -> Result<Vec<Lead>> {
    let sql = format!(
        "WITH totals AS (SELECT cluster_id, CAST(sum(cents * p) AS BIGINT) AS est, \
                                count(*) FILTER (WHERE p > 0) AS listings, CAST(sum(confirmed) AS BIGINT) AS confirmed \
                         FROM lead_listings GROUP BY cluster_id HAVING sum(cents * p) >= {threshold}), \
              members AS (SELECT DISTINCT c.cluster_id, c.seller_id FROM lead_listings c JOIN totals t ON c.cluster_id = t.cluster_id \
                          UNION SELECT s.cluster_id, s.seller_id FROM seller_clusters s JOIN totals t ON s.cluster_id = t.cluster_id), \
              regions AS (SELECT m.cluster_id, coalesce(CAST(s.region AS VARCHAR), 'unknown') AS region, count(*) AS n \
                          FROM members m LEFT JOIN sellers s ON m.seller_id = s.seller_id GROUP BY 1, 2), \
              best AS (SELECT cluster_id, region, row_number() OVER (PARTITION BY cluster_id ORDER BY n DESC, region) AS k FROM regions), \
              ids AS (SELECT cluster_id, array_sort(array_agg(seller_id)) AS sellers FROM members GROUP BY cluster_id) \
         SELECT t.cluster_id, best.region, ids.sellers, t.listings, t.est, t.confirmed \
         FROM totals t JOIN best ON t.cluster_id = best.cluster_id AND best.k = 1 JOIN ids ON t.cluster_id = ids.cluster_id \
         ORDER BY t.est DESC, t.cluster_id"
    );
    let mut leads = Vec::new();
    for b in ctx.sql(&sql).await?.collect().await? {
        let id = b.column(0).as_primitive::<Int64Type>();
        let region = cast(b.column(1), &DataType::Utf8)?;
        let region = region.as_string::<i32>();
        let sellers = b.column(2).as_list::<i32>();
        let listings = cast(b.column(3), &DataType::Int64)?;
        let listings = listings.as_primitive::<Int64Type>();
        let est = b.column(4).as_primitive::<Int64Type>();
        let confirmed = b.column(5).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let s = cast(&sellers.value(i), &DataType::Int64)?;
            leads.push(Lead {
                cluster_id: id.value(i),
                region: region.value(i).to_string(),
                sellers: s.as_primitive::<Int64Type>().values().to_vec(),
                listings: listings.value(i),
                estimated_counterfeit_sales_cents: est.value(i),
                confirmed_purchases: confirmed.value(i),
                rank: 0,
                evidence: EvidencePack::default(),
            });
        }
    }
    Ok(leads)
}

/// Order by region, then by estimated sales (largest first), and number
/// each region's leads from 1.
fn rank(leads: &mut [Lead]) {
    leads.sort_by(|a, b| {
        a.region
            .cmp(&b.region)
            .then(
                b.estimated_counterfeit_sales_cents
                    .cmp(&a.estimated_counterfeit_sales_cents),
            )
            .then(a.cluster_id.cmp(&b.cluster_id))
    });
    let mut prev: Option<String> = None;
    let mut k = 0;
    for l in leads.iter_mut() {
        if prev.as_deref() != Some(l.region.as_str()) {
            k = 0;
            prev = Some(l.region.clone());
        }
        k += 1;
        l.rank = k;
    }
}

/// Replace partition `dt` of `OUT/leads` with `leads`, in one commit.
async fn publish(out: &std::path::Path, dt: &str, run_id: &str, leads: &[Lead]) -> Result<i64> {
    let mut sellers = ListBuilder::new(Int64Builder::new());
    for l in leads {
        sellers.values().append_slice(&l.sellers);
        sellers.append(true);
    }
    let strings = |f: &dyn Fn(&Lead) -> String| -> ArrayRef {
        std::sync::Arc::new(StringArray::from_iter_values(leads.iter().map(f)))
    };
    let ints = |f: &dyn Fn(&Lead) -> i64| -> ArrayRef {
        std::sync::Arc::new(Int64Array::from_iter_values(leads.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        ints(&|l| l.cluster_id),
        strings(&|l| l.region.clone()),
        std::sync::Arc::new(sellers.finish()),
        ints(&|l| l.listings),
        ints(&|l| l.estimated_counterfeit_sales_cents),
        ints(&|l| l.confirmed_purchases),
        strings(&|l| serde_json::to_string(&l.evidence).unwrap_or_default()),
        ints(&|l| l.rank),
        strings(&|_| run_id.to_string()),
        strings(&|_| dt.to_string()),
    ];
    delta::replace_partition_with_columns(out, "leads", columns, dt, run_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(id: i64, region: &str, est: i64) -> Lead {
        Lead {
            cluster_id: id,
            region: region.into(),
            sellers: vec![id],
            listings: 1,
            estimated_counterfeit_sales_cents: est,
            confirmed_purchases: 0,
            rank: 0,
            evidence: EvidencePack::default(),
        }
    }

    #[test]
    fn ranks_start_at_one_in_each_region_largest_first() {
        let mut l = vec![
            lead(1, "浙江省", 10),
            lead(2, "广东省", 5),
            lead(3, "浙江省", 30),
        ];
        rank(&mut l);
        let got: Vec<(i64, i64)> = l.iter().map(|l| (l.cluster_id, l.rank)).collect();
        assert_eq!(got, vec![(2, 1), (3, 1), (1, 2)]);
    }

    #[test]
    fn options_are_checked() {
        let mut o = LeadsOptions::new("c", "o", "2026-11-28".parse().unwrap());
        assert!(o.validate().is_ok());
        o.threshold_cents = 0;
        assert!(o.validate().is_err());
    }
}
