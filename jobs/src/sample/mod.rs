//! `dajia sample`: which listings to test-buy tonight, under a budget.
//!
//! The budget has three parts (seed report: models pick most purchases, a
//! random part measures the platform's true rate):
//! - **random** (`random_share`): a simple random sample of the eligible
//!   listings, drawn first and apart from the scores, each with inclusion
//!   probability `n / N`; their verdicts give the counterfeit-rate estimate
//!   (`estimate`).
//! - **exploit**: the highest expected counterfeit rate (the night's score),
//!   raised for listings that sell (`orders`), at most `max_per_seller` per
//!   seller and `max_per_brand` per brand.
//! - **explore** (`explore_share`): Thompson sampling over category × brand ×
//!   region (`thompson`), then listings at random within the chosen cells.
//!
//! Eligible: listings the night scored and did not take down, not bought in
//! the last `cooldown_days`. Published as `purchase_plan` (Delta, partition
//! `dt`, one commit) with a manifest `OUT/runs/sample-…json` that carries the
//! rate estimate from the verdicts of earlier random slices.

pub mod estimate;
pub mod thompson;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Result};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::context::SessionContext;
use rand::SeedableRng;
use serde::Serialize;

use crate::catalog::{local_path, Catalog};
use crate::delta;
use estimate::{Draw, Rate};

/// Options of `dajia sample`.
#[derive(Debug, Clone)]
pub struct SampleOptions {
    pub catalog: String,
    pub out: String,
    pub date: NaiveDate,
    /// Purchases to plan.
    pub budget: u64,
    pub random_share: f64,
    pub explore_share: f64,
    pub max_per_seller: u64,
    /// Default: a fifth of the budget (at least 1).
    pub max_per_brand: Option<u64>,
    /// A listing bought within this many days is not bought again.
    pub cooldown_days: u32,
    /// Orders of this many days count as sales.
    pub sales_days: u32,
    /// Confidence of the rate's interval (0.8, 0.9, 0.95 or 0.99).
    pub confidence: f64,
    pub seed: u64,
}

impl SampleOptions {
    pub fn new(catalog: &str, out: &str, date: NaiveDate, budget: u64) -> Self {
        SampleOptions {
            catalog: catalog.into(),
            out: out.into(),
            date,
            budget,
            random_share: 0.1,
            explore_share: 0.2,
            max_per_seller: 2,
            max_per_brand: None,
            cooldown_days: 180,
            sales_days: 90,
            confidence: 0.9,
            seed: 1,
        }
    }

    /// Checks every value, apart from any I/O.
    pub fn validate(&self) -> Result<()> {
        anyhow::ensure!(self.budget > 0, "--budget must be at least 1");
        let shares = [
            ("--random-share", self.random_share),
            ("--explore-share", self.explore_share),
        ];
        for (name, v) in shares {
            anyhow::ensure!((0.0..=1.0).contains(&v), "{name} must be within [0, 1]");
        }
        anyhow::ensure!(
            self.random_share + self.explore_share <= 1.0,
            "--random-share plus --explore-share must not exceed 1"
        );
        anyhow::ensure!(
            self.max_per_seller > 0,
            "--max-per-seller must be at least 1"
        );
        anyhow::ensure!(
            self.max_per_brand != Some(0),
            "--max-per-brand must be at least 1"
        );
        anyhow::ensure!(
            estimate::z_of(self.confidence).is_some(),
            "--confidence must be 0.8, 0.9, 0.95 or 0.99"
        );
        Ok(())
    }

    fn brand_cap(&self) -> u64 {
        self.max_per_brand.unwrap_or((self.budget / 5).max(1))
    }
}

/// One planned purchase.
#[derive(Debug, Clone)]
struct Pick {
    listing_id: i64,
    seller_id: i64,
    category: Option<String>,
    brand_id: Option<i64>,
    region: Option<String>,
    why: &'static str,
    inclusion_probability: Option<f64>,
    expected: f32,
}

/// What `dajia sample` did.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRun {
    pub job: &'static str,
    pub run_id: String,
    pub date: String,
    pub outcome: String,
    pub budget: u64,
    pub eligible: u64,
    pub planned: BTreeMap<String, u64>,
    /// Sum of the expected counterfeit rates of the plan, per part.
    pub expected_counterfeit: BTreeMap<String, f64>,
    /// The counterfeit rate of eligible listings, from earlier random slices.
    pub rate: Option<Rate>,
    pub rate_by_category: BTreeMap<String, Rate>,
    pub version: i64,
    pub seconds: f64,
}

impl std::fmt::Display for SampleRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u64 = self.planned.values().sum();
        writeln!(
            f,
            "planned {n} test purchases of {} budgeted among {} eligible listings (dt={}):",
            self.budget, self.eligible, self.date
        )?;
        for (why, k) in &self.planned {
            writeln!(
                f,
                "  {why:<8} {k:>7}  expected counterfeit {:.1}",
                self.expected_counterfeit.get(why).copied().unwrap_or(0.0)
            )?;
        }
        match &self.rate {
            Some(r) => {
                writeln!(
                    f,
                    "counterfeit rate of eligible listings (earlier random slices, {} purchases, {} counterfeit): {:.2}% ({:.0}% interval {:.2}% .. {:.2}%)",
                    r.purchases, r.counterfeit, 100.0 * r.rate, 100.0 * r.confidence, 100.0 * r.low, 100.0 * r.high
                )?;
                for (c, r) in &self.rate_by_category {
                    writeln!(
                        f,
                        "  {c:<16} {:>6.2}% ({:.2}% .. {:.2}%, {} purchases)",
                        100.0 * r.rate,
                        100.0 * r.low,
                        100.0 * r.high,
                        r.purchases
                    )?;
                }
            }
            None => writeln!(
                f,
                "counterfeit rate: no verdicts yet for earlier random slices (buy tonight's, then sample again)"
            )?,
        }
        write!(
            f,
            "purchase_plan dt={} version {} (run {})",
            self.date, self.version, self.run_id
        )
    }
}

fn strs(b: &RecordBatch, i: usize) -> Result<Arc<dyn Array>> {
    Ok(cast(b.column(i), &DataType::Utf8)?)
}

/// Rows of `SELECT listing_id, seller_id, category, brand_id, region, score`.
fn picks(batches: &[RecordBatch], why: &'static str, p: Option<f64>) -> Result<Vec<Pick>> {
    let mut out = Vec::new();
    for b in batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let seller = b.column(1).as_primitive::<Int64Type>();
        let cat = strs(b, 2)?;
        let cat = cat.as_string::<i32>();
        let brand = b.column(3).as_primitive::<Int64Type>();
        let region = strs(b, 4)?;
        let region = region.as_string::<i32>();
        let score = cast(b.column(5), &DataType::Float64)?;
        let score = score.as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push(Pick {
                listing_id: id.value(i),
                seller_id: seller.value(i),
                category: cat.is_valid(i).then(|| cat.value(i).to_string()),
                brand_id: brand.is_valid(i).then(|| brand.value(i)),
                region: region.is_valid(i).then(|| region.value(i).to_string()),
                why,
                inclusion_probability: p,
                expected: score.value(i) as f32,
            });
        }
    }
    Ok(out)
}

/// Greedy choice in the given order under the caps.
struct Chooser {
    chosen: Vec<Pick>,
    ids: HashSet<i64>,
    per_seller: HashMap<i64, u64>,
    per_brand: HashMap<i64, u64>,
    seller_cap: u64,
    brand_cap: u64,
}

impl Chooser {
    fn offer(&mut self, p: Pick) -> bool {
        if self.ids.contains(&p.listing_id)
            || self.per_seller.get(&p.seller_id).copied().unwrap_or(0) >= self.seller_cap
            || p.brand_id
                .is_some_and(|b| self.per_brand.get(&b).copied().unwrap_or(0) >= self.brand_cap)
        {
            return false;
        }
        self.ids.insert(p.listing_id);
        *self.per_seller.entry(p.seller_id).or_default() += 1;
        if let Some(b) = p.brand_id {
            *self.per_brand.entry(b).or_default() += 1;
        }
        self.chosen.push(p);
        true
    }
}

const COLUMNS: &str = "listing_id, seller_id, category, brand_id, region, score";

/// Run `dajia sample`.
pub async fn run(o: &SampleOptions) -> Result<SampleRun> {
    let t = Instant::now();
    o.validate()?;
    let out = local_path(&o.out)?;
    let dt = o.date.to_string();
    let mut catalog = Catalog::open_any(&o.catalog, Some(o.date)).await?;
    catalog.require(&["listings", "sellers"])?;
    catalog.keep(&["listings", "sellers", "orders", "test_purchases"]);
    let ctx = crate::session::new_session(&Default::default(), None);
    catalog.register(&ctx).await?;
    if !delta::register(&ctx, "risk_scores", &delta::output_dir(&out, "risk_scores")).await? {
        bail!(
            "{} has no risk_scores (run `dajia scan` for {dt} first)",
            out.display()
        );
    }
    let has_plans = delta::register(
        &ctx,
        "purchase_plan",
        &delta::output_dir(&out, "purchase_plan"),
    )
    .await?;
    let has_purchases = catalog.table("test_purchases").is_some();
    register_views(&ctx, o, catalog.table("orders").is_some(), has_purchases).await?;

    let eligible = crate::session::counts(&ctx, "SELECT count(*) FROM eligible").await?[0];
    anyhow::ensure!(
        eligible > 0,
        "no listing of {dt} is eligible (scored, not taken down, not bought in the last {} days); run `dajia scan` for {dt}",
        o.cooldown_days
    );
    let budget = o.budget.min(eligible);
    let n_random = ((budget as f64) * o.random_share).round() as u64;
    let n_explore = ((budget as f64) * o.explore_share).round() as u64;
    let n_exploit = budget - n_random - n_explore;
    let mut chooser = Chooser {
        chosen: Vec::new(),
        ids: HashSet::new(),
        per_seller: HashMap::new(),
        per_brand: HashMap::new(),
        seller_cap: o.max_per_seller,
        brand_cap: o.brand_cap(),
    };

    // Random: the first n of a seeded hash order of the eligible listings,
    // a simple random sample whose inclusion probability is n / N. Caps do
    // not apply (they would change the probabilities); the slice is small.
    let order = |salt: &str| {
        format!(
            "md5(concat(CAST(listing_id AS VARCHAR), '/{}/{salt}'))",
            o.seed
        )
    };
    if n_random > 0 {
        let b = ctx
            .sql(&format!(
                "SELECT {COLUMNS} FROM eligible ORDER BY {} LIMIT {n_random}",
                order("random")
            ))
            .await?
            .collect()
            .await?;
        let p = n_random as f64 / eligible as f64;
        for pick in picks(&b, "random", Some(p))? {
            chooser.ids.insert(pick.listing_id);
            *chooser.per_seller.entry(pick.seller_id).or_default() += 1;
            if let Some(br) = pick.brand_id {
                *chooser.per_brand.entry(br).or_default() += 1;
            }
            chooser.chosen.push(pick);
        }
    }

    // Exploit: by priority, the seller cap applied in SQL (so few rows come
    // back), both caps exactly here. The next ones by priority fill what
    // exploration could not (cells exhausted, caps).
    let mut spare = Vec::new();
    if n_exploit > 0 || n_explore > 0 {
        let b = ctx
            .sql(&format!(
                "SELECT {COLUMNS} FROM (SELECT *, row_number() OVER (PARTITION BY seller_id ORDER BY priority DESC, listing_id) AS k \
                 FROM eligible WHERE score > 0) WHERE k <= {} ORDER BY priority DESC, listing_id LIMIT {}",
                o.max_per_seller + n_random,
                (n_exploit + n_explore) * 8 + 1000
            ))
            .await?
            .collect()
            .await?;
        let mut taken = 0;
        for p in picks(&b, "exploit", Some(1.0))? {
            if taken >= n_exploit {
                spare.push(p);
            } else {
                taken += u64::from(chooser.offer(p));
            }
        }
    }

    // Explore: Thompson sampling decides how many per cell; listings at
    // random within each chosen cell.
    if n_explore > 0 {
        let cells_b = ctx
            .sql("SELECT c.cell, c.listings, c.mean_score, coalesce(v.counterfeit, 0), coalesce(v.genuine, 0) \
                  FROM (SELECT cell, count(*) AS listings, avg(score) AS mean_score FROM eligible GROUP BY cell) c \
                  LEFT JOIN verdicts_by_cell v ON c.cell = v.cell ORDER BY c.cell")
            .await?
            .collect()
            .await?;
        let mut names = Vec::new();
        let mut cells = Vec::new();
        for b in &cells_b {
            let name = strs(b, 0)?;
            let name = name.as_string::<i32>();
            let n = b.column(1).as_primitive::<Int64Type>();
            let m = cast(b.column(2), &DataType::Float64)?;
            let m = m.as_primitive::<Float64Type>();
            let c = b.column(3).as_primitive::<Int64Type>();
            let g = b.column(4).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                names.push(name.value(i).to_string());
                cells.push(thompson::Cell {
                    listings: n.value(i) as u64,
                    mean_score: if m.is_valid(i) { m.value(i) } else { 0.0 },
                    counterfeit: c.value(i) as u64,
                    genuine: g.value(i) as u64,
                });
            }
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(o.seed ^ 0x5a3c);
        let slots = thompson::allocate(&cells, n_explore as usize, &mut rng);
        let wanted: Vec<(String, usize)> = names
            .into_iter()
            .zip(slots)
            .filter(|(_, k)| *k > 0)
            .collect();
        if !wanted.is_empty() {
            let values = wanted
                .iter()
                .map(|(c, k)| format!("('{}', {k})", c.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ");
            // A few spares per cell for listings the caps or earlier parts took.
            let b = ctx
                .sql(&format!(
                    "SELECT {COLUMNS}, cell FROM (SELECT e.*, s.column2 AS slots, \
                            row_number() OVER (PARTITION BY e.cell ORDER BY {}) AS k \
                     FROM eligible e JOIN (VALUES {values}) s ON e.cell = s.column1) \
                     WHERE k <= slots * 2 + {} ORDER BY cell, k",
                    order("explore"),
                    o.max_per_seller + n_random + n_exploit
                ))
                .await?
                .collect()
                .await?;
            let want: HashMap<&str, usize> = wanted.iter().map(|(c, k)| (c.as_str(), *k)).collect();
            let mut got: HashMap<String, usize> = HashMap::new();
            for batch in &b {
                let cell = strs(batch, 6)?;
                let cell = cell.as_string::<i32>();
                for (i, p) in picks(std::slice::from_ref(batch), "explore", None)?
                    .into_iter()
                    .enumerate()
                {
                    let c = cell.value(i);
                    let g = got.entry(c.to_string()).or_default();
                    if *g < want.get(c).copied().unwrap_or(0) && chooser.offer(p) {
                        *g += 1;
                    }
                }
            }
        }
    }

    for p in spare {
        if chooser.chosen.len() as u64 >= budget {
            break;
        }
        chooser.offer(p);
    }

    let mut planned = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for p in &chooser.chosen {
        *planned.entry(p.why.to_string()).or_insert(0) += 1;
        *expected.entry(p.why.to_string()).or_insert(0.0) += f64::from(p.expected);
    }
    let (rate, rate_by_category) = if has_plans && has_purchases {
        rates(&ctx, o).await?
    } else {
        (None, BTreeMap::new())
    };
    let now = chrono::Utc::now();
    let run_id = format!("sample-{dt}-{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
    let _lease = crate::lease::Lease::acquire(&out, &run_id, 600)?;
    let version = publish(&out, &dt, &run_id, &chooser.chosen).await?;
    let run = SampleRun {
        job: "sample",
        run_id: run_id.clone(),
        date: dt,
        outcome: "succeeded".into(),
        budget: o.budget,
        eligible,
        planned,
        expected_counterfeit: expected,
        rate,
        rate_by_category,
        version,
        seconds: t.elapsed().as_secs_f64(),
    };
    crate::scan::write_json(&out.join("runs"), &run_id, &run)?;
    Ok(run)
}

/// `eligible(listing_id, seller_id, category, brand_id, region, score,
/// priority, cell)` and `verdicts_by_cell(cell, counterfeit, genuine)`.
async fn register_views(
    ctx: &SessionContext,
    o: &SampleOptions,
    has_orders: bool,
    has_purchases: bool,
) -> Result<()> {
    let dt = o.date;
    let ts = "'Timestamp(Microsecond, Some(\"UTC\"))'";
    let sales = if has_orders {
        format!(
            "SELECT CAST(listing_id AS BIGINT) AS listing_id, sum(amount_cents) AS cents FROM orders \
             WHERE arrow_cast(ordered_at, {ts}) > arrow_cast(DATE '{dt}' - INTERVAL '{} days', {ts}) GROUP BY 1",
            o.sales_days
        )
    } else {
        "SELECT CAST(NULL AS BIGINT) AS listing_id, CAST(NULL AS BIGINT) AS cents WHERE false"
            .into()
    };
    let bought = if has_purchases {
        let cols: Vec<String> = ctx
            .table("test_purchases")
            .await?
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let recent = if cols.iter().any(|c| c == "purchased_at") {
            format!(
                "arrow_cast(purchased_at, {ts}) > arrow_cast(DATE '{dt}' - INTERVAL '{} days', {ts}) OR purchased_at IS NULL",
                o.cooldown_days
            )
        } else {
            "true".into()
        };
        format!("SELECT DISTINCT CAST(listing_id AS BIGINT) AS listing_id FROM test_purchases WHERE {recent}")
    } else {
        "SELECT CAST(NULL AS BIGINT) AS listing_id WHERE false".into()
    };
    // Priority: the expected counterfeit rate, raised by sales (log, so a
    // best seller does not crowd out every other listing).
    let sql = format!(
        "CREATE VIEW eligible AS \
         WITH l AS (SELECT CAST(listing_id AS BIGINT) AS listing_id, max(category) AS category FROM listings GROUP BY 1), \
              s AS (SELECT CAST(seller_id AS BIGINT) AS seller_id, max(region) AS region FROM sellers GROUP BY 1), \
              sales AS ({sales}), bought AS ({bought}) \
         SELECT r.listing_id, r.seller_id, l.category, r.brand_id, s.region, r.score, \
                CAST(r.score AS DOUBLE) * (1.0 + ln(1.0 + coalesce(sales.cents, 0) / 100.0)) AS priority, \
                concat(coalesce(l.category, '?'), ' | ', coalesce(CAST(r.brand_id AS VARCHAR), '-'), ' | ', coalesce(s.region, '?')) AS cell \
         FROM risk_scores r JOIN l ON r.listing_id = l.listing_id \
         LEFT JOIN s ON r.seller_id = s.seller_id \
         LEFT JOIN sales ON r.listing_id = sales.listing_id \
         LEFT JOIN bought ON r.listing_id = bought.listing_id \
         WHERE r.dt = '{dt}' AND r.action <> 'takedown' AND bought.listing_id IS NULL"
    );
    ctx.sql(&sql).await?.collect().await?;
    let verdicts = if has_purchases {
        "SELECT e.cell, sum(CASE WHEN lower(t.verdict) = 'counterfeit' THEN 1 ELSE 0 END) AS counterfeit, \
                sum(CASE WHEN lower(t.verdict) = 'genuine' THEN 1 ELSE 0 END) AS genuine \
         FROM test_purchases t JOIN (SELECT r.listing_id, concat(coalesce(l.category, '?'), ' | ', coalesce(CAST(r.brand_id AS VARCHAR), '-'), ' | ', coalesce(s.region, '?')) AS cell \
                                     FROM risk_scores r JOIN (SELECT CAST(listing_id AS BIGINT) AS listing_id, max(category) AS category FROM listings GROUP BY 1) l ON r.listing_id = l.listing_id \
                                     LEFT JOIN (SELECT CAST(seller_id AS BIGINT) AS seller_id, max(region) AS region FROM sellers GROUP BY 1) s ON r.seller_id = s.seller_id \
                                     WHERE r.dt = '{dt}') e \
              ON CAST(t.listing_id AS BIGINT) = e.listing_id GROUP BY e.cell"
            .replace("{dt}", &dt.to_string())
    } else {
        "SELECT 'x' AS cell, CAST(0 AS BIGINT) AS counterfeit, CAST(0 AS BIGINT) AS genuine WHERE false".into()
    };
    ctx.sql(&format!("CREATE VIEW verdicts_by_cell AS {verdicts}"))
        .await?
        .collect()
        .await?;
    Ok(())
}

/// The counterfeit rate from the verdicts of earlier plans' random slices
/// (bought on or after the plan's date), overall and per category.
async fn rates(
    ctx: &SessionContext,
    o: &SampleOptions,
) -> Result<(Option<Rate>, BTreeMap<String, Rate>)> {
    let ts = "'Timestamp(Microsecond, Some(\"UTC\"))'";
    let has_at = ctx
        .table("test_purchases")
        .await?
        .schema()
        .field_with_unqualified_name("purchased_at")
        .is_ok();
    let after = if has_at {
        format!("AND (t.purchased_at IS NULL OR arrow_cast(t.purchased_at, {ts}) >= arrow_cast(CAST(p.dt AS DATE), {ts}))")
    } else {
        String::new()
    };
    let batches = ctx
        .sql(&format!(
            "SELECT p.category, p.inclusion_probability, max(CASE WHEN lower(t.verdict) = 'counterfeit' THEN 1 ELSE 0 END) AS y \
             FROM purchase_plan p JOIN test_purchases t ON p.listing_id = CAST(t.listing_id AS BIGINT) \
             WHERE p.why = 'random' AND p.dt <= '{}' AND lower(t.verdict) IN ('counterfeit', 'genuine') {after} \
             GROUP BY p.dt, p.listing_id, p.category, p.inclusion_probability",
            o.date
        ))
        .await?
        .collect()
        .await?;
    let mut all = Vec::new();
    let mut by: BTreeMap<String, Vec<Draw>> = BTreeMap::new();
    for b in &batches {
        let c = strs(b, 0)?;
        let c = c.as_string::<i32>();
        let p = b.column(1).as_primitive::<Float64Type>();
        let y = cast(b.column(2), &DataType::Int64)?;
        let y = y.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            if p.is_null(i) {
                continue;
            }
            let d = Draw {
                inclusion_probability: p.value(i),
                counterfeit: y.value(i) > 0,
            };
            let cat = if c.is_valid(i) { c.value(i) } else { "?" };
            by.entry(cat.to_string()).or_default().push(d.clone());
            all.push(d);
        }
    }
    let overall = estimate::estimate(&all, o.confidence);
    let per = by
        .into_iter()
        .filter_map(|(c, d)| estimate::estimate(&d, o.confidence).map(|r| (c, r)))
        .collect();
    Ok((overall, per))
}

/// Replace partition `dt` of `OUT/purchase_plan` with `plan`, one commit.
async fn publish(out: &std::path::Path, dt: &str, run_id: &str, plan: &[Pick]) -> Result<i64> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            plan.iter().map(|p| p.listing_id),
        )),
        Arc::new(Int64Array::from_iter_values(
            plan.iter().map(|p| p.seller_id),
        )),
        Arc::new(StringArray::from_iter(
            plan.iter().map(|p| p.category.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(plan.iter().map(|p| p.brand_id))),
        Arc::new(StringArray::from_iter(
            plan.iter().map(|p| p.region.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(plan.iter().map(|p| p.why))),
        Arc::new(Float64Array::from_iter(
            plan.iter().map(|p| p.inclusion_probability),
        )),
        Arc::new(Float32Array::from_iter_values(
            plan.iter().map(|p| p.expected),
        )),
        Arc::new(StringArray::from_iter_values(plan.iter().map(|_| run_id))),
        Arc::new(StringArray::from_iter_values(plan.iter().map(|_| dt))),
    ];
    delta::replace_partition_with_columns(out, "purchase_plan", columns, dt, run_id).await
}
