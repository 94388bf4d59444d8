//! A simulated buyer for generated catalogs: answers a purchase plan
//! (`dajia sample`) with the verdicts the ground truth dictates, as the
//! platform's buyers and appraisers would, so that the loop scan → sample →
//! buy → train can run without a warehouse of counterfeits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SessionContext;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::write::{table_schema, ts, write_batch};

/// What the buyer bought.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Bought {
    pub planned: u64,
    pub bought: u64,
    /// Planned listings the ground truth does not know (not bought).
    pub unknown: u64,
    /// `why` → (bought, counterfeit).
    pub by_why: BTreeMap<String, (u64, u64)>,
    pub file: String,
}

impl std::fmt::Display for Bought {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "bought {} of {} planned listings ({} unknown to the ground truth):",
            self.bought, self.planned, self.unknown
        )?;
        for (why, (n, c)) in &self.by_why {
            let rate = if *n == 0 { 0.0 } else { *c as f64 / *n as f64 };
            writeln!(
                f,
                "  {why:<8} {n:>6} bought, {c:>6} counterfeit (hit rate {:.3})",
                rate
            )?;
        }
        write!(f, "verdicts in {}", self.file)
    }
}

/// Buy `plan_out`'s `purchase_plan` of `date` in the generated catalog at
/// `catalog`: one `test_purchases` file per plan date (a rerun replaces
/// it), each purchase dated 1 to 14 days after the plan.
pub async fn answer(catalog: &Path, plan_out: &Path, date: NaiveDate, seed: u64) -> Result<Bought> {
    let truth = super::labels_path(catalog).join("labels.parquet");
    if !truth.exists() {
        bail!(
            "{} has no ground truth: only a generated catalog can answer a plan",
            catalog.display()
        );
    }
    let ctx = SessionContext::new();
    if !crate::delta::register(
        &ctx,
        "purchase_plan",
        &crate::delta::output_dir(plan_out, "purchase_plan"),
    )
    .await?
    {
        bail!(
            "{} has no purchase_plan (run `dajia sample` first)",
            plan_out.display()
        );
    }
    ctx.register_parquet(
        "truth",
        truth.to_str().context("a UTF-8 path")?,
        Default::default(),
    )
    .await?;
    let batches = ctx
        .sql(&format!(
            "SELECT p.listing_id, p.why, t.label FROM purchase_plan p LEFT JOIN truth t ON p.listing_id = t.listing_id \
             WHERE p.dt = '{date}' ORDER BY p.listing_id"
        ))
        .await?
        .collect()
        .await?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xb0b);
    let day0 = date
        .and_hms_opt(12, 0, 0)
        .expect("noon exists")
        .and_utc()
        .timestamp_micros();
    let mut out = Bought::default();
    let (mut ids, mut at, mut verdicts) = (Vec::new(), Vec::new(), Vec::new());
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let why = cast(b.column(1), &DataType::Utf8)?;
        let why = why.as_string::<i32>();
        let label = cast(b.column(2), &DataType::Utf8)?;
        let label = label.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.planned += 1;
            if label.is_null(i) {
                out.unknown += 1;
                continue;
            }
            let bad = label.value(i) == "counterfeit";
            let e = out.by_why.entry(why.value(i).to_string()).or_default();
            e.0 += 1;
            e.1 += u64::from(bad);
            out.bought += 1;
            ids.push(id.value(i));
            at.push(Some(day0 + rng.random_range(1..=14i64) * 86_400_000_000));
            verdicts.push(if bad { "counterfeit" } else { "genuine" });
        }
    }
    let batch = RecordBatch::try_new(
        table_schema("test_purchases"),
        vec![
            Arc::new(Int64Array::from(ids)),
            ts(at),
            Arc::new(StringArray::from(verdicts)),
        ],
    )?;
    let file = catalog.join(format!("test_purchases/part-plan-{date}.parquet"));
    write_batch(&file, &batch)?;
    out.file = file.display().to_string();
    Ok(out)
}
