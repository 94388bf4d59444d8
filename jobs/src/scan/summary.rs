//! The summary printed at the end of a scan, read back from the committed
//! partition (so it reports what readers see).

use anyhow::Result;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::execution::context::SessionContext;
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScanSummary {
    pub date: String,
    pub scored: u64,
    pub allow: u64,
    pub review: u64,
    pub takedown: u64,
    pub rejects: usize,
    pub top_reasons: Vec<(String, u64)>,
    pub table_version: i64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

async fn pairs(ctx: &SessionContext, sql: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for b in ctx.sql(sql).await?.collect().await? {
        let k = cast(b.column(0), &DataType::Utf8)?;
        let k = k.as_string::<i32>();
        let v = cast(b.column(1), &DataType::Int64)?;
        let v = v.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                if k.is_null(i) {
                    "NULL".into()
                } else {
                    k.value(i).to_string()
                },
                v.value(i) as u64,
            ));
        }
    }
    Ok(out)
}

pub async fn summarize(ctx: &SessionContext, dt: &str) -> Result<ScanSummary> {
    let mut s = ScanSummary {
        date: dt.into(),
        ..Default::default()
    };
    for (action, n) in pairs(
        ctx,
        &format!("SELECT action, count(*) FROM risk_scores WHERE dt = '{dt}' GROUP BY action"),
    )
    .await?
    {
        s.scored += n;
        match action.as_str() {
            "allow" => s.allow = n,
            "review" => s.review = n,
            "takedown" => s.takedown = n,
            _ => {}
        }
    }
    s.top_reasons = pairs(
        ctx,
        &format!(
            "SELECT r['code'], count(*) AS n FROM (SELECT unnest(reasons) AS r FROM risk_scores WHERE dt = '{dt}') \
             GROUP BY 1 ORDER BY n DESC, 1 LIMIT 8"
        ),
    )
    .await?;
    Ok(s)
}

impl std::fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |n: u64| {
            if self.scored == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.scored as f64
            }
        };
        writeln!(
            f,
            "dajia scan {}: {} listings scored in {:.1}s ({:.0} listings/s)",
            self.date, self.scored, self.seconds, self.rows_per_second
        )?;
        writeln!(
            f,
            "  allow     {:>10}  {:5.1}%",
            self.allow,
            pct(self.allow)
        )?;
        writeln!(
            f,
            "  review    {:>10}  {:5.1}%",
            self.review,
            pct(self.review)
        )?;
        writeln!(
            f,
            "  takedown  {:>10}  {:5.1}%",
            self.takedown,
            pct(self.takedown)
        )?;
        writeln!(f, "  rejects   {:>10}", self.rejects)?;
        writeln!(f, "  top reasons:")?;
        for (code, n) in &self.top_reasons {
            writeln!(f, "    {code:<26} {n:>10}")?;
        }
        write!(f, "  risk_scores version {}", self.table_version)
    }
}
